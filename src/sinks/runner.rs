//! A sink's thread: takes batches from the memory queue and the spool in
//! sequence order, hands them to the sink, retries with capped exponential
//! backoff, flushes, and stops within the deadline `close()` gives.
//!
//! Delivery rules:
//! - a batch holds the oldest waiting events (queue and spool merged by
//!   sequence number), at most `max_batch`; a partial batch waits up to
//!   `max_delay` for more;
//! - a failed batch is retried after `backoff`, doubled each time up to
//!   `backoff_max`; events that are not spooled are given up (counted
//!   `failed`) after `retries` retries; spooled events are kept and retried
//!   until the backend takes them (their spool record is acknowledged only
//!   then);
//! - when closing, whatever is waiting is tried once more without backoff;
//!   after a failure or past the deadline the thread stops: spooled events
//!   stay spooled for the next start, the others count as `failed`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::queue::Queued;
use super::spool::Record;
use super::{Sink, SinkError, SinkSettings, SinkShared};
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
            if batch.is_empty() {
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
            if !batch.is_empty() && due {
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
                            // Not spooled: given up. Spooled: kept, retried.
                            self.give_up_unspooled(&mut batch);
                        }
                        if batch.is_empty() {
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

    fn backoff_for(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        self.backoff.saturating_mul(factor).min(self.backoff_max)
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
    fn take_batch(&mut self, batch: &mut Vec<Item>) {
        let mut spooled = Vec::new();
        if let Some(slot) = &self.shared.spool {
            let appends_before = lock(&self.shared.queue.state).spool_appends;
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
        let mut spooled = spooled.into_iter().peekable();
        let mut st = lock(&self.shared.queue.state);
        while batch.len() < self.max_batch {
            let next_memory = st.items.front().map(|q| q.seq);
            let next_spooled = spooled.peek().map(|r| r.seq);
            match (next_memory, next_spooled) {
                (None, None) => break,
                (Some(m), Some(s)) if s < m => {
                    batch.push(Item::Spooled(spooled.next().expect("peeked")))
                }
                (Some(_), _) => {
                    st.in_flight = true;
                    batch.push(Item::Memory(st.items.pop_front().expect("front")))
                }
                (None, Some(_)) => batch.push(Item::Spooled(spooled.next().expect("peeked"))),
            }
        }
    }

    /// One attempt at the batch. Delivered events leave the batch (their
    /// spool records acknowledged); on failure the rest stays.
    fn attempt(&mut self, batch: &mut Vec<Item>, deadline: Option<Instant>) -> Result<(), ()> {
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
            let position = self.sink.position();
            let routes = batch[..delivered].iter().filter_map(Item::route).max();
            self.settle(routes, batch.len() == delivered, position);
            self.shared
                .stats()
                .sent
                .fetch_add(delivered as u64, Relaxed);
            let acked = batch[..delivered]
                .iter()
                .filter(|i| matches!(i, Item::Spooled(_)))
                .map(Item::seq)
                .max();
            if let (Some(seq), Some(slot)) = (acked, &self.shared.spool) {
                let done = {
                    let mut sp = lock(&slot.spool);
                    let done = sp.ack(seq);
                    self.shared.stats().spool_changed(&sp);
                    done
                };
                if let Err(e) = done {
                    self.shared
                        .stats()
                        .report(format!("{}: spool: {e}", self.shared.name()));
                }
            }
            batch.drain(..delivered);
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.stats().report(e.message);
                Err(())
            }
        }
    }

    /// Drops the events of the batch that are not spooled, counting them failed.
    fn give_up_unspooled(&self, batch: &mut Vec<Item>) {
        let before = batch.len();
        let routes = batch.iter().filter_map(Item::route).max();
        batch.retain(|i| matches!(i, Item::Spooled(_)));
        let lost = (before - batch.len()) as u64;
        self.shared.stats().failed.fetch_add(lost, Relaxed);
        self.settle(routes, batch.is_empty(), None);
    }

    /// Publishes that the memory events up to `route` are finished with
    /// (delivered, or given up), and whether the batch is done.
    fn settle(
        &self,
        route: Option<u64>,
        batch_done: bool,
        position: Option<crate::recovery::FilePosition>,
    ) {
        let mut st = lock(&self.shared.queue.state);
        if let Some(r) = route {
            st.settled_through = st.settled_through.max(r);
        }
        if batch_done {
            st.in_flight = false;
        }
        if position.is_some() {
            st.position = position;
        }
    }

    /// Stops with events undelivered: the spooled ones stay in the spool.
    fn abandon(&self, batch: &mut Vec<Item>) {
        self.give_up_unspooled(batch);
        batch.clear();
        let left = {
            let mut st = lock(&self.shared.queue.state);
            let n = st.items.len();
            if let Some(r) = st.items.back().map(|q| q.route) {
                st.settled_through = st.settled_through.max(r);
            }
            st.items.clear();
            st.in_flight = false;
            n
        };
        self.shared.stats().failed.fetch_add(left as u64, Relaxed);
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
