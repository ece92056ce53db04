//! Re-injection into Janus's own event bus, against a real Janus with its
//! stock sampleevh: the stock handler gets the `destroyed` events Janus
//! 1.1.2 never sends, once each (and on Janus >= 1.3.2, which sends them,
//! Janus's own only), and Janus still stops cleanly.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// lifecycleevh (file to `out`, re-injecting `inject`) next to Janus's sampleevh.
fn options(inject: &str, out: &std::path::Path, receiver: &Receiver) -> JanusOptions {
    JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true, inject = \"{inject}\" }}\nfile: {{ path = \"{}\", flush_ms = 50 }}\n",
            out.display()
        )),
        sampleevh: Some(SampleEvh {
            backend: receiver.url(),
            grouping: true,
            events: "all".into(),
        }),
        ..JanusOptions::default()
    }
}

fn start(inject: &str, receiver: &Receiver) -> (Janus, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let janus = Janus::start(options(inject, &out, receiver));
    (janus, out, dir)
}

fn destroyed_of(events: &[Value], session: u64) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| {
            e["type"] == 1 && e["session_id"] == session && e["event"]["name"] == "destroyed"
        })
        .collect()
}

fn session_events_of(events: &[Value], session: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == 1 && e["session_id"] == session)
        .map(|e| e["event"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Opens `n` connections with two sessions each and drops them all.
fn drop_sessions(janus: &Janus, n: usize) -> Vec<u64> {
    let mut sessions = Vec::new();
    for _ in 0..n {
        let mut ws = janus.ws();
        let a = ws.create_session();
        ws.attach(a, "janus.plugin.echotest");
        let b = ws.create_session();
        sessions.extend([a, b]);
        ws.drop_tcp();
    }
    sessions
}

#[test]
fn stock_sampleevh_gets_one_destroyed_per_dropped_session() {
    let receiver = Receiver::start();
    let (mut janus, out, _dir) = start("transport_gone,shutdown", &receiver);
    let dropped = drop_sessions(&janus, 5);
    assert!(receiver.wait_until(
        |evs| dropped.iter().all(|s| !destroyed_of(evs, *s).is_empty()),
        Duration::from_secs(10)
    ));
    // Long enough for a second one to show up, if there were one.
    std::thread::sleep(Duration::from_millis(1500));
    let theirs = receiver.events();
    let mine = read_jsonl(&out);
    // Janus >= 1.3.2 sends these endings itself (first): nothing is injected.
    let native = janus.ends_sessions_on_transport_gone();
    for s in &dropped {
        // Exactly as Janus 1.3.2+ sends it: name only, no transport, no extra fields.
        let d = destroyed_of(&theirs, *s);
        assert_eq!(d.len(), 1, "sampleevh got {} destroyed for {s}", d.len());
        assert_eq!(d[0]["event"], json!({"name": "destroyed"}));
        assert_eq!(session_events_of(&theirs, *s), ["created", "destroyed"]);
        // The file has exactly one too, with the reason: ours, or Janus's own.
        let d = destroyed_of(&mine, *s);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0]["event"]["reason"], "transport_gone");
        assert_eq!(d[0]["event"]["synthetic"], !native);
    }
    let info = janus.admin().query_eventhandler(
        "janus.eventhandler.lifecycleevh",
        json!({"request": "info"}),
    );
    let bus = &info["response"]["janus_bus"];
    assert_eq!(bus["available"], true, "{info}");
    assert_eq!(bus["enabled"], true);
    let injected = if native { 0 } else { dropped.len() };
    assert_eq!(bus["injected"], injected, "{info}");
    assert_eq!(info["response"]["tracker"]["echoes"], injected);
    assert_eq!(info["response"]["tracker"]["duplicates_suppressed"], 0);
    assert!(janus.stop().success());
}

#[test]
fn without_injection_sampleevh_sees_janus_1_1_2s_gap() {
    let receiver = Receiver::start();
    let (mut janus, out, _dir) = start("none", &receiver);
    let dropped = drop_sessions(&janus, 3);
    // The file gets the endings...
    wait_jsonl(
        &out,
        |evs| dropped.iter().all(|s| !destroyed_of(evs, *s).is_empty()),
        Duration::from_secs(10),
    );
    // ...while the stock handler, fed by Janus alone, never hears of them
    // from Janus 1.1.2 (Janus >= 1.3.2 tells it, once).
    assert!(receiver.wait_until(
        |evs| {
            evs.iter()
                .filter(|e| e["event"]["data"]["event"] == "disconnected")
                .count()
                >= 3
        },
        Duration::from_secs(10)
    ));
    std::thread::sleep(Duration::from_millis(1500));
    let theirs = receiver.events();
    let janus_says = if janus.ends_sessions_on_transport_gone() {
        &["created", "destroyed"][..]
    } else {
        &["created"][..]
    };
    for s in &dropped {
        assert_eq!(session_events_of(&theirs, *s), janus_says, "session {s}");
    }
    assert!(janus.stop().success());
}

#[test]
fn shutdown_with_live_sessions_reaches_file_and_stock_handler() {
    let receiver = Receiver::start();
    let (mut janus, out, _dir) = start("transport_gone,shutdown", &receiver);
    let mut ws = janus.ws();
    let live: Vec<u64> = (0..4).map(|_| ws.create_session()).collect();
    assert!(receiver.wait_until(
        |evs| {
            live.iter()
                .all(|s| session_events_of(evs, *s) == ["created"])
        },
        Duration::from_secs(10)
    ));
    assert!(janus.stop().success());
    let mine = read_jsonl(&out);
    for s in &live {
        let d = destroyed_of(&mine, *s);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0]["event"]["reason"], "shutdown");
    }
    // The shutdown endings are injected while the shutdown event is processed,
    // behind it in Janus's queue: Janus's events thread runs until transports
    // and plugins are closed, so sampleevh gets and posts them before Janus
    // stops it (sampleevh's thread joins before Janus exits).
    let theirs = receiver.events();
    let shutdown_at = theirs
        .iter()
        .position(|e| e["type"] == 256 && e["subtype"] == 2)
        .expect("sampleevh posted the shutdown event");
    for s in &live {
        let d = destroyed_of(&theirs, *s);
        // TODO(lifecycleevh: double `destroyed` at shutdown on Janus >= 1.3.2):
        // fails there (2 for each WebSocket session): the handler injects its
        // `shutdown` ending, then Janus sends its own as the WebSockets
        // transport closes the connection. Left failing until the handler
        // stops injecting what Janus >= 1.3.2 sends itself.
        assert_eq!(d.len(), 1, "sampleevh got {} destroyed for {s}", d.len());
        let at = theirs.iter().position(|e| std::ptr::eq(e, d[0])).unwrap();
        assert!(
            at > shutdown_at,
            "after the shutdown event, as Janus queued them"
        );
    }
}

#[test]
fn janus_stops_cleanly_again_and_again_with_live_sessions() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut expected_endings = 0;
    for round in 0..20 {
        let mut janus = Janus::start(options("transport_gone,shutdown,timeout", &out, &receiver));
        let mut ws = janus.ws();
        for _ in 0..3 {
            let s = ws.create_session();
            ws.attach(s, "janus.plugin.echotest");
        }
        // One connection dropped right before the stop: its settle window is
        // still open when the shutdown event arrives.
        let dropped = drop_sessions(&janus, 1);
        expected_endings += 3 + dropped.len();
        let status = janus.stop();
        assert!(
            status.success(),
            "round {round}: Janus exited with {status:?}"
        );
        let log = janus.log();
        assert!(
            log.contains("JANUS lifecycleevh destroyed"),
            "round {round}"
        );
        let ended = read_jsonl(&out)
            .iter()
            .filter(|e| e["type"] == 1 && e["event"]["name"] == "destroyed")
            .count();
        assert_eq!(ended, expected_endings, "round {round}");
    }
}
