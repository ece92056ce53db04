//! The counters of one sink, shared by its thread, the worker and the
//! Admin API (and read by the Prometheus endpoint).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use super::spool::Spool;
use crate::sync::lock;

/// Counters of one sink, shared with the Admin API.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events taken (queued or spooled).
    pub accepted: AtomicU64,
    /// Events the sink delivered (a 2xx answer, a written line).
    pub sent: AtomicU64,
    /// Events given up on after the retries (never spooled ones).
    pub failed: AtomicU64,
    /// Events dropped because the memory queue was full (never lifecycle
    /// events while others could go instead).
    pub dropped: AtomicU64,
    /// Of `dropped`, session lifecycle events.
    pub dropped_lifecycle: AtomicU64,
    /// Consecutive failed attempts on the current batch (0: healthy).
    pub retrying: AtomicU64,
    /// Events of failed attempts that were kept for another one.
    pub retried: AtomicU64,
    pub errors: AtomicU64,
    /// The spool, as of its last change: unacknowledged events, bytes of
    /// its segment files, and the Janus timestamp (µs) of the oldest
    /// unacknowledged event (0: none, or not read yet).
    pub spool_pending: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_oldest_us: AtomicI64,
    /// Failed attempts at writing the spool's acknowledgement (each one
    /// holds the sink back: see `runner`).
    pub ack_errors: AtomicU64,
    /// What opening the spool found damaged (see `spool::Damage`): records
    /// skipped, and bytes in which records cannot be told apart.
    pub spool_corrupt_records: AtomicU64,
    pub spool_corrupt_bytes: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Why the sink cannot acknowledge, while it cannot.
    cannot_acknowledge: Mutex<Option<String>>,
}

impl SinkStats {
    /// Records an error; logs it when it differs from the previous one.
    pub fn report(&self, error: String) {
        let mut last = lock(&self.last_error);
        if last.as_deref() != Some(error.as_str()) {
            crate::jlog!(Err, "{error}");
        }
        self.errors.fetch_add(1, Relaxed);
        *last = Some(error);
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Why the sink cannot acknowledge what it delivered (a warning for
    /// the Admin API), while that lasts.
    pub fn cannot_acknowledge(&self) -> Option<String> {
        lock(&self.cannot_acknowledge).clone()
    }

    /// Sets (or clears) the warning; returns the one it replaces.
    pub(crate) fn set_cannot_acknowledge(&self, why: Option<String>) -> Option<String> {
        std::mem::replace(&mut *lock(&self.cannot_acknowledge), why)
    }

    /// Records the spool's size (the caller holds the spool's lock).
    pub(crate) fn spool_changed(&self, spool: &Spool) {
        self.spool_pending.store(spool.pending(), Relaxed);
        self.spool_bytes.store(spool.bytes(), Relaxed);
        if spool.pending() == 0 {
            self.spool_oldest_us.store(0, Relaxed);
        }
    }

    /// Records the Janus timestamp (µs, 0: none) of the oldest
    /// unacknowledged spooled event, as the worker decoded it.
    pub(crate) fn spool_oldest_at(&self, timestamp_us: i64) {
        self.spool_oldest_us.store(timestamp_us, Relaxed);
    }

    /// Records the oldest unacknowledged spooled event from its JSON text:
    /// for an event read back from the spool, or one the worker could not
    /// decode.
    pub(crate) fn spool_oldest(&self, json: &str) {
        #[derive(serde::Deserialize)]
        struct Stamp {
            #[serde(default)]
            timestamp: Option<i64>,
        }
        let ts = serde_json::from_str::<Stamp>(json)
            .ok()
            .and_then(|s| s.timestamp)
            .unwrap_or(0);
        self.spool_oldest_at(ts);
    }
}
