//! How a sink is run: its queue, batching, retries, what becomes of what it
//! could not deliver, and its spool.

use std::time::Duration;

use super::spool::SpoolConfig;
use crate::config::EventMask;

/// How a sink is run.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Name in logs and `info`, e.g. `file`, `http-billing`.
    pub name: String,
    pub mask: EventMask,
    pub queue_size: usize,
    pub max_batch: usize,
    /// How long a partial batch may wait for more events (zero: send at once).
    pub max_delay: Duration,
    pub flush_every: Duration,
    /// Retries of a failed batch of events that are not spooled, before they
    /// are dropped (spooled events are retried until delivered).
    pub retries: u32,
    /// Bound of the first retry's wait (drawn at random up to it: full
    /// jitter), doubled with each failed attempt up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// What becomes of events still undelivered after the retries.
    pub on_failure: OnFailure,
    pub spool: Option<SpoolSettings>,
    /// Crash recovery waits for this sink to deliver an ending before it
    /// records the ending (the file sink: a delivered line is in the kernel).
    pub acknowledges: bool,
}

/// What a sink's runner does with events it could not deliver after
/// `retries` retries (and at close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Events that are not spooled are given up, counted `failed`; spooled
    /// ones are retried until delivered (HTTP: best effort like sampleevh,
    /// the spool for what must arrive).
    GiveUp,
    /// Events that are not session lifecycle events are dropped, counted
    /// `dropped`; lifecycle events are retried until delivered, the queue
    /// bounding how many wait (the file sink on a full disk). Lifecycle
    /// events still waiting at close count as `dropped_lifecycle` too.
    KeepLifecycle,
}

impl SinkSettings {
    /// Settings for a sink that neither batches with delay nor retries.
    pub fn simple(
        name: &str,
        mask: EventMask,
        queue_size: usize,
        flush_every: Duration,
    ) -> SinkSettings {
        SinkSettings {
            name: name.to_string(),
            mask,
            queue_size,
            max_batch: 1024,
            max_delay: Duration::ZERO,
            flush_every,
            retries: 0,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            on_failure: OnFailure::GiveUp,
            spool: None,
            acknowledges: false,
        }
    }
}

/// A sink's durable spool: which events go there, and where.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub config: SpoolConfig,
    /// All events, or only session lifecycle events (created, destroyed, timeout).
    pub all_events: bool,
}
