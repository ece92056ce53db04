//! Failure behaviour against a real Janus 1.1.2: a backend answering 500, and
//! a backend that accepts connections and never answers. Janus keeps
//! serving, memory stays under the configured caps, every drop is counted,
//! and nothing spooled is lost.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const HANDLER: &str = "janus.eventhandler.lifecycleevh";

fn info(janus: &Janus) -> Value {
    janus
        .admin()
        .query_eventhandler(HANDLER, json!({"request": "info"}))["response"]
        .clone()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_backend_answering_500_is_retried_and_nothing_spooled_is_lost() {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let dir = tempfile::tempdir().unwrap();
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ enabled = false }}\n\
             http: {{ backend = \"{}\", max_retransmissions = 1, retransmissions_backoff = 50, \
             backoff_max_ms = 200, spool_dir = \"{}\" }}\n",
            receiver.url(),
            dir.path().display()
        )),
        ..JanusOptions::default()
    });
    let mut ws = janus.ws();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let s = ws.create_session();
        ws.destroy(s);
        sessions.push(s);
    }
    for n in 0..5 {
        janus.admin().custom_event("noise", json!({"n": n}));
    }
    assert!(wait_until(
        || info(&janus)["sinks"]["http"]["failed"].as_u64().unwrap() > 0,
        Duration::from_secs(10)
    ));
    let i = info(&janus);
    let h = &i["sinks"]["http"];
    assert!(
        h["last_error"]
            .as_str()
            .unwrap()
            .ends_with("HTTP 500 Internal Server Error"),
        "{h}"
    );
    assert!(h["spool"]["pending"].as_u64().unwrap() >= 6, "{h}");
    assert!(receiver.events().is_empty(), "nothing accepted yet");
    assert!(receiver.requests().iter().all(|r| r.status == 500));
    // The backend recovers: the spooled session events all arrive.
    receiver.set_status(200);
    let ended = |evs: &[Value]| {
        sessions.iter().all(|s| {
            evs.iter()
                .any(|e| e["session_id"] == *s && e["event"]["name"] == "destroyed")
        })
    };
    assert!(receiver.wait_until(ended, Duration::from_secs(10)));
    assert!(wait_until(
        || info(&janus)["sinks"]["http"]["retrying"] == 0,
        Duration::from_secs(5)
    ));
    assert!(janus.stop().success());
}

#[test]
fn a_hanging_backend_never_holds_janus_up() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true, shutdown_timeout_ms = 2000 }}\nfile: {{ enabled = false }}\n\
             http: {{ backend = \"http://127.0.0.1:{port}/\", timeout_ms = 500, \
             max_retransmissions = 0, queue_size = 1000 }}\n"
        )),
        http_events: false,
        ..JanusOptions::default()
    });
    let rss_before = rss_kib(janus.pid());
    let admin = janus.admin();
    let blob = "x".repeat(4096);
    for n in 0..5_000 {
        admin.custom_event("flood", json!({"n": n, "blob": blob}));
    }
    // Janus's own API answers as usual.
    let mut ws = janus.ws();
    let started = Instant::now();
    let s = ws.create_session();
    ws.destroy(s);
    assert!(started.elapsed() < Duration::from_secs(2));
    let i = info(&janus);
    let h = &i["sinks"]["http"];
    // Memory stays under the cap: at most queue_size events wait; the rest
    // are dropped when the queue is full or given up after their one
    // attempt timed out (how many of each depends on how fast the flood
    // came), and every one is counted: only one batch (100) is in flight.
    let n = |k: &str| h[k].as_u64().unwrap();
    assert!(n("queued") <= 1000, "{h}");
    assert!(n("dropped") + n("failed") >= 3_000, "{h}");
    let accounted = n("queued") + n("dropped") + n("failed") + n("sent");
    assert!(
        n("accepted") >= accounted && n("accepted") - accounted <= 100,
        "{h}"
    );
    assert!(
        h["last_error"].as_str().unwrap().contains("timed out"),
        "{h}"
    );
    assert_eq!(
        i["events"]["dropped"], 0,
        "the channel from Janus never filled"
    );
    // 1000 queued 4 kB events, plus slack: far from the 20 MB the flood was.
    let grown = rss_kib(janus.pid()).saturating_sub(rss_before);
    assert!(grown < 15 * 1024, "Janus grew by {grown} KiB");
    // Stopping gives the backend one more try (timeout_ms), not more than
    // shutdown_timeout_ms (2 s) in any case.
    let stopping = Instant::now();
    assert!(janus.stop().success());
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}
