//! The quality record as written on `destroyed` (`event.quality`): its
//! JSON shape is these types' serde shape. Every field is documented in
//! docs/output.md ("The quality record").

use serde::Serialize;

use super::sketch::{Percentiles, Sketch};
use super::{Medium, REMB_UNIT, Totals};

/// `event.quality`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Handles attached to the session during its life.
    pub handles: u32,
    /// Media stats samples aggregated (one per m-line and layer per stats
    /// event).
    pub samples: u64,
    /// Media and WebRTC events the handler shed at intake (queue at
    /// capacity) between the session's first handle and its ending, every
    /// session's together: an upper bound of what this record misses; 0
    /// means it misses nothing.
    pub samples_dropped: u64,
    pub webrtc: WebRtcSummary,
    pub media: MediaSummary,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebRtcSummary {
    /// Some PeerConnection of the session came up (`webrtcup`).
    pub up: bool,
    /// From the first negotiation step of the first PeerConnection that
    /// came up to its `webrtcup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_ms: Option<u64>,
    /// PeerConnections whose ICE failed and never recovered.
    pub ice_failed: u32,
    /// DTLS handshakes that failed.
    pub dtls_failed: u32,
    /// Some selected pair had a relay candidate on either side.
    pub relay: bool,
    /// The last selected pair: the client's candidate type and the
    /// transport, e.g. `host/udp`, `srflx/udp`, `relay/tcp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair: Option<String>,
    /// The reason of the last `hangup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hangup: Option<String>,
}

/// `media`: one entry per kind seen; `{}` when none.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MediaSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<KindSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<KindSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSummary>,
}

/// One direction of a medium: `in` is what Janus received from the
/// client, `out` what it sent to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Direction {
    pub packets: u64,
    pub bytes: u64,
    /// `in`: packets Janus expected and did not get; `out`: what the
    /// client's receiver reports said it lost.
    pub lost: u64,
    /// `in`: lost / (packets + lost); `out`: lost / packets; 0 to 1, four
    /// decimals; absent with nothing to divide by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<Percentiles>,
}

/// NACK requests: `in` those Janus received (the client asking for what
/// Janus sent again), `out` those Janus sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Nacks {
    #[serde(rename = "in")]
    pub received: u64,
    #[serde(rename = "out")]
    pub sent: u64,
}

/// The lowest link quality (0 to 100) Janus estimated; a side Janus never
/// measured is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkQuality {
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub inbound: Option<u8>,
    #[serde(rename = "out", skip_serializing_if = "Option::is_none")]
    pub outbound: Option<u8>,
}

/// Audio or video.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindSummary {
    #[serde(rename = "in")]
    pub inbound: Direction,
    #[serde(rename = "out")]
    pub outbound: Direction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<Percentiles>,
    pub nacks: Nacks,
    pub link_quality_min: LinkQuality,
    /// Seconds Janus received none of it, summed over its m-lines.
    pub no_media_s: u64,
    /// Video only: retransmitted packets Janus received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retransmissions: Option<u64>,
    /// Video only: the client's REMB estimates, bits per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remb_bitrate: Option<Percentiles>,
}

/// Data channels: packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DataSummary {
    #[serde(rename = "in")]
    pub inbound: DataDirection,
    #[serde(rename = "out")]
    pub outbound: DataDirection,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DataDirection {
    pub packets: u64,
    pub bytes: u64,
}

/// A ratio rounded to four decimals, within 0 to 1.
fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| ((part as f64 / whole as f64).clamp(0.0, 1.0) * 1e4).round() / 1e4)
}

/// Audio or video from its estimates, totals (every run summed) and, for
/// video, the PeerConnection's REMB sketch.
pub(super) fn medium(m: &Medium, t: &Totals, remb: Option<&Sketch>) -> KindSummary {
    let lost_in = t.lost_in.max(0) as u64;
    let lost_out = t.lost_out.max(0) as u64;
    let some = |q: u8| (q > 0).then_some(q);
    KindSummary {
        inbound: Direction {
            packets: t.packets_in,
            bytes: t.bytes_in,
            lost: lost_in,
            loss: ratio(lost_in, t.packets_in + lost_in),
            jitter_ms: m.jitter_in.percentiles(1),
        },
        outbound: Direction {
            packets: t.packets_out,
            bytes: t.bytes_out,
            lost: lost_out,
            loss: ratio(lost_out, t.packets_out),
            jitter_ms: m.jitter_out.percentiles(1),
        },
        rtt_ms: m.rtt.percentiles(1),
        nacks: Nacks {
            received: t.nacks_received,
            sent: t.nacks_sent,
        },
        link_quality_min: LinkQuality {
            inbound: some(m.link_in_min),
            outbound: some(m.link_out_min),
        },
        no_media_s: u64::from(m.no_media_ms / 1000),
        retransmissions: remb.map(|_| t.retransmissions),
        remb_bitrate: remb.and_then(|r| r.percentiles(REMB_UNIT)),
    }
}

pub(super) fn data(t: &Totals) -> DataSummary {
    DataSummary {
        inbound: DataDirection {
            packets: t.packets_in,
            bytes: t.bytes_in,
        },
        outbound: DataDirection {
            packets: t.packets_out,
            bytes: t.bytes_out,
        },
    }
}
