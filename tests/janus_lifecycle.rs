//! Against a real Janus 1.1.2: every way a session can end gives exactly one
//! `destroyed`, with the exact reason, in the file the handler writes.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

struct Rig {
    janus: Janus,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(opts: JanusOptions, general: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{\n enabled = true\n {general}\n}}\nfile: {{\n path = \"{}\"\n flush_ms = 50\n}}\n",
            out.display()
        )),
        ..opts
    });
    Rig {
        janus,
        out,
        _dir: dir,
    }
}

/// Every `destroyed` in the file: (session, reason, synthetic, timestamp).
fn endings(events: &[Value]) -> Vec<(u64, String, bool, i64)> {
    events
        .iter()
        .filter(|e| e["type"] == 1 && e["event"]["name"] == "destroyed")
        .map(|e| {
            (
                e["session_id"].as_u64().unwrap(),
                e["event"]["reason"].as_str().unwrap().to_string(),
                e["event"]["synthetic"].as_bool().unwrap(),
                e["timestamp"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Waits until every session in `sessions` has a `destroyed`, and returns
/// the file; fails the test if one has none by `timeout`. (A second
/// `destroyed` is caught at the end of each test, in the whole file written
/// by then, once Janus stopped.)
#[track_caller]
fn wait_endings(out: &Path, sessions: &[u64], timeout: Duration) -> Vec<Value> {
    expect_jsonl(
        out,
        &format!("an ending for each of {sessions:?}"),
        |evs| {
            let ended = endings(evs);
            sessions.iter().all(|s| ended.iter().any(|e| e.0 == *s))
        },
        timeout,
    )
}

/// The one ending of `session`, failing if there is none or more than one.
fn only_ending(events: &[Value], session: u64) -> (String, bool, i64) {
    let mine: Vec<_> = endings(events)
        .into_iter()
        .filter(|e| e.0 == session)
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "session {session} has {} destroyed events",
        mine.len()
    );
    let (_, reason, synthetic, ts) = mine.into_iter().next().unwrap();
    (reason, synthetic, ts)
}

/// Returns once the handler has passed the end of the settle window of a
/// disconnect at `at` (Janus's timestamp, µs; the default 0.5 s window):
/// what it decides then (an ending made up, or not) is in the file by now.
fn past_settle_window(rig: &Rig, at: i64) {
    let settle_end = at + 500_000;
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    let left = settle_end - now_us();
    if left > 0 {
        std::thread::sleep(Duration::from_micros(left as u64));
    }
    // An event Janus stamps after the window's end: the handler's clock is
    // past it once it has written the event, and so are its decisions.
    let marker = send_marker(&rig.janus);
    expect_jsonl(
        &rig.out,
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    );
}

/// The state the handler's Admin `sessions` request gives a session
/// (`gone` when it is not listed).
fn session_state(rig: &Rig, sid: u64) -> String {
    let page = rig
        .janus
        .admin()
        .query_eventhandler(HANDLER, json!({"request": "sessions", "limit": 100}));
    page["response"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == sid)
        .map_or("gone".into(), |s| s["state"].as_str().unwrap().to_string())
}

fn timestamp_of(events: &[Value], pred: impl Fn(&Value) -> bool) -> i64 {
    events.iter().find(|e| pred(e)).expect("event present")["timestamp"]
        .as_i64()
        .unwrap()
}

#[test]
fn janus_api_destroy_and_admin_destroy_session() {
    let mut rig = start(JanusOptions::default(), "");
    let mut ws = rig.janus.ws();
    let a = ws.create_session();
    ws.attach(a, "janus.plugin.echotest");
    ws.destroy(a);
    let b = ws.create_session();
    rig.janus.admin().destroy_session(b);
    let events = wait_endings(&rig.out, &[a, b], Duration::from_secs(10));
    assert_eq!(only_ending(&events, a).0, "request");
    assert!(!only_ending(&events, a).1);
    assert_eq!(only_ending(&events, b).0, "request");
    assert!(rig.janus.stop().success());
    assert_eq!(endings(&read_jsonl(&rig.out)).len(), 2);
}

#[test]
fn websocket_drop_ends_every_session_of_the_connection() {
    let mut rig = start(JanusOptions::default(), "");
    let mut ws = rig.janus.ws();
    let a = ws.create_session();
    ws.attach(a, "janus.plugin.echotest");
    let b = ws.create_session();
    let mut other = rig.janus.ws();
    let c = other.create_session();
    ws.drop_tcp();
    let events = wait_endings(&rig.out, &[a, b], Duration::from_secs(10));
    let disconnected = timestamp_of(&events, |e| {
        e["type"] == 128 && e["event"]["data"]["event"] == "disconnected"
    });
    for s in [a, b] {
        if rig.janus.ends_sessions_on_transport_gone() {
            // Janus >= 1.3.2 ends them itself: its own event, with the reason.
            let (reason, synthetic, at) = only_ending(&events, s);
            assert_eq!((reason.as_str(), synthetic), ("transport_gone", false));
            assert!(at >= disconnected);
        } else {
            // Stamped with the disconnect, not with when it was written.
            assert_eq!(
                only_ending(&events, s),
                ("transport_gone".into(), true, disconnected)
            );
        }
    }
    assert!(
        endings(&events).iter().all(|e| e.0 != c),
        "the other connection's session lives"
    );
    other.destroy(c);
    // Janus answers the `destroy` before it queues its `destroyed`: a stop
    // right after the answer can overtake it.
    wait_endings(&rig.out, &[c], Duration::from_secs(10));
    assert!(rig.janus.stop().success());
    let events = read_jsonl(&rig.out);
    assert_eq!(only_ending(&events, c).0, "request");
    assert_eq!(endings(&events).len(), 3);
}

#[test]
fn session_timeout() {
    let mut rig = start(
        JanusOptions {
            session_timeout: 3,
            ..JanusOptions::default()
        },
        "",
    );
    let mut ws = rig.janus.ws();
    let s = ws.create_session();
    ws.attach(s, "janus.plugin.echotest");
    // No keepalive: Janus times the session out and tells the client.
    assert!(
        ws.wait_for(|m| m["janus"] == "timeout", Duration::from_secs(15))
            .is_some()
    );
    let events = wait_endings(&rig.out, &[s], Duration::from_secs(10));
    let timed_out = timestamp_of(&events, |e| {
        e["session_id"] == s && e["event"]["name"] == "timeout"
    });
    assert_eq!(only_ending(&events, s), ("timeout".into(), true, timed_out));
    // The timeout is forwarded before the destroyed that completes it.
    let pos = |name: &str| {
        events
            .iter()
            .position(|e| e["session_id"] == s && e["event"]["name"] == name)
            .unwrap()
    };
    assert!(pos("timeout") < pos("destroyed"));
    // The client now closes the connection: still one ending, also once
    // the settle window after the disconnect has closed.
    let connection = events
        .iter()
        .find(|e| e["session_id"] == s && e["event"]["name"] == "created")
        .expect("created")["event"]["transport"]["id"]
        .clone();
    ws.close();
    let events = expect_jsonl(
        &rig.out,
        "the connection's disconnect",
        |evs| {
            evs.iter().any(|e| {
                e["type"] == 128
                    && e["event"]["data"]["event"] == "disconnected"
                    && e["event"]["id"] == connection
            })
        },
        Duration::from_secs(10),
    );
    let disconnected = timestamp_of(&events, |e| {
        e["type"] == 128 && e["event"]["data"]["event"] == "disconnected"
    });
    past_settle_window(&rig, disconnected);
    assert!(rig.janus.stop().success());
    assert_eq!(endings(&read_jsonl(&rig.out)).len(), 1);
}

#[test]
fn reclaim_expired_and_claimed() {
    let mut rig = start(
        JanusOptions {
            reclaim_session_timeout: 3,
            ..JanusOptions::default()
        },
        "",
    );
    // The handler read reclaim_session_timeout from Janus's core `started`
    // event, which Janus sends once its transports already answer: wait for
    // the worker to have taken it.
    expect_info(
        &rig.janus,
        "reclaim_session_timeout 3, from Janus's started event",
        |i| i["tracker"]["reclaim_session_timeout"] == 3,
        Duration::from_secs(10),
    );

    let mut ws = rig.janus.ws();
    let expired = ws.create_session();
    ws.attach(expired, "janus.plugin.echotest");
    let claimed = ws.create_session();
    ws.drop_tcp();

    // A new connection claims one of them and uses it.
    let mut ws2 = rig.janus.ws();
    let reply = ws2.claim(claimed);
    assert_eq!(reply["janus"], "success", "{reply}");
    ws2.attach(claimed, "janus.plugin.echotest");

    // The other one is not claimed: Janus times it out after the reclaim timeout.
    let events = wait_endings(&rig.out, &[expired], Duration::from_secs(15));
    let timed_out = timestamp_of(&events, |e| {
        e["session_id"] == expired && e["event"]["name"] == "timeout"
    });
    assert_eq!(
        only_ending(&events, expired),
        ("reclaim_expired".into(), true, timed_out)
    );
    // The claimed one lived through its old connection's reclaim window...
    assert!(endings(&events).iter().all(|e| e.0 != claimed));
    ws2.keepalive(claimed);
    // ...until its new owner destroys it.
    ws2.destroy(claimed);
    let events = wait_endings(&rig.out, &[claimed], Duration::from_secs(10));
    assert_eq!(only_ending(&events, claimed).0, "request");
    assert!(rig.janus.stop().success());
    assert_eq!(endings(&read_jsonl(&rig.out)).len(), 2);
}

/// Janus's watchdog late, as on an overloaded machine (here Janus is frozen
/// with SIGSTOP, the handler's worker with it): no `timeout` came by the
/// moment the handler takes the session as claimed (4 + 4 + 0.5 s after the
/// close), then it comes. Sooner than `session_timeout` (60 s) after the
/// close, a claimed session cannot have idled out: it is the reclaim
/// expiring, and the claim is withdrawn.
#[test]
fn a_late_reclaim_timeout_is_still_reclaim_expired() {
    const RECLAIM: u64 = 4;
    let mut rig = start(
        JanusOptions {
            reclaim_session_timeout: RECLAIM as u32,
            ..JanusOptions::default()
        },
        "",
    );
    let mut ws = rig.janus.ws();
    let sid = ws.create_session();
    let closed = std::time::Instant::now();
    ws.drop_tcp();
    assert!(
        wait_until(
            || session_state(&rig, sid) != "live",
            Duration::from_secs(10)
        ),
        "the handler saw the close"
    );
    // The watchdog fires RECLAIM s after the close at the soonest: frozen
    // before then, Janus reports the timeout only once it runs again.
    let late = session_state(&rig, sid) == "awaiting_reclaim"
        && closed.elapsed() < Duration::from_secs(RECLAIM);
    rig.janus.freeze(Duration::from_secs(10));
    let events = wait_endings(&rig.out, &[sid], Duration::from_secs(30));
    let timed_out = timestamp_of(&events, |e| {
        e["session_id"] == sid && e["event"]["name"] == "timeout"
    });
    assert_eq!(
        only_ending(&events, sid),
        ("reclaim_expired".into(), true, timed_out)
    );
    if late {
        // The counters are published after the events are routed.
        let claims = || {
            let t = &info(&rig.janus)["tracker"];
            (t["claimed"].as_u64(), t["claims_retracted"].as_u64())
        };
        assert!(
            wait_until(|| claims() == (Some(1), Some(1)), Duration::from_secs(10)),
            "claimed, retracted: {:?}",
            claims()
        );
    } else {
        eprintln!("the freeze came after the watchdog could fire: no late timeout to tell");
    }
    assert!(rig.janus.stop().success());
    assert_eq!(endings(&read_jsonl(&rig.out)).len(), 1);
}

#[test]
fn sigint_with_live_sessions() {
    let mut rig = start(JanusOptions::default(), "");
    let mut ws = rig.janus.ws();
    let mut live: Vec<u64> = (0..5).map(|_| ws.create_session()).collect();
    ws.attach(live[0], "janus.plugin.echotest");
    let http = rig.janus.http();
    live.push(http.create_session());
    assert!(rig.janus.stop().success());
    // Written before destroy() returned: the file is complete once Janus exited.
    let events = read_jsonl(&rig.out);
    let shutdown = timestamp_of(&events, |e| e["type"] == 256 && e["subtype"] == 2);
    for s in &live {
        assert_eq!(
            only_ending(&events, *s),
            ("shutdown".into(), true, shutdown)
        );
    }
    assert_eq!(endings(&events).len(), live.len());
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    WsDestroy,
    HttpDestroy,
    AdminDestroy,
    Drop,
    Timeout,
    Shutdown,
}

#[test]
fn mixed_run_of_many_sessions() {
    let seed = std::env::var("MIXED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261124);
    let mut rng = Lcg(seed);
    let mut rig = start(JanusOptions::default(), "");
    // Janus >= 1.3.2 ends dropped connections' sessions itself.
    let drops_synthetic = !rig.janus.ends_sessions_on_transport_gone();
    let admin = rig.janus.admin();
    let http = rig.janus.http();
    let mut fates: HashMap<u64, Fate> = HashMap::new();
    let mut drops = Vec::new();
    let mut keep = Vec::new();
    // 70 connections with 1 to 4 sessions each, plus HTTP sessions.
    while fates.len() < 220 {
        let mut ws = rig.janus.ws();
        let n = 1 + rng.next(4);
        let dropping = rng.next(5) == 0;
        for _ in 0..n {
            let s = ws.create_session();
            if rng.next(2) == 0 {
                ws.attach(s, "janus.plugin.echotest");
            }
            let fate = if dropping {
                Fate::Drop
            } else {
                match rng.next(5) {
                    0 => Fate::WsDestroy,
                    1 => Fate::AdminDestroy,
                    2 => Fate::Timeout,
                    _ => Fate::Shutdown,
                }
            };
            match fate {
                Fate::WsDestroy => ws.destroy(s),
                Fate::AdminDestroy => {
                    admin.destroy_session(s);
                }
                Fate::Timeout => {
                    // This session alone times out after 3 s of silence.
                    let r = admin
                        .session_request(s, json!({"janus": "set_session_timeout", "timeout": 3}));
                    assert_eq!(r["janus"], "success", "{r}");
                }
                _ => {}
            }
            fates.insert(s, fate);
        }
        if dropping {
            drops.push(ws);
        } else {
            keep.push(ws);
        }
        if rng.next(4) == 0 {
            let s = http.create_session();
            http.destroy(s);
            fates.insert(s, Fate::HttpDestroy);
        }
    }
    for ws in drops {
        ws.drop_tcp();
    }
    // Every session but the shutdown ones ends before Janus stops.
    let early: Vec<u64> = fates
        .iter()
        .filter(|(_, f)| **f != Fate::Shutdown)
        .map(|(s, _)| *s)
        .collect();
    wait_endings(&rig.out, &early, Duration::from_secs(30));
    assert!(rig.janus.stop().success());
    drop(keep);

    let events = read_jsonl(&rig.out);
    let all = endings(&events);
    assert_eq!(all.len(), fates.len(), "one destroyed per session, no more");
    for (s, fate) in &fates {
        let (reason, synthetic, _) = only_ending(&events, *s);
        let want = match fate {
            Fate::WsDestroy | Fate::HttpDestroy | Fate::AdminDestroy => ("request", false),
            Fate::Drop => ("transport_gone", drops_synthetic),
            Fate::Timeout => ("timeout", true),
            Fate::Shutdown => ("shutdown", true),
        };
        assert_eq!(
            (reason.as_str(), synthetic),
            want,
            "session {s} ({fate:?}), seed {seed}"
        );
    }
    let created = events
        .iter()
        .filter(|e| e["type"] == 1 && e["event"]["name"] == "created")
        .count();
    assert_eq!(created, fates.len());
    assert!(fates.len() >= 200);
}

#[test]
fn invisible_disconnects_are_said_once() {
    // WebSockets transport with events off: no `disconnected` ever reaches
    // event handlers, so before Janus 1.3.2 a dropped connection's sessions
    // end only at timeout or shutdown. The handler notices it from the
    // stream (a WebSocket session on a connection that never said
    // `connected`) and says so.
    let mut rig = start(
        JanusOptions {
            ws_events: false,
            ..JanusOptions::default()
        },
        "",
    );
    assert_eq!(info(&rig.janus)["tracker"]["disconnects_visible"], true);
    let mut ws = rig.janus.ws();
    let s = ws.create_session();
    assert!(
        rig.janus
            .wait_log("has events = false", Duration::from_secs(5))
    );
    // The worker publishes its tracker's view once it is idle, maybe after
    // the log line.
    expect_info(
        &rig.janus,
        "disconnects_visible false",
        |i| i["tracker"]["disconnects_visible"] == false,
        Duration::from_secs(10),
    );
    ws.drop_tcp();
    // Janus has dealt with the drop (and sent every event it will about
    // it) once the session is gone from its list.
    let admin = rig.janus.admin();
    assert!(
        wait_until(
            || !admin.list_sessions().contains(&s),
            Duration::from_secs(10)
        ),
        "Janus still has session {s}"
    );
    // Whatever the handler made of it is in the file before the marker.
    let marker = send_marker(&rig.janus);
    expect_jsonl(
        &rig.out,
        "the marker",
        |e| has_marker(e, &marker),
        Duration::from_secs(10),
    );
    if rig.janus.ends_sessions_on_transport_gone() {
        // Janus >= 1.3.2 ends the session itself, and that is all there is.
        // Without the `disconnected` event, Janus's own ending looks exactly
        // like the answer to a `destroy` request: it is forwarded with
        // `reason: request` (a known limit, in docs/failures.md).
        let events = read_jsonl(&rig.out);
        assert_eq!(endings(&events).len(), 1, "Janus's own ending only");
        assert_eq!(only_ending(&events, s).0, "request");
        assert!(!only_ending(&events, s).1, "not made up");
        assert!(rig.janus.stop().success());
        assert_eq!(endings(&read_jsonl(&rig.out)).len(), 1);
    } else {
        assert!(
            endings(&read_jsonl(&rig.out)).is_empty(),
            "nothing seen, nothing made up"
        );
        assert!(rig.janus.stop().success());
        assert_eq!(only_ending(&read_jsonl(&rig.out), s).0, "shutdown");
    }
    assert_eq!(rig.janus.log().matches("has events = false").count(), 1);
}

/// A claimed session ends with its real reason. Janus emits nothing for a
/// claim; the handler knows a session was claimed when no `timeout` came by
/// the latest moment Janus's watchdog would have sent it
/// (`reclaim_session_timeout` + two 2 s ticks + the settle window after its
/// connection closed), and knows the new connection when exactly one opened
/// since: claim then a second close is `reclaim_expired`, claim then idle is
/// `timeout`, claim then destroy is `request`, claim then SIGINT is
/// `shutdown`.
#[test]
fn claimed_sessions_end_with_their_real_reason() {
    // The claims are known 3 + 4 + 0.5 s after each close; `idle` times out
    // 15 s after its claim, well after that. A reclaim timeout Janus reports
    // up to 15 - 2 s after a close, late, is still told from a claim.
    let mut rig = start(
        JanusOptions {
            reclaim_session_timeout: 3,
            session_timeout: 15,
            ..JanusOptions::default()
        },
        "",
    );
    // Claims that held: an inferred claim is withdrawn when the session's
    // reclaim timeout comes after all, late (a busy machine).
    let claimed = |rig: &Rig| {
        let t = &info(&rig.janus)["tracker"];
        t["claimed"].as_u64().unwrap() - t["claims_retracted"].as_u64().unwrap()
    };
    let state_of = session_state;

    // Claim, then the claiming connection closes too: reclaim_expired.
    let mut ws1 = rig.janus.ws();
    let again = ws1.create_session();
    ws1.attach(again, "janus.plugin.echotest");
    ws1.drop_tcp();
    let mut ws2 = rig.janus.ws();
    assert_eq!(ws2.claim(again)["janus"], "success");
    assert!(wait_until(|| claimed(&rig) == 1, Duration::from_secs(30)));
    assert_eq!(state_of(&rig, again), "claimed");
    ws2.keepalive(again);
    ws2.drop_tcp();

    // Claim, then idle / destroy / SIGINT.
    let mut ws3 = rig.janus.ws();
    let idle = ws3.create_session();
    let destroyed = ws3.create_session();
    let live = ws3.create_session();
    ws3.drop_tcp();
    let mut ws4 = rig.janus.ws();
    let mut ws5 = rig.janus.ws();
    assert_eq!(ws4.claim(idle)["janus"], "success");
    assert_eq!(ws4.claim(destroyed)["janus"], "success");
    assert_eq!(ws5.claim(live)["janus"], "success");
    let events = wait_endings(&rig.out, &[again], Duration::from_secs(30));
    assert_eq!(only_ending(&events, again).0, "reclaim_expired");
    assert!(wait_until(|| claimed(&rig) == 4, Duration::from_secs(30)));
    ws4.destroy(destroyed);
    // `idle` times out session_timeout after its claim; `live` is kept alive.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !endings(&read_jsonl(&rig.out)).iter().any(|e| e.0 == idle) {
        assert!(
            std::time::Instant::now() < deadline,
            "no timeout for {idle}"
        );
        ws5.keepalive(live);
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(state_of(&rig, live), "claimed");
    assert!(rig.janus.stop().success());
    let events = read_jsonl(&rig.out);
    assert_eq!(only_ending(&events, idle).0, "timeout");
    assert_eq!(only_ending(&events, destroyed).0, "request");
    assert_eq!(only_ending(&events, live).0, "shutdown");
    assert_eq!(endings(&events).len(), 4);
}
