//! The quality record with real WebRTC calls: Debian's chromium (headless,
//! fake camera and microphone) calls Janus's EchoTest plugin, in a private
//! network namespace where iptables drops 5 % of what the browser sends
//! to Janus (see `tests/common/webrtc.rs`). Each session's `destroyed`
//! must carry a quality record that shows that loss (and none without
//! it), Janus's own counters, a setup time no longer than the browser
//! waited, and `up: false` for a call that never connected; `/metrics`
//! counts the same endings.
//!
//! On every rig target: a native Janus (Debian's, `upstream-<version>`,
//! `prefix:<dir>`) starts in the test's network namespace; one from an
//! image (`docker:<image>`) runs in a container that joins it.
//!
//! The lossy calls run with Janus's stats one event per m-line, the clean
//! ones with `combine_media_stats` (one array per PeerConnection).
//!
//! `LCEVH_RECORD_TRACES=<folder>` keeps each run's events there
//! (`janus-<version>-echotest-<lossy|clean>.jsonl`, as in tests/traces/).

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::webrtc::{
    Browser, PrivateNet, echotest_page, in_private_network, janus_media, janus_nat, js,
};
use common::*;
use serde_json::Value;

/// The loss iptables makes on what the browser sends to Janus.
const LOSS: f64 = 0.05;
/// Audio stats samples (one a second) each call runs for before it ends.
const SAMPLES: usize = 6;
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A browser and a Janus at a time: two would halve what each gets of the
/// machine's two cores.
static TURN: Mutex<()> = Mutex::new(());

/// What a run of calls left.
struct Calls {
    version: (u32, u32, u32),
    events: Vec<Value>,
    /// Two calls that came up (ended with `destroy`, and with the
    /// WebSocket closing), and the browser's setup time of each.
    up: [(u64, u64); 2],
    /// A call that never connected.
    never: u64,
    metrics: String,
}

fn is_audio_stats(e: &Value, session: u64) -> bool {
    e["type"] == 32 && e["subtype"] == 3 && e["session_id"] == session && {
        let objects = match &e["event"] {
            Value::Array(a) => a.iter().collect(),
            o => vec![o],
        };
        objects.iter().any(|o| o["media"] == "audio")
    }
}

fn destroyed(events: &[Value], session: u64) -> Option<&Value> {
    events
        .iter()
        .find(|e| e["type"] == 1 && e["session_id"] == session && e["event"]["name"] == "destroyed")
}

fn config(events: &Path, metrics_port: u16) -> String {
    format!(
        "general: {{ enabled = true }}\nfile: {{ path = \"{}\" }}\nmetrics: {{ enabled = true, listen = \"127.0.0.1:{metrics_port}\" }}\n",
        events.display()
    )
}

/// Three calls from one page: two that connect and run for [`SAMPLES`]
/// seconds of audio, and one the page hangs up before Janus's answer.
/// `combine`: Janus's `combine_media_stats` (one stats event per
/// PeerConnection, an array) rather than one per m-line.
fn calls(loss: Option<f64>, combine: bool, name: &'static str) -> Calls {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    in_private_network(move |net: &PrivateNet| {
        if let Some(p) = loss {
            net.drop_incoming_udp(p);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let metrics_port = free_port();
        let mut janus = Janus::start(JanusOptions {
            lifecycleevh_config: Some(config(&path, metrics_port)),
            extra_janus_media: janus_media(),
            extra_janus_nat: janus_nat(),
            extra_janus_events: format!("  combine_media_stats = {combine}"),
            network: net.janus_network(),
            ..JanusOptions::default()
        });
        let mut browser = Browser::launch(dir.path());
        let mut page = browser.open(&echotest_page());
        let ws = js(&janus.ws_url());
        let started = page.eval(
            &format!("Promise.all([startCall('a', {ws}, true, 30000), startCall('b', {ws}, true, 30000)])"),
            CALL_TIMEOUT,
        );
        let up: Vec<(u64, u64)> = (0..2)
            .map(|i| {
                (
                    started[i]["session"].as_u64().unwrap(),
                    started[i]["setupMs"].as_u64().unwrap(),
                )
            })
            .collect();
        // Janus's own stats, once a second: wait for enough of them.
        expect_jsonl(
            &path,
            &format!("{SAMPLES} audio stats events (s) of both calls"),
            |ev| {
                up.iter()
                    .all(|(s, _)| ev.iter().filter(|e| is_audio_stats(e, *s)).count() >= SAMPLES)
            },
            CALL_TIMEOUT,
        );
        page.eval("endCall('a', 'destroy')", CALL_TIMEOUT);
        page.eval("endCall('b', 'close')", CALL_TIMEOUT);
        let never =
            page.eval(&format!("startCall('c', {ws}, false, 30000)"), CALL_TIMEOUT)["session"]
                .as_u64()
                .unwrap();
        page.eval("endCall('c', 'destroy')", CALL_TIMEOUT);
        let sessions = [up[0].0, up[1].0, never];
        let events = expect_jsonl(
            &path,
            "a destroyed for each of the three sessions",
            |ev| sessions.iter().all(|s| destroyed(ev, *s).is_some()),
            CALL_TIMEOUT,
        );
        let metrics = http_request(
            "GET",
            &format!("http://127.0.0.1:{metrics_port}/metrics"),
            None,
        )
        .expect("scrape the handler's /metrics")
        .text();
        let version = janus.janus_version();
        drop(page);
        drop(browser);
        janus.stop();
        if let Ok(folder) = std::env::var("LCEVH_RECORD_TRACES") {
            let (a, b, c) = version;
            let to = Path::new(&folder).join(format!("janus-{a}.{b}.{c}-echotest-{name}.jsonl"));
            std::fs::copy(&path, &to).unwrap_or_else(|e| panic!("record {}: {e}", to.display()));
        }
        Calls {
            version,
            events,
            up: [up[0], up[1]],
            never,
            metrics,
        }
    })
}

/// The quality record of `session`'s `destroyed`, checked against what
/// every call that came up must show: Janus's own last counters, a setup
/// time within the browser's, nothing shed.
fn checked_record(calls: &Calls, (session, browser_setup_ms): (u64, u64)) -> Value {
    let d = destroyed(&calls.events, session).expect("a destroyed");
    let q = d["event"]["quality"].clone();
    assert!(q.is_object(), "no quality record: {d}");
    assert_eq!(q["handles"], 1, "{q}");
    assert_eq!(q["samples_dropped"], 0, "{q}");
    assert!(q["samples"].as_u64().unwrap() >= 2 * SAMPLES as u64, "{q}");
    let w = &q["webrtc"];
    assert_eq!(w["up"], true, "{q}");
    let setup = w["setup_ms"].as_u64().expect("setup_ms");
    assert!(
        setup > 0 && setup <= browser_setup_ms,
        "setup {setup} ms, the browser waited {browser_setup_ms} ms: {q}"
    );
    assert_eq!(w["relay"], false);
    assert_eq!(w["pair"], "host/udp", "{q}");
    // One PeerConnection, no restart: the totals are Janus's last counters
    // before the ending (Janus may report once more as it tears the handle
    // down after its destroyed: too late for the record).
    let at = calls
        .events
        .iter()
        .position(|e| std::ptr::eq(e, d))
        .unwrap();
    let last = calls.events[..at]
        .iter()
        .rfind(|e| is_audio_stats(e, session))
        .unwrap();
    let last = match &last["event"] {
        Value::Array(a) => a.iter().find(|o| o["media"] == "audio").unwrap().clone(),
        o => o.clone(),
    };
    let audio = &q["media"]["audio"];
    assert_eq!(audio["in"]["packets"], last["packets-received"], "{q}");
    assert_eq!(audio["in"]["bytes"], last["bytes-received"], "{q}");
    assert_eq!(
        audio["in"]["lost"],
        last["lost"].as_i64().unwrap().max(0),
        "{q}"
    );
    assert_eq!(audio["out"]["packets"], last["packets-sent"], "{q}");
    assert!(audio["in"]["packets"].as_u64().unwrap() > 100, "{q}");
    // Video flowed too (how much depends on how much CPU the browser's
    // encoder got).
    let video_in = q["media"]["video"]["in"]["packets"].as_u64();
    assert!(video_in.is_some_and(|p| p > 0), "{q}");
    q
}

fn loss(q: &Value, dir: &str) -> f64 {
    q["media"]["audio"][dir]["loss"]
        .as_f64()
        .unwrap_or_else(|| panic!("no audio {dir} loss: {q}"))
}

/// The call that never connected: `up: false`, no media.
fn check_never_up(calls: &Calls) {
    let d = destroyed(&calls.events, calls.never).unwrap();
    let q = &d["event"]["quality"];
    assert_eq!(q["webrtc"]["up"], false, "{d}");
    assert!(q["webrtc"].get("setup_ms").is_none(), "{d}");
    assert_eq!(q["media"], serde_json::json!({}), "{d}");
    assert_eq!(q["handles"], 1, "{d}");
}

/// The endings' reasons, as on every Janus: `destroy` is a request; the
/// closed WebSocket's ending is Janus's own from 1.3.2 (0.15.2), synthetic
/// before.
fn check_reasons(calls: &Calls) {
    let a = &destroyed(&calls.events, calls.up[0].0).unwrap()["event"];
    assert_eq!(
        (&a["reason"], &a["synthetic"]),
        (&"request".into(), &false.into())
    );
    let b = &destroyed(&calls.events, calls.up[1].0).unwrap()["event"];
    assert_eq!(b["reason"], "transport_gone");
    let fixed = if calls.version.0 == 0 {
        (0, 15, 2)
    } else {
        (1, 3, 2)
    };
    assert_eq!(b["synthetic"], calls.version < fixed, "{b}");
}

/// A sample line of the exposition, e.g. `name{labels} value`.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

#[test]
fn a_lossy_link_shows_in_the_quality_record() {
    let calls = calls(Some(LOSS), false, "lossy");
    for up in calls.up {
        let q = checked_record(&calls, up);
        let (lost_in, lost_out) = (loss(&q, "in"), loss(&q, "out"));
        assert!(
            (0.02..=0.125).contains(&lost_in),
            "audio in loss {lost_in} with {LOSS} dropped: {q}"
        );
        assert!(lost_out < 0.02, "audio out loss {lost_out}: {q}");
    }
    check_never_up(&calls);
    check_reasons(&calls);
    // The two calls that came up are in the histograms; every loss in the
    // 0.02-0.125 range, that is above le="0.01" and within le="0.2".
    let m = &calls.metrics;
    let audio_in = r#"{media="audio",direction="in""#;
    assert_eq!(
        sample(m, &format!("janus_session_loss_ratio_count{audio_in}}}")),
        2.0
    );
    assert_eq!(
        sample(
            m,
            &format!("janus_session_loss_ratio_bucket{audio_in},le=\"0.01\"}}")
        ),
        0.0
    );
    assert_eq!(
        sample(
            m,
            &format!("janus_session_loss_ratio_bucket{audio_in},le=\"0.2\"}}")
        ),
        2.0
    );
    assert_eq!(sample(m, "janus_webrtc_setup_seconds_count"), 2.0);
    assert_eq!(sample(m, "janus_sessions_relayed_total"), 0.0);
}

#[test]
fn a_clean_link_shows_no_loss() {
    let calls = calls(None, true, "clean");
    for up in calls.up {
        let q = checked_record(&calls, up);
        let (lost_in, lost_out) = (loss(&q, "in"), loss(&q, "out"));
        assert!(lost_in < 0.02, "audio in loss {lost_in}: {q}");
        assert!(lost_out < 0.02, "audio out loss {lost_out}: {q}");
    }
    check_never_up(&calls);
    check_reasons(&calls);
}
