//! Counters shared between the events thread, the worker and the Admin API.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use crate::sync::lock;
use crate::tracker::{JanusView, TrackerStats};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Events Janus handed to `incoming_event` while the handler ran.
    pub received: AtomicU64,
    /// Of those, dropped because the channel to the worker was full.
    pub dropped: AtomicU64,
    /// Events the worker took off the channel.
    pub processed: AtomicU64,
    /// Events (Janus's and synthetic) queued on at least one sink.
    pub forwarded: AtomicU64,
    /// Events not forwarded because they repeat an ending already sent.
    pub suppressed: AtomicU64,
    /// Events that were not valid JSON objects of Janus's shape.
    pub decode_errors: AtomicU64,
    /// Panics caught inside the handler (each one a bug to report).
    pub internal_errors: AtomicU64,
    /// Sessions found open from a run that did not stop cleanly, ended
    /// with `gateway_restart` at start.
    pub recovered: AtomicU64,
    /// Sessions found open from such a run whose ending the JSON Lines file
    /// already held (written just before the crash): not ended again.
    pub recovered_written: AtomicU64,
    /// Failed writes of the crash-recovery state.
    pub state_errors: AtomicU64,
    /// The tracker's counters as of the worker's last update.
    pub tracker: Mutex<TrackerSnapshot>,
}

/// What the worker publishes about the tracker.
#[derive(Debug, Clone, Default)]
pub struct TrackerSnapshot {
    pub stats: TrackerStats,
    pub live_sessions: usize,
    pub reclaim_session_timeout: u64,
    pub settle_ms: u64,
    pub shut_down: bool,
    /// What the tracker learned about Janus.
    pub janus: JanusView,
    /// Endings routed to the sinks that crash recovery waits for.
    pub unacknowledged: usize,
}

impl Metrics {
    pub fn tracker(&self) -> TrackerSnapshot {
        lock(&self.tracker).clone()
    }

    pub fn set_tracker(&self, snapshot: TrackerSnapshot) {
        *lock(&self.tracker) = snapshot;
    }
}
