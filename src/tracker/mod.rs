//! The lifecycle tracker: every session that was `created` ends with exactly
//! one `destroyed`, carrying the reason it ended.
//!
//! A plain state machine over decoded events. It has no FFI, no threads and
//! no clock of its own: time comes in with the events (Janus's timestamps) and
//! with [`Tracker::advance`], which the worker calls when it is idle. Recorded
//! traces can therefore be replayed through it with exact expectations.
//!
//! How each ending is recognised (see the README's table for the Janus side):
//!
//! | what the tracker sees | what it forwards |
//! | --- | --- |
//! | native `destroyed` | that event, with `reason: request` (or `transport_gone` after a disconnect) |
//! | native `timeout` | the `timeout`, then a synthetic `destroyed` (`timeout`, or `reclaim_expired` after a disconnect with reclaim on) |
//! | transport `disconnected`, reclaim off, Janus < 1.3.2 | after `settle` with no native ending: synthetic `destroyed`, `transport_gone` |
//! | transport `disconnected`, reclaim off, Janus >= 1.3.2 | Janus's own `destroyed` (`transport_gone`); none within `settle` means another connection had claimed the session: it lives on |
//! | transport `disconnected`, reclaim on | nothing yet: the session waits for its native `timeout` (`reclaim_expired`); none by `reclaim_session_timeout` + two watchdog ticks + `settle` means it was claimed: it lives on (`claimed`) |
//! | native `timeout` of a `claimed` session | `reclaim_expired` (the claim withdrawn, counted `claims_retracted`) when it came less than `session_timeout` (less a watchdog tick) after the close or the latest request since, or `session_timeout` is 0: a claimed session cannot idle out that soon, so Janus's watchdog was late; otherwise (or `session_timeout` unknown) `timeout` |
//! | core `shutdown` | a synthetic `destroyed`, `shutdown`, for every open session |
//! | a second ending for an ended session | nothing (counted as a duplicate) |
//!
//! What it learns about Janus, from the stream only:
//! - the version (core `started`), and whether the core ends transport-gone
//!   sessions itself: version >= 1.3.2, or a native `destroyed` seen for a
//!   session whose transport was gone;
//! - `reclaim_session_timeout` (core `started`), unless the config pins it;
//! - `session_timeout` (core `started`): how soon a claimed session can
//!   idle out;
//! - which transport instances are connections (they report `connected`):
//!   on Janus >= 1.3.2 with reclaim off, Janus ends a connection's sessions
//!   itself when it closes, shutdown included ([`Ending::janus_ends_too`]);
//! - whether WebSocket disconnects are visible at all (a WebSocket session
//!   whose connection never reported `connected`: the transport's `events`
//!   are off).

mod session;

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, VecDeque};

use crate::janus::{CoreCounts, Facts, IdMap, Kind, Startup, TransportRef, Version};
pub use crate::reason::Reason;
pub use session::TransportKey;
use session::{Bound, Session, State};

/// The tracker's maps are keyed by ids a client may choose (see
/// [`IdMap`]: fixed hashing in fuzzing builds only).
type Map<K, V> = IdMap<K, V>;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub session_id: u64,
    pub reason: Reason,
    /// When the ending happened (Janus real time, µs): the timestamp of the
    /// native ending, or of the `disconnected`/`timeout`/`shutdown` event that
    /// caused a synthetic one.
    pub timestamp: i64,
    /// True when the tracker made the `destroyed`, false when Janus did.
    pub synthetic: bool,
    /// When the session was created (Janus real time, µs), if known.
    pub created: Option<i64>,
    /// The transport instance the session was created on, if known
    /// ([`Tracker::transport_names`] gives its names).
    pub transport: Option<TransportKey>,
    /// For a synthetic ending: Janus will put its own `destroyed` for this
    /// session on its bus (a connection's session at shutdown on Janus >=
    /// 1.3.2 with reclaim off), so the handler must not inject one.
    pub janus_ends_too: bool,
}

impl Ending {
    /// An ending with nothing known of the session but its id.
    pub fn new(session_id: u64, reason: Reason, timestamp: i64, synthetic: bool) -> Ending {
        Ending {
            session_id,
            reason,
            timestamp,
            synthetic,
            created: None,
            transport: None,
            janus_ends_too: false,
        }
    }

    /// How long the session lived (µs), when its creation is known.
    pub fn duration_us(&self) -> Option<i64> {
        self.created
            .map(|c| self.timestamp.saturating_sub(c).max(0))
    }
}

/// What to do, in order, after observing an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Forward the observed event unchanged.
    Forward,
    /// Forward the observed event (a native `destroyed`) annotated with its ending.
    ForwardEnding(Ending),
    /// Do not forward the observed event: a second ending for a session that
    /// has already ended.
    Duplicate { session_id: u64 },
    /// Do not forward the observed event: our own injected `destroyed`,
    /// back from Janus's event bus, for a session whose ending was already sent.
    Echo { session_id: u64 },
    /// Emit a `destroyed` the tracker made.
    Synthesize(Ending),
}

/// Settings of the tracker (`general.*` in the handler's config).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// How long after a transport `disconnected` a native ending may still
    /// arrive before the tracker ends the session itself (µs).
    pub settle_us: i64,
    /// Janus's `reclaim_session_timeout` in seconds (0: reclaim off).
    pub reclaim_session_timeout: u64,
    /// True when the handler's config set `reclaim_session_timeout` itself:
    /// then the value Janus reports at startup does not replace it.
    pub reclaim_pinned: bool,
    /// Most sessions tracked at once; beyond it the oldest is evicted.
    pub max_sessions: usize,
    /// How long an ended session is remembered to recognise late duplicates (µs).
    pub tombstone_us: i64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            settle_us: 500_000,
            reclaim_session_timeout: 0,
            reclaim_pinned: false,
            max_sessions: 1_000_000,
            tombstone_us: 120_000_000,
        }
    }
}

/// Counters the tracker keeps (reported by the Admin API `info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub created: u64,
    /// Endings by reason, indexed like [`Reason::ALL`].
    pub endings: [u64; 6],
    pub synthetic: u64,
    /// Of `endings`, the synthetic ones, by reason.
    pub synthetic_by_reason: [u64; 6],
    pub duplicates: u64,
    pub echoes: u64,
    /// Endings (or events) for sessions the tracker never saw created.
    pub unknown_sessions: u64,
    /// Sessions dropped from tracking because `max_sessions` was reached.
    pub evicted: u64,
    /// Sessions found claimed by another connection after their own
    /// connection closed (no ending from Janus when one was due). Never
    /// decreases: see `claims_retracted`.
    pub claimed: u64,
    /// Of `claimed`, the claims withdrawn: a reclaim timeout came for the
    /// session after all, sooner after its close than Janus could have idled
    /// out a claimed session (`session_timeout`), and it ended
    /// `reclaim_expired`. Janus's watchdog was late (a busy machine), or the
    /// claiming connection closed too; the stream cannot tell which.
    pub claims_retracted: u64,
}

/// What the tracker learned about the Janus it runs in (Admin `info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JanusView {
    /// From the core `started` event.
    pub version: Option<Version>,
    /// Janus's `session_timeout` in seconds (0: sessions never time out),
    /// from the core `started` event.
    pub session_timeout: Option<u64>,
    pub server_name: Option<String>,
    /// Janus ends a session itself when its transport goes away (reclaim
    /// off): version >= 1.3.2, or seen happen.
    pub ends_transport_gone: bool,
    /// False once a WebSocket session was created on a connection that never
    /// reported `connected`: the transport's events are off.
    pub disconnects_visible: bool,
    /// Transport instances open (reported `connected`, not yet `disconnected`).
    pub connections: usize,
    /// The core's own counts from its latest `status: update` event (Janus
    /// >= 1.2; None until one is seen).
    pub core: Option<CoreCounts>,
}

/// A live session as the Admin API `sessions` request lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session_id: u64,
    pub transport: Option<(String, String)>,
    pub created: i64,
    pub last_event: i64,
    pub state: &'static str,
    pub handles: Vec<(u64, String)>,
}

struct Tombstone {
    reason: Reason,
    /// Set when our `destroyed` for it went onto Janus's bus and has not come back yet.
    awaiting_echo: bool,
}

/// The lifecycle state machine. See the module documentation.
pub struct Tracker {
    config: TrackerConfig,
    sessions: Map<u64, Session>,
    by_transport: Map<TransportKey, Bound>,
    /// Transport module names, interned: sessions hold an index.
    modules: Vec<Box<str>>,
    /// Plugin package names, interned: handles hold an index.
    plugins: Vec<Box<str>>,
    /// Session ids in creation order (ended ones are skipped lazily).
    order: VecDeque<u64>,
    /// Settle- and reclaim-window deadlines: (deadline, session, disconnect
    /// sequence, when the window began).
    deadlines: BinaryHeap<Reverse<(i64, u64, u32, i64)>>,
    tombstones: Map<u64, Tombstone>,
    /// Tombstones in the order they were made, with the clock at that time.
    tombstone_order: VecDeque<(i64, u64)>,
    next_seq: u32,
    /// The latest time seen (event timestamps and advance()).
    clock: i64,
    shut_down: bool,
    stats: TrackerStats,
    /// Open transport instances that reported `connected`, and when.
    connections: Map<TransportKey, i64>,
    /// By module index: the module's instances report `disconnected`.
    reports_disconnects: Vec<bool>,
    /// The creation transport of sessions whose binding changed (claimed):
    /// billing names the transport a session was created on.
    origins: Map<u64, TransportKey>,
    janus: JanusView,
    /// Open handles of tracked sessions, by plugin index.
    handles_open: Vec<u64>,
    /// Open connections, by transport module index.
    connections_open: Vec<u64>,
}

/// How long Janus's watchdog takes between checks (janus.c: every 2 s).
const WATCHDOG_TICK_US: i64 = 2_000_000;
/// Transport modules that end their connections' sessions through the core
/// when a connection closes, shutdown included (per Janus's sources:
/// WebSockets, Unix sockets, WebTransport); others are learned when they
/// report `disconnected`.
const CONNECTION_TRANSPORTS: [&str; 3] = [
    "janus.transport.websockets",
    "janus.transport.pfunix",
    "janus.transport.webtransport",
];
const WEBSOCKETS: &str = "janus.transport.websockets";

impl Tracker {
    pub fn new(config: TrackerConfig) -> Tracker {
        Tracker {
            config,
            sessions: Map::default(),
            by_transport: Map::default(),
            modules: Vec::new(),
            plugins: Vec::new(),
            order: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            tombstones: Map::default(),
            tombstone_order: VecDeque::new(),
            next_seq: 0,
            clock: i64::MIN,
            shut_down: false,
            stats: TrackerStats::default(),
            connections: Map::default(),
            reports_disconnects: Vec::new(),
            origins: Map::default(),
            janus: JanusView {
                disconnects_visible: true,
                ..JanusView::default()
            },
            handles_open: Vec::new(),
            connections_open: Vec::new(),
        }
    }

    /// Open handles of the tracked sessions, by plugin package name, in the
    /// order the plugins were first seen (one entry per plugin ever seen).
    pub fn handles_by_plugin(&self) -> Vec<(String, u64)> {
        by_name(&self.plugins, &self.handles_open)
    }

    /// Open connections (reported `connected`, not yet `disconnected`), by
    /// transport module name (one entry per module ever seen).
    pub fn connections_by_transport(&self) -> Vec<(String, u64)> {
        by_name(&self.modules, &self.connections_open)
    }

    /// What the tracker learned about Janus so far.
    pub fn janus(&self) -> JanusView {
        JanusView {
            connections: self.connections.len(),
            ..self.janus.clone()
        }
    }

    /// The module and instance id of a transport key.
    pub fn transport_names(&self, key: TransportKey) -> (&str, String) {
        let module = self.modules.get(key.module as usize).map_or("", |m| &**m);
        (module, key.id_string())
    }

    /// The key for a transport instance named by its module and id (for
    /// sessions recovered from a previous run).
    pub fn transport_key_for(&mut self, module: &str, id: &str) -> TransportKey {
        self.transport_key(&TransportRef {
            module: module.into(),
            id: id.into(),
        })
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Changes the settle window for disconnects seen from now on.
    pub fn set_settle_us(&mut self, settle_us: i64) {
        self.config.settle_us = settle_us.max(0);
    }

    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the core `shutdown` event (or [`Tracker::shutdown`]) was seen.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// The earliest pending settle-window deadline, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.deadlines.peek().map(|Reverse((at, ..))| *at)
    }

    /// Observes one event and appends what to do, in order, to `out`: first
    /// the deadlines that passed before it, then the event itself, then any
    /// ending it causes.
    pub fn observe(&mut self, ev: &Facts<'_>, out: &mut Vec<Output>) {
        self.advance(ev.timestamp, out);
        match &ev.kind {
            Kind::SessionCreated { transport } => self.on_created(ev, transport.as_ref(), out),
            Kind::SessionDestroyed => self.on_native_destroyed(ev, out),
            Kind::SessionTimeout => self.on_native_timeout(ev, out),
            Kind::TransportConnected { transport } => {
                let key = self.transport_key(transport);
                if self.connections.insert(key, ev.timestamp).is_none() {
                    add(&mut self.connections_open, key.module, 1);
                }
                out.push(Output::Forward);
            }
            Kind::TransportDisconnected { transport } => {
                self.on_disconnected(ev.timestamp, transport);
                out.push(Output::Forward);
            }
            Kind::CoreShutdown => {
                out.push(Output::Forward);
                self.shutdown(ev.timestamp, out);
            }
            Kind::CoreStartup(startup) => {
                self.on_startup(startup);
                out.push(Output::Forward);
            }
            Kind::CoreStatus(counts) => {
                self.janus.core = Some(*counts);
                out.push(Output::Forward);
            }
            Kind::HandleAttached { plugin } => {
                self.on_attached(ev, plugin);
                out.push(Output::Forward);
            }
            Kind::RemoteJsep => {
                self.touch(ev, true);
                out.push(Output::Forward);
            }
            Kind::HandleDetached => {
                if let (Some(sid), Some(hid)) = (ev.session_id, ev.handle_id)
                    && let Some(s) = self.sessions.get_mut(&sid)
                {
                    if let Some(h) = s.handles.iter().find(|h| h.id == hid) {
                        sub(&mut self.handles_open, h.plugin, 1);
                    }
                    s.handles.remove(hid);
                    s.last_event = s.last_event.max(ev.timestamp);
                }
                out.push(Output::Forward);
            }
            Kind::Other => {
                self.touch(ev, false);
                out.push(Output::Forward);
            }
        }
    }

    /// Moves the clock to `now` (µs) and acts on the deadlines that passed:
    /// settle windows and reclaim windows. Time never goes backwards.
    pub fn advance(&mut self, now: i64, out: &mut Vec<Output>) {
        if now <= self.clock {
            return;
        }
        self.clock = now;
        while let Some(&Reverse((deadline, sid, seq, window))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let Some(session) = self.sessions.get(&sid) else {
                continue;
            };
            match session.state {
                State::Disconnected { at, seq: s } if s == seq => {
                    if self.janus.ends_transport_gone {
                        // Janus ends a transport-gone session itself; it did
                        // not: the session had moved to another connection.
                        self.claimed(sid, None);
                    } else {
                        let ending = self.ending_of(sid, Reason::TransportGone, at, true);
                        self.end(sid, ending);
                        out.push(Output::Synthesize(ending));
                    }
                }
                State::AwaitingReclaim { seq: s, .. } if s == seq => {
                    // No timeout by the latest time the watchdog ends an
                    // unclaimed session: another connection claimed it.
                    self.claimed(sid, Some(window));
                }
                _ => {}
            }
        }
        let horizon = now.saturating_sub(self.config.tombstone_us);
        while let Some(&(at, sid)) = self.tombstone_order.front() {
            if at > horizon && self.tombstone_order.len() <= self.config.max_sessions {
                break;
            }
            self.tombstone_order.pop_front();
            self.tombstones.remove(&sid);
        }
    }

    /// Ends every open session with `reason: shutdown` at `timestamp`, in the
    /// order they were created. Later endings count as duplicates.
    pub fn shutdown(&mut self, timestamp: i64, out: &mut Vec<Output>) {
        self.shut_down = true;
        self.end_all(Reason::Shutdown, timestamp, out);
    }

    /// Ends every open session with the given reason, in creation order.
    pub fn end_all(&mut self, reason: Reason, timestamp: i64, out: &mut Vec<Output>) {
        let order = std::mem::take(&mut self.order);
        for sid in order {
            if self.sessions.contains_key(&sid) {
                let mut ending = self.ending_of(sid, reason, timestamp, true);
                ending.janus_ends_too = reason == Reason::Shutdown && self.janus_ends_at_close(sid);
                self.end(sid, ending);
                out.push(Output::Synthesize(ending));
            }
        }
        self.deadlines.clear();
    }

    /// Records the ending of a session from before this run (crash recovery
    /// ends it with `gateway_restart`): counted like any ending, and
    /// remembered so that a late duplicate is recognised.
    pub fn end_unseen(&mut self, ending: Ending) {
        if let Some(session) = self.sessions.remove(&ending.session_id) {
            self.unindex(ending.session_id, &session);
        }
        self.count_ending(ending);
        self.bury(ending.session_id, ending.reason);
    }

    /// Whether the session is tracked as open.
    pub fn is_open(&self, session_id: u64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    /// Marks an ending as put on Janus's bus: the `destroyed` that comes back
    /// for it is an echo, not a duplicate.
    pub fn mark_injected(&mut self, session_id: u64) {
        if let Some(t) = self.tombstones.get_mut(&session_id) {
            t.awaiting_echo = true;
        }
    }

    /// The reason a recently ended session ended with, if it is remembered.
    pub fn ended_reason(&self, session_id: u64) -> Option<Reason> {
        self.tombstones.get(&session_id).map(|t| t.reason)
    }

    /// The creation time and transport of an open session.
    pub fn origin(&self, session_id: u64) -> Option<(i64, Option<TransportKey>)> {
        let s = self.sessions.get(&session_id)?;
        let transport = self.origins.get(&session_id).copied().or(s.transport);
        Some((s.created, transport))
    }

    /// A page of live sessions in creation order.
    pub fn sessions_page(&self, offset: usize, limit: usize) -> Vec<SessionView> {
        self.order
            .iter()
            .filter_map(|sid| self.sessions.get(sid).map(|s| (*sid, s)))
            .skip(offset)
            .take(limit)
            .map(|(sid, s)| SessionView {
                session_id: sid,
                transport: if s.state.is_bound() {
                    s.transport.map(|t| {
                        let (m, id) = self.transport_names(t);
                        (m.to_string(), id)
                    })
                } else {
                    None
                },
                created: s.created,
                last_event: s.last_event,
                state: if self.origins.contains_key(&sid) && s.state == State::Live {
                    "claimed"
                } else {
                    s.state.name()
                },
                handles: s
                    .handles
                    .iter()
                    .map(|h| (h.id, self.plugins[h.plugin as usize].to_string()))
                    .collect(),
            })
            .collect()
    }

    /// An ending of an open (or unknown) session, with what is known of it.
    fn ending_of(&self, sid: u64, reason: Reason, timestamp: i64, synthetic: bool) -> Ending {
        let mut ending = Ending::new(sid, reason, timestamp, synthetic);
        if let Some((created, transport)) = self.origin(sid) {
            ending.created = Some(created);
            ending.transport = transport;
        }
        ending
    }

    fn on_startup(&mut self, startup: &Startup) {
        if let (Some(reclaim), false) =
            (startup.reclaim_session_timeout, self.config.reclaim_pinned)
        {
            self.config.reclaim_session_timeout = reclaim;
        }
        if startup.session_timeout.is_some() {
            self.janus.session_timeout = startup.session_timeout;
        }
        if let Some(v) = startup.version {
            self.janus.version = Some(v);
            self.janus.ends_transport_gone = v >= Version::NATIVE_TRANSPORT_GONE;
        }
        if startup.server_name.is_some() {
            self.janus.server_name.clone_from(&startup.server_name);
        }
    }

    /// Whether Janus will end this open session itself when its connection
    /// closes at shutdown: Janus >= 1.3.2, reclaim off, and the session is
    /// bound to an open connection of a transport that ends its connections'
    /// sessions through the core. With the WebSockets transport's events off
    /// no connection is seen, but there a live WebSocket session is bound to
    /// an open connection all the same: had its connection closed, Janus
    /// would have ended it then.
    fn janus_ends_at_close(&self, sid: u64) -> bool {
        if !self.janus.ends_transport_gone || self.config.reclaim_session_timeout > 0 {
            return false;
        }
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        match (s.state.is_bound(), s.transport) {
            (true, Some(key)) => {
                self.closes_sessions(key.module)
                    && (self.connections.contains_key(&key)
                        || (!self.janus.disconnects_visible
                            && self.is_module(key.module, WEBSOCKETS)))
            }
            _ => false,
        }
    }

    fn is_module(&self, module: u16, name: &str) -> bool {
        self.modules
            .get(module as usize)
            .is_some_and(|m| &**m == name)
    }

    fn closes_sessions(&self, module: u16) -> bool {
        self.reports_disconnects
            .get(module as usize)
            .copied()
            .unwrap_or(false)
            || self
                .modules
                .get(module as usize)
                .is_some_and(|m| CONNECTION_TRANSPORTS.contains(&&**m))
    }

    fn on_created(
        &mut self,
        ev: &Facts<'_>,
        transport: Option<&TransportRef<'_>>,
        out: &mut Vec<Output>,
    ) {
        out.push(Output::Forward);
        let Some(sid) = ev.session_id else {
            return;
        };
        if self.sessions.contains_key(&sid) {
            return;
        }
        self.tombstones.remove(&sid);
        let key = transport.map(|t| self.transport_key(t));
        if let (Some(k), Some(t)) = (key, transport)
            && t.module == WEBSOCKETS
            && !self.connections.contains_key(&k)
            && self.janus.disconnects_visible
        {
            // A WebSocket connection opens (`connected`) before it can create
            // a session: events of the transport are off.
            self.janus.disconnects_visible = false;
        }
        let session = Session::new(key, ev.timestamp);
        if let Some(key) = key {
            self.bind(sid, key);
        }
        self.insert(sid, session);
        self.stats.created += 1;
    }

    fn bind(&mut self, sid: u64, key: TransportKey) {
        match self.by_transport.entry(key) {
            Entry::Occupied(mut o) => o.get_mut().push(sid),
            Entry::Vacant(v) => {
                v.insert(Bound::One(sid));
            }
        }
    }

    fn insert(&mut self, sid: u64, session: Session) {
        while self.sessions.len() >= self.config.max_sessions.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.sessions.remove(&oldest) {
                self.unindex(oldest, &evicted);
                self.origins.remove(&oldest);
                self.stats.evicted += 1;
            }
        }
        self.sessions.insert(sid, session);
        self.order.push_back(sid);
        // Drop ids of ended sessions from the creation order now and then.
        if self.order.len() > 2 * self.sessions.len() + 1024 {
            let sessions = &self.sessions;
            self.order.retain(|sid| sessions.contains_key(sid));
        }
    }

    fn on_native_destroyed(&mut self, ev: &Facts<'_>, out: &mut Vec<Output>) {
        let Some(sid) = ev.session_id else {
            out.push(Output::Forward);
            return;
        };
        if let Some(session) = self.sessions.get(&sid) {
            let reason = match session.state {
                // Janus 1.1.x never ends a transport-gone session itself: its
                // `destroyed` after a disconnect answers a `destroy` the
                // client sent just before closing.
                State::Disconnected { .. } if self.janus.version.is_some() => {
                    if self.janus.ends_transport_gone {
                        Reason::TransportGone
                    } else {
                        Reason::Request
                    }
                }
                State::Disconnected { .. } => {
                    // A Janus that did not say its version: this proves it
                    // ends transport-gone sessions itself.
                    self.janus.ends_transport_gone = true;
                    Reason::TransportGone
                }
                State::Live | State::AwaitingReclaim { .. } | State::Claimed { .. } => {
                    Reason::Request
                }
            };
            let ending = self.ending_of(sid, reason, ev.timestamp, false);
            self.end(sid, ending);
            out.push(Output::ForwardEnding(ending));
        } else if let Some(t) = self.tombstones.get_mut(&sid) {
            if t.awaiting_echo {
                t.awaiting_echo = false;
                self.stats.echoes += 1;
                out.push(Output::Echo { session_id: sid });
            } else {
                if t.reason == Reason::TransportGone && self.janus.version.is_none() {
                    // Janus's own ending, later than the settle window.
                    self.janus.ends_transport_gone = true;
                }
                self.stats.duplicates += 1;
                out.push(Output::Duplicate { session_id: sid });
            }
        } else {
            // Never seen created (evicted, or from before this handler ran).
            self.stats.unknown_sessions += 1;
            let ending = Ending::new(sid, Reason::Request, ev.timestamp, false);
            self.count_ending(ending);
            self.bury(sid, Reason::Request);
            out.push(Output::ForwardEnding(ending));
        }
    }

    fn on_native_timeout(&mut self, ev: &Facts<'_>, out: &mut Vec<Output>) {
        let Some(sid) = ev.session_id else {
            out.push(Output::Forward);
            return;
        };
        let reason = if let Some(session) = self.sessions.get(&sid) {
            match session.state {
                State::AwaitingReclaim { .. } => Reason::ReclaimExpired,
                State::Claimed { window } if self.reclaim_came_late(window, ev.timestamp) => {
                    // Too soon to be the claimed session idling out: its
                    // reclaim window expired, late, and it was not claimed.
                    self.stats.claims_retracted += 1;
                    Reason::ReclaimExpired
                }
                State::Live | State::Disconnected { .. } | State::Claimed { .. } => Reason::Timeout,
            }
        } else if self.tombstones.contains_key(&sid) {
            self.stats.duplicates += 1;
            out.push(Output::Duplicate { session_id: sid });
            return;
        } else {
            self.stats.unknown_sessions += 1;
            Reason::Timeout
        };
        out.push(Output::Forward);
        let ending = self.ending_of(sid, reason, ev.timestamp, true);
        if self.sessions.contains_key(&sid) {
            self.end(sid, ending);
        } else {
            self.count_ending(ending);
            self.bury(sid, reason);
        }
        out.push(Output::Synthesize(ending));
    }

    fn on_disconnected(&mut self, at: i64, transport: &TransportRef<'_>) {
        let key = self.transport_key(transport);
        if self.connections.remove(&key).is_some() {
            sub(&mut self.connections_open, key.module, 1);
        }
        let module = key.module as usize;
        if self.reports_disconnects.len() <= module {
            self.reports_disconnects.resize(module + 1, false);
        }
        self.reports_disconnects[module] = true;
        let Some(sids) = self.by_transport.remove(&key).map(Bound::into_vec) else {
            return;
        };
        let reclaim = self.config.reclaim_session_timeout;
        for sid in sids {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            let Some(s) = self.sessions.get_mut(&sid) else {
                continue;
            };
            s.last_event = s.last_event.max(at);
            let deadline = if reclaim > 0 {
                s.state = State::AwaitingReclaim { at, seq };
                // The watchdog ends an unclaimed session at most
                // reclaim_session_timeout after its last activity (no later
                // than now), checking every tick; Janus 1.1.x reports it one
                // tick after it marks it.
                at.saturating_add((reclaim as i64).saturating_mul(1_000_000))
                    .saturating_add(2 * WATCHDOG_TICK_US)
                    .saturating_add(self.config.settle_us)
            } else {
                s.state = State::Disconnected { at, seq };
                at.saturating_add(self.config.settle_us)
            };
            self.deadlines.push(Reverse((deadline, sid, seq, at)));
        }
    }

    /// Whether a `timeout` at `at` for a session claimed in a reclaim window
    /// that began at `window` came too soon to be the claimed session idling
    /// out. The claim came after `window` and counts as activity (janus.c:
    /// every request sets `last_activity`), so Janus's watchdog
    /// (`janus_check_sessions`) idles the session out no sooner than
    /// `session_timeout` later, and never with `session_timeout = 0`. One
    /// watchdog tick is kept back: a claim Janus handled just before it
    /// noticed the close, or a request stamped a little after it set
    /// `last_activity`, started the idle clock slightly before `window`.
    /// With `session_timeout` unknown nothing is proven: Janus's `timeout`
    /// stands.
    fn reclaim_came_late(&self, window: i64, at: i64) -> bool {
        match self.janus.session_timeout {
            None => false,
            Some(0) => true,
            Some(st) => {
                at < window
                    .saturating_add((st as i64).saturating_mul(1_000_000))
                    .saturating_sub(WATCHDOG_TICK_US)
            }
        }
    }

    /// A session whose connection closed is alive all the same: another
    /// connection claimed it. With reclaim on (`window`: when its reclaim
    /// window began), the claimer is the one connection of the same
    /// transport that opened since the close, if there is exactly one;
    /// otherwise the new binding is unknown.
    fn claimed(&mut self, sid: u64, window: Option<i64>) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (since, old) = match s.state {
            State::Disconnected { at, .. } | State::AwaitingReclaim { at, .. } => (at, s.transport),
            State::Live | State::Claimed { .. } => return,
        };
        let candidate = match old {
            Some(old) if window.is_some() => {
                let mut found = self
                    .connections
                    .iter()
                    .filter(|(k, opened)| k.module == old.module && **opened >= since)
                    .map(|(k, _)| *k);
                match (found.next(), found.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(old) = old {
            self.origins.entry(sid).or_insert(old);
        }
        if let Some(new) = candidate {
            self.bind(sid, new);
        }
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.state = window.map_or(State::Live, |window| State::Claimed { window });
            s.transport = candidate;
        }
        self.stats.claimed += 1;
    }

    fn on_attached(&mut self, ev: &Facts<'_>, plugin: &str) {
        let (Some(sid), Some(hid)) = (ev.session_id, ev.handle_id) else {
            return;
        };
        let plugin = intern(&mut self.plugins, plugin);
        self.touch(ev, true);
        if let Some(s) = self.sessions.get_mut(&sid) {
            match s.handles.iter().find(|h| h.id == hid).map(|h| h.plugin) {
                None => add(&mut self.handles_open, plugin, 1),
                Some(before) if before != plugin => {
                    sub(&mut self.handles_open, before, 1);
                    add(&mut self.handles_open, plugin, 1);
                }
                Some(_) => {}
            }
            s.handles.insert(hid, plugin);
        }
    }

    /// Notes activity on a session. `request` is true for events only a
    /// client request causes (a new handle, a JSEP from the client): Janus
    /// then counts the session as active (its `last_activity`), so a session
    /// awaiting reclaim gets its full reclaim window again from now, and a
    /// claimed one cannot idle out before `session_timeout` from now.
    fn touch(&mut self, ev: &Facts<'_>, request: bool) {
        let Some(sid) = ev.session_id else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.last_event = s.last_event.max(ev.timestamp);
        if !request {
            return;
        }
        if let State::Claimed { window } = s.state {
            s.state = State::Claimed {
                window: window.max(ev.timestamp),
            };
        }
        if let State::AwaitingReclaim { at, .. } = s.state {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            s.state = State::AwaitingReclaim { at, seq };
            let deadline = ev
                .timestamp
                .saturating_add(
                    (self.config.reclaim_session_timeout as i64).saturating_mul(1_000_000),
                )
                .saturating_add(2 * WATCHDOG_TICK_US)
                .saturating_add(self.config.settle_us);
            self.deadlines
                .push(Reverse((deadline, sid, seq, ev.timestamp.max(at))));
        }
    }

    fn end(&mut self, sid: u64, ending: Ending) {
        if let Some(session) = self.sessions.remove(&sid) {
            self.unindex(sid, &session);
        }
        self.origins.remove(&sid);
        self.count_ending(ending);
        self.bury(sid, ending.reason);
    }

    fn count_ending(&mut self, ending: Ending) {
        let index = Reason::ALL
            .iter()
            .position(|r| *r == ending.reason)
            .unwrap_or(0);
        self.stats.endings[index] += 1;
        if ending.synthetic {
            self.stats.synthetic += 1;
            self.stats.synthetic_by_reason[index] += 1;
        }
    }

    fn bury(&mut self, sid: u64, reason: Reason) {
        match self.tombstones.entry(sid) {
            Entry::Occupied(mut o) => o.get_mut().reason = reason,
            Entry::Vacant(v) => {
                v.insert(Tombstone {
                    reason,
                    awaiting_echo: false,
                });
                self.tombstone_order.push_back((self.clock, sid));
            }
        }
    }

    /// Forgets what indexes a session that is no longer tracked: its
    /// handles' counts, and its transport's list (when still bound).
    fn unindex(&mut self, sid: u64, session: &Session) {
        for h in session.handles.iter() {
            sub(&mut self.handles_open, h.plugin, 1);
        }
        if !session.state.is_bound() {
            return; // its transport's index entry went with the disconnect
        }
        if let Some(key) = session.transport
            && let Entry::Occupied(mut o) = self.by_transport.entry(key)
            && o.get_mut().remove(sid)
        {
            o.remove();
        }
    }

    fn transport_key(&mut self, t: &TransportRef<'_>) -> TransportKey {
        let module = intern(&mut self.modules, &t.module);
        TransportKey::new(module, &t.id)
    }
}

/// Adds `n` to the count at `index`, growing the table as needed.
fn add(counts: &mut Vec<u64>, index: u16, n: u64) {
    let i = index as usize;
    if counts.len() <= i {
        counts.resize(i + 1, 0);
    }
    counts[i] += n;
}

fn sub(counts: &mut [u64], index: u16, n: u64) {
    if let Some(c) = counts.get_mut(index as usize) {
        *c = c.saturating_sub(n);
    }
}

/// Counts by interned name (names without a count yet count 0).
fn by_name(names: &[Box<str>], counts: &[u64]) -> Vec<(String, u64)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), counts.get(i).copied().unwrap_or(0)))
        .collect()
}

fn intern(table: &mut Vec<Box<str>>, name: &str) -> u16 {
    if let Some(i) = table.iter().position(|n| &**n == name) {
        return i as u16;
    }
    if table.len() >= u16::MAX as usize {
        // Pathological: more distinct names than any Janus has. Share the last slot.
        return u16::MAX - 1;
    }
    table.push(name.into());
    (table.len() - 1) as u16
}

#[cfg(test)]
mod tests;
