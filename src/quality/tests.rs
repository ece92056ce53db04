use super::*;
use crate::janus::decode;

/// Replays JSON Lines through the decoder and the aggregator, every
/// session open from its creation (the tracker's part; traces replay
/// through both in tests/quality_traces.rs); returns each `destroyed`'s
/// session and record.
fn replay(text: &str) -> Vec<(u64, Summary)> {
    let mut quality = Quality::new();
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let facts = decode(line.as_bytes()).unwrap();
        quality.observe(&facts, |_| true);
        if let (Kind::SessionDestroyed, Some(sid)) = (&facts.kind, facts.session_id) {
            records.push((sid, quality.finish(sid, facts.timestamp)));
        }
    }
    records
}

/// Events of session 1, handle 2, one a line, at `t` seconds.
struct Trace(String);

impl Trace {
    fn new() -> Trace {
        let mut t = Trace(String::new());
        t.line(0.0, 1, r#"{"name":"created"}"#);
        t.line(
            0.0,
            2,
            r#"{"name":"attached","plugin":"janus.plugin.echotest"}"#,
        );
        t
    }

    fn line(&mut self, t: f64, ty: u32, event: &str) -> &mut Trace {
        let us = 1_000_000_000 + (t * 1e6) as i64;
        let handle = if ty == 1 { "" } else { r#","handle_id":2"# };
        self.0 +=
            &format!(r#"{{"type":{ty},"timestamp":{us},"session_id":1{handle},"event":{event}}}"#);
        self.0.push('\n');
        self
    }

    fn jsep(&mut self, t: f64) -> &mut Trace {
        self.line(
            t,
            8,
            r#"{"owner":"remote","jsep":{"type":"offer","sdp":"v=0"}}"#,
        )
    }

    fn webrtc(&mut self, t: f64, what: &str) -> &mut Trace {
        self.line(t, 16, what)
    }

    /// A 1.x stats object of `media` on m-line `mid`: packets and bytes in
    /// and out (bytes = 100 per packet), lost in and out, jitter in.
    fn stats(
        &mut self,
        t: f64,
        mid: &str,
        media: &str,
        [p, lost, rlost, jit]: [i64; 4],
    ) -> &mut Trace {
        let e = format!(
            r#"{{"mid":"{mid}","media":"{media}","rtt":0,"lost":{lost},"lost-by-remote":{rlost},"jitter-local":{jit},"jitter-remote":0,"in-link-quality":90,"out-link-quality":0,"packets-received":{p},"packets-sent":{p},"bytes-received":{b},"bytes-sent":{b},"nacks-received":1,"nacks-sent":2,"retransmissions-received":3}}"#,
            b = p * 100
        );
        self.line(t, 32, &e)
    }

    fn end(&mut self, t: f64) -> Vec<(u64, Summary)> {
        self.line(t, 1, r#"{"name":"destroyed"}"#);
        replay(&self.0)
    }
}

#[test]
fn a_session_without_media_has_an_empty_record() {
    let mut t = Trace::new();
    let r = t.end(5.0);
    assert_eq!(r.len(), 1);
    assert_eq!(
        serde_json::to_string(&r[0].1).unwrap(),
        r#"{"handles":1,"samples":0,"samples_dropped":0,"webrtc":{"up":false,"ice_failed":0,"dtls_failed":0,"relay":false},"media":{}}"#
    );
}

#[test]
fn setup_pair_and_hangup() {
    let mut t = Trace::new();
    t.jsep(1.0)
        .webrtc(1.1, r#"{"ice":"gathering"}"#)
        .webrtc(
            1.2,
            r#"{"selected-pair":"1.2.3.4:1 [host,udp] <-> 5.6.7.8:2 [srflx,udp]"}"#,
        )
        .webrtc(1.3, r#"{"ice":"connected"}"#)
        .webrtc(1.412, r#"{"connection":"webrtcup"}"#)
        .webrtc(9.0, r#"{"connection":"hangup","reason":"DTLS alert"}"#);
    let q = &t.end(10.0)[0].1;
    assert_eq!(
        q.webrtc,
        WebRtcSummary {
            up: true,
            setup_ms: Some(412),
            ice_failed: 0,
            dtls_failed: 0,
            relay: false,
            pair: Some("srflx/udp".into()),
            hangup: Some("DTLS alert".into()),
        }
    );
}

#[test]
fn ice_failures_count_once_per_peerconnection_that_never_recovered() {
    let mut t = Trace::new();
    t.jsep(1.0)
        // Failed, then recovered (trickled candidates): not a failure.
        .webrtc(1.1, r#"{"ice":"failed"}"#)
        .webrtc(1.2, r#"{"ice":"connected"}"#)
        .webrtc(1.3, r#"{"dtls":"failed"}"#)
        .webrtc(1.4, r#"{"connection":"hangup","reason":"DTLS alert"}"#)
        // A second PeerConnection whose ICE fails for good.
        .jsep(2.0)
        .webrtc(2.1, r#"{"ice":"failed"}"#)
        .webrtc(
            3.0,
            r#"{"selected-pair":"a:1 [host,udp] <-> b:2 [relay,tcp]"}"#,
        );
    let q = &t.end(4.0)[0].1;
    assert_eq!((q.webrtc.ice_failed, q.webrtc.dtls_failed), (1, 1));
    assert!(!q.webrtc.up);
    assert_eq!(q.webrtc.setup_ms, None);
    assert!(q.webrtc.relay);
    assert_eq!(q.webrtc.pair.as_deref(), Some("relay/tcp"));
}

#[test]
fn runs_are_summed_across_peerconnections_and_restarts() {
    let mut t = Trace::new();
    t.jsep(1.0).webrtc(1.5, r#"{"connection":"webrtcup"}"#);
    t.stats(2.0, "0", "audio", [50, 2, 0, 4])
        .stats(3.0, "0", "audio", [100, 4, 1, 6])
        // Counters went down: a renegotiation recreated the medium.
        .stats(4.0, "0", "audio", [30, 1, 0, 8])
        .webrtc(4.5, r#"{"connection":"hangup","reason":"Close PC"}"#)
        // A late sample of the same PeerConnection: continues its run.
        .stats(4.6, "0", "audio", [40, 1, 0, 8])
        // A new PeerConnection: its first sample is above the old run's
        // last one, and still a new run.
        .jsep(5.0)
        .webrtc(5.5, r#"{"connection":"webrtcup"}"#)
        .stats(7.0, "0", "audio", [60, 3, 2, 2]);
    let q = &t.end(8.0)[0].1;
    let a = q.media.audio.as_ref().unwrap();
    assert_eq!(q.samples, 5);
    // 100 + 40 + 60 packets; 4 + 1 + 3 lost; out: 1 + 0 + 2.
    assert_eq!(
        (a.inbound.packets, a.inbound.bytes, a.inbound.lost),
        (200, 20_000, 8)
    );
    assert_eq!(a.inbound.loss, Some(0.0385)); // 8 / 208
    assert_eq!((a.outbound.packets, a.outbound.lost), (200, 3));
    assert_eq!(a.outbound.loss, Some(0.015));
    assert_eq!(
        a.nacks,
        Nacks {
            received: 3,
            sent: 6
        }
    );
    assert_eq!(a.retransmissions, None, "video only");
    assert_eq!(
        a.inbound.jitter_ms,
        Some(Percentiles {
            p50: 6,
            p95: 8,
            max: 8
        })
    );
    assert_eq!(
        a.outbound.jitter_ms, None,
        "no receiver report: out-link-quality 0"
    );
    assert_eq!(
        a.link_quality_min,
        LinkQuality {
            inbound: Some(90),
            outbound: None
        }
    );
    assert_eq!(q.webrtc.setup_ms, Some(500));
    assert!(q.media.video.is_none());
}

#[test]
fn simulcast_layers_sum_into_video_and_data_counts_packets_and_bytes() {
    let mut t = Trace::new();
    t.jsep(1.0).webrtc(1.5, r#"{"connection":"webrtcup"}"#);
    t.stats(2.0, "1", "video", [10, 0, 0, 1])
        .stats(2.0, "1", "video-sim1", [20, 1, 0, 1])
        .stats(2.0, "1", "video-sim2", [30, 2, 0, 1])
        .stats(2.0, "2", "data", [5, 0, 0, 0])
        .line(2.5, 32, r#"[{"mid":"1","media":"video","packets-received":11,"packets-sent":11,"bytes-received":1100,"bytes-sent":1100,"remb-bitrate":1000000},{"mid":"1","media":"video-sim1","packets-received":21,"packets-sent":21,"bytes-received":2100,"bytes-sent":2100}]"#);
    let q = &t.end(3.0)[0].1;
    assert_eq!(q.samples, 6);
    let v = q.media.video.as_ref().unwrap();
    assert_eq!(v.inbound.packets, 11 + 21 + 30);
    // The combined sample says nothing of losses and retransmissions:
    // those of layers 0 and 1 are 0 since.
    assert_eq!(v.inbound.lost, 2);
    assert_eq!(v.retransmissions, Some(3));
    // 1 Mb/s is in the bucket [896, 1024) kb/s: its middle.
    assert_eq!(
        v.remb_bitrate,
        Some(Percentiles {
            p50: 960_000,
            p95: 960_000,
            max: 1_000_000
        })
    );
    let d = q.media.data.unwrap();
    assert_eq!((d.inbound.packets, d.outbound.bytes), (5, 500));
    assert_eq!(
        serde_json::to_value(d).unwrap(),
        serde_json::json!({"in": {"packets": 5, "bytes": 500}, "out": {"packets": 5, "bytes": 500}})
    );
}

#[test]
fn no_media_intervals_are_summed() {
    let mut t = Trace::new();
    t.jsep(1.0).webrtc(1.5, r#"{"connection":"webrtcup"}"#);
    t.stats(2.0, "0", "audio", [10, 0, 0, 0])
        // Janus noticed at 10 s that nothing came for 3 s; media back at 14 s.
        .line(
            10.0,
            32,
            r#"{"mid":"0","media":"audio","receiving":false,"seconds":3}"#,
        )
        .line(14.0, 32, r#"{"mid":"0","media":"audio","receiving":true}"#)
        // Again at 20 s (1 s: no `seconds`), until the session ends at 30 s.
        .line(20.0, 32, r#"{"mid":"0","media":"audio","receiving":false}"#);
    let q = &t.end(30.0)[0].1;
    assert_eq!(q.media.audio.as_ref().unwrap().no_media_s, 7 + 11);
}

#[test]
fn records_exist_only_for_open_sessions() {
    let mut q = Quality::new();
    let attach = decode(br#"{"type":2,"timestamp":1,"session_id":9,"handle_id":3,"event":{"name":"attached","plugin":"p"}}"#).unwrap();
    q.observe(&attach, |_| false);
    assert!(q.is_empty());
    q.set_shed(5);
    q.observe(&attach, |_| true);
    assert_eq!(q.len(), 1);
    q.set_shed(12);
    let r = q.finish(9, 2);
    assert_eq!((r.handles, r.samples_dropped), (1, 7));
    assert!(q.is_empty());
    assert_eq!(q.finish(9, 3), Summary::default());
}

/// What a session costs is bounded (BENCHMARKS.md: under 1 KiB with the
/// tracker's part for one handle sending audio and video): the parts must
/// stay this small.
#[test]
fn a_record_stays_small() {
    use std::mem::size_of;
    assert!(size_of::<Session>() <= 120, "{}", size_of::<Session>());
    assert!(size_of::<Media>() <= 360, "{}", size_of::<Media>());
    assert!(size_of::<Stream>() <= 72, "{}", size_of::<Stream>());
    assert!(size_of::<Handle>() <= 24, "{}", size_of::<Handle>());
}
