//! Real traces of browser calls (tests/traces/janus-*-echotest-*.jsonl,
//! recorded by tests/janus_quality.rs on Janus 1.1.2, 1.4.1 and 0.16.1)
//! replayed through the decoder, the tracker and the quality aggregator as
//! the worker runs them, with the exact records expected. Both payload
//! generations: 1.x (`mid`, `mindex`, `codec`, `rtt-values`) and 0.x
//! (`audio-codec`/`video-codec`, no `mid`); per m-line events (lossy runs)
//! and `combine_media_stats` arrays (clean runs).
//!
//! The counters and loss ratios were checked against Janus's own last
//! stats of each session by an independent computation; percentiles are
//! the middles of the sketch's buckets of the exact ones.

use janus_lifecycleevh::janus::decode;
use janus_lifecycleevh::quality::Quality;
use janus_lifecycleevh::tracker::{Output, Tracker, TrackerConfig};
use serde_json::Value;

/// Each ending of the trace, in order: its session and record.
fn replay(name: &str) -> Vec<(u64, Value)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/traces")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut quality = Quality::new();
    let mut out = Vec::new();
    let mut endings = Vec::new();
    let mut take = |quality: &mut Quality, out: &mut Vec<Output>| {
        for o in out.drain(..) {
            if let Output::ForwardEnding(e) | Output::Synthesize(e) = o {
                let q = quality.finish(e.session_id, e.timestamp);
                endings.push((e.session_id, serde_json::to_value(q).unwrap()));
            }
        }
    };
    for line in text.lines() {
        let facts = decode(line.as_bytes()).unwrap();
        tracker.observe(&facts, &mut out);
        quality.observe(&facts, |sid| tracker.is_open(sid));
        take(&mut quality, &mut out);
    }
    // What is still open ends at shutdown (none in these traces).
    tracker.shutdown(i64::MAX, &mut out);
    take(&mut quality, &mut out);
    endings
}

/// Replays `trace` and compares each ending's record with the expected
/// one, in order.
fn check(trace: &str, expected: &[(u64, &str)]) {
    let got = replay(trace);
    let want: Vec<(u64, Value)> = expected
        .iter()
        .map(|(s, q)| (*s, serde_json::from_str(q).unwrap()))
        .collect();
    assert_eq!(got.len(), want.len(), "{trace}: endings");
    for ((gs, gq), (ws, wq)) in got.iter().zip(&want) {
        assert_eq!(gs, ws, "{trace}: sessions in order");
        assert_eq!(gq, wq, "{trace}: session {gs}");
    }
}

/// Janus 1.1.2, 1.x per m-line stats, 5 % of what the browser sent dropped. The first call's hangup came after its destroyed: no `hangup` in its record; the second ended with its WebSocket (a synthetic transport_gone, after the settle window).
#[test]
fn janus_1_1_2_lossy() {
    check(
        "janus-1.1.2-echotest-lossy.jsonl",
        &[
            (
                5029381340875830,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":147,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp"},"media":{"audio":{"in":{"packets":294,"bytes":19425,"lost":25,"loss":0.0784,"jitter_ms":{"p50":2,"p95":3,"max":3}},"out":{"packets":294,"bytes":18249,"lost":0,"loss":0.0},"nacks":{"in":0,"out":0},"link_quality_min":{"in":91},"no_media_s":0},"video":{"in":{"packets":370,"bytes":367977,"lost":18,"loss":0.0464,"jitter_ms":{"p50":0,"p95":1,"max":1}},"out":{"packets":370,"bytes":369161,"lost":2,"loss":0.0054,"jitter_ms":{"p50":3,"p95":4,"max":4}},"rtt_ms":{"p50":1,"p95":2,"max":2},"nacks":{"in":51,"out":18},"link_quality_min":{"in":93,"out":100},"no_media_s":0,"retransmissions":18}}}"#,
            ),
            (
                3625092849438921,
                r#"{"handles":1,"samples":2,"samples_dropped":0,"webrtc":{"up":false,"ice_failed":0,"dtls_failed":0,"relay":false},"media":{}}"#,
            ),
            (
                8190797912016942,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":40,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":298,"bytes":19517,"lost":21,"loss":0.0658,"jitter_ms":{"p50":1,"p95":3,"max":3}},"out":{"packets":298,"bytes":18325,"lost":0,"loss":0.0},"nacks":{"in":0,"out":0},"link_quality_min":{"in":92},"no_media_s":0},"video":{"in":{"packets":374,"bytes":373964,"lost":22,"loss":0.0556,"jitter_ms":{"p50":1,"p95":1,"max":1}},"out":{"packets":374,"bytes":375132,"lost":1,"loss":0.0027,"jitter_ms":{"p50":3,"p95":6,"max":6}},"rtt_ms":{"p50":1,"p95":17,"max":17},"nacks":{"in":72,"out":22},"link_quality_min":{"in":93,"out":100},"no_media_s":0,"retransmissions":21}}}"#,
            ),
        ],
    );
}

/// Janus 1.1.2, combined stats (arrays), no loss.
#[test]
fn janus_1_1_2_clean() {
    check(
        "janus-1.1.2-echotest-clean.jsonl",
        &[
            (
                897908416453454,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":62,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":337,"bytes":24330,"lost":0,"loss":0.0,"jitter_ms":{"p50":3,"p95":4,"max":4}},"out":{"packets":337,"bytes":22982,"lost":0,"loss":0.0},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100},"no_media_s":0},"video":{"in":{"packets":400,"bytes":400814,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":4,"max":4}},"out":{"packets":400,"bytes":402074,"lost":0,"loss":0.0,"jitter_ms":{"p50":2,"p95":3,"max":3}},"rtt_ms":{"p50":3,"p95":4,"max":4},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0,"retransmissions":0}}}"#,
            ),
            (
                4763054359024118,
                r#"{"handles":1,"samples":0,"samples_dropped":0,"webrtc":{"up":false,"ice_failed":0,"dtls_failed":0,"relay":false},"media":{}}"#,
            ),
            (
                4424450963790438,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":57,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":339,"bytes":24455,"lost":0,"loss":0.0,"jitter_ms":{"p50":3,"p95":4,"max":4}},"out":{"packets":339,"bytes":23099,"lost":0,"loss":0.0},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100},"no_media_s":0},"video":{"in":{"packets":400,"bytes":400807,"lost":0,"loss":0.0,"jitter_ms":{"p50":1,"p95":4,"max":4}},"out":{"packets":400,"bytes":402067,"lost":0,"loss":0.0,"jitter_ms":{"p50":4,"p95":7,"max":7}},"rtt_ms":{"p50":1,"p95":5,"max":5},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0,"retransmissions":0}}}"#,
            ),
        ],
    );
}

/// Janus 1.4.1 (upstream), per m-line stats, 5 % dropped. Janus 1.4.1 reads the browser's audio receiver reports (1.1.2 never did: no out jitter, no out link quality there).
#[test]
fn janus_1_4_1_lossy() {
    check(
        "janus-1.4.1-echotest-lossy.jsonl",
        &[
            (
                3573166165949861,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":59,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":322,"bytes":25149,"lost":16,"loss":0.0473,"jitter_ms":{"p50":2,"p95":10,"max":10}},"out":{"packets":322,"bytes":22573,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":96,"out":100},"no_media_s":0},"video":{"in":{"packets":402,"bytes":402604,"lost":11,"loss":0.0266,"jitter_ms":{"p50":0,"p95":5,"max":5}},"out":{"packets":402,"bytes":403824,"lost":1,"loss":0.0025,"jitter_ms":{"p50":3,"p95":6,"max":6}},"rtt_ms":{"p50":1,"p95":3,"max":3},"nacks":{"in":32,"out":11},"link_quality_min":{"in":96,"out":100},"no_media_s":0,"retransmissions":11}}}"#,
            ),
            (
                660311775376775,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":88,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":312,"bytes":23566,"lost":21,"loss":0.0631,"jitter_ms":{"p50":1,"p95":13,"max":13}},"out":{"packets":312,"bytes":21070,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":93,"out":100},"no_media_s":0},"video":{"in":{"packets":401,"bytes":403296,"lost":20,"loss":0.0475,"jitter_ms":{"p50":0,"p95":5,"max":5}},"out":{"packets":398,"bytes":401666,"lost":1,"loss":0.0025,"jitter_ms":{"p50":3,"p95":12,"max":12}},"rtt_ms":{"p50":4,"p95":9,"max":9},"nacks":{"in":63,"out":21},"link_quality_min":{"in":94,"out":100},"no_media_s":0,"retransmissions":20}}}"#,
            ),
            (
                7423990291883879,
                r#"{"handles":1,"samples":0,"samples_dropped":0,"webrtc":{"up":false,"ice_failed":0,"dtls_failed":0,"relay":false},"media":{}}"#,
            ),
        ],
    );
}

/// Janus 1.4.1, combined stats, no loss.
#[test]
fn janus_1_4_1_clean() {
    check(
        "janus-1.4.1-echotest-clean.jsonl",
        &[
            (
                214260681226406,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":67,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":332,"bytes":28147,"lost":0,"loss":0.0,"jitter_ms":{"p50":2,"p95":6,"max":6}},"out":{"packets":332,"bytes":25491,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0},"video":{"in":{"packets":391,"bytes":390382,"lost":0,"loss":0.0,"jitter_ms":{"p50":1,"p95":3,"max":3}},"out":{"packets":391,"bytes":391618,"lost":0,"loss":0.0,"jitter_ms":{"p50":3,"p95":6,"max":6}},"rtt_ms":{"p50":3,"p95":10,"max":10},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0,"retransmissions":0}}}"#,
            ),
            (
                799358731640632,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":66,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":332,"bytes":27017,"lost":0,"loss":0.0,"jitter_ms":{"p50":2,"p95":5,"max":5}},"out":{"packets":332,"bytes":24361,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0},"video":{"in":{"packets":389,"bytes":388913,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":2,"max":2}},"out":{"packets":389,"bytes":390149,"lost":0,"loss":0.0,"jitter_ms":{"p50":1,"p95":5,"max":5}},"rtt_ms":{"p50":1,"p95":3,"max":3},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0,"retransmissions":0}}}"#,
            ),
            (
                1175783961173211,
                r#"{"handles":1,"samples":0,"samples_dropped":0,"webrtc":{"up":false,"ice_failed":0,"dtls_failed":0,"relay":false},"media":{}}"#,
            ),
        ],
    );
}

/// Janus 0.16.1 (0.x payloads: no mid, audio-codec/video-codec), 5 % dropped. EchoTest on 0.x relays the video gaps: the client lost what Janus did not get (out 0.0628).
#[test]
fn janus_0_16_1_lossy() {
    check(
        "janus-0.16.1-echotest-lossy.jsonl",
        &[
            (
                2254032507196426,
                r#"{"handles":1,"samples":16,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":125,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":340,"bytes":27435,"lost":14,"loss":0.0395,"jitter_ms":{"p50":1,"p95":2,"max":2}},"out":{"packets":340,"bytes":26075,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":95,"out":100},"no_media_s":0},"video":{"in":{"packets":420,"bytes":418585,"lost":13,"loss":0.03,"jitter_ms":{"p50":0,"p95":1,"max":1}},"out":{"packets":420,"bytes":420045,"lost":0,"loss":0.0,"jitter_ms":{"p50":2,"p95":4,"max":4}},"rtt_ms":{"p50":1,"p95":2,"max":2},"nacks":{"in":35,"out":13},"link_quality_min":{"in":97,"out":100},"no_media_s":0,"retransmissions":13}}}"#,
            ),
            (
                7702656250811864,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":1049,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":289,"bytes":24207,"lost":13,"loss":0.043,"jitter_ms":{"p50":1,"p95":3,"max":3}},"out":{"packets":289,"bytes":23051,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":95,"out":100},"no_media_s":0},"video":{"in":{"packets":206,"bytes":168926,"lost":10,"loss":0.0463,"jitter_ms":{"p50":1,"p95":3,"max":3}},"out":{"packets":207,"bytes":170235,"lost":13,"loss":0.0628,"jitter_ms":{"p50":2,"p95":4,"max":4}},"rtt_ms":{"p50":1,"p95":6,"max":6},"nacks":{"in":30,"out":10},"link_quality_min":{"in":95,"out":99},"no_media_s":0,"retransmissions":10}}}"#,
            ),
            (
                4417667853685326,
                r#"{"handles":1,"samples":0,"samples_dropped":0,"webrtc":{"up":false,"ice_failed":0,"dtls_failed":0,"relay":false},"media":{}}"#,
            ),
        ],
    );
}

/// Janus 0.16.1, combined stats (0.x arrays), no loss.
#[test]
fn janus_0_16_1_clean() {
    check(
        "janus-0.16.1-echotest-clean.jsonl",
        &[
            (
                7682337570027628,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":58,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":326,"bytes":25558,"lost":0,"loss":0.0,"jitter_ms":{"p50":1,"p95":4,"max":4}},"out":{"packets":325,"bytes":24161,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0},"video":{"in":{"packets":383,"bytes":383078,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":1,"max":1}},"out":{"packets":383,"bytes":384322,"lost":0,"loss":0.0,"jitter_ms":{"p50":2,"p95":5,"max":5}},"rtt_ms":{"p50":3,"p95":5,"max":5},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0,"retransmissions":0}}}"#,
            ),
            (
                5369384010526337,
                r#"{"handles":1,"samples":14,"samples_dropped":0,"webrtc":{"up":true,"setup_ms":48,"ice_failed":0,"dtls_failed":0,"relay":false,"pair":"host/udp","hangup":"DTLS alert"},"media":{"audio":{"in":{"packets":326,"bytes":26334,"lost":0,"loss":0.0,"jitter_ms":{"p50":1,"p95":4,"max":4}},"out":{"packets":326,"bytes":25030,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":0,"max":0}},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0},"video":{"in":{"packets":386,"bytes":384352,"lost":0,"loss":0.0,"jitter_ms":{"p50":0,"p95":2,"max":2}},"out":{"packets":386,"bytes":385604,"lost":0,"loss":0.0,"jitter_ms":{"p50":2,"p95":8,"max":8}},"rtt_ms":{"p50":2,"p95":4,"max":4},"nacks":{"in":0,"out":0},"link_quality_min":{"in":100,"out":100},"no_media_s":0,"retransmissions":0}}}"#,
            ),
            (
                2193329001794527,
                r#"{"handles":1,"samples":0,"samples_dropped":0,"webrtc":{"up":false,"ice_failed":0,"dtls_failed":0,"relay":false},"media":{}}"#,
            ),
        ],
    );
}
