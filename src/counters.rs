//! Counters shared between the events thread, the worker, the Admin API and
//! the Prometheus endpoint: one set of plain atomics (and the tracker's
//! snapshot), read by both `info` and `/metrics`, so the two never disagree.

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};

use crate::janus::EventType;
use crate::quality::QualityMetrics;
use crate::reason::Reason;
use crate::sync::lock;
use crate::tracker::{JanusView, TrackerStats};

#[derive(Debug, Default)]
pub struct Counters {
    /// Events Janus handed to `incoming_event` while the handler ran.
    pub received: AtomicU64,
    /// Of those, dropped because the channel to the worker was full.
    pub dropped: AtomicU64,
    /// Events the worker took off the channel.
    pub processed: AtomicU64,
    /// Of those, by Janus's event type (see [`Counters::count_type`]).
    pub processed_by_type: [AtomicU64; TYPE_SLOTS],
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
    /// Sessions found open from such a run whose ending was decided before
    /// the crash (and may have reached a sink): ended again with that very
    /// ending, never with another reason.
    pub recovered_repeated: AtomicU64,
    /// Failed writes of the crash-recovery state.
    pub state_errors: AtomicU64,
    /// When the crash-recovery state was last written whole (µs since the
    /// epoch; 0: never, or crash recovery is off).
    pub checkpointed_at_us: AtomicI64,
    /// How long the sessions that ended lived, by reason.
    pub durations: Durations,
    /// How the media of the sessions that ended went (their quality records).
    pub quality: QualityMetrics,
    /// The tracker's counters as of the worker's last update.
    pub tracker: Mutex<TrackerSnapshot>,
}

/// One slot per Janus event type, in [`EventType::ALL`]'s order, and a last
/// one for events whose `type` is none of them.
pub const TYPE_SLOTS: usize = EventType::ALL.len() + 1;

/// The label of each slot of [`Counters::processed_by_type`]: Janus's own
/// names for the types (as in `events` masks), and `other`.
pub fn type_label(slot: usize) -> &'static str {
    EventType::ALL.get(slot).map_or("other", |t| t.mask_name())
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
    /// Open handles of the tracked sessions, by plugin.
    pub handles_by_plugin: Vec<(String, u64)>,
    /// Open connections, by transport module.
    pub connections_by_transport: Vec<(String, u64)>,
}

impl Counters {
    pub fn tracker(&self) -> TrackerSnapshot {
        lock(&self.tracker).clone()
    }

    pub fn set_tracker(&self, snapshot: TrackerSnapshot) {
        *lock(&self.tracker) = snapshot;
    }

    /// Counts one processed event of Janus type `ty`.
    #[inline]
    pub fn count_type(&self, ty: u32) {
        let slot = EventType::ALL
            .iter()
            .position(|t| t.bit() == ty)
            .unwrap_or(TYPE_SLOTS - 1);
        self.processed_by_type[slot].fetch_add(1, Relaxed);
    }
}

/// Upper bounds (seconds) of the session-duration buckets: calls last
/// seconds to hours.
pub const DURATION_BUCKETS: [f64; 14] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0,
];

/// A histogram of session durations per reason, in atomics: the worker
/// observes, readers never block it.
#[derive(Debug, Default)]
pub struct Durations {
    /// Per reason (indexed like [`Reason::ALL`]): observations per bucket
    /// (not cumulative), the last slot above every bound.
    counts: [[AtomicU64; DURATION_BUCKETS.len() + 1]; 6],
    /// Per reason: the sum of the durations, µs.
    sum_us: [AtomicU64; 6],
}

/// A histogram as read: observations per bucket (not cumulative; the last
/// is above every bound), their total and their sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationSnapshot {
    pub count: u64,
    pub sum_seconds: f64,
    pub buckets: [u64; DURATION_BUCKETS.len() + 1],
}

impl DurationSnapshot {
    /// Observations at or below each bound, then the total (+Inf).
    pub fn cumulative(&self) -> [u64; DURATION_BUCKETS.len() + 1] {
        let mut out = self.buckets;
        for i in 1..out.len() {
            out[i] += out[i - 1];
        }
        out
    }
}

impl Durations {
    /// Records that a session lived `duration_us` and ended for `reason`.
    pub fn observe(&self, reason: Reason, duration_us: i64) {
        let r = reason_index(reason);
        let us = duration_us.max(0) as u64;
        let seconds = us as f64 / 1e6;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.sum_us[r].fetch_add(us, Relaxed);
        self.counts[r][bucket].fetch_add(1, Relaxed);
    }

    /// The histogram of `reason`. The count is the buckets' total, so a
    /// reading is always a valid histogram.
    pub fn read(&self, reason: Reason) -> DurationSnapshot {
        let r = reason_index(reason);
        let buckets: [u64; DURATION_BUCKETS.len() + 1] =
            std::array::from_fn(|i| self.counts[r][i].load(Relaxed));
        DurationSnapshot {
            count: buckets.iter().sum(),
            sum_seconds: self.sum_us[r].load(Relaxed) as f64 / 1e6,
            buckets,
        }
    }
}

fn reason_index(reason: Reason) -> usize {
    Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_into_cumulative_buckets() {
        let d = Durations::default();
        d.observe(Reason::Request, 500_000); // 0.5 s
        d.observe(Reason::Request, 1_000_000); // exactly 1 s: le="1"
        d.observe(Reason::Request, 90_000_000); // 90 s
        d.observe(Reason::Request, 40_000_000_000); // 11 h: only +Inf
        d.observe(Reason::Timeout, -5); // a clock step back counts as 0
        let r = d.read(Reason::Request);
        assert_eq!(r.count, 4);
        assert_eq!(r.sum_seconds, 40_091.5);
        let c = r.cumulative();
        assert_eq!(c[0], 2); // le=1
        assert_eq!(c[4], 2); // le=60
        assert_eq!(c[5], 3); // le=120
        assert_eq!(c[13], 3); // le=28800
        assert_eq!(c[14], 4); // +Inf
        assert_eq!(d.read(Reason::Timeout).buckets[0], 1);
        assert_eq!(d.read(Reason::Shutdown).count, 0);
    }

    #[test]
    fn types_have_janus_names() {
        let m = Counters::default();
        m.count_type(1);
        m.count_type(256);
        m.count_type(0);
        m.count_type(3);
        assert_eq!(type_label(0), "sessions");
        assert_eq!(m.processed_by_type[0].load(Relaxed), 1);
        assert_eq!(type_label(8), "core");
        assert_eq!(m.processed_by_type[8].load(Relaxed), 1);
        assert_eq!(type_label(TYPE_SLOTS - 1), "other");
        assert_eq!(m.processed_by_type[TYPE_SLOTS - 1].load(Relaxed), 2);
    }
}
