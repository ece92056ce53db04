//! Records a short real event stream from the Janus the rig runs
//! (`LCEVH_JANUS`, e.g. `upstream-0.16.1`), as Janus's stock sampleevh posts
//! it (one event per request, every event type), with no lifecycleevh
//! loaded: what `tests/traces/` holds and the tracker's replays read.
//!
//!     LCEVH_JANUS=upstream-0.16.1 cargo run --example record_trace -- tests/traces/<name>.jsonl
//!
//! With `session_timeout = 4`, each scenario in turn, each session with
//! EchoTest attached:
//! 1. a WebSocket closes (transport gone, reclaim off);
//! 2. a `destroy` over WebSocket, the socket closed once it is answered (as
//!    janus.js does);
//! 3. a WebSocket session left idle until Janus's `timeout`, then closed;
//! 4. a WebSocket session and an HTTP session alive when Janus stops (SIGINT).
//!
//! Prints the session ids of each scenario (for the trace's README line).
//!
//! sampleevh drops what it has not posted yet when Janus stops it, so the
//! end of the shutdown can be missing: a recording whose last event is not
//! the `detached` of the WebSocket session alive at SIGINT (which Janus
//! detaches as the transport closes) is made again, up to five times.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Janus, JanusOptions, Receiver, SampleEvh};

const ECHOTEST: &str = "janus.plugin.echotest";

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: record_trace <output.jsonl>");
    for attempt in 1..=5 {
        if record(&out) {
            return;
        }
        eprintln!("attempt {attempt}: sampleevh lost the end of the shutdown; again");
    }
    panic!("no complete recording in five attempts");
}

/// One recording into `out`; false when its end is missing.
fn record(out: &str) -> bool {
    let receiver = Receiver::start();
    let mut janus = Janus::start(JanusOptions {
        sampleevh: Some(SampleEvh::to(receiver.url())),
        session_timeout: 4,
        ..JanusOptions::default()
    });
    let seen = |sid: u64, name: &str| {
        receiver.wait_until(
            |evs| {
                evs.iter()
                    .any(|e| e["session_id"] == sid && e["event"]["name"] == name)
            },
            Duration::from_secs(20),
        )
    };
    let handle_gone = |sid: u64| {
        assert!(seen(sid, "detached"), "no detached for {sid}");
    };

    let mut ws = janus.ws();
    let dropped = ws.create_session();
    ws.attach(dropped, ECHOTEST);
    ws.close();
    handle_gone(dropped);

    let mut ws = janus.ws();
    let destroyed = ws.create_session();
    ws.attach(destroyed, ECHOTEST);
    ws.destroy(destroyed);
    ws.close();
    handle_gone(destroyed);

    let mut ws = janus.ws();
    let idle = ws.create_session();
    ws.attach(idle, ECHOTEST);
    assert!(seen(idle, "timeout"), "no timeout for {idle}");
    ws.close();
    handle_gone(idle);

    let mut ws = janus.ws();
    let live_ws = ws.create_session();
    ws.attach(live_ws, ECHOTEST);
    let http = janus.http();
    let live_http = http.create_session();
    http.attach(live_http, ECHOTEST);
    assert!(seen(live_http, "attached"));
    assert!(janus.stop().success(), "Janus did not stop cleanly");
    drop(ws);

    let events = receiver.events();
    let last = events.last().expect("events");
    if !(last["session_id"] == live_ws && last["event"]["name"] == "detached") {
        return false;
    }
    let text: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(out, text).unwrap_or_else(|e| panic!("write {out}: {e}"));
    let version = events
        .iter()
        .find_map(|e| e["event"]["info"]["version_string"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:?}", janus.janus_version()));
    println!("Janus {version}: {} events into {out}", events.len());
    for (n, (what, sid)) in [
        ("WebSocket closed", dropped),
        ("destroy, then closed", destroyed),
        ("idle until timeout, then closed", idle),
        ("WebSocket alive at SIGINT", live_ws),
        ("HTTP alive at SIGINT", live_http),
    ]
    .iter()
    .enumerate()
    {
        let names: Vec<&str> = events
            .iter()
            .filter(|e| e["session_id"] == *sid && e["type"] == 1)
            .filter_map(|e| e["event"]["name"].as_str())
            .collect();
        println!("  {}. {what}: session {sid}: {names:?}", n + 1);
    }
    true
}
