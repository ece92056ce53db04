//! Sinks: where forwarded events go.
//!
//! Each sink is one module implementing [`Sink`] (the I/O), run by a
//! [`SinkHandle`] on its own thread behind its own bounded queue, so that a
//! slow disk or a dead backend never stalls the worker, the tracker or the
//! other sinks. The queue keeps session lifecycle events over others when it
//! is full, and counts every drop.
//!
//! - [`file`]: JSON Lines, appended to a local file (the default sink).
//! - [`janus_bus`]: Janus's own event bus (synchronous, on the worker).

pub mod file;
pub mod janus_bus;

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use serde_json::{Map, Value, json};

use crate::config::EventMask;
use crate::event::OutEvent;

/// The I/O half of a sink. Called only on the sink's own thread.
pub trait Sink: Send + 'static {
    /// Writes a batch of events, in order. On error, says how many events at
    /// the start of the batch were delivered all the same; the sink logs
    /// nothing itself, the runner counts and reports.
    fn deliver(&mut self, batch: &[Arc<OutEvent>]) -> Result<(), SinkError>;

    /// Makes what was delivered durable or visible (called at least every
    /// `flush_every`, and before the sink closes).
    fn flush(&mut self) -> Result<(), String>;

    /// Sink-specific facts for the Admin API `info` (path, url, ...).
    fn describe(&self) -> Map<String, Value>;
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
    /// Name in logs and `info`, e.g. `file`.
    pub name: String,
    pub mask: EventMask,
    pub queue_size: usize,
    pub max_batch: usize,
    pub flush_every: Duration,
}

/// Counters of one sink, shared with the Admin API.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events put on the queue.
    pub accepted: AtomicU64,
    /// Events the sink delivered.
    pub delivered: AtomicU64,
    /// Events in batches the sink failed to deliver.
    pub failed: AtomicU64,
    /// Events dropped because the queue was full (never lifecycle events
    /// while others could go instead).
    pub dropped: AtomicU64,
    /// Of `dropped`, session lifecycle events.
    pub dropped_lifecycle: AtomicU64,
    pub errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SinkStats {
    fn set_error(&self, error: String) {
        self.errors.fetch_add(1, Relaxed);
        *lock(&self.last_error) = Some(error);
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

/// Locks a mutex, ignoring poisoning: every value guarded here stays valid
/// whatever panicked while it was held.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct QueueState {
    items: VecDeque<Arc<OutEvent>>,
    closing: bool,
}

/// A bounded queue that, when full, drops the oldest event that is not a
/// session lifecycle event (or the newcomer, if it is not one either).
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    capacity: usize,
}

enum Pushed {
    Queued,
    DroppedOther,
    DroppedLifecycle,
}

impl Queue {
    fn push(&self, ev: Arc<OutEvent>) -> Pushed {
        let mut st = lock(&self.state);
        let pushed = if st.items.len() < self.capacity {
            st.items.push_back(ev);
            Pushed::Queued
        } else if let Some(pos) = st.items.iter().position(|e| !e.lifecycle) {
            st.items.remove(pos);
            st.items.push_back(ev);
            Pushed::DroppedOther
        } else if !ev.lifecycle {
            return Pushed::DroppedOther;
        } else {
            st.items.pop_front();
            st.items.push_back(ev);
            Pushed::DroppedLifecycle
        };
        drop(st);
        self.ready.notify_one();
        pushed
    }

    fn len(&self) -> usize {
        lock(&self.state).items.len()
    }
}

/// What the worker (routing) and the Admin API (info, tweak) share of a sink.
pub struct SinkShared {
    name: String,
    kind: &'static str,
    mask: AtomicU32,
    enabled: AtomicBool,
    queue: Arc<Queue>,
    stats: Arc<SinkStats>,
    describe: Map<String, Value>,
}

impl SinkShared {
    pub fn name(&self) -> &str {
        &self.name
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

    /// Queues the event if this sink takes its type. Never blocks on I/O.
    /// Returns true when the event was queued.
    pub fn offer(&self, ev: &Arc<OutEvent>) -> bool {
        if !self.enabled() || !self.mask().allows(ev.ty) {
            return false;
        }
        self.stats.accepted.fetch_add(1, Relaxed);
        match self.queue.push(ev.clone()) {
            Pushed::Queued => {}
            Pushed::DroppedOther => {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
            Pushed::DroppedLifecycle => {
                self.stats.dropped.fetch_add(1, Relaxed);
                self.stats.dropped_lifecycle.fetch_add(1, Relaxed);
            }
        }
        true
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
        m.insert("delivered".into(), json!(s.delivered.load(Relaxed)));
        m.insert("failed".into(), json!(s.failed.load(Relaxed)));
        m.insert("dropped".into(), json!(s.dropped.load(Relaxed)));
        m.insert(
            "dropped_lifecycle".into(),
            json!(s.dropped_lifecycle.load(Relaxed)),
        );
        m.insert("errors".into(), json!(s.errors.load(Relaxed)));
        m.insert("last_error".into(), json!(s.last_error()));
        for (k, v) in &self.describe {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// A running sink: the shared part and its thread.
pub struct SinkHandle {
    shared: Arc<SinkShared>,
    thread: Option<JoinHandle<()>>,
    done: Receiver<()>,
}

impl SinkHandle {
    /// Starts the sink's thread.
    pub fn spawn(
        kind: &'static str,
        settings: SinkSettings,
        sink: Box<dyn Sink>,
    ) -> std::io::Result<SinkHandle> {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::with_capacity(settings.queue_size.min(4096)),
                closing: false,
            }),
            ready: Condvar::new(),
            capacity: settings.queue_size.max(1),
        });
        let stats = Arc::new(SinkStats::default());
        let (done_tx, done) = bounded(1);
        let describe = sink.describe();
        let runner = Runner {
            sink,
            queue: queue.clone(),
            stats: stats.clone(),
            max_batch: settings.max_batch.max(1),
            flush_every: settings.flush_every,
        };
        let thread = std::thread::Builder::new()
            .name(format!("lcevh {}", settings.name))
            .spawn(move || runner.run(done_tx))?;
        Ok(SinkHandle {
            shared: Arc::new(SinkShared {
                name: settings.name,
                kind,
                mask: AtomicU32::new(settings.mask.0),
                enabled: AtomicBool::new(true),
                queue,
                stats,
                describe,
            }),
            thread: Some(thread),
            done,
        })
    }

    pub fn shared(&self) -> &Arc<SinkShared> {
        &self.shared
    }

    /// Asks the thread to deliver what is queued, flush and stop, and waits
    /// for it until `deadline`. Returns false if it did not finish in time (the
    /// thread is then left to finish on its own).
    pub fn close(&mut self, deadline: Instant) -> bool {
        let queue = &self.shared.queue;
        lock(&queue.state).closing = true;
        queue.ready.notify_all();
        let wait = deadline.saturating_duration_since(Instant::now());
        let finished = self.done.recv_timeout(wait).is_ok();
        if finished {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            self.thread = None;
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
        if self.thread.is_some() {
            let _ = self.close(Instant::now() + Duration::from_secs(1));
        }
    }
}

/// The sink's thread: takes batches off the queue and hands them to the sink.
struct Runner {
    sink: Box<dyn Sink>,
    queue: Arc<Queue>,
    stats: Arc<SinkStats>,
    max_batch: usize,
    flush_every: Duration,
}

impl Runner {
    fn run(mut self, done: Sender<()>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        // When the data delivered since the last flush must be flushed.
        let mut flush_due: Option<Instant> = None;
        loop {
            let closing = {
                let mut st = lock(&self.queue.state);
                while st.items.is_empty() && !st.closing {
                    match flush_due {
                        None => st = self.queue.ready.wait(st).unwrap_or_else(|p| p.into_inner()),
                        Some(due) => {
                            let now = Instant::now();
                            if now >= due {
                                break;
                            }
                            st = self
                                .queue
                                .ready
                                .wait_timeout(st, due - now)
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                    }
                }
                let n = st.items.len().min(self.max_batch);
                batch.extend(st.items.drain(..n));
                st.closing && st.items.is_empty()
            };
            if !batch.is_empty() {
                self.deliver(&batch);
                batch.clear();
                flush_due.get_or_insert_with(|| Instant::now() + self.flush_every);
            }
            if closing || flush_due.is_some_and(|due| Instant::now() >= due) {
                self.flush();
                flush_due = None;
            }
            if closing {
                break;
            }
        }
        let _ = done.send(());
    }

    fn deliver(&mut self, batch: &[Arc<OutEvent>]) {
        let n = batch.len() as u64;
        match catch_unwind(AssertUnwindSafe(|| self.sink.deliver(batch))) {
            Ok(Ok(())) => {
                self.stats.delivered.fetch_add(n, Relaxed);
            }
            Ok(Err(e)) => {
                let ok = (e.delivered as u64).min(n);
                self.stats.delivered.fetch_add(ok, Relaxed);
                self.stats.failed.fetch_add(n - ok, Relaxed);
                self.report(e.message);
            }
            Err(_) => {
                self.stats.failed.fetch_add(n, Relaxed);
                self.report("internal error (panic) while delivering".into());
            }
        }
    }

    fn flush(&mut self) {
        match catch_unwind(AssertUnwindSafe(|| self.sink.flush())) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.report(e),
            Err(_) => self.report("internal error (panic) while flushing".into()),
        }
    }

    fn report(&self, error: String) {
        let first = self.stats.errors.load(Relaxed) == 0
            || self.stats.last_error().as_deref() != Some(error.as_str());
        if first {
            crate::jlog!(Err, "{error}");
        }
        self.stats.set_error(error);
    }
}

/// All running sinks: the worker routes each event to those that take it.
#[derive(Default)]
pub struct Router {
    sinks: Vec<SinkHandle>,
}

impl Router {
    pub fn new(sinks: Vec<SinkHandle>) -> Router {
        Router { sinks }
    }

    /// Queues the event on every sink that takes it; true if any did.
    pub fn route(&self, ev: Arc<OutEvent>) -> bool {
        let mut any = false;
        for s in &self.sinks {
            any |= s.shared.offer(&ev);
        }
        any
    }

    /// The sinks' shared parts, for the Admin API.
    pub fn shared(&self) -> Vec<Arc<SinkShared>> {
        self.sinks.iter().map(|s| s.shared.clone()).collect()
    }

    /// Closes every sink, all within `deadline`.
    pub fn close_all(&mut self, deadline: Instant) -> bool {
        let mut all = true;
        for s in &mut self.sinks {
            all &= s.close(deadline);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(lifecycle: bool, n: u64) -> Arc<OutEvent> {
        OutEvent::new(1, lifecycle, Some(n), format!("{{\"n\":{n}}}"))
    }

    #[test]
    fn full_queue_drops_oldest_non_lifecycle_first() {
        let q = Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                closing: false,
            }),
            ready: Condvar::new(),
            capacity: 3,
        };
        assert!(matches!(q.push(ev(true, 1)), Pushed::Queued));
        assert!(matches!(q.push(ev(false, 2)), Pushed::Queued));
        assert!(matches!(q.push(ev(true, 3)), Pushed::Queued));
        // Full: the non-lifecycle event 2 goes.
        assert!(matches!(q.push(ev(true, 4)), Pushed::DroppedOther));
        // Full of lifecycle events: a non-lifecycle newcomer is dropped.
        assert!(matches!(q.push(ev(false, 5)), Pushed::DroppedOther));
        // A lifecycle newcomer replaces the oldest lifecycle event.
        assert!(matches!(q.push(ev(true, 6)), Pushed::DroppedLifecycle));
        let ids: Vec<u64> = lock(&q.state)
            .items
            .iter()
            .map(|e| e.session_id.unwrap())
            .collect();
        assert_eq!(ids, vec![3, 4, 6]);
    }

    struct Collect(Arc<Mutex<Vec<String>>>, Arc<AtomicU64>);

    impl Sink for Collect {
        fn deliver(&mut self, batch: &[Arc<OutEvent>]) -> Result<(), SinkError> {
            let mut v = lock(&self.0);
            for (i, e) in batch.iter().enumerate() {
                if e.json.contains("fail") {
                    return Err(SinkError {
                        delivered: i,
                        message: "refused".into(),
                    });
                }
                v.push(e.json.to_string());
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<(), String> {
            self.1.fetch_add(1, Relaxed);
            Ok(())
        }
        fn describe(&self) -> Map<String, Value> {
            Map::new()
        }
    }

    #[test]
    fn runner_delivers_in_order_filters_by_mask_and_flushes_on_close() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let flushes = Arc::new(AtomicU64::new(0));
        let settings = SinkSettings {
            name: "t".into(),
            mask: EventMask(crate::ffi::types::SESSION),
            queue_size: 100,
            max_batch: 7,
            flush_every: Duration::from_secs(3600),
        };
        let mut h = SinkHandle::spawn(
            "test",
            settings,
            Box::new(Collect(got.clone(), flushes.clone())),
        )
        .unwrap();
        let shared = h.shared().clone();
        for n in 0..50 {
            assert!(shared.offer(&ev(false, n)));
        }
        assert!(!shared.offer(&OutEvent::new(2, false, None, "{}".into())));
        assert!(shared.offer(&OutEvent::new(1, false, None, "fail".into())));
        assert!(h.close(Instant::now() + Duration::from_secs(10)));
        let v = lock(&got).clone();
        let want: Vec<String> = (0..50).map(|n| format!("{{\"n\":{n}}}")).collect();
        assert_eq!(v, want);
        assert_eq!(shared.stats().delivered.load(Relaxed), 50);
        assert_eq!(shared.stats().failed.load(Relaxed), 1);
        assert_eq!(shared.stats().last_error().as_deref(), Some("refused"));
        assert!(flushes.load(Relaxed) >= 1);
        assert_eq!(shared.info()["accepted"], 51);
    }
}
