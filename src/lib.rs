//! lifecycleevh: a Janus WebRTC server event handler that closes the gaps in
//! Janus's session lifecycle events and forwards the event stream.
//!
//! The modules, one idea each. Every import points down this list (a
//! module uses only modules below it; `tests/layers.rs` reads this map and
//! holds the code to it):
//!
//! ```text
//! entry          the C entry points (catch panics, convert, hand over)
//!   instance     the handler's one instance: init / destroy / offer / request
//!     admin      query_eventhandler: parse, answer from running's status view
//!     running    the running handler: intake + worker thread + sinks + bus
//!       exporter the Prometheus endpoint: its thread, the exposition
//!       worker   decode -> track -> route; crash state; Janus's bus
//!       intake   the queue from the events thread to the worker (sheds bulk only)
//!       crash_state  the open sessions on disk, ended after a crash
//!       sinks    router, per-sink queue/spool, runner thread; file, http
//!       error    why init failed: one error type, one log line
//!       bus      re-injection of synthetic endings into Janus's event bus
//!       counters the counters the Admin API and the Prometheus endpoint share
//!       output   what the handler writes (Janus's shape + reason, synthetic)
//!       tracker  the session lifecycle state machine (pure Rust)
//!       quality  each session's quality record from its media and WebRTC events (pure Rust)
//!       config   the .jcfg file (strict parser), settings, masks
//!       janus    Janus's event types as Rust values, decoding
//!       reason   why a session ended (the output contract's vocabulary)
//!       durable  fsync policy, atomic file replacement
//!       faults   fault injection for the FFI harness (feature fault-injection)
//!       sync     locks that ignore poisoning, threads joined with a deadline
//!       log      Janus's logger (jlog!), rate limits
//!       ffi      bindgen's ABI, JsonRef, the C shim (imports nothing above)
//! ```
//!
//! `unsafe` is denied everywhere but in [`ffi`] and [`entry`].

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod admin;
pub mod bus;
pub mod config;
pub mod durable;
#[allow(unsafe_code)]
pub mod entry;
pub mod error;
pub mod exporter;
#[cfg(feature = "fault-injection")]
pub mod faults;
#[allow(unsafe_code)]
pub mod ffi;
pub mod instance;
pub mod intake;
pub mod janus;
#[macro_use]
pub mod log;
pub mod counters;
pub mod crash_state;
pub mod output;
pub mod quality;
pub mod reason;
pub mod running;
pub mod sinks;
pub mod sync;
pub mod tracker;
pub mod worker;
