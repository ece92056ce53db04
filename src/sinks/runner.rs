//! A sink's thread: takes batches from the memory queue and the spool in
//! sequence order, hands them to the sink, retries with capped exponential
//! backoff, flushes, and stops within the deadline `close()` gives.
//!
//! Delivery rules:
//! - a batch holds the oldest waiting events (queue and spool merged by
//!   sequence number), at most `max_batch`; a partial batch waits up to
//!   `max_delay` for more;
//! - a failed batch is retried after a wait drawn uniformly from zero to
//!   `backoff`, that bound doubling with each failed attempt up to
//!   `backoff_max` ("full jitter", see [`full_jitter`]), so that sinks and
//!   Janus instances that failed together do not retry together;
//! - after `retries` retries, what happens to the batch is the sink's
//!   [`OnFailure`]: `GiveUp` gives up the events that are not spooled
//!   (counted `failed`) and keeps retrying the spooled ones until the backend
//!   takes them (their spool record is acknowledged only then);
//!   `KeepLifecycle` drops the events that are not session lifecycle events
//!   (counted `dropped`) and keeps retrying the lifecycle ones (the queue
//!   bounds how many wait);
//! - a batch delivered whose spool records cannot be acknowledged (the
//!   `ack` file cannot be written: a read-only or full spool folder) is a
//!   failed attempt too: it is never sent again; the acknowledgement is
//!   retried with the same backoff, the sink taking nothing else meanwhile,
//!   counted (`ack_errors`) and shown as a warning until it succeeds;
//! - when closing, whatever is waiting is tried once more without backoff;
//!   after a failure or past the deadline the thread stops: spooled events
//!   stay spooled for the next start, the others count as `failed`
//!   (`GiveUp`) or `dropped` and `dropped_lifecycle` (`KeepLifecycle`).

use std::hash::BuildHasher;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::queue::Queued;
use super::spool::Record;
use super::{OnFailure, Sink, SinkError, SinkSettings, SinkShared};
use crate::sync::{lock, wait, wait_timeout};

/// One event of a batch, from the memory queue or from the spool.
enum Item {
    Memory(Queued),
    Spooled(Record),
}

impl Item {
    fn seq(&self) -> u64 {
        match self {
            Item::Memory(q) => q.seq,
            Item::Spooled(r) => r.seq,
        }
    }

    /// The router's number of an event from the memory queue (spooled
    /// events were made durable when they were offered).
    fn route(&self) -> Option<u64> {
        match self {
            Item::Memory(q) => Some(q.route),
            Item::Spooled(_) => None,
        }
    }

    fn json(&self) -> &str {
        match self {
            Item::Memory(q) => &q.event.json,
            Item::Spooled(r) => &r.json,
        }
    }

    /// A session lifecycle event (`created`, `destroyed`, `timeout`).
    fn lifecycle(&self) -> bool {
        match self {
            Item::Memory(q) => q.event.lifecycle,
            Item::Spooled(_) => true,
        }
    }
}

/// A random number generator for one sink's retry waits, seeded from the
/// operating system's randomness: std's `RandomState` keys come from the OS
/// (once per thread, then a new pair for each `RandomState`), so every sink
/// of every Janus instance draws its own sequence, even when instances start
/// at the same moment. (`fastrand`'s own seed is a hash of the clock and the
/// thread id, which instances started together may share.)
pub(super) fn retry_rng() -> fastrand::Rng {
    fastrand::Rng::with_seed(std::collections::hash_map::RandomState::new().hash_one(0u8))
}

/// The wait before retry number `attempts` (1 after the first failure):
/// uniform from zero to `min(backoff_max, backoff * 2^(attempts - 1))`, the
/// "full jitter" of the AWS architecture blog's "Exponential Backoff And
/// Jitter" (and of Vector's retries). Spreads the retries of many clients
/// that failed together over the whole window instead of bunching them at
/// its end.
pub(super) fn full_jitter(
    rng: &mut fastrand::Rng,
    backoff: Duration,
    backoff_max: Duration,
    attempts: u32,
) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    let bound = backoff.saturating_mul(factor).min(backoff_max);
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

pub(super) struct Runner {
    sink: Box<dyn Sink>,
    shared: Arc<SinkShared>,
    max_batch: usize,
    max_delay: Duration,
    flush_every: Duration,
    retries: u32,
    backoff: Duration,
    backoff_max: Duration,
    on_failure: OnFailure,
    rng: fastrand::Rng,
    /// Spooled records up to this sequence number were delivered but their
    /// acknowledgement could not be written: nothing is taken or sent until
    /// it is (the spool would hand out the same records again).
    ack_due: Option<u64>,
}

enum Wake {
    /// Events are waiting and due.
    Ready,
    /// Nothing to send, but a flush or spool sync is due.
    Timer,
    /// close() was called.
    Closing,
}

impl Runner {
    pub(super) fn new(sink: Box<dyn Sink>, shared: Arc<SinkShared>, s: &SinkSettings) -> Runner {
        if let Some(slot) = &shared.spool
            && lock(&slot.spool).pending() > 0
        {
            lock(&shared.queue.state).spool_since = Some(Instant::now());
        }
        Runner {
            sink,
            shared,
            max_batch: s.max_batch.max(1),
            max_delay: s.max_delay,
            flush_every: s.flush_every,
            retries: s.retries,
            backoff: s.backoff.max(Duration::from_millis(1)),
            backoff_max: s.backoff_max.max(s.backoff),
            on_failure: s.on_failure,
            rng: retry_rng(),
            ack_due: None,
        }
    }

    pub(super) fn run(mut self) {
        let mut batch: Vec<Item> = Vec::new();
        let mut attempts: u32 = 0;
        let mut retry_at: Option<Instant> = None;
        let mut flush_due: Option<Instant> = None;
        // The spool (if any) is synced at least this often.
        let mut next_sync = Instant::now() + self.flush_every;
        loop {
            let closing = lock(&self.shared.queue.state).closing;
            if closing.is_some_and(|deadline| Instant::now() >= deadline) {
                self.abandon(&mut batch);
                break;
            }
            let timer = [flush_due, Some(next_sync), retry_at]
                .into_iter()
                .flatten()
                .min();
            if let Some(seq) = self.ack_due {
                // Delivered, not acknowledged: only the acknowledgement is
                // retried, with backoff (see the module documentation).
                if closing.is_none() && retry_at.is_some_and(|at| Instant::now() < at) {
                    self.sleep_until(timer);
                }
                if retry_at.is_none_or(|at| Instant::now() >= at) || closing.is_some() {
                    if self.acknowledge(seq) {
                        attempts = 0;
                        retry_at = None;
                        self.shared.stats().retrying.store(0, Relaxed);
                    } else {
                        attempts += 1;
                        self.shared
                            .stats()
                            .retrying
                            .store(u64::from(attempts), Relaxed);
                        if closing.is_some() {
                            // The records stay spooled: sent again next start.
                            self.abandon(&mut batch);
                            break;
                        }
                        retry_at = Some(Instant::now() + self.backoff_for(attempts));
                    }
                }
            } else if batch.is_empty() {
                match self.wait(timer) {
                    Wake::Ready => self.take_batch(&mut batch),
                    Wake::Timer => {}
                    Wake::Closing => {
                        self.take_batch(&mut batch);
                        if batch.is_empty() {
                            break;
                        }
                    }
                }
            } else if closing.is_none() && retry_at.is_some_and(|at| Instant::now() < at) {
                self.sleep_until(timer);
            }
            let due = retry_at.is_none_or(|at| Instant::now() >= at) || closing.is_some();
            if !batch.is_empty() && due && self.ack_due.is_none() {
                match self.attempt(&mut batch, closing) {
                    Ok(()) => {
                        attempts = 0;
                        retry_at = None;
                        self.shared.stats().retrying.store(0, Relaxed);
                        flush_due.get_or_insert_with(|| Instant::now() + self.flush_every);
                    }
                    Err(()) => {
                        attempts += 1;
                        self.shared
                            .stats()
                            .retrying
                            .store(u64::from(attempts), Relaxed);
                        if closing.is_some() {
                            self.abandon(&mut batch);
                            break;
                        }
                        if attempts > self.retries {
                            // GiveUp: what is not spooled is given up.
                            // KeepLifecycle: lifecycle events are kept.
                            self.give_up(&mut batch);
                        }
                        if batch.is_empty() && self.ack_due.is_none() {
                            attempts = 0;
                            retry_at = None;
                        } else {
                            retry_at = Some(Instant::now() + self.backoff_for(attempts));
                            self.shared
                                .stats()
                                .retried
                                .fetch_add(batch.len() as u64, Relaxed);
                        }
                    }
                }
            }
            let now = Instant::now();
            if flush_due.is_some_and(|d| now >= d) {
                self.flush();
                flush_due = None;
            }
            if now >= next_sync {
                self.sync_spool();
                next_sync = now + self.flush_every;
            }
        }
        self.flush();
        self.sync_spool();
    }

    fn backoff_for(&mut self, attempts: u32) -> Duration {
        full_jitter(&mut self.rng, self.backoff, self.backoff_max, attempts)
    }

    /// Blocks until events are due, a timer fires, or close() is called.
    fn wait(&self, timer: Option<Instant>) -> Wake {
        let queue = &self.shared.queue;
        let mut st = lock(&queue.state);
        loop {
            if st.closing.is_some() {
                return Wake::Closing;
            }
            let now = Instant::now();
            let oldest = [st.items.front().map(|q| q.at), st.spool_since]
                .into_iter()
                .flatten()
                .min();
            if let Some(oldest) = oldest
                && (st.items.len() >= self.max_batch || now >= oldest + self.max_delay)
            {
                return Wake::Ready;
            }
            if timer.is_some_and(|t| now >= t) {
                return Wake::Timer;
            }
            let until = [oldest.map(|o| o + self.max_delay), timer]
                .into_iter()
                .flatten()
                .min();
            st = match until {
                None => wait(&queue.ready, st),
                Some(t) => wait_timeout(&queue.ready, st, t.saturating_duration_since(now)),
            };
        }
    }

    /// Sleeps until `until` (a retry or timer), waking early on close().
    fn sleep_until(&self, until: Option<Instant>) {
        let queue = &self.shared.queue;
        let st = lock(&queue.state);
        if st.closing.is_some() {
            return;
        }
        let wait = until.map_or(Duration::from_millis(100), |t| {
            t.saturating_duration_since(Instant::now())
        });
        let _ = queue.ready.wait_timeout(st, wait);
    }

    /// Fills `batch` with the oldest waiting events, queue and spool merged
    /// by sequence number.
    ///
    /// An offer spools its lifecycle events before it queues the others, so
    /// both reads must be taken with care, or an event is sent before an
    /// older one (an `attached` before its session's `created`):
    /// - an event in memory goes only if no older one can be in the spool
    ///   unread: every event up to `seq_through` (read before the spool)
    ///   was in the spool when it was read, and appends come in order, so
    ///   nothing older than the newest record read can come later either;
    /// - a spooled event goes only if every older one is in memory by now
    ///   (its whole offer is in: `seq_through` when the queue is read).
    ///
    /// What waits goes in the next batch, its offer being complete.
    fn take_batch(&mut self, batch: &mut Vec<Item>) {
        let mut spooled = Vec::new();
        let (appends_before, through_before) = {
            let st = lock(&self.shared.queue.state);
            (st.spool_appends, st.seq_through)
        };
        if let Some(slot) = &self.shared.spool {
            let peeked = lock(&slot.spool).peek(self.max_batch);
            match peeked {
                Ok(records) => {
                    if let Some(oldest) = records.first() {
                        self.shared.stats().spool_oldest(&oldest.json);
                    }
                    spooled = records
                }
                Err(e) => self
                    .shared
                    .stats()
                    .report(format!("{}: spool: {e}", self.shared.name())),
            }
            if spooled.is_empty() {
                let mut st = lock(&self.shared.queue.state);
                if st.spool_appends == appends_before {
                    st.spool_since = None;
                }
            }
        }
        #[cfg(test)]
        if let Some(hook) = lock(&self.shared.after_spool_read).as_mut() {
            hook();
        }
        let memory_through = match (&self.shared.spool, spooled.last()) {
            (None, _) => u64::MAX, // no spool: the queue alone is in order
            (Some(_), None) => through_before,
            (Some(_), Some(newest)) => newest.seq.max(through_before),
        };
        let mut spooled = spooled.into_iter().peekable();
        let mut st = lock(&self.shared.queue.state);
        let spooled_through = st.seq_through;
        while batch.len() < self.max_batch {
            let next_memory = st.items.front().map(|q| q.seq);
            let next_spooled = spooled.peek().map(|r| r.seq);
            let spooled_first = match (next_memory, next_spooled) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(m), Some(s)) => s < m,
            };
            if spooled_first {
                if next_spooled.is_some_and(|s| s <= spooled_through) {
                    batch.push(Item::Spooled(spooled.next().expect("peeked")));
                    continue;
                }
            } else if next_memory.is_some_and(|m| m <= memory_through) {
                st.in_flight = true;
                batch.push(Item::Memory(st.items.pop_front().expect("front")));
                continue;
            }
            break;
        }
    }

    /// One attempt at the batch. Delivered events leave the batch (their
    /// spool records acknowledged); on failure the rest stays.
    fn attempt(&mut self, batch: &mut Vec<Item>, deadline: Option<Instant>) -> Result<(), ()> {
        #[cfg(feature = "fault-injection")]
        crate::faults::on_sink_delivery(self.shared.name());
        let texts: Vec<&str> = batch.iter().map(Item::json).collect();
        let result = catch_unwind(AssertUnwindSafe(|| self.sink.deliver(&texts, deadline)))
            .unwrap_or_else(|_| {
                Err(SinkError {
                    delivered: 0,
                    message: "internal error (panic) while delivering".into(),
                })
            });
        let delivered = match &result {
            Ok(()) => batch.len(),
            Err(e) => e.delivered.min(batch.len()),
        };
        if delivered > 0 {
            self.shared
                .stats()
                .sent
                .fetch_add(delivered as u64, Relaxed);
            let acked = batch[..delivered]
                .iter()
                .filter(|i| matches!(i, Item::Spooled(_)))
                .map(Item::seq)
                .max();
            if let Some(seq) = acked
                && !self.acknowledge(seq)
            {
                self.ack_due = Some(seq);
            }
            let done = batch[..delivered].iter().filter_map(Item::route).max();
            batch.drain(..delivered);
            let position = self.sink.position();
            self.settle(done, batch, position);
        }
        match result {
            Ok(()) if self.ack_due.is_none() => Ok(()),
            Ok(()) => Err(()),
            Err(e) => {
                self.shared.stats().report(e.message);
                Err(())
            }
        }
    }

    /// Acknowledges the spooled records up to `seq`; true when the
    /// acknowledgement is written (a segment that could not be deleted
    /// after it is reported, and retried at the next one). A failure is
    /// reported, counted and kept as the sink's warning until one succeeds.
    fn acknowledge(&mut self, seq: u64) -> bool {
        let Some(slot) = &self.shared.spool else {
            return true;
        };
        let (done, acked) = {
            let mut sp = lock(&slot.spool);
            let done = sp.ack(seq);
            self.shared.stats().spool_changed(&sp);
            (done, sp.acked_seq() >= seq)
        };
        let stats = self.shared.stats();
        let name = self.shared.name();
        match done {
            Ok(()) => {}
            Err(e) if acked => stats.report(format!("{name}: spool: {e}")),
            Err(e) => {
                stats.ack_errors.fetch_add(1, Relaxed);
                let why = format!(
                    "cannot acknowledge delivered events in its spool ({}: the ack file cannot be written: {e}); it sends nothing until it can, retrying with backoff",
                    slot.dir
                );
                stats.report(format!("{name}: spool: {why}"));
                stats.set_cannot_acknowledge(Some(why));
                return false;
            }
        }
        self.ack_due = None;
        if stats.set_cannot_acknowledge(None).is_some() {
            crate::jlog!(
                Info,
                "{name}: spool: acknowledgements are written again; sending resumes"
            );
        }
        true
    }

    /// After the retries: `GiveUp` drops the events of the batch that are
    /// not spooled, counting them `failed`; `KeepLifecycle` drops those that
    /// are not lifecycle events, counting them `dropped`.
    fn give_up(&self, batch: &mut Vec<Item>) {
        let before = batch.len();
        let stats = self.shared.stats();
        let routes = batch.iter().filter_map(Item::route).max();
        match self.on_failure {
            OnFailure::GiveUp => {
                batch.retain(|i| matches!(i, Item::Spooled(_)));
                let lost = (before - batch.len()) as u64;
                stats.failed.fetch_add(lost, Relaxed);
            }
            OnFailure::KeepLifecycle => {
                batch.retain(Item::lifecycle);
                let lost = (before - batch.len()) as u64;
                stats.dropped.fetch_add(lost, Relaxed);
            }
        }
        self.settle(routes, batch, None);
    }

    /// Publishes what the sink has finished with (for crash recovery): the
    /// memory events up to `done` left the batch (delivered or given up),
    /// except that nothing at or after an event still in the `batch` is
    /// finished. `position`: where the sink's file stands now.
    fn settle(
        &self,
        done: Option<u64>,
        batch: &[Item],
        position: Option<super::file::FilePosition>,
    ) {
        let waiting = batch.iter().filter_map(Item::route).min();
        let mut st = lock(&self.shared.queue.state);
        let through = match (done, waiting) {
            (_, Some(w)) => Some(w - 1),
            (Some(d), None) => Some(d),
            (None, None) => None,
        };
        if let Some(t) = through {
            st.settled_through = st.settled_through.max(t);
        }
        st.in_flight = waiting.is_some();
        if position.is_some() {
            st.position = position;
        }
    }

    /// Stops with events undelivered: the spooled ones stay in the spool,
    /// the others are counted lost (`failed`, or `dropped` and
    /// `dropped_lifecycle` for `KeepLifecycle`).
    fn abandon(&self, batch: &mut Vec<Item>) {
        let stats = self.shared.stats();
        let mut left: Vec<bool> = batch
            .drain(..)
            .filter(|i| matches!(i, Item::Memory(_)))
            .map(|i| i.lifecycle())
            .collect();
        {
            let mut st = lock(&self.shared.queue.state);
            left.extend(st.items.drain(..).map(|q| q.event.lifecycle));
            // Never delivered: not finished with. The thread stops, so the
            // sink stays "busy" and crash recovery keeps those sessions open.
            st.in_flight = true;
        }
        let lifecycle = left.iter().filter(|l| **l).count() as u64;
        let all = left.len() as u64;
        match self.on_failure {
            OnFailure::GiveUp => {
                stats.failed.fetch_add(all, Relaxed);
            }
            OnFailure::KeepLifecycle => {
                stats.dropped.fetch_add(all, Relaxed);
                stats.dropped_lifecycle.fetch_add(lifecycle, Relaxed);
            }
        }
    }

    fn flush(&mut self) {
        let result = catch_unwind(AssertUnwindSafe(|| self.sink.flush()))
            .unwrap_or_else(|_| Err("internal error (panic) while flushing".into()));
        if let Err(e) = result {
            self.shared.stats().report(e);
        }
    }

    fn sync_spool(&self) {
        if let Some(slot) = &self.shared.spool {
            let synced = lock(&slot.spool).sync();
            if let Err(e) = synced {
                self.shared
                    .stats()
                    .report(format!("{}: spool: {e}", self.shared.name()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full jitter: every wait is within [0, min(backoff_max, backoff *
    /// 2^(attempt - 1))], and the waits spread over that whole window.
    #[test]
    fn retry_waits_are_uniform_up_to_the_capped_exponential_bound() {
        let (backoff, max) = (Duration::from_millis(100), Duration::from_secs(30));
        let mut rng = retry_rng();
        for attempts in 1..=40u32 {
            let bound = backoff.saturating_mul(1 << (attempts - 1).min(20)).min(max);
            let draws: Vec<Duration> = (0..4000)
                .map(|_| full_jitter(&mut rng, backoff, max, attempts))
                .collect();
            assert!(draws.iter().all(|d| *d <= bound), "attempt {attempts}");
            // Uniform on [0, bound]: the mean is near bound / 2 (4000 draws:
            // the standard error is 0.5% of the bound), and both ends of
            // the window are reached.
            let mean = draws.iter().sum::<Duration>().as_secs_f64() / draws.len() as f64;
            let half = bound.as_secs_f64() / 2.0;
            assert!(
                (mean - half).abs() < 0.05 * half,
                "attempt {attempts}: mean {mean}"
            );
            assert!(draws.iter().any(|d| *d < bound / 10), "attempt {attempts}");
            assert!(
                draws.iter().any(|d| *d > bound * 9 / 10),
                "attempt {attempts}"
            );
        }
        // The bound grows: 100 ms, 200 ms, 400 ms, ..., capped at 30 s.
        let mut most = |attempts| {
            (0..2000)
                .map(|_| full_jitter(&mut rng, backoff, max, attempts))
                .max()
                .unwrap()
        };
        assert!(most(1) <= backoff && most(1) > backoff * 9 / 10);
        assert!(most(3) <= backoff * 4 && most(3) > backoff * 3);
        assert!(most(20) <= max && most(20) > max * 9 / 10);
    }

    /// Two sinks (of one Janus, or of two Janus instances started at the
    /// same moment) do not draw the same waits.
    #[test]
    fn two_runners_do_not_retry_in_lockstep() {
        let waits = |mut rng: fastrand::Rng| -> Vec<Duration> {
            (1..=8)
                .map(|attempt| {
                    full_jitter(
                        &mut rng,
                        Duration::from_millis(100),
                        Duration::from_secs(30),
                        attempt,
                    )
                })
                .collect()
        };
        let same_thread = (waits(retry_rng()), waits(retry_rng()));
        assert_ne!(same_thread.0, same_thread.1);
        let other = std::thread::spawn(move || waits(retry_rng()))
            .join()
            .unwrap();
        let other2 = std::thread::spawn(move || waits(retry_rng()))
            .join()
            .unwrap();
        assert_ne!(other, other2);
        assert_ne!(other, same_thread.0);
    }
}
