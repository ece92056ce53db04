//! The Prometheus endpoint against a real Janus and a real Prometheus
//! (Debian's `prometheus` package): Prometheus scrapes the handler every
//! second while sessions end every way, across a SIGKILL and a restart, and
//! its HTTP API must answer the exact counts. The exposition passes
//! `promtool check metrics` and agrees with the Admin API `info`; a port in
//! use and wrong credentials are reported, and tracking runs on.
//!
//! The endpoint's edges, inside Janus: it binds only after Janus's
//! `started`, so `metrics.listen` on Janus's own HTTP or Admin port leaves
//! Janus its API; idle connections held open never delay a scrape; Prometheus
//! scrapes it over HTTPS; `info` shows the port chosen for port 0 and warns
//! about an open `listen` without credentials.
//!
//! What differs by Janus version is asserted by what the rig says of this
//! Janus (the same version the handler reports in `info.tracker.janus_version`):
//! `janus_core_*` only on >= 1.2 (0.x >= 0.14), native `transport_gone`
//! endings on the new generation (1.x >= 1.3.2, 0.x >= 0.15.2).

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ECHOTEST: &str = "janus.plugin.echotest";
const USER: &str = "prometheus";
const PASSWORD: &str = "scrape-me";

fn config(out: &Path, state: &Path, metrics: &str) -> String {
    format!(
        r#"general: {{
    enabled = true
    state_dir = "{state}"
    checkpoint_ms = 500
}}
file: {{
    path = "{out}"
    flush_ms = 50
}}
metrics: {{
    {metrics}
}}
"#,
        state = state.display(),
        out = out.display(),
    )
}

fn metrics_on(port: u16) -> String {
    format!(
        r#"enabled = true
    listen = "127.0.0.1:{port}"
    user = "{USER}"
    password = "{PASSWORD}""#
    )
}

fn version(info: &Value) -> (u32, u32, u32) {
    let v = info["tracker"]["janus_version"]
        .as_str()
        .unwrap_or_else(|| panic!("no janus_version in {info}"));
    let n: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
    (n[0], n[1], n[2])
}

/// `Basic <base64(user:password)>`, with the scheme's name as given.
fn basic(scheme: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("{scheme} {token}")
}

/// GET on the endpoint within `timeout`; (status, Content-Type, body).
fn scrape_within(
    port: u16,
    authorization: Option<&str>,
    accept: Option<&str>,
    timeout: Duration,
) -> (u16, String, String) {
    let mut req = ureq::get(&format!("http://127.0.0.1:{port}/metrics")).timeout(timeout);
    if let Some(a) = authorization {
        req = req.set("Authorization", a);
    }
    if let Some(a) = accept {
        req = req.set("Accept", a);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("scrape within {timeout:?}: {e}"),
    };
    let status = resp.status();
    let ct = resp.header("Content-Type").unwrap_or("").to_string();
    (status, ct, resp.into_string().unwrap())
}

/// GET on the endpoint; (status, Content-Type, body).
fn scrape(port: u16, auth: Option<(&str, &str)>, accept: Option<&str>) -> (u16, String, String) {
    let authorization = auth.map(|(u, p)| basic("Basic", u, p));
    scrape_within(
        port,
        authorization.as_deref(),
        accept,
        Duration::from_secs(5),
    )
}

/// Waits until the endpoint has left the state `waiting` (it
/// binds once the worker has seen Janus's `started`); returns `info`.
fn wait_endpoint(janus: &Janus) -> Value {
    let mut last = Value::Null;
    let settled = wait_until(
        || {
            last = info(janus);
            last["metrics"]["state"] != "waiting"
        },
        Duration::from_secs(20),
    );
    assert!(settled, "the endpoint still waits: {last}");
    last
}

type Samples = BTreeMap<String, f64>;

/// `name{labels}` -> value, from the Prometheus text format.
fn samples(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn get(s: &Samples, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("{series} is not exposed:\n{s:#?}"))
}

/// Every `destroyed` in the file: session -> [(reason, synthetic)].
fn endings(out: &Path) -> BTreeMap<u64, Vec<(String, bool)>> {
    let mut m: BTreeMap<u64, Vec<(String, bool)>> = BTreeMap::new();
    for e in read_jsonl(out) {
        if e["type"] == 1 && e["event"]["name"] == "destroyed" {
            m.entry(e["session_id"].as_u64().unwrap())
                .or_default()
                .push((
                    e["event"]["reason"].as_str().unwrap().to_string(),
                    e["event"]["synthetic"].as_bool().unwrap(),
                ));
        }
    }
    m
}

fn wait_endings(out: &Path, sessions: &[u64]) {
    let done = wait_until(
        || {
            let e = endings(out);
            sessions.iter().all(|s| e.contains_key(s))
        },
        Duration::from_secs(20),
    );
    assert!(done, "not all of {sessions:?} ended: {:?}", endings(out));
}

/// Waits until `info` reports `n` endings in all (the worker publishes its
/// counters when idle), then returns it.
fn wait_info_endings(janus: &Janus, n: u64) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(
        || {
            last = info(janus);
            let total: u64 = last["tracker"]["endings"]
                .as_object()
                .map(|m| m.values().map(|v| v.as_u64().unwrap()).sum())
                .unwrap_or(0);
            total == n
        },
        Duration::from_secs(10),
    );
    assert!(ok, "info never showed {n} endings: {last}");
    last
}

const JOB: &str = r#"job="janus""#;

/// The whole story: two Janus runs (the first killed, the second stopped),
/// every reason, scraped by a real Prometheus.
#[test]
fn prometheus_scrapes_exact_session_counters_from_a_real_janus() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let state = dir.path().join("state");
    let janus_dir = dir.path().join("janus");
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let job = |name: &str, password: &str| ScrapeJob {
        job: name.into(),
        target: target.clone(),
        path: "/metrics".into(),
        basic_auth: Some((USER.into(), password.into())),
        tls_ca: None,
    };
    let prom = Prometheus::start(&[job("janus", PASSWORD), job("wrong", "scrape-mE")]);
    let opts = JanusOptions {
        lifecycleevh_config: Some(config(&out, &state, &metrics_on(port))),
        // Admin requests are then no events: the stream is quiet between
        // two readings.
        http_events: false,
        ..JanusOptions::default()
    };

    // Run 1: request (API and Admin), timeout, transport_gone; 3 left open.
    let mut janus = Janus::start_in(&janus_dir, opts.clone());
    let i = wait_endpoint(&janus);
    let v = version(&i);
    assert_eq!(v, janus.janus_version());
    assert_eq!(i["metrics"]["listening"], true, "{i}");
    let mut ws1 = janus.ws();
    let a = ws1.create_session();
    ws1.attach(a, ECHOTEST);
    ws1.destroy(a);
    let b = ws1.create_session();
    janus.admin().destroy_session(b);
    let c = ws1.create_session();
    let r = janus
        .admin()
        .session_request(c, json!({"janus": "set_session_timeout", "timeout": 1}));
    assert_eq!(r["janus"], "success", "{r}");
    let mut ws2 = janus.ws();
    let d = ws2.create_session();
    ws2.attach(d, ECHOTEST);
    let e = ws2.create_session();
    ws2.drop_tcp();
    let live1 = ws1.create_session();
    ws1.attach(live1, ECHOTEST);
    let live2 = ws1.create_session();
    let live3 = janus.http().create_session();
    wait_endings(&out, &[a, b, c, d, e]);
    wait_info_endings(&janus, 5);

    let since = unix_now();
    prom.wait_scraped_after(
        &format!("janus_sessions_open{{{JOB}}}"),
        since,
        Duration::from_secs(20),
    );
    prom.wait_scraped_after(r#"up{job="wrong"}"#, since, Duration::from_secs(20));
    let q = |promql: &str| prom.value(promql);
    assert_eq!(q(&format!("up{{{JOB}}}")), 1.0);
    assert_eq!(
        q(r#"up{job="wrong"}"#),
        0.0,
        "wrong credentials must be refused"
    );
    assert_eq!(q(&format!("janus_sessions_open{{{JOB}}}")), 3.0);
    assert_eq!(q(&format!("janus_sessions_created_total{{{JOB}}}")), 8.0);
    let ended = |reason: &str, synthetic: bool| {
        q(&format!(
            r#"janus_sessions_ended_total{{{JOB},reason="{reason}",synthetic="{synthetic}"}}"#
        ))
    };
    assert_eq!(ended("request", false), 2.0);
    assert_eq!(ended("request", true), 0.0);
    assert_eq!(ended("timeout", true), 1.0);
    // Janus 1.x >= 1.3.2 and 0.x >= 0.15.2 end a transport-gone session itself.
    let native_gone = janus.ends_sessions_on_transport_gone();
    assert_eq!(ended("transport_gone", !native_gone), 2.0);
    assert_eq!(ended("transport_gone", native_gone), 0.0);
    assert_eq!(q(&format!("sum(janus_sessions_ended_total{{{JOB}}})")), 5.0);
    let count = |reason: &str| {
        q(&format!(
            r#"janus_session_duration_seconds_count{{{JOB},reason="{reason}"}}"#
        ))
    };
    assert_eq!(count("request"), 2.0);
    assert_eq!(count("timeout"), 1.0);
    assert_eq!(count("transport_gone"), 2.0);
    assert_eq!(
        q(&format!(
            r#"janus_session_duration_seconds_bucket{{{JOB},reason="request",le="+Inf"}}"#
        )),
        2.0
    );
    // Every session here lived well under a minute.
    assert_eq!(
        q(&format!(
            r#"sum(janus_session_duration_seconds_bucket{{{JOB},le="60.0"}})"#
        )),
        5.0
    );
    assert_eq!(
        q(&format!(
            r#"janus_handles_open{{{JOB},plugin="{ECHOTEST}"}}"#
        )),
        1.0
    );
    assert_eq!(
        q(&format!(
            r#"janus_transport_connections_open{{{JOB},transport="janus.transport.websockets"}}"#
        )),
        1.0
    );
    let version_label = format!("{}.{}.{}", v.0, v.1, v.2);
    assert_eq!(
        q(&format!(
            r#"janus_info{{{JOB},version="{version_label}",server_name="RigJanus"}}"#
        )),
        1.0
    );
    assert_eq!(
        q(&format!(
            r#"sum(lifecycleevh_events_dropped_total{{{JOB},where="channel"}})"#
        )),
        0.0
    );
    assert!(
        q(&format!(
            "lifecycleevh_crash_state_checkpoint_age_seconds{{{JOB}}}"
        )) < 30.0
    );
    // Janus's own count: only Janus >= 1.2 (0.x >= 0.14) reports it (every 15 s).
    let core = format!("janus_core_sessions{{{JOB}}}");
    if janus.reports_core_status() {
        prom.wait_scraped_after(&core, since, Duration::from_secs(40));
        assert_eq!(q(&core), 3.0);
        assert_eq!(
            q(&format!(
                "janus_core_sessions{{{JOB}}} - janus_sessions_open{{{JOB}}}"
            )),
            0.0
        );
    } else {
        assert!(
            prom.query(&core).is_empty(),
            "absent on Janus < 1.2 (0.x < 0.14), not zero"
        );
        assert!(
            prom.query(&format!(r#"{{__name__=~"janus_core_.*",{JOB}}}"#))
                .is_empty()
        );
    }

    // The exposition itself: promtool's checks, and the same numbers as info.
    let (status, _, _) = scrape(port, None, None);
    assert_eq!(status, 401);
    let (status, _, _) = scrape(port, Some((USER, "scrape-mE")), None);
    assert_eq!(status, 401);
    // The scheme's name in any case (RFC 7617).
    for scheme in ["basic", "BASIC"] {
        let authorization = basic(scheme, USER, PASSWORD);
        let (status, _, text) =
            scrape_within(port, Some(&authorization), None, Duration::from_secs(5));
        assert_eq!(status, 200, "{scheme}: {text}");
    }
    let (status, ct, om) = scrape(
        port,
        Some((USER, PASSWORD)),
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    // A scrape between two readings of info with the same event counts
    // (Janus >= 1.2 sends a status update every 15 s: then read again).
    let mut read = None;
    let quiet = wait_until(
        || {
            let before = info(&janus);
            let scraped = scrape(port, Some((USER, PASSWORD)), None);
            let after = info(&janus);
            let quiet = before["events"] == after["events"];
            read = Some((scraped, after));
            quiet
        },
        Duration::from_secs(60),
    );
    let ((status, ct, text), after) = read.expect("read at least once");
    assert!(quiet, "the stream was never quiet around a scrape");
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    if let Err(complaints) = promtool_check_metrics(&text) {
        panic!("promtool check metrics:\n{complaints}\non:\n{text}");
    }
    info_agrees_with_exposition(&after, &samples(&text));
    assert!(after["metrics"]["unauthorized"].as_u64().unwrap() >= 2);
    assert!(after["metrics"]["scrapes"].as_u64().unwrap() > 0);

    // A crash: the 3 open sessions are ended at the next start.
    janus.kill();
    let opts2 = JanusOptions {
        reclaim_session_timeout: 2,
        ..opts
    };
    let mut janus = Janus::start_in(&janus_dir, opts2);
    // Run 2: gateway_restart for the 3, reclaim_expired, then 2 open at SIGINT.
    let mut ws3 = janus.ws();
    let f = ws3.create_session();
    ws3.attach(f, ECHOTEST);
    ws3.drop_tcp();
    let mut ws4 = janus.ws();
    let live4 = ws4.create_session();
    let live5 = janus.http().create_session();
    wait_endings(&out, &[live1, live2, live3, f]);
    wait_info_endings(&janus, 4);
    let since = unix_now();
    prom.wait_scraped_after(
        &format!("janus_sessions_open{{{JOB}}}"),
        since,
        Duration::from_secs(20),
    );
    assert_eq!(ended("gateway_restart", true), 3.0);
    assert_eq!(ended("reclaim_expired", true), 1.0);
    assert_eq!(count("gateway_restart"), 3.0);
    assert_eq!(count("reclaim_expired"), 1.0);
    assert_eq!(
        q(&format!(
            "lifecycleevh_crash_state_recovered_total{{{JOB}}}"
        )),
        3.0
    );
    assert_eq!(q(&format!("janus_sessions_created_total{{{JOB}}}")), 3.0);
    // Open before SIGINT.
    assert_eq!(q(&format!("janus_sessions_open{{{JOB}}}")), 2.0);
    // Prometheus kept run 1's counts: every reason it could scrape.
    let most = |reason: &str| {
        q(&format!(
            r#"max(max_over_time(janus_sessions_ended_total{{{JOB},reason="{reason}"}}[10m]))"#
        ))
    };
    assert_eq!(most("request"), 2.0);
    assert_eq!(most("timeout"), 1.0);
    assert_eq!(most("transport_gone"), 2.0);
    assert_eq!(
        q(&format!(
            r#"max_over_time(janus_sessions_created_total{{{JOB}}}[10m])"#
        )),
        8.0
    );

    assert!(janus.stop().success());
    drop(ws4);
    // The shutdown endings reached the file (no scrape can see them: the
    // endpoint stops with Janus).
    let e = endings(&out);
    for s in [live4, live5] {
        assert_eq!(e[&s], vec![("shutdown".to_string(), true)], "{s}");
    }
    for s in [a, b] {
        assert_eq!(e[&s], vec![("request".to_string(), false)]);
    }
    assert_eq!(e[&c][0].0, "timeout");
    assert_eq!(e[&f][0].0, "reclaim_expired");
    for s in [live1, live2, live3] {
        assert_eq!(e[&s], vec![("gateway_restart".to_string(), true)]);
    }
    assert!(e.values().all(|v| v.len() == 1), "{e:?}");
}

/// The same numbers through both doors.
fn info_agrees_with_exposition(info: &Value, s: &Samples) {
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")) as f64;
    let t = &info["tracker"];
    assert_eq!(get(s, "janus_sessions_open"), n(&t["live_sessions"]));
    assert_eq!(get(s, "janus_sessions_created_total"), n(&t["created"]));
    for (reason, total) in t["endings"].as_object().unwrap() {
        let synthetic = n(&t["synthetic_endings"][reason]);
        assert_eq!(
            get(
                s,
                &format!(r#"janus_sessions_ended_total{{reason="{reason}",synthetic="true"}}"#)
            ),
            synthetic,
            "{reason}"
        );
        assert_eq!(
            get(
                s,
                &format!(r#"janus_sessions_ended_total{{reason="{reason}",synthetic="false"}}"#)
            ),
            n(total) - synthetic,
            "{reason}"
        );
        assert_eq!(
            get(
                s,
                &format!(r#"janus_session_duration_seconds_count{{reason="{reason}"}}"#)
            ),
            n(&t["durations"][reason]["count"]),
            "{reason}"
        );
    }
    for (plugin, open) in t["handles"].as_object().unwrap() {
        assert_eq!(
            get(s, &format!(r#"janus_handles_open{{plugin="{plugin}"}}"#)),
            n(open)
        );
    }
    let ev = &info["events"];
    assert_eq!(
        get(s, "lifecycleevh_events_received_total"),
        n(&ev["received"])
    );
    let bulk: f64 = ["media", "plugins", "webrtc", "external"]
        .iter()
        .map(|t| {
            let series =
                format!(r#"lifecycleevh_events_dropped_total{{where="channel",type="{t}"}}"#);
            assert_eq!(get(s, &series), n(&ev["dropped_by_type"][t]), "{series}");
            get(s, &series)
        })
        .sum();
    assert_eq!(bulk, n(&ev["dropped"]));
    assert_eq!(
        get(
            s,
            r#"lifecycleevh_events_dropped_total{where="channel",type="lifecycle"}"#
        ),
        n(&ev["dropped_lifecycle"])
    );
    assert_eq!(
        get(s, "lifecycleevh_events_forwarded_total"),
        n(&ev["forwarded"])
    );
    assert_eq!(
        get(s, "lifecycleevh_events_suppressed_total"),
        n(&ev["suppressed"])
    );
    for (ty, count) in ev["processed_by_type"].as_object().unwrap() {
        assert_eq!(
            get(
                s,
                &format!(r#"lifecycleevh_events_processed_total{{type="{ty}"}}"#)
            ),
            n(count)
        );
    }
    let file = &info["sinks"]["file"];
    assert_eq!(
        get(
            s,
            r#"lifecycleevh_sink_events_delivered_total{sink="file"}"#
        ),
        n(&file["sent"])
    );
    assert_eq!(
        get(s, r#"lifecycleevh_sink_events_accepted_total{sink="file"}"#),
        n(&file["accepted"])
    );
    assert_eq!(
        get(s, r#"lifecycleevh_sink_queue_depth{sink="file"}"#),
        n(&file["queued"])
    );
    for (reason, injected) in info["janus_bus"]["injected_by_reason"].as_object().unwrap() {
        if let Some(v) = s.get(&format!(
            r#"lifecycleevh_bus_injected_total{{reason="{reason}"}}"#
        )) {
            assert_eq!(*v, n(injected), "{reason}");
        } else {
            assert_eq!(n(injected), 0.0, "{reason}");
        }
    }
    assert_eq!(
        get(s, "lifecycleevh_crash_state_recovered_total"),
        n(&info["recovery"]["recovered_sessions"])
    );
}

/// A port already in use: said in Janus's log and in `info`; the handler
/// tracks and writes as before.
#[test]
fn a_metrics_port_in_use_is_reported_and_tracking_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config(
            &out,
            &dir.path().join("state"),
            &format!("enabled = true\n    listen = \"{addr}\""),
        )),
        ..JanusOptions::default()
    });
    assert!(
        janus.wait_log(
            &format!("[lifecycleevh] metrics: cannot listen on {addr}"),
            Duration::from_secs(5)
        ),
        "no log line about the port"
    );
    let i = info(&janus);
    assert_eq!(i["metrics"]["listening"], false, "{i}");
    let why = i["metrics"]["error"].as_str().unwrap();
    assert!(
        why.contains(&addr.to_string()) && why.contains("in use"),
        "{why}"
    );
    assert!(
        i["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("Prometheus endpoint is off")),
        "{i}"
    );
    // Tracking and the file sink run on.
    let mut ws = janus.ws();
    let s = ws.create_session();
    ws.destroy(s);
    wait_endings(&out, &[s]);
    assert_eq!(endings(&out)[&s], vec![("request".to_string(), false)]);
    assert!(janus.stop().success());
    drop(taken);
}

/// The port of a Janus API URL (`http://127.0.0.1:<port>/...`).
fn port_of(url: &str) -> u16 {
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

/// Janus initialises its event handlers before its transports: an endpoint
/// bound in `init` took Janus's port, and Janus ran without that API
/// (`[FATAL] Couldn't start webserver`). Bound after Janus's `started`,
/// the endpoint is what goes without, and says so.
#[test]
fn janus_keeps_its_http_and_admin_ports_when_metrics_listen_names_them() {
    for (api, placeholder) in [("HTTP", JANUS_HTTP_PORT), ("Admin", JANUS_ADMIN_PORT)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        // The rig waits for Janus's HTTP API and WebSocket port; it gives up
        // when a transport logs that it could not bind.
        let janus = Janus::start(JanusOptions {
            lifecycleevh_config: Some(config(
                &out,
                &dir.path().join("state"),
                &format!("enabled = true\n    listen = \"127.0.0.1:{placeholder}\""),
            )),
            ..JanusOptions::default()
        });
        let port = match api {
            "HTTP" => port_of(&janus.http_url()),
            _ => port_of(&janus.admin_url()),
        };
        // The Admin API answers, and the handler reports the conflict.
        let i = wait_endpoint(&janus);
        let m = &i["metrics"];
        assert_eq!(m["state"], "failed", "{api}: {i}");
        assert_eq!(m["listening"], false);
        assert_eq!(m["address"], Value::Null);
        let why = m["error"].as_str().unwrap();
        assert!(
            why.starts_with(&format!("cannot listen on 127.0.0.1:{port}: "))
                && why.contains("in use"),
            "{api}: {why}"
        );
        assert!(
            i["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w == &json!(format!("the Prometheus endpoint is off: {why}"))),
            "{i}"
        );
        // Janus's logger writes its file on a thread of its own: the line
        // may come after info said it.
        assert!(
            janus.wait_log(
                &format!("[lifecycleevh] metrics: cannot listen on 127.0.0.1:{port}"),
                Duration::from_secs(10)
            ),
            "{api}: no log line about the port"
        );
        let log = janus.log();
        assert!(!log.contains("Couldn't start"), "{api}: {log}");
        // Both APIs serve: a session made over HTTP, destroyed over Admin.
        let s = janus.http().create_session();
        janus.admin().destroy_session(s);
        wait_endings(&out, &[s]);
        assert_eq!(endings(&out)[&s], vec![("request".to_string(), false)]);
        let mut janus = janus;
        assert!(janus.stop().success());
    }
}

/// A client holding connections open without a word never delays a
/// scrape. The endpoint before served one connection at a time, each for
/// up to 1 s: 12 idle connections cost a scrape 12 s (Prometheus's default
/// timeout is 10 s), 200 cost it 135 s. The figures are in BENCHMARKS.md.
#[test]
fn idle_connections_never_delay_a_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config(
            &dir.path().join("events.jsonl"),
            &dir.path().join("state"),
            &metrics_on(port),
        )),
        ..JanusOptions::default()
    });
    let i = wait_endpoint(&janus);
    assert_eq!(i["metrics"]["listening"], true, "{i}");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let authorization = basic("Basic", USER, PASSWORD);
    for n in [12, 200] {
        let idle: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let t = Instant::now();
        // Generous for a loaded machine; the old endpoint took 12 s.
        let (status, _, text) =
            scrape_within(port, Some(&authorization), None, Duration::from_secs(3));
        let took = t.elapsed();
        eprintln!("janus_metrics: a scrape beside {n} idle connections took {took:?}");
        assert_eq!(status, 200);
        assert!(text.contains("\njanus_sessions_open 0\n"), "{text}");
        drop(idle);
    }
    // 200 idle connections and the scrape on 64 places: 137 made room (by
    // now, or once every connection has been accepted); none was refused.
    let mut c = Value::Null;
    let made_room = wait_until(
        || {
            c = info(&janus)["metrics"]["connections"].clone();
            c["evicted"].as_u64().unwrap() + c["timed_out"].as_u64().unwrap() >= 137
        },
        Duration::from_secs(10),
    );
    assert!(made_room, "{c}");
    assert_eq!(c["refused"], 0, "{c}");
    assert!(
        c["peak"].as_u64().unwrap() <= c["max"].as_u64().unwrap(),
        "{c}"
    );
}

/// `listen` on every interface, port 0, no credentials: `info` shows the
/// port the system chose, and the log and `info.warnings` say that anyone
/// who reaches it reads the metrics.
#[test]
fn an_open_listen_on_port_0_shows_its_port_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config(
            &dir.path().join("events.jsonl"),
            &dir.path().join("state"),
            "enabled = true\n    listen = \"0.0.0.0:0\"",
        )),
        ..JanusOptions::default()
    });
    let i = wait_endpoint(&janus);
    let m = &i["metrics"];
    assert_eq!(m["listen"], "0.0.0.0:0", "{i}");
    let addr: SocketAddr = m["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {i}"))
        .parse()
        .unwrap();
    assert!(addr.ip().is_unspecified() && addr.port() != 0, "{addr}");
    let (status, _, _) = scrape(addr.port(), None, None);
    assert_eq!(status, 200);
    let warning = "metrics.listen = 0.0.0.0:0 is every interface and metrics.user and metrics.password are not set";
    assert!(
        i["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with(warning)),
        "{i}"
    );
    assert!(
        janus.wait_log(
            &format!("[lifecycleevh] {warning}"),
            Duration::from_secs(10)
        ),
        "not in the log"
    );
}

/// Threads of the process named `name` (as /proc shows it, 15 bytes at most).
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim_end().starts_with(name))
        .count()
}

/// Prometheus scrapes over HTTPS (`tls_config` with the CA), with basic
/// authentication; a job that does not trust the certificate is down. The
/// endpoint is one thread of Janus's, HTTPS or not.
#[test]
fn prometheus_scrapes_over_https() {
    let pki = TestPki::new("lifecycleevh test CA");
    let other = TestPki::new("another CA");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let port = free_port();
    let job = |name: &str, ca: &Path| ScrapeJob {
        job: name.into(),
        target: format!("127.0.0.1:{port}"),
        path: "/metrics".into(),
        basic_auth: Some((USER.into(), PASSWORD.into())),
        tls_ca: Some(ca.to_path_buf()),
    };
    let prom = Prometheus::start(&[job("janus", &pki.ca), job("untrusted", &other.ca)]);
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config(
            &out,
            &dir.path().join("state"),
            &format!(
                "{}\n    tls_cert = \"{}\"\n    tls_key = \"{}\"",
                metrics_on(port),
                pki.cert.display(),
                pki.key.display()
            ),
        )),
        http_events: false,
        ..JanusOptions::default()
    });
    let i = wait_endpoint(&janus);
    assert_eq!(i["metrics"]["listening"], true, "{i}");
    assert_eq!(i["metrics"]["tls"], true, "{i}");
    assert!(janus.wait_log(
        &format!(
            "[lifecycleevh] metrics: Prometheus endpoint on https://127.0.0.1:{port}/metrics (basic authentication)"
        ),
        Duration::from_secs(10)
    ));
    let mut ws = janus.ws();
    let s = ws.create_session();
    ws.destroy(s);
    wait_endings(&out, &[s]);
    wait_info_endings(&janus, 1);
    let since = unix_now();
    prom.wait_scraped_after(
        r#"janus_sessions_created_total{job="janus"}"#,
        since,
        Duration::from_secs(20),
    );
    prom.wait_scraped_after(r#"up{job="untrusted"}"#, since, Duration::from_secs(20));
    assert_eq!(prom.value(r#"up{job="janus"}"#), 1.0);
    assert_eq!(prom.value(r#"up{job="untrusted"}"#), 0.0);
    assert_eq!(
        prom.value(r#"janus_sessions_created_total{job="janus"}"#),
        1.0
    );
    assert_eq!(
        prom.value(r#"janus_sessions_ended_total{job="janus",reason="request",synthetic="false"}"#),
        1.0
    );
    // The untrusting job's handshakes failed (counted as the endpoint
    // reads the client's alert).
    let mut i = Value::Null;
    let counted = wait_until(
        || {
            i = info(&janus);
            i["metrics"]["connections"]["tls_failed"].as_u64().unwrap() >= 1
        },
        Duration::from_secs(10),
    );
    assert!(counted, "{i}");
    // Plain HTTP to the HTTPS port gets no exposition.
    let plain = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .call();
    assert!(plain.is_err(), "plain HTTP was answered");
    // One thread for the endpoint, and no runtime threads besides it.
    assert_eq!(threads_named(janus.pid(), "lcevh metrics"), 1);
    assert_eq!(threads_named(janus.pid(), "tokio"), 0);
    assert!(janus.stop().success());
}
