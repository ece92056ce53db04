//! The one trait every sink implements: the I/O of one delivery attempt.
//! Everything around it (queue, batching, retries, spool) is the runner's.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use super::broker::ConnectionState;
use super::file::FilePosition;

/// The I/O half of a sink: one attempt at delivering a batch. Called only on
/// the sink's own thread.
pub trait Sink: Send + 'static {
    /// Delivers a batch of events (compact JSON texts), in order, once. On
    /// error, says how many events at the start of the batch were delivered
    /// all the same; the sink logs nothing itself, the runner counts, retries
    /// and reports. `deadline`, when set, is when the handler must be stopped:
    /// the attempt should not last beyond it.
    fn deliver(&mut self, batch: &[&str], deadline: Option<Instant>) -> Result<(), SinkError>;

    /// Makes what was delivered durable or visible (called at least every
    /// `flush_every`, and before the sink closes).
    fn flush(&mut self) -> Result<(), String>;

    /// Sink-specific facts for the Admin API `info` (path, url, ...).
    fn describe(&self) -> Map<String, Value>;

    /// For a sink writing one file: where that file stands after the last
    /// delivered batch (crash recovery reads it from there).
    fn position(&self) -> Option<FilePosition> {
        None
    }

    /// For a sink that keeps a connection open (a broker's): its state, for
    /// the Admin API `info` and the metrics.
    fn connection(&self) -> Option<Arc<ConnectionState>> {
        None
    }
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// Events at the start of the batch that were delivered before the failure.
    pub delivered: usize,
    pub message: String,
}
