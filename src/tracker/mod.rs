//! The lifecycle tracker: every session that was `created` ends with exactly
//! one `destroyed`, carrying the reason it ended.
//!
//! A plain state machine over decoded events. It has no FFI, no threads and
//! no clock of its own: time comes in with the events (Janus's timestamps) and
//! with [`Tracker::advance`], which the worker calls when it is idle. Recorded
//! traces can therefore be replayed through it with exact expectations.
//!
//! How each ending is recognised (see docs/reinjection.md for the Janus side):
//!
//! | what the tracker sees | what it forwards |
//! | --- | --- |
//! | native `destroyed` | that event, with `reason: request` (or `transport_gone` after a disconnect) |
//! | native `timeout` | the `timeout`, then a synthetic `destroyed` (`timeout`, or `reclaim_expired` after a disconnect with reclaim on) |
//! | transport `disconnected`, reclaim off, a Janus that does not end transport-gone sessions (1.x < 1.3.2, 0.x < 0.15.2) | after `settle` with no native ending: synthetic `destroyed`, `transport_gone` |
//! | transport `disconnected`, reclaim off, a Janus that does (1.x >= 1.3.2, 0.x >= 0.15.2) | Janus's own `destroyed` (`transport_gone`); none within `settle` means another connection had claimed the session: it lives on |
//! | transport `disconnected`, reclaim on | nothing yet: the session waits for its native `timeout` (`reclaim_expired`); none by `reclaim_session_timeout` + two watchdog ticks + `settle` means it was claimed: it lives on (`claimed`) |
//! | native `timeout` of a `claimed` session | `reclaim_expired` (the claim withdrawn, counted `claims_retracted`) when it came less than `session_timeout` (less a watchdog tick) after the close or the latest request since, or `session_timeout` is 0: a claimed session cannot idle out that soon, so Janus's watchdog was late; otherwise (or `session_timeout` unknown) `timeout` |
//! | core `shutdown` | a synthetic `destroyed`, `shutdown`, for every open session |
//! | a second ending for an ended session | nothing (counted as a duplicate) |
//!
//! What it learns about Janus, from the stream only:
//! - the version (core `started`), and whether the core ends transport-gone
//!   sessions itself ([`JanusView::ends_transport_gone`]): the version says
//!   so (1.x >= 1.3.2, 0.x >= 0.15.2: [`Version::ends_transport_gone`]), or
//!   the stream proves it. On a Janus that did not say its version, one
//!   native `destroyed` for a session whose transport was gone is the proof;
//!   on one whose version says no, Janus's own `destroyed` for every session
//!   of a closed connection that had two or more (one alone may answer the
//!   client's `destroy`, sent as it closed: 1.1.2 does that);
//! - `reclaim_session_timeout` (core `started`), unless the config pins it;
//! - `session_timeout` (core `started`): how soon a claimed session can
//!   idle out;
//! - which transport instances are connections (they report `connected`):
//!   where Janus ends transport-gone sessions (reclaim off), it ends a connection's sessions
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
    /// session on its bus (a connection's session at shutdown on a Janus
    /// that ends transport-gone sessions, reclaim off), so the handler must
    /// not inject one.
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
    /// off): its version says so (1.x >= 1.3.2, 0.x >= 0.15.2), or the
    /// stream proved it (see the module documentation).
    pub ends_transport_gone: bool,
    /// False once a WebSocket session was created on a connection that never
    /// reported `connected`: the transport's events are off.
    pub disconnects_visible: bool,
    /// Transport instances open (reported `connected`, not yet `disconnected`).
    pub connections: usize,
    /// The core's own counts from its latest `status: update` event (Janus
    /// >= 1.2 and 0.x >= 0.14; None until one is seen).
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

/// The sessions of a closed connection that had two or more, on a Janus
/// believed not to end transport-gone sessions: if Janus ends every one of
/// them itself, the stream proves that it does.
struct Probe {
    sessions: Vec<u64>,
    ended_by_janus: usize,
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
    /// The latest closed connection that can prove Janus ends transport-gone
    /// sessions itself (see [`Probe`]).
    probe: Option<Probe>,
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
/// The most sessions of one closed connection a [`Probe`] watches (two are
/// proof enough; a bound keeps its lookups cheap whatever a client opens).
const PROBE_MAX_SESSIONS: usize = 8;

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
            probe: None,
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
            Kind::LocalJsep | Kind::Media(_) | Kind::WebRtc(_) | Kind::Other => {
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
                    if self
                        .probe
                        .as_ref()
                        .is_some_and(|p| p.sessions.contains(&sid))
                    {
                        // Janus left one of them to us: no proof.
                        self.probe = None;
                    }
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
            // What the stream proved before stands.
            self.janus.ends_transport_gone |= v.ends_transport_gone();
        }
        if startup.server_name.is_some() {
            self.janus.server_name.clone_from(&startup.server_name);
        }
    }

    /// Whether Janus will end this open session itself when its connection
    /// closes at shutdown: Janus ends transport-gone sessions (1.x >= 1.3.2,
    /// 0.x >= 0.15.2, or proved by the stream), reclaim off, and the session is
    /// bound to an open connection of a transport that ends its connections'
    /// sessions through the core. With the WebSockets transport's events off
    /// no connection is seen, but there a live WebSocket session is bound to
    /// an open connection all the same: had its connection closed, Janus
    /// would have ended it then. A session whose connection closed just
    /// before (its settle window still open) is being ended by Janus: the
    /// transport reports `disconnected` and then ends its sessions, and the
    /// core's `shutdown` can come between the two.
    fn janus_ends_at_close(&self, sid: u64) -> bool {
        if !self.janus.ends_transport_gone || self.config.reclaim_session_timeout > 0 {
            return false;
        }
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        match (s.state, s.transport) {
            (state, Some(key)) if state.is_bound() => {
                self.closes_sessions(key.module)
                    && (self.connections.contains_key(&key)
                        || (!self.janus.disconnects_visible
                            && self.is_module(key.module, WEBSOCKETS)))
            }
            (State::Disconnected { .. }, _) => true,
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
                State::Disconnected { .. } => {
                    if self.janus.version.is_none() || self.probe_ended_by_janus(sid) {
                        // A Janus that did not say its version, or every
                        // session of a closed connection ended by Janus:
                        // it ends transport-gone sessions itself.
                        self.janus.ends_transport_gone = true;
                    }
                    if self.janus.ends_transport_gone {
                        Reason::TransportGone
                    } else {
                        // A Janus that does not end transport-gone sessions
                        // (1.1.x, 0.x < 0.15.2): its `destroyed` after a
                        // disconnect answers a `destroy` the client sent
                        // just before closing.
                        Reason::Request
                    }
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

    /// Counts Janus's own ending of a session of the probed connection; true
    /// when that was the last of them (the proof).
    fn probe_ended_by_janus(&mut self, sid: u64) -> bool {
        let Some(p) = self.probe.as_mut() else {
            return false;
        };
        if !p.sessions.contains(&sid) {
            return false;
        }
        p.ended_by_janus += 1;
        if p.ended_by_janus < p.sessions.len() {
            return false;
        }
        self.probe = None;
        true
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
        if reclaim == 0 && !self.janus.ends_transport_gone {
            let live: Vec<u64> = sids
                .iter()
                .copied()
                .filter(|sid| self.sessions.contains_key(sid))
                .collect();
            if (2..=PROBE_MAX_SESSIONS).contains(&live.len()) {
                self.probe = Some(Probe {
                    sessions: live,
                    ended_by_janus: 0,
                });
            }
        }
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
mod tests {
    //! The tracker against recorded traces and hand-built orderings, each with
    //! its exact expected output, and a property test over random interleavings.

    use super::*;
    use crate::janus::decode;

    const TRACE_112: &str =
        include_str!("../../tests/traces/janus-1.1.2-destroy-drop-timeout.jsonl");
    const TRACE_142: &str = include_str!("../../tests/traces/janus-1.4.2-drop-timeout.jsonl");
    const TRACE_141: &str = include_str!("../../tests/traces/janus-1.4.1-shutdown-ws-http.jsonl");
    const TRACE_0161_ALL: &str =
        include_str!("../../tests/traces/janus-0.16.1-destroy-drop-timeout-shutdown.jsonl");
    const TRACE_141_ALL: &str =
        include_str!("../../tests/traces/janus-1.4.1-destroy-drop-timeout-shutdown.jsonl");

    /// Feeds JSON lines through a tracker and describes every output, one string each:
    /// `fwd <what>` for a forwarded event, `end <sid> <reason>` for a forwarded native
    /// `destroyed`, `SYNTH <sid> <reason> @<ts>` for a synthetic one, `dup <sid>`.
    fn replay(tracker: &mut Tracker, lines: &[String]) -> Vec<String> {
        let mut described = Vec::new();
        let mut out = Vec::new();
        for line in lines {
            let facts = decode(line.as_bytes()).expect("valid event");
            out.clear();
            tracker.observe(&facts, &mut out);
            let what = label(line);
            described.extend(out.iter().map(|o| describe(o, &what)));
        }
        described
    }

    fn finish(tracker: &mut Tracker, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        tracker.advance(now, &mut out);
        out.iter().map(|o| describe(o, "")).collect()
    }

    fn describe(o: &Output, what: &str) -> String {
        match o {
            Output::Forward => format!("fwd {what}"),
            Output::ForwardEnding(e) => {
                assert!(!e.synthetic);
                format!("end {} {}", e.session_id, e.reason.as_str())
            }
            Output::Synthesize(e) => {
                assert!(e.synthetic);
                format!(
                    "SYNTH {} {} @{}{}",
                    e.session_id,
                    e.reason.as_str(),
                    e.timestamp,
                    if e.janus_ends_too { " (janus too)" } else { "" }
                )
            }
            Output::Duplicate { session_id } => format!("dup {session_id}"),
            Output::Echo { session_id } => format!("echo {session_id}"),
        }
    }

    /// A short label for an event line: "created 12", "disconnected", "shutdown", ...
    fn label(line: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let sid = v["session_id"]
            .as_u64()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        let e = &v["event"];
        let name = e["name"]
            .as_str()
            .or(e["data"]["event"].as_str())
            .or(e["status"].as_str())
            .unwrap_or("other");
        format!("{name}{sid}")
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig::default())
    }

    #[test]
    fn replays_janus_1_1_2_trace_exactly() {
        let mut t = tracker();
        let got = replay(&mut t, &lines(TRACE_112));
        let want = [
            "fwd connected",
            "fwd created 239993414290153",
            "fwd attached 239993414290153",
            "fwd disconnected",
            "fwd detached 239993414290153",
            // The next event is 3.3 s later: the settle window of the drop closed.
            "SYNTH 239993414290153 transport_gone @1795534522677901",
            "fwd connected",
            "fwd created 3876843123377874",
            "fwd attached 3876843123377874",
            "end 3876843123377874 request",
            "fwd disconnected",
            "fwd detached 3876843123377874",
            "fwd connected",
            "fwd created 5567222974919471",
            "fwd attached 5567222974919471",
            "fwd detached 5567222974919471",
            "fwd disconnected",
            // 1.1.2's race: the client closed on `timeout` before Janus reported it.
            "fwd timeout 5567222974919471",
            "SYNTH 5567222974919471 timeout @1795534536896713",
            "fwd shutdown",
        ];
        assert_eq!(got, want);
        assert_eq!(t.live_sessions(), 0);
        let s = t.stats();
        assert_eq!(s.created, 3);
        assert_eq!(s.synthetic, 2);
        assert_eq!(s.duplicates, 0);
    }

    #[test]
    fn replays_janus_1_4_2_trace_exactly() {
        let mut t = tracker();
        let got = replay(&mut t, &lines(TRACE_142));
        let want = [
            "fwd started",
            "fwd connected",
            "fwd created 5688093653430080",
            "fwd attached 5688093653430080",
            "fwd disconnected",
            // 1.3.2+ sends its own destroyed: forwarded with the reason, no synthetic one.
            "end 5688093653430080 transport_gone",
            "fwd detached 5688093653430080",
            "fwd connected",
            "fwd created 6622599536206788",
            "fwd attached 6622599536206788",
            "fwd timeout 6622599536206788",
            "SYNTH 6622599536206788 timeout @1795534828895514",
            "fwd detached 6622599536206788",
            "fwd disconnected",
            "fwd update",
            "fwd shutdown",
        ];
        assert_eq!(got, want);
        assert_eq!(finish(&mut t, i64::MAX), Vec::<String>::new());
        assert_eq!(t.stats().synthetic, 1);
    }

    /// Event builders for hand-made orderings.
    fn created(ts: i64, sid: u64, transport: &str) -> String {
        format!(
            r#"{{"emitter":"J","type":1,"timestamp":{ts},"session_id":{sid},"event":{{"name":"created","transport":{{"transport":"janus.transport.websockets","id":"{transport}"}}}}}}"#
        )
    }
    fn session(ts: i64, sid: u64, name: &str) -> String {
        format!(r#"{{"type":1,"timestamp":{ts},"session_id":{sid},"event":{{"name":"{name}"}}}}"#)
    }
    fn handle(ts: i64, sid: u64, hid: u64, name: &str) -> String {
        format!(
            r#"{{"type":2,"timestamp":{ts},"session_id":{sid},"handle_id":{hid},"event":{{"name":"{name}","plugin":"janus.plugin.echotest"}}}}"#
        )
    }
    fn disconnected(ts: i64, transport: &str) -> String {
        format!(
            r#"{{"type":128,"timestamp":{ts},"event":{{"transport":"janus.transport.websockets","id":"{transport}","data":{{"event":"disconnected"}}}}}}"#
        )
    }
    fn shutdown(ts: i64) -> String {
        format!(
            r#"{{"type":256,"subtype":2,"timestamp":{ts},"event":{{"status":"shutdown","signum":2}}}}"#
        )
    }
    fn connected(ts: i64, transport: &str) -> String {
        format!(
            r#"{{"type":128,"timestamp":{ts},"event":{{"transport":"janus.transport.websockets","id":"{transport}","data":{{"event":"connected"}}}}}}"#
        )
    }
    fn created_http(ts: i64, sid: u64, transport: &str) -> String {
        format!(
            r#"{{"type":1,"timestamp":{ts},"session_id":{sid},"event":{{"name":"created","transport":{{"transport":"janus.transport.http","id":"{transport}"}}}}}}"#
        )
    }
    fn started(version: &str, reclaim: u64) -> String {
        format!(
            r#"{{"type":256,"subtype":1,"timestamp":1,"event":{{"status":"started","info":{{"version_string":"{version}","reclaim-session-timeout":{reclaim}}}}}}}"#
        )
    }
    fn media(ts: i64, sid: u64) -> String {
        format!(
            r#"{{"type":32,"timestamp":{ts},"session_id":{sid},"handle_id":9,"event":{{"media":"audio"}}}}"#
        )
    }

    const MS: i64 = 1000;

    #[test]
    fn native_destroyed_right_after_disconnect_is_the_only_ending() {
        let mut t = tracker();
        let got = replay(
            &mut t,
            &[
                created(0, 1, "7"),
                disconnected(10, "7"),
                session(26, 1, "destroyed"),
            ],
        );
        assert_eq!(
            got,
            ["fwd created 1", "fwd disconnected", "end 1 transport_gone"]
        );
        assert!(finish(&mut t, 10 * 1000 * MS).is_empty());
    }

    #[test]
    fn native_destroyed_after_the_settle_window_is_a_duplicate() {
        let mut t = tracker();
        let mut got = replay(&mut t, &[created(0, 1, "7"), disconnected(10, "7")]);
        got.extend(finish(&mut t, 10 + 500 * MS));
        got.extend(replay(&mut t, &[session(600 * MS, 1, "destroyed")]));
        assert_eq!(
            got,
            [
                "fwd created 1",
                "fwd disconnected",
                "SYNTH 1 transport_gone @10",
                "dup 1"
            ]
        );
        assert_eq!(t.stats().duplicates, 1);
    }

    #[test]
    fn settle_window_waits_its_full_length() {
        let mut t = tracker();
        replay(&mut t, &[created(0, 1, "7"), disconnected(1_000, "7")]);
        assert!(finish(&mut t, 1_000 + 500 * MS - 1).is_empty());
        assert_eq!(
            finish(&mut t, 1_000 + 500 * MS),
            ["SYNTH 1 transport_gone @1000"]
        );
    }

    #[test]
    fn timeout_then_disconnect_race_of_1_1_2() {
        // detached, then disconnected, then the session timeout, within 3 ms.
        let mut t = tracker();
        let got = replay(
            &mut t,
            &[
                created(0, 1, "7"),
                handle(1, 1, 2, "attached"),
                handle(9_000 * MS, 1, 2, "detached"),
                disconnected(9_000 * MS + 1_150, "7"),
                session(9_000 * MS + 2_992, 1, "timeout"),
            ],
        );
        assert_eq!(
            got,
            [
                "fwd created 1",
                "fwd attached 1",
                "fwd detached 1",
                "fwd disconnected",
                "fwd timeout 1",
                "SYNTH 1 timeout @9002992"
            ]
        );
        assert!(finish(&mut t, i64::MAX).is_empty());
    }

    #[test]
    fn disconnect_ends_every_session_of_that_transport_only() {
        let mut t = tracker();
        let mut got = replay(
            &mut t,
            &[
                created(0, 1, "7"),
                created(1, 2, "7"),
                created(2, 3, "8"),
                disconnected(100, "7"),
            ],
        );
        got.extend(finish(&mut t, 100 + 500 * MS));
        assert_eq!(
            got[4..],
            ["SYNTH 1 transport_gone @100", "SYNTH 2 transport_gone @100"]
        );
        assert_eq!(t.live_sessions(), 1);
    }

    #[test]
    fn a_reused_transport_id_does_not_end_new_sessions() {
        // Janus's transport ids hash a pointer: a new connection can get the id of
        // one that just closed (the 1.1.2 trace shows it).
        let mut t = tracker();
        let mut got = replay(
            &mut t,
            &[
                created(0, 1, "7"),
                disconnected(100, "7"),
                created(200, 2, "7"),
            ],
        );
        got.extend(finish(&mut t, 10_000 * MS));
        assert_eq!(
            got,
            [
                "fwd created 1",
                "fwd disconnected",
                "fwd created 2",
                "SYNTH 1 transport_gone @100"
            ]
        );
        assert_eq!(t.live_sessions(), 1);
    }

    fn reclaiming() -> Tracker {
        Tracker::new(TrackerConfig {
            reclaim_session_timeout: 5,
            ..TrackerConfig::default()
        })
    }

    #[test]
    fn reclaim_expired() {
        let mut t = reclaiming();
        let mut got = replay(
            &mut t,
            &[
                created(0, 1, "7"),
                handle(1, 1, 2, "attached"),
                disconnected(100, "7"),
            ],
        );
        // No settle window with reclaim on: the session waits for Janus.
        got.extend(finish(&mut t, 4_000 * MS));
        // Media keeps flowing on the PeerConnection: that is not a claim.
        got.extend(replay(
            &mut t,
            &[
                media(1_000 * MS, 1),
                handle(6_000 * MS, 1, 2, "detached"),
                session(6_000 * MS + 5, 1, "timeout"),
            ],
        ));
        assert_eq!(
            got,
            [
                "fwd created 1",
                "fwd attached 1",
                "fwd disconnected",
                "fwd other 1",
                "fwd detached 1",
                "fwd timeout 1",
                "SYNTH 1 reclaim_expired @6000005"
            ]
        );
    }

    #[test]
    fn claim_then_destroy_later() {
        let mut t = reclaiming();
        let mut got = replay(&mut t, &[created(0, 1, "7"), disconnected(100, "7")]);
        got.extend(finish(&mut t, 2_000 * MS));
        // The new connection claims the session and attaches: it lives on.
        got.extend(replay(&mut t, &[handle(2_000 * MS, 1, 3, "attached")]));
        // Claimed: no timeout by the latest time Janus would have sent it.
        assert_eq!(t.stats().claimed, 0);
        got.extend(finish(&mut t, 60_000 * MS));
        assert_eq!(t.stats().claimed, 1);
        got.extend(replay(&mut t, &[session(70_000 * MS, 1, "destroyed")]));
        assert_eq!(
            got,
            [
                "fwd created 1",
                "fwd disconnected",
                "fwd attached 1",
                "end 1 request"
            ]
        );
    }

    #[test]
    fn reclaim_timeout_learned_from_janus_startup_unless_pinned() {
        let started = r#"{"type":256,"subtype":1,"timestamp":1,"event":{"status":"started","info":{"reclaim-session-timeout":30}}}"#;
        let mut t = tracker();
        replay(&mut t, &[started.to_string()]);
        assert_eq!(t.config().reclaim_session_timeout, 30);
        let mut pinned = Tracker::new(TrackerConfig {
            reclaim_pinned: true,
            ..TrackerConfig::default()
        });
        replay(&mut pinned, &[started.to_string()]);
        assert_eq!(pinned.config().reclaim_session_timeout, 0);
    }

    #[test]
    fn shutdown_ends_every_open_session_in_creation_order() {
        let mut t = tracker();
        let mut input: Vec<String> = (1..=100)
            .map(|i| created(i, 1000 - i as u64, "7"))
            .collect();
        input.push(session(500, 999, "destroyed"));
        input.push(disconnected(600, "7"));
        input.push(shutdown(700));
        // After shutdown, Janus 1.4.2 may still report the transport sessions it tears down.
        input.push(session(800, 998, "destroyed"));
        let got = replay(&mut t, &input);
        let synth: Vec<&String> = got.iter().filter(|l| l.starts_with("SYNTH")).collect();
        assert_eq!(synth.len(), 99);
        assert_eq!(synth[0], "SYNTH 998 shutdown @700");
        assert_eq!(synth[98], "SYNTH 900 shutdown @700");
        let shutdown_pos = got.iter().position(|l| l == "fwd shutdown").unwrap();
        assert!(got[shutdown_pos + 1].starts_with("SYNTH"));
        assert_eq!(got.last().unwrap(), "dup 998");
        assert_eq!(t.live_sessions(), 0);
        assert!(t.is_shut_down());
    }

    #[test]
    fn events_for_unknown_sessions() {
        let mut t = tracker();
        let got = replay(
            &mut t,
            &[
                handle(1, 42, 2, "attached"),
                session(2, 42, "destroyed"),
                session(3, 43, "timeout"),
                disconnected(4, "99"),
            ],
        );
        assert_eq!(
            got,
            [
                "fwd attached 42",
                "end 42 request",
                "fwd timeout 43",
                "SYNTH 43 timeout @3",
                "fwd disconnected"
            ]
        );
        assert_eq!(t.stats().unknown_sessions, 2);
        // A second ending for them is a duplicate all the same.
        assert_eq!(replay(&mut t, &[session(5, 42, "destroyed")]), ["dup 42"]);
    }

    #[test]
    fn injected_destroyed_coming_back_is_an_echo_once() {
        let mut t = tracker();
        let mut got = replay(&mut t, &[created(0, 1, "7"), disconnected(100, "7")]);
        got.extend(finish(&mut t, 600 * MS));
        t.mark_injected(1);
        got.extend(replay(
            &mut t,
            &[
                session(601 * MS, 1, "destroyed"),
                session(602 * MS, 1, "destroyed"),
            ],
        ));
        assert_eq!(
            got,
            [
                "fwd created 1",
                "fwd disconnected",
                "SYNTH 1 transport_gone @100",
                "echo 1",
                "dup 1"
            ]
        );
        assert_eq!(t.stats().echoes, 1);
        assert_eq!(t.stats().duplicates, 1);
    }

    #[test]
    fn eviction_keeps_memory_bounded() {
        let mut t = Tracker::new(TrackerConfig {
            max_sessions: 10,
            ..TrackerConfig::default()
        });
        let input: Vec<String> = (1..=25)
            .map(|i| created(i, i as u64, &i.to_string()))
            .collect();
        replay(&mut t, &input);
        assert_eq!(t.live_sessions(), 10);
        assert_eq!(t.stats().evicted, 15);
        let page = t.sessions_page(0, 100);
        assert_eq!(page.first().unwrap().session_id, 16);
        // An evicted session's native ending is still forwarded.
        assert_eq!(
            replay(&mut t, &[session(30, 3, "destroyed")]),
            ["end 3 request"]
        );
    }

    #[test]
    fn sessions_page_lists_transport_and_handles() {
        let mut t = tracker();
        replay(
            &mut t,
            &[
                created(5, 1, "7"),
                handle(6, 1, 2, "attached"),
                created(7, 3, "8"),
            ],
        );
        let page = t.sessions_page(0, 1);
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].session_id, 1);
        assert_eq!(
            page[0].transport,
            Some(("janus.transport.websockets".to_string(), "7".to_string()))
        );
        assert_eq!(
            page[0].handles,
            vec![(2, "janus.plugin.echotest".to_string())]
        );
        assert_eq!(page[0].state, "live");
        assert_eq!(t.sessions_page(1, 10)[0].session_id, 3);
        assert!(t.sessions_page(2, 10).is_empty());
    }

    #[test]
    fn tombstones_expire() {
        let mut t = Tracker::new(TrackerConfig {
            tombstone_us: 1_000 * MS,
            ..TrackerConfig::default()
        });
        replay(&mut t, &[created(0, 1, "7"), session(1, 1, "destroyed")]);
        assert_eq!(t.ended_reason(1), Some(Reason::Request));
        finish(&mut t, 2_000 * MS);
        assert_eq!(t.ended_reason(1), None);
    }

    mod property {
        //! Random interleavings of many sessions' event sequences, in the orders
        //! Janus can produce, always yield exactly one `destroyed` per session.

        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone, Copy)]
        enum End {
            Destroy,
            Timeout,
            /// Still open when its transport closes (or at shutdown).
            Open,
        }

        #[derive(Debug, Clone)]
        struct Transport {
            sessions: Vec<End>,
            drops: bool,
            /// 1.1.2's race: the client closes on `timeout` before Janus reports it.
            timeout_race: bool,
        }

        fn transport() -> impl Strategy<Value = Transport> {
            (
                prop::collection::vec(
                    prop_oneof![Just(End::Destroy), Just(End::Timeout), Just(End::Open)],
                    1..4,
                ),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(sessions, drops, timeout_race)| Transport {
                    sessions,
                    drops,
                    timeout_race,
                })
        }

        /// The events one transport's sessions produce, in causal order, as
        /// (session or 0, kind) steps. `native` is Janus >= 1.3.2; `reclaim` on.
        fn script(
            t: &Transport,
            tid: usize,
            first_sid: u64,
            native: bool,
            reclaim: bool,
            claim: bool,
        ) -> Vec<(u64, String)> {
            let tr = tid.to_string();
            let mut steps = Vec::new();
            let sids: Vec<u64> = (0..t.sessions.len() as u64)
                .map(|i| first_sid + i)
                .collect();
            for &sid in &sids {
                steps.push((sid, format!("created {tr}")));
                steps.push((sid, "attached".to_string()));
            }
            let mut open = Vec::new();
            for (&sid, end) in sids.iter().zip(&t.sessions) {
                match end {
                    End::Destroy => {
                        steps.push((sid, "destroyed".into()));
                        steps.push((sid, "detached".into()));
                    }
                    End::Timeout if t.timeout_race && t.drops && !reclaim => {
                        steps.push((sid, "detached".into()));
                        steps.push((0, format!("disconnected {tr}")));
                        steps.push((sid, "timeout".into()));
                        return steps;
                    }
                    End::Timeout => {
                        steps.push((sid, "timeout".into()));
                        steps.push((sid, "detached".into()));
                    }
                    End::Open => open.push(sid),
                }
            }
            if t.drops {
                steps.push((0, format!("disconnected {tr}")));
                for sid in open {
                    match (reclaim, native) {
                        (false, true) => {
                            steps.push((sid, "destroyed".into()));
                            steps.push((sid, "detached".into()));
                        }
                        (false, false) => steps.push((sid, "detached".into())),
                        (true, _) if claim => {
                            steps.push((sid, "attached".into()));
                            steps.push((sid, "destroyed".into()));
                        }
                        (true, _) => {
                            steps.push((sid, "detached".into()));
                            steps.push((sid, "timeout".into()));
                        }
                    }
                }
            }
            steps
        }

        fn render(ts: i64, sid: u64, step: &str) -> String {
            let mut words = step.split(' ');
            match (words.next().unwrap(), words.next()) {
                ("created", Some(tr)) => created(ts, sid, tr),
                ("disconnected", Some(tr)) => disconnected(ts, tr),
                ("attached", _) => handle(ts, sid, sid * 10, "attached"),
                ("detached", _) => handle(ts, sid, sid * 10, "detached"),
                (name, _) => session(ts, sid, name),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]
            #[test]
            fn exactly_one_destroyed_per_created_session(
                transports in prop::collection::vec(transport(), 1..12),
                picks in prop::collection::vec(any::<prop::sample::Index>(), 200),
                gaps in prop::collection::vec(0i64..900_000, 200),
                native in any::<bool>(),
                reclaim in any::<bool>(),
                claim in any::<bool>(),
                end_with_shutdown in any::<bool>(),
            ) {
                let mut scripts: Vec<std::collections::VecDeque<(u64, String)>> = Vec::new();
                let mut sid = 1;
                for (i, t) in transports.iter().enumerate() {
                    scripts.push(script(t, i + 1, sid, native, reclaim, claim).into());
                    sid += t.sessions.len() as u64;
                }
                let total_sessions = sid - 1;
                let mut t = Tracker::new(TrackerConfig {
                    reclaim_session_timeout: if reclaim { 10 } else { 0 },
                    ..TrackerConfig::default()
                });
                let mut out = Vec::new();
                let mut ts = 1_000_000;
                let mut k = 0;
                while scripts.iter().any(|s| !s.is_empty()) {
                    let live: Vec<usize> = (0..scripts.len()).filter(|&i| !scripts[i].is_empty()).collect();
                    let pick = live[picks[k % picks.len()].index(live.len())];
                    ts += gaps[k % gaps.len()];
                    k += 1;
                    let (sid, step) = scripts[pick].pop_front().unwrap();
                    let line = render(ts, sid, &step);
                    t.observe(&decode(line.as_bytes()).unwrap(), &mut out);
                }
                if end_with_shutdown {
                    t.observe(&decode(shutdown(ts + 1).as_bytes()).unwrap(), &mut out);
                } else {
                    t.advance(ts + 10_000_000, &mut out);
                    t.shutdown(ts + 10_000_001, &mut out);
                }
                let mut count = std::collections::HashMap::new();
                for o in &out {
                    match o {
                        Output::ForwardEnding(e) | Output::Synthesize(e) => {
                            *count.entry(e.session_id).or_insert(0) += 1;
                        }
                        _ => {}
                    }
                }
                for s in 1..=total_sessions {
                    prop_assert_eq!(count.get(&s).copied(), Some(1), "session {}", s);
                }
                prop_assert_eq!(count.len() as u64, total_sessions);
                prop_assert_eq!(t.live_sessions(), 0);
            }
        }

        /// One session whose connection closes with reclaim on, as Janus's
        /// sources (janus.c: `janus_check_sessions`, the `claim` request,
        /// `last_activity`) would end it, with the watchdog late and the events
        /// delivered late by random amounts. Times in ms from the close.
        #[derive(Debug, Clone)]
        struct Reclaim {
            /// `reclaim_session_timeout`, s.
            reclaim: i64,
            /// `session_timeout`, s: 0 (never), or longer than the time the
            /// tracker takes to infer a claim, so that the claimed session's
            /// idle timeout comes after it.
            session_timeout: i64,
            /// Requests (new handles) while the session waits, each within the
            /// reclaim window the previous one restarted.
            waiting_requests: Vec<i64>,
            /// Claimed this far into the last window, then requests at these
            /// gaps (each shorter than `session_timeout`), then idle until
            /// Janus times it out, up to a watchdog tick later.
            claim: Option<(i64, Vec<i64>, i64)>,
            /// Not claimed: how late Janus's watchdog reports the reclaim
            /// timeout, as a fraction of what `session_timeout` leaves room for
            /// (less the watchdog tick the tracker keeps back).
            lateness: f64,
            /// How far the worker's clock ran ahead of each event's timestamp
            /// when it was delivered.
            delivery: Vec<i64>,
        }

        fn reclaim_case() -> impl Strategy<Value = Reclaim> {
            (1i64..30, prop_oneof![Just(None), (5i64..60).prop_map(Some)]).prop_flat_map(
                |(reclaim, extra)| {
                    let session_timeout = extra.map_or(0, |e| reclaim + e);
                    let window = reclaim * 1000;
                    let idle_gap = if session_timeout > 0 {
                        session_timeout * 1000
                    } else {
                        600_000
                    };
                    (
                        Just(reclaim),
                        Just(session_timeout),
                        prop::collection::vec(0..window, 0..3),
                        prop::option::of((
                            0..window,
                            prop::collection::vec(1..idle_gap, 0..3),
                            0i64..2000,
                        )),
                        0.0f64..1.0,
                        prop::collection::vec(0i64..10_000, 12),
                    )
                        .prop_map(
                            move |(_, _, waiting_requests, claim, lateness, delivery)| Reclaim {
                                reclaim,
                                session_timeout,
                                waiting_requests,
                                claim,
                                lateness,
                                delivery,
                            },
                        )
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]
            /// However late Janus's watchdog reports a reclaim timeout, short of
            /// `session_timeout` after the session's last activity, it ends
            /// `reclaim_expired`; a claimed session that idles out ends
            /// `timeout`; never two endings.
            #[test]
            fn a_late_reclaim_timeout_is_told_from_a_claimed_session_idling_out(c in reclaim_case()) {
                let ms = |t: i64| 1_000_000_000 + t * MS;
                let mut events = vec![
                    started_with("1.1.2", c.session_timeout as u64, c.reclaim as u64),
                    connected(ms(-3000), "7"),
                    created(ms(-2000), 1, "7"),
                    disconnected(ms(0), "7"),
                    connected(ms(1), "8"),
                ];
                // Janus's last_activity: the close (transport_gone), then each request.
                let mut activity = 0;
                let mut hid = 10;
                let mut request = |at: i64, events: &mut Vec<String>| {
                    hid += 1;
                    events.push(handle(ms(at), 1, hid, "attached"));
                };
                for gap in &c.waiting_requests {
                    activity += gap;
                    request(activity, &mut events);
                }
                let expect = match &c.claim {
                    Some((after, gaps, tick)) => {
                        // The claim is a request too (no event of its own).
                        activity += after;
                        for gap in gaps {
                            activity += gap;
                            request(activity, &mut events);
                        }
                        if c.session_timeout > 0 {
                            let at = activity + c.session_timeout * 1000 + tick;
                            events.push(session(ms(at), 1, "timeout"));
                            "timeout"
                        } else {
                            "shutdown"
                        }
                    }
                    None => {
                        let room = if c.session_timeout > 0 {
                            (c.session_timeout - c.reclaim) * 1000 - 2000
                        } else {
                            600_000
                        };
                        let late = (room as f64 * c.lateness) as i64;
                        let at = activity + c.reclaim * 1000 + late;
                        events.push(session(ms(at), 1, "timeout"));
                        "reclaim_expired"
                    }
                };
                let mut t = Tracker::new(TrackerConfig::default());
                let mut out = Vec::new();
                for (i, line) in events.iter().enumerate() {
                    let facts = decode(line.as_bytes()).unwrap();
                    t.advance(facts.timestamp + c.delivery[i % c.delivery.len()] * MS, &mut out);
                    t.observe(&facts, &mut out);
                }
                t.shutdown(ms(10_000_000), &mut out);
                let endings: Vec<&str> = out
                    .iter()
                    .filter_map(|o| match o {
                        Output::ForwardEnding(e) | Output::Synthesize(e) => Some(e.reason.as_str()),
                        _ => None,
                    })
                    .collect();
                prop_assert_eq!(endings, vec![expect]);
                let retracted = u64::from(c.claim.is_none() && t.stats().claimed > 0);
                prop_assert_eq!(t.stats().claims_retracted, retracted);
            }
        }
    }

    #[test]
    fn replays_janus_1_4_1_shutdown_trace_exactly() {
        let mut t = tracker();
        let got = replay(&mut t, &lines(TRACE_141));
        assert_eq!(
            got,
            [
                "fwd started",
                "fwd created 7073622160783577",
                "fwd attached 7073622160783577",
                "fwd connected",
                "fwd created 1278941329532068",
                "fwd attached 1278941329532068",
                "fwd shutdown",
                // The HTTP session: nobody else ends it.
                "SYNTH 7073622160783577 shutdown @1795606151975813",
                // The WebSocket session: Janus 1.4.1 ends it itself as the
                // transport closes its connection (below), so it is not injected.
                "SYNTH 1278941329532068 shutdown @1795606151975813 (janus too)",
                "fwd disconnected",
                "dup 1278941329532068",
                "fwd detached 1278941329532068"
            ]
        );
        let j = t.janus();
        assert_eq!(j.version, Some(Version(1, 4, 1)));
        assert!(j.ends_transport_gone);
    }

    /// Who Janus ends itself at shutdown: only connection sessions, only on
    /// Janus >= 1.3.2, only with reclaim off.
    #[test]
    fn janus_ends_connection_sessions_at_shutdown_from_1_3_2_with_reclaim_off() {
        let run = |version: &str, reclaim: u64| {
            let mut t = tracker();
            let mut input = vec![started(version, reclaim), connected(5, "7")];
            input.extend([created(10, 1, "7"), created_http(11, 2, "8")]);
            // A WebSocket session whose connection never reported `connected`
            // (the transport's events are off): on Janus >= 1.3.2 with reclaim
            // off a live WebSocket session is on an open connection all the same
            // (Janus would have ended it when that closed).
            input.push(created(12, 3, "9"));
            input.push(shutdown(20));
            let got = replay(&mut t, &input);
            got.into_iter()
                .filter(|l| l.starts_with("SYNTH"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run("1.4.1", 0),
            [
                "SYNTH 1 shutdown @20 (janus too)",
                "SYNTH 2 shutdown @20",
                "SYNTH 3 shutdown @20 (janus too)"
            ]
        );
        for (version, reclaim) in [("1.1.2", 0), ("1.4.1", 8)] {
            assert_eq!(
                run(version, reclaim),
                [
                    "SYNTH 1 shutdown @20",
                    "SYNTH 2 shutdown @20",
                    "SYNTH 3 shutdown @20"
                ],
                "{version} reclaim {reclaim}"
            );
        }
    }

    /// A connection closes as Janus stops: the transport's `disconnected` comes
    /// first, the core's `shutdown` can come before the transport ends its
    /// sessions. Where Janus ends transport-gone sessions, its own `destroyed`
    /// is on its way: the shutdown ending is not to be injected.
    #[test]
    fn a_shutdown_inside_a_transport_gone_ending_is_left_to_janus() {
        let run = |version: &str, janus_ends_them: bool| {
            let mut t = tracker();
            let mut input = vec![
                started(version, 0),
                connected(5, "7"),
                created(10, 1, "7"),
                created(11, 2, "7"),
                disconnected(100, "7"),
                shutdown(101),
            ];
            if janus_ends_them {
                input.extend([session(102, 1, "destroyed"), session(103, 2, "destroyed")]);
            }
            let mut got = replay(&mut t, &input);
            got.retain(|l| !l.starts_with("fwd"));
            got
        };
        for version in ["1.4.1", "0.16.1"] {
            assert_eq!(
                run(version, true),
                [
                    "SYNTH 1 shutdown @101 (janus too)",
                    "SYNTH 2 shutdown @101 (janus too)",
                    "dup 1",
                    "dup 2"
                ],
                "{version}"
            );
        }
        for version in ["1.1.2", "0.11.8"] {
            assert_eq!(
                run(version, false),
                ["SYNTH 1 shutdown @101", "SYNTH 2 shutdown @101"],
                "{version}"
            );
        }
    }

    /// Janus >= 1.3.2 ends a transport-gone session itself (reclaim off): when it
    /// does not, another connection had claimed the session, which lives on.
    #[test]
    fn a_session_janus_does_not_end_on_1_3_2_was_claimed() {
        let mut t = tracker();
        let mut got = replay(
            &mut t,
            &[
                started("1.4.1", 0),
                connected(5, "7"),
                created(10, 1, "7"),
                created(11, 2, "7"),
                disconnected(100, "7"),
                // Janus ends session 1 at once; session 2 was claimed elsewhere.
                session(101, 1, "destroyed"),
            ],
        );
        got.extend(finish(&mut t, 100 + 600 * MS));
        assert_eq!(t.stats().claimed, 1);
        assert!(t.is_open(2));
        got.extend(replay(&mut t, &[session(900 * MS, 2, "destroyed")]));
        assert_eq!(
            &got[got.len() - 3..],
            ["fwd disconnected", "end 1 transport_gone", "end 2 request"]
        );
    }

    /// On a Janus that did not say its version, a native `destroyed` for a
    /// transport-gone session proves the 1.3.2 behaviour.
    #[test]
    fn janus_ending_transport_gone_sessions_is_learned_from_the_stream() {
        let mut t = tracker();
        assert!(!t.janus().ends_transport_gone);
        replay(
            &mut t,
            &[
                created(10, 1, "7"),
                disconnected(100, "7"),
                session(101, 1, "destroyed"),
            ],
        );
        assert!(t.janus().ends_transport_gone);
    }

    /// Reclaim on: a session with no `timeout` by the time Janus's watchdog
    /// would have sent one was claimed; its claimer is the one connection opened
    /// since, so when that one closes too the session ends `reclaim_expired`.
    #[test]
    fn claim_then_second_close_is_reclaim_expired() {
        let mut t = reclaiming();
        let mut got = replay(
            &mut t,
            &[
                connected(5, "7"),
                created(10, 1, "7"),
                disconnected(100 * MS, "7"),
                connected(200 * MS, "8"),
            ],
        );
        // 5 s reclaim + two 2 s watchdog ticks + 0.5 s settle after the close.
        got.extend(finish(&mut t, 100 * MS + 9_499 * MS));
        assert_eq!(t.stats().claimed, 0);
        got.extend(finish(&mut t, 100 * MS + 9_500 * MS));
        assert_eq!(t.stats().claimed, 1);
        let page = t.sessions_page(0, 10);
        assert_eq!(page[0].state, "claimed");
        assert_eq!(page[0].transport.as_ref().unwrap().1, "8");
        got.extend(replay(
            &mut t,
            &[
                disconnected(20_000 * MS, "8"),
                session(25_000 * MS, 1, "timeout"),
            ],
        ));
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 reclaim_expired @{}", 25_000 * MS)
        );
    }

    /// Claimed sessions end with their real reason: timeout, request, shutdown.
    #[test]
    fn claimed_sessions_end_with_their_real_reason() {
        let setup = || {
            let mut t = reclaiming();
            replay(
                &mut t,
                &[
                    connected(5, "7"),
                    created(10, 1, "7"),
                    disconnected(100 * MS, "7"),
                    connected(200 * MS, "8"),
                ],
            );
            finish(&mut t, 20_000 * MS);
            assert_eq!(t.stats().claimed, 1);
            t
        };
        let mut t = setup();
        let got = replay(&mut t, &[session(60_000 * MS, 1, "timeout")]);
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 timeout @{}", 60_000 * MS)
        );
        let mut t = setup();
        let got = replay(&mut t, &[session(60_000 * MS, 1, "destroyed")]);
        assert_eq!(got, ["end 1 request"]);
        let mut t = setup();
        let got = replay(&mut t, &[shutdown(60_000 * MS)]);
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 shutdown @{}", 60_000 * MS)
        );
    }

    /// Two connections opened since the close: the claimer is not known, the
    /// session is still claimed (and a later timeout is a timeout).
    #[test]
    fn an_ambiguous_claimer_leaves_the_binding_unknown() {
        let mut t = reclaiming();
        replay(
            &mut t,
            &[
                connected(5, "7"),
                created(10, 1, "7"),
                disconnected(100 * MS, "7"),
                connected(200 * MS, "8"),
                connected(300 * MS, "9"),
            ],
        );
        finish(&mut t, 20_000 * MS);
        assert_eq!(t.stats().claimed, 1);
        assert_eq!(t.sessions_page(0, 1)[0].transport, None);
        let got = replay(
            &mut t,
            &[
                disconnected(21_000 * MS, "8"),
                session(30_000 * MS, 1, "timeout"),
            ],
        );
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 timeout @{}", 30_000 * MS)
        );
    }

    /// Every ending carries the session's creation time and the transport it
    /// was created on, even after a claim moved it elsewhere.
    #[test]
    fn endings_carry_creation_and_transport() {
        let mut t = reclaiming();
        let mut out = Vec::new();
        for line in [
            connected(5, "7"),
            created(10, 1, "7"),
            disconnected(100 * MS, "7"),
            connected(200 * MS, "8"),
        ] {
            t.observe(&decode(line.as_bytes()).unwrap(), &mut out);
        }
        t.advance(20_000 * MS, &mut out);
        out.clear();
        t.observe(
            &decode(session(60_000 * MS, 1, "timeout").as_bytes()).unwrap(),
            &mut out,
        );
        let Some(Output::Synthesize(e)) = out.last() else {
            panic!("{out:?}");
        };
        assert_eq!(e.created, Some(10));
        assert_eq!(e.duration_us(), Some(60_000 * MS - 10));
        let (module, id) = t.transport_names(e.transport.unwrap());
        assert_eq!((module, id.as_str()), ("janus.transport.websockets", "7"));
    }

    /// A WebSocket session on a connection that never said `connected`: the
    /// transport's events are off, disconnects are invisible.
    #[test]
    fn invisible_disconnects_are_noticed() {
        let mut t = tracker();
        replay(
            &mut t,
            &[
                connected(1, "7"),
                created(2, 1, "7"),
                created_http(3, 2, "9"),
            ],
        );
        assert!(t.janus().disconnects_visible);
        replay(&mut t, &[created(4, 3, "8")]);
        assert!(!t.janus().disconnects_visible);
    }

    /// On a Janus that says it is 1.1.x (or 0.x before 0.15.2), a native
    /// `destroyed` right after a disconnect answers the client's own `destroy`
    /// (sent just before it closed): a request, and no proof of the 1.3.2
    /// behaviour.
    #[test]
    fn a_destroy_racing_a_close_on_1_1_2_is_a_request() {
        for version in ["1.1.2", "0.11.8"] {
            let mut t = tracker();
            let got = replay(
                &mut t,
                &[
                    started(version, 0),
                    connected(5, "7"),
                    created(10, 1, "7"),
                    disconnected(100, "7"),
                    session(101, 1, "destroyed"),
                ],
            );
            assert_eq!(got.last().unwrap(), "end 1 request", "{version}");
            assert!(!t.janus().ends_transport_gone, "{version}");
            // Later disconnects are still ended by the handler.
            let mut got = replay(
                &mut t,
                &[
                    connected(200, "8"),
                    created(210, 2, "8"),
                    disconnected(300, "8"),
                ],
            );
            got.extend(finish(&mut t, 300 + 600 * MS));
            assert_eq!(
                got.last().unwrap(),
                "SYNTH 2 transport_gone @300",
                "{version}"
            );
        }
    }

    /// One WebSocket session dropped and one alive at shutdown, as each Janus
    /// line reports them: a Janus that ends transport-gone sessions itself sends
    /// its own `destroyed` after the `disconnected` (and at shutdown, as the
    /// transport closes the connection), one that does not sends nothing.
    fn drop_and_shutdown(version: &str, janus_ends_them: bool) -> Vec<String> {
        let mut t = tracker();
        let mut input = vec![
            started(version, 0),
            connected(5, "7"),
            created(10, 1, "7"),
            disconnected(100, "7"),
        ];
        if janus_ends_them {
            input.push(session(101, 1, "destroyed"));
        }
        let mut got = replay(&mut t, &input);
        got.extend(finish(&mut t, 100 + 600 * MS));
        let mut input = vec![connected(700 * MS, "8"), created(710 * MS, 2, "8")];
        input.push(shutdown(800 * MS));
        if janus_ends_them {
            input.extend([
                disconnected(801 * MS, "8"),
                session(802 * MS, 2, "destroyed"),
            ]);
        }
        got.extend(replay(&mut t, &input));
        assert_eq!(t.live_sessions(), 0, "{version}");
        assert_eq!(t.janus().ends_transport_gone, janus_ends_them, "{version}");
        got.into_iter().filter(|l| !l.starts_with("fwd")).collect()
    }

    /// Both Janus lines got the native transport-gone ending on the same day
    /// (1.3.2 and 0.15.2): the version in `started` says which behaviour to
    /// expect, on 0.x as on 1.x.
    #[test]
    fn the_version_says_which_behaviour_on_both_lines() {
        for version in ["0.11.8", "0.14.4", "0.15.1", "1.1.2", "1.2.4", "1.3.1"] {
            assert_eq!(
                drop_and_shutdown(version, false),
                [
                    "SYNTH 1 transport_gone @100",
                    &format!("SYNTH 2 shutdown @{}", 800 * MS)
                ],
                "{version}"
            );
        }
        for version in ["0.15.2", "0.16.1", "1.3.2", "1.4.1"] {
            assert_eq!(
                drop_and_shutdown(version, true),
                [
                    "end 1 transport_gone",
                    &format!("SYNTH 2 shutdown @{} (janus too)", 800 * MS),
                    "dup 2"
                ],
                "{version}"
            );
        }
    }

    /// A connection with two sessions closes on a Janus whose version says it
    /// does not end transport-gone sessions, and Janus ends both itself (a
    /// patched or mislabelled build): the stream wins over the version. A
    /// client does not `destroy` two sessions at the moment it closes.
    #[test]
    fn the_stream_proves_native_endings_whatever_the_version_says() {
        for version in ["1.1.2", "0.11.8"] {
            let mut t = tracker();
            let mut got = replay(
                &mut t,
                &[
                    started(version, 0),
                    connected(5, "7"),
                    created(10, 1, "7"),
                    created(11, 2, "7"),
                    disconnected(100, "7"),
                    session(101, 1, "destroyed"),
                    session(102, 2, "destroyed"),
                    // From now on a single session's native ending is Janus's own.
                    connected(200, "8"),
                    created(210, 3, "8"),
                    disconnected(300, "8"),
                    session(301, 3, "destroyed"),
                    connected(400, "9"),
                    created(410, 4, "9"),
                    shutdown(500),
                ],
            );
            got.retain(|l| !l.starts_with("fwd"));
            assert_eq!(
                got,
                [
                    // Until the proof is complete, the version's rule holds.
                    "end 1 request",
                    "end 2 transport_gone",
                    "end 3 transport_gone",
                    "SYNTH 4 shutdown @500 (janus too)"
                ],
                "{version}"
            );
            assert!(t.janus().ends_transport_gone);
        }
    }

    /// No proof when Janus leaves one session of the closed connection to the
    /// handler: that one ends `transport_gone` as on any Janus of its version.
    #[test]
    fn a_connection_not_all_ended_by_janus_proves_nothing() {
        let mut t = tracker();
        let mut got = replay(
            &mut t,
            &[
                started("0.11.8", 0),
                connected(5, "7"),
                created(10, 1, "7"),
                created(11, 2, "7"),
                disconnected(100, "7"),
                session(101, 1, "destroyed"),
            ],
        );
        got.extend(finish(&mut t, 100 + 600 * MS));
        // Session 2's own ending, late: no proof either.
        got.extend(replay(&mut t, &[session(700 * MS, 2, "destroyed")]));
        got.retain(|l| !l.starts_with("fwd"));
        assert_eq!(
            got,
            ["end 1 request", "SYNTH 2 transport_gone @100", "dup 2"]
        );
        assert!(!t.janus().ends_transport_gone);
    }

    /// What the metrics read: handles by plugin, connections by transport, the
    /// core's own counts, synthetic endings by reason.
    #[test]
    fn counts_handles_connections_and_core_status() {
        let mut t = tracker();
        let ev = |ty: u32, sid: u64, hid: u64, ts: i64, event: &str| {
            let mut s = format!(r#"{{"type": {ty}, "timestamp": {ts}, "event": {event}"#);
            if sid > 0 {
                s += &format!(r#", "session_id": {sid}"#);
            }
            if hid > 0 {
                s += &format!(r#", "handle_id": {hid}"#);
            }
            s + "}"
        };
        let ws = "janus.transport.websockets";
        let lines = [
            ev(
                128,
                0,
                0,
                1,
                &format!(r#"{{"transport": "{ws}", "id": "7", "data": {{"event": "connected"}}}}"#),
            ),
            ev(
                128,
                0,
                0,
                2,
                &format!(r#"{{"transport": "{ws}", "id": "8", "data": {{"event": "connected"}}}}"#),
            ),
            ev(
                1,
                1,
                0,
                3,
                &format!(
                    r#"{{"name": "created", "transport": {{"transport": "{ws}", "id": "7"}}}}"#
                ),
            ),
            ev(
                1,
                2,
                0,
                4,
                &format!(
                    r#"{{"name": "created", "transport": {{"transport": "{ws}", "id": "8"}}}}"#
                ),
            ),
            ev(
                2,
                1,
                10,
                5,
                r#"{"name": "attached", "plugin": "janus.plugin.echotest"}"#,
            ),
            ev(
                2,
                1,
                11,
                6,
                r#"{"name": "attached", "plugin": "janus.plugin.echotest"}"#,
            ),
            ev(
                2,
                1,
                11,
                6,
                r#"{"name": "attached", "plugin": "janus.plugin.echotest"}"#,
            ),
            ev(
                2,
                2,
                20,
                7,
                r#"{"name": "attached", "plugin": "janus.plugin.videoroom"}"#,
            ),
            ev(2, 1, 10, 8, r#"{"name": "detached"}"#),
            ev(2, 1, 10, 8, r#"{"name": "detached"}"#),
        ];
        let mut out = Vec::new();
        for l in &lines {
            t.observe(&decode(l.as_bytes()).unwrap(), &mut out);
        }
        let plugins = |t: &Tracker| t.handles_by_plugin();
        assert_eq!(
            plugins(&t),
            vec![
                ("janus.plugin.echotest".to_string(), 1),
                ("janus.plugin.videoroom".to_string(), 1)
            ]
        );
        assert_eq!(t.connections_by_transport(), vec![(ws.to_string(), 2)]);
        assert_eq!(t.janus().core, None);
        // Session 2's connection closes: its handle goes with the session.
        let gone = ev(
            128,
            0,
            0,
            9,
            &format!(r#"{{"transport": "{ws}", "id": "8", "data": {{"event": "disconnected"}}}}"#),
        );
        t.observe(&decode(gone.as_bytes()).unwrap(), &mut out);
        assert_eq!(t.connections_by_transport(), vec![(ws.to_string(), 1)]);
        out.clear();
        t.advance(10_000_000, &mut out);
        assert!(matches!(
            out[..],
            [Output::Synthesize(Ending { session_id: 2, .. })]
        ));
        assert_eq!(plugins(&t)[1].1, 0);
        assert_eq!(plugins(&t)[0].1, 1);
        let i = Reason::ALL
            .iter()
            .position(|r| *r == Reason::TransportGone)
            .unwrap();
        assert_eq!(t.stats().synthetic_by_reason[i], 1);
        // Session 1 is destroyed by request (native): its handle goes too.
        let destroyed = ev(1, 1, 0, 10_000_001, r#"{"name": "destroyed"}"#);
        t.observe(&decode(destroyed.as_bytes()).unwrap(), &mut out);
        assert_eq!(plugins(&t)[0].1, 0);
        assert_eq!(t.stats().synthetic_by_reason.iter().sum::<u64>(), 1);
        // Janus >= 1.2's periodic status.
        let update = r#"{"type": 256, "subtype": 1, "timestamp": 10000002, "event": {"status": "update", "info": {"sessions": 4, "handles": 5, "peerconnections": 6}}}"#;
        t.observe(&decode(update.as_bytes()).unwrap(), &mut out);
        assert_eq!(
            t.janus().core,
            Some(CoreCounts {
                sessions: Some(4),
                handles: Some(5),
                peerconnections: Some(6)
            })
        );
    }

    /// Janus 0.16.1 built from the upstream tarball, one session per ending
    /// (README in tests/traces/): the 0.x line ends a closed WebSocket's
    /// session itself since 0.15.2, as 1.x does since 1.3.2.
    #[test]
    fn replays_janus_0_16_1_trace_exactly() {
        let mut t = tracker();
        let got = replay(&mut t, &lines(TRACE_0161_ALL));
        let want = [
            "fwd started",
            "fwd request",
            "fwd connected",
            "fwd created 25114733518930",
            "fwd attached 25114733518930",
            "fwd disconnected",
            // Janus's own ending of a closed WebSocket's session.
            "end 25114733518930 transport_gone",
            "fwd detached 25114733518930",
            "fwd connected",
            "fwd created 2210060903065987",
            "fwd attached 2210060903065987",
            "end 2210060903065987 request",
            "fwd detached 2210060903065987",
            "fwd disconnected",
            "fwd connected",
            "fwd created 1432611493449098",
            "fwd attached 1432611493449098",
            "fwd timeout 1432611493449098",
            "SYNTH 1432611493449098 timeout @1796397056591517",
            "fwd detached 1432611493449098",
            "fwd disconnected",
            "fwd connected",
            "fwd created 260090712503387",
            "fwd attached 260090712503387",
            "fwd request",
            "fwd created 1617469506429051",
            "fwd request",
            "fwd attached 1617469506429051",
            "fwd shutdown",
            // Janus ends the WebSocket session as the transport closes: not injected.
            "SYNTH 260090712503387 shutdown @1796397056626550 (janus too)",
            "SYNTH 1617469506429051 shutdown @1796397056626550",
            "fwd disconnected",
            "dup 260090712503387",
            "fwd detached 260090712503387",
        ];
        assert_eq!(got, want);
        assert_eq!(finish(&mut t, i64::MAX), Vec::<String>::new());
        let j = t.janus();
        assert_eq!(j.version, Some(Version(0, 16, 1)));
        assert!(j.ends_transport_gone);
        assert_eq!(t.live_sessions(), 0);
        assert_eq!(t.stats().created, 5);
    }

    /// The same scenario on Janus 1.4.1 built from the upstream tarball: the
    /// same endings as on 0.16.1.
    #[test]
    fn replays_janus_1_4_1_trace_exactly() {
        let mut t = tracker();
        let got = replay(&mut t, &lines(TRACE_141_ALL));
        let want = [
            "fwd started",
            "fwd request",
            "fwd connected",
            "fwd created 7813502650088090",
            "fwd attached 7813502650088090",
            "fwd disconnected",
            "end 7813502650088090 transport_gone",
            "fwd detached 7813502650088090",
            "fwd connected",
            "fwd created 2019180747004707",
            "fwd attached 2019180747004707",
            "fwd detached 2019180747004707",
            "end 2019180747004707 request",
            "fwd disconnected",
            "fwd connected",
            "fwd created 3237180251296345",
            "fwd attached 3237180251296345",
            "fwd timeout 3237180251296345",
            "SYNTH 3237180251296345 timeout @1796397069588349",
            "fwd detached 3237180251296345",
            "fwd disconnected",
            "fwd connected",
            "fwd created 8417343826354130",
            "fwd attached 8417343826354130",
            "fwd request",
            "fwd created 3437203540602193",
            "fwd request",
            "fwd attached 3437203540602193",
            "fwd shutdown",
            "SYNTH 8417343826354130 shutdown @1796397069603819 (janus too)",
            "SYNTH 3437203540602193 shutdown @1796397069603819",
            "fwd disconnected",
            "dup 8417343826354130",
            "fwd detached 8417343826354130",
        ];
        assert_eq!(got, want);
        assert_eq!(finish(&mut t, i64::MAX), Vec::<String>::new());
        let j = t.janus();
        assert_eq!(j.version, Some(Version(1, 4, 1)));
        assert!(j.ends_transport_gone);
        assert_eq!(t.stats().created, 5);
    }

    /// A core `started` event with the session timeouts Janus reports
    /// (`session-timeout` 0: sessions never idle out).
    fn started_with(version: &str, session_timeout: u64, reclaim: u64) -> String {
        format!(
            r#"{{"type":256,"subtype":1,"timestamp":1,"event":{{"status":"started","info":{{"version_string":"{version}","session-timeout":{session_timeout},"reclaim-session-timeout":{reclaim}}}}}}}"#
        )
    }

    /// Reclaim 5 s on a Janus whose `session_timeout` is `session_timeout`: one
    /// session whose connection "7" closes at 100 ms, one connection ("8")
    /// opened since, and the clock past the moment the claim is inferred
    /// (5 s + two ticks + 0.5 s settle after the close).
    fn inferred_claim(session_timeout: Option<u64>) -> (Tracker, Vec<String>) {
        let mut t = Tracker::new(TrackerConfig {
            reclaim_session_timeout: 5,
            ..TrackerConfig::default()
        });
        let mut events = Vec::new();
        if let Some(st) = session_timeout {
            events.push(started_with("1.1.2", st, 5));
        }
        events.extend([
            connected(5, "7"),
            created(10, 1, "7"),
            handle(20, 1, 2, "attached"),
            disconnected(100 * MS, "7"),
            connected(200 * MS, "8"),
        ]);
        let mut got = replay(&mut t, &events);
        got.extend(finish(&mut t, 100 * MS + 9_500 * MS));
        assert_eq!(t.stats().claimed, 1);
        let page = t.sessions_page(0, 10);
        assert_eq!(page[0].state, "claimed");
        assert_eq!(page[0].transport.as_ref().unwrap().1, "8");
        (t, got)
    }

    /// Janus's watchdog reports a reclaim timeout late (a busy machine): the
    /// claim was inferred, then the `timeout` came 12 s after the close. A
    /// session claimed after its close cannot idle out before `session_timeout`
    /// (60 s) has passed since the close, so this is the reclaim expiring: the
    /// ending is `reclaim_expired` and the inferred claim is withdrawn.
    #[test]
    fn a_late_reclaim_timeout_within_session_timeout_is_reclaim_expired() {
        let (mut t, _) = inferred_claim(Some(60));
        let got = replay(
            &mut t,
            &[
                handle(12_000 * MS, 1, 2, "detached"),
                session(12_000 * MS + 5, 1, "timeout"),
            ],
        );
        assert_eq!(
            got,
            [
                "fwd detached 1",
                "fwd timeout 1",
                &format!("SYNTH 1 reclaim_expired @{}", 12_000 * MS + 5),
            ]
        );
        assert_eq!(t.live_sessions(), 0);
        // `claimed` never goes down (it is a counter); the withdrawn claim is
        // counted beside it.
        assert_eq!((t.stats().claimed, t.stats().claims_retracted), (1, 1));
        assert_eq!(t.janus().session_timeout, Some(60));
        // The session is no longer bound to the connection taken as its claimer.
        let mut got = replay(&mut t, &[disconnected(13_000 * MS, "8")]);
        got.extend(finish(&mut t, 60_000 * MS));
        assert_eq!(got, ["fwd disconnected"]);
        assert_eq!(t.ended_reason(1), Some(Reason::ReclaimExpired));
    }

    /// The same `timeout` about `session_timeout` past the close may be the
    /// claimed session idling out: it stays `timeout`. One watchdog tick (2 s)
    /// is kept back, for a claim Janus handled just before it saw the close.
    #[test]
    fn a_timeout_after_session_timeout_from_the_close_is_a_timeout() {
        let (mut t, _) = inferred_claim(Some(60));
        let got = replay(&mut t, &[session(100 * MS + 58_000 * MS, 1, "timeout")]);
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 timeout @{}", 100 * MS + 58_000 * MS)
        );
        assert_eq!((t.stats().claimed, t.stats().claims_retracted), (1, 0));
        // Just before it, it is the reclaim expiring.
        let (mut t, _) = inferred_claim(Some(60));
        let got = replay(&mut t, &[session(100 * MS + 58_000 * MS - 1, 1, "timeout")]);
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 reclaim_expired @{}", 100 * MS + 58_000 * MS - 1)
        );
    }

    /// `session_timeout = 0`: Janus never idles a session out, so any `timeout`
    /// of a session whose claim was inferred is a reclaim expiring. Unknown
    /// (no `started` seen): nothing proves it, Janus's `timeout` stands.
    #[test]
    fn session_timeout_never_or_unknown() {
        let (mut t, _) = inferred_claim(Some(0));
        let got = replay(&mut t, &[session(3_600_000 * MS, 1, "timeout")]);
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 reclaim_expired @{}", 3_600_000 * MS)
        );
        let (mut t, _) = inferred_claim(None);
        let got = replay(&mut t, &[session(12_000 * MS, 1, "timeout")]);
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 timeout @{}", 12_000 * MS)
        );
    }

    /// A request on the session (a new handle, a JSEP) restarts Janus's
    /// reclaim window, and sets its `last_activity`: the window that a late
    /// reclaim timeout is measured against starts at the latest request, both
    /// while the session awaits its reclaim and once its claim is inferred.
    #[test]
    fn a_request_moves_the_window_a_late_reclaim_timeout_is_measured_from() {
        let st = 20;
        // A request 4 s after the close restarts the window: the claim is
        // inferred 4 + 5 + 4 + 0.5 s after the close, and the timeout comes late
        // at 22 s, past close + 20 s but before request + 20 s (less a 2 s tick).
        let mut t = Tracker::new(TrackerConfig {
            reclaim_session_timeout: 5,
            ..TrackerConfig::default()
        });
        let mut got = replay(
            &mut t,
            &[
                started_with("1.1.2", st, 5),
                connected(5, "7"),
                created(10, 1, "7"),
                disconnected(100 * MS, "7"),
                handle(4_100 * MS, 1, 2, "attached"),
            ],
        );
        got.extend(finish(&mut t, 4_100 * MS + 9_499 * MS));
        assert_eq!(t.stats().claimed, 0);
        got.extend(finish(&mut t, 4_100 * MS + 9_500 * MS));
        assert_eq!(t.stats().claimed, 1);
        got.extend(replay(&mut t, &[session(22_000 * MS, 1, "timeout")]));
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 reclaim_expired @{}", 22_000 * MS)
        );
        // A request once the claim is inferred: the same.
        let (mut t, _) = inferred_claim(Some(st));
        let got = replay(
            &mut t,
            &[
                handle(15_000 * MS, 1, 3, "attached"),
                session(30_000 * MS, 1, "timeout"),
            ],
        );
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 reclaim_expired @{}", 30_000 * MS)
        );
        // Events a request does not cause (media, a detach) do not move it.
        let (mut t, _) = inferred_claim(Some(st));
        let got = replay(
            &mut t,
            &[
                media(15_000 * MS, 1),
                handle(16_000 * MS, 1, 2, "detached"),
                session(30_000 * MS, 1, "timeout"),
            ],
        );
        assert_eq!(
            got.last().unwrap(),
            &format!("SYNTH 1 timeout @{}", 30_000 * MS)
        );
    }
}
