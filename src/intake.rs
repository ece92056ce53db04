//! The intake: Janus's events thread hands events to the worker here.
//!
//! One queue, in Janus's order, from the events thread (the only producer)
//! to the worker (the only consumer): a chain of small lock-free
//! single-producer rings ([`rtrb`], [`RING`] slots each). The producer
//! writes into the newest ring; when it is full, the producer makes a new
//! one and hands it to the worker behind the old one (through a side
//! channel that carries only rings), so memory grows with what is queued,
//! not with `channel_capacity`, and a drained ring is freed. At rest the
//! queue is one ring.
//!
//! `channel_capacity` bounds what may wait. Below it, an event is pushed
//! without being looked at. At or above it ([`Intake::overflow`], the only
//! place an event's `type` is read), media, plugin, WebRTC and external
//! events are dropped and counted by type, while the events the tracker
//! needs (session, handle, transport, core, JSEP, and anything without a
//! known bulk type) are still queued, behind the ones already waiting. So
//! the queue holds at most `channel_capacity` bulk events, plus the
//! lifecycle events Janus produced while the worker was behind: those come
//! from Janus's own session, handle, transport and negotiation activity
//! (client requests and connections Janus itself serves), never from media
//! or plugin traffic, and each one stands for state Janus holds too.
//!
//! The events thread never blocks, never does I/O and takes no lock: one
//! `fetch_add`, a push into a ring, and a check whether the worker sleeps
//! (it is woken only then, so under load there is no futex wake per event).
//! It allocates only when the queue grows past a ring ([`RING`] events).
//!
//! Where the shed media and WebRTC events were, the worker learns without
//! any cost below capacity: at capacity, the first such drop after an event
//! was queued sends a mark (how many events were queued before it, and how
//! many were shed before it) on a side channel. From the marks the worker
//! knows, for each event it takes, exactly how many were shed before it in
//! Janus's order ([`Outlet::shed_before_last`]); the quality record
//! reports those shed while a session was open (`samples_dropped`). Which
//! session a shed event belonged to is not known: it was not decoded.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, fence};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, unbounded};
use rtrb::{PushError, RingBuffer};

use crate::counters::Counters;
use crate::ffi::JsonRef;
use crate::janus::types;

/// Slots per ring: the unit in which the queue grows and shrinks
/// (4 KiB of pointers for Janus's events).
pub const RING: usize = 512;

/// The event types shed when the queue is full, as named in `events`
/// masks: the tracker needs none of them, and Janus produces them in
/// proportion to media and plugin traffic (or Admin API requests).
pub const BULK: [(u32, &str); 4] = [
    (types::MEDIA, "media"),
    (types::PLUGIN, "plugins"),
    (types::WEBRTC, "webrtc"),
    (types::EXTERNAL, "external"),
];

/// Whether a shed event of [`BULK`] index `i` is one the quality record is
/// made of (media, WebRTC).
fn feeds_quality(i: usize) -> bool {
    matches!(BULK[i].0, types::MEDIA | types::WEBRTC)
}

/// Which of [`BULK`] an event's `type` is; None: one the tracker needs
/// (or no known type: kept, so that nothing it might need is lost).
pub fn bulk_index(event_type: Option<i64>) -> Option<usize> {
    let ty = u32::try_from(event_type?).ok()?;
    BULK.iter().position(|(t, _)| *t == ty)
}

/// Something that crossed from Janus to the worker and can be read as JSON.
pub trait Inbound: Send + 'static {
    /// Writes the event's compact JSON text into `buf` (replacing it);
    /// false when it cannot.
    fn write_json(&self, buf: &mut Vec<u8>) -> bool;
    /// The event's integer `type`, if it has one. Read only when the
    /// queue is full.
    fn event_type(&self) -> Option<i64>;
}

impl Inbound for JsonRef {
    fn write_json(&self, buf: &mut Vec<u8>) -> bool {
        self.dump_into(buf)
    }

    fn event_type(&self) -> Option<i64> {
        JsonRef::event_type(self)
    }
}

/// JSON text, for tests and replays that feed the worker without jansson.
impl Inbound for Vec<u8> {
    fn write_json(&self, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        buf.extend_from_slice(self);
        true
    }

    fn event_type(&self) -> Option<i64> {
        serde_json::from_slice::<serde_json::Value>(self)
            .ok()?
            .get("type")?
            .as_i64()
    }
}

/// What the events thread, the worker and the Admin API share.
struct Shared {
    capacity: u64,
    /// Events the worker took (written by the worker only).
    popped: AtomicU64,
    /// Bulk events dropped at capacity, by [`BULK`] index.
    dropped_bulk: [AtomicU64; 4],
    /// Of those, the media and WebRTC ones (written Release after their
    /// mark was sent; see [`Outlet::shed_before_last`]).
    shed: AtomicU64,
    /// Events the tracker needs that were dropped anyway: only when the
    /// worker is gone, or when a second thread called `incoming_event`
    /// during a call (Janus has one events thread). Never otherwise.
    dropped_lifecycle: AtomicU64,
    /// Lifecycle events queued while the queue was at or above capacity.
    over_capacity: AtomicU64,
    /// The deepest the queue was seen (sampled by the worker every 64
    /// events, and at each lifecycle event queued at capacity).
    peak_depth: AtomicU64,
    /// Rings allocated now, and at most.
    rings: AtomicUsize,
    peak_rings: AtomicUsize,
    /// Set when the worker's end is dropped.
    worker_gone: AtomicBool,
    /// The worker announces here that it is about to sleep.
    asleep: AtomicBool,
    worker: OnceLock<Thread>,
}

impl Shared {
    fn wake(&self) {
        if let Some(t) = self.worker.get() {
            t.unpark();
        }
    }

    fn raise_peak_depth(&self, depth: u64) {
        self.peak_depth.fetch_max(depth, Relaxed);
    }

    /// Counts an event dropped although nothing was full, classified.
    fn count_dropped(&self, counters: &Counters, event_type: Option<i64>) {
        counters.dropped.fetch_add(1, Relaxed);
        match bulk_index(event_type) {
            Some(i) => self.dropped_bulk[i].fetch_add(1, Relaxed),
            None => self.dropped_lifecycle.fetch_add(1, Relaxed),
        };
    }
}

/// The events thread's end. `&mut` to push: one producer at a time.
pub struct Intake<T: Inbound> {
    ring: rtrb::Producer<T>,
    rings: Sender<rtrb::Consumer<T>>,
    /// Events pushed so far.
    queued: u64,
    /// The worker's count as last read: refreshed only when `queued`
    /// minus it reaches the capacity.
    popped_seen: u64,
    capacity: u64,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    /// Media and WebRTC events shed so far, and `queued` at the last mark.
    shed: u64,
    last_mark: u64,
    marks: Sender<Mark>,
    /// Dropped last (fields drop in order): wakes the worker once the ring
    /// and the side channel are closed, so that it drains and stops.
    _closer: WakeOnDrop,
}

/// Media and WebRTC events were shed after `queued` events had been
/// queued, `before` of them before these.
#[derive(Debug, Clone, Copy)]
struct Mark {
    queued: u64,
    before: u64,
}

struct WakeOnDrop(Arc<Shared>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        // Pairs with the fence in Outlet::wait, as for an event.
        fence(SeqCst);
        self.0.wake();
    }
}

/// The worker's end.
pub struct Outlet<T: Inbound> {
    ring: rtrb::Consumer<T>,
    rings: Receiver<rtrb::Consumer<T>>,
    popped: u64,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    marks: Receiver<Mark>,
    /// Marks taken from the channel that are past the last event taken.
    pending: VecDeque<Mark>,
    /// `shared.shed` when last read with nothing pending.
    shed_seen: u64,
}

/// What the Admin API and the control requests hold: counters and a way to
/// wake the worker.
#[derive(Clone)]
pub struct Gauge {
    shared: Arc<Shared>,
    counters: Arc<Counters>,
}

/// The queue's state for the Admin API `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelView {
    pub depth: u64,
    pub capacity: u64,
    pub peak_depth: u64,
    pub over_capacity: u64,
    pub dropped_bulk: [u64; 4],
    pub dropped_lifecycle: u64,
    /// Bytes of ring buffers allocated now and at most (the events they
    /// point to are Janus's, not counted here).
    pub buffer_bytes: u64,
    pub peak_buffer_bytes: u64,
}

/// Makes the queue: the intake for the events thread, the outlet for the
/// worker, the gauge for the Admin API. Allocates one ring, whatever the
/// capacity.
pub fn queue<T: Inbound>(
    capacity: usize,
    counters: Arc<Counters>,
) -> (Intake<T>, Outlet<T>, Gauge) {
    let shared = Arc::new(Shared {
        capacity: capacity as u64,
        popped: AtomicU64::new(0),
        dropped_bulk: Default::default(),
        shed: AtomicU64::new(0),
        dropped_lifecycle: AtomicU64::new(0),
        over_capacity: AtomicU64::new(0),
        peak_depth: AtomicU64::new(0),
        rings: AtomicUsize::new(1),
        peak_rings: AtomicUsize::new(1),
        worker_gone: AtomicBool::new(false),
        asleep: AtomicBool::new(false),
        worker: OnceLock::new(),
    });
    let (producer, consumer) = RingBuffer::new(RING);
    let (rings_tx, rings_rx) = unbounded();
    let (marks_tx, marks_rx) = unbounded();
    let intake = Intake {
        ring: producer,
        rings: rings_tx,
        queued: 0,
        popped_seen: 0,
        capacity: capacity as u64,
        shared: shared.clone(),
        counters: counters.clone(),
        shed: 0,
        last_mark: u64::MAX,
        marks: marks_tx,
        _closer: WakeOnDrop(shared.clone()),
    };
    let outlet = Outlet {
        ring: consumer,
        rings: rings_rx,
        popped: 0,
        shared: shared.clone(),
        counters: counters.clone(),
        marks: marks_rx,
        pending: VecDeque::new(),
        shed_seen: 0,
    };
    (intake, outlet, Gauge { shared, counters })
}

impl<T: Inbound> Intake<T> {
    /// Hands one event to the worker; at capacity, drops it if it is bulk.
    #[inline]
    pub fn offer(&mut self, event: T) {
        self.counters.received.fetch_add(1, Relaxed);
        if self.queued - self.popped_seen >= self.capacity && self.full() {
            self.overflow(event);
        } else {
            self.push(event);
        }
    }

    /// Whether the queue really is at capacity (reads the worker's count).
    #[inline]
    fn full(&mut self) -> bool {
        self.popped_seen = self.shared.popped.load(Relaxed);
        self.queued - self.popped_seen >= self.capacity
    }

    #[inline]
    fn push(&mut self, event: T) {
        if let Err(PushError::Full(event)) = self.ring.push(event) {
            return self.grow(event);
        }
        self.pushed();
    }

    /// One more event is in a ring: counts it, and wakes the worker if it
    /// sleeps.
    #[inline(always)]
    fn pushed(&mut self) {
        self.queued += 1;
        // Pairs with the fence in Outlet::wait: either the worker sees the
        // event before it sleeps, or this sees that it sleeps.
        fence(SeqCst);
        if self.shared.asleep.load(Relaxed) {
            self.wake();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake(&self) {
        if self.shared.asleep.swap(false, Relaxed) {
            self.shared.wake();
        }
    }

    /// The newest ring is full: start a new one behind it.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, event: T) {
        let (mut producer, consumer) = RingBuffer::new(RING);
        // The new ring reaches the worker before the old one is abandoned:
        // the worker moves on only from an empty, abandoned ring.
        if self.rings.send(consumer).is_err() {
            // The worker is gone.
            self.shared
                .count_dropped(&self.counters, event.event_type());
            return;
        }
        let pushed = producer.push(event).is_ok();
        debug_assert!(pushed, "a new ring has room");
        self.ring = producer;
        let rings = self.shared.rings.fetch_add(1, Relaxed) + 1;
        self.shared.peak_rings.fetch_max(rings, Relaxed);
        self.pushed();
    }

    /// At or above capacity: the only place an event is classified.
    #[cold]
    #[inline(never)]
    fn overflow(&mut self, event: T) {
        let ty = event.event_type();
        if let Some(i) = bulk_index(ty) {
            if feeds_quality(i) {
                self.mark_shed();
            }
            self.shared.dropped_bulk[i].fetch_add(1, Relaxed);
            self.counters.dropped.fetch_add(1, Relaxed);
            return;
        }
        if self.shared.worker_gone.load(Relaxed) {
            self.shared.dropped_lifecycle.fetch_add(1, Relaxed);
            self.counters.dropped.fetch_add(1, Relaxed);
            return;
        }
        self.shared.over_capacity.fetch_add(1, Relaxed);
        self.shared
            .raise_peak_depth(self.queued - self.popped_seen + 1);
        self.push(event);
    }

    /// A media or WebRTC event is shed: the first since an event was
    /// queued sends a mark first; then the count moves (Release: whoever
    /// sees it can take the mark).
    fn mark_shed(&mut self) {
        if self.last_mark != self.queued {
            self.last_mark = self.queued;
            let mark = Mark {
                queued: self.queued,
                before: self.shed,
            };
            // Fails only when the worker is gone: nobody to tell.
            let _ = self.marks.send(mark);
        }
        self.shed += 1;
        self.shared.shed.store(self.shed, Release);
    }
}

impl<T: Inbound> Outlet<T> {
    /// How many media and WebRTC events were shed before the last event
    /// taken, in Janus's order (0 before any was taken).
    ///
    /// Exact: a drop counted in `shared.shed` had its mark sent before
    /// (see [`Intake::mark_shed`]). The drops before the `n`-th event
    /// taken (0-based) are those whose mark says fewer than `n + 1` events
    /// were queued; if a mark past it is known, its `before` counts them,
    /// otherwise every drop counted so far is before it.
    pub fn shed_before_last(&mut self) -> u64 {
        let taken = self.popped.saturating_sub(1);
        let shed = self.shared.shed.load(Acquire);
        if shed == self.shed_seen && self.pending.is_empty() {
            return shed;
        }
        while let Ok(m) = self.marks.try_recv() {
            self.pending.push_back(m);
        }
        while self.pending.front().is_some_and(|m| m.queued <= taken) {
            self.pending.pop_front();
        }
        match self.pending.front() {
            Some(m) => m.before,
            None => {
                self.shed_seen = shed;
                shed
            }
        }
    }

    /// Tells the queue which thread to wake: call it on the worker thread
    /// before the first [`Outlet::wait`].
    pub fn bind_to_current_thread(&self) {
        let _ = self.shared.worker.set(std::thread::current());
    }

    /// The next event, in Janus's order.
    pub fn receive(&mut self) -> Next<T> {
        loop {
            if let Ok(event) = self.ring.pop() {
                return Next::Event(self.took(event));
            }
            if !self.ring.is_abandoned() {
                return Next::Empty;
            }
            // The producer left this ring (strong count read Relaxed): make
            // its last pushes, and the ring it sent before, visible.
            fence(Acquire);
            if let Ok(event) = self.ring.pop() {
                return Next::Event(self.took(event));
            }
            match self.rings.try_recv() {
                Ok(next) => {
                    self.ring = next;
                    self.shared.rings.fetch_sub(1, Relaxed);
                }
                Err(TryRecvError::Disconnected) => return Next::Closed,
                // Cannot happen (the next ring is sent before the old one is
                // left); treated as empty rather than trusted.
                Err(TryRecvError::Empty) => return Next::Empty,
            }
        }
    }

    fn took(&mut self, event: T) -> T {
        // The depth, sampled every 64 events: reading the events thread's
        // counters at every event would pull its cache line away from it.
        if self.popped.is_multiple_of(64) {
            let depth = self
                .counters
                .received
                .load(Relaxed)
                .saturating_sub(self.counters.dropped.load(Relaxed))
                .saturating_sub(self.popped);
            if depth > self.shared.peak_depth.load(Relaxed) {
                self.shared.raise_peak_depth(depth);
            }
        }
        self.popped += 1;
        self.shared.popped.store(self.popped, Relaxed);
        event
    }

    /// Whether there is nothing to take right now (an event being pushed
    /// into a new ring counts as something).
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty() && (!self.ring.is_abandoned() || self.rings.is_empty())
    }

    /// Sleeps until an event comes, `timeout` passes, or [`Gauge::wake`]
    /// (Admin requests, the intake closing). The events thread wakes the
    /// worker only when it sleeps here.
    pub fn wait(&self, timeout: Duration) {
        self.shared.asleep.store(true, Relaxed);
        fence(SeqCst);
        if self.is_empty() && !self.ring.is_abandoned() {
            std::thread::park_timeout(timeout);
        }
        self.shared.asleep.store(false, Relaxed);
    }
}

impl<T: Inbound> Drop for Outlet<T> {
    fn drop(&mut self) {
        self.shared.worker_gone.store(true, Relaxed);
    }
}

/// What [`Outlet::receive`] found.
pub enum Next<T> {
    Event(T),
    Empty,
    /// The intake was dropped and everything it queued was taken.
    Closed,
}

impl Gauge {
    /// Wakes the worker (after sending it a control request).
    pub fn wake(&self) {
        self.shared.wake();
    }

    /// Counts an event refused without being queued (a second thread called
    /// `incoming_event` during a call; never inside Janus).
    pub fn refused(&self, event_type: Option<i64>) {
        self.counters.received.fetch_add(1, Relaxed);
        self.shared.count_dropped(&self.counters, event_type);
    }

    pub fn view<T>(&self) -> ChannelView {
        self.view_of_size(std::mem::size_of::<T>())
    }

    fn view_of_size(&self, slot: usize) -> ChannelView {
        let s = &self.shared;
        let received = self.counters.received.load(Relaxed);
        let dropped = self.counters.dropped.load(Relaxed);
        let popped = s.popped.load(Relaxed);
        let ring_bytes = (RING * slot) as u64;
        ChannelView {
            depth: received.saturating_sub(dropped).saturating_sub(popped),
            capacity: s.capacity,
            peak_depth: s.peak_depth.load(Relaxed),
            over_capacity: s.over_capacity.load(Relaxed),
            dropped_bulk: std::array::from_fn(|i| s.dropped_bulk[i].load(Relaxed)),
            dropped_lifecycle: s.dropped_lifecycle.load(Relaxed),
            buffer_bytes: s.rings.load(Relaxed) as u64 * ring_bytes,
            peak_buffer_bytes: s.peak_rings.load(Relaxed) as u64 * ring_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ty: u32, n: u64) -> Vec<u8> {
        format!(r#"{{"type":{ty},"session_id":1,"n":{n}}}"#).into_bytes()
    }

    fn n_of(e: &[u8]) -> u64 {
        serde_json::from_slice::<serde_json::Value>(e).unwrap()["n"]
            .as_u64()
            .unwrap()
    }

    fn drain(out: &mut Outlet<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while let Next::Event(e) = out.receive() {
            got.push(e);
        }
        got
    }

    #[test]
    fn classifies_only_the_four_bulk_types() {
        for (ty, _) in BULK {
            assert!(bulk_index(Some(ty as i64)).is_some());
        }
        for ty in [
            types::SESSION,
            types::HANDLE,
            types::JSEP,
            types::TRANSPORT,
            types::CORE,
            0,
            3,
            512,
        ] {
            assert_eq!(bulk_index(Some(ty as i64)), None, "{ty}");
        }
        assert_eq!(bulk_index(None), None);
        assert_eq!(bulk_index(Some(-32)), None);
    }

    #[test]
    fn at_capacity_sheds_bulk_and_keeps_lifecycle_in_order() {
        let counters = Arc::new(Counters::default());
        let (mut intake, mut out, gauge) = queue::<Vec<u8>>(16, counters.clone());
        // 16 media fill it; then alternate media and session events.
        for n in 0..16 {
            intake.offer(ev(types::MEDIA, n));
        }
        for n in 16..1016 {
            let ty = if n % 2 == 0 {
                types::MEDIA
            } else {
                types::SESSION
            };
            intake.offer(ev(ty, n));
        }
        intake.offer(ev(types::EXTERNAL, 2000));
        intake.offer(ev(types::PLUGIN, 2001));
        intake.offer(ev(types::WEBRTC, 2002));
        intake.offer(ev(types::JSEP, 2003));
        intake.offer(b"not json".to_vec());
        let v = gauge.view::<Vec<u8>>();
        assert_eq!(v.depth, 16 + 500 + 2);
        assert_eq!(v.dropped_bulk, [500, 1, 1, 1]);
        assert_eq!(v.dropped_lifecycle, 0);
        assert_eq!(v.over_capacity, 502);
        assert_eq!(counters.received.load(Relaxed), 1021);
        assert_eq!(counters.dropped.load(Relaxed), 503);
        // Beyond one ring: it grew, lazily.
        assert_eq!(
            v.buffer_bytes,
            2 * (RING * std::mem::size_of::<Vec<u8>>()) as u64
        );
        let got = drain(&mut out);
        let ns: Vec<u64> = got[..got.len() - 1].iter().map(|e| n_of(e)).collect();
        let want: Vec<u64> = (0..16).chain((17..1016).step_by(2)).chain([2003]).collect();
        assert_eq!(ns, want, "Janus's order, bulk shed");
        assert_eq!(got.last().unwrap(), b"not json");
        // Drained: the first ring was freed, the queue is one ring again.
        let v = gauge.view::<Vec<u8>>();
        assert_eq!(v.depth, 0);
        assert_eq!(
            v.buffer_bytes,
            (RING * std::mem::size_of::<Vec<u8>>()) as u64
        );
        assert_eq!(v.peak_depth, 518);
        // Below capacity again: bulk goes through.
        intake.offer(ev(types::MEDIA, 3000));
        assert!(matches!(out.receive(), Next::Event(e) if n_of(&e) == 3000));
    }

    /// The worker learns, for each event it takes, how many media and
    /// WebRTC events were shed before it in Janus's order, although the
    /// drops happen while it is behind.
    #[test]
    fn the_worker_knows_where_events_were_shed() {
        let counters = Arc::new(Counters::default());
        let (mut intake, mut out, _gauge) = queue::<Vec<u8>>(4, counters);
        let take = |out: &mut Outlet<Vec<u8>>| match out.receive() {
            Next::Event(e) => (n_of(&e), out.shed_before_last()),
            _ => panic!("an event was queued"),
        };
        // 0..4 fill the queue; 4 (media) and 5 (webrtc) are shed, 6
        // (plugin) too but it feeds no record; 7 (a session event) is
        // queued behind.
        for n in 0..4 {
            intake.offer(ev(types::MEDIA, n));
        }
        intake.offer(ev(types::MEDIA, 4));
        intake.offer(ev(types::WEBRTC, 5));
        intake.offer(ev(types::PLUGIN, 6));
        intake.offer(ev(types::SESSION, 7));
        // The worker takes two: room for two more; 8 is queued, 9 and 10
        // are shed, 11 queued, 12 shed.
        assert_eq!(take(&mut out), (0, 0));
        assert_eq!(take(&mut out), (1, 0));
        intake.offer(ev(types::MEDIA, 8));
        intake.offer(ev(types::MEDIA, 9));
        intake.offer(ev(types::MEDIA, 10));
        intake.offer(ev(types::SESSION, 11));
        intake.offer(ev(types::MEDIA, 12));
        // Although all five drops happened already, each event sees only
        // those before it.
        assert_eq!(take(&mut out), (2, 0));
        assert_eq!(take(&mut out), (3, 0));
        assert_eq!(take(&mut out), (7, 2));
        assert_eq!(take(&mut out), (8, 2));
        assert_eq!(take(&mut out), (11, 4));
        intake.offer(ev(types::MEDIA, 13));
        assert_eq!(take(&mut out), (13, 5));
        assert!(matches!(out.receive(), Next::Empty));
    }

    #[test]
    fn an_unused_capacity_allocates_nothing() {
        let (mut intake, mut out, gauge) =
            queue::<Vec<u8>>(16_777_216, Arc::new(Counters::default()));
        let one_ring = (RING * std::mem::size_of::<Vec<u8>>()) as u64;
        assert_eq!(gauge.view::<Vec<u8>>().buffer_bytes, one_ring);
        // Steady flow below a ring: the same ring, never a new one.
        for n in 0..100_000 {
            intake.offer(ev(types::MEDIA, n));
            if n % 100 == 99 {
                assert_eq!(drain(&mut out).len(), 100);
            }
        }
        assert_eq!(gauge.view::<Vec<u8>>().peak_buffer_bytes, one_ring);
    }

    #[test]
    fn closing_lets_the_worker_drain_then_stop() {
        let (mut intake, mut out, _gauge) = queue::<Vec<u8>>(64, Arc::new(Counters::default()));
        for n in 0..2000 {
            intake.offer(ev(types::SESSION, n));
        }
        drop(intake);
        assert_eq!(drain(&mut out).len(), 2000);
        assert!(matches!(out.receive(), Next::Closed));
    }

    #[test]
    fn a_gone_worker_costs_drops_not_memory() {
        let counters = Arc::new(Counters::default());
        let (mut intake, out, gauge) = queue::<Vec<u8>>(16, counters.clone());
        drop(out);
        for n in 0..100 {
            intake.offer(ev(types::SESSION, n));
        }
        let v = gauge.view::<Vec<u8>>();
        assert_eq!(v.dropped_lifecycle, 84);
        assert_eq!(v.depth, 16);
    }

    /// Two real threads, the worker sleeping and waking: every event
    /// arrives once, in order, across many ring changes, and the worker is
    /// woken for every lone event (a lost wake-up would leave it asleep for
    /// the whole 60 s timeout).
    #[test]
    fn threads_keep_order_across_rings_and_wake_the_worker() {
        let counters = Arc::new(Counters::default());
        let (mut intake, mut out, gauge) = queue::<Vec<u8>>(1 << 20, counters);
        let worker = std::thread::spawn(move || {
            out.bind_to_current_thread();
            let mut next = 0u64;
            loop {
                match out.receive() {
                    Next::Event(e) => {
                        assert_eq!(n_of(&e), next);
                        next += 1;
                    }
                    Next::Empty => out.wait(Duration::from_secs(60)),
                    Next::Closed => return next,
                }
            }
        });
        let mut n = 0;
        for round in 0..300u64 {
            // Bursts that outgrow a ring, and lone events, each after the
            // worker caught up (and went to sleep, or is about to).
            let burst = if round % 3 == 0 { 3 * RING as u64 } else { 1 };
            for _ in 0..burst {
                intake.offer(ev(types::SESSION, n));
                n += 1;
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while gauge.view::<Vec<u8>>().depth > 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: the worker was not woken"
                );
                std::thread::yield_now();
            }
        }
        drop(intake);
        assert_eq!(worker.join().unwrap(), n);
    }
}
