//! Failure behaviour against a real Janus 1.1.2: a backend answering 500, and
//! a backend that accepts connections and never answers. Janus keeps
//! serving, memory stays under the configured caps, every drop is counted,
//! and nothing spooled is lost.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

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
    // A failure (of whatever batch came first: the core `started` event may
    // fail before the sessions are even spooled), and every session event
    // in the spool.
    let i = expect_info(
        &janus,
        "a failed delivery, and the 6 session events spooled",
        |i| {
            let h = &i["sinks"]["http"];
            h["failed"].as_u64().unwrap() > 0 && h["spool"]["pending"].as_u64().unwrap() >= 6
        },
        Duration::from_secs(10),
    );
    let h = &i["sinks"]["http"];
    assert!(
        h["last_error"]
            .as_str()
            .unwrap()
            .ends_with("HTTP 500 Internal Server Error"),
        "{h}"
    );
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

/// External events the hanging backend test floods Janus with, the sink's
/// queue_size and its max_batch.
const FLOOD: u64 = 5_000;
const QUEUE_SIZE: u64 = 1_000;
const MAX_BATCH: u64 = 100;
/// The flood comes in parts of this many events.
const PART: u64 = 500;

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
             max_retransmissions = 0, queue_size = {QUEUE_SIZE}, max_batch = {MAX_BATCH} }}\n"
        )),
        http_events: false,
        ..JanusOptions::default()
    });
    let rss_before = rss_kib(janus.pid());
    let admin = janus.admin();
    let blob = "x".repeat(4096);
    // The flood comes in parts, each taken in by the handler before the
    // next: the memory it holds is then what its sink keeps (the queue and
    // the batch in flight), not a backlog of events on their way to its
    // worker, whose size would depend on how busy the machine is.
    for part in 0..FLOOD / PART {
        for n in part * PART..(part + 1) * PART {
            admin.custom_event("flood", json!({"n": n, "blob": blob}));
        }
        expect_info(
            &janus,
            "the handler took in the flood so far",
            |i| i["events"]["processed_by_type"]["external"] == (part + 1) * PART,
            Duration::from_secs(20),
        );
    }
    // Janus's own API answers as usual.
    let mut ws = janus.ws();
    let started = Instant::now();
    let s = ws.create_session();
    ws.destroy(s);
    assert!(started.elapsed() < Duration::from_secs(2));
    // One reading of the counters, of one moment, once the handler is done
    // with the flood: every event Janus handed over was handled and offered
    // to the sink (an offer counts `accepted` first, then queues or drops),
    // and nothing moved between this reading and the next (the sink's
    // thread neither took a batch nor gave one up in between).
    let mut last = Value::Null;
    let steady = wait_until(
        || {
            let a = info(&janus);
            let b = info(&janus);
            let ev = &a["events"];
            let done = ev["processed_by_type"]["external"] == FLOOD
                && ev["processed"] == ev["received"]
                && ev["forwarded"] == ev["processed"]
                && a["channel"]["depth"] == 0;
            let still = a["events"] == b["events"] && a["sinks"] == b["sinks"];
            last = a;
            done && still
        },
        Duration::from_secs(20),
    );
    assert!(steady, "the flood was never all handed to the sink: {last}");
    let i = last;
    let h = &i["sinks"]["http"];
    // Memory stays under the cap: at most queue_size events wait; the rest
    // are dropped when the queue is full or given up after their one
    // attempt timed out (how many of each depends on how fast the flood
    // came), and every one is counted. What the sink took and has not
    // counted yet is the batch its thread holds (taken from the queue,
    // neither sent nor given up): at most max_batch.
    let n = |k: &str| h[k].as_u64().unwrap();
    assert!(n("queued") <= QUEUE_SIZE, "{h}");
    assert!(n("accepted") > FLOOD, "{h}");
    assert!(
        n("dropped") + n("failed") >= FLOOD - QUEUE_SIZE - MAX_BATCH,
        "{h}"
    );
    let accounted = n("queued") + n("dropped") + n("failed") + n("sent");
    assert!(
        n("accepted") >= accounted && n("accepted") - accounted <= MAX_BATCH,
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
    eprintln!("Janus grew by {grown} KiB; the sink: {h}");
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
