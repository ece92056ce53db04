//! A test rig around a real Janus WebRTC server: Debian's, on this machine
//! (bookworm's 1.1.2) or in a container image (`LCEVH_JANUS=docker:<image>`,
//! e.g. sid's 1.4.1), or upstream Janus built from source into a prefix
//! (`LCEVH_JANUS=upstream-0.16.1`, `prefix:<dir>`; see [`JanusTarget`]).
//!
//! [`Janus::start`] runs that Janus in a temporary folder of its own,
//! with generated configs, free loopback ports, the EchoTest plugin, the HTTP
//! and WebSockets transports and the event handlers a test asks for (the
//! handler under test and/or Janus's stock `sampleevh`). The rig then gives
//! the test:
//!
//! - [`WsClient`]: the Janus API over WebSocket (what a browser app uses);
//! - [`HttpApi`]: the Janus API over plain HTTP;
//! - [`Admin`]: the Admin API over HTTP;
//! - [`Receiver`]: an HTTP server that collects what an event handler POSTs;
//! - [`read_jsonl`] / [`expect_jsonl`]: readers for JSON Lines files;
//! - [`info`] / [`expect_info`]: the handler's Admin API `info`;
//! - [`Prometheus`]: a real Prometheus server scraping the handler;
//! - [`Broker`]: a real RabbitMQ, Mosquitto or NATS server, and consumers.
//!
//! Every wait either fails the test itself when its state does not come
//! (`expect_*`, [`Receiver::expect`]) or returns whether it came, marked
//! `#[must_use]` ([`wait_until`], [`Receiver::wait_until`],
//! [`Janus::wait_log`], [`WsClient::wait_for`]); Cargo.toml denies
//! `unused_must_use`, so a result thrown away does not compile. A test
//! waits for the very state it asserts: a counter is read from the `info`
//! that showed it, not after waiting for something else (the counter may
//! move after the event it counts). docs/testing.md has the rules.
//!
//! Every test binary uses only part of it, hence the `allow(dead_code)`.
//!
//! Debugging a failing test: the Janus log, stdout and stderr (tails) are
//! printed when a [`Janus`] is dropped during a panic; with `RIG_KEEP=1` the
//! instance's folder is kept too (its path is printed), with `RIG_KEEP=all`
//! it is kept even when the test passes.
#![allow(dead_code, unused_imports)]

mod admin;
mod brokers;
mod http;
mod janus;
mod prometheus;
mod receiver;
pub mod webrtc;
mod ws;

pub use admin::{ADMIN_SECRET, Admin};
pub use brokers::{AmqpConsumer, Broker, BrokerKind, Got, MqttConsumer, block_on, stream_messages};
pub use http::{HttpApi, HttpResponse, http_request, http_request_within};
pub use janus::{
    CONTAINER_LABEL, Generation, JANUS_ADMIN_PORT, JANUS_HTTP_PORT, Janus, JanusOptions,
    JanusTarget, NOBODY, NetnsHolder, SampleEvh, StockHandler, hand_over,
};
pub use prometheus::{Prometheus, ScrapeJob, TestPki, promtool_check_metrics, unix_now};
pub use receiver::{ReceivedRequest, Receiver, ReceiverOptions};
pub use ws::WsClient;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `libjanus_lifecycleevh.so` cargo built for this test run.
///
/// Integration tests live in `target/<profile>/deps/`, the cdylib in
/// `target/<profile>/`, where `cargo build` (not `cargo test`) puts it.
/// Panics with a clear message when it is not there.
pub fn lifecycleevh_so() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps/", exe.display()));
    let so = profile_dir.join("libjanus_lifecycleevh.so");
    assert!(
        so.is_file(),
        "the event handler under test is missing: {} does not exist \
         (`cargo test` does not build the cdylib: run `cargo build` with the same \
         profile first, as `make test` does, or set JanusOptions::plugin_so)",
        so.display()
    );
    so
}

/// A free loopback TCP port, never handed out twice in this process.
///
/// The port is only free when this returns: whoever binds it later may lose
/// a race with another process ([`Janus::start`] retries on such a clash).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a loopback port")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// A transaction id unique in this process.
pub fn transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("rig-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
/// `cond` is always tried at least once, and once more at the deadline.
#[must_use = "a wait that timed out must fail the test: assert the result"]
pub fn wait_until(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Reads a JSON Lines file: one JSON value a line, blank lines ignored.
///
/// A missing file reads as empty; a last line without its newline (being
/// written right now) is skipped. Any other line that is not JSON panics.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}:{}: not JSON ({e}): {line:?}", path.display(), n + 1)
            })
        })
        .collect()
}

/// Polls [`read_jsonl`] until `pred` holds, and returns that read; fails
/// the test after `timeout`, naming `what` and showing the file's last lines.
#[track_caller]
pub fn expect_jsonl(
    path: &Path,
    what: &str,
    pred: impl Fn(&[Value]) -> bool,
    timeout: Duration,
) -> Vec<Value> {
    let mut last = Vec::new();
    let held = wait_until(
        || {
            last = read_jsonl(path);
            pred(&last)
        },
        timeout,
    );
    if !held {
        let from = last.len().saturating_sub(TAIL_EVENTS);
        let listing: String = last[from..].iter().map(|e| format!("  {e}\n")).collect();
        panic!(
            "waited {timeout:?} for {what} in {}; its last {} of {} lines:\n{listing}",
            path.display(),
            last.len() - from,
            last.len()
        );
    }
    last
}

/// Sends a marker: an Admin API `custom_event` (an external event, type 4)
/// with a schema no other event has; returns the schema.
///
/// Janus hands its events to every event handler in the order it queued
/// them, and what keeps that order (the handler's file, Janus's sampleevh
/// posting to a [`Receiver`]) delivers all that came before the marker
/// first: once the marker is there ([`has_marker`]), so is every event Janus
/// queued before it was sent, e.g. an ending the handler injected earlier.
/// (Only where external events are taken: sampleevh with `events = "all"`.)
pub fn send_marker(janus: &Janus) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let schema = format!("rig.marker.{}", NEXT.fetch_add(1, Ordering::Relaxed));
    janus
        .admin()
        .custom_event(&schema, serde_json::json!({"marker": true}));
    schema
}

/// Whether `events` hold the marker [`send_marker`] returned.
pub fn has_marker(events: &[Value], marker: &str) -> bool {
    events
        .iter()
        .any(|e| e["type"] == 4 && e["event"]["schema"] == marker)
}

/// How many events a failed wait shows.
const TAIL_EVENTS: usize = 60;

/// The package name of the handler under test, as the Admin API's
/// `query_eventhandler` names it.
pub const HANDLER: &str = "janus.eventhandler.lifecycleevh";

/// The handler's answer to the Admin API `info` request (the `response`
/// part of Janus's reply).
pub fn info(janus: &Janus) -> Value {
    janus
        .admin()
        .query_eventhandler(HANDLER, serde_json::json!({"request": "info"}))["response"]
        .clone()
}

/// Polls [`info`] until `pred` holds, and returns that answer (read
/// counters from it, not from a later one); fails the test after
/// `timeout`, naming `what` and showing the last answer.
#[track_caller]
pub fn expect_info(
    janus: &Janus,
    what: &str,
    pred: impl Fn(&Value) -> bool,
    timeout: Duration,
) -> Value {
    let mut last = Value::Null;
    let held = wait_until(
        || {
            last = info(janus);
            pred(&last)
        },
        timeout,
    );
    assert!(held, "waited {timeout:?} for {what}; info said: {last}");
    last
}

/// Per session id (session events only): how many `created`, and the
/// `reason` of each `destroyed` (`?` for none), in order.
pub fn tally(events: &[Value]) -> HashMap<u64, (usize, Vec<String>)> {
    let mut t: HashMap<u64, (usize, Vec<String>)> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == 1) {
        let Some(sid) = e["session_id"].as_u64() else {
            continue;
        };
        let entry = t.entry(sid).or_default();
        match e["event"]["name"].as_str() {
            Some("created") => entry.0 += 1,
            Some("destroyed") => entry
                .1
                .push(e["event"]["reason"].as_str().unwrap_or("?").to_string()),
            _ => {}
        }
    }
    t
}
