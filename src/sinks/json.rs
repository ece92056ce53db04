//! The bodies sinks send, as Janus's own handlers send them: one event, or
//! with `grouping` a JSON array of events, in one of the `json` styles of
//! sampleevh, rabbitmqevh and mqttevh (jansson's `JSON_COMPACT`,
//! `JSON_INDENT(0)` and `JSON_INDENT(3)`).

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

pub use crate::config::JsonStyle;

/// The body for a batch of events (compact JSON texts): the first event
/// alone, or with `many` all of them in an array, in `style`.
pub fn body(batch: &[&str], many: bool, style: JsonStyle) -> Result<Vec<u8>, String> {
    if style == JsonStyle::Compact {
        return Ok(if many {
            let mut out = Vec::with_capacity(batch.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
            out.push(b'[');
            for (i, e) in batch.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(e.as_bytes());
            }
            out.push(b']');
            out
        } else {
            batch
                .first()
                .map(|e| e.as_bytes().to_vec())
                .unwrap_or_default()
        });
    }
    let value = if many {
        Value::Array(batch.iter().map(|e| parse(e)).collect::<Result<_, _>>()?)
    } else {
        batch
            .first()
            .map(|e| parse(e))
            .transpose()?
            .unwrap_or(Value::Null)
    };
    Ok(format_json(&value, style))
}

/// An event's JSON text as a value (events are Janus's JSON: a failure here
/// is an internal error, reported rather than panicking).
pub fn parse(event: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(event).map_err(|err| format!("event is not JSON: {err}"))
}

/// Serialises in one of sampleevh's styles.
pub fn format_json(value: &Value, style: JsonStyle) -> Vec<u8> {
    let mut out = Vec::new();
    let written = match style {
        JsonStyle::Compact => serde_json::to_writer(&mut out, value),
        JsonStyle::Indented => {
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
            value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, fmt))
        }
        JsonStyle::Plain => value.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PlainFormatter,
        )),
    };
    debug_assert!(
        written.is_ok(),
        "serialising a Value into memory cannot fail"
    );
    out
}

/// jansson's `JSON_INDENT(0)`: one line, a space after `,` and `:`.
struct PlainFormatter;

impl serde_json::ser::Formatter for PlainFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_styles_match_sampleevh() {
        let v: Value = serde_json::from_str(r#"{"a":1,"b":[1,2],"c":{"d":"x"}}"#).unwrap();
        assert_eq!(
            String::from_utf8(format_json(&v, JsonStyle::Compact)).unwrap(),
            r#"{"a":1,"b":[1,2],"c":{"d":"x"}}"#
        );
        assert_eq!(
            String::from_utf8(format_json(&v, JsonStyle::Plain)).unwrap(),
            r#"{"a": 1, "b": [1, 2], "c": {"d": "x"}}"#
        );
        assert_eq!(
            String::from_utf8(format_json(&v, JsonStyle::Indented)).unwrap(),
            "{\n   \"a\": 1,\n   \"b\": [\n      1,\n      2\n   ],\n   \"c\": {\n      \"d\": \"x\"\n   }\n}"
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(
            body(&[r#"{"a":1}"#, r#"{"b":2}"#], true, JsonStyle::Compact).unwrap(),
            br#"[{"a":1},{"b":2}]"#
        );
        assert_eq!(
            body(&[r#"{"a":1,"b":2}"#], false, JsonStyle::Plain).unwrap(),
            br#"{"a": 1, "b": 2}"#
        );
        assert_eq!(
            body(&[r#"{"a":1}"#, r#"{"b":2}"#], true, JsonStyle::Plain).unwrap(),
            br#"[{"a": 1}, {"b": 2}]"#
        );
    }
}
