//! A real Janus (Debian's 1.1.2) loads the built handler: its events reach the
//! JSON Lines file exactly as Janus's own sampleevh delivers them, a broken
//! config leaves Janus serving, and the Admin API answers `info`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn config(out: &std::path::Path, general: &str) -> String {
    format!(
        "general: {{\n enabled = true\n {general}\n}}\nfile: {{\n path = \"{}\"\n flush_ms = 50\n}}\n",
        out.display()
    )
}

/// Removes what lifecycleevh adds (synthetic events, and `reason`/`synthetic`
/// on Janus's own `destroyed`), leaving Janus's events as Janus made them.
fn janus_only(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event"]["synthetic"] != json!(true))
        .map(|e| {
            let mut e = e.clone();
            if e["event"]["name"] == "destroyed"
                && let Some(body) = e["event"].as_object_mut()
            {
                // What lifecycleevh adds to Janus's own destroyed.
                for added in [
                    "reason",
                    "synthetic",
                    "created",
                    "duration_us",
                    "transport",
                    "quality",
                ] {
                    body.shift_remove(added);
                }
            }
            e
        })
        .collect()
}

#[test]
fn the_file_holds_what_sampleevh_delivers_in_the_same_order() {
    let receiver = Receiver::start();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("events.jsonl");
    let mut janus = Janus::start(JanusOptions {
        // A pure pass-through comparison: nothing re-injected into Janus's bus.
        lifecycleevh_config: Some(config(&out, "inject = \"none\"")),
        sampleevh: Some(SampleEvh {
            backend: receiver.url(),
            grouping: false,
            events: "all".into(),
        }),
        ..JanusOptions::default()
    });

    // Create, attach, destroy over WebSocket.
    let mut ws = janus.ws();
    let s1 = ws.create_session();
    ws.attach(s1, "janus.plugin.echotest");
    ws.destroy(s1);
    ws.close();
    // Create, attach, then drop the connection: Janus 1.1.2 sends no session
    // event, Janus >= 1.3.2 its own `destroyed`.
    let mut ws = janus.ws();
    let s2 = ws.create_session();
    let h2 = ws.attach(s2, "janus.plugin.echotest");
    ws.drop_tcp();
    // Over HTTP, and an external event through the Admin API.
    let http = janus.http();
    let s3 = http.create_session();
    http.attach(s3, "janus.plugin.echotest");
    http.destroy(s3);
    janus
        .admin()
        .custom_event("lifecycleevh.test", json!({"n": 1}));

    // Wait for the last events (the dropped session's detach, the external one)
    // to reach both, and for the dropped session's settle window to close.
    assert!(receiver.wait_until(
        |evs| {
            evs.iter().any(|e| e["type"] == 4)
                && evs
                    .iter()
                    .any(|e| e["handle_id"] == h2 && e["event"]["name"] == "detached")
        },
        Duration::from_secs(10)
    ));
    expect_jsonl(
        &out,
        "s2's ending and the external event",
        |evs| {
            evs.iter()
                .any(|e| e["session_id"] == s2 && e["event"]["name"] == "destroyed")
                && evs.iter().any(|e| e["type"] == 4)
        },
        Duration::from_secs(10),
    );
    // Both have everything Janus emitted before the marker: compare that.
    let marker = send_marker(&janus);
    let up_to_marker = |evs: Vec<Value>| -> Vec<Value> {
        let at = evs
            .iter()
            .position(|e| has_marker(std::slice::from_ref(e), &marker))
            .expect("the marker");
        evs[..=at].to_vec()
    };
    let theirs = up_to_marker(receiver.expect(
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    ));
    let mine = up_to_marker(expect_jsonl(
        &out,
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    ));
    assert_eq!(janus_only(&mine), theirs, "file and sampleevh differ");
    for sid in [s1, s2, s3] {
        assert!(
            theirs
                .iter()
                .any(|e| e["session_id"] == sid && e["event"]["name"] == "created")
        );
    }
    // What lifecycleevh added: one destroyed per session, each with its reason
    // (s2's is lifecycleevh's own where Janus sends none, before 1.3.2).
    let mut destroyed: Vec<(u64, &str, bool)> = mine
        .iter()
        .filter(|e| e["type"] == 1 && e["event"]["name"] == "destroyed")
        .map(|e| {
            (
                e["session_id"].as_u64().unwrap(),
                e["event"]["reason"].as_str().unwrap(),
                e["event"]["synthetic"].as_bool().unwrap(),
            )
        })
        .collect();
    destroyed.sort();
    let mut want = vec![
        (s1, "request", false),
        (
            s2,
            "transport_gone",
            !janus.ends_sessions_on_transport_gone(),
        ),
        (s3, "request", false),
    ];
    want.sort();
    assert_eq!(destroyed, want);

    // SIGINT: the file ends with Janus's shutdown event (no session left open).
    assert!(janus.stop().success());
    let mine = read_jsonl(&out);
    let last = mine.last().unwrap();
    assert_eq!(
        (last["type"].as_u64(), last["subtype"].as_u64()),
        (Some(256), Some(2))
    );
    // sampleevh stops its thread without draining its queue, so what it got
    // at shutdown is a prefix of what the file holds.
    let theirs = receiver.events();
    let ours = janus_only(&mine);
    assert!(theirs.len() <= ours.len());
    assert_eq!(ours[..theirs.len()], theirs[..]);
}

#[test]
fn a_broken_config_leaves_janus_serving_and_says_why() {
    for (broken, needle) in [
        (
            "general: { enabled = true, settle_ms = \"soon\" }",
            "janus.eventhandler.lifecycleevh.jcfg: general.settle_ms: expected a whole number",
        ),
        (
            "general: { enabled = true\nevents = \"sessions\" \"handles }",
            "janus.eventhandler.lifecycleevh.jcfg: syntax error at line 2",
        ),
        (
            "general: { enabled = true }\nfile: { path = \"/proc/no/such/dir/x.jsonl\" }",
            "janus.eventhandler.lifecycleevh.jcfg: file.path: cannot open /proc/no/such/dir/x.jsonl",
        ),
    ] {
        let mut janus = Janus::start(JanusOptions {
            lifecycleevh_config: Some(broken.to_string()),
            ..JanusOptions::default()
        });
        // The Janus API works.
        let mut ws = janus.ws();
        let s = ws.create_session();
        ws.destroy(s);
        assert!(
            janus.wait_log(needle, Duration::from_secs(5)),
            "log does not say {needle:?}"
        );
        assert!(janus.wait_log(
            "lifecycleevh is disabled; Janus continues without it",
            Duration::from_secs(5)
        ));
        // Janus (1.1.2, 1.4.1) keeps the handler registered: the Admin API says
        // why it is off.
        let reply = janus
            .admin()
            .query_eventhandler(HANDLER, json!({"request": "info"}));
        assert_eq!(reply["response"]["error_code"], 414, "{reply}");
        assert!(
            reply["response"]["error"]
                .as_str()
                .unwrap()
                .contains(needle)
        );
        assert!(janus.stop().success());
    }
}

#[test]
fn admin_info_counts_what_the_test_sent() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("events.jsonl");
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(config(&out, "channel_capacity = 4096")),
        // Each Admin request is itself an HTTP transport event: keep them out,
        // so that the query cannot count itself.
        http_events: false,
        ..JanusOptions::default()
    });
    let admin = janus.admin();
    for n in 0..25 {
        admin.custom_event("lifecycleevh.count", json!({"n": n}));
    }
    let mut ws = janus.ws();
    for _ in 0..4 {
        let s = ws.create_session();
        ws.destroy(s);
    }
    expect_jsonl(
        &out,
        "the 25 external events and the 4 endings",
        |evs| {
            evs.iter().filter(|e| e["type"] == 4).count() == 25
                && evs
                    .iter()
                    .filter(|e| e["event"]["name"] == "destroyed")
                    .count()
                    == 4
        },
        Duration::from_secs(10),
    );
    // The counters move after the lines they count are written: wait until
    // they count every line of the file, read after them.
    let mut seen = (Value::Null, Vec::new());
    let agree = wait_until(
        || {
            let reply = admin.query_eventhandler(HANDLER, json!({"request": "info"}));
            let lines = read_jsonl(&out);
            let i = &reply["response"];
            let n = lines.len() as u64;
            let agree = i["events"]["received"] == n
                && i["sinks"]["file"]["sent"] == n
                && i["tracker"]["created"] == 4
                && i["tracker"]["endings"]["request"] == 4;
            seen = (reply, lines);
            agree
        },
        Duration::from_secs(10),
    );
    let (reply, lines) = seen;
    assert!(
        agree,
        "info never counted the file's {} lines: {reply}",
        lines.len()
    );
    // No stray events: the test's own, and Janus's start (and, on Janus
    // >= 1.2, its status updates) and the WebSocket connection.
    let of_type = |ty: u64| lines.iter().filter(|e| e["type"] == ty).count();
    assert_eq!(of_type(4), 25);
    assert_eq!(of_type(1), 8, "4 created, 4 destroyed");
    assert_eq!(
        of_type(4) + of_type(1) + of_type(128) + of_type(256),
        lines.len(),
        "{lines:?}"
    );
    assert_eq!(reply["janus"], "success");
    let info = &reply["response"];
    assert_eq!(info["result"], 200);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["inside_janus"], true);
    let n = lines.len() as u64;
    assert_eq!(info["events"]["received"], n, "{info}");
    assert_eq!(info["events"]["processed"], n);
    assert_eq!(info["events"]["forwarded"], n);
    assert_eq!(info["events"]["dropped"], 0);
    assert_eq!(info["events"]["decode_errors"], 0);
    assert_eq!(info["channel"]["capacity"], 4096);
    assert_eq!(info["sinks"]["file"]["sent"], n);
    assert_eq!(info["sinks"]["file"]["path"], out.display().to_string());
    assert_eq!(info["sinks"]["file"]["last_error"], Value::Null);
    assert_eq!(info["tracker"]["created"], 4);
    assert_eq!(info["tracker"]["endings"]["request"], 4);
    assert_eq!(info["tracker"]["live_sessions"], 0);
    // Janus's Admin API reports the same handler as loaded.
    let bad = admin.query_eventhandler(HANDLER, json!({"request": "nope"}));
    assert_eq!(bad["response"]["error_code"], 411);
    assert!(janus.stop().success());
}
