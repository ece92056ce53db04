//! The worker thread: channel -> decode -> tracker -> sinks.
//!
//! [`Pipeline`] is everything the worker does to one event, without the
//! thread, so tests can drive it directly. [`spawn`] runs it on its own thread,
//! fed by the intake's queue and ticked by the wall clock when idle, so that
//! settle windows close even when no further event arrives.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

use crate::bus::Bus;
use crate::counters::{Counters, TrackerSnapshot};
use crate::crash_state::{self, Recovered, SessionStore};
use crate::intake::{Inbound, Next, Outlet};
use crate::janus::{self, IdSet, Kind, types};
use crate::log::RateLimit;
use crate::output::{self, OutEvent};
use crate::quality::{Quality, Summary};
use crate::sinks::Router;
use crate::sync::Spawned;
use crate::tracker::{Ending, Output, Reason, SessionView, Tracker};

/// The current time as Janus stamps events: µs since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// What happens to each event: decode, track, route.
pub struct Pipeline {
    tracker: Tracker,
    /// Each open session's quality record, fed after the tracker.
    quality: Quality,
    router: Router,
    bus: Bus,
    counters: Arc<Counters>,
    /// The `emitter` of Janus's own events, copied onto synthetic ones.
    emitter: Option<String>,
    outputs: Vec<Output>,
    bad_events: RateLimit,
    /// Crash recovery: the open sessions, on disk.
    crash_state: Option<Checkpoints>,
    /// Said once in the log: WebSocket disconnects are invisible.
    warned_invisible: bool,
    /// Called at Janus's core `started` event (once its transports hold
    /// their ports): binds the Prometheus endpoint.
    on_janus_started: Option<Box<dyn FnOnce() + Send>>,
}

/// The crash-recovery store, when it is next checkpointed, and the endings
/// routed to the sinks but not yet acknowledged by them (see
/// `crate::crash_state` for the order).
pub struct Checkpoints {
    sessions: SessionStore,
    every: Duration,
    next: Instant,
    errors: RateLimit,
    /// (route number, session id), in route order.
    unacknowledged: VecDeque<(u64, u64)>,
}

impl Checkpoints {
    pub fn new(sessions: SessionStore, every: Duration) -> Checkpoints {
        Checkpoints {
            sessions,
            every,
            next: Instant::now() + every,
            errors: RateLimit::new(Duration::from_secs(60)),
            unacknowledged: VecDeque::new(),
        }
    }
}

/// Requests from the Admin API to the worker, which owns the tracker.
pub enum Control {
    /// A page of live sessions, and how many there are.
    Sessions {
        offset: usize,
        limit: usize,
        reply: Sender<(usize, Vec<SessionView>)>,
    },
    /// A new settle window for disconnects from now on.
    Settle { ms: u64, reply: Sender<()> },
}

impl Pipeline {
    pub fn new(tracker: Tracker, router: Router, bus: Bus, counters: Arc<Counters>) -> Pipeline {
        let p = Pipeline {
            tracker,
            quality: Quality::new(),
            router,
            bus,
            counters,
            emitter: None,
            outputs: Vec::new(),
            bad_events: RateLimit::new(Duration::from_secs(10)),
            crash_state: None,
            warned_invisible: false,
            on_janus_started: None,
        };
        p.publish();
        p
    }

    /// Calls `f` when Janus's core `started` event comes.
    pub fn on_janus_started(&mut self, f: Box<dyn FnOnce() + Send>) {
        self.on_janus_started = Some(f);
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn quality(&self) -> &Quality {
        &self.quality
    }

    /// How many media and WebRTC events the intake shed before the next
    /// event handled (see `Outlet::shed_before_last`).
    pub fn set_shed(&mut self, shed: u64) {
        self.quality.set_shed(shed);
    }

    /// Keeps the open sessions on disk from now on, after ending those a
    /// previous run left open (reason `gateway_restart`, at the last time
    /// they were seen), except those whose ending the JSON Lines file at
    /// `file` already holds. Runs before any event of this run.
    pub fn recover(&mut self, crash_state: Checkpoints, recovered: Recovered, file: Option<&Path>) {
        if let Some(e) = &recovered.emitter {
            self.emitter.get_or_insert_with(|| e.clone());
        }
        self.crash_state = Some(crash_state);
        // Opening the store wrote a new snapshot.
        self.counters.checkpointed_at_us.store(now_us(), Relaxed);
        let ids: IdSet<u64> = recovered.sessions.iter().map(|s| s.session_id).collect();
        let written = match file {
            Some(path) => crash_state::endings_in_file(path, recovered.file_position, &ids)
                .unwrap_or_else(|e| {
                    crate::jlog!(
                        Warn,
                        "crash recovery: cannot read {} to find endings already written ({e}); every session left open gets a gateway_restart ending",
                        path.display()
                    );
                    IdSet::default()
                }),
            None => IdSet::default(),
        };
        let (mut ended, mut repeated) = (0u64, 0u64);
        for s in &recovered.sessions {
            if written.contains(&s.session_id) {
                // Written by the previous run just before it died: ended.
                self.persist(|st| st.ended(s.session_id));
                continue;
            }
            if let Some(decided) = &s.ending {
                // Decided before the crash, and maybe delivered by a sink:
                // the same ending again, never another one. It stays
                // decided in the store (the snapshot of this run has it).
                let reason = Reason::parse(&decided.reason).unwrap_or(Reason::GatewayRestart);
                let ending = Ending::new(s.session_id, reason, s.last_seen, true);
                self.tracker.end_unseen(ending);
                let route = self.route(OutEvent::new(
                    types::SESSION,
                    true,
                    Some(s.session_id),
                    decided.json.clone(),
                ));
                self.unacknowledged(route, s.session_id);
                repeated += 1;
                continue;
            }
            let mut ending = Ending::new(s.session_id, Reason::GatewayRestart, s.last_seen, true);
            ending.created = Some(s.created);
            ending.transport = s
                .transport
                .as_ref()
                .map(|(m, id)| self.tracker.transport_key_for(m, id));
            self.tracker.end_unseen(ending);
            self.synthesize(&ending, false);
            ended += 1;
        }
        self.counters.recovered.fetch_add(ended, Relaxed);
        self.counters
            .recovered_written
            .fetch_add(written.len() as u64, Relaxed);
        self.counters
            .recovered_repeated
            .fetch_add(repeated, Relaxed);
        if !recovered.sessions.is_empty() {
            crate::jlog!(
                Warn,
                "the previous run did not stop cleanly: {ended} sessions it left open ended with reason gateway_restart ({} had their ending written already, {repeated} were ending when it died: their ending is sent again as it was)",
                written.len()
            );
        }
        self.flush();
        self.publish();
    }

    /// Answers the Admin API.
    pub fn control(&mut self, c: Control) {
        match c {
            Control::Sessions {
                offset,
                limit,
                reply,
            } => {
                let page = self.tracker.sessions_page(offset, limit);
                let _ = reply.send((self.tracker.live_sessions(), page));
            }
            Control::Settle { ms, reply } => {
                self.tracker.set_settle_us((ms as i64).saturating_mul(1000));
                self.publish();
                let _ = reply.send(());
            }
        }
    }

    /// Applies a state-store write, reporting failures (rate-limited);
    /// false when it failed.
    fn persist(&mut self, what: impl FnOnce(&mut SessionStore) -> std::io::Result<()>) -> bool {
        let Some(st) = &mut self.crash_state else {
            return true;
        };
        let result = what(&mut st.sessions);
        if let Err(e) = &result {
            self.counters.state_errors.fetch_add(1, Relaxed);
            if let Some(more) = st.errors.allow() {
                crate::jlog!(
                    Err,
                    "crash-recovery state: {e} ({more} more failures since the last report)"
                );
            }
        }
        result.is_ok()
    }

    /// Handles one event (its JSON text, as Janus serialised it). The text
    /// is checked and decoded once; what is forwarded is that text, and what
    /// the sinks need of it (type, session, timestamp) goes with it.
    pub fn handle(&mut self, bytes: &[u8]) {
        self.counters.processed.fetch_add(1, Relaxed);
        #[cfg(feature = "fault-injection")]
        crate::faults::on_worker_event();
        let decoded = janus::utf8(bytes).and_then(|text| Ok((text, janus::decode_text(text)?)));
        let (text, facts) = match decoded {
            Ok(d) => d,
            Err(e) => {
                self.counters.decode_errors.fetch_add(1, Relaxed);
                self.counters.count_type(0);
                if let Some(more) = self.bad_events.allow() {
                    crate::jlog!(
                        Warn,
                        "event that is not a Janus event object ({e}); forwarded as it is to sinks taking all events ({more} more since the last report)"
                    );
                }
                // Maybe not even UTF-8: the one copy that must repair it.
                let raw = String::from_utf8_lossy(bytes).into_owned();
                self.route(OutEvent::new(0, false, None, raw));
                return;
            }
        };
        self.counters.count_type(facts.ty);
        if matches!(facts.kind, Kind::CoreStartup(_))
            && let Some(started) = self.on_janus_started.take()
        {
            started();
        }
        if let Some(e) = facts.emitter.as_deref()
            && self.emitter.as_deref() != Some(e)
        {
            self.emitter = Some(e.to_string());
            if let Some(st) = &mut self.crash_state {
                st.sessions.set_emitter(e);
            }
        }
        // Endings go on Janus's bus until shutdown is seen, and the shutdown
        // endings themselves while the shutdown event is processed.
        let may_inject = !self.tracker.is_shut_down() || matches!(facts.kind, Kind::CoreShutdown);
        let mut outputs = std::mem::take(&mut self.outputs);
        outputs.clear();
        self.tracker.observe(&facts, &mut outputs);
        self.quality
            .observe(&facts, |sid| self.tracker.is_open(sid));
        if let Some(sid) = facts.session_id
            && self.crash_state.is_some()
        {
            if matches!(facts.kind, Kind::SessionCreated { .. }) {
                if let Some((created, transport)) = self.tracker.origin(sid) {
                    let names = transport.map(|k| self.tracker.transport_names(k));
                    let names = names.as_ref().map(|(m, id)| (*m, id.as_str()));
                    let st = self.crash_state.as_mut().expect("checked above");
                    if let Err(e) = st.sessions.created(sid, created, names) {
                        self.persist(|_| Err(e));
                    }
                }
            } else if let Some(st) = &mut self.crash_state {
                st.sessions.seen(sid, facts.timestamp);
            }
        }
        let lifecycle = facts.kind.is_lifecycle();
        for out in outputs.drain(..) {
            match out {
                Output::Forward => {
                    self.route(OutEvent::stamped(
                        facts.ty,
                        lifecycle,
                        facts.session_id,
                        facts.timestamp,
                        text.to_owned(),
                    ));
                }
                Output::ForwardEnding(ending) => {
                    let quality = self.quality_of(&ending);
                    let names = ending.transport.map(|k| self.tracker.transport_names(k));
                    let names = names.as_ref().map(|(m, id)| (*m, id.as_str()));
                    let json = output::annotate_destroyed(text, &ending, names, quality.as_ref())
                        .unwrap_or_else(|| text.to_owned());
                    self.decide(&ending, &json);
                    let route = self.route(OutEvent::stamped(
                        facts.ty,
                        true,
                        facts.session_id,
                        facts.timestamp,
                        json,
                    ));
                    self.unacknowledged(route, ending.session_id);
                    self.observe_ending(&ending, quality.as_ref());
                }
                Output::Duplicate { .. } | Output::Echo { .. } => {
                    self.counters.suppressed.fetch_add(1, Relaxed);
                }
                Output::Synthesize(ending) => self.synthesize(&ending, may_inject),
            }
        }
        self.outputs = outputs;
        // Records of sessions the tracker dropped without an ending
        // (evicted at max_sessions): swept once they are a few more than
        // the open sessions, so that a sweep's cost is spread over many events.
        let live = self.tracker.live_sessions();
        if self.quality.len() > live + live / 8 + 64 {
            let tracker = &self.tracker;
            self.quality.retain(|sid| tracker.is_open(sid));
        }
        if !self.warned_invisible && !self.tracker.janus().disconnects_visible {
            self.warned_invisible = true;
            crate::jlog!(
                Warn,
                "a WebSocket session was created on a connection that never reported `connected`: the WebSockets transport has events = false, so closed connections are invisible to event handlers and the sessions they end get their destroyed only at timeout or shutdown"
            );
        }
    }

    /// Moves the tracker's clock to `now_us`, closing due settle windows.
    pub fn advance(&mut self, now_us: i64) {
        let mut outputs = std::mem::take(&mut self.outputs);
        outputs.clear();
        self.tracker.advance(now_us, &mut outputs);
        let may_inject = !self.tracker.is_shut_down();
        self.emit_synthetic(&mut outputs, may_inject);
        self.outputs = outputs;
        self.flush();
        if let Some(st) = &mut self.crash_state
            && Instant::now() >= st.next
        {
            st.next = Instant::now() + st.every;
            if self.persist(|s| s.checkpoint()) {
                // The wall clock (`now_us` here is the tracker's clock).
                self.counters
                    .checkpointed_at_us
                    .store(self::now_us(), Relaxed);
            }
        }
    }

    /// When the worker must wake up next to close a settle window.
    pub fn next_deadline(&self) -> Option<i64> {
        self.tracker.next_deadline()
    }

    /// Stops: ends the sessions still open if Janus's `shutdown` event was not
    /// seen (reason `shutdown`, now), then delivers and flushes every sink
    /// within `deadline`, and marks the crash state clean if every ending
    /// reached the sinks that promise it.
    pub fn finish(&mut self, now_us: i64, deadline: Instant) -> bool {
        if !self.tracker.is_shut_down() {
            let mut outputs = std::mem::take(&mut self.outputs);
            outputs.clear();
            self.tracker.shutdown(now_us, &mut outputs);
            // destroy() has begun: Janus's events thread is gone, no injection.
            self.emit_synthetic(&mut outputs, false);
            self.outputs = outputs;
        }
        self.flush();
        self.publish();
        let closed = self.router.close_all(deadline);
        self.acknowledge();
        self.persist(|s| s.close());
        closed
    }

    /// Publishes the tracker's counters for the Admin API.
    pub fn publish(&self) {
        let cfg = self.tracker.config();
        self.counters.set_tracker(TrackerSnapshot {
            stats: self.tracker.stats().clone(),
            live_sessions: self.tracker.live_sessions(),
            reclaim_session_timeout: cfg.reclaim_session_timeout,
            settle_ms: (cfg.settle_us / 1000) as u64,
            shut_down: self.tracker.is_shut_down(),
            janus: self.tracker.janus(),
            unacknowledged: self
                .crash_state
                .as_ref()
                .map_or(0, |c| c.unacknowledged.len()),
            handles_by_plugin: self.tracker.handles_by_plugin(),
            connections_by_transport: self.tracker.connections_by_transport(),
        });
    }

    fn emit_synthetic(&mut self, outputs: &mut Vec<Output>, may_inject: bool) {
        for out in outputs.drain(..) {
            if let Output::Synthesize(ending) = out {
                self.synthesize(&ending, may_inject);
            }
        }
    }

    /// Sends a synthetic ending to the sinks, and to Janus's bus if due.
    fn synthesize(&mut self, ending: &Ending, may_inject: bool) {
        let quality = self.quality_of(ending);
        let names = ending.transport.map(|k| self.tracker.transport_names(k));
        let names = names.as_ref().map(|(m, id)| (*m, id.as_str()));
        let json = output::destroyed_json(self.emitter.as_deref(), ending, names, quality.as_ref());
        self.decide(ending, &json);
        let route = self.route(OutEvent::stamped(
            types::SESSION,
            true,
            Some(ending.session_id),
            ending.timestamp,
            json,
        ));
        self.unacknowledged(route, ending.session_id);
        self.observe_ending(ending, quality.as_ref());
        if self.bus.inject(ending, may_inject) {
            self.tracker.mark_injected(ending.session_id);
        }
    }

    /// The quality record of an ending, taken from the aggregator: for a
    /// session seen created in this run; none for one a previous run saw
    /// (`gateway_restart`: its media died with that run) or one never seen
    /// created.
    fn quality_of(&mut self, ending: &Ending) -> Option<Summary> {
        let summary = self.quality.finish(ending.session_id, ending.timestamp);
        (ending.created.is_some() && ending.reason != Reason::GatewayRestart).then_some(summary)
    }

    /// How long an ended session lived, for the duration histogram, and
    /// how its media went, for the quality histograms.
    fn observe_ending(&self, ending: &Ending, quality: Option<&Summary>) {
        if let Some(us) = ending.duration_us() {
            self.counters.durations.observe(ending.reason, us);
        }
        if let Some(q) = quality {
            self.counters.quality.observe(q);
        }
    }

    fn route(&mut self, ev: Arc<OutEvent>) -> u64 {
        self.router.stage(ev)
    }

    /// An ending is about to be routed: the crash state keeps it (written
    /// before any sink is offered it, see [`Pipeline::flush`]), so that a
    /// crash before it is acknowledged repeats it rather than ending the
    /// session another way.
    fn decide(&mut self, ending: &Ending, json: &str) {
        if let Some(st) = &mut self.crash_state {
            st.sessions
                .decided(ending.session_id, ending.reason.as_str(), json);
        }
    }

    /// An ending was routed: the crash state records it once the sinks that
    /// promise it have it.
    fn unacknowledged(&mut self, route: u64, session_id: u64) {
        if let Some(st) = &mut self.crash_state {
            st.unacknowledged.push_back((route, session_id));
        }
    }

    /// Records in the crash state the endings every promising sink has.
    fn acknowledge(&mut self) {
        let Some(st) = &self.crash_state else {
            return;
        };
        if st.unacknowledged.is_empty() {
            return;
        }
        let (through, position) = self.router.settled();
        let mut done = Vec::new();
        if let Some(st) = &mut self.crash_state {
            while let Some(&(route, sid)) = st.unacknowledged.front() {
                if route > through {
                    break;
                }
                st.unacknowledged.pop_front();
                done.push(sid);
            }
        }
        if done.is_empty() {
            return;
        }
        for sid in done {
            self.persist(|s| s.ended(sid));
        }
        if let Some(p) = position {
            self.persist(|s| s.file_position(p));
        }
    }

    /// Hands the events handled so far to the sinks (the worker calls it
    /// when the channel is empty, and at least every [`FLUSH_EVERY`] events),
    /// and records the endings the sinks have acknowledged.
    pub fn flush(&mut self) {
        // The endings decided, on disk before any sink has them.
        self.persist(|s| s.write_decided());
        let n = self.router.flush();
        self.counters.forwarded.fetch_add(n, Relaxed);
        self.acknowledge();
    }
}

/// The running worker thread.
pub struct WorkerHandle(Spawned);

/// Longest sleep while idle: also how stale `info`'s tracker counters can be.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// Events handled between publications of the tracker's counters.
const PUBLISH_EVERY: u32 = 1024;
/// Events handled before they are handed to the sinks, at most.
pub const FLUSH_EVERY: usize = 256;
/// While events keep coming, the worker naps this long when the queue runs
/// empty instead of sleeping until the events thread wakes it: Janus's
/// events thread then never has to wake the worker (a futex wake and a
/// context switch per event), and the worker takes the events in batches.
/// At most this much latency; Admin requests cut a nap short.
const NAP: Duration = Duration::from_millis(1);
/// An event within this long of the queue running empty means events keep
/// coming.
const BUSY: Duration = Duration::from_millis(5);

/// Starts the worker. It runs until the intake is dropped, then drains
/// what is left, finishes the pipeline within `shutdown_timeout` and stops.
pub fn spawn<T: Inbound>(
    outlet: Outlet<T>,
    control: Receiver<Control>,
    pipeline: Pipeline,
    shutdown_timeout: Duration,
) -> std::io::Result<WorkerHandle> {
    Spawned::spawn("lcevh worker".into(), move || {
        run(outlet, control, pipeline, shutdown_timeout)
    })
    .map(WorkerHandle)
}

fn run<T: Inbound>(
    mut outlet: Outlet<T>,
    control: Receiver<Control>,
    mut pipeline: Pipeline,
    shutdown_timeout: Duration,
) {
    outlet.bind_to_current_thread();
    let counters = pipeline.counters.clone();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut since_publish = 0u32;
    let guarded = |pipeline: &mut Pipeline, f: &mut dyn FnMut(&mut Pipeline)| {
        if catch_unwind(AssertUnwindSafe(|| f(pipeline))).is_err() {
            counters.internal_errors.fetch_add(1, Relaxed);
            crate::jlog!(
                Err,
                "internal error (panic) in the worker; the event was skipped"
            );
        }
    };
    let mut busy = false;
    loop {
        // Admin requests first: the caller waits for the answer. Each one
        // comes with a wake-up (Gauge::wake).
        while let Ok(c) = control.try_recv() {
            let mut c = Some(c);
            guarded(&mut pipeline, &mut |p| {
                if let Some(c) = c.take() {
                    p.control(c);
                }
            });
        }
        let ev = match outlet.receive() {
            Next::Event(ev) => ev,
            Next::Closed => break,
            Next::Empty => {
                let waiting = Instant::now();
                if busy {
                    // Not announced to the events thread: it does not wake us.
                    std::thread::park_timeout(NAP);
                }
                if outlet.is_empty() {
                    let now = now_us();
                    let wait = match pipeline.next_deadline() {
                        Some(at) if at <= now => Duration::ZERO,
                        Some(at) => Duration::from_micros((at - now) as u64).min(IDLE_TICK),
                        None => IDLE_TICK,
                    };
                    if !wait.is_zero() {
                        outlet.wait(wait);
                    }
                }
                if outlet.is_empty() {
                    // Woken by the clock or an Admin request: close due
                    // settle windows.
                    busy = false;
                    guarded(&mut pipeline, &mut |p| p.advance(now_us()));
                    pipeline.publish();
                } else {
                    busy = waiting.elapsed() < BUSY;
                }
                continue;
            }
        };
        pipeline.set_shed(outlet.shed_before_last());
        if ev.write_json(&mut buf) {
            guarded(&mut pipeline, &mut |p| p.handle(&buf));
        } else {
            counters.processed.fetch_add(1, Relaxed);
            counters.decode_errors.fetch_add(1, Relaxed);
        }
        drop(ev);
        since_publish += 1;
        // Wall-clock time only moves the tracker once the queue is empty:
        // an event still queued may be the native ending that makes a
        // synthetic one unnecessary.
        let empty = outlet.is_empty();
        if empty {
            guarded(&mut pipeline, &mut |p| p.advance(now_us()));
        } else if pipeline.router.staged() >= FLUSH_EVERY {
            guarded(&mut pipeline, &mut |p| p.flush());
        }
        if since_publish >= PUBLISH_EVERY || empty {
            pipeline.publish();
            since_publish = 0;
        }
    }
    let deadline = Instant::now() + shutdown_timeout;
    guarded(&mut pipeline, &mut |p| {
        p.finish(now_us(), deadline);
    });
}

impl WorkerHandle {
    /// Waits for the worker to finish (it stops once the intake is dropped),
    /// at most `timeout`. Returns false when it did not finish in time; the
    /// thread is then left to finish on its own.
    pub fn join(mut self, timeout: Duration) -> bool {
        self.0.join_within(timeout)
    }
}
