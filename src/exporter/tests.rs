//! The exposition against the catalogue, docs/metrics.md and the Grafana
//! dashboard; the HTTP side: content negotiation, errors, basic
//! authentication, a port in use, a bounded stop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::*;
use crate::bus::BusStats;
use crate::config::MetricsConfig;
use crate::counters::{Counters, TrackerSnapshot};
use crate::durable::Fsync;
use crate::intake::ChannelView;
use crate::janus::{CoreCounts, Version};
use crate::output::OutEvent;
use crate::reason::Reason;
use crate::sinks::broker::ConnectionState;
use crate::sinks::spool::SpoolConfig;
use crate::sinks::{Sink, SinkError, SinkHandle, SinkSettings, SpoolSettings};

/// A sink that takes everything, or fails everything.
struct TestSink(bool);

impl Sink for TestSink {
    fn deliver(&mut self, batch: &[&str], _: Option<Instant>) -> Result<(), SinkError> {
        if self.0 {
            Ok(())
        } else {
            Err(SinkError {
                delivered: 0,
                message: format!("refused {} events", batch.len()),
            })
        }
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn describe(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// A broker sink: connected twice (a reconnection), connected now.
struct TestBroker(Arc<ConnectionState>);

impl Sink for TestBroker {
    fn deliver(&mut self, _: &[&str], _: Option<Instant>) -> Result<(), SinkError> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn describe(&self) -> Map<String, Value> {
        Map::new()
    }
    fn connection(&self) -> Option<Arc<ConnectionState>> {
        Some(self.0.clone())
    }
}

/// Everything a scrape can show: a healthy file-like sink, a failing sink
/// with a spool, a broker sink, Janus's version and the core's counts.
struct World {
    metrics: Arc<Counters>,
    bus: Arc<BusStats>,
    sinks: Vec<SinkHandle>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let good = SinkHandle::spawn(
        "file",
        SinkSettings::simple(
            "file",
            crate::config::EventMask::ALL,
            64,
            Duration::from_millis(10),
        ),
        Box::new(TestSink(true)),
    )
    .unwrap();
    let failing = SinkHandle::spawn(
        "http",
        SinkSettings {
            retries: 1_000,
            backoff: Duration::from_millis(5),
            backoff_max: Duration::from_millis(5),
            spool: Some(SpoolSettings {
                config: SpoolConfig {
                    dir: dir.path().join("http-billing"),
                    fsync: Fsync::Never,
                    max_bytes: 1 << 20,
                    segment_bytes: 64 << 10,
                    file_mode: 0o600,
                },
                all_events: false,
            }),
            ..SinkSettings::simple(
                "http-billing",
                crate::config::EventMask::ALL,
                64,
                Duration::from_millis(10),
            )
        },
        Box::new(TestSink(false)),
    )
    .unwrap();
    let created = r#"{"type":1,"timestamp":1000000,"session_id":5,"event":{"name":"created"}}"#;
    let ev = OutEvent::new(1, true, Some(5), created.to_string());
    for s in [&good, &failing] {
        s.shared().offer_all(&[(1, ev.clone())]);
    }
    let metrics = Arc::new(Counters::default());
    metrics.received.store(10, Relaxed);
    metrics.count_type(1);
    metrics.durations.observe(Reason::Timeout, 90_000_000);
    metrics.checkpointed_at_us.store(1, Relaxed);
    let mut snapshot = TrackerSnapshot {
        live_sessions: 3,
        handles_by_plugin: vec![("janus.plugin.echotest".into(), 2)],
        connections_by_transport: vec![("janus.transport.websockets".into(), 1)],
        ..TrackerSnapshot::default()
    };
    snapshot.stats.created = 7;
    snapshot.stats.endings = [1, 2, 1, 0, 0, 0];
    snapshot.stats.synthetic_by_reason = [0, 2, 0, 0, 0, 0];
    snapshot.janus.version = Some(Version(1, 4, 1));
    snapshot.janus.server_name = Some("J1".into());
    snapshot.janus.core = Some(CoreCounts {
        sessions: Some(3),
        handles: Some(2),
        peerconnections: Some(1),
    });
    metrics.set_tracker(snapshot);
    let bus = Arc::new(BusStats::default());
    bus.injected[1].store(2, Relaxed);
    // The good sink delivers; the failing one retries, its event stays
    // spooled.
    let (delivered, retrying) = (good.shared().clone(), failing.shared().clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while (delivered.stats().sent.load(Relaxed) == 0 || retrying.stats().retried.load(Relaxed) == 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let connection = Arc::new(ConnectionState::default());
    connection.up("rabbitmq", "RabbitMQ 3.10.8".into());
    connection.down("rabbitmq", "connection lost".into());
    connection.up("rabbitmq", "RabbitMQ 3.10.8".into());
    let broker = SinkHandle::spawn(
        "rabbitmq",
        SinkSettings::simple(
            "rabbitmq",
            crate::config::EventMask::ALL,
            64,
            Duration::from_millis(10),
        ),
        Box::new(TestBroker(connection)),
    )
    .unwrap();
    World {
        metrics,
        bus,
        sinks: vec![good, failing, broker],
        _dir: dir,
    }
}

fn sources(w: &World) -> Sources {
    Sources {
        metrics: w.metrics.clone(),
        sinks: w.sinks.iter().map(|s| s.shared().clone()).collect(),
        bus: w.bus.clone(),
        bus_available: true,
        channel: Box::new(|| ChannelView {
            depth: 4,
            capacity: 16,
            dropped_bulk: [1, 0, 0, 2],
            ..ChannelView::default()
        }),
        crash_state: true,
        started_us: 1_700_000_000_000_000,
    }
}

fn encode(w: &World, openmetrics: bool) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(collect::Exposition(Arc::new(sources(w)))));
    let mut out = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
    }
    out
}

type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of an exposition (our label values hold no quotes or commas).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap();
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').unwrap();
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (n.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap(),
            };
            (name, labels, value)
        })
        .collect()
}

fn value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<f64> = all
        .iter()
        .filter(|(n, l, _)| n == name && *l == want)
        .map(|s| s.2)
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0]
}

/// Which catalogue family a sample belongs to.
fn family_of(sample: &str) -> Option<&'static Series> {
    SERIES
        .iter()
        .find(|s| s.sample_names().iter().any(|n| n == sample))
}

#[test]
fn every_series_is_in_the_catalogue_with_its_labels() {
    let w = world();
    for openmetrics in [true, false] {
        let text = encode(&w, openmetrics);
        let all = samples(&text);
        let mut seen = BTreeSet::new();
        for (name, labels, _) in &all {
            let f = family_of(name).unwrap_or_else(|| panic!("{name} is not in the catalogue"));
            seen.insert(f.name);
            let mut want: BTreeSet<&str> = f.labels.iter().copied().collect();
            if f.ty == Type::Histogram && name.ends_with("_bucket") {
                want.insert("le");
            }
            let got: BTreeSet<&str> = labels.keys().map(String::as_str).collect();
            assert_eq!(got, want, "{name}");
        }
        let missing: Vec<_> = SERIES
            .iter()
            .filter(|s| !seen.contains(s.name))
            .map(|s| s.name)
            .collect();
        assert!(missing.is_empty(), "not exposed: {missing:?}\n{text}");
        if openmetrics {
            assert!(text.ends_with("# EOF\n"));
            assert!(text.contains("# TYPE janus_sessions_created counter\n"));
        } else {
            assert!(text.contains("# TYPE janus_sessions_created_total counter\n"));
        }
    }
    // Every name is Prometheus's style and says what it is.
    for s in SERIES {
        assert!(
            s.name.starts_with("janus_") || s.name.starts_with("lifecycleevh_"),
            "{}",
            s.name
        );
        assert_eq!(
            s.ty == Type::Counter,
            s.name.ends_with("_total"),
            "{}",
            s.name
        );
        assert_eq!(s.ty == Type::Info, s.name.ends_with("_info"), "{}", s.name);
        assert!(s.help.ends_with('.'), "{}", s.name);
    }
}

#[test]
fn values_are_the_counters_info_reads() {
    let w = world();
    let all = samples(&encode(&w, true));
    let v = |name: &str, labels: &[(&str, &str)]| value(&all, name, labels);
    assert_eq!(
        v("lifecycleevh_sink_connected", &[("sink", "rabbitmq")]),
        1.0
    );
    assert_eq!(
        v(
            "lifecycleevh_sink_connections_total",
            &[("sink", "rabbitmq")]
        ),
        2.0
    );
    assert!(
        !all.iter()
            .any(|(n, l, _)| n == "lifecycleevh_sink_connected" && l["sink"] != "rabbitmq"),
        "only broker sinks have a connection"
    );
    assert_eq!(v("janus_sessions_open", &[]), 3.0);
    assert_eq!(v("janus_sessions_created_total", &[]), 7.0);
    assert_eq!(
        v(
            "janus_sessions_ended_total",
            &[("reason", "request"), ("synthetic", "false")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "janus_sessions_ended_total",
            &[("reason", "timeout"), ("synthetic", "true")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "janus_sessions_ended_total",
            &[("reason", "timeout"), ("synthetic", "false")]
        ),
        0.0
    );
    assert_eq!(
        v(
            "janus_sessions_ended_total",
            &[("reason", "transport_gone"), ("synthetic", "false")]
        ),
        1.0
    );
    // 90 s: in le=120 and above, not in le=60.
    assert_eq!(
        v(
            "janus_session_duration_seconds_count",
            &[("reason", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "janus_session_duration_seconds_sum",
            &[("reason", "timeout")]
        ),
        90.0
    );
    assert_eq!(
        v(
            "janus_session_duration_seconds_bucket",
            &[("reason", "timeout"), ("le", "60.0")]
        ),
        0.0
    );
    assert_eq!(
        v(
            "janus_session_duration_seconds_bucket",
            &[("reason", "timeout"), ("le", "120.0")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "janus_session_duration_seconds_bucket",
            &[("reason", "timeout"), ("le", "+Inf")]
        ),
        1.0
    );
    assert_eq!(
        v("janus_handles_open", &[("plugin", "janus.plugin.echotest")]),
        2.0
    );
    assert_eq!(
        v(
            "janus_transport_connections_open",
            &[("transport", "janus.transport.websockets")]
        ),
        1.0
    );
    assert_eq!(v("janus_core_sessions", &[]), 3.0);
    assert_eq!(v("janus_core_peerconnections", &[]), 1.0);
    assert_eq!(
        v("janus_info", &[("version", "1.4.1"), ("server_name", "J1")]),
        1.0
    );
    assert_eq!(v("lifecycleevh_events_received_total", &[]), 10.0);
    assert_eq!(
        v(
            "lifecycleevh_events_processed_total",
            &[("type", "sessions")]
        ),
        1.0
    );
    assert_eq!(v("lifecycleevh_channel_depth", &[]), 4.0);
    assert_eq!(
        v("lifecycleevh_bus_injected_total", &[("reason", "timeout")]),
        2.0
    );
    assert_eq!(
        v(
            "lifecycleevh_sink_events_delivered_total",
            &[("sink", "file")]
        ),
        1.0
    );
    assert!(
        v(
            "lifecycleevh_sink_events_retried_total",
            &[("sink", "http-billing")]
        ) >= 1.0
    );
    assert_eq!(
        v(
            "lifecycleevh_sink_spool_events",
            &[("sink", "http-billing")]
        ),
        1.0
    );
    assert!(v("lifecycleevh_sink_spool_bytes", &[("sink", "http-billing")]) > 0.0);
    // The spooled event is stamped 1 s after the epoch: decades old.
    assert!(
        v(
            "lifecycleevh_sink_spool_oldest_age_seconds",
            &[("sink", "http-billing")]
        ) > 1e9
    );
    assert!(v("lifecycleevh_crash_state_checkpoint_age_seconds", &[]) > 1e9);
    assert_eq!(
        v(
            "lifecycleevh_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // Only the file sink has no spool series.
    assert!(
        !all.iter()
            .any(|(n, l, _)| n.starts_with("lifecycleevh_sink_spool") && l["sink"] == "file")
    );
}

#[test]
fn janus_1_1_has_no_core_series_and_nothing_before_started() {
    let w = world();
    w.metrics.set_tracker(TrackerSnapshot::default());
    w.metrics.checkpointed_at_us.store(0, Relaxed);
    let text = encode(&w, true);
    for absent in [
        "janus_core_",
        "janus_info",
        "lifecycleevh_crash_state_checkpoint_age",
    ] {
        assert!(
            !text.contains(&format!("\n{absent}")),
            "{absent} in\n{text}"
        );
    }
    assert!(text.contains("\njanus_sessions_open 0\n"));
}

/// The Grafana dashboard names only series that exist, with their labels.
#[test]
fn the_dashboard_names_only_existing_series() {
    let dashboard: Value = serde_json::from_str(include_str!(
        "../../contrib/grafana/lifecycleevh-dashboard.json"
    ))
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in identifiers(expr)
            .into_iter()
            .filter(|i| i.starts_with("janus_") || i.starts_with("lifecycleevh_"))
        {
            let f = family_of(&name).unwrap_or_else(|| {
                panic!("the dashboard names {name}, which is not exposed: {expr}")
            });
            used.insert(f.name);
        }
        // Every label a selector or a `by` clause uses exists in the families used.
        for label in label_names(expr) {
            let known = SERIES.iter().any(|s| s.labels.contains(&label.as_str()))
                || label == "le"
                || label == "instance"
                || label == "job";
            assert!(
                known,
                "the dashboard uses label {label}, which no series has: {expr}"
            );
        }
    }
    for required in [
        "janus_sessions_open",
        "janus_sessions_ended_total",
        "janus_session_duration_seconds",
        "janus_core_sessions",
        "lifecycleevh_sink_queue_depth",
        "lifecycleevh_sink_events_dropped_total",
    ] {
        assert!(
            used.contains(required),
            "the dashboard does not show {required}"
        );
    }
}

/// docs/metrics.md lists every series.
#[test]
fn the_docs_list_every_series() {
    let section = include_str!("../../docs/metrics.md");
    for s in SERIES {
        assert!(
            section.contains(&format!("`{}", s.name)),
            "docs/metrics.md does not list {}",
            s.name
        );
        for l in s.labels {
            assert!(
                section.contains(&format!("`{l}`")) || section.contains(&format!("{l}=")),
                "docs/metrics.md does not explain label {l} of {}",
                s.name
            );
        }
    }
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    // Panel queries, and the instance variable's query.
                    ("expr" | "query" | "definition", Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Words of a PromQL expression outside string literals.
fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_string = false;
    for c in expr.chars() {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Label names in `{a="x", b=~"y"}` selectors and `by (a, b)` / `without (...)` clauses.
fn label_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut in_string = false;
    let mut depth_braces = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '"' {
            in_string = !in_string;
        } else if !in_string {
            if c == '{' {
                depth_braces += 1;
            } else if c == '}' {
                depth_braces -= 1;
            } else if depth_braces > 0 && (c.is_ascii_alphabetic() || c == '_') {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                    i += 1;
                }
                out.push(bytes[start..i].iter().collect());
                continue;
            }
        }
        i += 1;
    }
    for clause in ["by", "without"] {
        let mut rest = expr;
        while let Some(pos) = rest.find(&format!("{clause} (")) {
            let after = &rest[pos + clause.len() + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.extend(
                after[..end]
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
            rest = &after[end..];
        }
    }
    out
}

/// An endpoint told to bind at once (as Janus's `started` would), once it
/// listens or has failed.
fn endpoint(config: MetricsConfig) -> (World, Endpoint) {
    let w = world();
    let mut e = Endpoint::start(&config, sources(&w));
    e.opener().expect("an opener").open();
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.local_addr().is_none() && e.error().is_none() {
        assert!(Instant::now() < deadline, "neither listening nor failed");
        std::thread::sleep(Duration::from_millis(2));
    }
    (w, e)
}

fn loopback() -> MetricsConfig {
    MetricsConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        ..MetricsConfig::default()
    }
}

/// Sends raw bytes, returns the whole answer (within `timeout`).
fn raw_within(addr: SocketAddr, request: &str, timeout: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn raw(addr: SocketAddr, request: &str) -> String {
    raw_within(addr, request, Duration::from_secs(5)).unwrap()
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n"),
    )
}

/// Waits until `info()` at `pointer` is `want`.
fn wait_info(e: &Endpoint, pointer: &str, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.info().pointer(pointer) != Some(&want) {
        assert!(
            Instant::now() < deadline,
            "info{pointer} never became {want}: {}",
            e.info()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn serves_both_formats_and_refuses_the_rest() {
    let (_w, e) = endpoint(loopback());
    let addr = e.local_addr().unwrap();
    let plain = get(addr, "/metrics", "");
    assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"), "{plain}");
    assert!(plain.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(plain.contains("Connection: close\r\n"), "{plain}");
    assert!(plain.contains("\njanus_sessions_created_total 7\n"));
    let om = get(
        addr,
        "/metrics?x=1",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
    );
    assert!(
        om.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));
    let head = raw(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(get(addr, "/", "").starts_with("HTTP/1.1 404 "));
    assert!(get(addr, "/metricsx", "").starts_with("HTTP/1.1 404 "));
    let post = raw(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    assert!(raw(addr, "NOT HTTP\r\n\r\n").starts_with("HTTP/1.1 400 "));
    // hyper counts its own 400 as the connection ends.
    wait_info(&e, "/rejected", json!(4));
    let info = e.info();
    assert_eq!(info["scrapes"], 3);
    assert_eq!(info["listening"], true);
    assert_eq!(info["state"], "listening");
    assert_eq!(info["error"], Value::Null);
    assert!(e.warnings().is_empty(), "{:?}", e.warnings());
    assert!(e.stop(Duration::from_secs(2)));
}

#[test]
fn basic_authentication_as_prometheus_sends_it() {
    let (_w, e) = endpoint(MetricsConfig {
        user: Some("prom".into()),
        password: Some("s3cret".into()),
        ..loopback()
    });
    let addr = e.local_addr().unwrap();
    let none = get(addr, "/metrics", "");
    assert!(none.starts_with("HTTP/1.1 401 "), "{none}");
    assert!(
        none.contains("Www-Authenticate: Basic realm=\"lifecycleevh\""),
        "{none}"
    );
    assert!(!none.contains("janus_"));
    // base64("prom:wrong"), base64("prom:s3cret")
    let wrong = get(
        addr,
        "/metrics",
        "Authorization: Basic cHJvbTp3cm9uZw==\r\n",
    );
    assert!(wrong.starts_with("HTTP/1.1 401 "));
    let right = get(
        addr,
        "/metrics",
        "Authorization: Basic cHJvbTpzM2NyZXQ=\r\n",
    );
    assert!(right.starts_with("HTTP/1.1 200 "), "{right}");
    assert!(right.contains("janus_sessions_open 3"));
    assert_eq!(e.info()["unauthorized"], 2);
    assert_eq!(e.info()["scrapes"], 1);
}

/// RFC 7617 (and RFC 9110, 11.1): the scheme's name is case-insensitive.
#[test]
fn the_basic_scheme_is_case_insensitive() {
    let (_w, e) = endpoint(MetricsConfig {
        user: Some("prom".into()),
        password: Some("s3cret".into()),
        ..loopback()
    });
    let addr = e.local_addr().unwrap();
    for scheme in ["basic", "BASIC", "bAsIc", "Basic"] {
        let answer = get(
            addr,
            "/metrics",
            &format!("Authorization: {scheme}  cHJvbTpzM2NyZXQ=\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 200 "), "{scheme}: {answer}");
    }
    for refused in [
        "Bearer cHJvbTpzM2NyZXQ=",
        "Basiс cHJvbTpzM2NyZXQ=",
        "Basic",
        "cHJvbTpzM2NyZXQ=",
        "Basic cHJvbTpzM2NyZXQ",
    ] {
        let answer = get(addr, "/metrics", &format!("Authorization: {refused}\r\n"));
        assert!(answer.starts_with("HTTP/1.1 401 "), "{refused}: {answer}");
    }
    assert_eq!(
        basic_credentials(b"basic\tcHJvbTpzM2NyZXQ="),
        Some(b"prom:s3cret".to_vec())
    );
}

#[test]
fn a_port_in_use_is_reported_and_nothing_else_stops() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let (_w, e) = endpoint(MetricsConfig {
        listen: taken.local_addr().unwrap(),
        ..loopback()
    });
    assert_eq!(e.local_addr(), None);
    let why = e.error().unwrap();
    assert!(
        why.starts_with(&format!("cannot listen on {}", taken.local_addr().unwrap())),
        "{why}"
    );
    assert!(why.contains("in use"), "{why}");
    assert_eq!(e.info()["listening"], false);
    assert_eq!(e.info()["state"], "failed");
    assert_eq!(
        e.warnings(),
        vec![format!("the Prometheus endpoint is off: {why}")]
    );
    assert!(e.stop(Duration::from_millis(500)));
}

/// Janus's transports bind after the handler's `init`: nothing is bound
/// before the opener fires.
#[test]
fn binds_only_when_opened() {
    let w = world();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = MetricsConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        ..loopback()
    };
    let mut e = Endpoint::start(&config, sources(&w));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(e.info()["state"], "waiting");
    assert_eq!(e.info()["address"], Value::Null);
    // The port is free: a transport could take it now.
    let transport = TcpListener::bind(config.listen).expect("the port is still free");
    e.opener().unwrap().open();
    wait_info(&e, "/state", json!("failed"));
    assert!(e.error().unwrap().contains("in use"));
    drop(transport);
    // Never opened: stops all the same.
    let mut idle = Endpoint::start(&config, sources(&w));
    let opener = idle.opener();
    assert!(idle.stop(Duration::from_secs(2)));
    drop(opener);
}

/// `listen` on port 0: `info` shows the port the system chose.
#[test]
fn info_shows_the_bound_address() {
    let (_w, e) = endpoint(loopback());
    let addr = e.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(e.info()["listen"], "127.0.0.1:0");
    assert_eq!(e.info()["address"], addr.to_string());
    assert!(get(addr, "/metrics", "").starts_with("HTTP/1.1 200 "));
}

#[test]
fn an_open_listen_without_credentials_is_a_warning() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (_w, e) = endpoint(MetricsConfig {
            listen: listen.parse().unwrap(),
            ..loopback()
        });
        if e.error()
            .is_some_and(|why| why.contains("Address family not supported"))
        {
            continue; // no IPv6 on this machine
        }
        let warnings = e.warnings();
        assert_eq!(warnings.len(), 1, "{listen}: {warnings:?}");
        assert!(
            warnings[0].contains(&format!("metrics.listen = {listen} is every interface")),
            "{warnings:?}"
        );
        let (_w, e) = endpoint(MetricsConfig {
            listen: listen.parse().unwrap(),
            user: Some("prom".into()),
            password: Some("s3cret".into()),
            ..loopback()
        });
        assert!(e.warnings().is_empty(), "{:?}", e.warnings());
    }
}

#[test]
fn stops_in_bounded_time_with_silent_clients_connected() {
    let (_w, e) = endpoint(loopback());
    let addr = e.local_addr().unwrap();
    // Clients that connect and never send a byte, or half a request.
    let _silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metr").unwrap();
    wait_info(&e, "/connections/open", json!(2));
    let t = Instant::now();
    assert!(e.stop(Duration::from_secs(5)));
    // Nothing waits for the clients (the old endpoint waited up to 1 s).
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The port is free again.
    TcpListener::bind(addr).unwrap();
}

/// Holds `n` connections open that never send a byte, then scrapes: the
/// scrape must answer within `timeout` (the endpoint before this one
/// served one connection at a time, each for up to 1 s: 12 idle
/// connections cost a scrape 12 s, 200 cost it 135 s). Returns how long
/// the scrape took.
pub(super) fn scrape_beside_idle_connections(
    addr: SocketAddr,
    n: usize,
    timeout: Duration,
) -> (Vec<TcpStream>, Duration) {
    let idle: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let t = Instant::now();
    let answer = raw_within(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", timeout)
        .unwrap_or_else(|e| {
            panic!("no answer within {timeout:?} beside {n} idle connections: {e}")
        });
    let took = t.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    (idle, took)
}

#[test]
fn idle_connections_never_delay_a_scrape() {
    let (_w, e) = endpoint(loopback());
    let addr = e.local_addr().unwrap();
    for n in [12, 200] {
        let (idle, took) = scrape_beside_idle_connections(addr, n, Duration::from_secs(3));
        eprintln!("a scrape beside {n} idle connections: {took:?}");
        let info = e.info();
        let c = &info["connections"];
        assert!(
            c["open"].as_u64().unwrap() <= MAX_CONNECTIONS as u64,
            "{info}"
        );
        assert!(
            c["peak"].as_u64().unwrap() <= MAX_CONNECTIONS as u64,
            "{info}"
        );
        assert_eq!(c["refused"], 0, "{info}");
        drop(idle);
    }
    // 200 idle connections and a scrape on 64 places: at least 137 made
    // room, by now or once every connection has been accepted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = e.info()["connections"].clone();
        if c["evicted"].as_u64().unwrap() + c["timed_out"].as_u64().unwrap() >= 137 {
            break;
        }
        assert!(Instant::now() < deadline, "{c}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(e.info()["scrapes"], 2);
}

#[test]
fn an_idle_connection_is_closed_at_the_head_deadline() {
    let (_w, e) = endpoint(loopback());
    let addr = e.local_addr().unwrap();
    // Before connecting: the deadline runs from the accept, later.
    let t = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(HEAD_DEADLINE + Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    // Closed by the endpoint: end of file, nothing sent.
    assert_eq!(silent.read(&mut buf).unwrap(), 0);
    assert!(t.elapsed() >= HEAD_DEADLINE, "{:?}", t.elapsed());
    wait_info(&e, "/connections/timed_out", json!(1));
    wait_info(&e, "/connections/open", json!(0));
}

/// The bound on places: a newcomer takes the place of the oldest
/// connection still waiting for its request, never one being answered;
/// with every place answered, it is refused.
#[test]
fn places_evict_the_oldest_waiting_and_refuse_when_all_are_answered() {
    use super::serve::{Admission, Slots};
    let (_w, e) = endpoint(loopback());
    let slots = std::sync::Arc::new(Slots::new(2, e.shared.clone()));
    let Admission::Admitted {
        slot: mut a,
        evicted: false,
    } = slots.admit()
    else {
        panic!()
    };
    let Admission::Admitted {
        slot: b,
        evicted: false,
    } = slots.admit()
    else {
        panic!()
    };
    b.answering();
    // Full: the oldest waiting (a) goes.
    let Admission::Admitted {
        slot: c,
        evicted: true,
    } = slots.admit()
    else {
        panic!()
    };
    assert!(a.evicted.as_mut().unwrap().try_recv().is_ok());
    assert!(!a.is_waiting());
    c.answering();
    // Being answered is not being evicted: c's eviction never comes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut c = c;
    let evicted = c.evicted.take();
    let waits = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(50),
            super::serve::until_evicted(evicted),
        )
        .await
    });
    assert!(
        waits.is_err(),
        "a connection being answered counts as evicted"
    );
    // b and c are being answered: refused.
    assert!(matches!(slots.admit(), Admission::Refused));
    drop(b);
    assert!(matches!(
        slots.admit(),
        Admission::Admitted { evicted: false, .. }
    ));
}

/// A CA called `name`, and a certificate for 127.0.0.1 it signed: (the CA's PEM, the
/// certificate's PEM, its key's PEM).
fn pki(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Replaces `path` at once, as a renewal tool does (a new file renamed over).
fn replace(path: &std::path::Path, text: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, text).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// GET over HTTPS, trusting only `ca`: the status, or the error.
fn https_get(addr: SocketAddr, ca: &str) -> Result<u16, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let agent = ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .timeout(Duration::from_secs(5))
        .build();
    match agent.get(&format!("https://{addr}/metrics")).call() {
        Ok(r) => {
            let status = r.status();
            let body = r.into_string().unwrap();
            assert!(body.contains("\njanus_sessions_open 3\n"), "{body}");
            Ok(status)
        }
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn https_serves_and_follows_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = pki("CA 1");
    let (ca2, cert2, key2) = pki("CA 2");
    let files = crate::config::exporter::TlsFiles {
        cert: dir.path().join("metrics.crt"),
        key: dir.path().join("metrics.key"),
    };
    std::fs::write(&files.cert, &cert1).unwrap();
    std::fs::write(&files.key, &key1).unwrap();
    let (_w, e) = endpoint(MetricsConfig {
        tls: Some(files.clone()),
        ..loopback()
    });
    let addr = e.local_addr().expect("listening");
    assert_eq!(e.info()["tls"], true);
    assert_eq!(https_get(addr, &ca1), Ok(200));
    let untrusted = https_get(addr, &ca2).unwrap_err();
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    // Plain HTTP on the HTTPS port: no answer, a failed handshake.
    let plain = raw_within(
        addr,
        "GET /metrics HTTP/1.1\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(!plain.is_ok_and(|a| a.starts_with("HTTP/1.1 200")));
    wait_info(&e, "/connections/tls_failed", json!(2));

    // Renewed: the key first, then the certificate. In between, the pair
    // does not match and the old one stays in service.
    replace(&files.key, &key2);
    assert_eq!(https_get(addr, &ca1), Ok(200));
    assert!(
        e.warnings()
            .iter()
            .any(|w| w.contains("does not belong to the certificate")),
        "{:?}",
        e.warnings()
    );
    replace(&files.cert, &cert2);
    assert_eq!(https_get(addr, &ca2), Ok(200));
    assert!(https_get(addr, &ca1).is_err());
    assert!(e.warnings().is_empty(), "{:?}", e.warnings());

    // A broken file: the last good pair serves on, and a warning says why.
    replace(&files.cert, "not a certificate\n");
    assert_eq!(https_get(addr, &ca2), Ok(200));
    let w = e.warnings();
    assert!(
        w.len() == 1
            && w[0].starts_with("metrics.tls_cert: no PEM certificate")
            && w[0].contains(&files.cert.display().to_string()),
        "{w:?}"
    );
    assert_eq!(e.info()["scrapes"], 4);
}
