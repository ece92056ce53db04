//! Nothing lost when Janus dies: a real Janus is killed (SIGKILL) with
//! sessions open, and killed again at chosen moments of its restart, or
//! killed under churn; after the last restart, the JSON Lines file holds
//! exactly one `destroyed` per created session (crash recovery's
//! `gateway_restart` for those the crash left open), and the spooled HTTP
//! backend got every ending (at least once).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use serde_json::Value;

struct Setup {
    _dir: tempfile::TempDir,
    janus_dir: PathBuf,
    out: PathBuf,
    config: String,
}

/// A handler with crash recovery, the file sink and a spooled HTTP sink.
fn setup(backend: &Receiver) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let config = format!(
        "general: {{ enabled = true, state_dir = \"{}\", checkpoint_ms = 200 }}\n\
         file: {{ path = \"{}\" }}\n\
         http: {{ backend = \"{}\", spool_dir = \"{}\", max_delay_ms = 20 }}\n",
        dir.path().join("state").display(),
        out.display(),
        backend.url(),
        dir.path().join("spool").display(),
    );
    let janus_dir = dir.path().join("janus");
    std::fs::create_dir_all(&janus_dir).unwrap();
    Setup {
        _dir: dir,
        janus_dir,
        out,
        config,
    }
}

impl Setup {
    fn opts(&self) -> JanusOptions {
        JanusOptions {
            lifecycleevh_config: Some(self.config.clone()),
            ..JanusOptions::default()
        }
    }
}

fn created_in(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == 1 && e["event"]["name"] == "created")
        .count()
}

/// Every session created in the file has exactly one `destroyed` there. A
/// session whose `created` line was still in the handler's memory when
/// Janus was killed has no `created` in the file, but its one ending all
/// the same (crash recovery had it: `gateway_restart`, or the ending that
/// was decided when Janus died, e.g. `request`).
fn assert_one_ending_each(out: &Path) -> HashMap<u64, (usize, Vec<String>)> {
    let t = tally(&read_jsonl(out));
    let wrong: Vec<_> = t
        .iter()
        .filter(|(_, (created, ends))| *created > 1 || ends.len() != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "sessions without exactly one ending: {wrong:?}"
    );
    t
}

/// At least once may repeat an ending, never contradict it: every session
/// that `events` (what a spooled backend got) ends has one reason, however
/// many times its `destroyed` came.
fn assert_no_contradiction(events: &[Value]) {
    let contradicted: Vec<_> = tally(events)
        .into_iter()
        .filter(|(_, (_, ends))| ends.iter().any(|r| *r != ends[0]))
        .collect();
    assert!(
        contradicted.is_empty(),
        "sessions ended with different reasons: {contradicted:?}"
    );
}

/// When, in the restart, the second SIGKILL comes.
#[derive(Clone, Copy)]
enum Moment {
    /// As soon as Janus is spawned (before the handler is loaded).
    AtOnce,
    /// This long after the handler said it was initialized (it has then
    /// read the crash state and is ending what the first run left open).
    AfterInit(Duration),
}

/// ~200 open sessions, SIGKILL, a restart killed at `moment`, a last
/// restart: one ending each, none lost, none repeated.
fn killed_twice(moment: Moment) {
    let backend = Receiver::start();
    let s = setup(&backend);
    let mut janus = Janus::start_in(&s.janus_dir, s.opts());
    let mut ws = janus.ws();
    let open: Vec<u64> = (0..206).map(|_| ws.create_session()).collect();
    expect_jsonl(
        &s.out,
        "every session created",
        |e| created_in(e) == open.len(),
        Duration::from_secs(20),
    );
    janus.kill();
    drop(ws);

    let mut restarting = Janus::spawn_in(&s.janus_dir, s.opts());
    if let Moment::AfterInit(delay) = moment {
        assert!(wait_until(
            || restarting.log().contains("lifecycleevh 0.1.0 initialized"),
            Duration::from_secs(20)
        ));
        std::thread::sleep(delay);
    }
    restarting.kill();
    drop(restarting);

    let mut janus = Janus::start_in(&s.janus_dir, s.opts());
    let events = expect_jsonl(
        &s.out,
        "an ending for every session left open",
        |e| {
            let t = tally(e);
            open.iter()
                .all(|sid| t.get(sid).is_some_and(|(_, d)| !d.is_empty()))
        },
        Duration::from_secs(20),
    );
    let t = tally(&events);
    for sid in &open {
        assert_eq!(t[sid].1, ["gateway_restart"], "session {sid}");
    }
    // The spooled backend got every ending (at least once: deduplicated on
    // (session_id, event.name)).
    assert!(backend.wait_until(
        |evs| {
            let t = tally(evs);
            open.iter()
                .all(|sid| t.get(sid).is_some_and(|(_, d)| !d.is_empty()))
        },
        Duration::from_secs(20)
    ));
    assert!(janus.stop().success());
    assert_one_ending_each(&s.out);
    assert_no_contradiction(&backend.events());
    // A clean stop leaves nothing to recover.
    let mut janus = Janus::start_in(&s.janus_dir, s.opts());
    let info = info(&janus);
    assert_eq!(info["recovery"]["recovered_sessions"], 0, "{info}");
    assert!(janus.stop().success());
    assert_one_ending_each(&s.out);
}

#[test]
fn killed_again_at_once() {
    killed_twice(Moment::AtOnce);
}

#[test]
fn killed_again_as_the_handler_starts() {
    killed_twice(Moment::AfterInit(Duration::ZERO));
}

#[test]
fn killed_again_30_ms_into_the_restart() {
    killed_twice(Moment::AfterInit(Duration::from_millis(30)));
}

#[test]
fn killed_again_80_ms_into_the_restart() {
    killed_twice(Moment::AfterInit(Duration::from_millis(80)));
}

#[test]
fn killed_again_300_ms_into_the_restart() {
    killed_twice(Moment::AfterInit(Duration::from_millis(300)));
}

#[test]
fn killed_again_1_s_into_the_restart() {
    killed_twice(Moment::AfterInit(Duration::from_secs(1)));
}

/// Sessions created and ended every way while Janus is killed: every
/// session the file saw created ends exactly once, with its real reason if
/// its ending happened before the kill, else `gateway_restart`.
#[test]
fn killed_under_churn() {
    let backend = Receiver::start();
    let s = setup(&backend);
    let mut janus = Janus::start_in(&s.janus_dir, s.opts());
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..3)
        .map(|k| {
            let url = janus.ws_url();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut ws) = std::panic::catch_unwind(|| WsClient::connect(&url)) else {
                        break;
                    };
                    // Each round: one destroyed by request, one left to its
                    // connection's close, one left open.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let a = ws.create_session();
                        ws.attach(a, "janus.plugin.echotest");
                        ws.destroy(a);
                        let _b = ws.create_session();
                        ws
                    }));
                    match r {
                        Ok(ws) => {
                            if (n + k).is_multiple_of(3) {
                                std::mem::forget(ws); // stays open until the kill
                            } else {
                                ws.drop_tcp();
                            }
                        }
                        Err(_) => break, // Janus is gone
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let request_endings = |events: &[Value]| {
        tally(events)
            .values()
            .filter(|(_, d)| d.iter().any(|r| r == "request"))
            .count()
    };
    // The churn runs for 2.5 s at least, and until the file holds its work.
    std::thread::sleep(Duration::from_millis(2500));
    expect_jsonl(
        &s.out,
        "more than 20 endings by request",
        |e| request_endings(e) > 20,
        Duration::from_secs(30),
    );
    janus.kill();
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        let _ = c.join();
    }
    let written = read_jsonl(&s.out);
    let before = tally(&written);
    assert!(
        request_endings(&written) > 20,
        "the churn ran: {}",
        request_endings(&written)
    );

    let mut janus = Janus::start_in(&s.janus_dir, s.opts());
    let events = expect_jsonl(
        &s.out,
        "an ending for every session created",
        |e| tally(e).values().all(|(c, d)| *c == 0 || !d.is_empty()),
        Duration::from_secs(20),
    );
    let after = tally(&events);
    // Endings written before the kill are still there, unchanged.
    for (sid, (_, d)) in &before {
        if !d.is_empty() {
            assert_eq!(&after[sid].1, d, "session {sid}");
        }
    }
    assert!(janus.stop().success());
    let t = assert_one_ending_each(&s.out);
    let restarted = t
        .values()
        .filter(|(_, d)| d[0] == "gateway_restart")
        .count();
    assert!(restarted > 0, "some sessions were open at the kill");
    assert_no_contradiction(&backend.events());
}

/// Issue 16, finding 7: a session's ending reached the spooled HTTP sink
/// (its spool, even the backend) but not yet the file when Janus was
/// killed, so crash recovery had not recorded it. The next start ended
/// the session again, as `gateway_restart`: the backend got two
/// `destroyed` with different reasons. Now the ending is recorded (with
/// its text) before any sink gets it, and the next start repeats it as it
/// was. The window is held open with a fault: the file sink stalls.
#[cfg(feature = "fault-injection")]
#[test]
fn an_ending_a_sink_had_before_the_crash_is_repeated_never_contradicted() {
    let backend = Receiver::start();
    let s = setup(&backend);
    let mut janus = Janus::start_in(&s.janus_dir, s.opts());
    let mut ws = janus.ws();
    let ended = ws.create_session();
    let open = ws.create_session();
    expect_jsonl(
        &s.out,
        "both sessions created",
        |e| created_in(e) == 2,
        Duration::from_secs(20),
    );
    let armed = janus.admin().query_eventhandler(
        HANDLER,
        serde_json::json!({"request": "fault", "in": "stall_sink:file"}),
    );
    assert_eq!(armed["response"]["result"], 200, "{armed}");
    ws.destroy(ended);
    let ending_of =
        |sid: u64| move |evs: &[Value]| tally(evs).get(&sid).map_or(0, |(_, d)| d.len());
    assert!(backend.wait_until(|e| ending_of(ended)(e) == 1, Duration::from_secs(20)));
    assert_eq!(tally(&backend.events())[&ended].1, ["request"]);
    janus.kill();
    drop(ws);

    let mut janus = Janus::start_in(&s.janus_dir, s.opts());
    // The backend hears of both sessions' endings again (at least once).
    assert!(backend.wait_until(
        |e| ending_of(ended)(e) >= 2 && ending_of(open)(e) >= 1,
        Duration::from_secs(20)
    ));
    let events = expect_jsonl(
        &s.out,
        "both sessions ended",
        |e| {
            let t = tally(e);
            [ended, open]
                .iter()
                .all(|sid| t.get(sid).is_some_and(|(_, d)| !d.is_empty()))
        },
        Duration::from_secs(20),
    );
    let t = tally(&events);
    assert_eq!(t[&ended].1, ["request"], "the file, once, as it was");
    assert_eq!(t[&open].1, ["gateway_restart"]);
    assert_no_contradiction(&backend.events());
    assert!(janus.stop().success());
    assert_one_ending_each(&s.out);
}
