//! Janus's media (type 32) and WebRTC (type 16) events, as the quality
//! record reads them: the numbers of each stats sample, the no-media
//! notices, and the PeerConnection's ICE, DTLS and connection states.
//!
//! Both generations of payload (checked against Janus's `ice.c` and real
//! events, see `tests/traces/`):
//!
//! - 1.x: one stats object per m-line and simulcast layer (`mid`, `mindex`,
//!   `media` = `audio`, `video`, `video-sim1`, `video-sim2` or `data`,
//!   `codec`), `rtt` (and `rtt-values`) on layer 0 only, `remb-bitrate` on
//!   the medium of `mindex` 0 whatever its kind; with `combine_media_stats`
//!   the objects of one PeerConnection come as one array;
//! - 0.x: one fixed audio and one fixed video stream, no `mid` or `mindex`,
//!   `audio-codec`/`video-codec`, `remb-bitrate` on video layer 0.
//!
//! Numbers are read leniently: a field of an unexpected type counts as
//! absent, so that an odd value loses that value, not the event.

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// What kind of medium a stats sample or notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    Data,
}

impl MediaKind {
    /// `media` as Janus writes it: the kind, and the simulcast layer
    /// (`video-sim1` is layer 1 of video).
    pub fn parse(media: &str) -> Option<(MediaKind, u8)> {
        Some(match media {
            "audio" => (MediaKind::Audio, 0),
            "video" => (MediaKind::Video, 0),
            "video-sim1" => (MediaKind::Video, 1),
            "video-sim2" => (MediaKind::Video, 2),
            "data" => (MediaKind::Data, 0),
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Data => "data",
        }
    }
}

/// Which m-line of a handle's PeerConnection an event is about: the hash
/// of its `mid` (1.x), else its `mindex`, else (0.x, one stream per kind)
/// its kind.
pub type Line = u32;

/// FNV-1a of the `mid`, with the top bit set (so it never equals a
/// `mindex` or a kind's line).
fn mid_line(mid: &str) -> Line {
    let mut h: u32 = 0x811c_9dc5;
    for b in mid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h | 0x8000_0000
}

fn line_of(mid: Option<&str>, mindex: Option<i64>, kind: MediaKind) -> Line {
    match (mid, mindex) {
        (Some(mid), _) => mid_line(mid),
        (None, Some(i)) => (i.clamp(0, 0x3fff_ffff)) as u32,
        (None, None) => 0x4000_0000 | kind as u32,
    }
}

/// One stats object (subtype 3): Janus's cumulative counters of one medium
/// and layer of one PeerConnection, and its current estimates. `in` is
/// what Janus receives from the client, `out` what it sends to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub kind: Option<MediaKind>,
    pub layer: u8,
    pub line: Line,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `lost`: packets Janus expected and did not get (may go down when
    /// late packets arrive).
    pub lost_in: i64,
    /// `lost-by-remote`: what the client's last receiver report said it lost.
    pub lost_out: i64,
    /// Milliseconds; `jitter-local` and `jitter-remote`.
    pub jitter_in: Option<u64>,
    pub jitter_out: Option<u64>,
    /// Milliseconds; 0 until Janus measured one.
    pub rtt: Option<u64>,
    /// 0 to 100; `in-link-quality` and `out-link-quality`.
    pub link_in: Option<u64>,
    pub link_out: Option<u64>,
    pub nacks_received: u64,
    pub nacks_sent: u64,
    pub retransmissions: u64,
    /// Bits per second: the client's REMB estimate for the PeerConnection.
    pub remb: Option<u64>,
}

/// A media event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// Stats (subtype 3): one sample, or the samples of one combined event.
    Stats(Sample, Vec<Sample>),
    /// A no-media notice (subtype 1): Janus started or stopped receiving a
    /// medium; `seconds` is how long it had gone without (`no_media_timer`,
    /// written only when above 1).
    Receiving {
        kind: MediaKind,
        layer: u8,
        line: Line,
        receiving: bool,
        seconds: Option<u64>,
    },
    /// Anything else (slow-link notices, unknown shapes).
    Other,
}

impl MediaEvent {
    /// The samples of a stats event, in order.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        let (first, more): (Option<&Sample>, &[Sample]) = match self {
            MediaEvent::Stats(first, more) => (Some(first), more),
            _ => (None, &[]),
        };
        first.into_iter().chain(more)
    }
}

/// A candidate's type, as libnice names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateType {
    Host,
    Srflx,
    Prflx,
    Relay,
}

impl CandidateType {
    pub fn parse(s: &str) -> Option<CandidateType> {
        Some(match s {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::Srflx,
            "prflx" => CandidateType::Prflx,
            "relay" => CandidateType::Relay,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
        }
    }
}

/// The selected pair: Janus's (local) and the client's (remote) candidate
/// types, and the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub local: CandidateType,
    pub remote: CandidateType,
    pub tcp: bool,
}

impl Pair {
    /// Parses `selected-pair` as Janus writes it:
    /// `127.0.0.2:20055 [host,udp] <-> 127.0.0.2:49389 [prflx,udp]`.
    pub fn parse(text: &str) -> Option<Pair> {
        let (local, remote) = text.split_once("<->")?;
        let part = |s: &str| -> Option<(CandidateType, bool)> {
            let inner = s.rsplit_once('[')?.1.split_once(']')?.0;
            let (ty, transport) = inner.split_once(',')?;
            Some((CandidateType::parse(ty.trim())?, transport.trim() == "tcp"))
        };
        let (local, _) = part(local)?;
        let (remote, tcp) = part(remote)?;
        Some(Pair { local, remote, tcp })
    }
}

/// A WebRTC event, as far as the quality record reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRtcEvent<'a> {
    /// ICE state (subtype 1) `failed`.
    IceFailed,
    /// ICE state `connected` or `ready`.
    IceConnected,
    /// A new selected pair (subtype 4).
    Pair(Pair),
    /// DTLS state (subtype 5) `failed`.
    DtlsFailed,
    /// `connection: webrtcup` (subtype 6): the PeerConnection is up.
    Up,
    /// `connection: hangup` (subtype 6), with its reason.
    Hangup(Option<Cow<'a, str>>),
    /// Any other state, candidates, unknown shapes.
    Other,
}

/// An object's key, borrowed from the input unless it holds escapes
/// (serde's `Cow<str>` always copies: one allocation per key).
pub(super) struct Key<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// An integer read leniently: anything that is not one is `None`.
struct Num(Option<i64>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v.min(i64::MAX as u64) as i64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v.is_finite().then_some(v as i64)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Num, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Num(None))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Num, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Num(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string read leniently (`None` for anything else), borrowed when it
/// can be.
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Text<'a>, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Text<'a>, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A boolean read leniently.
struct Flag(Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(Some(v)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_unit<E>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Flag, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Flag(None))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Flag, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Flag(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of one media object, as read.
#[derive(Default)]
struct MediaObject<'a> {
    media: Option<Cow<'a, str>>,
    mid: Option<Cow<'a, str>>,
    mindex: Option<i64>,
    receiving: Option<bool>,
    seconds: Option<i64>,
    substream: Option<i64>,
    /// Whether a packet or byte counter was there (a stats object, not a
    /// notice).
    stats: bool,
    packets_in: Option<i64>,
    packets_out: Option<i64>,
    bytes_in: Option<i64>,
    bytes_out: Option<i64>,
    lost_in: Option<i64>,
    lost_out: Option<i64>,
    jitter_in: Option<i64>,
    jitter_out: Option<i64>,
    rtt: Option<i64>,
    link_in: Option<i64>,
    link_out: Option<i64>,
    nacks_received: Option<i64>,
    nacks_sent: Option<i64>,
    retransmissions: Option<i64>,
    remb: Option<i64>,
}

impl<'de: 'a, 'a> Deserialize<'de> for MediaObject<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MediaObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<MediaObject<'a>, M::Error> {
                let mut o = MediaObject::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let num = |map: &mut M| map.next_value::<Num>().map(|n| n.0);
                    match &*key {
                        "media" => o.media = map.next_value::<Text<'a>>()?.0,
                        "mid" => o.mid = map.next_value::<Text<'a>>()?.0,
                        "mindex" => o.mindex = num(&mut map)?,
                        "receiving" => o.receiving = map.next_value::<Flag>()?.0,
                        "seconds" => o.seconds = num(&mut map)?,
                        "substream" => o.substream = num(&mut map)?,
                        "packets-received" => (o.stats, o.packets_in) = (true, num(&mut map)?),
                        "packets-sent" => (o.stats, o.packets_out) = (true, num(&mut map)?),
                        "bytes-received" => (o.stats, o.bytes_in) = (true, num(&mut map)?),
                        "bytes-sent" => (o.stats, o.bytes_out) = (true, num(&mut map)?),
                        "lost" => o.lost_in = num(&mut map)?,
                        "lost-by-remote" => o.lost_out = num(&mut map)?,
                        "jitter-local" => o.jitter_in = num(&mut map)?,
                        "jitter-remote" => o.jitter_out = num(&mut map)?,
                        "rtt" => o.rtt = num(&mut map)?,
                        "in-link-quality" => o.link_in = num(&mut map)?,
                        "out-link-quality" => o.link_out = num(&mut map)?,
                        "nacks-received" => o.nacks_received = num(&mut map)?,
                        "nacks-sent" => o.nacks_sent = num(&mut map)?,
                        "retransmissions-received" => o.retransmissions = num(&mut map)?,
                        "remb-bitrate" => o.remb = num(&mut map)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(o)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl MediaObject<'_> {
    fn sample(&self) -> Sample {
        let kl = self.media.as_deref().and_then(MediaKind::parse);
        let u = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
        let opt = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        Sample {
            kind: kl.map(|(k, _)| k),
            layer: kl.map_or(0, |(_, l)| l),
            line: line_of(
                self.mid.as_deref(),
                self.mindex,
                kl.map_or(MediaKind::Audio, |(k, _)| k),
            ),
            packets_in: u(self.packets_in),
            packets_out: u(self.packets_out),
            bytes_in: u(self.bytes_in),
            bytes_out: u(self.bytes_out),
            lost_in: self.lost_in.unwrap_or(0),
            lost_out: self.lost_out.unwrap_or(0),
            jitter_in: opt(self.jitter_in),
            jitter_out: opt(self.jitter_out),
            rtt: opt(self.rtt),
            link_in: opt(self.link_in),
            link_out: opt(self.link_out),
            nacks_received: u(self.nacks_received),
            nacks_sent: u(self.nacks_sent),
            retransmissions: u(self.retransmissions),
            remb: opt(self.remb),
        }
    }

    fn event(self) -> MediaEvent {
        if self.stats {
            return MediaEvent::Stats(self.sample(), Vec::new());
        }
        match (
            self.media.as_deref().and_then(MediaKind::parse),
            self.receiving,
        ) {
            (Some((kind, layer)), Some(receiving)) => MediaEvent::Receiving {
                kind,
                // A simulcast substream's notice names it; `media` says video.
                layer: self.substream.map_or(layer, |s| s.clamp(0, 2) as u8),
                line: line_of(self.mid.as_deref(), self.mindex, kind),
                receiving,
                seconds: self.seconds.map(|s| s.max(0) as u64),
            },
            _ => MediaEvent::Other,
        }
    }
}

/// The `event` of a media event: an object, or (combined stats) an array
/// of objects.
pub(super) struct MediaBody(pub MediaEvent);

impl<'de> Deserialize<'de> for MediaBody {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MediaBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object or an array of objects")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<MediaBody, M::Error> {
                let o = MediaObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MediaBody(o.event()))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<MediaBody, S::Error> {
                let mut samples: Vec<Sample> = Vec::new();
                while let Some(MediaObjectOrAny(o)) = seq.next_element()? {
                    if let Some(o) = o
                        && o.stats
                    {
                        samples.push(o.sample());
                    }
                }
                if samples.is_empty() {
                    return Ok(MediaBody(MediaEvent::Other));
                }
                let first = samples.remove(0);
                Ok(MediaBody(MediaEvent::Stats(first, samples)))
            }
        }
        d.deserialize_any(V)
    }
}

/// An element of a combined stats array: an object, or anything else
/// (skipped).
struct MediaObjectOrAny<'a>(Option<MediaObject<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for MediaObjectOrAny<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MediaObjectOrAny<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let o = MediaObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MediaObjectOrAny(Some(o)))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MediaObjectOrAny(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MediaObjectOrAny(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MediaObjectOrAny(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MediaObjectOrAny(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MediaObjectOrAny(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MediaObjectOrAny(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MediaObjectOrAny(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The `event` of a WebRTC event.
pub(super) struct WebRtcBody<'a>(pub WebRtcEvent<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for WebRtcBody<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = WebRtcBody<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<WebRtcBody<'a>, M::Error> {
                let (mut ice, mut pair, mut dtls, mut connection, mut reason) =
                    (None, None, None, None, None);
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let text = |map: &mut M| map.next_value::<Text<'a>>().map(|t| t.0);
                    match &*key {
                        "ice" => ice = text(&mut map)?,
                        "selected-pair" => pair = text(&mut map)?,
                        "dtls" => dtls = text(&mut map)?,
                        "connection" => connection = text(&mut map)?,
                        "reason" => reason = text(&mut map)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let ev = match (
                    ice.as_deref(),
                    pair.as_deref(),
                    dtls.as_deref(),
                    connection.as_deref(),
                ) {
                    (Some("failed"), ..) => WebRtcEvent::IceFailed,
                    (Some("connected" | "ready"), ..) => WebRtcEvent::IceConnected,
                    (_, Some(p), ..) => {
                        Pair::parse(p).map_or(WebRtcEvent::Other, WebRtcEvent::Pair)
                    }
                    (_, _, Some("failed"), _) => WebRtcEvent::DtlsFailed,
                    (_, _, _, Some("webrtcup")) => WebRtcEvent::Up,
                    (_, _, _, Some("hangup")) => WebRtcEvent::Hangup(reason),
                    _ => WebRtcEvent::Other,
                };
                Ok(WebRtcBody(ev))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(text: &str) -> MediaEvent {
        serde_json::from_str::<MediaBody>(text).unwrap().0
    }

    fn webrtc(text: &str) -> WebRtcEvent<'_> {
        serde_json::from_str::<WebRtcBody<'_>>(text).unwrap().0
    }

    #[test]
    fn reads_both_generations_of_stats() {
        // Janus 1.1.2, recorded (tests/traces/).
        let v1 = media(
            r#"{"mid":"1","mindex":1,"media":"video","codec":"vp8","base":90000,"rtt":2,"lost":7,"lost-by-remote":1,"jitter-local":0,"jitter-remote":2,"in-link-quality":96,"in-media-link-quality":99,"out-link-quality":100,"out-media-link-quality":100,"packets-received":168,"packets-sent":168,"bytes-received":168899,"bytes-sent":169367,"bytes-received-lastsec":61289,"bytes-sent-lastsec":61517,"nacks-received":16,"nacks-sent":7,"retransmissions-received":7}"#,
        );
        let s = v1.samples().next().unwrap();
        assert_eq!(s.kind, Some(MediaKind::Video));
        assert_eq!(s.line, mid_line("1"));
        assert_eq!(
            (s.packets_in, s.packets_out, s.bytes_in, s.bytes_out),
            (168, 168, 168899, 169367)
        );
        assert_eq!((s.lost_in, s.lost_out), (7, 1));
        assert_eq!(
            (s.jitter_in, s.jitter_out, s.rtt),
            (Some(0), Some(2), Some(2))
        );
        assert_eq!((s.link_in, s.link_out), (Some(96), Some(100)));
        assert_eq!(
            (s.nacks_received, s.nacks_sent, s.retransmissions),
            (16, 7, 7)
        );
        // Janus 0.x: no mid, the codec under its own key, a simulcast layer.
        let v0 = media(
            r#"{"media":"video-sim1","video-codec":"vp8","base":90000,"lost":-2,"lost-by-remote":0,"jitter-local":3,"jitter-remote":0,"in-link-quality":100,"in-media-link-quality":100,"out-link-quality":0,"out-media-link-quality":0,"packets-received":10,"packets-sent":0,"bytes-received":9000,"bytes-sent":0,"bytes-received-lastsec":9000,"bytes-sent-lastsec":0,"nacks-received":0,"nacks-sent":0,"retransmissions-received":0}"#,
        );
        let s = v0.samples().next().unwrap();
        assert_eq!((s.kind, s.layer), (Some(MediaKind::Video), 1));
        assert_eq!(s.line, 0x4000_0000 | MediaKind::Video as u32);
        assert_eq!(
            s.lost_in, -2,
            "kept as Janus said it; the record clamps totals"
        );
        assert_eq!(s.rtt, None);
    }

    #[test]
    fn reads_combined_stats_and_data_channels() {
        let ev = media(
            r#"[{"mid":"0","mindex":0,"media":"audio","packets-received":5,"packets-sent":4,"bytes-received":50,"bytes-sent":40,"remb-bitrate":256000},7,{"mid":"2","mindex":2,"media":"data","packets-received":3,"packets-sent":2,"bytes-received":300,"bytes-sent":200}]"#,
        );
        let all: Vec<&Sample> = ev.samples().collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].remb, Some(256000));
        assert_eq!(all[1].kind, Some(MediaKind::Data));
        assert_eq!((all[1].packets_in, all[1].bytes_out), (3, 200));
        assert_eq!(media("[]"), MediaEvent::Other);
    }

    #[test]
    fn reads_no_media_notices_and_is_lenient() {
        assert_eq!(
            media(r#"{"media":"audio","mid":"0","receiving":false,"seconds":3}"#),
            MediaEvent::Receiving {
                kind: MediaKind::Audio,
                layer: 0,
                line: mid_line("0"),
                receiving: false,
                seconds: Some(3)
            }
        );
        // 0.x, a simulcast substream.
        assert_eq!(
            media(r#"{"media":"video","substream":2,"receiving":true}"#),
            MediaEvent::Receiving {
                kind: MediaKind::Video,
                layer: 2,
                line: 0x4000_0000 | MediaKind::Video as u32,
                receiving: true,
                seconds: None
            }
        );
        assert_eq!(
            media(r#"{"media":"video","mid":"1","slow_link":"uplink","lost_lastsec":4}"#),
            MediaEvent::Other
        );
        let odd = media(
            r#"{"media":"audio","packets-received":"many","bytes-received":[1],"rtt":{"x":1},"lost":1.5}"#,
        );
        let s = odd.samples().next().unwrap();
        assert_eq!(
            (s.packets_in, s.bytes_in, s.rtt, s.lost_in),
            (0, 0, None, 1)
        );
        assert!(serde_json::from_str::<MediaBody>("5").is_err());
    }

    #[test]
    fn reads_webrtc_states() {
        assert_eq!(
            webrtc(r#"{"ice":"failed","stream_id":1,"component_id":1}"#),
            WebRtcEvent::IceFailed
        );
        assert_eq!(webrtc(r#"{"ice":"ready"}"#), WebRtcEvent::IceConnected);
        assert_eq!(webrtc(r#"{"ice":"gathering"}"#), WebRtcEvent::Other);
        assert_eq!(
            webrtc(
                r#"{"selected-pair":"127.0.0.2:20055 [host,udp] <-> 10.0.0.1:49389 [relay,udp]","candidates":{}}"#
            ),
            WebRtcEvent::Pair(Pair {
                local: CandidateType::Host,
                remote: CandidateType::Relay,
                tcp: false
            })
        );
        assert_eq!(
            webrtc(r#"{"selected-pair":"[::1]:9 [srflx,tcp] <-> [::1]:10 [prflx,tcp]"}"#),
            WebRtcEvent::Pair(Pair {
                local: CandidateType::Srflx,
                remote: CandidateType::Prflx,
                tcp: true
            })
        );
        assert_eq!(webrtc(r#"{"selected-pair":"garbage"}"#), WebRtcEvent::Other);
        assert_eq!(
            webrtc(r#"{"dtls":"failed","retransmissions":3}"#),
            WebRtcEvent::DtlsFailed
        );
        assert_eq!(webrtc(r#"{"dtls":"connected"}"#), WebRtcEvent::Other);
        assert_eq!(webrtc(r#"{"connection":"webrtcup"}"#), WebRtcEvent::Up);
        assert_eq!(
            webrtc(r#"{"connection":"hangup","reason":"DTLS alert"}"#),
            WebRtcEvent::Hangup(Some("DTLS alert".into()))
        );
        assert_eq!(
            webrtc(r#"{"connection":"hangup"}"#),
            WebRtcEvent::Hangup(None)
        );
        assert_eq!(
            webrtc(r#"{"local-candidate":"1 1 udp 1 127.0.0.2 20055 typ host"}"#),
            WebRtcEvent::Other
        );
    }
}
