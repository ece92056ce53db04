//! Sinks: where forwarded events go.
//!
//! Each sink is one module implementing [`Sink`] (the I/O of one attempt),
//! run on its own thread ([`runner`]) behind its own bounded queue
//! ([`queue`]) and, if configured, its own durable spool ([`spool`]), so that
//! a slow disk or a dead backend never stalls the worker, the tracker or the
//! other sinks. The runner does the batching, the retries with backoff, the
//! flushing and the bounded shutdown; every drop is counted.
//!
//! - [`open`]: the sinks a config asks for, opened and started.
//! - [`file`]: JSON Lines, appended to a local file (the default sink).
//! - [`http`]: HTTP POST to a backend, in Janus's sampleevh format.
//!
//! Janus's own event bus is not a sink: see `crate::bus`.

pub mod file;
pub mod http;
pub mod open;
pub mod queue;
mod runner;
pub mod spool;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::config::EventMask;
use crate::output::OutEvent;
use crate::sync::{Spawned, lock};
use file::FilePosition;
use queue::{Queue, Queued};
use spool::{Spool, SpoolConfig, SpoolError};

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
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// Events at the start of the batch that were delivered before the failure.
    pub delivered: usize,
    pub message: String,
}

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

    /// Records the oldest unacknowledged spooled event (its JSON text).
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
        self.spool_oldest_us.store(ts, Relaxed);
    }
}

/// The spool of a sink, shared by the worker (append) and the sink's thread.
pub(crate) struct SpoolSlot {
    pub(crate) spool: Mutex<Spool>,
    all_events: bool,
    pub(crate) dir: String,
}

/// What the worker (routing), the sink's thread and the Admin API (info,
/// tweak) share of a sink.
pub struct SinkShared {
    name: String,
    kind: &'static str,
    mask: AtomicU32,
    enabled: AtomicBool,
    pub(crate) queue: Queue,
    stats: SinkStats,
    pub(crate) spool: Option<SpoolSlot>,
    /// Sequence number of the next event, ordering queue and spool together.
    next_seq: AtomicU64,
    describe: Map<String, Value>,
    acknowledges: bool,
}

impl SinkShared {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    pub fn mask(&self) -> EventMask {
        EventMask(self.mask.load(Relaxed))
    }

    pub fn set_mask(&self, mask: EventMask) {
        self.mask.store(mask.0, Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Relaxed);
    }

    /// Whether this sink takes events of type `ty` now.
    pub fn takes(&self, ty: u32) -> bool {
        self.enabled() && self.mask().allows(ty)
    }

    /// Takes the events of the types this sink takes: each into the spool
    /// (written before it is sent) or the memory queue, with one lock of each
    /// and one wake-up of the sink's thread for the whole batch. Never waits
    /// on the network; a spool append is one `write` (plus an fsync with
    /// `spool_fsync = "always"`). Returns how many it took.
    pub fn offer_all(&self, events: &[(u64, Arc<OutEvent>)]) -> usize {
        let Some(&(last_route, _)) = events.last() else {
            return 0;
        };
        if !self.enabled() {
            lock(&self.queue.state).offered_through = last_route;
            return 0;
        }
        let mask = self.mask();
        let now = Instant::now();
        let mut queued = Vec::new();
        let mut spooled = 0u64;
        let mut taken = 0;
        {
            let mut spool = self.spool.as_ref().map(|slot| (slot, lock(&slot.spool)));
            for (route, ev) in events.iter().filter(|(_, e)| mask.allows(e.ty)) {
                taken += 1;
                let seq = self.next_seq.fetch_add(1, Relaxed);
                if let Some((slot, sp)) = spool.as_mut()
                    && (slot.all_events || ev.lifecycle)
                {
                    let was_empty = sp.pending() == 0;
                    match sp.append(seq, &ev.json) {
                        Ok(()) => {
                            spooled += 1;
                            if was_empty {
                                self.stats.spool_oldest(&ev.json);
                            }
                            continue;
                        }
                        // Full or failing: keep it in memory, the best left.
                        Err(e) => self.stats.report(format!("{}: spool: {e}", self.name)),
                    }
                }
                queued.push(Queued {
                    seq,
                    route: *route,
                    event: ev.clone(),
                    at: now,
                });
            }
            if let Some((_, sp)) = &spool {
                self.stats.spool_changed(sp);
            }
        } // the spool's lock is released before the queue's is taken
        self.stats.accepted.fetch_add(taken as u64, Relaxed);
        {
            let mut st = lock(&self.queue.state);
            if spooled > 0 {
                st.spool_since.get_or_insert(now);
                st.spool_appends += spooled;
            }
            if queued.is_empty() {
                st.offered_through = last_route;
            }
        }
        if queued.is_empty() {
            if spooled > 0 {
                self.queue.notify();
            }
        } else {
            let (dropped, lifecycle) = self.queue.push_all(queued, last_route);
            self.stats.dropped.fetch_add(dropped, Relaxed);
            self.stats.dropped_lifecycle.fetch_add(lifecycle, Relaxed);
        }
        taken
    }

    /// Takes one event (see [`SinkShared::offer_all`]); true if it did.
    #[cfg(test)]
    pub fn offer(&self, ev: &Arc<OutEvent>) -> bool {
        self.offer_all(&[(0, ev.clone())]) == 1
    }

    /// Whether crash recovery waits for this sink (see [`SinkSettings`]).
    pub fn acknowledges(&self) -> bool {
        self.acknowledges
    }

    /// Every event routed up to the returned number is finished with by
    /// this sink, and where its file stood then.
    pub fn settled(&self) -> (u64, Option<FilePosition>) {
        let st = lock(&self.queue.state);
        (st.settled(), st.position)
    }

    /// The sink's state for the Admin API.
    pub fn info(&self) -> Value {
        let s = &self.stats;
        let mut m = Map::new();
        m.insert("type".into(), json!(self.kind));
        m.insert("enabled".into(), json!(self.enabled()));
        m.insert("events".into(), json!(self.mask().to_string()));
        m.insert("queued".into(), json!(self.queue.len()));
        m.insert("queue_size".into(), json!(self.queue.capacity));
        m.insert("accepted".into(), json!(s.accepted.load(Relaxed)));
        m.insert("sent".into(), json!(s.sent.load(Relaxed)));
        m.insert("failed".into(), json!(s.failed.load(Relaxed)));
        m.insert("retrying".into(), json!(s.retrying.load(Relaxed)));
        m.insert("retried".into(), json!(s.retried.load(Relaxed)));
        m.insert("dropped".into(), json!(s.dropped.load(Relaxed)));
        m.insert(
            "dropped_lifecycle".into(),
            json!(s.dropped_lifecycle.load(Relaxed)),
        );
        m.insert("errors".into(), json!(s.errors.load(Relaxed)));
        m.insert("last_error".into(), json!(s.last_error()));
        if let Some(slot) = &self.spool {
            let sp = lock(&slot.spool);
            m.insert(
                "spool".into(),
                json!({
                    "dir": slot.dir,
                    "events": if slot.all_events { "all" } else { "lifecycle" },
                    "pending": s.spool_pending.load(Relaxed),
                    "bytes": s.spool_bytes.load(Relaxed),
                    "oldest_timestamp": match s.spool_oldest_us.load(Relaxed) {
                        0 => None,
                        ts => Some(ts),
                    },
                    "acked_seq": sp.acked_seq(),
                    "ack_errors": s.ack_errors.load(Relaxed),
                    "corrupt_records": s.spool_corrupt_records.load(Relaxed),
                    "corrupt_bytes": s.spool_corrupt_bytes.load(Relaxed),
                    "cut_segments": sp.damage().cut_segments,
                    "cut_records_at_most": sp.damage().cut_records_at_most,
                }),
            );
        }
        for (k, v) in &self.describe {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Says once in Janus's log what opening a spool found damaged in its files
/// (the sink runs on with the rest; see `spool`'s "Damage found on open").
fn log_damage(name: &str, spool: &Spool) {
    let r = spool.damage();
    if r.reports > 0 {
        let listed: Vec<String> = r.corrupt.iter().map(ToString::to_string).collect();
        let more = r.reports - r.corrupt.len() as u64;
        let bytes = match r.records_in(r.corrupt_bytes) {
            Some(about) if r.corrupt_bytes > 0 => format!(
                ", {} bytes in which records cannot be told apart (about {about} records)",
                r.corrupt_bytes
            ),
            _ if r.corrupt_bytes > 0 => format!(
                ", {} bytes in which records cannot be told apart",
                r.corrupt_bytes
            ),
            _ => String::new(),
        };
        let cut = match r.cut_segments {
            0 => String::new(),
            n => format!(
                ", {n} segment(s) cut short (their end is missing, with at most {} records)",
                r.cut_records_at_most
            ),
        };
        crate::jlog!(
            Err,
            "{name}: spool: damaged: skipped {} records{bytes}{cut}; those events are lost, the others are sent in order: {}{}",
            r.corrupt_records,
            listed.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        );
    }
    if let Some(torn) = &r.torn {
        crate::jlog!(Warn, "{name}: spool: {torn}");
    }
    if let Some(what) = &r.ack_unreadable {
        crate::jlog!(
            Warn,
            "{name}: spool: the ack file holds {what}, not a sequence number: every spooled event is sent again"
        );
    }
}

/// A running sink: the shared part and its thread.
pub struct SinkHandle {
    shared: Arc<SinkShared>,
    thread: Spawned,
}

/// Why a sink could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// Its spool could not be opened.
    Spool(SpoolError),
    /// Its thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Spool(e) => e.fmt(f),
            SpawnError::Thread(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SpawnError {}

impl SinkHandle {
    /// Opens the sink's spool (if any) and starts its thread.
    pub fn spawn(
        kind: &'static str,
        settings: SinkSettings,
        sink: Box<dyn Sink>,
    ) -> Result<SinkHandle, SpawnError> {
        let spool = match &settings.spool {
            None => None,
            Some(sp) => {
                let spool = Spool::open(sp.config.clone()).map_err(SpawnError::Spool)?;
                log_damage(&settings.name, &spool);
                if spool.pending() > 0 {
                    crate::jlog!(
                        Info,
                        "{}: {} spooled events from an earlier run will be sent first",
                        settings.name,
                        spool.pending()
                    );
                }
                Some(SpoolSlot {
                    spool: Mutex::new(spool),
                    all_events: sp.all_events,
                    dir: sp.config.dir.display().to_string(),
                })
            }
        };
        let next_seq = spool.as_ref().map_or(1, |s| lock(&s.spool).last_seq() + 1);
        let stats = SinkStats::default();
        if let Some(slot) = &spool {
            let sp = lock(&slot.spool);
            stats.spool_changed(&sp);
            stats
                .spool_corrupt_records
                .store(sp.corrupt_records(), Relaxed);
            stats.spool_corrupt_bytes.store(sp.corrupt_bytes(), Relaxed);
        }
        let shared = Arc::new(SinkShared {
            name: settings.name.clone(),
            kind,
            mask: AtomicU32::new(settings.mask.0),
            enabled: AtomicBool::new(true),
            queue: Queue::new(settings.queue_size, settings.max_batch),
            stats,
            spool,
            next_seq: AtomicU64::new(next_seq),
            describe: sink.describe(),
            acknowledges: settings.acknowledges,
        });
        let runner = runner::Runner::new(sink, shared.clone(), &settings);
        let thread = Spawned::spawn(format!("lcevh {}", settings.name), move || runner.run())
            .map_err(SpawnError::Thread)?;
        Ok(SinkHandle { shared, thread })
    }

    pub fn shared(&self) -> &Arc<SinkShared> {
        &self.shared
    }

    /// Asks the thread to deliver what is queued (no retry waits any more),
    /// flush and stop, and waits for it until `deadline`. Returns false if it
    /// did not finish in time (the thread is then left to finish on its own;
    /// spooled events stay spooled for the next start).
    pub fn close(&mut self, deadline: Instant) -> bool {
        let queue = &self.shared.queue;
        lock(&queue.state).closing = Some(deadline);
        queue.notify();
        let finished = self
            .thread
            .join_within(deadline.saturating_duration_since(Instant::now()));
        if !finished {
            crate::jlog!(
                Warn,
                "sink {} did not finish within the shutdown timeout; {} events still queued",
                self.shared.name,
                queue.len()
            );
        }
        finished
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        if self.thread.is_pending() {
            let _ = self.close(Instant::now() + Duration::from_secs(1));
        }
    }
}

/// All running sinks: the worker stages each event, then hands the staged
/// events to every sink that takes them, a batch at a time (one lock and
/// one wake-up per sink and batch, not per event). Each event gets a route
/// number, the same for every sink, by which the worker learns what the
/// sinks have finished with ([`Router::settled`]).
#[derive(Default)]
pub struct Router {
    sinks: Vec<SinkHandle>,
    staged: Vec<(u64, Arc<OutEvent>)>,
    next_route: u64,
}

impl Router {
    pub fn new(sinks: Vec<SinkHandle>) -> Router {
        Router {
            sinks,
            staged: Vec::new(),
            next_route: 1,
        }
    }

    /// Adds an event to the next batch; returns its route number.
    pub fn stage(&mut self, ev: Arc<OutEvent>) -> u64 {
        let route = self.next_route;
        self.next_route += 1;
        self.staged.push((route, ev));
        route
    }

    pub fn staged(&self) -> usize {
        self.staged.len()
    }

    /// Hands the staged events to the sinks; returns how many were taken by
    /// at least one sink.
    pub fn flush(&mut self) -> u64 {
        if self.staged.is_empty() {
            return 0;
        }
        let forwarded = self
            .staged
            .iter()
            .filter(|(_, e)| self.sinks.iter().any(|s| s.shared.takes(e.ty)))
            .count() as u64;
        for s in self.offer_order() {
            s.shared.offer_all(&self.staged);
        }
        self.staged.clear();
        forwarded
    }

    /// The sinks in the order they are offered events: those with a spool
    /// first, so that their append is on disk (safe from a SIGKILL) before
    /// any other sink, the file above all, can have the event. Crash
    /// recovery counts on it: an ending the file holds is in every spool
    /// too (see `crate::recovery`).
    fn offer_order(&self) -> impl Iterator<Item = &SinkHandle> {
        let spooled = |s: &&SinkHandle| s.shared.spool.is_some();
        let first = self.sinks.iter().filter(spooled);
        first.chain(self.sinks.iter().filter(move |s| !spooled(s)))
    }

    /// Every event routed up to the returned number was delivered by every
    /// sink that acknowledges (or is finished with otherwise), with the
    /// position of the acknowledging file sink's file then. Events still
    /// staged are not.
    pub fn settled(&self) -> (u64, Option<FilePosition>) {
        let mut through = self.next_route - 1 - self.staged.len() as u64;
        let mut position = None;
        for s in self.sinks.iter().filter(|s| s.shared.acknowledges()) {
            let (t, p) = s.shared.settled();
            through = through.min(t);
            position = position.or(p);
        }
        (through, position)
    }

    /// The sinks' shared parts, for the Admin API.
    pub fn shared(&self) -> Vec<Arc<SinkShared>> {
        self.sinks.iter().map(|s| s.shared.clone()).collect()
    }

    /// Hands over what is staged, then closes every sink, all within `deadline`.
    pub fn close_all(&mut self, deadline: Instant) -> bool {
        self.flush();
        let mut all = true;
        for s in &mut self.sinks {
            all &= s.close(deadline);
        }
        all
    }
}

#[cfg(test)]
mod tests;
