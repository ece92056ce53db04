//! What the handler writes: the events on their way to the sinks, and the
//! `destroyed` events it makes or annotates, in Janus's own shape (see the
//! docs/output.md for the contract).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use crate::janus::types;
use crate::quality::Summary;
use crate::tracker::Ending;

/// One event on its way to the sinks: its compact JSON text plus what sinks
/// filter and prioritise on, as decoded once by the worker. Shared between
/// sinks without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutEvent {
    /// Janus event type (0 when the event could not be decoded).
    pub ty: u32,
    /// Session created/destroyed/timeout: kept over other events when a queue is full.
    pub lifecycle: bool,
    /// The session this event belongs to, if any.
    pub session_id: Option<u64>,
    /// Its Janus `timestamp` (µs; 0 when it has none), when the worker
    /// decoded it or made it; None when not known (read from `json` then).
    pub timestamp: Option<i64>,
    /// The event, one line of compact JSON (no trailing newline).
    pub json: Box<str>,
}

impl OutEvent {
    /// An event whose timestamp was not decoded (an event that is not a
    /// Janus event object; tests).
    pub fn new(ty: u32, lifecycle: bool, session_id: Option<u64>, json: String) -> Arc<OutEvent> {
        Self::make(ty, lifecycle, session_id, None, json)
    }

    /// A decoded or synthetic event: its `timestamp` is known.
    pub fn stamped(
        ty: u32,
        lifecycle: bool,
        session_id: Option<u64>,
        timestamp: i64,
        json: String,
    ) -> Arc<OutEvent> {
        Self::make(ty, lifecycle, session_id, Some(timestamp), json)
    }

    fn make(
        ty: u32,
        lifecycle: bool,
        session_id: Option<u64>,
        timestamp: Option<i64>,
        json: String,
    ) -> Arc<OutEvent> {
        Arc::new(OutEvent {
            ty,
            lifecycle,
            session_id,
            timestamp,
            json: json.into_boxed_str(),
        })
    }
}

/// What the handler adds inside `event` of every `destroyed` it forwards:
/// why the session ended, who made the event, what a billing backend
/// needs without joining the `created` event (creation time, duration in µs,
/// the transport it was created on), and how its media went (`quality`,
/// see [`crate::quality`]). Fields that are not known (a session the
/// handler never saw created; the media of a session a previous run saw)
/// are left out.
#[derive(serde::Serialize)]
struct Added<'a> {
    reason: &'static str,
    synthetic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<TransportOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<&'a Summary>,
}

/// A transport instance, shaped as in Janus's own `created` event.
#[derive(serde::Serialize)]
struct TransportOut<'a> {
    transport: &'a str,
    id: &'a str,
}

impl<'a> Added<'a> {
    fn new(
        ending: &Ending,
        transport: Option<(&'a str, &'a str)>,
        quality: Option<&'a Summary>,
    ) -> Added<'a> {
        Added {
            reason: ending.reason.as_str(),
            synthetic: ending.synthetic,
            created: ending.created,
            duration_us: ending.duration_us(),
            transport: transport.map(|(transport, id)| TransportOut { transport, id }),
            quality,
        }
    }

    const KEYS: [&'static str; 6] = [
        "reason",
        "synthetic",
        "created",
        "duration_us",
        "transport",
        "quality",
    ];
}

/// The synthetic session `destroyed` event for an ending, in Janus's shape
/// (`emitter`, `type`, `timestamp`, `session_id`, `event`) with the fields
/// this handler adds inside `event` (see [`Added`]). `transport` names the
/// transport the session was created on: module and instance id; `quality`
/// is the session's quality record.
pub fn destroyed_json(
    emitter: Option<&str>,
    ending: &Ending,
    transport: Option<(&str, &str)>,
    quality: Option<&Summary>,
) -> String {
    #[derive(serde::Serialize)]
    struct Destroyed<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        emitter: Option<&'a str>,
        #[serde(rename = "type")]
        ty: u32,
        timestamp: i64,
        session_id: u64,
        event: Body<'a>,
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        name: &'static str,
        #[serde(flatten)]
        added: Added<'a>,
    }
    serde_json::to_string(&Destroyed {
        emitter,
        ty: types::SESSION,
        timestamp: ending.timestamp,
        session_id: ending.session_id,
        event: Body {
            name: "destroyed",
            added: Added::new(ending, transport, quality),
        },
    })
    .expect("serialising plain fields cannot fail")
}

/// Janus's own `destroyed` event (its text, as the worker decoded it) with
/// the handler's fields added inside `event` (replacing any already there);
/// everything else is kept as it was, byte for byte and in the same order.
/// None for text that is not a JSON object with an `event` object (what
/// `janus::decode` rejects).
///
/// The text is read once at its top level, to find `event`, and `event`
/// once, to drop the fields the handler replaces; nothing else is parsed
/// or written again.
pub fn annotate_destroyed(
    text: &str,
    ending: &Ending,
    transport: Option<(&str, &str)>,
    quality: Option<&Summary>,
) -> Option<String> {
    let top: RawObject<'_> = serde_json::from_str(text).ok()?;
    // Where each top-level `event` value lies in `text` (Janus writes one).
    let spans: Vec<(usize, usize)> = top
        .0
        .iter()
        .filter(|(k, _)| k == "event")
        .map(|(_, v)| span_in(text, v.get()))
        .collect::<Option<_>>()?;
    let &(start, end) = spans.last()?;
    let inner: RawObject<'_> = serde_json::from_str(&text[start..end]).ok()?;
    let added = serde_json::to_string(&Added::new(ending, transport, quality)).ok()?;
    // `{"reason":...}` without its braces: never empty (reason, synthetic).
    let added = &added[1..added.len() - 1];
    let mut event = String::with_capacity(end - start + added.len() + 2);
    event.push('{');
    for (k, v) in inner
        .0
        .iter()
        .filter(|(k, _)| !Added::KEYS.contains(&k.as_ref()))
    {
        push_key(&mut event, k);
        event.push(':');
        event.push_str(v.get());
        event.push(',');
    }
    event.push_str(added);
    event.push('}');
    let mut out = String::with_capacity(text.len() + event.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(&event);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// Writes a key as serde_json does: quoted, escaped only where JSON needs it.
fn push_key(out: &mut String, key: &str) {
    if key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(key).expect("a string serialises"));
    } else {
        out.push('"');
        out.push_str(key);
        out.push('"');
    }
}

/// Where `part`, a slice borrowed from `text`, lies in it.
fn span_in(text: &str, part: &str) -> Option<(usize, usize)> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start + part.len();
    let same = text.get(start..end)?;
    std::ptr::eq(same.as_ptr(), part.as_ptr()).then_some((start, end))
}

/// A JSON object as its keys and the raw text of their values, in order:
/// nothing below the first level is parsed, so nothing there is rejected.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<RawObject<'a>, M::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::janus::{Kind, decode};
    use crate::tracker::Reason;

    #[test]
    fn synthetic_and_annotated_destroyed_keep_janus_shape() {
        let ending = Ending::new(42, Reason::TransportGone, 1795534522677901, true);
        assert_eq!(
            destroyed_json(Some("MyJanusInstance"), &ending, None, None),
            r#"{"emitter":"MyJanusInstance","type":1,"timestamp":1795534522677901,"session_id":42,"event":{"name":"destroyed","reason":"transport_gone","synthetic":true}}"#
        );
        let native = r#"{"emitter":"J","type":1,"timestamp":5,"session_id":42,"event":{"name":"destroyed"}}"#;
        let ending = Ending {
            reason: Reason::Request,
            synthetic: false,
            ..ending
        };
        assert_eq!(
            annotate_destroyed(native, &ending, None, None).unwrap(),
            r#"{"emitter":"J","type":1,"timestamp":5,"session_id":42,"event":{"name":"destroyed","reason":"request","synthetic":false}}"#
        );
    }

    /// decode accepts exactly what annotate_destroyed can annotate (the fuzz
    /// target decode_track checks this on any input).
    #[test]
    fn decode_and_annotate_agree() {
        let ending = Ending::new(1, Reason::Request, 1, false);
        // Found by the fuzzer (fuzz/seeds/decode_track/crash-023b6925): invalid
        // UTF-8 inside an unknown key's value.
        let crash = include_bytes!("../fuzz/seeds/decode_track/crash-023b6925");
        assert!(decode(crash).is_err());
        // ... as not text: annotate_destroyed takes only text.
        assert!(crate::janus::utf8(crash).is_err());
        // An `event` that is an array is not an event object.
        let array = br#"{"type": 1, "session_id": 1, "event": ["destroyed"]}"#;
        assert!(decode(array).is_err());
        // Deep nesting below an unknown key: both accept it.
        let deep = format!(
            r#"{{"type": 1, "session_id": 1, "x": {}{}, "event": {{"name": "destroyed", "y": {}1{}}}}}"#,
            "[".repeat(300),
            "]".repeat(300),
            "{\"a\":".repeat(200),
            "}".repeat(200)
        );
        assert_eq!(
            decode(deep.as_bytes()).unwrap().kind,
            Kind::SessionDestroyed
        );
        let annotated = annotate_destroyed(&deep, &ending, None, None).unwrap();
        assert!(
            annotated.ends_with(r#""reason":"request","synthetic":false}}"#),
            "{annotated}"
        );
        // A reason already there is replaced, not repeated; values are kept as written.
        let odd = r#"{"type":1,"session_id":1,"event":{"reason":"x","name":"destroyed","n":1.50}}"#;
        assert_eq!(
            annotate_destroyed(odd, &ending, None, None).unwrap(),
            r#"{"type":1,"session_id":1,"event":{"name":"destroyed","n":1.50,"reason":"request","synthetic":false}}"#
        );
    }

    /// Only `event` is written again: the rest of the text is Janus's, byte
    /// for byte (spacing and escapes included); inside `event`, keys come out
    /// as serde_json writes them, escaped where JSON needs it.
    #[test]
    fn annotating_rewrites_only_the_event_object() {
        let ending = Ending::new(1, Reason::Request, 1, false);
        let text = r#"{ "type" : 1, "x\u0041":"\/", "event":{"na\"me":"destroyed", "k\u0041":[1, 2]} , "z":0 }"#;
        assert_eq!(
            annotate_destroyed(text, &ending, None, None).unwrap(),
            r#"{ "type" : 1, "x\u0041":"\/", "event":{"na\"me":"destroyed","kA":[1, 2],"reason":"request","synthetic":false} , "z":0 }"#
        );
        // What it makes is what serde_json makes of the same fields.
        let annotated = annotate_destroyed(text, &ending, None, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&annotated).unwrap();
        assert_eq!(v["event"]["reason"], "request");
        assert_eq!(v["xA"], "/");
        assert!(annotate_destroyed(r#"{"type":1}"#, &ending, None, None).is_none());
        assert!(annotate_destroyed(r#"{"event":[1]}"#, &ending, None, None).is_none());
        assert!(annotate_destroyed("[1]", &ending, None, None).is_none());
    }

    /// Every `destroyed` carries what billing needs: creation time, duration
    /// in µs and the transport the session was created on, synthetic or not.
    #[test]
    fn endings_are_billing_ready() {
        let ending = Ending {
            created: Some(1_000_000),
            ..Ending::new(7, Reason::Timeout, 61_500_000, true)
        };
        let ws = Some(("janus.transport.websockets", "123"));
        assert_eq!(
            destroyed_json(None, &ending, ws, None),
            r#"{"type":1,"timestamp":61500000,"session_id":7,"event":{"name":"destroyed","reason":"timeout","synthetic":true,"created":1000000,"duration_us":60500000,"transport":{"transport":"janus.transport.websockets","id":"123"}}}"#
        );
        let native = r#"{"type":1,"timestamp":3000000,"session_id":7,"event":{"name":"destroyed","duration_us":"x"}}"#;
        let ending = Ending {
            reason: Reason::Request,
            synthetic: false,
            timestamp: 3_000_000,
            ..ending
        };
        assert_eq!(
            annotate_destroyed(native, &ending, ws, None).unwrap(),
            r#"{"type":1,"timestamp":3000000,"session_id":7,"event":{"name":"destroyed","reason":"request","synthetic":false,"created":1000000,"duration_us":2000000,"transport":{"transport":"janus.transport.websockets","id":"123"}}}"#
        );
        // Both decode as Janus's own destroyed.
        for text in [
            destroyed_json(None, &ending, ws, None),
            annotate_destroyed(native, &ending, ws, None).unwrap(),
        ] {
            assert_eq!(
                decode(text.as_bytes()).unwrap().kind,
                Kind::SessionDestroyed
            );
        }
    }
}
