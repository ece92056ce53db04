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
    beside_sampleevh(
        format!(
            "general: {{ enabled = true, inject = \"{inject}\" }}\nfile: {{ path = \"{}\", flush_ms = 50 }}\n",
            out.display()
        ),
        receiver,
    )
}

/// lifecycleevh with `config` next to Janus's sampleevh posting every event
/// to `receiver`.
fn beside_sampleevh(config: String, receiver: &Receiver) -> JanusOptions {
    JanusOptions {
        lifecycleevh_config: Some(config),
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
    receiver.expect(
        "a destroyed for every dropped session",
        |evs| dropped.iter().all(|s| !destroyed_of(evs, *s).is_empty()),
        Duration::from_secs(10),
    );
    expect_jsonl(
        &out,
        "an ending for every dropped session",
        |evs| dropped.iter().all(|s| !destroyed_of(evs, *s).is_empty()),
        Duration::from_secs(10),
    );
    // Janus >= 1.3.2 sends these endings itself (first): nothing is injected.
    let native = janus.ends_sessions_on_transport_gone();
    let injected = if native { 0 } else { dropped.len() };
    // The handler is done with them: none is open any more, and every
    // injected ending came back to it from Janus's bus.
    let info = expect_info(
        &janus,
        "no session open, every injected ending echoed",
        |i| {
            i["tracker"]["live_sessions"] == 0
                && i["janus_bus"]["injected"] == injected
                && i["tracker"]["echoes"] == injected
        },
        Duration::from_secs(10),
    );
    let bus = &info["janus_bus"];
    assert_eq!(bus["available"], true, "{info}");
    assert_eq!(bus["enabled"], true);
    assert_eq!(info["tracker"]["duplicates_suppressed"], 0);
    // Whatever the handler put on the bus by now, a second ending included,
    // reached sampleevh's backend and the file before the marker.
    let marker = send_marker(&janus);
    let theirs = receiver.expect(
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    );
    let mine = expect_jsonl(
        &out,
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    );
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
    assert!(janus.stop().success());
}

#[test]
fn without_injection_sampleevh_sees_janus_1_1_2s_gap() {
    let receiver = Receiver::start();
    let (mut janus, out, _dir) = start("none", &receiver);
    let dropped = drop_sessions(&janus, 3);
    // The file gets the endings...
    expect_jsonl(
        &out,
        "an ending for every dropped session",
        |evs| dropped.iter().all(|s| !destroyed_of(evs, *s).is_empty()),
        Duration::from_secs(10),
    );
    // ...while the stock handler, fed by Janus alone, never hears of them
    // from Janus 1.1.2 (Janus >= 1.3.2 tells it, once). The handler made
    // its endings (and would have injected them) before the marker.
    let marker = send_marker(&janus);
    receiver.expect(
        "every disconnect, and the marker",
        |evs| {
            evs.iter()
                .filter(|e| e["event"]["data"]["event"] == "disconnected")
                .count()
                >= 3
                && has_marker(evs, &marker)
        },
        Duration::from_secs(10),
    );
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
    // behind it in Janus's queue, while Janus's events thread still runs: it
    // gives them to every handler (on >= 1.3.2 Janus sends its own as the
    // WebSockets transport closes the connection, and the handler, seeing the
    // session bound to that open connection, injects nothing).
    let native = janus.ends_sessions_on_transport_gone();
    assert_injections_came_back(&janus, &mine, 0, if native { 0 } else { live.len() as u64 });
    // sampleevh posts them unless Janus stops it first; never twice, never
    // before the shutdown event.
    let theirs = receiver.events();
    assert_none_twice("sampleevh", &theirs);
    let shutdown_at = theirs
        .iter()
        .position(|e| e["type"] == 256 && e["subtype"] == 2);
    for s in &live {
        if let Some(d) = destroyed_of(&theirs, *s).first() {
            let at = theirs.iter().position(|e| std::ptr::eq(e, *d)).unwrap();
            assert!(
                shutdown_at.is_some_and(|shutdown| at > shutdown),
                "after the shutdown event, as Janus queued them"
            );
        }
    }
}

/// With the WebSockets transport's events off, no `connected` tells the
/// handler which sessions are bound to an open connection. Sessions alive at
/// SIGINT still end exactly once for a stock handler: on Janus >= 1.3.2
/// (reclaim off) an open WebSocket session is necessarily on an open
/// connection, since Janus would have ended it when the connection closed,
/// so Janus's own ending at shutdown is left to it; on 1.1.2 the handler's
/// injected ending is the only one.
#[test]
fn invisible_connections_still_end_once_at_shutdown() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut janus = Janus::start(JanusOptions {
        ws_events: false,
        ..with_defaults(&out, &receiver)
    });
    let mut connections = Vec::new();
    let mut live = Vec::new();
    for _ in 0..6 {
        let mut ws = janus.ws();
        live.push(ws.create_session());
        live.push(ws.create_session());
        connections.push(ws);
    }
    assert!(janus.wait_log("has events = false", Duration::from_secs(5)));
    receiver.expect(
        "every created",
        |evs| {
            live.iter()
                .all(|s| session_events_of(evs, *s) == ["created"])
        },
        Duration::from_secs(10),
    );
    assert!(janus.stop().success());
    drop(connections);
    let theirs = receiver.events();
    let mine = read_jsonl(&out);
    assert_none_twice("sampleevh", &theirs);
    assert_one_each("file", &mine);
    let native = janus.ends_sessions_on_transport_gone();
    for s in &live {
        let d = destroyed_of(&mine, *s);
        assert_eq!(d[0]["event"]["reason"], "shutdown", "{}", d[0]);
    }
    // What the handler put on the bus: none on the new generation (Janus
    // ended them all), one per session on the old one.
    assert_injections_came_back(&janus, &mine, 0, if native { 0 } else { live.len() as u64 });
}

/// lifecycleevh with its default config (and its file at `out`) next to
/// Janus's sampleevh.
fn with_defaults(out: &std::path::Path, receiver: &Receiver) -> JanusOptions {
    beside_sampleevh(
        format!(
            "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\n",
            out.display()
        ),
        receiver,
    )
}

/// Whether the handler believes Janus ends transport-gone sessions itself
/// (learned from the core `started` event's version, or from the stream).
fn handler_says_janus_ends_transport_gone(janus: &Janus) -> bool {
    let info = info(janus);
    info["tracker"]["janus_ends_transport_gone"]
        .as_bool()
        .unwrap_or_else(|| panic!("no janus_ends_transport_gone in {info}"))
}

/// Per created session: the `destroyed` events of `events`. Sessions never
/// created in `events` are left out.
fn endings_per_session(events: &[Value]) -> std::collections::HashMap<u64, Vec<&Value>> {
    let mut m: std::collections::HashMap<u64, Vec<&Value>> = std::collections::HashMap::new();
    for e in events.iter().filter(|e| e["type"] == 1) {
        let sid = e["session_id"].as_u64().unwrap();
        match e["event"]["name"].as_str() {
            Some("created") => {
                m.entry(sid).or_default();
            }
            Some("destroyed") => m.entry(sid).or_default().push(e),
            _ => {}
        }
    }
    m
}

/// Exactly one `destroyed` per created session, in both streams.
fn assert_one_each(what: &str, events: &[Value]) {
    let per = endings_per_session(events);
    let wrong: Vec<(u64, usize)> = per
        .iter()
        .filter(|(_, d)| d.len() != 1)
        .map(|(s, d)| (*s, d.len()))
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: sessions with not exactly one destroyed: {wrong:?}"
    );
}

/// At most one `destroyed` per created session: what holds for sampleevh's
/// backend at a shutdown. Janus stops sampleevh without letting it post what
/// is still in its queue (janus_sampleevh.c, destroy(): `stopping` is set,
/// its thread ends at its next turn), so on a busy machine the last events
/// Janus gave it, Janus's own endings included, may never reach the backend.
/// That the handler's endings were given to it is
/// [`assert_injections_came_back`].
fn assert_none_twice(what: &str, events: &[Value]) {
    let twice: Vec<(u64, usize)> = endings_per_session(events)
        .iter()
        .filter(|(_, d)| d.len() > 1)
        .map(|(s, d)| (*s, d.len()))
        .collect();
    assert!(
        twice.is_empty(),
        "{what}: sessions with more than one destroyed: {twice:?}"
    );
}

/// What the handler said once Janus stopped about the endings it put on
/// Janus's bus: how many it injected, and how many came back to it through
/// the bus, in the same dispatch that gives each event to every handler
/// (sampleevh included). An injection Janus accepts no more, its bus
/// stopped, never comes back.
fn bus_tally(janus: &Janus) -> (u64, u64) {
    let log = janus.log();
    let number = |at: usize| -> u64 {
        log[at..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a count at {:?}", &log[at..(at + 20).min(log.len())]))
    };
    if let Some(at) = log.find("lifecycleevh: all ") {
        let n = number(at + "lifecycleevh: all ".len());
        return (n, n);
    }
    if let Some(at) = log.find("lifecycleevh: only ") {
        let at = at + "lifecycleevh: only ".len();
        let back = number(at);
        let of = log[at..].find(" of the ").expect("only M of the N") + at + " of the ".len();
        return (number(of), back);
    }
    (0, 0)
}

/// Whether the handler got Janus's `shutdown` event (its file has it).
fn handler_saw_shutdown(mine: &[Value]) -> bool {
    mine.iter().any(|e| e["type"] == 256 && e["subtype"] == 2)
}

/// The endings the handler put on Janus's bus, `before` the stop and `due`
/// at it (every shutdown ending Janus does not send itself, none it does):
/// every one came back through the bus, given to every handler.
///
/// Except where Janus stopped its bus first. A Janus that stops within
/// milliseconds of its `shutdown` event (one built from source, on a busy
/// machine) may stop its events thread before it gave the handlers the
/// shutdown endings (`janus_events_deinit` drops what is still queued),
/// and even before it gave them the `shutdown` event. The handler then says
/// "only M of the N endings ... came back"; those reached no handler, and
/// no handler got two. Returns how many came back.
#[track_caller]
fn assert_injections_came_back(janus: &Janus, mine: &[Value], before: u64, due: u64) -> u64 {
    let (injected, back) = bus_tally(janus);
    assert!(back <= injected, "{back} came back of {injected}");
    assert!(
        back >= before,
        "every ending injected before the stop came back ({back} of {injected}, {before} before the stop)"
    );
    assert!(
        injected <= before + due,
        "{injected} endings injected: more than the {before} before the stop and the {due} due at it"
    );
    if back == injected && handler_saw_shutdown(mine) {
        assert_eq!(injected, before + due, "endings injected");
    } else if back < injected {
        eprintln!(
            "Janus stopped its bus before it gave {} injected endings to its handlers",
            injected - back
        );
    }
    back
}

/// The last-injection margin the handler logs at destroy(), in ms.
fn injection_margin_ms(janus: &Janus) -> Option<u64> {
    let log = janus.log();
    let at = log.find("the last injection on Janus's event bus was ")?;
    let rest = &log[at + "the last injection on Janus's event bus was ".len()..];
    rest.split(' ').next()?.parse().ok()
}

/// With the default config, Janus's stock sampleevh (standing for every
/// stock handler) and the handler's own file each see exactly one
/// `destroyed` per created session, on every ending path, on Janus 1.1.2 as
/// on >= 1.3.2 (where Janus sends some endings itself).
#[test]
fn stock_handlers_see_exactly_one_destroyed_on_every_path() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut janus = Janus::start(JanusOptions {
        session_timeout: 4,
        ..with_defaults(&out, &receiver)
    });
    // Which generation this Janus is (1.x >= 1.3.2 and 0.x >= 0.15.2 end a
    // closed WebSocket's sessions themselves), and the handler knows it.
    let native_transport_gone = janus.ends_sessions_on_transport_gone();
    assert_eq!(
        handler_says_janus_ends_transport_gone(&janus),
        native_transport_gone,
        "Janus {:?}",
        janus.janus_version()
    );
    let mut expect: Vec<(u64, &str, Option<bool>)> = Vec::new();
    // Janus API destroy over WebSocket and over HTTP.
    let mut ws = janus.ws();
    let http = janus.http();
    for _ in 0..40 {
        let s = ws.create_session();
        ws.attach(s, "janus.plugin.echotest");
        ws.destroy(s);
        expect.push((s, "request", Some(false)));
    }
    for _ in 0..30 {
        let s = http.create_session();
        http.destroy(s);
        expect.push((s, "request", Some(false)));
    }
    // Admin API destroy_session.
    let admin = janus.admin();
    for _ in 0..30 {
        let s = ws.create_session();
        admin.destroy_session(s);
        expect.push((s, "request", Some(false)));
    }
    // WebSocket closed: Janus >= 1.3.2 sends its own destroyed.
    for s in drop_sessions(&janus, 20) {
        expect.push((s, "transport_gone", Some(!native_transport_gone)));
    }
    // Idle until Janus's session timeout, over WebSocket and HTTP.
    let mut idle_ws = janus.ws();
    for _ in 0..20 {
        let s = idle_ws.create_session();
        expect.push((s, "timeout", Some(true)));
    }
    for _ in 0..20 {
        let s = http.create_session();
        expect.push((s, "timeout", Some(true)));
    }
    let ended: Vec<u64> = expect.iter().map(|e| e.0).collect();
    expect_jsonl(
        &out,
        "an ending for every session so far, the idle ones' included",
        |evs| {
            let per = endings_per_session(evs);
            ended
                .iter()
                .all(|s| per.get(s).is_some_and(|d| !d.is_empty()))
        },
        Duration::from_secs(20),
    );
    // Alive at SIGINT, over WebSocket and HTTP.
    for _ in 0..20 {
        let s = ws.create_session();
        expect.push((s, "shutdown", Some(true)));
    }
    for _ in 0..20 {
        let s = http.create_session();
        expect.push((s, "shutdown", Some(true)));
    }
    assert!(expect.len() >= 200);
    // Every ending before the stop reached sampleevh's backend once, and
    // every session's `created`.
    let marker = send_marker(&janus);
    let theirs = receiver.expect(
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(20),
    );
    let per = endings_per_session(&theirs);
    for (s, reason, _) in &expect {
        let d = per
            .get(s)
            .unwrap_or_else(|| panic!("sampleevh never saw {s} created"));
        let want = if *reason == "shutdown" { 0 } else { 1 };
        assert_eq!(d.len(), want, "sampleevh, session {s} ({reason})");
    }
    assert!(janus.stop().success());
    eprintln!(
        "last injection -> destroy(): {:?} ms",
        injection_margin_ms(&janus)
    );
    let mine = read_jsonl(&out);
    assert_one_each("file", &mine);
    let per = endings_per_session(&mine);
    for (s, reason, synthetic) in &expect {
        let d = per[s][0];
        assert_eq!(d["event"]["reason"], *reason, "session {s}: {d}");
        if let Some(synthetic) = synthetic {
            assert_eq!(d["event"]["synthetic"], *synthetic, "session {s}: {d}");
        }
    }
    // The shutdown endings: Janus gave every injected one to its handlers
    // (the WebSocket sessions' are Janus's own on >= 1.3.2), and sampleevh
    // posted none twice.
    let injected_before = expect
        .iter()
        .filter(|e| e.1 != "shutdown" && e.2 == Some(true))
        .count() as u64;
    let due = if native_transport_gone { 20 } else { 40 };
    assert_injections_came_back(&janus, &mine, injected_before, due);
    assert_none_twice("sampleevh", &receiver.events());
}

/// The same with reclaim on: a closed WebSocket's sessions end
/// `reclaim_expired` after Janus's `timeout`, once for each stream. With
/// the default `settle_ms`: on a busy machine Janus's watchdog may report a
/// reclaim timeout after the handler took the session as claimed; the
/// handler then withdraws the claim (docs/failures.md).
#[test]
fn stock_handlers_see_exactly_one_destroyed_after_reclaim_expired() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let mut janus = Janus::start(JanusOptions {
        reclaim_session_timeout: 2,
        ..with_defaults(&out, &receiver)
    });
    let dropped = drop_sessions(&janus, 10);
    let mut ws = janus.ws();
    let live: Vec<u64> = (0..5).map(|_| ws.create_session()).collect();
    expect_jsonl(
        &out,
        "an ending for every dropped session",
        |evs| {
            let per = endings_per_session(evs);
            dropped
                .iter()
                .all(|s| per.get(s).is_some_and(|d| !d.is_empty()))
        },
        Duration::from_secs(20),
    );
    // sampleevh's backend has each of those endings once.
    let marker = send_marker(&janus);
    let theirs = receiver.expect(
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(20),
    );
    for s in &dropped {
        assert_eq!(destroyed_of(&theirs, *s).len(), 1, "sampleevh, session {s}");
    }
    // None was claimed: every claim the handler inferred (a timeout later
    // than it expected) was withdrawn. The counters are published after the
    // events are routed: wait for them to agree.
    let claims = || {
        let t = &info(&janus)["tracker"];
        (t["claimed"].as_u64(), t["claims_retracted"].as_u64())
    };
    assert!(
        wait_until(
            || matches!(claims(), (Some(c), Some(r)) if c == r),
            Duration::from_secs(10)
        ),
        "claimed, retracted: {:?}",
        claims()
    );
    eprintln!("claims inferred and withdrawn: {:?}", claims());
    assert!(janus.stop().success());
    let mine = read_jsonl(&out);
    assert_one_each("file", &mine);
    let per = endings_per_session(&mine);
    for s in &dropped {
        assert_eq!(per[s][0]["event"]["reason"], "reclaim_expired");
    }
    for s in &live {
        assert_eq!(per[s][0]["event"]["reason"], "shutdown");
    }
    // Every one injected and given to every handler (with reclaim on,
    // Janus ends none of them itself), none twice at sampleevh's backend.
    assert_injections_came_back(&janus, &mine, dropped.len() as u64, live.len() as u64);
    assert_none_twice("sampleevh", &receiver.events());
}

#[test]
fn janus_stops_cleanly_again_and_again_with_live_sessions() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    for round in 0..20 {
        let before = receiver.events().len();
        let lines_before = read_jsonl(&out).len();
        let mut janus = Janus::start(options(
            "transport_gone,timeout,reclaim_expired,shutdown",
            &out,
            &receiver,
        ));
        let mut ws = janus.ws();
        let mut sessions = Vec::new();
        for _ in 0..3 {
            let s = ws.create_session();
            ws.attach(s, "janus.plugin.echotest");
            sessions.push(s);
        }
        let http = janus.http();
        sessions.push(http.create_session());
        // One connection dropped right before the stop: its settle window is
        // still open when the shutdown event arrives.
        let dropped = drop_sessions(&janus, 1);
        sessions.extend(&dropped);
        let status = janus.stop();
        assert!(
            status.success(),
            "round {round}: Janus exited with {status:?}"
        );
        // No duplicate and no miss at shutdown for the stock handlers
        // either: every ending injected was given to them (on >= 1.3.2 only
        // the HTTP session's: Janus ends the WebSocket ones itself), and
        // sampleevh posted none twice.
        let injected = if janus.ends_sessions_on_transport_gone() {
            1
        } else {
            4 + dropped.len() as u64
        };
        let mine = read_jsonl(&out);
        let this_round = &mine[lines_before..];
        assert_injections_came_back(&janus, this_round, 0, injected);
        assert_none_twice(
            &format!("round {round}: sampleevh"),
            &receiver.events()[before..],
        );
        let log = janus.log();
        assert!(
            log.contains("JANUS lifecycleevh destroyed"),
            "round {round}"
        );
        // The file: one ending for every session the handler heard of, and
        // it heard of them all when Janus gave it the `shutdown` event (a
        // Janus that stops its bus before that may drop their `created`
        // too, for every handler: see assert_injections_came_back).
        assert_one_each(&format!("round {round}: file"), this_round);
        let heard_of = endings_per_session(this_round);
        let unheard: Vec<u64> = sessions
            .iter()
            .copied()
            .filter(|s| !heard_of.contains_key(s))
            .collect();
        if handler_saw_shutdown(this_round) {
            assert!(
                unheard.is_empty(),
                "round {round}: never created: {unheard:?}"
            );
        } else if !unheard.is_empty() {
            eprintln!(
                "round {round}: Janus stopped its bus before it gave the handlers the creation of {unheard:?}"
            );
        }
    }
}
