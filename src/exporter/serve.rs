//! The endpoint's thread: a tokio current-thread runtime (no other thread)
//! that waits for the go-ahead, binds, and serves every connection as a
//! task of its own with hyper, so that no connection waits behind another.
//!
//! Connections are bounded, and none may hold its place for long:
//! - at most [`MAX_CONNECTIONS`] are open at once. A connection beyond the
//!   bound takes the place of the oldest one still waiting for its request
//!   (closed at once, counted `evicted`): a client holding idle connections
//!   open only ever pushes out its own. If every place is being answered,
//!   the newcomer is closed at once (counted `refused`);
//! - the request head (after the TLS handshake, if any) must be in within
//!   [`HEAD_DEADLINE`], the whole exchange done within
//!   [`CONNECTION_DEADLINE`] (counted `timed_out`);
//! - one request per connection (`Connection: close`): Prometheus opens a
//!   new one per scrape, which costs it a handshake and spares the endpoint
//!   idle keep-alive connections.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::answer::Answer;
use super::{CONNECTION_DEADLINE, HEAD_DEADLINE, MAX_CONNECTIONS, Shared, State};
use crate::log::RateLimit;
use crate::sync::lock;

/// The largest request head taken (hyper's smallest buffer).
const MAX_HEAD: usize = 8192;

/// Everything the thread needs.
pub struct Serve {
    pub listen: SocketAddr,
    pub path: String,
    pub shared: Arc<Shared>,
    pub answer: Answer,
    pub tls: Option<TlsAcceptor>,
    /// Fires when the endpoint may bind (Janus has started).
    pub open: oneshot::Receiver<()>,
    /// Fires (or is dropped) when the endpoint stops.
    pub stop: oneshot::Receiver<()>,
}

/// What every connection task shares.
struct Context {
    shared: Arc<Shared>,
    answer: Answer,
    tls: Option<TlsAcceptor>,
    slots: Arc<Slots>,
    errors: Mutex<RateLimit>,
}

impl Serve {
    /// Runs until stopped. Dropping the runtime at the end closes every
    /// connection still open.
    pub fn run(self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build();
        match runtime {
            Ok(rt) => rt.block_on(self.serve()),
            Err(e) => {
                let why = format!("cannot start its event loop: {e}");
                crate::jlog!(Err, "metrics: {why}; the Prometheus endpoint is off");
                self.shared.set(State::Failed(why));
            }
        }
    }

    async fn serve(self) {
        let Serve {
            listen,
            path,
            shared,
            answer,
            tls,
            open,
            mut stop,
        } = self;
        tokio::select! {
            biased;
            _ = &mut stop => return,
            opened = open => if opened.is_err() {
                // Never told to open (the worker ended first): wait to stop.
                let _ = stop.await;
                return;
            },
        }
        let listener = match bind(listen) {
            Ok(l) => l,
            Err(e) => {
                let why = format!("cannot listen on {listen}: {e}");
                crate::jlog!(
                    Err,
                    "metrics: {why}; the Prometheus endpoint is off (Janus's own transports bind before it: is it one of their ports? set metrics.listen to a free address:port), everything else runs on"
                );
                shared.set(State::Failed(why));
                return;
            }
        };
        let addr = listener.local_addr().unwrap_or(listen);
        crate::jlog!(
            Info,
            "metrics: Prometheus endpoint on {}://{addr}{path}{}",
            if tls.is_some() { "https" } else { "http" },
            if answer.authenticates() {
                " (basic authentication)"
            } else {
                ""
            }
        );
        shared.set(State::Listening(addr));
        let context = Arc::new(Context {
            shared: shared.clone(),
            answer,
            tls,
            slots: Arc::new(Slots::new(MAX_CONNECTIONS, shared.clone())),
            errors: Mutex::new(RateLimit::new(Duration::from_secs(60))),
        });
        loop {
            let accepted = tokio::select! {
                biased;
                _ = &mut stop => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => admit(&context, stream),
                Err(e) => {
                    context.log(format_args!("accept failed: {e}"));
                    // E.g. out of file descriptors: do not spin.
                    tokio::select! {
                        biased;
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        context.shared.set(State::Stopped);
    }
}

/// Connections the kernel may hold for accept: a burst (a client opening
/// hundreds at once) is taken in whole and sorted out by [`Slots`], rather
/// than left in SYN retries, where a scrape would wait behind it.
const BACKLOG: u32 = 1024;

fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As std's TcpListener::bind: a port in TIME_WAIT is free, one in use
    // (LISTEN) is not.
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(BACKLOG)
}

impl Context {
    fn log(&self, what: std::fmt::Arguments<'_>) {
        if let Some(more) = lock(&self.errors).allow() {
            crate::jlog!(Verb, "metrics: {what} ({more} more since the last report)");
        }
    }
}

/// Serves `stream` as a task of its own, if it gets a place.
fn admit(context: &Arc<Context>, stream: TcpStream) {
    let stats = &context.shared.stats;
    let (slot, evicted) = match context.slots.admit() {
        Admission::Refused => {
            stats.refused.fetch_add(1, Relaxed);
            return;
        }
        Admission::Admitted { slot, evicted } => (slot, evicted),
    };
    if evicted {
        stats.evicted.fetch_add(1, Relaxed);
    }
    tokio::spawn(connection(context.clone(), stream, slot));
}

/// One connection, from accept to close, within its deadlines.
async fn connection(context: Arc<Context>, stream: TcpStream, mut slot: Slot) {
    let accepted = Instant::now();
    let _ = stream.set_nodelay(true);
    let evicted = slot.evicted.take();
    let deadline = async {
        tokio::time::sleep_until(accepted + HEAD_DEADLINE).await;
        if slot.is_waiting() {
            return;
        }
        tokio::time::sleep_until(accepted + CONNECTION_DEADLINE).await;
    };
    tokio::select! {
        served = exchange(&context, stream, &slot) => {
            if let Err(e) = served {
                context.log(format_args!("a connection failed: {e}"));
            }
        }
        _ = deadline => {
            context.shared.stats.timed_out.fetch_add(1, Relaxed);
        }
        // Counted where it was decided.
        _ = until_evicted(evicted) => {}
    }
}

/// Completes when the connection's place goes to a newer one; never once
/// its request is in (its sender is then dropped, not fired).
pub(super) async fn until_evicted(evicted: Option<oneshot::Receiver<()>>) {
    if let Some(evicted) = evicted
        && evicted.await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await
}

/// The TLS handshake, if any, then one HTTP/1.1 request and its answer.
async fn exchange(context: &Context, stream: TcpStream, slot: &Slot) -> Result<(), String> {
    match &context.tls {
        None => http(context, TokioIo::new(stream), slot).await,
        Some(acceptor) => {
            let stream = acceptor.accept(stream).await.map_err(|e| {
                context.shared.stats.tls_failed.fetch_add(1, Relaxed);
                format!("TLS handshake: {e}")
            })?;
            http(context, TokioIo::new(stream), slot).await
        }
    }
}

async fn http<I>(context: &Context, io: I, slot: &Slot) -> Result<(), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    let stats = &context.shared.stats;
    let service = service_fn(|request: hyper::Request<Incoming>| {
        slot.answering();
        let response = context.answer.respond(&request, stats);
        async move { Ok::<_, Infallible>(response) }
    });
    http1::Builder::new()
        .keep_alive(false)
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, service)
        .await
        .map_err(|e| {
            if e.is_parse() || e.is_parse_too_large() {
                // hyper has answered 400 or 431.
                stats.rejected.fetch_add(1, Relaxed);
            }
            e.to_string()
        })
}

/// The open connections, in the order they came, each waiting for its
/// request or being answered. The runtime has one thread: the lock is
/// never contended, only required by `tokio::spawn`.
pub(super) struct Slots {
    max: usize,
    inner: Mutex<Places>,
    /// Where the number open is shown.
    shared: Arc<Shared>,
}

struct Places {
    next: u64,
    /// Connection number -> how to evict it while it waits for its request
    /// (None once it is being answered).
    open: BTreeMap<u64, Option<oneshot::Sender<()>>>,
}

pub(super) enum Admission {
    Admitted { slot: Slot, evicted: bool },
    Refused,
}

/// A connection's place; given back on drop.
pub(super) struct Slot {
    id: u64,
    slots: Arc<Slots>,
    pub(super) evicted: Option<oneshot::Receiver<()>>,
}

impl Slots {
    pub(super) fn new(max: usize, shared: Arc<Shared>) -> Slots {
        Slots {
            max,
            inner: Mutex::new(Places {
                next: 0,
                open: BTreeMap::new(),
            }),
            shared,
        }
    }

    /// Shows how many are open.
    fn count(&self, places: &Places) {
        let open = places.open.len() as u64;
        let stats = &self.shared.stats;
        stats.open.store(open, Relaxed);
        stats.peak_open.fetch_max(open, Relaxed);
    }

    pub(super) fn admit(self: &Arc<Self>) -> Admission {
        let mut places = lock(&self.inner);
        let mut evicted = false;
        if places.open.len() >= self.max {
            let oldest_waiting = places
                .open
                .iter()
                .find(|(_, waiting)| waiting.is_some())
                .map(|(id, _)| *id);
            let Some(id) = oldest_waiting else {
                return Admission::Refused;
            };
            if let Some(Some(evict)) = places.open.remove(&id) {
                let _ = evict.send(());
            }
            evicted = true;
        }
        let id = places.next;
        places.next += 1;
        let (evict, on_evicted) = oneshot::channel();
        places.open.insert(id, Some(evict));
        self.count(&places);
        Admission::Admitted {
            slot: Slot {
                id,
                slots: self.clone(),
                evicted: Some(on_evicted),
            },
            evicted,
        }
    }
}

impl Slot {
    /// Its request is in: no longer evictable, and past its head deadline.
    pub(super) fn answering(&self) {
        if let Some(place) = lock(&self.slots.inner).open.get_mut(&self.id) {
            *place = None;
        }
    }

    /// Whether it is still waiting for its request.
    pub(super) fn is_waiting(&self) -> bool {
        lock(&self.slots.inner)
            .open
            .get(&self.id)
            .is_some_and(Option::is_some)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut places = lock(&self.slots.inner);
        places.open.remove(&self.id);
        self.slots.count(&places);
    }
}
