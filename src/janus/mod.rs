//! Janus's side of the conversation, as plain Rust values: the event types
//! and subtypes Janus numbers its events with, and the decoding of an event
//! into the few facts the tracker needs. No FFI: the numbers are Janus's
//! wire values, and `tests/abi_layout.rs` checks them against the ones
//! bindgen reads from the ABI header.

mod decode;
pub mod media;

pub use decode::{
    CoreCounts, DecodeError, Facts, Kind, Startup, TransportRef, Version, decode, decode_text, utf8,
};
pub use media::{MediaEvent, MediaKind, WebRtcEvent};

/// Hashing for maps keyed by Janus's ids, which a client may choose (Janus's
/// `create` accepts an `id`): randomly seeded, except in fuzzing builds
/// (`cfg(fuzzing)`), where a fixed seed takes the hash order out of what
/// makes two runs of one fuzz target differ (libFuzzer varies a little on
/// its own; see docs/testing.md).
#[cfg(not(fuzzing))]
pub type IdHashing = std::collections::hash_map::RandomState;
#[cfg(fuzzing)]
pub type IdHashing = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;
/// A map keyed by Janus's ids (see [`IdHashing`]).
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdHashing>;
/// A set of Janus's ids (see [`IdHashing`]).
pub type IdSet<T> = std::collections::HashSet<T, IdHashing>;

/// Janus's event types: the `type` of each event, one bit each, and the bits
/// of an `events` mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventType {
    Session = 1 << 0,
    Handle = 1 << 1,
    External = 1 << 2,
    Jsep = 1 << 3,
    WebRtc = 1 << 4,
    Media = 1 << 5,
    Plugin = 1 << 6,
    Transport = 1 << 7,
    Core = 1 << 8,
}

impl EventType {
    /// Every type, in Janus's order.
    pub const ALL: [EventType; 9] = [
        EventType::Session,
        EventType::Handle,
        EventType::External,
        EventType::Jsep,
        EventType::WebRtc,
        EventType::Media,
        EventType::Plugin,
        EventType::Transport,
        EventType::Core,
    ];

    pub const fn bit(self) -> u32 {
        self as u32
    }

    /// The type of an event's `type` number (None: not a single known type).
    pub fn from_bit(bit: u32) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.bit() == bit)
    }

    /// The name Janus's handlers use for it in `events` masks.
    pub const fn mask_name(self) -> &'static str {
        match self {
            EventType::Session => "sessions",
            EventType::Handle => "handles",
            EventType::External => "external",
            EventType::Jsep => "jsep",
            EventType::WebRtc => "webrtc",
            EventType::Media => "media",
            EventType::Plugin => "plugins",
            EventType::Transport => "transports",
            EventType::Core => "core",
        }
    }
}

/// The same numbers as `u32` constants, for masks and `match` patterns.
pub mod types {
    use super::EventType;
    pub const SESSION: u32 = EventType::Session.bit();
    pub const HANDLE: u32 = EventType::Handle.bit();
    pub const EXTERNAL: u32 = EventType::External.bit();
    pub const JSEP: u32 = EventType::Jsep.bit();
    pub const WEBRTC: u32 = EventType::WebRtc.bit();
    pub const MEDIA: u32 = EventType::Media.bit();
    pub const PLUGIN: u32 = EventType::Plugin.bit();
    pub const TRANSPORT: u32 = EventType::Transport.bit();
    pub const CORE: u32 = EventType::Core.bit();
    /// Every type (Janus's `JANUS_EVENT_TYPE_ALL`).
    pub const ALL: u32 = 0xffff_ffff;
    /// Core subtypes: `started` (and, on Janus >= 1.2, the periodic status
    /// `update`) and `shutdown`.
    pub const SUBTYPE_CORE_STARTUP: u32 = 1;
    pub const SUBTYPE_CORE_SHUTDOWN: u32 = 2;
    /// The event-handler API version this handler implements (Janus 1.x).
    pub const API_VERSION: i32 = 3;
}
