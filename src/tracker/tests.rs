//! The tracker against recorded traces and hand-built orderings, each with
//! its exact expected output, and a property test over random interleavings.

use super::*;
use crate::janus::decode;

const TRACE_112: &str = include_str!("../../tests/traces/janus-1.1.2-destroy-drop-timeout.jsonl");
const TRACE_142: &str = include_str!("../../tests/traces/janus-1.4.2-drop-timeout.jsonl");
const TRACE_141: &str = include_str!("../../tests/traces/janus-1.4.1-shutdown-ws-http.jsonl");

/// Feeds JSON lines through a tracker and describes every output, one string each:
/// `fwd <what>` for a forwarded event, `end <sid> <reason>` for a forwarded native
/// `destroyed`, `SYNTH <sid> <reason> @<ts>` for a synthetic one, `dup <sid>`.
fn replay(tracker: &mut Tracker, lines: &[String]) -> Vec<String> {
    let mut described = Vec::new();
    let mut out = Vec::new();
    for line in lines {
        let facts = decode(line.as_bytes()).expect("valid event");
        out.clear();
        tracker.observe(&facts, &mut out);
        let what = label(line);
        described.extend(out.iter().map(|o| describe(o, &what)));
    }
    described
}

fn finish(tracker: &mut Tracker, now: i64) -> Vec<String> {
    let mut out = Vec::new();
    tracker.advance(now, &mut out);
    out.iter().map(|o| describe(o, "")).collect()
}

fn describe(o: &Output, what: &str) -> String {
    match o {
        Output::Forward => format!("fwd {what}"),
        Output::ForwardEnding(e) => {
            assert!(!e.synthetic);
            format!("end {} {}", e.session_id, e.reason.as_str())
        }
        Output::Synthesize(e) => {
            assert!(e.synthetic);
            format!(
                "SYNTH {} {} @{}{}",
                e.session_id,
                e.reason.as_str(),
                e.timestamp,
                if e.janus_ends_too { " (janus too)" } else { "" }
            )
        }
        Output::Duplicate { session_id } => format!("dup {session_id}"),
        Output::Echo { session_id } => format!("echo {session_id}"),
    }
}

/// A short label for an event line: "created 12", "disconnected", "shutdown", ...
fn label(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let sid = v["session_id"]
        .as_u64()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    let e = &v["event"];
    let name = e["name"]
        .as_str()
        .or(e["data"]["event"].as_str())
        .or(e["status"].as_str())
        .unwrap_or("other");
    format!("{name}{sid}")
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig::default())
}

#[test]
fn replays_janus_1_1_2_trace_exactly() {
    let mut t = tracker();
    let got = replay(&mut t, &lines(TRACE_112));
    let want = [
        "fwd connected",
        "fwd created 239993414290153",
        "fwd attached 239993414290153",
        "fwd disconnected",
        "fwd detached 239993414290153",
        // The next event is 3.3 s later: the settle window of the drop closed.
        "SYNTH 239993414290153 transport_gone @1795534522677901",
        "fwd connected",
        "fwd created 3876843123377874",
        "fwd attached 3876843123377874",
        "end 3876843123377874 request",
        "fwd disconnected",
        "fwd detached 3876843123377874",
        "fwd connected",
        "fwd created 5567222974919471",
        "fwd attached 5567222974919471",
        "fwd detached 5567222974919471",
        "fwd disconnected",
        // 1.1.2's race: the client closed on `timeout` before Janus reported it.
        "fwd timeout 5567222974919471",
        "SYNTH 5567222974919471 timeout @1795534536896713",
        "fwd shutdown",
    ];
    assert_eq!(got, want);
    assert_eq!(t.live_sessions(), 0);
    let s = t.stats();
    assert_eq!(s.created, 3);
    assert_eq!(s.synthetic, 2);
    assert_eq!(s.duplicates, 0);
}

#[test]
fn replays_janus_1_4_2_trace_exactly() {
    let mut t = tracker();
    let got = replay(&mut t, &lines(TRACE_142));
    let want = [
        "fwd started",
        "fwd connected",
        "fwd created 5688093653430080",
        "fwd attached 5688093653430080",
        "fwd disconnected",
        // 1.3.2+ sends its own destroyed: forwarded with the reason, no synthetic one.
        "end 5688093653430080 transport_gone",
        "fwd detached 5688093653430080",
        "fwd connected",
        "fwd created 6622599536206788",
        "fwd attached 6622599536206788",
        "fwd timeout 6622599536206788",
        "SYNTH 6622599536206788 timeout @1795534828895514",
        "fwd detached 6622599536206788",
        "fwd disconnected",
        "fwd update",
        "fwd shutdown",
    ];
    assert_eq!(got, want);
    assert_eq!(finish(&mut t, i64::MAX), Vec::<String>::new());
    assert_eq!(t.stats().synthetic, 1);
}

/// Event builders for hand-made orderings.
fn created(ts: i64, sid: u64, transport: &str) -> String {
    format!(
        r#"{{"emitter":"J","type":1,"timestamp":{ts},"session_id":{sid},"event":{{"name":"created","transport":{{"transport":"janus.transport.websockets","id":"{transport}"}}}}}}"#
    )
}
fn session(ts: i64, sid: u64, name: &str) -> String {
    format!(r#"{{"type":1,"timestamp":{ts},"session_id":{sid},"event":{{"name":"{name}"}}}}"#)
}
fn handle(ts: i64, sid: u64, hid: u64, name: &str) -> String {
    format!(
        r#"{{"type":2,"timestamp":{ts},"session_id":{sid},"handle_id":{hid},"event":{{"name":"{name}","plugin":"janus.plugin.echotest"}}}}"#
    )
}
fn disconnected(ts: i64, transport: &str) -> String {
    format!(
        r#"{{"type":128,"timestamp":{ts},"event":{{"transport":"janus.transport.websockets","id":"{transport}","data":{{"event":"disconnected"}}}}}}"#
    )
}
fn shutdown(ts: i64) -> String {
    format!(
        r#"{{"type":256,"subtype":2,"timestamp":{ts},"event":{{"status":"shutdown","signum":2}}}}"#
    )
}
fn connected(ts: i64, transport: &str) -> String {
    format!(
        r#"{{"type":128,"timestamp":{ts},"event":{{"transport":"janus.transport.websockets","id":"{transport}","data":{{"event":"connected"}}}}}}"#
    )
}
fn created_http(ts: i64, sid: u64, transport: &str) -> String {
    format!(
        r#"{{"type":1,"timestamp":{ts},"session_id":{sid},"event":{{"name":"created","transport":{{"transport":"janus.transport.http","id":"{transport}"}}}}}}"#
    )
}
fn started(version: &str, reclaim: u64) -> String {
    format!(
        r#"{{"type":256,"subtype":1,"timestamp":1,"event":{{"status":"started","info":{{"version_string":"{version}","reclaim-session-timeout":{reclaim}}}}}}}"#
    )
}
fn media(ts: i64, sid: u64) -> String {
    format!(
        r#"{{"type":32,"timestamp":{ts},"session_id":{sid},"handle_id":9,"event":{{"media":"audio"}}}}"#
    )
}

const MS: i64 = 1000;

#[test]
fn native_destroyed_right_after_disconnect_is_the_only_ending() {
    let mut t = tracker();
    let got = replay(
        &mut t,
        &[
            created(0, 1, "7"),
            disconnected(10, "7"),
            session(26, 1, "destroyed"),
        ],
    );
    assert_eq!(
        got,
        ["fwd created 1", "fwd disconnected", "end 1 transport_gone"]
    );
    assert!(finish(&mut t, 10 * 1000 * MS).is_empty());
}

#[test]
fn native_destroyed_after_the_settle_window_is_a_duplicate() {
    let mut t = tracker();
    let mut got = replay(&mut t, &[created(0, 1, "7"), disconnected(10, "7")]);
    got.extend(finish(&mut t, 10 + 500 * MS));
    got.extend(replay(&mut t, &[session(600 * MS, 1, "destroyed")]));
    assert_eq!(
        got,
        [
            "fwd created 1",
            "fwd disconnected",
            "SYNTH 1 transport_gone @10",
            "dup 1"
        ]
    );
    assert_eq!(t.stats().duplicates, 1);
}

#[test]
fn settle_window_waits_its_full_length() {
    let mut t = tracker();
    replay(&mut t, &[created(0, 1, "7"), disconnected(1_000, "7")]);
    assert!(finish(&mut t, 1_000 + 500 * MS - 1).is_empty());
    assert_eq!(
        finish(&mut t, 1_000 + 500 * MS),
        ["SYNTH 1 transport_gone @1000"]
    );
}

#[test]
fn timeout_then_disconnect_race_of_1_1_2() {
    // detached, then disconnected, then the session timeout, within 3 ms.
    let mut t = tracker();
    let got = replay(
        &mut t,
        &[
            created(0, 1, "7"),
            handle(1, 1, 2, "attached"),
            handle(9_000 * MS, 1, 2, "detached"),
            disconnected(9_000 * MS + 1_150, "7"),
            session(9_000 * MS + 2_992, 1, "timeout"),
        ],
    );
    assert_eq!(
        got,
        [
            "fwd created 1",
            "fwd attached 1",
            "fwd detached 1",
            "fwd disconnected",
            "fwd timeout 1",
            "SYNTH 1 timeout @9002992"
        ]
    );
    assert!(finish(&mut t, i64::MAX).is_empty());
}

#[test]
fn disconnect_ends_every_session_of_that_transport_only() {
    let mut t = tracker();
    let mut got = replay(
        &mut t,
        &[
            created(0, 1, "7"),
            created(1, 2, "7"),
            created(2, 3, "8"),
            disconnected(100, "7"),
        ],
    );
    got.extend(finish(&mut t, 100 + 500 * MS));
    assert_eq!(
        got[4..],
        ["SYNTH 1 transport_gone @100", "SYNTH 2 transport_gone @100"]
    );
    assert_eq!(t.live_sessions(), 1);
}

#[test]
fn a_reused_transport_id_does_not_end_new_sessions() {
    // Janus's transport ids hash a pointer: a new connection can get the id of
    // one that just closed (the 1.1.2 trace shows it).
    let mut t = tracker();
    let mut got = replay(
        &mut t,
        &[
            created(0, 1, "7"),
            disconnected(100, "7"),
            created(200, 2, "7"),
        ],
    );
    got.extend(finish(&mut t, 10_000 * MS));
    assert_eq!(
        got,
        [
            "fwd created 1",
            "fwd disconnected",
            "fwd created 2",
            "SYNTH 1 transport_gone @100"
        ]
    );
    assert_eq!(t.live_sessions(), 1);
}

fn reclaiming() -> Tracker {
    Tracker::new(TrackerConfig {
        reclaim_session_timeout: 5,
        ..TrackerConfig::default()
    })
}

#[test]
fn reclaim_expired() {
    let mut t = reclaiming();
    let mut got = replay(
        &mut t,
        &[
            created(0, 1, "7"),
            handle(1, 1, 2, "attached"),
            disconnected(100, "7"),
        ],
    );
    // No settle window with reclaim on: the session waits for Janus.
    got.extend(finish(&mut t, 4_000 * MS));
    // Media keeps flowing on the PeerConnection: that is not a claim.
    got.extend(replay(
        &mut t,
        &[
            media(1_000 * MS, 1),
            handle(6_000 * MS, 1, 2, "detached"),
            session(6_000 * MS + 5, 1, "timeout"),
        ],
    ));
    assert_eq!(
        got,
        [
            "fwd created 1",
            "fwd attached 1",
            "fwd disconnected",
            "fwd other 1",
            "fwd detached 1",
            "fwd timeout 1",
            "SYNTH 1 reclaim_expired @6000005"
        ]
    );
}

#[test]
fn claim_then_destroy_later() {
    let mut t = reclaiming();
    let mut got = replay(&mut t, &[created(0, 1, "7"), disconnected(100, "7")]);
    got.extend(finish(&mut t, 2_000 * MS));
    // The new connection claims the session and attaches: it lives on.
    got.extend(replay(&mut t, &[handle(2_000 * MS, 1, 3, "attached")]));
    // Claimed: no timeout by the latest time Janus would have sent it.
    assert_eq!(t.stats().claimed, 0);
    got.extend(finish(&mut t, 60_000 * MS));
    assert_eq!(t.stats().claimed, 1);
    got.extend(replay(&mut t, &[session(70_000 * MS, 1, "destroyed")]));
    assert_eq!(
        got,
        [
            "fwd created 1",
            "fwd disconnected",
            "fwd attached 1",
            "end 1 request"
        ]
    );
}

#[test]
fn reclaim_timeout_learned_from_janus_startup_unless_pinned() {
    let started = r#"{"type":256,"subtype":1,"timestamp":1,"event":{"status":"started","info":{"reclaim-session-timeout":30}}}"#;
    let mut t = tracker();
    replay(&mut t, &[started.to_string()]);
    assert_eq!(t.config().reclaim_session_timeout, 30);
    let mut pinned = Tracker::new(TrackerConfig {
        reclaim_pinned: true,
        ..TrackerConfig::default()
    });
    replay(&mut pinned, &[started.to_string()]);
    assert_eq!(pinned.config().reclaim_session_timeout, 0);
}

#[test]
fn shutdown_ends_every_open_session_in_creation_order() {
    let mut t = tracker();
    let mut input: Vec<String> = (1..=100)
        .map(|i| created(i, 1000 - i as u64, "7"))
        .collect();
    input.push(session(500, 999, "destroyed"));
    input.push(disconnected(600, "7"));
    input.push(shutdown(700));
    // After shutdown, Janus 1.4.2 may still report the transport sessions it tears down.
    input.push(session(800, 998, "destroyed"));
    let got = replay(&mut t, &input);
    let synth: Vec<&String> = got.iter().filter(|l| l.starts_with("SYNTH")).collect();
    assert_eq!(synth.len(), 99);
    assert_eq!(synth[0], "SYNTH 998 shutdown @700");
    assert_eq!(synth[98], "SYNTH 900 shutdown @700");
    let shutdown_pos = got.iter().position(|l| l == "fwd shutdown").unwrap();
    assert!(got[shutdown_pos + 1].starts_with("SYNTH"));
    assert_eq!(got.last().unwrap(), "dup 998");
    assert_eq!(t.live_sessions(), 0);
    assert!(t.is_shut_down());
}

#[test]
fn events_for_unknown_sessions() {
    let mut t = tracker();
    let got = replay(
        &mut t,
        &[
            handle(1, 42, 2, "attached"),
            session(2, 42, "destroyed"),
            session(3, 43, "timeout"),
            disconnected(4, "99"),
        ],
    );
    assert_eq!(
        got,
        [
            "fwd attached 42",
            "end 42 request",
            "fwd timeout 43",
            "SYNTH 43 timeout @3",
            "fwd disconnected"
        ]
    );
    assert_eq!(t.stats().unknown_sessions, 2);
    // A second ending for them is a duplicate all the same.
    assert_eq!(replay(&mut t, &[session(5, 42, "destroyed")]), ["dup 42"]);
}

#[test]
fn injected_destroyed_coming_back_is_an_echo_once() {
    let mut t = tracker();
    let mut got = replay(&mut t, &[created(0, 1, "7"), disconnected(100, "7")]);
    got.extend(finish(&mut t, 600 * MS));
    t.mark_injected(1);
    got.extend(replay(
        &mut t,
        &[
            session(601 * MS, 1, "destroyed"),
            session(602 * MS, 1, "destroyed"),
        ],
    ));
    assert_eq!(
        got,
        [
            "fwd created 1",
            "fwd disconnected",
            "SYNTH 1 transport_gone @100",
            "echo 1",
            "dup 1"
        ]
    );
    assert_eq!(t.stats().echoes, 1);
    assert_eq!(t.stats().duplicates, 1);
}

#[test]
fn eviction_keeps_memory_bounded() {
    let mut t = Tracker::new(TrackerConfig {
        max_sessions: 10,
        ..TrackerConfig::default()
    });
    let input: Vec<String> = (1..=25)
        .map(|i| created(i, i as u64, &i.to_string()))
        .collect();
    replay(&mut t, &input);
    assert_eq!(t.live_sessions(), 10);
    assert_eq!(t.stats().evicted, 15);
    let page = t.sessions_page(0, 100);
    assert_eq!(page.first().unwrap().session_id, 16);
    // An evicted session's native ending is still forwarded.
    assert_eq!(
        replay(&mut t, &[session(30, 3, "destroyed")]),
        ["end 3 request"]
    );
}

#[test]
fn sessions_page_lists_transport_and_handles() {
    let mut t = tracker();
    replay(
        &mut t,
        &[
            created(5, 1, "7"),
            handle(6, 1, 2, "attached"),
            created(7, 3, "8"),
        ],
    );
    let page = t.sessions_page(0, 1);
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].session_id, 1);
    assert_eq!(
        page[0].transport,
        Some(("janus.transport.websockets".to_string(), "7".to_string()))
    );
    assert_eq!(
        page[0].handles,
        vec![(2, "janus.plugin.echotest".to_string())]
    );
    assert_eq!(page[0].state, "live");
    assert_eq!(t.sessions_page(1, 10)[0].session_id, 3);
    assert!(t.sessions_page(2, 10).is_empty());
}

#[test]
fn tombstones_expire() {
    let mut t = Tracker::new(TrackerConfig {
        tombstone_us: 1_000 * MS,
        ..TrackerConfig::default()
    });
    replay(&mut t, &[created(0, 1, "7"), session(1, 1, "destroyed")]);
    assert_eq!(t.ended_reason(1), Some(Reason::Request));
    finish(&mut t, 2_000 * MS);
    assert_eq!(t.ended_reason(1), None);
}

mod property {
    //! Random interleavings of many sessions' event sequences, in the orders
    //! Janus can produce, always yield exactly one `destroyed` per session.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy)]
    enum End {
        Destroy,
        Timeout,
        /// Still open when its transport closes (or at shutdown).
        Open,
    }

    #[derive(Debug, Clone)]
    struct Transport {
        sessions: Vec<End>,
        drops: bool,
        /// 1.1.2's race: the client closes on `timeout` before Janus reports it.
        timeout_race: bool,
    }

    fn transport() -> impl Strategy<Value = Transport> {
        (
            prop::collection::vec(
                prop_oneof![Just(End::Destroy), Just(End::Timeout), Just(End::Open)],
                1..4,
            ),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(sessions, drops, timeout_race)| Transport {
                sessions,
                drops,
                timeout_race,
            })
    }

    /// The events one transport's sessions produce, in causal order, as
    /// (session or 0, kind) steps. `native` is Janus >= 1.3.2; `reclaim` on.
    fn script(
        t: &Transport,
        tid: usize,
        first_sid: u64,
        native: bool,
        reclaim: bool,
        claim: bool,
    ) -> Vec<(u64, String)> {
        let tr = tid.to_string();
        let mut steps = Vec::new();
        let sids: Vec<u64> = (0..t.sessions.len() as u64)
            .map(|i| first_sid + i)
            .collect();
        for &sid in &sids {
            steps.push((sid, format!("created {tr}")));
            steps.push((sid, "attached".to_string()));
        }
        let mut open = Vec::new();
        for (&sid, end) in sids.iter().zip(&t.sessions) {
            match end {
                End::Destroy => {
                    steps.push((sid, "destroyed".into()));
                    steps.push((sid, "detached".into()));
                }
                End::Timeout if t.timeout_race && t.drops && !reclaim => {
                    steps.push((sid, "detached".into()));
                    steps.push((0, format!("disconnected {tr}")));
                    steps.push((sid, "timeout".into()));
                    return steps;
                }
                End::Timeout => {
                    steps.push((sid, "timeout".into()));
                    steps.push((sid, "detached".into()));
                }
                End::Open => open.push(sid),
            }
        }
        if t.drops {
            steps.push((0, format!("disconnected {tr}")));
            for sid in open {
                match (reclaim, native) {
                    (false, true) => {
                        steps.push((sid, "destroyed".into()));
                        steps.push((sid, "detached".into()));
                    }
                    (false, false) => steps.push((sid, "detached".into())),
                    (true, _) if claim => {
                        steps.push((sid, "attached".into()));
                        steps.push((sid, "destroyed".into()));
                    }
                    (true, _) => {
                        steps.push((sid, "detached".into()));
                        steps.push((sid, "timeout".into()));
                    }
                }
            }
        }
        steps
    }

    fn render(ts: i64, sid: u64, step: &str) -> String {
        let mut words = step.split(' ');
        match (words.next().unwrap(), words.next()) {
            ("created", Some(tr)) => created(ts, sid, tr),
            ("disconnected", Some(tr)) => disconnected(ts, tr),
            ("attached", _) => handle(ts, sid, sid * 10, "attached"),
            ("detached", _) => handle(ts, sid, sid * 10, "detached"),
            (name, _) => session(ts, sid, name),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn exactly_one_destroyed_per_created_session(
            transports in prop::collection::vec(transport(), 1..12),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 200),
            gaps in prop::collection::vec(0i64..900_000, 200),
            native in any::<bool>(),
            reclaim in any::<bool>(),
            claim in any::<bool>(),
            end_with_shutdown in any::<bool>(),
        ) {
            let mut scripts: Vec<std::collections::VecDeque<(u64, String)>> = Vec::new();
            let mut sid = 1;
            for (i, t) in transports.iter().enumerate() {
                scripts.push(script(t, i + 1, sid, native, reclaim, claim).into());
                sid += t.sessions.len() as u64;
            }
            let total_sessions = sid - 1;
            let mut t = Tracker::new(TrackerConfig {
                reclaim_session_timeout: if reclaim { 10 } else { 0 },
                ..TrackerConfig::default()
            });
            let mut out = Vec::new();
            let mut ts = 1_000_000;
            let mut k = 0;
            while scripts.iter().any(|s| !s.is_empty()) {
                let live: Vec<usize> = (0..scripts.len()).filter(|&i| !scripts[i].is_empty()).collect();
                let pick = live[picks[k % picks.len()].index(live.len())];
                ts += gaps[k % gaps.len()];
                k += 1;
                let (sid, step) = scripts[pick].pop_front().unwrap();
                let line = render(ts, sid, &step);
                t.observe(&decode(line.as_bytes()).unwrap(), &mut out);
            }
            if end_with_shutdown {
                t.observe(&decode(shutdown(ts + 1).as_bytes()).unwrap(), &mut out);
            } else {
                t.advance(ts + 10_000_000, &mut out);
                t.shutdown(ts + 10_000_001, &mut out);
            }
            let mut count = std::collections::HashMap::new();
            for o in &out {
                match o {
                    Output::ForwardEnding(e) | Output::Synthesize(e) => {
                        *count.entry(e.session_id).or_insert(0) += 1;
                    }
                    _ => {}
                }
            }
            for s in 1..=total_sessions {
                prop_assert_eq!(count.get(&s).copied(), Some(1), "session {}", s);
            }
            prop_assert_eq!(count.len() as u64, total_sessions);
            prop_assert_eq!(t.live_sessions(), 0);
        }
    }

    /// One session whose connection closes with reclaim on, as Janus's
    /// sources (janus.c: `janus_check_sessions`, the `claim` request,
    /// `last_activity`) would end it, with the watchdog late and the events
    /// delivered late by random amounts. Times in ms from the close.
    #[derive(Debug, Clone)]
    struct Reclaim {
        /// `reclaim_session_timeout`, s.
        reclaim: i64,
        /// `session_timeout`, s: 0 (never), or longer than the time the
        /// tracker takes to infer a claim, so that the claimed session's
        /// idle timeout comes after it.
        session_timeout: i64,
        /// Requests (new handles) while the session waits, each within the
        /// reclaim window the previous one restarted.
        waiting_requests: Vec<i64>,
        /// Claimed this far into the last window, then requests at these
        /// gaps (each shorter than `session_timeout`), then idle until
        /// Janus times it out, up to a watchdog tick later.
        claim: Option<(i64, Vec<i64>, i64)>,
        /// Not claimed: how late Janus's watchdog reports the reclaim
        /// timeout, as a fraction of what `session_timeout` leaves room for
        /// (less the watchdog tick the tracker keeps back).
        lateness: f64,
        /// How far the worker's clock ran ahead of each event's timestamp
        /// when it was delivered.
        delivery: Vec<i64>,
    }

    fn reclaim_case() -> impl Strategy<Value = Reclaim> {
        (1i64..30, prop_oneof![Just(None), (5i64..60).prop_map(Some)]).prop_flat_map(
            |(reclaim, extra)| {
                let session_timeout = extra.map_or(0, |e| reclaim + e);
                let window = reclaim * 1000;
                let idle_gap = if session_timeout > 0 {
                    session_timeout * 1000
                } else {
                    600_000
                };
                (
                    Just(reclaim),
                    Just(session_timeout),
                    prop::collection::vec(0..window, 0..3),
                    prop::option::of((
                        0..window,
                        prop::collection::vec(1..idle_gap, 0..3),
                        0i64..2000,
                    )),
                    0.0f64..1.0,
                    prop::collection::vec(0i64..10_000, 12),
                )
                    .prop_map(
                        move |(_, _, waiting_requests, claim, lateness, delivery)| Reclaim {
                            reclaim,
                            session_timeout,
                            waiting_requests,
                            claim,
                            lateness,
                            delivery,
                        },
                    )
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// However late Janus's watchdog reports a reclaim timeout, short of
        /// `session_timeout` after the session's last activity, it ends
        /// `reclaim_expired`; a claimed session that idles out ends
        /// `timeout`; never two endings.
        #[test]
        fn a_late_reclaim_timeout_is_told_from_a_claimed_session_idling_out(c in reclaim_case()) {
            let ms = |t: i64| 1_000_000_000 + t * MS;
            let mut events = vec![
                started_with("1.1.2", c.session_timeout as u64, c.reclaim as u64),
                connected(ms(-3000), "7"),
                created(ms(-2000), 1, "7"),
                disconnected(ms(0), "7"),
                connected(ms(1), "8"),
            ];
            // Janus's last_activity: the close (transport_gone), then each request.
            let mut activity = 0;
            let mut hid = 10;
            let mut request = |at: i64, events: &mut Vec<String>| {
                hid += 1;
                events.push(handle(ms(at), 1, hid, "attached"));
            };
            for gap in &c.waiting_requests {
                activity += gap;
                request(activity, &mut events);
            }
            let expect = match &c.claim {
                Some((after, gaps, tick)) => {
                    // The claim is a request too (no event of its own).
                    activity += after;
                    for gap in gaps {
                        activity += gap;
                        request(activity, &mut events);
                    }
                    if c.session_timeout > 0 {
                        let at = activity + c.session_timeout * 1000 + tick;
                        events.push(session(ms(at), 1, "timeout"));
                        "timeout"
                    } else {
                        "shutdown"
                    }
                }
                None => {
                    let room = if c.session_timeout > 0 {
                        (c.session_timeout - c.reclaim) * 1000 - 2000
                    } else {
                        600_000
                    };
                    let late = (room as f64 * c.lateness) as i64;
                    let at = activity + c.reclaim * 1000 + late;
                    events.push(session(ms(at), 1, "timeout"));
                    "reclaim_expired"
                }
            };
            let mut t = Tracker::new(TrackerConfig::default());
            let mut out = Vec::new();
            for (i, line) in events.iter().enumerate() {
                let facts = decode(line.as_bytes()).unwrap();
                t.advance(facts.timestamp + c.delivery[i % c.delivery.len()] * MS, &mut out);
                t.observe(&facts, &mut out);
            }
            t.shutdown(ms(10_000_000), &mut out);
            let endings: Vec<&str> = out
                .iter()
                .filter_map(|o| match o {
                    Output::ForwardEnding(e) | Output::Synthesize(e) => Some(e.reason.as_str()),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(endings, vec![expect]);
            let retracted = u64::from(c.claim.is_none() && t.stats().claimed > 0);
            prop_assert_eq!(t.stats().claims_retracted, retracted);
        }
    }
}

#[test]
fn replays_janus_1_4_1_shutdown_trace_exactly() {
    let mut t = tracker();
    let got = replay(&mut t, &lines(TRACE_141));
    assert_eq!(
        got,
        [
            "fwd started",
            "fwd created 7073622160783577",
            "fwd attached 7073622160783577",
            "fwd connected",
            "fwd created 1278941329532068",
            "fwd attached 1278941329532068",
            "fwd shutdown",
            // The HTTP session: nobody else ends it.
            "SYNTH 7073622160783577 shutdown @1795606151975813",
            // The WebSocket session: Janus 1.4.1 ends it itself as the
            // transport closes its connection (below), so it is not injected.
            "SYNTH 1278941329532068 shutdown @1795606151975813 (janus too)",
            "fwd disconnected",
            "dup 1278941329532068",
            "fwd detached 1278941329532068"
        ]
    );
    let j = t.janus();
    assert_eq!(j.version, Some(Version(1, 4, 1)));
    assert!(j.ends_transport_gone);
}

/// Who Janus ends itself at shutdown: only connection sessions, only on
/// Janus >= 1.3.2, only with reclaim off.
#[test]
fn janus_ends_connection_sessions_at_shutdown_from_1_3_2_with_reclaim_off() {
    let run = |version: &str, reclaim: u64| {
        let mut t = tracker();
        let mut input = vec![started(version, reclaim), connected(5, "7")];
        input.extend([created(10, 1, "7"), created_http(11, 2, "8")]);
        // A WebSocket session whose connection never reported `connected`
        // (the transport's events are off): on Janus >= 1.3.2 with reclaim
        // off a live WebSocket session is on an open connection all the same
        // (Janus would have ended it when that closed).
        input.push(created(12, 3, "9"));
        input.push(shutdown(20));
        let got = replay(&mut t, &input);
        got.into_iter()
            .filter(|l| l.starts_with("SYNTH"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run("1.4.1", 0),
        [
            "SYNTH 1 shutdown @20 (janus too)",
            "SYNTH 2 shutdown @20",
            "SYNTH 3 shutdown @20 (janus too)"
        ]
    );
    for (version, reclaim) in [("1.1.2", 0), ("1.4.1", 8)] {
        assert_eq!(
            run(version, reclaim),
            [
                "SYNTH 1 shutdown @20",
                "SYNTH 2 shutdown @20",
                "SYNTH 3 shutdown @20"
            ],
            "{version} reclaim {reclaim}"
        );
    }
}

/// Janus >= 1.3.2 ends a transport-gone session itself (reclaim off): when it
/// does not, another connection had claimed the session, which lives on.
#[test]
fn a_session_janus_does_not_end_on_1_3_2_was_claimed() {
    let mut t = tracker();
    let mut got = replay(
        &mut t,
        &[
            started("1.4.1", 0),
            connected(5, "7"),
            created(10, 1, "7"),
            created(11, 2, "7"),
            disconnected(100, "7"),
            // Janus ends session 1 at once; session 2 was claimed elsewhere.
            session(101, 1, "destroyed"),
        ],
    );
    got.extend(finish(&mut t, 100 + 600 * MS));
    assert_eq!(t.stats().claimed, 1);
    assert!(t.is_open(2));
    got.extend(replay(&mut t, &[session(900 * MS, 2, "destroyed")]));
    assert_eq!(
        &got[got.len() - 3..],
        ["fwd disconnected", "end 1 transport_gone", "end 2 request"]
    );
}

/// On a Janus that did not say its version, a native `destroyed` for a
/// transport-gone session proves the 1.3.2 behaviour.
#[test]
fn janus_ending_transport_gone_sessions_is_learned_from_the_stream() {
    let mut t = tracker();
    assert!(!t.janus().ends_transport_gone);
    replay(
        &mut t,
        &[
            created(10, 1, "7"),
            disconnected(100, "7"),
            session(101, 1, "destroyed"),
        ],
    );
    assert!(t.janus().ends_transport_gone);
}

/// Reclaim on: a session with no `timeout` by the time Janus's watchdog
/// would have sent one was claimed; its claimer is the one connection opened
/// since, so when that one closes too the session ends `reclaim_expired`.
#[test]
fn claim_then_second_close_is_reclaim_expired() {
    let mut t = reclaiming();
    let mut got = replay(
        &mut t,
        &[
            connected(5, "7"),
            created(10, 1, "7"),
            disconnected(100 * MS, "7"),
            connected(200 * MS, "8"),
        ],
    );
    // 5 s reclaim + two 2 s watchdog ticks + 0.5 s settle after the close.
    got.extend(finish(&mut t, 100 * MS + 9_499 * MS));
    assert_eq!(t.stats().claimed, 0);
    got.extend(finish(&mut t, 100 * MS + 9_500 * MS));
    assert_eq!(t.stats().claimed, 1);
    let page = t.sessions_page(0, 10);
    assert_eq!(page[0].state, "claimed");
    assert_eq!(page[0].transport.as_ref().unwrap().1, "8");
    got.extend(replay(
        &mut t,
        &[
            disconnected(20_000 * MS, "8"),
            session(25_000 * MS, 1, "timeout"),
        ],
    ));
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 reclaim_expired @{}", 25_000 * MS)
    );
}

/// Claimed sessions end with their real reason: timeout, request, shutdown.
#[test]
fn claimed_sessions_end_with_their_real_reason() {
    let setup = || {
        let mut t = reclaiming();
        replay(
            &mut t,
            &[
                connected(5, "7"),
                created(10, 1, "7"),
                disconnected(100 * MS, "7"),
                connected(200 * MS, "8"),
            ],
        );
        finish(&mut t, 20_000 * MS);
        assert_eq!(t.stats().claimed, 1);
        t
    };
    let mut t = setup();
    let got = replay(&mut t, &[session(60_000 * MS, 1, "timeout")]);
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 timeout @{}", 60_000 * MS)
    );
    let mut t = setup();
    let got = replay(&mut t, &[session(60_000 * MS, 1, "destroyed")]);
    assert_eq!(got, ["end 1 request"]);
    let mut t = setup();
    let got = replay(&mut t, &[shutdown(60_000 * MS)]);
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 shutdown @{}", 60_000 * MS)
    );
}

/// Two connections opened since the close: the claimer is not known, the
/// session is still claimed (and a later timeout is a timeout).
#[test]
fn an_ambiguous_claimer_leaves_the_binding_unknown() {
    let mut t = reclaiming();
    replay(
        &mut t,
        &[
            connected(5, "7"),
            created(10, 1, "7"),
            disconnected(100 * MS, "7"),
            connected(200 * MS, "8"),
            connected(300 * MS, "9"),
        ],
    );
    finish(&mut t, 20_000 * MS);
    assert_eq!(t.stats().claimed, 1);
    assert_eq!(t.sessions_page(0, 1)[0].transport, None);
    let got = replay(
        &mut t,
        &[
            disconnected(21_000 * MS, "8"),
            session(30_000 * MS, 1, "timeout"),
        ],
    );
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 timeout @{}", 30_000 * MS)
    );
}

/// Every ending carries the session's creation time and the transport it
/// was created on, even after a claim moved it elsewhere.
#[test]
fn endings_carry_creation_and_transport() {
    let mut t = reclaiming();
    let mut out = Vec::new();
    for line in [
        connected(5, "7"),
        created(10, 1, "7"),
        disconnected(100 * MS, "7"),
        connected(200 * MS, "8"),
    ] {
        t.observe(&decode(line.as_bytes()).unwrap(), &mut out);
    }
    t.advance(20_000 * MS, &mut out);
    out.clear();
    t.observe(
        &decode(session(60_000 * MS, 1, "timeout").as_bytes()).unwrap(),
        &mut out,
    );
    let Some(Output::Synthesize(e)) = out.last() else {
        panic!("{out:?}");
    };
    assert_eq!(e.created, Some(10));
    assert_eq!(e.duration_us(), Some(60_000 * MS - 10));
    let (module, id) = t.transport_names(e.transport.unwrap());
    assert_eq!((module, id.as_str()), ("janus.transport.websockets", "7"));
}

/// A WebSocket session on a connection that never said `connected`: the
/// transport's events are off, disconnects are invisible.
#[test]
fn invisible_disconnects_are_noticed() {
    let mut t = tracker();
    replay(
        &mut t,
        &[
            connected(1, "7"),
            created(2, 1, "7"),
            created_http(3, 2, "9"),
        ],
    );
    assert!(t.janus().disconnects_visible);
    replay(&mut t, &[created(4, 3, "8")]);
    assert!(!t.janus().disconnects_visible);
}

/// On a Janus that says it is 1.1.x, a native `destroyed` right after a
/// disconnect answers the client's own `destroy` (sent just before it
/// closed): a request, and no proof of the 1.3.2 behaviour.
#[test]
fn a_destroy_racing_a_close_on_1_1_2_is_a_request() {
    let mut t = tracker();
    let got = replay(
        &mut t,
        &[
            started("1.1.2", 0),
            connected(5, "7"),
            created(10, 1, "7"),
            disconnected(100, "7"),
            session(101, 1, "destroyed"),
        ],
    );
    assert_eq!(got.last().unwrap(), "end 1 request");
    assert!(!t.janus().ends_transport_gone);
    // Later disconnects are still ended by the handler.
    let mut got = replay(
        &mut t,
        &[
            connected(200, "8"),
            created(210, 2, "8"),
            disconnected(300, "8"),
        ],
    );
    got.extend(finish(&mut t, 300 + 600 * MS));
    assert_eq!(got.last().unwrap(), "SYNTH 2 transport_gone @300");
}

/// What the metrics read: handles by plugin, connections by transport, the
/// core's own counts, synthetic endings by reason.
#[test]
fn counts_handles_connections_and_core_status() {
    let mut t = tracker();
    let ev = |ty: u32, sid: u64, hid: u64, ts: i64, event: &str| {
        let mut s = format!(r#"{{"type": {ty}, "timestamp": {ts}, "event": {event}"#);
        if sid > 0 {
            s += &format!(r#", "session_id": {sid}"#);
        }
        if hid > 0 {
            s += &format!(r#", "handle_id": {hid}"#);
        }
        s + "}"
    };
    let ws = "janus.transport.websockets";
    let lines = [
        ev(
            128,
            0,
            0,
            1,
            &format!(r#"{{"transport": "{ws}", "id": "7", "data": {{"event": "connected"}}}}"#),
        ),
        ev(
            128,
            0,
            0,
            2,
            &format!(r#"{{"transport": "{ws}", "id": "8", "data": {{"event": "connected"}}}}"#),
        ),
        ev(
            1,
            1,
            0,
            3,
            &format!(r#"{{"name": "created", "transport": {{"transport": "{ws}", "id": "7"}}}}"#),
        ),
        ev(
            1,
            2,
            0,
            4,
            &format!(r#"{{"name": "created", "transport": {{"transport": "{ws}", "id": "8"}}}}"#),
        ),
        ev(
            2,
            1,
            10,
            5,
            r#"{"name": "attached", "plugin": "janus.plugin.echotest"}"#,
        ),
        ev(
            2,
            1,
            11,
            6,
            r#"{"name": "attached", "plugin": "janus.plugin.echotest"}"#,
        ),
        ev(
            2,
            1,
            11,
            6,
            r#"{"name": "attached", "plugin": "janus.plugin.echotest"}"#,
        ),
        ev(
            2,
            2,
            20,
            7,
            r#"{"name": "attached", "plugin": "janus.plugin.videoroom"}"#,
        ),
        ev(2, 1, 10, 8, r#"{"name": "detached"}"#),
        ev(2, 1, 10, 8, r#"{"name": "detached"}"#),
    ];
    let mut out = Vec::new();
    for l in &lines {
        t.observe(&decode(l.as_bytes()).unwrap(), &mut out);
    }
    let plugins = |t: &Tracker| t.handles_by_plugin();
    assert_eq!(
        plugins(&t),
        vec![
            ("janus.plugin.echotest".to_string(), 1),
            ("janus.plugin.videoroom".to_string(), 1)
        ]
    );
    assert_eq!(t.connections_by_transport(), vec![(ws.to_string(), 2)]);
    assert_eq!(t.janus().core, None);
    // Session 2's connection closes: its handle goes with the session.
    let gone = ev(
        128,
        0,
        0,
        9,
        &format!(r#"{{"transport": "{ws}", "id": "8", "data": {{"event": "disconnected"}}}}"#),
    );
    t.observe(&decode(gone.as_bytes()).unwrap(), &mut out);
    assert_eq!(t.connections_by_transport(), vec![(ws.to_string(), 1)]);
    out.clear();
    t.advance(10_000_000, &mut out);
    assert!(matches!(
        out[..],
        [Output::Synthesize(Ending { session_id: 2, .. })]
    ));
    assert_eq!(plugins(&t)[1].1, 0);
    assert_eq!(plugins(&t)[0].1, 1);
    let i = Reason::ALL
        .iter()
        .position(|r| *r == Reason::TransportGone)
        .unwrap();
    assert_eq!(t.stats().synthetic_by_reason[i], 1);
    // Session 1 is destroyed by request (native): its handle goes too.
    let destroyed = ev(1, 1, 0, 10_000_001, r#"{"name": "destroyed"}"#);
    t.observe(&decode(destroyed.as_bytes()).unwrap(), &mut out);
    assert_eq!(plugins(&t)[0].1, 0);
    assert_eq!(t.stats().synthetic_by_reason.iter().sum::<u64>(), 1);
    // Janus >= 1.2's periodic status.
    let update = r#"{"type": 256, "subtype": 1, "timestamp": 10000002, "event": {"status": "update", "info": {"sessions": 4, "handles": 5, "peerconnections": 6}}}"#;
    t.observe(&decode(update.as_bytes()).unwrap(), &mut out);
    assert_eq!(
        t.janus().core,
        Some(CoreCounts {
            sessions: Some(4),
            handles: Some(5),
            peerconnections: Some(6)
        })
    );
}

/// A core `started` event with the session timeouts Janus reports
/// (`session-timeout` 0: sessions never idle out).
fn started_with(version: &str, session_timeout: u64, reclaim: u64) -> String {
    format!(
        r#"{{"type":256,"subtype":1,"timestamp":1,"event":{{"status":"started","info":{{"version_string":"{version}","session-timeout":{session_timeout},"reclaim-session-timeout":{reclaim}}}}}}}"#
    )
}

/// Reclaim 5 s on a Janus whose `session_timeout` is `session_timeout`: one
/// session whose connection "7" closes at 100 ms, one connection ("8")
/// opened since, and the clock past the moment the claim is inferred
/// (5 s + two ticks + 0.5 s settle after the close).
fn inferred_claim(session_timeout: Option<u64>) -> (Tracker, Vec<String>) {
    let mut t = Tracker::new(TrackerConfig {
        reclaim_session_timeout: 5,
        ..TrackerConfig::default()
    });
    let mut events = Vec::new();
    if let Some(st) = session_timeout {
        events.push(started_with("1.1.2", st, 5));
    }
    events.extend([
        connected(5, "7"),
        created(10, 1, "7"),
        handle(20, 1, 2, "attached"),
        disconnected(100 * MS, "7"),
        connected(200 * MS, "8"),
    ]);
    let mut got = replay(&mut t, &events);
    got.extend(finish(&mut t, 100 * MS + 9_500 * MS));
    assert_eq!(t.stats().claimed, 1);
    let page = t.sessions_page(0, 10);
    assert_eq!(page[0].state, "claimed");
    assert_eq!(page[0].transport.as_ref().unwrap().1, "8");
    (t, got)
}

/// Janus's watchdog reports a reclaim timeout late (a busy machine): the
/// claim was inferred, then the `timeout` came 12 s after the close. A
/// session claimed after its close cannot idle out before `session_timeout`
/// (60 s) has passed since the close, so this is the reclaim expiring: the
/// ending is `reclaim_expired` and the inferred claim is withdrawn.
#[test]
fn a_late_reclaim_timeout_within_session_timeout_is_reclaim_expired() {
    let (mut t, _) = inferred_claim(Some(60));
    let got = replay(
        &mut t,
        &[
            handle(12_000 * MS, 1, 2, "detached"),
            session(12_000 * MS + 5, 1, "timeout"),
        ],
    );
    assert_eq!(
        got,
        [
            "fwd detached 1",
            "fwd timeout 1",
            &format!("SYNTH 1 reclaim_expired @{}", 12_000 * MS + 5),
        ]
    );
    assert_eq!(t.live_sessions(), 0);
    // `claimed` never goes down (it is a counter); the withdrawn claim is
    // counted beside it.
    assert_eq!((t.stats().claimed, t.stats().claims_retracted), (1, 1));
    assert_eq!(t.janus().session_timeout, Some(60));
    // The session is no longer bound to the connection taken as its claimer.
    let mut got = replay(&mut t, &[disconnected(13_000 * MS, "8")]);
    got.extend(finish(&mut t, 60_000 * MS));
    assert_eq!(got, ["fwd disconnected"]);
    assert_eq!(t.ended_reason(1), Some(Reason::ReclaimExpired));
}

/// The same `timeout` about `session_timeout` past the close may be the
/// claimed session idling out: it stays `timeout`. One watchdog tick (2 s)
/// is kept back, for a claim Janus handled just before it saw the close.
#[test]
fn a_timeout_after_session_timeout_from_the_close_is_a_timeout() {
    let (mut t, _) = inferred_claim(Some(60));
    let got = replay(&mut t, &[session(100 * MS + 58_000 * MS, 1, "timeout")]);
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 timeout @{}", 100 * MS + 58_000 * MS)
    );
    assert_eq!((t.stats().claimed, t.stats().claims_retracted), (1, 0));
    // Just before it, it is the reclaim expiring.
    let (mut t, _) = inferred_claim(Some(60));
    let got = replay(&mut t, &[session(100 * MS + 58_000 * MS - 1, 1, "timeout")]);
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 reclaim_expired @{}", 100 * MS + 58_000 * MS - 1)
    );
}

/// `session_timeout = 0`: Janus never idles a session out, so any `timeout`
/// of a session whose claim was inferred is a reclaim expiring. Unknown
/// (no `started` seen): nothing proves it, Janus's `timeout` stands.
#[test]
fn session_timeout_never_or_unknown() {
    let (mut t, _) = inferred_claim(Some(0));
    let got = replay(&mut t, &[session(3_600_000 * MS, 1, "timeout")]);
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 reclaim_expired @{}", 3_600_000 * MS)
    );
    let (mut t, _) = inferred_claim(None);
    let got = replay(&mut t, &[session(12_000 * MS, 1, "timeout")]);
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 timeout @{}", 12_000 * MS)
    );
}

/// A request on the session (a new handle, a JSEP) restarts Janus's
/// reclaim window, and sets its `last_activity`: the window that a late
/// reclaim timeout is measured against starts at the latest request, both
/// while the session awaits its reclaim and once its claim is inferred.
#[test]
fn a_request_moves_the_window_a_late_reclaim_timeout_is_measured_from() {
    let st = 20;
    // A request 4 s after the close restarts the window: the claim is
    // inferred 4 + 5 + 4 + 0.5 s after the close, and the timeout comes late
    // at 22 s, past close + 20 s but before request + 20 s (less a 2 s tick).
    let mut t = Tracker::new(TrackerConfig {
        reclaim_session_timeout: 5,
        ..TrackerConfig::default()
    });
    let mut got = replay(
        &mut t,
        &[
            started_with("1.1.2", st, 5),
            connected(5, "7"),
            created(10, 1, "7"),
            disconnected(100 * MS, "7"),
            handle(4_100 * MS, 1, 2, "attached"),
        ],
    );
    got.extend(finish(&mut t, 4_100 * MS + 9_499 * MS));
    assert_eq!(t.stats().claimed, 0);
    got.extend(finish(&mut t, 4_100 * MS + 9_500 * MS));
    assert_eq!(t.stats().claimed, 1);
    got.extend(replay(&mut t, &[session(22_000 * MS, 1, "timeout")]));
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 reclaim_expired @{}", 22_000 * MS)
    );
    // A request once the claim is inferred: the same.
    let (mut t, _) = inferred_claim(Some(st));
    let got = replay(
        &mut t,
        &[
            handle(15_000 * MS, 1, 3, "attached"),
            session(30_000 * MS, 1, "timeout"),
        ],
    );
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 reclaim_expired @{}", 30_000 * MS)
    );
    // Events a request does not cause (media, a detach) do not move it.
    let (mut t, _) = inferred_claim(Some(st));
    let got = replay(
        &mut t,
        &[
            media(15_000 * MS, 1),
            handle(16_000 * MS, 1, 2, "detached"),
            session(30_000 * MS, 1, "timeout"),
        ],
    );
    assert_eq!(
        got.last().unwrap(),
        &format!("SYNTH 1 timeout @{}", 30_000 * MS)
    );
}
