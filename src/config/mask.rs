//! `events` masks, with the names Janus's own handlers use.

use std::fmt;

use crate::janus::types;

/// The names of event types, as in Janus's `events` settings.
pub const NAMES: [(&str, u32); 9] = [
    ("sessions", types::SESSION),
    ("handles", types::HANDLE),
    ("jsep", types::JSEP),
    ("webrtc", types::WEBRTC),
    ("media", types::MEDIA),
    ("plugins", types::PLUGIN),
    ("transports", types::TRANSPORT),
    ("core", types::CORE),
    ("external", types::EXTERNAL),
];

/// A set of Janus event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMask(pub u32);

impl EventMask {
    pub const ALL: EventMask = EventMask(types::ALL);
    pub const NONE: EventMask = EventMask(0);

    /// Parses `none`, `all`, or a comma-separated list of type names
    /// (case-insensitive). Unlike Janus, an unknown name is an error, so that
    /// a typo does not silently filter events out.
    pub fn parse(text: &str) -> Result<EventMask, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(EventMask::NONE);
        }
        if text.eq_ignore_ascii_case("all") {
            return Ok(EventMask::ALL);
        }
        let mut mask = 0;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(word)) {
                Some((_, bit)) => mask |= bit,
                None => {
                    return Err(format!(
                        "unknown event type {word:?} (allowed: none, all, or a list of sessions, handles, jsep, webrtc, media, plugins, transports, core, external)"
                    ));
                }
            }
        }
        if mask == 0 {
            return Err("empty list of event types (use \"none\" to forward nothing)".into());
        }
        Ok(EventMask(mask))
    }

    /// Whether events of type `ty` pass. Events whose type is unknown (0 or
    /// not one of Janus's) pass only an `all` mask.
    pub fn allows(self, ty: u32) -> bool {
        if self == EventMask::ALL {
            return true;
        }
        ty != 0 && ty.is_power_of_two() && self.0 & ty != 0
    }
}

impl fmt::Display for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == EventMask::ALL {
            return f.write_str("all");
        }
        if self.0 == 0 {
            return f.write_str("none");
        }
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(_, bit)| self.0 & bit != 0)
            .map(|(n, _)| *n)
            .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_janus_names() {
        assert_eq!(EventMask::parse("all").unwrap(), EventMask::ALL);
        assert_eq!(EventMask::parse(" None ").unwrap(), EventMask::NONE);
        let m = EventMask::parse("sessions, Handles,core").unwrap();
        assert_eq!(m.0, types::SESSION | types::HANDLE | types::CORE);
        assert_eq!(m.to_string(), "sessions,handles,core");
        assert!(m.allows(types::SESSION));
        assert!(!m.allows(types::MEDIA));
        assert!(!m.allows(0));
        assert!(EventMask::ALL.allows(0));
    }

    #[test]
    fn rejects_unknown_names() {
        let e = EventMask::parse("sessions,sesions").unwrap_err();
        assert!(e.contains("\"sesions\""), "{e}");
        assert!(EventMask::parse("").is_err());
        assert!(EventMask::parse(",").is_err());
    }
}
