//! What the worker, a sink's thread and the Admin API share of one sink:
//! its switches (mask, enabled), its queue and spool, its counters. The
//! worker's side of delivery ([`SinkShared::offer_all`]) lives here.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::broker::ConnectionState;
use super::file::FilePosition;
use super::queue::{Queue, Queued};
use super::settings::SinkSettings;
use super::spool::Spool;
use super::stats::SinkStats;
use crate::config::EventMask;
use crate::output::OutEvent;
use crate::sync::lock;

/// The spool of a sink, shared by the worker (append) and the sink's thread.
pub(crate) struct SpoolSlot {
    pub(crate) spool: Mutex<Spool>,
    pub(super) all_events: bool,
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
    /// A broker sink's connection.
    connection: Option<Arc<ConnectionState>>,
    /// Run by the sink's thread between its read of the spool and its read
    /// of the queue (a test's way into that moment).
    #[cfg(test)]
    pub(crate) after_spool_read: Mutex<Option<Box<dyn FnMut() + Send>>>,
}

impl SinkShared {
    /// The shared part of a sink about to start, with its spool if it has one.
    pub(super) fn new(
        kind: &'static str,
        settings: &SinkSettings,
        spool: Option<SpoolSlot>,
        describe: Map<String, Value>,
        connection: Option<Arc<ConnectionState>>,
    ) -> SinkShared {
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
        let queue = Queue::new(settings.queue_size, settings.max_batch);
        // What the spool holds from before is there to be sent.
        lock(&queue.state).seq_through = next_seq - 1;
        SinkShared {
            name: settings.name.clone(),
            kind,
            mask: AtomicU32::new(settings.mask.0),
            enabled: AtomicBool::new(true),
            queue,
            stats,
            spool,
            next_seq: AtomicU64::new(next_seq),
            describe,
            acknowledges: settings.acknowledges,
            connection,
            #[cfg(test)]
            after_spool_read: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// The connection of a sink that keeps one (a broker's).
    pub fn connection(&self) -> Option<&ConnectionState> {
        self.connection.as_deref()
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
        // The newest sequence number given out (offers come from the
        // worker's thread only, one at a time).
        let mut seq_through = None;
        {
            let mut spool = self.spool.as_ref().map(|slot| (slot, lock(&slot.spool)));
            for (route, ev) in events.iter().filter(|(_, e)| mask.allows(e.ty)) {
                taken += 1;
                let seq = self.next_seq.fetch_add(1, Relaxed);
                seq_through = Some(seq);
                if let Some((slot, sp)) = spool.as_mut()
                    && (slot.all_events || ev.lifecycle)
                {
                    let was_empty = sp.pending() == 0;
                    match sp.append(seq, &ev.json) {
                        Ok(()) => {
                            spooled += 1;
                            if was_empty {
                                match ev.timestamp {
                                    Some(ts) => self.stats.spool_oldest_at(ts),
                                    None => self.stats.spool_oldest(&ev.json),
                                }
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
                // (Otherwise marked with the queued events, under the same
                // lock: the sink's thread sees them and the mark together.)
                if let Some(seq) = seq_through {
                    st.seq_through = st.seq_through.max(seq);
                }
            }
        }
        if queued.is_empty() {
            if spooled > 0 {
                self.queue.notify();
            }
        } else {
            let seq_through = seq_through.expect("queued events have numbers");
            let (dropped, lifecycle) = self.queue.push_all(queued, last_route, seq_through);
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
        if let Some(c) = &self.connection {
            c.info(&mut m);
        }
        for (k, v) in &self.describe {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}
