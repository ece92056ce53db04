//! lifecycleevh: a Janus WebRTC server event handler that closes the gaps in
//! Janus's session lifecycle events and forwards the event stream.
//!
//! The data flow, one module per step:
//!
//! ```text
//! Janus events thread          worker thread                          sink threads
//! ffi::entry::incoming_event   worker: event::decode                  sinks::file (JSON Lines)
//!   -> handler::offer            -> tracker::Tracker::observe         ...
//!   -> intake (bounded channel)  -> sinks::Router::route  ---------->
//! ```
//!
//! - [`ffi`]: the C ABI (bindgen over `janus-headers/`, the C shim) and the
//!   entry points; the only `unsafe` code.
//! - [`handler`]: `init`/`destroy`, the one global state.
//! - [`intake`]: the lock-free bounded channel from Janus's events thread.
//! - [`worker`]: the pipeline and its thread.
//! - [`event`]: decoding Janus's events, building the ones we add.
//! - [`tracker`]: the session lifecycle state machine (pure Rust).
//! - [`sinks`]: where events go, each on its own thread and queue.
//! - [`config`]: the `.jcfg` file; [`admin`]: `query_eventhandler` answers.

pub mod admin;
pub mod config;
pub mod event;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod ffi;
pub mod handler;
pub mod intake;
#[macro_use]
pub mod log;
pub mod metrics;
pub mod sinks;
pub mod state;
pub mod tracker;
pub mod worker;
