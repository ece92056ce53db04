//! The broker sinks against real brokers (Debian's RabbitMQ, Mosquitto and
//! NATS server) and a real Janus: what the consumers get, and an outage of
//! each broker (a 4 s stall, then SIGKILL with messages in flight, 10 s
//! down while sessions go on, a restart on the same data, then Janus killed
//! while the broker is down and both restarted) that loses no session's `created` or `destroyed`
//! (and stores each once in a JetStream stream), where Janus's stock
//! rabbitmqevh and mqttevh, beside it in the same Janus, lose events.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// `n` sessions made, a handle attached and destroyed, over one WebSocket.
fn churn(janus: &Janus, n: usize) -> Vec<u64> {
    let mut ws = janus.ws();
    (0..n)
        .map(|_| {
            let s = ws.create_session();
            ws.attach(s, "janus.plugin.echotest");
            ws.destroy(s);
            s
        })
        .collect()
}

/// RabbitMQ: a churn of sessions reaches a durable queue, grouped or not,
/// in each json style, with every event once and the sink's health in `info`.
#[test]
fn rabbitmq_sink_delivers_to_a_durable_queue() {
    let broker = Broker::start(BrokerKind::RabbitMq);
    let consumer = AmqpConsumer::start(broker.port(), &[("grouped", true), ("single", true)]);
    let metrics_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let config = format!(
        "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\n\
         rabbitmq: {{ host = \"127.0.0.1\", port = {port}, route_key = \"grouped\", queue_name = \"grouped\", \
         spool_dir = \"{spool}\" }}\n\
         rabbitmq-single: {{ host = \"127.0.0.1\", port = {port}, exchange = \"lcevh\", exchange_type = \"direct\", \
         route_key = \"single\", queue_name = \"single\", grouping = false, json = \"indented\", events = \"sessions\" }}\n\
         metrics: {{ enabled = true, listen = \"127.0.0.1:{metrics}\" }}\n",
        out.display(),
        port = broker.port(),
        spool = dir.path().join("spool").display(),
        metrics = metrics_port,
    );
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        ..JanusOptions::default()
    });
    let sessions = churn(&janus, 20);
    let all_ended = |events: &[Value]| {
        let t = tally(events);
        sessions
            .iter()
            .all(|s| t.get(s).is_some_and(|(c, d)| *c == 1 && d.len() == 1))
    };
    let got = consumer.expect(
        "every session's created and destroyed in both queues",
        |g| all_ended(&g.from("grouped")) && all_ended(&g.from("single")),
        Duration::from_secs(30),
    );
    // The file has what the grouped queue has: every event, once, in order.
    let file: Vec<Value> = read_jsonl(&out);
    let grouped = got.from("grouped");
    assert!(file.len() >= grouped.len(), "the file is behind the queue");
    assert_eq!(grouped, file[..grouped.len()].to_vec());
    // Grouping: fewer messages than events; without: a message per event,
    // and only the session events.
    let single = got.from("single");
    assert!(single.iter().all(|e| e["type"] == 1));
    assert_eq!(single.len(), 40);
    // A confirmation can come after the consumer got the message.
    let i = expect_info(
        &janus,
        "every event confirmed",
        |i| {
            i["sinks"]["rabbitmq-single"]["sent"] == 40
                && i["sinks"]["rabbitmq"]["spool"]["pending"] == 0
        },
        Duration::from_secs(10),
    );
    let s = &i["sinks"]["rabbitmq"];
    assert_eq!(s["type"], "rabbitmq");
    assert_eq!(s["connected"], true, "{s}");
    assert_eq!(s["connections"], 1, "{s}");
    assert!(
        s["broker"].as_str().unwrap().starts_with("RabbitMQ 3."),
        "{s}"
    );
    assert_eq!(s["spool"]["pending"], 0, "{s}");
    assert_eq!(s["retrying"], 0, "{s}");
    assert_eq!(
        s["broker_url"],
        format!("amqp://guest@127.0.0.1:{}/%2F", broker.port())
    );
    // The same health in the metrics.
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    // (The endpoint listens once Janus has started: long since, here.)
    let mut text = String::new();
    assert!(
        wait_until(
            || match http_request("GET", &url, None) {
                Ok(r) => {
                    text = r.text();
                    true
                }
                Err(_) => false,
            },
            Duration::from_secs(10),
        ),
        "the metrics endpoint never answered"
    );
    for line in [
        "lifecycleevh_sink_connected{sink=\"rabbitmq\"} 1",
        "lifecycleevh_sink_connections_total{sink=\"rabbitmq\"} 1",
        "lifecycleevh_sink_events_delivered_total{sink=\"rabbitmq-single\"} 40",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(janus.stop().success());
    drop(consumer);
}

/// The session lifecycle events among `events`: (session, name).
fn lifecycle_events(events: &[Value]) -> BTreeSet<(u64, String)> {
    events
        .iter()
        .filter(|e| e["type"] == 1)
        .filter_map(|e| {
            Some((
                e["session_id"].as_u64()?,
                e["event"]["name"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Sessions made by [`Churn`]: id and when `create` was answered.
type Made = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Sessions coming and going on a Janus in the background, ended every
/// way: a `destroy` request, a WebSocket dropped, an Admin API
/// `destroy_session`, a session timeout (WebSocket and HTTP), and some left
/// open for whatever comes (a SIGKILL, a shutdown).
struct Churn {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Churn {
    fn start(janus: &Janus, made: &Made) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        // WebSocket: destroyed by request, transport gone, left to time out
        // or to the end.
        let (url, st, m) = (janus.ws_url(), stop.clone(), made.clone());
        threads.push(std::thread::spawn(move || {
            let mut round = 0u64;
            let mut kept = Vec::new();
            while !st.load(Ordering::Relaxed) {
                let mut ws = WsClient::connect(&url);
                let a = ws.create_session();
                m.lock().unwrap().push((a, Instant::now()));
                ws.attach(a, "janus.plugin.echotest");
                ws.destroy(a);
                let b = ws.create_session();
                m.lock().unwrap().push((b, Instant::now()));
                if round % 4 == 3 {
                    kept.push(ws); // open: it times out, or ends with Janus
                } else {
                    ws.drop_tcp();
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
            // Still open: ended by a timeout, a SIGKILL or a shutdown.
            std::mem::forget(kept);
        }));
        // HTTP: destroyed through the Admin API, or left to time out.
        let (http, admin, st, m) = (janus.http(), janus.admin(), stop.clone(), made.clone());
        threads.push(std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let a = http.create_session();
                m.lock().unwrap().push((a, Instant::now()));
                admin.destroy_session(a);
                let b = http.create_session();
                m.lock().unwrap().push((b, Instant::now()));
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
        Churn { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("churn thread");
        }
    }
}

/// Sessions made and destroyed as fast as Janus answers (HTTP), so that the
/// sink has messages in flight.
fn burst(janus: &Janus, made: &Made) {
    let http = janus.http();
    for _ in 0..20 {
        let s = http.create_session();
        made.lock().unwrap().push((s, Instant::now()));
        http.destroy(s);
    }
}

/// Where a broker test's consumer reads what reached the broker: the
/// events our sink published, and (RabbitMQ, MQTT) the stock handler's.
enum Reader {
    Amqp(AmqpConsumer),
    Mqtt(MqttConsumer),
    /// The JetStream stream `LCEVH` on the NATS server on this port.
    Nats(u16),
}

impl Reader {
    fn ours(&self) -> Vec<Value> {
        match self {
            Reader::Amqp(c) => c.got().from("lcevh"),
            Reader::Mqtt(c) => c.under("lcevh/"),
            Reader::Nats(port) => stream_messages(*port, "LCEVH")
                .unwrap_or_default()
                .into_iter()
                .map(|(_, e)| e)
                .collect(),
        }
    }

    fn stock(&self) -> Option<Vec<Value>> {
        match self {
            Reader::Amqp(c) => Some(c.got().from("stock")),
            Reader::Mqtt(c) => Some(c.under("stock/")),
            // Janus has no NATS event handler.
            Reader::Nats(_) => None,
        }
    }
}

/// One broker's outage test, on the Janus of this run.
struct Outage {
    kind: BrokerKind,
    /// Our sink's category, for the broker on `port`.
    sink: fn(port: u16) -> String,
    /// The stock handler beside it, for the broker on `port`.
    stock: Option<fn(port: u16) -> StockHandler>,
    reader: fn(&Broker) -> Reader,
    /// Exactly once (JetStream), or at least once.
    exactly_once: bool,
}

impl Outage {
    fn run(&self) {
        let t0 = Instant::now();
        let mut broker = Broker::start(self.kind);
        let reader = (self.reader)(&broker);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        let config = format!(
            "general: {{ enabled = true, state_dir = \"{}\", checkpoint_ms = 200 }}\n\
             file: {{ path = \"{}\" }}\n{}\n",
            dir.path().join("state").display(),
            out.display(),
            (self.sink)(broker.port()),
        )
        .replace("SPOOL_DIR", &dir.path().join("spool").display().to_string());
        // The sink's category: its name in `info`.
        let name = config
            .lines()
            .filter_map(|l| l.split_once(": {").map(|(c, _)| c.trim().to_string()))
            .find(|c| c != "general" && c != "file")
            .unwrap();
        let opts = JanusOptions {
            lifecycleevh_config: Some(config),
            session_timeout: 3,
            stock_handlers: self
                .stock
                .map(|s| vec![s(broker.port())])
                .unwrap_or_default(),
            ..JanusOptions::default()
        };
        let janus_dir = dir.path().join("janus");
        std::fs::create_dir_all(&janus_dir).unwrap();
        let made: Made = Arc::new(Mutex::new(Vec::new()));
        let mut janus = Janus::start_in(&janus_dir, opts.clone());
        // What happened when, for a failure's message.
        let mut phases: Vec<(&str, Instant)> = vec![("start", Instant::now())];

        // Before: the broker is up.
        let churn = Churn::start(&janus, &made);
        std::thread::sleep(Duration::from_secs(3));
        // The broker stalls for longer than the sink's timeout_ms (3 s):
        // attempts fail, and what they sent is stored when it resumes, so
        // that the sink sends again what the broker has.
        burst(&janus, &made);
        phases.push(("stall", Instant::now()));
        broker.freeze(Duration::from_secs(4));
        phases.push(("stall over", Instant::now()));
        std::thread::sleep(Duration::from_secs(2));
        // The broker is killed with messages in flight, unconfirmed, and
        // is down for 10 s while sessions go on.
        churn.stop();
        self.kill_unconfirmed(&mut broker, &janus, &made, &reader, &name, &out);
        phases.push(("broker killed", Instant::now()));
        let churn = Churn::start(&janus, &made);
        let down = Instant::now();
        std::thread::sleep(Duration::from_secs(10));
        let during_outage: Vec<u64> = made
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, at)| *at > down)
            .map(|(s, _)| *s)
            .collect();
        broker.restart();
        phases.push(("broker back", Instant::now()));
        let i = info(&janus);
        let sink = &i["sinks"][name.as_str()];
        assert!(sink["spool"]["pending"].as_u64().unwrap() > 0, "{sink}");
        // After: the broker is back, sessions go on.
        std::thread::sleep(Duration::from_secs(3));
        churn.stop();
        // The broker is killed again (messages in flight), and Janus is
        // killed while it is down, once every event of the churn is in the spool.
        self.kill_unconfirmed(&mut broker, &janus, &made, &reader, &name, &out);
        phases.push(("broker killed again", Instant::now()));
        let file_accepted = |i: &Value| i["sinks"]["file"]["accepted"].clone();
        assert!(
            wait_until(
                || {
                    let i = info(&janus);
                    i["sinks"][name.as_str()]["accepted"] == file_accepted(&i)
                        && tally(&read_jsonl(&out)).len() >= made.lock().unwrap().len()
                },
                Duration::from_secs(20)
            ),
            "the sinks did not take the churn's events"
        );
        janus.kill();
        phases.push(("Janus killed", Instant::now()));
        broker.restart();
        let mut janus = Janus::start_in(&janus_dir, opts.clone());
        phases.push(("both back", Instant::now()));
        // A few more sessions, open when Janus stops: ended by the shutdown.
        let mut ws = janus.ws();
        for _ in 0..3 {
            let s = ws.create_session();
            made.lock().unwrap().push((s, Instant::now()));
        }
        let http = janus.http();
        let s = http.create_session();
        made.lock().unwrap().push((s, Instant::now()));
        let sessions: Vec<u64> = made.lock().unwrap().iter().map(|(s, _)| *s).collect();
        // Every session's created and destroyed reach the broker (those the
        // SIGKILL left open end with gateway_restart when Janus is back).
        let complete = |events: &[Value]| {
            let t = tally(events);
            sessions
                .iter()
                .all(|s| t.get(s).is_some_and(|(c, d)| *c >= 1 && !d.is_empty()))
        };
        let open_at_end = 4;
        let before_stop = |events: &[Value]| {
            let t = tally(events);
            sessions[..sessions.len() - open_at_end]
                .iter()
                .all(|s| t.get(s).is_some_and(|(c, d)| *c >= 1 && !d.is_empty()))
        };
        assert!(
            wait_until(|| before_stop(&reader.ours()), Duration::from_secs(60)),
            "not every session reached the broker: {}",
            missing(&reader.ours(), &made, &phases)
        );
        assert!(janus.stop().success());
        drop(ws);
        assert!(
            wait_until(|| complete(&reader.ours()), Duration::from_secs(30)),
            "not every session reached the broker: {}",
            missing(&reader.ours(), &made, &phases)
        );
        let ours = reader.ours();
        let t = tally(&ours);
        let mut reasons: HashMap<String, usize> = HashMap::new();
        for s in &sessions {
            let (c, d) = &t[s];
            if self.exactly_once {
                assert_eq!((*c, d.len()), (1, 1), "session {s}: {d:?}");
            }
            *reasons.entry(d[0].clone()).or_default() += 1;
        }
        // Sessions ended every way.
        for reason in ["request", "timeout", "gateway_restart", "shutdown"] {
            assert!(
                reasons.contains_key(reason),
                "no {reason} ending: {reasons:?}"
            );
        }
        let copies = ours.iter().filter(|e| e["type"] == 1).count();
        eprintln!(
            "{:?} outage on Janus {}: {} sessions ({} during the outage), endings {reasons:?}, \
             {copies} session events received, in {:.0} s",
            self.kind,
            JanusTarget::current(),
            sessions.len(),
            during_outage.len(),
            t0.elapsed().as_secs_f64()
        );
        // The stock handler lost every session made while the broker was down.
        if let Some(stock) = reader.stock() {
            let st = tally(&stock);
            let lost_created: Vec<u64> = sessions
                .iter()
                .filter(|s| st.get(s).is_none_or(|(c, _)| *c == 0))
                .copied()
                .collect();
            let lost_destroyed = sessions
                .iter()
                .filter(|s| st.get(s).is_none_or(|(_, d)| d.is_empty()))
                .count();
            eprintln!(
                "stock handler: lost {} created and {lost_destroyed} destroyed of {} sessions",
                lost_created.len(),
                sessions.len()
            );
            assert!(!during_outage.is_empty());
            self.check_stock(&lost_created, &during_outage);
        }
    }

    /// Kills the broker with messages in flight that it has not
    /// confirmed: the broker is paused (SIGSTOP), a burst of sessions is
    /// published into its sockets, and it is killed. A sink that took a
    /// message for delivered before the broker confirmed it loses them.
    ///
    /// Mosquitto acknowledges a message before it is on disk (it saves its
    /// state every `autosave_interval`), so a SIGKILL can lose messages it
    /// acknowledged and had not passed on to the consumer yet: the
    /// broker's loss, not the sink's. With Mosquitto, the broker is paused
    /// only once the consumer has every event the sink counted confirmed.
    fn kill_unconfirmed(
        &self,
        broker: &mut Broker,
        janus: &Janus,
        made: &Made,
        reader: &Reader,
        name: &str,
        out: &Path,
    ) {
        let mut tries = 0;
        loop {
            broker.pause();
            if self.kind != BrokerKind::Mosquitto {
                break;
            }
            // What the sink is done with (confirmed, or given up: never a
            // lifecycle event, spooled) is the start of what the file has,
            // in the same order: its lifecycle events must have come.
            let i = info(janus);
            let s = &i["sinks"][name];
            let done = ["sent", "failed", "dropped"]
                .iter()
                .map(|k| s[k].as_u64().unwrap())
                .sum::<u64>() as usize;
            let file = read_jsonl(out);
            let want = lifecycle_events(&file[..done.min(file.len())]);
            let mut got = BTreeSet::new();
            if wait_until(
                || {
                    got = lifecycle_events(&reader.ours());
                    want.is_subset(&got)
                },
                Duration::from_secs(2),
            ) {
                break;
            }
            // Still passing on what it acknowledged: let it finish.
            broker.resume();
            tries += 1;
            assert!(
                tries < 50,
                "the sink is done with {done} events, the consumer lacks {:?}: \
                 events counted delivered that never reached the broker",
                want.difference(&got).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        burst(janus, made);
        broker.kill();
    }

    /// What the stock handler lost, as the issue measured it.
    fn check_stock(&self, lost_created: &[u64], during_outage: &[u64]) {
        match self.kind {
            // rabbitmqevh drops what it cannot publish: every session
            // created while the broker was down.
            BrokerKind::RabbitMq => {
                let kept: Vec<&u64> = during_outage
                    .iter()
                    .filter(|s| !lost_created.contains(s))
                    .collect();
                assert!(kept.is_empty(), "rabbitmqevh delivered {kept:?}");
            }
            _ => assert!(!lost_created.is_empty()),
        }
    }
}

/// The sessions whose created or destroyed did not come, each with when it
/// was made in the run's timeline, for a failure's message.
fn missing(events: &[Value], made: &Made, phases: &[(&str, Instant)]) -> String {
    let t = tally(events);
    let t0 = phases[0].1;
    let made = made.lock().unwrap();
    let gone: Vec<String> = made
        .iter()
        .filter_map(|(s, at)| {
            let what = match t.get(s) {
                None => "nothing",
                Some((0, _)) => "no created",
                Some((_, d)) if d.is_empty() => "no destroyed",
                _ => return None,
            };
            Some(format!(
                "{s} made at {:.1} s: {what}",
                (*at - t0).as_secs_f64()
            ))
        })
        .collect();
    let timeline: Vec<String> = phases
        .iter()
        .map(|(p, at)| format!("{p} at {:.1} s", (*at - t0).as_secs_f64()))
        .collect();
    format!(
        "{} of {}: {gone:?}; timeline: {}",
        gone.len(),
        made.len(),
        timeline.join(", ")
    )
}

/// RabbitMQ killed for 10 s, then again with Janus: no lifecycle event
/// lost by the sink; rabbitmqevh (heartbeat 4 s) loses every session
/// created while the broker is down.
#[test]
fn rabbitmq_outage_loses_nothing() {
    Outage {
        kind: BrokerKind::RabbitMq,
        sink: |port| {
            format!(
                "rabbitmq: {{ host = \"127.0.0.1\", port = {port}, route_key = \"lcevh\", \
                 queue_name = \"lcevh\", heartbeat = 4, spool_dir = \"SPOOL_DIR\", \
                 backoff_max_ms = 2000, timeout_ms = 3000 }}"
            )
        },
        stock: Some(|port| StockHandler {
            name: "rabbitmqevh".into(),
            config: format!(
                "general: {{ enabled = true, events = \"all\", grouping = true, json = \"compact\", \
                 host = \"127.0.0.1\", port = {port}, route_key = \"stock\", heartbeat = 4 }}\n"
            ),
        }),
        reader: |b| Reader::Amqp(AmqpConsumer::start(b.port(), &[("lcevh", true), ("stock", false)])),
        exactly_once: false,
    }
    .run();
}

/// A broker that takes the connection and never answers (a hung host): the
/// sink says it is not connected and why, Janus answers as usual, and
/// stopping takes no longer than shutdown_timeout_ms, not the sink's
/// 10 s timeout_ms.
#[test]
fn a_hanging_broker_never_holds_janus_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true, shutdown_timeout_ms = 1000 }}\nfile: {{ enabled = false }}\n\
             rabbitmq: {{ host = \"127.0.0.1\", port = {port}, route_key = \"x\", \
             spool_dir = \"{}\" }}\n",
            dir.path().display()
        )),
        ..JanusOptions::default()
    });
    let mut ws = janus.ws();
    for _ in 0..5 {
        let started = Instant::now();
        let s = ws.create_session();
        ws.destroy(s);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // Each session's created and destroyed wait in the spool.
    assert!(wait_until(
        || info(&janus)["sinks"]["rabbitmq"]["spool"]["pending"] == 10,
        Duration::from_secs(10)
    ));
    let i = info(&janus);
    let r = &i["sinks"]["rabbitmq"];
    assert_eq!(r["connected"], false, "{r}");
    assert_eq!(r["connections"], 0, "{r}");
    let stopping = Instant::now();
    assert!(janus.stop().success());
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "{:?}",
        stopping.elapsed()
    );
    assert!(
        !janus.log().contains("left behind"),
        "the I/O thread stopped"
    );
}

/// MQTT: mqttevh's messages (one event each, `eventtype` added, a topic
/// per event type), acknowledged at QoS 1, on MQTT 3.1.1 and 5.
#[test]
fn mqtt_sink_publishes_what_mqttevh_publishes() {
    let broker = Broker::start(BrokerKind::Mosquitto);
    let consumer = MqttConsumer::start(broker.port(), &["v3/#", "v5/#", "stock/#"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let port = broker.port();
    let config = format!(
        "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\n\
         mqtt: {{ url = \"tcp://127.0.0.1:{port}\", client_id = \"lcevh-v3\", topic = \"v3\" }}\n\
         mqtt-five: {{ url = \"mqtt://127.0.0.1:{port}\", client_id = \"lcevh-v5\", topic = \"v5\", \
         mqtt_version = \"5\", qos = 2, addevent = false, events = \"sessions\", json = \"plain\" }}\n",
        out.display(),
    );
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        stock_handlers: vec![StockHandler {
            name: "mqttevh".into(),
            config: format!(
                "general: {{ enabled = true, events = \"all\", json = \"compact\", \
                 url = \"tcp://127.0.0.1:{port}\", client_id = \"stock\", topic = \"stock\", addevent = true }}\n"
            ),
        }],
        ..JanusOptions::default()
    });
    // An event larger than rumqttc's default packet limit (10 KiB).
    let blob = "x".repeat(100_000);
    janus.admin().custom_event("big", json!({ "blob": blob }));
    let sessions = churn(&janus, 10);
    let ended = |events: &[Value]| {
        let t = tally(events);
        sessions
            .iter()
            .all(|s| t.get(s).is_some_and(|(c, d)| *c == 1 && d.len() == 1))
    };
    assert!(wait_until(
        || consumer
            .under("v3/external")
            .iter()
            .any(|e| e["event"]["data"]["blob"] == blob.as_str()),
        Duration::from_secs(20)
    ));
    assert!(wait_until(
        || ended(&consumer.under("v3/"))
            && ended(&consumer.under("v5"))
            && ended(&consumer.under("stock/")),
        Duration::from_secs(20)
    ));
    // What came from mqttevh and from the sink, for the same Janus events:
    // the same bodies on the same topics (under another base topic).
    let topics = |got: &Got, base: &str| -> Vec<(String, Value)> {
        got.events
            .iter()
            .filter(|(t, e)| {
                t.starts_with(base) && sessions.contains(&e["session_id"].as_u64().unwrap_or(0))
            })
            .map(|(t, e)| (t[base.len()..].to_string(), e.clone()))
            .collect()
    };
    // Our messages that mqttevh did not send (yet).
    let unmatched = |got: &Got| -> Vec<(String, Value)> {
        let stock = topics(got, "stock/");
        topics(got, "v3/")
            .into_iter()
            .filter(|(topic, event)| {
                // A destroyed that lifecycleevh forwards carries its reason
                // and duration too; every other event is Janus's own, unchanged.
                let annotated = event["event"]["name"] == "destroyed";
                !stock.iter().any(|(t, e)| {
                    t == topic
                        && if annotated {
                            e["session_id"] == event["session_id"]
                                && e["event"]["name"] == "destroyed"
                        } else {
                            e == event
                        }
                })
            })
            .collect()
    };
    assert!(
        wait_until(
            || unmatched(&consumer.got()).is_empty(),
            Duration::from_secs(10)
        ),
        "mqttevh sent none of {:?}",
        unmatched(&consumer.got())
    );
    let got = consumer.got();
    let ours = topics(&got, "v3/");
    assert!(
        ours.iter()
            .any(|(t, e)| t == "sessions" && e["eventtype"] == "Sessions")
    );
    assert!(
        ours.iter()
            .any(|(t, e)| t == "handles" && e["eventtype"] == "Handles")
    );
    // MQTT 5, QoS 2, one topic, sessions only.
    let v5: Vec<&(String, Value)> = got
        .events
        .iter()
        .filter(|(t, _)| t.starts_with("v5"))
        .collect();
    assert!(
        v5.iter().all(|(t, e)| t == "v5" && e["type"] == 1),
        "{v5:?}"
    );
    // The acknowledgements (PUBCOMP at QoS 2) can come after the consumer
    // got the messages.
    let i = expect_info(
        &janus,
        "mqtt-five's 20 events acknowledged",
        |i| i["sinks"]["mqtt-five"]["sent"] == 20,
        Duration::from_secs(10),
    );
    for name in ["mqtt", "mqtt-five"] {
        let m = &i["sinks"][name];
        assert_eq!(m["type"], "mqtt");
        assert_eq!(m["connected"], true, "{m}");
        assert_eq!(m["connections"], 1, "{m}");
        assert_eq!(m["retrying"], 0, "{m}");
    }
    assert_eq!(i["sinks"]["mqtt-five"]["mqtt_version"], "5");
    assert!(janus.stop().success());
}

/// Mosquitto killed for 10 s, then again with Janus: no lifecycle event lost
/// by the sink; mqttevh, whose client keeps 100 messages while the broker
/// is away, loses sessions.
#[test]
fn mqtt_outage_loses_nothing() {
    Outage {
        kind: BrokerKind::Mosquitto,
        sink: |port| {
            format!(
                "mqtt: {{ url = \"tcp://127.0.0.1:{port}\", client_id = \"lcevh\", topic = \"lcevh\", \
                 keep_alive_interval = 5, spool_dir = \"SPOOL_DIR\", backoff_max_ms = 2000, timeout_ms = 3000 }}"
            )
        },
        stock: Some(|port| StockHandler {
            name: "mqttevh".into(),
            config: format!(
                "general: {{ enabled = true, events = \"all\", json = \"compact\", \
                 url = \"tcp://127.0.0.1:{port}\", client_id = \"stock\", topic = \"stock\", \
                 addevent = true, keep_alive_interval = 5 }}\n"
            ),
        }),
        reader: |b| Reader::Mqtt(MqttConsumer::start(b.port(), &["lcevh/#", "stock/#"])),
        exactly_once: false,
    }
    .run();
}

/// NATS JetStream: the sink creates its stream, and every event is stored
/// once, with its message id, in order.
#[test]
fn nats_sink_stores_each_event_once() {
    let broker = Broker::start(BrokerKind::Nats);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let port = broker.port();
    let config = format!(
        "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\n\
         nats: {{ url = \"nats://127.0.0.1:{port}\", subject = \"lcevh.events\", stream = \"LCEVH\", \
         create_stream = true, duplicate_window_ms = 120000, spool_dir = \"{}\", spool = \"all\" }}\n",
        out.display(),
        dir.path().join("spool").display(),
    );
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config),
        ..JanusOptions::default()
    });
    // An event larger than the server's max_payload (1 MB), spooled: said
    // and skipped, never retried ahead of the rest forever.
    janus
        .admin()
        .custom_event("huge", json!({ "blob": "x".repeat(2 << 20) }));
    let sessions = churn(&janus, 10);
    let ended = |events: &[(String, Value)]| {
        let e: Vec<Value> = events.iter().map(|(_, e)| e.clone()).collect();
        let t = tally(&e);
        sessions
            .iter()
            .all(|s| t.get(s).is_some_and(|(c, d)| *c == 1 && d.len() == 1))
    };
    let mut stored = Vec::new();
    assert!(wait_until(
        || {
            stored = stream_messages(port, "LCEVH").unwrap_or_default();
            ended(&stored)
        },
        Duration::from_secs(20)
    ));
    assert!(
        janus
            .log()
            .contains("larger than the server's max_payload (1048576 bytes): not sent")
    );
    // What the file has, in the same order (but the huge one), each with
    // the id of its text.
    let file = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = file.lines().filter(|l| l.len() < 1 << 20).collect();
    assert!(stored.len() <= lines.len());
    for ((id, event), line) in stored.iter().zip(&lines) {
        assert_eq!(*event, serde_json::from_str::<Value>(line).unwrap());
        assert_eq!(
            *id,
            janus_lifecycleevh::sinks::broker::nats::message_id(line)
        );
    }
    let i = info(&janus);
    let n = &i["sinks"]["nats"];
    assert_eq!(n["type"], "nats");
    assert_eq!(n["connected"], true, "{n}");
    let broker = n["broker"].as_str().unwrap();
    assert!(broker.starts_with("NATS 2."), "{n}");
    assert!(
        broker.ends_with("stream LCEVH (duplicate window 120 s)"),
        "{n}"
    );
    assert_eq!(n["stream"], "LCEVH");
    assert!(janus.stop().success());
}

/// The NATS server killed for 10 s, then again with Janus: every session's
/// created and destroyed are in the stream exactly once.
#[test]
fn nats_outage_stores_everything_once() {
    Outage {
        kind: BrokerKind::Nats,
        sink: |port| {
            format!(
                "nats: {{ url = \"nats://127.0.0.1:{port}\", subject = \"lcevh.events\", stream = \"LCEVH\", \
                 create_stream = true, spool_dir = \"SPOOL_DIR\", backoff_max_ms = 2000, timeout_ms = 3000 }}"
            )
        },
        stock: None,
        reader: |b| Reader::Nats(b.port()),
        exactly_once: true,
    }
    .run();
}

/// RabbitMQ refusing: an exchange that routes the messages to no queue (they
/// come back, are kept and retried, and arrive once a queue is bound), and
/// a queue that exists non-durable (the declaration fails, and says why).
#[test]
fn rabbitmq_refusals_are_failures_not_deliveries() {
    use amqprs::channel::{QueueBindArguments, QueueDeclareArguments};
    use amqprs::connection::{Connection, OpenConnectionArguments};
    let broker = Broker::start(BrokerKind::RabbitMq);
    let port = broker.port();
    // A non-durable queue, as rabbitmqevh declares its own.
    block_on(async {
        let c = Connection::open(&OpenConnectionArguments::new(
            "127.0.0.1",
            port,
            "guest",
            "guest",
        ))
        .await
        .unwrap();
        let ch = c.open_channel(None).await.unwrap();
        ch.queue_declare(QueueDeclareArguments::new("transient"))
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ enabled = false }}\n\
             rabbitmq: {{ host = \"127.0.0.1\", port = {port}, exchange = \"nowhere\", route_key = \"k\", \
             events = \"sessions\", spool_dir = \"{spool}\", backoff_max_ms = 500 }}\n\
             rabbitmq-transient: {{ host = \"127.0.0.1\", port = {port}, route_key = \"transient\", \
             queue_name = \"transient\" }}\n",
            spool = dir.path().display()
        )),
        ..JanusOptions::default()
    });
    let mut ws = janus.ws();
    let s = ws.create_session();
    ws.destroy(s);
    // Both events kept, their message refused; the other sink's queue
    // refused at its declaration.
    let i = expect_info(
        &janus,
        "the returned messages kept, and the declaration refused",
        |i| {
            let (r, t) = (&i["sinks"]["rabbitmq"], &i["sinks"]["rabbitmq-transient"]);
            r["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("no queue took the message"))
                && r["spool"]["pending"] == 2
                && t["connection_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("PRECONDITION_FAILED") && e.contains("durable"))
        },
        Duration::from_secs(20),
    );
    let r = &i["sinks"]["rabbitmq"];
    assert_eq!(r["connected"], true, "{r}");
    assert_eq!(r["sent"], 0, "{r}");
    assert_eq!(i["sinks"]["rabbitmq-transient"]["connected"], false);
    assert!(janus.log().contains("PRECONDITION_FAILED"));
    // A queue bound to the exchange: the kept events arrive.
    let consumer = AmqpConsumer::start(port, &[("bound", true)]);
    block_on(async {
        let c = Connection::open(&OpenConnectionArguments::new(
            "127.0.0.1",
            port,
            "guest",
            "guest",
        ))
        .await
        .unwrap();
        let ch = c.open_channel(None).await.unwrap();
        ch.queue_declare(QueueDeclareArguments::durable_client_named("bound"))
            .await
            .unwrap();
        ch.queue_bind(QueueBindArguments::new("bound", "nowhere", "k"))
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let got = consumer.expect(
        "created and destroyed in the bound queue",
        |g| g.from("bound").len() == 2,
        Duration::from_secs(20),
    );
    let t = tally(&got.from("bound"));
    assert_eq!(t[&s].0, 1);
    assert_eq!(t[&s].1, ["request"]);
    expect_info(
        &janus,
        "the spool emptied",
        |i| i["sinks"]["rabbitmq"]["spool"]["pending"] == 0,
        Duration::from_secs(10),
    );
    assert!(janus.stop().success());
}
