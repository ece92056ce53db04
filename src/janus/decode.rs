//! Decoding Janus events: from the JSON text Janus produced to the few facts
//! the lifecycle tracker needs.
//!
//! Decoding borrows from the input where it can, so the worker does not
//! allocate per event for the common shapes. Anything the tracker does not
//! look at (SDPs, stats, plugin data) is skipped, not copied.

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

use super::media::{Key, MediaBody, MediaEvent, WebRtcBody, WebRtcEvent};
use super::types;

/// A transport instance as Janus names it: module package and instance id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportRef<'a> {
    pub module: Cow<'a, str>,
    pub id: Cow<'a, str>,
}

/// What an event means for session lifecycles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    SessionCreated {
        transport: Option<TransportRef<'a>>,
    },
    SessionDestroyed,
    SessionTimeout,
    HandleAttached {
        plugin: Cow<'a, str>,
    },
    HandleDetached,
    /// A transport instance (a WebSocket connection, ...) opened.
    TransportConnected {
        transport: TransportRef<'a>,
    },
    TransportDisconnected {
        transport: TransportRef<'a>,
    },
    /// Core `started`: what the server reports about itself.
    CoreStartup(Box<Startup>),
    /// Core `status: update` (Janus >= 1.2 and 0.x >= 0.14, every 15 s): the
    /// core's own counts.
    CoreStatus(CoreCounts),
    CoreShutdown,
    /// A JSEP offer or answer the client sent (`owner: remote`).
    RemoteJsep,
    /// A JSEP offer or answer Janus sent (`owner: local`).
    LocalJsep,
    /// A media event (type 32): stats, no-media notices.
    Media(MediaEvent),
    /// A WebRTC event (type 16): ICE, selected pair, DTLS, up, hangup.
    WebRtc(WebRtcEvent<'a>),
    /// Anything else: forwarded as it is.
    Other,
}

impl Kind<'_> {
    /// Whether the event is part of a session's lifecycle (session created,
    /// destroyed, timeout): these are the last to be dropped under pressure.
    pub fn is_lifecycle(&self) -> bool {
        matches!(
            self,
            Kind::SessionCreated { .. } | Kind::SessionDestroyed | Kind::SessionTimeout
        )
    }
}

/// What Janus's core `started` event says that the handler uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Startup {
    /// `session-timeout`, seconds (0: sessions never time out).
    pub session_timeout: Option<u64>,
    /// `reclaim-session-timeout`, seconds (0: reclaim off).
    pub reclaim_session_timeout: Option<u64>,
    /// `version_string`, e.g. 1.4.1.
    pub version: Option<Version>,
    /// `server-name` (the `emitter` of its events, unless set otherwise).
    pub server_name: Option<String>,
}

/// What Janus's periodic core `status: update` event counts (Janus >= 1.2,
/// 0.x >= 0.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoreCounts {
    pub sessions: Option<u64>,
    pub handles: Option<u64>,
    pub peerconnections: Option<u64>,
}

/// A Janus version, as `version_string` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Whether this version's core ends a session itself when its transport
    /// goes away with reclaim off (the upstream fix for issue 3533, released
    /// on the same day in both maintained lines): 1.x from 1.3.2, 0.x from
    /// 0.15.2, and any later major version.
    pub fn ends_transport_gone(self) -> bool {
        match self.0 {
            0 => self >= Version(0, 15, 2),
            1 => self >= Version(1, 3, 2),
            _ => true,
        }
    }

    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.trim().split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        Some(Version(
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
            parts.next().flatten().unwrap_or(0),
        ))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The facts of one Janus event that the tracker and the router use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// Janus's event type (a single bit of the events mask); 0 when missing.
    pub ty: u32,
    pub subtype: u32,
    /// Janus real time, microseconds since the epoch; 0 when missing.
    pub timestamp: i64,
    pub session_id: Option<u64>,
    pub handle_id: Option<u64>,
    pub emitter: Option<Cow<'a, str>>,
    pub kind: Kind<'a>,
}

/// Why an event could not be decoded.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The top level of an event. Decoded by hand so that `event` is read as
/// what its `type` says (Janus writes `type` first): a media or WebRTC
/// body, or the generic [`Body`]. An `event` before `type` is kept raw and
/// read once the type is known.
#[derive(Default)]
struct Wire<'a> {
    ty: Option<u32>,
    subtype: Option<u32>,
    timestamp: Option<i64>,
    session_id: Option<u64>,
    handle_id: Option<u64>,
    emitter: Option<Cow<'a, str>>,
    event: Option<Event<'a>>,
}

enum Event<'a> {
    Body(Body<'a>),
    Media(MediaEvent),
    WebRtc(WebRtcEvent<'a>),
    Raw(&'a RawValue),
}

impl<'a> Event<'a> {
    /// Reads a raw `event` as what an event of type `ty` carries.
    fn read(raw: &'a RawValue, ty: Option<u32>) -> Result<Event<'a>, serde_json::Error> {
        Ok(match ty {
            Some(types::MEDIA) => Event::Media(serde_json::from_str::<MediaBody>(raw.get())?.0),
            Some(types::WEBRTC) => {
                Event::WebRtc(serde_json::from_str::<WebRtcBody<'a>>(raw.get())?.0)
            }
            _ => Event::Body(serde_json::from_str(raw.get())?),
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Wire<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Wire<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Wire<'a>, M::Error> {
                let mut w = Wire::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    match &*key {
                        "type" => w.ty = map.next_value()?,
                        "subtype" => w.subtype = map.next_value()?,
                        "timestamp" => w.timestamp = map.next_value()?,
                        "session_id" => w.session_id = map.next_value()?,
                        "handle_id" => w.handle_id = map.next_value()?,
                        "emitter" => w.emitter = map.next_value()?,
                        "event" => {
                            w.event = match w.ty {
                                Some(types::MEDIA) => map
                                    .next_value::<Option<MediaBody>>()?
                                    .map(|b| Event::Media(b.0)),
                                Some(types::WEBRTC) => map
                                    .next_value::<Option<WebRtcBody<'a>>>()?
                                    .map(|b| Event::WebRtc(b.0)),
                                Some(_) => map.next_value::<Option<Body<'a>>>()?.map(Event::Body),
                                None => map.next_value::<Option<&'a RawValue>>()?.map(Event::Raw),
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(w)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The `event` object. Decoded by hand ([`Body::deserialize`]) so that only
/// an object is accepted, as `output::annotate_destroyed` requires.
#[derive(Default)]
struct Body<'a> {
    name: Option<Cow<'a, str>>,
    plugin: Option<Cow<'a, str>>,
    /// A string in transport events, an object in session `created`.
    transport: Option<TransportField<'a>>,
    id: Option<Cow<'a, str>>,
    data: Option<Data<'a>>,
    status: Option<Cow<'a, str>>,
    owner: Option<Cow<'a, str>>,
    info: Option<Info>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Body<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Body<'a>, M::Error> {
                let mut b = Body::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    match &*key {
                        "name" => b.name = map.next_value()?,
                        "plugin" => b.plugin = map.next_value()?,
                        "transport" => b.transport = map.next_value()?,
                        "id" => b.id = map.next_value()?,
                        "data" => b.data = map.next_value()?,
                        "status" => b.status = map.next_value()?,
                        "owner" => b.owner = map.next_value()?,
                        "info" => b.info = map.next_value()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(b)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TransportField<'a> {
    Module(#[serde(borrow)] Cow<'a, str>),
    Instance {
        #[serde(borrow)]
        transport: Cow<'a, str>,
        #[serde(borrow)]
        id: Cow<'a, str>,
    },
    Unknown(serde::de::IgnoredAny),
}

#[derive(Deserialize, Default)]
struct Data<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Info {
    #[serde(rename = "session-timeout", default)]
    session_timeout: Option<u64>,
    #[serde(rename = "reclaim-session-timeout", default)]
    reclaim_session_timeout: Option<u64>,
    #[serde(default)]
    version_string: Option<String>,
    #[serde(rename = "server-name", default)]
    server_name: Option<String>,
    #[serde(default)]
    sessions: Option<u64>,
    #[serde(default)]
    handles: Option<u64>,
    #[serde(default)]
    peerconnections: Option<u64>,
}

/// Decodes one event (a JSON object as Janus builds it).
///
/// Accepts exactly what `output::annotate_destroyed` can annotate: UTF-8 text (as
/// jansson always produces) holding a JSON object whose `event`, if present,
/// is an object (or, in a media event only, an array: combined stats).
pub fn decode(text: &[u8]) -> Result<Facts<'_>, DecodeError> {
    decode_text(utf8(text)?)
}

/// An event's bytes as text: UTF-8, as jansson always produces.
pub fn utf8(text: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(text).map_err(|e| DecodeError(format!("not UTF-8: {e}")))
}

/// Decodes one event already known to be text (see [`decode`]): for a
/// caller that keeps the text, e.g. to forward it without checking it again.
pub fn decode_text(text: &str) -> Result<Facts<'_>, DecodeError> {
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(DecodeError("not a JSON object".into()));
    }
    let mut wire: Wire<'_> = serde_json::from_str(text).map_err(|e| DecodeError(e.to_string()))?;
    let ty = wire.ty.unwrap_or(0);
    let subtype = wire.subtype.unwrap_or(0);
    let event = match wire.event.take() {
        Some(Event::Raw(raw)) => {
            Some(Event::read(raw, wire.ty).map_err(|e| DecodeError(e.to_string()))?)
        }
        other => other,
    };
    let body = match event {
        Some(Event::Media(m)) => return Ok(wire_facts(wire, ty, subtype, Kind::Media(m))),
        Some(Event::WebRtc(w)) => return Ok(wire_facts(wire, ty, subtype, Kind::WebRtc(w))),
        Some(Event::Body(b)) => b,
        Some(Event::Raw(_)) | None => Body::default(),
    };
    let name = body.name.as_deref();
    let kind = match ty {
        types::SESSION => match name {
            Some("created") => Kind::SessionCreated {
                transport: match body.transport {
                    Some(TransportField::Instance { transport, id }) => Some(TransportRef {
                        module: transport,
                        id,
                    }),
                    _ => None,
                },
            },
            Some("destroyed") => Kind::SessionDestroyed,
            Some("timeout") => Kind::SessionTimeout,
            _ => Kind::Other,
        },
        types::HANDLE => match name {
            Some("attached") => Kind::HandleAttached {
                plugin: body.plugin.unwrap_or(Cow::Borrowed("")),
            },
            Some("detached") => Kind::HandleDetached,
            _ => Kind::Other,
        },
        types::TRANSPORT => {
            let what = body.data.and_then(|d| d.event);
            match (what.as_deref(), body.transport, body.id) {
                (Some("disconnected"), Some(TransportField::Module(module)), Some(id)) => {
                    Kind::TransportDisconnected {
                        transport: TransportRef { module, id },
                    }
                }
                (Some("connected"), Some(TransportField::Module(module)), Some(id)) => {
                    Kind::TransportConnected {
                        transport: TransportRef { module, id },
                    }
                }
                _ => Kind::Other,
            }
        }
        types::CORE => match (subtype, body.status.as_deref()) {
            (types::SUBTYPE_CORE_SHUTDOWN, _) => Kind::CoreShutdown,
            (types::SUBTYPE_CORE_STARTUP, Some("started")) => {
                let info = body.info.unwrap_or_default();
                Kind::CoreStartup(Box::new(Startup {
                    session_timeout: info.session_timeout,
                    reclaim_session_timeout: info.reclaim_session_timeout,
                    version: info.version_string.as_deref().and_then(Version::parse),
                    server_name: info.server_name,
                }))
            }
            (types::SUBTYPE_CORE_STARTUP, Some("update")) => {
                let info = body.info.unwrap_or_default();
                Kind::CoreStatus(CoreCounts {
                    sessions: info.sessions,
                    handles: info.handles,
                    peerconnections: info.peerconnections,
                })
            }
            _ => Kind::Other,
        },
        types::JSEP => match body.owner.as_deref() {
            Some("remote") => Kind::RemoteJsep,
            Some("local") => Kind::LocalJsep,
            _ => Kind::Other,
        },
        _ => Kind::Other,
    };
    Ok(wire_facts(wire, ty, subtype, kind))
}

fn wire_facts<'a>(wire: Wire<'a>, ty: u32, subtype: u32, kind: Kind<'a>) -> Facts<'a> {
    Facts {
        ty,
        subtype,
        timestamp: wire.timestamp.unwrap_or(0),
        session_id: wire.session_id,
        handle_id: wire.handle_id,
        emitter: wire.emitter,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_session_created_with_transport() {
        let text = br#"{"emitter": "J", "type": 1, "timestamp": 10, "session_id": 7, "event": {"name": "created", "transport": {"transport": "janus.transport.websockets", "id": "123"}}}"#;
        let f = decode(text).unwrap();
        assert_eq!(f.ty, 1);
        assert_eq!(f.session_id, Some(7));
        assert_eq!(f.emitter.as_deref(), Some("J"));
        assert_eq!(
            f.kind,
            Kind::SessionCreated {
                transport: Some(TransportRef {
                    module: "janus.transport.websockets".into(),
                    id: "123".into()
                })
            }
        );
    }

    #[test]
    fn decodes_transport_disconnected() {
        let text = br#"{"type": 128, "timestamp": 5, "event": {"transport": "janus.transport.websockets", "id": "4043032260073660882", "data": {"event": "disconnected"}}}"#;
        let f = decode(text).unwrap();
        assert_eq!(
            f.kind,
            Kind::TransportDisconnected {
                transport: TransportRef {
                    module: "janus.transport.websockets".into(),
                    id: "4043032260073660882".into()
                }
            }
        );
        let connected = br#"{"type": 128, "timestamp": 5, "event": {"transport": "t", "id": "1", "data": {"event": "connected"}}}"#;
        assert_eq!(
            decode(connected).unwrap().kind,
            Kind::TransportConnected {
                transport: TransportRef {
                    module: "t".into(),
                    id: "1".into()
                }
            }
        );
        let request = br#"{"type": 128, "timestamp": 5, "event": {"transport": "t", "id": "1", "data": {"event": "request"}}}"#;
        assert_eq!(decode(request).unwrap().kind, Kind::Other);
    }

    #[test]
    fn decodes_core_events() {
        let shutdown = br#"{"type": 256, "subtype": 2, "timestamp": 1, "event": {"status": "shutdown", "signum": 15}}"#;
        assert_eq!(decode(shutdown).unwrap().kind, Kind::CoreShutdown);
        let started = br#"{"type": 256, "subtype": 1, "timestamp": 1, "event": {"status": "started", "info": {"session-timeout": 6, "reclaim-session-timeout": 30, "version_string": "1.4.1", "server-name": "J"}}}"#;
        assert_eq!(
            decode(started).unwrap().kind,
            Kind::CoreStartup(Box::new(Startup {
                session_timeout: Some(6),
                reclaim_session_timeout: Some(30),
                version: Some(Version(1, 4, 1)),
                server_name: Some("J".into()),
            }))
        );
        assert_eq!(Version::parse("1.1.2"), Some(Version(1, 1, 2)));
        assert_eq!(Version::parse("1.3.2-dev"), Some(Version(1, 3, 2)));
        assert_eq!(Version::parse("2"), Some(Version(2, 0, 0)));
        assert_eq!(Version::parse("x"), None);
        assert_eq!(Version::parse("0.16.1"), Some(Version(0, 16, 1)));
        let update = br#"{"type": 256, "subtype": 1, "timestamp": 1, "event": {"status": "update", "info": {"sessions": 3, "handles": 2, "peerconnections": 1, "stats-period": 1}}}"#;
        assert_eq!(
            decode(update).unwrap().kind,
            Kind::CoreStatus(CoreCounts {
                sessions: Some(3),
                handles: Some(2),
                peerconnections: Some(1),
            })
        );
        let partial = br#"{"type": 256, "subtype": 1, "timestamp": 1, "event": {"status": "update", "info": {"sessions": 0}}}"#;
        assert_eq!(
            decode(partial).unwrap().kind,
            Kind::CoreStatus(CoreCounts {
                sessions: Some(0),
                ..CoreCounts::default()
            })
        );
    }

    /// Both maintained lines got the native transport-gone ending on the
    /// same day: 1.3.2 and 0.15.2.
    #[test]
    fn which_versions_end_transport_gone_sessions_themselves() {
        let old = ["0.11.8", "0.14.4", "0.15.1", "1.1.2", "1.2.4", "1.3.1"];
        let new = [
            "0.15.2", "0.15.3", "0.16.1", "1.3.2", "1.4.1", "1.4.2", "2.0.0",
        ];
        for v in old {
            assert!(!Version::parse(v).unwrap().ends_transport_gone(), "{v}");
        }
        for v in new {
            assert!(Version::parse(v).unwrap().ends_transport_gone(), "{v}");
        }
    }

    /// Janus 0.x's stats, one event per medium (0.16.1's ice.c): the codec
    /// under `audio-codec` / `video-codec`, no `mid`, `mindex` or
    /// `rtt-values`, fixed audio and video streams.
    #[test]
    fn accepts_0x_stats_payloads() {
        let audio = r#"{"media":"audio","audio-codec":"opus","base":48000,"rtt":0,"lost":0,"lost-by-remote":0,"jitter-local":1,"jitter-remote":0,"in-link-quality":100,"in-media-link-quality":100,"out-link-quality":100,"out-media-link-quality":100,"packets-received":250,"packets-sent":250,"bytes-received":20000,"bytes-sent":20000,"bytes-received-lastsec":4000,"bytes-sent-lastsec":4000,"nacks-received":0,"nacks-sent":0,"retransmissions-received":0}"#;
        let video = r#"{"media":"video","video-codec":"vp8","base":90000,"rtt":0,"lost":0,"lost-by-remote":0,"jitter-local":0,"jitter-remote":0,"in-link-quality":100,"in-media-link-quality":100,"out-link-quality":100,"out-media-link-quality":100,"packets-received":300,"packets-sent":300,"bytes-received":300000,"bytes-sent":300000,"bytes-received-lastsec":60000,"bytes-sent-lastsec":60000,"nacks-received":0,"nacks-sent":0,"retransmissions-received":0,"remb-bitrate":1000000}"#;
        for event in [audio, video] {
            let text = format!(
                r#"{{"emitter":"J","type":32,"subtype":3,"timestamp":9,"session_id":1,"handle_id":2,"event":{event}}}"#
            );
            let f = decode(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!((f.ty, f.session_id, f.handle_id), (32, Some(1), Some(2)));
        }
    }

    #[test]
    fn handles_and_jsep() {
        let att = br#"{"type": 2, "timestamp": 1, "session_id": 1, "handle_id": 2, "event": {"name": "attached", "plugin": "janus.plugin.echotest"}}"#;
        assert_eq!(
            decode(att).unwrap().kind,
            Kind::HandleAttached {
                plugin: "janus.plugin.echotest".into()
            }
        );
        let jsep = br#"{"type": 8, "timestamp": 1, "session_id": 1, "handle_id": 2, "event": {"owner": "remote", "jsep": {"type": "offer", "sdp": "v=0"}}}"#;
        assert_eq!(decode(jsep).unwrap().kind, Kind::RemoteJsep);
    }

    #[test]
    fn media_and_webrtc_events_in_any_key_order() {
        use crate::janus::media::{MediaEvent, MediaKind, WebRtcEvent};
        let combined = br#"{"type":32,"subtype":3,"timestamp":1,"session_id":1,"handle_id":2,"event":[{"mid":"0","media":"audio","packets-received":5,"packets-sent":4,"bytes-received":50,"bytes-sent":40},{"mid":"1","media":"video","packets-received":6,"packets-sent":6,"bytes-received":60,"bytes-sent":60}]}"#;
        let Kind::Media(m) = decode(combined).unwrap().kind else {
            panic!("a media event");
        };
        let kinds: Vec<_> = m.samples().map(|s| s.kind).collect();
        assert_eq!(kinds, [Some(MediaKind::Audio), Some(MediaKind::Video)]);
        // `event` before `type` (not Janus's order): read once the type is known.
        let late = br#"{"event":{"connection":"hangup","reason":"ICE failed"},"type":16,"subtype":6,"session_id":1,"handle_id":2}"#;
        assert_eq!(
            decode(late).unwrap().kind,
            Kind::WebRtc(WebRtcEvent::Hangup(Some("ICE failed".into())))
        );
        let late_media = br#"{"event":[],"type":32}"#;
        assert_eq!(
            decode(late_media).unwrap().kind,
            Kind::Media(MediaEvent::Other)
        );
        // Only media events may carry an array.
        assert!(decode(br#"{"event":[],"type":1}"#).is_err());
        assert!(decode(br#"{"type":16,"event":[]}"#).is_err());
        let local = br#"{"type":8,"session_id":1,"handle_id":2,"event":{"owner":"local","jsep":{"type":"answer","sdp":"v=0"}}}"#;
        assert_eq!(decode(local).unwrap().kind, Kind::LocalJsep);
    }

    #[test]
    fn tolerates_missing_fields_and_rejects_wrong_types() {
        assert_eq!(decode(b"{}").unwrap().ty, 0);
        assert!(decode(b"[]").is_err());
        assert!(decode(br#"{"type": "one"}"#).is_err());
        assert!(decode(br#"{"type": 1, "session_id": -4}"#).is_err());
        assert!(decode(b"not json").is_err());
        // A transport field of an unexpected shape is not an error.
        let odd = br#"{"type": 1, "session_id": 3, "event": {"name": "created", "transport": 5}}"#;
        assert_eq!(
            decode(odd).unwrap().kind,
            Kind::SessionCreated { transport: None }
        );
    }
}
