//! Loads the built `libjanus_lifecycleevh.so` with dlopen and drives it over
//! the C ABI, as Janus does, with real jansson values, but without Janus:
//! reference counts, a full channel with a stalled worker, panics, bad
//! configs, Admin requests, and the recorded Janus 1.4.2 trace.
//!
//! Needs the `fault-injection` feature (the Makefile's test target enables it).
#![cfg(feature = "fault-injection")]

mod ffi;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ffi::{Json, Plugin};
use serde_json::{Value, json};

/// A config folder with the handler's config; events go to `events.jsonl`.
fn config_dir(general_extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    std::fs::write(
        dir.path().join("janus.eventhandler.lifecycleevh.jcfg"),
        format!(
            // A long shutdown budget: under valgrind a 10 MB event takes seconds,
            // and these tests check what destroy() leaves behind, not its timing.
            "general: {{ enabled = true, shutdown_timeout_ms = 600000\n{general_extra} }}\nfile: {{ path = \"{}\", flush_ms = 50 }}\n",
            out.display()
        ),
    )
    .unwrap();
    (dir, out)
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn session_event(sid: u64, name: &str) -> Json {
    Json::parse(&format!(
        r#"{{"emitter":"H","type":1,"timestamp":{},"session_id":{sid},"event":{{"name":"{name}"}}}}"#,
        1_000 + sid
    ))
}

#[test]
fn every_reference_is_released_after_destroy() {
    let p = Plugin::load();
    let (dir, out) = config_dir("");
    assert_eq!(p.events_mask(), 0);
    assert_eq!(p.init(dir.path()), 0);
    assert_eq!(p.events_mask(), 0xffff_ffff);
    let mut events = Vec::new();
    for sid in 1..=500u64 {
        events.push(session_event(sid, "created"));
        events.push(Json::parse(&format!(
            r#"{{"type":64,"timestamp":5,"session_id":{sid},"handle_id":3,"event":{{"plugin":"p","data":{{"x":[1,2,{{"y":"z"}}]}}}}}}"#
        )));
    }
    for e in &events {
        p.event(e);
    }
    p.destroy();
    assert_eq!(p.events_mask(), 0, "no events after destroy");
    for e in &events {
        assert_eq!(e.refcount(), 1, "the handler kept a reference");
    }
    // Everything reached the file: 1000 events, then the sessions still open
    // ended at destroy (no shutdown event came), reason shutdown.
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 1500);
    assert_eq!(lines[0]["session_id"], 1);
    assert!(
        lines[1000..]
            .iter()
            .all(|l| l["event"]["reason"] == "shutdown")
    );
    // After destroy nothing is taken.
    let late = session_event(9, "created");
    p.event(&late);
    assert_eq!(late.refcount(), 1);
}

/// One event of each of Janus's types, numbered `n` (in `event.n`).
fn typed_event(ty: u32, n: u64) -> Json {
    Json::parse(&format!(
        r#"{{"emitter":"H","type":{ty},"subtype":1,"timestamp":{n},"session_id":{},"handle_id":7,"event":{{"name":"created","n":{n}}}}}"#,
        1_000_000 + n
    ))
}

/// Janus's types: the four shed at capacity, then the five the tracker needs.
const BULK_TYPES: [(u32, &str); 4] = [
    (32, "media"),
    (64, "plugins"),
    (16, "webrtc"),
    (4, "external"),
];
const LIFECYCLE_TYPES: [u32; 5] = [1, 2, 128, 256, 8];

#[test]
fn a_stalled_worker_sheds_bulk_keeps_lifecycle_and_never_blocks() {
    let p = Plugin::load();
    let (dir, out) = config_dir("channel_capacity = 16");
    assert_eq!(p.init(dir.path()), 0);
    let info = p.info();
    assert_eq!(info["channel"]["capacity"], 16);
    let one_ring = info["channel"]["buffer_bytes"].as_u64().unwrap();
    assert!(one_ring > 0 && one_ring <= 8192, "{info}");
    assert_eq!(
        p.request(&json!({"request": "fault", "in": "stall"})),
        json!({"result": 200})
    );
    let first = session_event(1, "created");
    p.event(&first);
    // Wait until the worker holds the first event and is stalled on it.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while p.info()["events"]["processed"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker never took the event"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // With the worker stalled, 18000 more calls must all return (the watchdog
    // aborts the run if one blocks). 16 media fill the queue; then one of
    // each of the 9 types, 2000 times over.
    let mut events: Vec<(u32, Json)> = (0..16).map(|n| (32, typed_event(32, n))).collect();
    for n in 0..2000u64 {
        for (ty, _) in BULK_TYPES {
            events.push((ty, typed_event(ty, 100 + n)));
        }
        for ty in LIFECYCLE_TYPES {
            events.push((ty, typed_event(ty, 100 + n)));
        }
    }
    for (_, e) in &events {
        p.event(e);
    }
    let info = p.info();
    let ev = &info["events"];
    assert_eq!(ev["received"], 1 + 16 + 18_000);
    assert_eq!(ev["dropped"], 8000, "{info}");
    for (_, name) in BULK_TYPES {
        assert_eq!(ev["dropped_by_type"][name], 2000, "{info}");
    }
    assert_eq!(ev["dropped_lifecycle"], 0);
    let ch = &info["channel"];
    assert_eq!(ch["depth"], 16 + 10_000);
    assert_eq!(ch["over_capacity"], 10_000);
    // The queue grew past capacity by lifecycle events only, ring by ring.
    let bytes = ch["buffer_bytes"].as_u64().unwrap();
    // 10016 waiting, in rings of 512 slots: 20 of them (memory follows what
    // waits, not the capacity).
    assert!((19..=21).contains(&(bytes / one_ring)), "{info}");
    // Dropped events were released at once; queued ones are held.
    for (ty, e) in &events[16..] {
        let held = !BULK_TYPES.iter().any(|(t, _)| t == ty);
        assert_eq!(e.refcount(), if held { 2 } else { 1 }, "type {ty}");
    }
    p.request(&json!({"request": "fault", "in": "release"}));
    p.destroy();
    assert!(events.iter().all(|(_, e)| e.refcount() == 1));
    assert_eq!(first.refcount(), 1);
    // Every kept event reached the file, in Janus's order.
    let lines = read_lines(&out);
    let got: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["event"]["n"].is_u64())
        .map(|l| {
            (
                l["type"].as_u64().unwrap(),
                l["event"]["n"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(u64, u64)> = (0..16)
        .map(|n| (32, n))
        .chain((0..2000u64).flat_map(|n| LIFECYCLE_TYPES.map(|t| (t as u64, 100 + n))))
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "not in Janus's order");
}

#[test]
fn panics_never_escape_into_the_host() {
    let p = Plugin::load();
    let (dir, out) = config_dir("");
    assert_eq!(p.init(dir.path()), 0);
    // In handle_request: answered with an error.
    let answer = p.request(&json!({"request": "fault", "in": "handle_request"}));
    assert_eq!(answer["error_code"], 499);
    // In incoming_event, after the reference was taken: released anyway.
    p.request(&json!({"request": "fault", "in": "incoming_event"}));
    let e = session_event(1, "created");
    p.event(&e);
    assert_eq!(e.refcount(), 1);
    // In the worker: counted, and the worker goes on.
    p.request(&json!({"request": "fault", "in": "worker"}));
    let doomed = session_event(2, "created");
    p.event(&doomed);
    let survivor = session_event(3, "created");
    p.event(&survivor);
    p.destroy();
    assert_eq!(doomed.refcount(), 1);
    assert_eq!(survivor.refcount(), 1);
    let sids: Vec<u64> = read_lines(&out)
        .iter()
        .filter(|l| l["event"]["name"] == "created")
        .map(|l| l["session_id"].as_u64().unwrap())
        .collect();
    assert_eq!(sids, vec![3]);
    // And the handler still works after all that.
    assert_eq!(p.init(dir.path()), 0);
    let info = p.info();
    assert_eq!(
        info["events"]["internal_errors"], 0,
        "counters start afresh"
    );
}

#[test]
fn a_bad_config_disables_the_handler_cleanly() {
    let p = Plugin::load();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("janus.eventhandler.lifecycleevh.jcfg"),
        "general: { enabled = true, settle_ms = \"soon\" }\n",
    )
    .unwrap();
    assert_eq!(p.init(dir.path()), -1);
    assert_eq!(
        p.events_mask(),
        0,
        "Janus 1.1.x keeps a failed handler: it must get nothing"
    );
    let answer = p.info();
    assert_eq!(answer["error_code"], 414);
    let why = answer["error"].as_str().unwrap();
    assert!(
        why.contains("janus.eventhandler.lifecycleevh.jcfg: general.settle_ms"),
        "{why}"
    );
    let e = session_event(1, "created");
    p.event(&e);
    assert_eq!(e.refcount(), 1);
    p.destroy();
    // Missing file: disabled too, and says so.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(p.init(empty.path()), -1);
    assert!(
        p.info()["error"]
            .as_str()
            .unwrap()
            .contains("cannot read the file")
    );
}

#[test]
fn admin_requests_are_validated() {
    let p = Plugin::load();
    let (dir, _out) = config_dir("");
    assert_eq!(p.init(dir.path()), 0);
    assert_eq!(p.request_null()["error_code"], 412);
    assert_eq!(p.request(&json!({}))["error_code"], 412);
    assert_eq!(p.request(&json!({"request": 5}))["error_code"], 413);
    assert_eq!(p.request(&json!([1]))["error_code"], 413);
    let unknown = p.request(&json!({"request": "explode"}));
    assert_eq!(unknown["error_code"], 411);
    assert_eq!(unknown["error"], "Unknown request 'explode'");
    let info = p.info();
    assert_eq!(info["result"], 200);
    assert_eq!(info["package"], "janus.eventhandler.lifecycleevh");
    assert_eq!(info["inside_janus"], false);
    // Outside Janus there is no event bus: said in info, the sinks still work.
    assert_eq!(info["janus_bus"]["available"], false);
    assert_eq!(info["janus_bus"]["enabled"], false);
    assert_eq!(info["sinks"]["file"]["type"], "file");
}

#[test]
fn replays_the_janus_1_4_2_trace_through_the_entry_points() {
    let p = Plugin::load();
    let (dir, out) = config_dir("");
    assert_eq!(p.init(dir.path()), 0);
    let trace = include_str!("traces/janus-1.4.2-drop-timeout.jsonl");
    let events: Vec<Json> = trace
        .lines()
        .filter(|l| !l.is_empty())
        .map(Json::parse)
        .collect();
    for e in &events {
        p.event(e);
    }
    p.destroy();
    assert!(events.iter().all(|e| e.refcount() == 1));
    let lines = read_lines(&out);
    let destroyed: Vec<(u64, String, bool)> = lines
        .iter()
        .filter(|l| l["type"] == 1 && l["event"]["name"] == "destroyed")
        .map(|l| {
            (
                l["session_id"].as_u64().unwrap(),
                l["event"]["reason"].as_str().unwrap().to_string(),
                l["event"]["synthetic"].as_bool().unwrap(),
            )
        })
        .collect();
    // Janus 1.4.2's own destroyed for the dropped WebSocket is kept (deduplicated,
    // not doubled); the timed-out session gets the one Janus never sends.
    assert_eq!(
        destroyed,
        vec![
            (5688093653430080, "transport_gone".to_string(), false),
            (6622599536206788, "timeout".to_string(), true),
        ]
    );
    // Every event of the trace is forwarded, in order, plus the synthetic one.
    assert_eq!(lines.len(), events.len() + 1);
    let synthetic = lines
        .iter()
        .find(|l| l["event"]["synthetic"] == true)
        .unwrap();
    assert_eq!(synthetic["emitter"], "MyJanusInstance");
    assert_eq!(synthetic["timestamp"], 1795534828895514i64);
}

/// Failure behaviour: events with missing or mistyped fields are counted and
/// forwarded as they are to sinks taking all events; nothing crashes or leaks.
#[test]
fn malformed_events_are_counted_not_fatal() {
    let p = Plugin::load();
    let (dir, out) = config_dir("");
    assert_eq!(p.init(dir.path()), 0);
    let odd = [
        r#"{}"#,
        r#"{"type": "one", "session_id": 1}"#,
        r#"{"type": 1, "session_id": "abc", "event": {"name": "created"}}"#,
        r#"{"type": 1, "session_id": -5, "event": {"name": "destroyed"}}"#,
        r#"{"type": 1, "event": {"name": "destroyed"}}"#,
        r#"{"type": 1, "session_id": 7, "event": "destroyed"}"#,
        r#"{"type": 128, "event": {"transport": 5, "id": [], "data": {"event": "disconnected"}}}"#,
        r#"{"type": 256, "subtype": 2}"#,
        r#"[1, 2, 3]"#,
        r#""just a string""#,
        r#"{"type": 1, "timestamp": "yesterday", "session_id": 1}"#,
    ];
    let events: Vec<Json> = odd.iter().map(|t| Json::parse(t)).collect();
    for e in &events {
        p.event(e);
    }
    let info = wait_info(&p, |i| i["events"]["processed"] == odd.len());
    p.destroy();
    assert!(events.iter().all(|e| e.refcount() == 1));
    // Not Janus's shape: a type, session_id, timestamp, event body or
    // transport id of the wrong type (6), or not an object at all (2). The
    // others are Janus-shaped enough: missing fields are simply absent.
    assert_eq!(info["events"]["decode_errors"], 8, "{info}");
    assert_eq!(info["events"]["internal_errors"], 0);
    let lines = std::fs::read_to_string(&out).unwrap();
    // Every one of them is in the file (the default mask is "all").
    assert_eq!(lines.lines().count(), odd.len());
}

/// Failure behaviour: a 10 MB event goes through like any other.
#[test]
fn a_ten_megabyte_event_is_forwarded() {
    let p = Plugin::load();
    let (dir, out) = config_dir("");
    assert_eq!(p.init(dir.path()), 0);
    let big = "x".repeat(10 << 20);
    let e = Json::parse(&format!(
        r#"{{"type": 64, "timestamp": 1, "session_id": 3, "handle_id": 4, "event": {{"plugin": "p", "data": {{"blob": "{big}"}}}}}}"#
    ));
    p.event(&e);
    p.event(&session_event(3, "created"));
    p.destroy();
    assert_eq!(e.refcount(), 1);
    let lines = read_lines(&out);
    assert_eq!(
        lines[0]["event"]["data"]["blob"].as_str().unwrap().len(),
        10 << 20
    );
    assert_eq!(lines[1]["event"]["name"], "created");
}

fn wait_info(p: &Plugin, until: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let info = p.info();
        if until(&info) || std::time::Instant::now() > deadline {
            return info;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
