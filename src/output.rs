//! What the handler writes: the events on their way to the sinks, and the
//! `destroyed` events it makes or annotates, in Janus's own shape (see the
//! README's "Output" section for the contract).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use crate::janus::types;
use crate::tracker::Ending;

/// One event on its way to the sinks: its compact JSON text plus what sinks
/// filter and prioritise on. Shared between sinks without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutEvent {
    /// Janus event type (0 when the event could not be decoded).
    pub ty: u32,
    /// Session created/destroyed/timeout: kept over other events when a queue is full.
    pub lifecycle: bool,
    /// The session this event belongs to, if any.
    pub session_id: Option<u64>,
    /// The event, one line of compact JSON (no trailing newline).
    pub json: Box<str>,
}

impl OutEvent {
    pub fn new(ty: u32, lifecycle: bool, session_id: Option<u64>, json: String) -> Arc<OutEvent> {
        Arc::new(OutEvent {
            ty,
            lifecycle,
            session_id,
            json: json.into_boxed_str(),
        })
    }
}

/// The synthetic session `destroyed` event for an ending, in Janus's shape
/// (`emitter`, `type`, `timestamp`, `session_id`, `event`) with the two fields
/// this handler adds inside `event`: `reason` and `synthetic`.
pub fn destroyed_json(emitter: Option<&str>, ending: &Ending) -> String {
    #[derive(serde::Serialize)]
    struct Destroyed<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        emitter: Option<&'a str>,
        #[serde(rename = "type")]
        ty: u32,
        timestamp: i64,
        session_id: u64,
        event: Body,
    }
    #[derive(serde::Serialize)]
    struct Body {
        name: &'static str,
        reason: &'static str,
        synthetic: bool,
    }
    serde_json::to_string(&Destroyed {
        emitter,
        ty: types::SESSION,
        timestamp: ending.timestamp,
        session_id: ending.session_id,
        event: Body {
            name: "destroyed",
            reason: ending.reason.as_str(),
            synthetic: ending.synthetic,
        },
    })
    .expect("serialising plain fields cannot fail")
}

/// Janus's own `destroyed` event with `reason` and `synthetic` added inside
/// `event` (replacing any already there); everything else is kept as it was,
/// byte for byte and in the same order. None for what [`decode`] rejects or
/// an event without an `event` object.
pub fn annotate_destroyed(text: &[u8], ending: &Ending) -> Option<String> {
    use serde_json::value::RawValue;
    let text = std::str::from_utf8(text).ok()?;
    let top: RawObject<'_> = serde_json::from_str(text).ok()?;
    let (_, body) = top.0.iter().rev().find(|(k, _)| k == "event")?;
    let inner: RawObject<'_> = serde_json::from_str(body.get()).ok()?;
    let reason = RawValue::from_string(serde_json::to_string(ending.reason.as_str()).ok()?).ok()?;
    let synthetic = RawValue::from_string(ending.synthetic.to_string()).ok()?;
    let mut fields: Vec<(&str, &RawValue)> = inner
        .0
        .iter()
        .filter(|(k, _)| k != "reason" && k != "synthetic")
        .map(|(k, v)| (k.as_ref(), *v))
        .collect();
    fields.push(("reason", &reason));
    fields.push(("synthetic", &synthetic));
    let event = RawValue::from_string(serde_json::to_string(&Fields(&fields)).ok()?).ok()?;
    let top_fields: Vec<(&str, &RawValue)> = top
        .0
        .iter()
        .map(|(k, v)| (k.as_ref(), if k == "event" { &*event } else { *v }))
        .collect();
    serde_json::to_string(&Fields(&top_fields)).ok()
}

/// Writes keys and raw values as one JSON object, in order.
struct Fields<'a, 'b>(&'b [(&'a str, &'a serde_json::value::RawValue)]);

impl serde::Serialize for Fields<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
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
        let ending = Ending {
            session_id: 42,
            reason: Reason::TransportGone,
            timestamp: 1795534522677901,
            synthetic: true,
        };
        assert_eq!(
            destroyed_json(Some("MyJanusInstance"), &ending),
            r#"{"emitter":"MyJanusInstance","type":1,"timestamp":1795534522677901,"session_id":42,"event":{"name":"destroyed","reason":"transport_gone","synthetic":true}}"#
        );
        let native = br#"{"emitter":"J","type":1,"timestamp":5,"session_id":42,"event":{"name":"destroyed"}}"#;
        let ending = Ending {
            reason: Reason::Request,
            synthetic: false,
            ..ending
        };
        assert_eq!(
            annotate_destroyed(native, &ending).unwrap(),
            r#"{"emitter":"J","type":1,"timestamp":5,"session_id":42,"event":{"name":"destroyed","reason":"request","synthetic":false}}"#
        );
    }

    /// decode accepts exactly what annotate_destroyed can annotate (the fuzz
    /// target decode_track checks this on any input).
    #[test]
    fn decode_and_annotate_agree() {
        let ending = Ending {
            session_id: 1,
            reason: Reason::Request,
            timestamp: 1,
            synthetic: false,
        };
        // Found by the fuzzer (fuzz/seeds/decode_track/crash-023b6925): invalid
        // UTF-8 inside an unknown key's value.
        let crash = include_bytes!("../fuzz/seeds/decode_track/crash-023b6925");
        assert!(decode(crash).is_err());
        assert!(annotate_destroyed(crash, &ending).is_none());
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
        let annotated = annotate_destroyed(deep.as_bytes(), &ending).unwrap();
        assert!(
            annotated.ends_with(r#""reason":"request","synthetic":false}}"#),
            "{annotated}"
        );
        // A reason already there is replaced, not repeated; values are kept as written.
        let odd =
            br#"{"type":1,"session_id":1,"event":{"reason":"x","name":"destroyed","n":1.50}}"#;
        assert_eq!(
            annotate_destroyed(odd, &ending).unwrap(),
            r#"{"type":1,"session_id":1,"event":{"name":"destroyed","n":1.50,"reason":"request","synthetic":false}}"#
        );
    }
}
