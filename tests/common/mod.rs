//! The real-Janus test rig: starts Debian's Janus (1.1.2) in a temporary
//! folder with generated configs on free loopback ports, the freshly built
//! handler in its events folder, and gives the tests WebSocket, HTTP and
//! Admin API clients, an HTTP receiver for stock handlers, and readers for
//! the JSON Lines file the handler writes.
//!
//! Each test binary uses part of it.
#![allow(dead_code, unused_imports)]

mod http;
mod janus;
mod receiver;
mod ws;

pub use http::{Admin, HttpApi};
pub use janus::{Janus, JanusOptions, SampleEvh};
pub use receiver::{ReceivedRequest, Receiver, ReceiverOptions};
pub use ws::WsClient;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The handler cargo built next to this test binary
/// (target/<profile>/deps/<test> -> target/<profile>/libjanus_lifecycleevh.so).
pub fn lifecycleevh_so() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps layout");
    let so = profile_dir.join("libjanus_lifecycleevh.so");
    assert!(
        so.exists(),
        "{} is missing: build the crate (cargo test builds the cdylib)",
        so.display()
    );
    so
}

/// A free loopback port, never handed out twice in this process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
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

/// Reads a JSON Lines file; a missing file is empty, a torn last line is skipped.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Polls `read_jsonl` until `pred` holds or `timeout` passes; returns the last read.
pub fn wait_jsonl(path: &Path, pred: impl Fn(&[Value]) -> bool, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = read_jsonl(path);
        if pred(&events) || Instant::now() >= deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
