//! The per-session quality record: how each session's media went, joined
//! from the media (type 32) and WebRTC (type 16) events Janus emits per
//! handle, m-line and simulcast layer, and written once, on the session's
//! `destroyed` (`event.quality`, see docs/output.md, "The quality record").
//!
//! Pure Rust like the tracker: no FFI, no threads, no clock of its own
//! (time comes in with the events), so that recorded traces replay through
//! it with exact results. The worker feeds it every event after the
//! tracker, and takes a session's [`Summary`] when it writes the ending.
//!
//! What it keeps per session is bounded whatever the call's length: for
//! each medium (audio, video) the counters of finished runs, three
//! [`Sketch`]es (jitter in and out, RTT) and a few minimums; for each
//! m-line and layer of each handle the counters of its current run.
//!
//! How Janus's numbers are joined:
//! - Janus's counters are cumulative per m-line (and layer) of one
//!   PeerConnection. A new PeerConnection on a handle (after a hangup, the
//!   handle comes up again) or counters going down (a renegotiation that
//!   recreated the medium) start a new run: the runs are summed, never
//!   the last value taken.
//! - Simulcast layers (`video-sim1`, `video-sim2`) are runs of video.
//! - Jitter and RTT are estimates at each sample: they feed the sketches
//!   (jitter of what Janus receives once it received packets; jitter the
//!   client reports once Janus had a receiver report, i.e. an
//!   `out-link-quality` above 0; RTT once above 0, Janus's "not measured").
//! - REMB is per PeerConnection (Janus writes it on whichever medium has
//!   `mindex` 0 in 1.x): it is reported under video.

pub mod histograms;
mod record;
pub mod sketch;

use crate::janus::media::{MediaEvent, MediaKind, Pair, Sample, WebRtcEvent};
use crate::janus::{Facts, IdMap, Kind};
pub use histograms::QualityMetrics;
pub use record::{
    DataDirection, DataSummary, Direction, KindSummary, LinkQuality, MediaSummary, Nacks, Summary,
    WebRtcSummary,
};
pub use sketch::{Percentiles, Sketch};

/// The most m-lines and layers followed per session, and the most handles:
/// beyond them the oldest is folded into the totals (a later sample of it
/// would start a new run).
const MAX_STREAMS: usize = 32;
const MAX_HANDLES: usize = 32;
/// REMB is kept in units of 8 kbps (the sketch's range then reaches 16 Mbps).
pub const REMB_UNIT: u64 = 8000;
/// The longest hangup reason kept (Janus's own are short).
const MAX_REASON: usize = 64;

/// The aggregator of every open session's record. See the module
/// documentation.
#[derive(Default)]
pub struct Quality {
    sessions: IdMap<u64, Box<Session>>,
    /// Media and WebRTC events shed at intake before the event being
    /// observed, since the handler started.
    shed: u64,
}

/// Cumulative counters of one run (or the sum of runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    bytes_in: u64,
    bytes_out: u64,
    packets_in: u32,
    packets_out: u32,
    lost_in: i32,
    lost_out: i32,
    nacks_received: u32,
    nacks_sent: u32,
    retransmissions: u32,
}

fn clamp32(v: u64) -> u32 {
    v.min(u64::from(u32::MAX)) as u32
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

impl Counters {
    fn of(s: &Sample) -> Counters {
        Counters {
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            packets_in: clamp32(s.packets_in),
            packets_out: clamp32(s.packets_out),
            lost_in: clamp_i32(s.lost_in),
            lost_out: clamp_i32(s.lost_out),
            nacks_received: clamp32(s.nacks_received),
            nacks_sent: clamp32(s.nacks_sent),
            retransmissions: clamp32(s.retransmissions),
        }
    }

    /// Whether `next` cannot follow `self` in one run (a counter that only
    /// grows went down).
    fn restarted(&self, next: &Counters) -> bool {
        next.packets_in < self.packets_in
            || next.packets_out < self.packets_out
            || next.bytes_in < self.bytes_in
            || next.bytes_out < self.bytes_out
    }
}

/// Sums of runs: wide enough for any number of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    bytes_in: u64,
    bytes_out: u64,
    packets_in: u64,
    packets_out: u64,
    lost_in: i64,
    lost_out: i64,
    nacks_received: u64,
    nacks_sent: u64,
    retransmissions: u64,
}

impl Totals {
    fn add(&mut self, c: &Counters) {
        self.bytes_in += c.bytes_in;
        self.bytes_out += c.bytes_out;
        self.packets_in += u64::from(c.packets_in);
        self.packets_out += u64::from(c.packets_out);
        self.lost_in += i64::from(c.lost_in);
        self.lost_out += i64::from(c.lost_out);
        self.nacks_received += u64::from(c.nacks_received);
        self.nacks_sent += u64::from(c.nacks_sent);
        self.retransmissions += u64::from(c.retransmissions);
    }
}

/// One medium (audio or video) of a session: its finished runs and its
/// estimates.
#[derive(Debug, Clone, Default)]
struct Medium {
    /// Packets flowed (in or out): the kind is in the record.
    seen: bool,
    /// Lowest link quality seen (0 to 100), 0: never measured.
    link_in_min: u8,
    link_out_min: u8,
    /// Milliseconds without incoming media, summed over its streams.
    no_media_ms: u32,
    jitter_in: Sketch,
    jitter_out: Sketch,
    rtt: Sketch,
    /// The runs that ended (most sessions have one run: none).
    finished: Option<Box<Totals>>,
}

/// Everything kept once a session has media: allocated at its first sample.
#[derive(Debug, Clone, Default)]
struct Media {
    audio: Medium,
    video: Medium,
    /// Data channels (packets and bytes only): something flowed, and the
    /// runs that ended.
    data_seen: bool,
    data_finished: Option<Box<Totals>>,
    remb: Sketch,
}

impl Media {
    fn medium(&mut self, kind: MediaKind) -> Option<&mut Medium> {
        match kind {
            MediaKind::Audio => Some(&mut self.audio),
            MediaKind::Video => Some(&mut self.video),
            MediaKind::Data => None,
        }
    }

    /// Adds a run that ended to its kind's totals.
    fn fold(&mut self, kind: MediaKind, run: &Counters) {
        if *run == Counters::default() {
            return;
        }
        let finished = match kind {
            MediaKind::Audio => &mut self.audio.finished,
            MediaKind::Video => &mut self.video.finished,
            MediaKind::Data => &mut self.data_finished,
        };
        finished.get_or_insert_default().add(run);
    }
}

/// One m-line (and simulcast layer) of one handle: its current run.
#[derive(Debug, Clone)]
struct Stream {
    handle: u64,
    line: u32,
    kind: MediaKind,
    layer: u8,
    /// The handle's PeerConnection generation this run belongs to.
    generation: u16,
    last: Counters,
    /// Since when (µs) Janus says it receives nothing; 0: it receives.
    silent_since: i64,
}

/// One handle's PeerConnection as far as setup and failures go.
#[derive(Debug, Clone, Copy)]
struct Handle {
    id: u64,
    /// When its negotiation began (first JSEP or WebRTC event since it was
    /// last down), µs; 0: not negotiating.
    negotiating_since: i64,
    /// Bumped each time it comes up: a new PeerConnection's counters
    /// start a new run.
    generation: u16,
    up: bool,
    /// ICE said `failed` and did not recover (yet).
    ice_failing: bool,
}

/// What is kept of one session.
#[derive(Debug, Default)]
struct Session {
    /// Events shed at intake before its first handle was attached.
    shed_at_start: u64,
    attached: u32,
    samples: u64,
    ice_failed: u32,
    dtls_failed: u32,
    up: bool,
    relay: bool,
    setup_ms: Option<u32>,
    pair: Option<Pair>,
    hangup: Option<Box<str>>,
    handles: Vec<Handle>,
    streams: Vec<Stream>,
    media: Option<Box<Media>>,
}

impl Quality {
    pub fn new() -> Quality {
        Quality::default()
    }

    /// How many media and WebRTC events the intake shed before the event
    /// about to be observed (a count since the handler started; see
    /// `crate::intake`).
    pub fn set_shed(&mut self, shed: u64) {
        self.shed = shed;
    }

    /// Sessions with a record in progress.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Keeps only the sessions `keep` says are still open (the tracker
    /// dropped the others without an ending: evicted).
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.sessions.retain(|sid, _| keep(*sid));
    }

    /// Observes one event. A record begins at the first handle attached to
    /// a session `open` says is open; other events only add to records
    /// that exist.
    pub fn observe(&mut self, ev: &Facts<'_>, open: impl FnOnce(u64) -> bool) {
        let (Some(sid), Some(hid)) = (ev.session_id, ev.handle_id) else {
            return;
        };
        if let Kind::HandleAttached { .. } = ev.kind {
            if !self.sessions.contains_key(&sid) {
                if !open(sid) {
                    return;
                }
                self.sessions.insert(
                    sid,
                    Box::new(Session {
                        shed_at_start: self.shed,
                        ..Session::default()
                    }),
                );
            }
            let s = self.sessions.get_mut(&sid).expect("inserted above");
            s.attached = s.attached.saturating_add(1);
            s.handle(hid);
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let at = ev.timestamp;
        match &ev.kind {
            Kind::RemoteJsep | Kind::LocalJsep => s.negotiating(hid, at),
            Kind::WebRtc(w) => s.webrtc(hid, at, w),
            Kind::Media(m) => s.media(hid, at, m),
            Kind::HandleDetached => s.down(hid, at),
            _ => {}
        }
    }

    /// The record of a session that ended at `at` (µs), and forgets it. A
    /// session without one (no handle was ever attached) gets the empty
    /// record.
    pub fn finish(&mut self, session_id: u64, at: i64) -> Summary {
        match self.sessions.remove(&session_id) {
            Some(mut s) => {
                let ids: Vec<u64> = s.handles.iter().map(|h| h.id).collect();
                for id in ids {
                    s.down(id, at);
                }
                s.summary(self.shed.saturating_sub(s.shed_at_start))
            }
            None => Summary::default(),
        }
    }
}

impl Session {
    /// The handle's state, added if new.
    fn handle(&mut self, id: u64) -> &mut Handle {
        let i = match self.handles.iter().position(|h| h.id == id) {
            Some(i) => i,
            None => {
                if self.handles.len() >= MAX_HANDLES {
                    let old = self.handles.remove(0);
                    if old.ice_failing {
                        self.ice_failed += 1;
                    }
                }
                self.handles.reserve_exact(1);
                self.handles.push(Handle {
                    id,
                    negotiating_since: 0,
                    generation: 0,
                    up: false,
                    ice_failing: false,
                });
                self.handles.len() - 1
            }
        };
        &mut self.handles[i]
    }

    fn negotiating(&mut self, hid: u64, at: i64) {
        let h = self.handle(hid);
        if !h.up && h.negotiating_since == 0 {
            h.negotiating_since = at.max(1);
        }
    }

    fn webrtc(&mut self, hid: u64, at: i64, w: &WebRtcEvent<'_>) {
        match w {
            WebRtcEvent::IceFailed => self.handle(hid).ice_failing = true,
            WebRtcEvent::IceConnected => self.handle(hid).ice_failing = false,
            WebRtcEvent::Pair(p) => {
                self.pair = Some(*p);
                if p.local == crate::janus::media::CandidateType::Relay
                    || p.remote == crate::janus::media::CandidateType::Relay
                {
                    self.relay = true;
                }
            }
            WebRtcEvent::DtlsFailed => self.dtls_failed += 1,
            WebRtcEvent::Up => {
                let h = self.handle(hid);
                if h.up {
                    return;
                }
                h.up = true;
                h.ice_failing = false;
                h.generation = h.generation.wrapping_add(1);
                let since = std::mem::take(&mut h.negotiating_since);
                self.up = true;
                if self.setup_ms.is_none() && since != 0 {
                    let ms = at.saturating_sub(since).max(0) / 1000;
                    self.setup_ms = Some(ms.min(u32::MAX as i64) as u32);
                }
            }
            WebRtcEvent::Hangup(reason) => {
                if let Some(r) = reason {
                    let mut end = r.len().min(MAX_REASON);
                    while !r.is_char_boundary(end) {
                        end -= 1;
                    }
                    self.hangup = Some(r[..end].into());
                }
                self.down(hid, at);
            }
            WebRtcEvent::Other => self.negotiating(hid, at),
        }
    }

    /// The handle's PeerConnection is gone (hangup, detach, the session's
    /// end): its ICE failure counts if it never recovered, and its streams
    /// stop being silent. Their counters stay: a late sample of the same
    /// PeerConnection continues its run.
    fn down(&mut self, hid: u64, at: i64) {
        let Some(h) = self.handles.iter_mut().find(|h| h.id == hid) else {
            return;
        };
        if h.ice_failing {
            self.ice_failed += 1;
        }
        h.ice_failing = false;
        h.up = false;
        h.negotiating_since = 0;
        for st in self.streams.iter_mut().filter(|st| st.handle == hid) {
            if st.silent_since != 0 {
                if let Some(media) = self.media.as_deref_mut()
                    && let Some(m) = media.medium(st.kind)
                {
                    let ms = at.saturating_sub(st.silent_since).max(0) / 1000;
                    m.no_media_ms = m.no_media_ms.saturating_add(ms.min(u32::MAX as i64) as u32);
                }
                st.silent_since = 0;
            }
        }
    }

    /// The stream of this handle, m-line and layer, added if new.
    fn stream(&mut self, hid: u64, line: u32, kind: MediaKind, layer: u8) -> usize {
        if let Some(i) = self
            .streams
            .iter()
            .position(|s| s.handle == hid && s.line == line && s.layer == layer && s.kind == kind)
        {
            return i;
        }
        let generation = self.handle(hid).generation;
        if self.streams.len() >= MAX_STREAMS {
            let old = self.streams.remove(0);
            if let Some(media) = self.media.as_deref_mut() {
                media.fold(old.kind, &old.last);
            }
        }
        self.streams.reserve_exact(1);
        self.streams.push(Stream {
            handle: hid,
            line,
            kind,
            layer,
            generation,
            last: Counters::default(),
            silent_since: 0,
        });
        self.streams.len() - 1
    }

    fn media(&mut self, hid: u64, at: i64, m: &MediaEvent) {
        match m {
            MediaEvent::Stats(..) => {
                for sample in m.samples() {
                    self.sample(hid, sample);
                }
            }
            MediaEvent::Receiving {
                kind,
                layer: 0,
                line,
                receiving,
                seconds,
            } if *kind != MediaKind::Data => {
                let i = self.stream(hid, *line, *kind, 0);
                let st = &mut self.streams[i];
                if !*receiving && st.silent_since == 0 {
                    // Janus notices after `no_media_timer` seconds (1 when
                    // it does not say).
                    let quiet = seconds.unwrap_or(1).min(86_400) as i64 * 1_000_000;
                    st.silent_since = at.saturating_sub(quiet).max(1);
                } else if *receiving && st.silent_since != 0 {
                    let ms = at.saturating_sub(st.silent_since).max(0) / 1000;
                    let ms = ms.min(u32::MAX as i64) as u32;
                    st.silent_since = 0;
                    let kind = st.kind;
                    let media = self.media.get_or_insert_with(Box::default);
                    if let Some(m) = media.medium(kind) {
                        m.no_media_ms = m.no_media_ms.saturating_add(ms);
                    }
                }
            }
            _ => {}
        }
    }

    fn sample(&mut self, hid: u64, s: &Sample) {
        self.samples += 1;
        let Some(kind) = s.kind else {
            return;
        };
        let generation = self.handle(hid).generation;
        let i = self.stream(hid, s.line, kind, s.layer);
        let next = Counters::of(s);
        let media = self.media.get_or_insert_with(Box::default);
        let st = &mut self.streams[i];
        if st.generation != generation || st.last.restarted(&next) {
            media.fold(kind, &st.last);
            st.generation = generation;
        }
        st.last = next;
        if let Some(remb) = s.remb.filter(|r| *r > 0) {
            media.remb.observe(remb.div_ceil(REMB_UNIT));
        }
        // A kind is in the record once something of it flowed.
        let flowed = s.packets_in > 0 || s.packets_out > 0;
        let Some(m) = media.medium(kind) else {
            media.data_seen |= flowed;
            return;
        };
        m.seen |= flowed;
        if s.packets_in > 0
            && let Some(j) = s.jitter_in
        {
            m.jitter_in.observe(j);
        }
        let out_measured = s.link_out.is_some_and(|q| q > 0);
        if out_measured && let Some(j) = s.jitter_out {
            m.jitter_out.observe(j);
        }
        if let Some(rtt) = s.rtt.filter(|r| *r > 0) {
            m.rtt.observe(rtt);
        }
        let lowest = |min: &mut u8, q: Option<u64>| {
            if let Some(q) = q.filter(|q| *q > 0) {
                let q = q.min(100) as u8;
                if *min == 0 || q < *min {
                    *min = q;
                }
            }
        };
        lowest(&mut m.link_in_min, s.link_in);
        lowest(&mut m.link_out_min, s.link_out);
    }

    fn summary(&self, shed: u64) -> Summary {
        let webrtc = WebRtcSummary {
            up: self.up,
            setup_ms: self.setup_ms.map(u64::from),
            ice_failed: self.ice_failed,
            dtls_failed: self.dtls_failed,
            relay: self.relay,
            pair: self.pair.map(|p| {
                format!(
                    "{}/{}",
                    p.remote.as_str(),
                    if p.tcp { "tcp" } else { "udp" }
                )
            }),
            hangup: self.hangup.as_deref().map(str::to_string),
        };
        let media = match self.media.as_deref() {
            None => MediaSummary::default(),
            Some(m) => {
                let of = |t: &Option<Box<Totals>>| t.as_deref().copied().unwrap_or_default();
                let mut totals = [
                    of(&m.audio.finished),
                    of(&m.video.finished),
                    of(&m.data_finished),
                ];
                for st in &self.streams {
                    let i = match st.kind {
                        MediaKind::Audio => 0,
                        MediaKind::Video => 1,
                        MediaKind::Data => 2,
                    };
                    totals[i].add(&st.last);
                }
                let [audio, video, data] = totals;
                MediaSummary {
                    audio: m.audio.seen.then(|| record::medium(&m.audio, &audio, None)),
                    video: m
                        .video
                        .seen
                        .then(|| record::medium(&m.video, &video, Some(&m.remb))),
                    data: m.data_seen.then(|| record::data(&data)),
                }
            }
        };
        Summary {
            handles: self.attached,
            samples: self.samples,
            samples_dropped: shed,
            webrtc,
            media,
        }
    }
}

#[cfg(test)]
mod tests;
