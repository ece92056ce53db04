//! Event decoder, lifecycle tracker and quality records: any bytes, one
//! event per line. Never panics; every ending is flagged right; a native
//! `destroyed` can always be annotated, with its quality record; nothing
//! stays open after shutdown.
#![no_main]

use janus_lifecycleevh::janus::{self, Kind};
use janus_lifecycleevh::output::{annotate_destroyed, destroyed_json};
use janus_lifecycleevh::quality::Quality;
use janus_lifecycleevh::tracker::{Output, Tracker, TrackerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reclaim = data.first().is_some_and(|b| b & 1 == 1);
    let mut tracker = Tracker::new(TrackerConfig {
        reclaim_session_timeout: if reclaim { 10 } else { 0 },
        max_sessions: 64,
        ..TrackerConfig::default()
    });
    let mut quality = Quality::new();
    let mut out = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let Ok(facts) = janus::decode(line) else {
            continue;
        };
        out.clear();
        tracker.observe(&facts, &mut out);
        quality.observe(&facts, |sid| tracker.is_open(sid));
        for o in &out {
            match o {
                Output::ForwardEnding(e) => {
                    assert!(!e.synthetic);
                    assert_eq!(facts.kind, Kind::SessionDestroyed);
                    let q = quality.finish(e.session_id, e.timestamp);
                    let names = e.transport.map(|k| tracker.transport_names(k));
                    let names = names.as_ref().map(|(m, id)| (*m, id.as_str()));
                    let text = std::str::from_utf8(line).expect("decoded, so text");
                    let annotated =
                        annotate_destroyed(text, e, names, Some(&q)).expect("annotatable");
                    assert!(janus::decode(annotated.as_bytes()).is_ok());
                }
                Output::Synthesize(e) => {
                    assert!(e.synthetic);
                    let q = quality.finish(e.session_id, e.timestamp);
                    let names = e.transport.map(|k| tracker.transport_names(k));
                    let names = names.as_ref().map(|(m, id)| (*m, id.as_str()));
                    let made = destroyed_json(facts.emitter.as_deref(), e, names, Some(&q));
                    if let Some(d) = e.duration_us() {
                        assert!(d >= 0);
                    }
                    assert_eq!(janus::decode(made.as_bytes()).unwrap().kind, Kind::SessionDestroyed);
                }
                _ => {}
            }
        }
    }
    out.clear();
    tracker.advance(i64::MAX, &mut out);
    tracker.shutdown(i64::MAX, &mut out);
    assert_eq!(tracker.live_sessions(), 0);
    for o in &out {
        if let Output::Synthesize(e) = o {
            quality.finish(e.session_id, e.timestamp);
        }
    }
    // A record exists only for a session the tracker has open; evicted
    // ones are swept by the worker.
    quality.retain(|sid| tracker.is_open(sid));
    assert!(quality.is_empty());
});
