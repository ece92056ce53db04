//! Sinks: where forwarded events go.
//!
//! Each sink is one module implementing [`Sink`] (the I/O of one attempt),
//! run on its own thread (`runner`) behind its own bounded queue
//! ([`queue`]) and, if configured, its own durable spool ([`spool`]), so that
//! a slow disk or a dead backend never stalls the worker, the tracker or the
//! other sinks. The runner does the batching, the retries with backoff, the
//! flushing and the bounded shutdown; every drop is counted.
//!
//! An event's way, one file each:
//!
//! - `router`: the worker stages events and hands them to every sink, a
//!   batch at a time, and learns what the sinks have finished with.
//! - `shared`: what the worker, a sink's thread and the Admin API share of
//!   one sink; its `offer_all` puts events into the spool or the queue.
//! - [`queue`], [`spool`]: the bounded memory queue; the durable spool.
//! - `runner`: the sink's thread: batches, retries, flushes, acknowledges.
//! - [`file`](mod@file), [`http`], [`broker`]: the sinks themselves, behind
//!   the [`Sink`] trait ([`json`] and [`tls`]: what they share).
//!
//! And around it: [`open`] opens the sinks a config asks for; `spawn`
//! starts one on its thread and closes it; `settings` says how a sink is
//! run; `stats` counts what it did.
//!
//! Janus's own event bus is not a sink: see `crate::bus`.

mod router;
mod runner;
mod settings;
mod shared;
mod sink;
mod spawn;
mod stats;

pub mod broker;
pub mod file;
pub mod http;
pub mod json;
pub mod open;
pub mod queue;
pub mod spool;
pub mod tls;

pub use router::Router;
pub use settings::{OnFailure, SinkSettings, SpoolSettings};
pub use shared::SinkShared;
pub use sink::{Sink, SinkError};
pub use spawn::{SinkHandle, SpawnError};
pub use stats::SinkStats;
