//! A sink's in-memory queue: bounded, and when full it drops the oldest
//! event that is not a session lifecycle event (or the newcomer, if it is not
//! one either), so lifecycle events are the last to go.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::output::OutEvent;
use crate::sync::lock;

/// One queued event with its sink-wide sequence number (which also orders it
/// against the events in the sink's spool) and when it was queued.
#[derive(Debug, Clone)]
pub struct Queued {
    pub seq: u64,
    /// The router's sequence number of the event (the same in every sink),
    /// by which the worker learns what a sink has finished with.
    pub route: u64,
    pub event: Arc<OutEvent>,
    pub at: Instant,
}

#[derive(Debug, Default)]
pub struct QueueState {
    pub items: VecDeque<Queued>,
    /// Set by close(): deliver what is left, then stop by this deadline.
    pub closing: Option<Instant>,
    /// Set when events may wait in the spool: since when (for max_delay).
    pub spool_since: Option<Instant>,
    /// Events spooled so far (lets the sink thread tell "spool drained" from
    /// "drained, but something was appended meanwhile").
    pub spool_appends: u64,
    /// Every event of a sequence number up to this one is in the spool or
    /// in `items` (or done with). An offer spools its events before it
    /// queues the rest, so the spool can hold an event that is newer than
    /// one still on its way to `items`: the sink thread reads this mark so
    /// that it never sends an event before an older one (`take_batch`).
    pub seq_through: u64,
    /// The route number of the newest event offered to the sink (taken or
    /// not: an event the sink does not take is finished with at once).
    pub offered_through: u64,
    /// Every event up to this route number is finished with: delivered
    /// (for the file: handed to the kernel), given up or dropped.
    pub settled_through: u64,
    /// The sink's thread holds a batch taken from the queue.
    pub in_flight: bool,
    /// Where the sink's file stood after its last delivered batch.
    pub position: Option<super::file::FilePosition>,
}

impl QueueState {
    /// Every event up to the returned route number is finished with.
    pub fn settled(&self) -> u64 {
        if self.items.is_empty() && !self.in_flight {
            self.offered_through
        } else {
            self.settled_through
        }
    }
}

pub struct Queue {
    pub state: Mutex<QueueState>,
    pub ready: Condvar,
    pub capacity: usize,
    /// The sink thread is woken when the queue stops being empty or holds a
    /// full batch; in between it wakes on its own timers (max_delay, flush).
    pub wake_at: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    DroppedOther,
    DroppedLifecycle,
}

impl Queue {
    pub fn new(capacity: usize, wake_at: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            wake_at: wake_at.max(1),
        }
    }

    #[cfg(test)]
    pub fn push(&self, item: Queued) -> Pushed {
        let pushed = Queue::push_locked(&mut lock(&self.state), self.capacity, item);
        self.ready.notify_one();
        pushed
    }

    /// Pushes several events under one lock and one wake-up, and marks
    /// every sequence number up to `seq_through` offered; returns how many
    /// were dropped, and how many of those were lifecycle events.
    pub fn push_all(
        &self,
        items: impl IntoIterator<Item = Queued>,
        offered_through: u64,
        seq_through: u64,
    ) -> (u64, u64) {
        let (mut dropped, mut lifecycle) = (0, 0);
        let wake = {
            let mut st = lock(&self.state);
            st.offered_through = offered_through;
            st.seq_through = st.seq_through.max(seq_through);
            let was_empty = st.items.is_empty();
            for item in items {
                match Queue::push_locked(&mut st, self.capacity, item) {
                    Pushed::Queued => {}
                    Pushed::DroppedOther => dropped += 1,
                    Pushed::DroppedLifecycle => {
                        dropped += 1;
                        lifecycle += 1;
                    }
                }
            }
            was_empty || st.items.len() >= self.wake_at
        };
        if wake {
            self.ready.notify_one();
        }
        (dropped, lifecycle)
    }

    fn push_locked(st: &mut QueueState, capacity: usize, item: Queued) -> Pushed {
        if st.items.len() < capacity {
            st.items.push_back(item);
            Pushed::Queued
        } else if let Some(pos) = st.items.iter().position(|e| !e.event.lifecycle) {
            st.items.remove(pos);
            st.items.push_back(item);
            Pushed::DroppedOther
        } else if !item.event.lifecycle {
            Pushed::DroppedOther
        } else {
            st.items.pop_front();
            st.items.push_back(item);
            Pushed::DroppedLifecycle
        }
    }

    /// Wakes the sink's thread (something was spooled, or it must close).
    pub fn notify(&self) {
        self.ready.notify_all();
    }

    pub fn len(&self) -> usize {
        lock(&self.state).items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(lifecycle: bool, n: u64) -> Queued {
        Queued {
            seq: n,
            route: n,
            event: OutEvent::new(1, lifecycle, Some(n), format!("{{\"n\":{n}}}")),
            at: Instant::now(),
        }
    }

    #[test]
    fn full_queue_drops_oldest_non_lifecycle_first() {
        let q = Queue::new(3, 1);
        assert_eq!(q.push(item(true, 1)), Pushed::Queued);
        assert_eq!(q.push(item(false, 2)), Pushed::Queued);
        assert_eq!(q.push(item(true, 3)), Pushed::Queued);
        // Full: the non-lifecycle event 2 goes.
        assert_eq!(q.push(item(true, 4)), Pushed::DroppedOther);
        // Full of lifecycle events: a non-lifecycle newcomer is dropped.
        assert_eq!(q.push(item(false, 5)), Pushed::DroppedOther);
        // A lifecycle newcomer replaces the oldest lifecycle event.
        assert_eq!(q.push(item(true, 6)), Pushed::DroppedLifecycle);
        let seqs: Vec<u64> = lock(&q.state).items.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 6]);
    }
}
