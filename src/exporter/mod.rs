//! The Prometheus endpoint: `GET <metrics.path>` on `metrics.listen`,
//! served from inside Janus on one thread of its own.
//!
//! - When: Janus initialises its event handlers before its transports, so
//!   a port bound in `init` would be taken from Janus's own HTTP or Admin
//!   API. The endpoint binds only once Janus reports its core `started`
//!   event (emitted after the transports, on every Janus 0.x and 1.x): the
//!   worker, which sees it, fires the [`Opener`]. Outside Janus (no Janus
//!   to leave ports to) it binds at once. A port that cannot be bound then
//!   is reported in Janus's log and the Admin API `info` (`metrics.error`,
//!   `warnings`); Janus keeps its ports and the handler runs on.
//! - How: [`serve`] runs hyper on a tokio current-thread runtime on the
//!   endpoint's thread: every connection is a task of its own, at most
//!   [`MAX_CONNECTIONS`] at once, each within [`HEAD_DEADLINE`] and
//!   [`CONNECTION_DEADLINE`], so no client delays another's scrape.
//! - What: [`answer`] checks the method, the path and the Basic credentials
//!   and encodes the exposition that [`collect`] reads, as OpenMetrics for
//!   clients that ask for it (Prometheus does), the Prometheus text format
//!   0.0.4 for everything else (curl, promtool).
//! - HTTPS with `metrics.tls_cert` and `metrics.tls_key` ([`tls`]).
//! - [`Endpoint::stop`] tells the thread to stop and waits for it within a
//!   bounded time, as `destroy()` must; connections still open are closed.

mod answer;
pub mod collect;
mod serve;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::config::MetricsConfig;
use crate::sync::{Spawned, lock};
pub use answer::basic_credentials;
pub use collect::{SERIES, Series, Sources, Type};

/// How many connections may be open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take, from accept, to send its request head
/// (after the TLS handshake, if any). Prometheus sends it at once.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// How long a connection may stay open in all.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// Counters of the endpoint itself, for the Admin API.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Expositions served.
    pub scrapes: AtomicU64,
    /// Requests refused for missing or wrong credentials.
    pub unauthorized: AtomicU64,
    /// Other requests refused (wrong path or method, malformed).
    pub rejected: AtomicU64,
    /// Connections open now, and the most at once.
    pub open: AtomicU64,
    pub peak_open: AtomicU64,
    /// Connections closed at once: every place was being answered.
    pub refused: AtomicU64,
    /// Connections closed, still waiting for their request, to make room
    /// for a newer one.
    pub evicted: AtomicU64,
    /// Connections closed at a deadline.
    pub timed_out: AtomicU64,
    /// Failed TLS handshakes.
    pub tls_failed: AtomicU64,
}

/// Where the endpoint is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for Janus's `started` before binding.
    Waiting,
    Listening(SocketAddr),
    /// Off, and why.
    Failed(String),
    Stopped,
}

/// What the endpoint's thread and its owner share.
pub struct Shared {
    state: Mutex<State>,
    stats: EndpointStats,
    /// Why the certificate files changed to something unusable, if they did.
    tls_problem: Mutex<Option<String>>,
}

impl Shared {
    fn set(&self, state: State) {
        let mut s = lock(&self.state);
        // A failure stays visible after the thread ends.
        if !(state == State::Stopped && matches!(*s, State::Failed(_))) {
            *s = state;
        }
    }
}

/// Tells the endpoint to bind: Janus has started.
pub struct Opener(oneshot::Sender<()>);

impl Opener {
    pub fn open(self) {
        let _ = self.0.send(());
    }
}

/// The endpoint (or why it is not running).
pub struct Endpoint {
    config: MetricsConfig,
    shared: Arc<Shared>,
    opener: Option<Opener>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<Spawned>,
}

impl Endpoint {
    /// Starts the endpoint's thread, which binds `config.listen` once
    /// [`Endpoint::opener`] is fired. Never fails: a TLS or thread error
    /// is logged and kept for `info`.
    pub fn start(config: &MetricsConfig, sources: Sources) -> Endpoint {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::Waiting),
            stats: EndpointStats::default(),
            tls_problem: Mutex::new(None),
        });
        let mut endpoint = Endpoint {
            config: config.clone(),
            shared: shared.clone(),
            opener: None,
            stop: None,
            thread: None,
        };
        if let Some(warning) = config.exposure_warning() {
            crate::jlog!(Warn, "{warning}");
        }
        let tls = match &config.tls {
            None => None,
            Some(files) => match tls::server_config(files, shared.clone()) {
                Ok(c) => Some(tokio_rustls::TlsAcceptor::from(c)),
                Err(why) => {
                    crate::jlog!(Err, "metrics: {why}; the Prometheus endpoint is off");
                    shared.set(State::Failed(why));
                    return endpoint;
                }
            },
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collect::Exposition(Arc::new(sources))));
        let credentials = config.user.as_deref().zip(config.password.as_deref());
        crate::jlog!(
            Info,
            "metrics: the Prometheus endpoint listens on {} once Janus has started",
            config.listen
        );
        let (open, on_open) = oneshot::channel();
        let (stop, on_stop) = oneshot::channel();
        let serve = serve::Serve {
            listen: config.listen,
            path: config.path.clone(),
            shared: shared.clone(),
            answer: answer::Answer::new(registry, config.path.clone(), credentials),
            tls,
            open: on_open,
            stop: on_stop,
        };
        match Spawned::spawn("lcevh metrics".into(), move || serve.run()) {
            Ok(thread) => {
                endpoint.thread = Some(thread);
                endpoint.stop = Some(stop);
                endpoint.opener = Some(Opener(open));
            }
            Err(e) => {
                let why = format!("cannot start its thread: {e}");
                crate::jlog!(Err, "metrics: {why}; the Prometheus endpoint is off");
                shared.set(State::Failed(why));
            }
        }
        endpoint
    }

    /// What binds the endpoint (once; None after the first call, or if the
    /// endpoint could not start).
    pub fn opener(&mut self) -> Option<Opener> {
        self.opener.take()
    }

    /// Where it listens, if it does (with `listen` on port 0, the port the
    /// system chose).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match *lock(&self.shared.state) {
            State::Listening(addr) => Some(addr),
            _ => None,
        }
    }

    /// Why it is off, if it is.
    pub fn error(&self) -> Option<String> {
        match &*lock(&self.shared.state) {
            State::Failed(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// What an operator should fix, in words, for `info.warnings`.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        w.extend(self.config.exposure_warning());
        if let Some(e) = self.error() {
            w.push(format!("the Prometheus endpoint is off: {e}"));
        }
        w.extend(lock(&self.shared.tls_problem).clone());
        w
    }

    /// The endpoint's state for the Admin API `info`.
    pub fn info(&self) -> Value {
        let state = lock(&self.shared.state).clone();
        let stats = &self.shared.stats;
        json!({
            "enabled": true,
            "listen": self.config.listen.to_string(),
            "address": self.local_addr().map(|a| a.to_string()),
            "state": match state {
                State::Waiting => "waiting",
                State::Listening(_) => "listening",
                State::Failed(_) => "failed",
                State::Stopped => "stopped",
            },
            "listening": matches!(state, State::Listening(_)),
            "path": self.config.path,
            "tls": self.config.tls.is_some(),
            "basic_auth": self.config.user.is_some(),
            "error": self.error(),
            "scrapes": stats.scrapes.load(Relaxed),
            "unauthorized": stats.unauthorized.load(Relaxed),
            "rejected": stats.rejected.load(Relaxed),
            "connections": {
                "open": stats.open.load(Relaxed),
                "peak": stats.peak_open.load(Relaxed),
                "max": MAX_CONNECTIONS,
                "refused": stats.refused.load(Relaxed),
                "evicted": stats.evicted.load(Relaxed),
                "timed_out": stats.timed_out.load(Relaxed),
                "tls_failed": stats.tls_failed.load(Relaxed),
            },
        })
    }

    /// Stops serving within `within` (a thread that does not finish in time
    /// is left behind).
    pub fn stop(mut self, within: Duration) -> bool {
        self.shutdown(within)
    }

    fn shutdown(&mut self, within: Duration) -> bool {
        self.opener = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut thread) = self.thread.take() else {
            return true;
        };
        let stopped = thread.join_within(within);
        if !stopped {
            crate::jlog!(
                Warn,
                "metrics: the endpoint's thread did not stop within {} ms; leaving it behind",
                within.as_millis()
            );
        }
        stopped
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests;
