//! The tracker alone (pure Rust, decoded events in, outputs out): events
//! per second and bytes per live session at 10k, 100k and 1M live sessions;
//! the bytes of a live session with media (one handle, audio and video)
//! with its quality record; and the whole worker pipeline (decode + track +
//! quality + hand to a file sink) on a realistic media event.
//!
//! `cargo bench --bench tracker` (or `make bench`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use janus_lifecycleevh::bus::Bus;
use janus_lifecycleevh::config::EventMask;
use janus_lifecycleevh::counters::Counters;
use janus_lifecycleevh::janus::{Facts, Kind, TransportRef, decode};
use janus_lifecycleevh::quality::Quality;
use janus_lifecycleevh::sinks::file::FileSink;
use janus_lifecycleevh::sinks::{Router, SinkHandle, SinkSettings};
use janus_lifecycleevh::tracker::{Output, Tracker, TrackerConfig};
use janus_lifecycleevh::worker::Pipeline;

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: forwarding to the system allocator with the same layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: the pointer came from alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Relaxed);
        // SAFETY: forwarding a realloc of a block System allocated.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const WS: &str = "janus.transport.websockets";
const PLUGIN: &str = "janus.plugin.echotest";

fn facts<'a>(ty: u32, ts: i64, sid: u64, hid: Option<u64>, kind: Kind<'a>) -> Facts<'a> {
    Facts {
        ty,
        subtype: 0,
        timestamp: ts,
        session_id: Some(sid),
        handle_id: hid,
        emitter: Some(Cow::Borrowed("MyJanusInstance")),
        kind,
    }
}

fn created<'a>(ts: i64, sid: u64, transport: &'a str) -> Facts<'a> {
    facts(
        1,
        ts,
        sid,
        None,
        Kind::SessionCreated {
            transport: Some(TransportRef {
                module: Cow::Borrowed(WS),
                id: Cow::Borrowed(transport),
            }),
        },
    )
}

struct Row {
    live: usize,
    bytes_per_session: f64,
    events_per_s: f64,
}

/// N live sessions, each on its own connection with one handle; then a
/// steady churn: per round, 8 media events on live sessions, one session
/// destroyed and one created (N stays constant).
fn tracker_at(n: usize) -> Row {
    let ids: Vec<String> = (0..2 * n as u64)
        .map(|i| (1_000_000_007 * (i + 1)).to_string())
        .collect();
    let mut t = Tracker::new(TrackerConfig {
        max_sessions: 4 * n,
        ..TrackerConfig::default()
    });
    let mut out: Vec<Output> = Vec::with_capacity(16);
    // Warm the tracker's own tables (interning), then measure the sessions.
    t.observe(&created(0, u64::MAX, "1"), &mut out);
    out.clear();
    let before = LIVE.load(Relaxed);
    for i in 0..n as u64 {
        t.observe(&created(i as i64, i + 1, &ids[i as usize]), &mut out);
        let attach = Kind::HandleAttached {
            plugin: Cow::Borrowed(PLUGIN),
        };
        t.observe(&facts(2, i as i64, i + 1, Some(i + 1), attach), &mut out);
        out.clear();
    }
    let bytes = (LIVE.load(Relaxed) - before) as f64 / n as f64;

    let rounds = 200_000;
    let mut events = 0u64;
    let start = Instant::now();
    for r in 0..rounds as u64 {
        // Session ids oldest..next are live: one ends, one starts each round.
        let (oldest, next) = (1 + r, n as u64 + 1 + r);
        let ts = (n as u64 + r) as i64;
        for k in 0..8u64 {
            let sid = oldest + (r * 7919 + k * 104729) % (next - oldest);
            t.observe(&facts(32, ts, sid, Some(sid), Kind::Other), &mut out);
        }
        t.observe(
            &facts(1, ts, oldest, None, Kind::SessionDestroyed),
            &mut out,
        );
        let id = &ids[(next as usize - 1) % ids.len()];
        t.observe(&created(ts, next, id), &mut out);
        events += 10;
        out.clear();
    }
    let elapsed = start.elapsed();
    assert_eq!(t.live_sessions(), n + 1);
    Row {
        live: n,
        bytes_per_session: bytes,
        events_per_s: events as f64 / elapsed.as_secs_f64(),
    }
}

/// The events of one session with media, as Janus 1.x writes them: created,
/// a handle, its negotiation and WebRTC states, then `rounds` seconds of
/// audio and video stats.
fn call_events(sid: u64, rounds: u64) -> Vec<String> {
    let h = sid + 1_000_000;
    let head = |ty: u32, sub: u32, ts: u64| {
        format!(
            r#""emitter":"MyJanusInstance","type":{ty},"subtype":{sub},"timestamp":{ts},"session_id":{sid},"handle_id":{h}"#
        )
    };
    let mut v = vec![
        format!(
            r#"{{"emitter":"MyJanusInstance","type":1,"timestamp":1,"session_id":{sid},"event":{{"name":"created","transport":{{"transport":"{WS}","id":"{sid}"}}}}}}"#
        ),
        format!(
            r#"{{{},"event":{{"name":"attached","plugin":"{PLUGIN}"}}}}"#,
            head(2, 0, 2)
        ),
        format!(
            r#"{{{},"event":{{"owner":"remote","jsep":{{"type":"offer","sdp":"v=0"}}}}}}"#,
            head(8, 0, 3)
        ),
        format!(
            r#"{{{},"event":{{"selected-pair":"1.2.3.4:1 [host,udp] <-> 5.6.7.8:2 [prflx,udp]"}}}}"#,
            head(16, 4, 4)
        ),
        format!(
            r#"{{{},"event":{{"connection":"webrtcup"}}}}"#,
            head(16, 6, 5)
        ),
    ];
    for r in 1..=rounds {
        for (mid, media) in [("0", "audio"), ("1", "video")] {
            v.push(format!(
                r#"{{{},"event":{{"mid":"{mid}","mindex":{mid},"media":"{media}","codec":"x","base":48000,"rtt":{rtt},"lost":{r},"lost-by-remote":0,"jitter-local":{j},"jitter-remote":{j},"in-link-quality":99,"in-media-link-quality":99,"out-link-quality":98,"out-media-link-quality":98,"packets-received":{p},"packets-sent":{p},"bytes-received":{b},"bytes-sent":{b},"bytes-received-lastsec":1,"bytes-sent-lastsec":1,"nacks-received":0,"nacks-sent":0,"retransmissions-received":0,"remb-bitrate":1000000}}}}"#,
                head(32, 3, 5 + r * 1_000_000),
                rtt = 20 + r % 7,
                j = r % 13,
                p = 50 * r,
                b = 5000 * r
            ));
        }
    }
    v
}

/// Bytes per live session with media (one handle, audio and video, 30 s of
/// stats): the tracker's, and the tracker's with the quality record; and
/// how fast decode + track + quality take such events.
fn with_media(n: usize) -> (f64, f64, f64) {
    let calls: Vec<Vec<String>> = (0..n as u64).map(|i| call_events(i + 1, 30)).collect();
    let measure = |with_quality: bool| {
        let mut t = Tracker::new(TrackerConfig {
            max_sessions: 4 * n,
            ..TrackerConfig::default()
        });
        let mut q = Quality::new();
        let mut out: Vec<Output> = Vec::with_capacity(16);
        let before = LIVE.load(Relaxed);
        let start = Instant::now();
        let mut events = 0u64;
        for call in &calls {
            for e in call {
                let f = decode(e.as_bytes()).unwrap();
                t.observe(&f, &mut out);
                if with_quality {
                    q.observe(&f, |sid| t.is_open(sid));
                }
                out.clear();
                events += 1;
            }
        }
        let elapsed = start.elapsed();
        let bytes = (LIVE.load(Relaxed) - before) as f64 / n as f64;
        assert_eq!(q.len(), if with_quality { n } else { 0 });
        (bytes, events as f64 / elapsed.as_secs_f64())
    };
    let (tracker, _) = measure(false);
    let (both, rate) = measure(true);
    (tracker, both, rate)
}

/// The worker's whole job on one event: decode, track, hand to a file sink;
/// with `live`, the event's session is open with a handle, so the event is
/// also joined into its quality record.
fn pipeline(live: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let sink = FileSink::open(&dir.path().join("events.jsonl"), 0o640).unwrap();
    let settings = SinkSettings::simple("file", EventMask::ALL, 1 << 20, Duration::from_secs(1));
    let handle = SinkHandle::spawn("file", settings, Box::new(sink)).unwrap();
    let mut p = Pipeline::new(
        Tracker::new(TrackerConfig::default()),
        Router::new(vec![handle]),
        Bus::with_availability(vec![], false),
        Arc::new(Counters::default()),
    );
    if live {
        p.handle(br#"{"emitter":"MyJanusInstance","type":1,"timestamp":1795534522675000,"session_id":1000,"event":{"name":"created"}}"#);
        p.handle(br#"{"emitter":"MyJanusInstance","type":2,"timestamp":1795534522675001,"session_id":1000,"handle_id":2000,"event":{"name":"attached","plugin":"janus.plugin.echotest"}}"#);
        assert_eq!(p.quality().len(), 1);
    }
    let event = r#"{"emitter":"MyJanusInstance","type":32,"subtype":3,"timestamp":1795534522675943,"session_id":1000,"handle_id":2000,"event":{"mid":"0","mindex":0,"media":"audio","base":48000,"rtt":20,"lost":0,"lost-by-remote":0,"jitter-local":2,"jitter-remote":3,"in-link-quality":100,"in-media-link-quality":100,"out-link-quality":100,"out-media-link-quality":100,"packets-received":1000,"packets-sent":990,"bytes-received":160000,"bytes-sent":158000,"bytes-received-lastsec":16000,"bytes-sent-lastsec":15800,"nacks-received":0,"nacks-sent":0}}"#;
    let n = 500_000;
    let start = Instant::now();
    for i in 0..n {
        p.handle(event.as_bytes());
        if i % 256 == 255 {
            p.flush();
        }
    }
    p.flush();
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("tracker: bench");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--pipeline") {
        // `--pipeline live|unknown`: only the pipeline, for callgrind
        // (instructions of `Pipeline::handle` per event).
        pipeline(args[i + 1] == "live");
        return;
    }
    let mut table = String::from(
        "Tracker alone (decoded events; steady churn of 8 media events, 1 destroyed, 1 created per round)\n\n\
         | live sessions | bytes per live session | events/s |\n| --- | --- | --- |\n",
    );
    for n in [10_000, 100_000, 1_000_000] {
        let r = tracker_at(n);
        table += &format!(
            "| {} | {:.0} | {:.2} M |\n",
            r.live,
            r.bytes_per_session,
            r.events_per_s / 1e6
        );
    }
    table += "\nA live session with media (one handle; audio and video, 30 s of 1.x stats each), and its quality record\n\n\
        | live sessions | bytes per live session, tracker alone | with the quality record | decode + track + quality |\n| --- | --- | --- | --- |\n";
    for n in [10_000, 100_000] {
        let (tracker, both, rate) = with_media(n);
        table += &format!(
            "| {n} | {tracker:.0} | {both:.0} | {:.2} M events/s |\n",
            rate / 1e6
        );
    }
    for (live, what) in [
        (false, "of a session the tracker does not know"),
        (true, "of a live session (joined into its quality record)"),
    ] {
        let ev = pipeline(live);
        table += &format!(
            "\nWorker pipeline (decode + track + quality + hand to a file sink), a 528-byte media stats event {what}: {:.0} k events/s ({:.2} µs each)\n",
            ev / 1e3,
            1e6 / ev
        );
    }
    println!("{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-tracker.md");
    std::fs::write(out, table).unwrap();
}
