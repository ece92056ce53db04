//! The Prometheus endpoint: `GET <metrics.path>` on `metrics.listen`,
//! served from inside Janus on a thread of its own.
//!
//! - The exposition is built by [`collect`] with prometheus-client:
//!   OpenMetrics text for clients that ask for it (Prometheus does), the
//!   Prometheus text format 0.0.4 for everything else (curl, promtool).
//! - One thread, one connection at a time: a scrape takes microseconds (it
//!   reads atomics and a small snapshot), and every connection gets at most
//!   [`CONNECTION_BUDGET`] to send its request and take the answer, so a
//!   stuck client delays the next scrape by that much at most. The request
//!   head is parsed with `httparse`; the answer always closes the connection.
//! - Basic authentication when `user` and `password` are set (Prometheus's
//!   `basic_auth` in a scrape config): anything else gets 401.
//! - A port that cannot be bound is reported in Janus's log and in the Admin
//!   API `info` (`metrics.error`); the handler runs on without the endpoint.
//! - [`Endpoint::stop`] wakes the thread (a connection to itself) and waits
//!   for it within a bounded time, as `destroy()` must.

pub mod collect;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use base64::Engine;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::config::MetricsConfig;
use crate::log::RateLimit;
use crate::sync::Spawned;
pub use collect::{SERIES, Series, Sources, Type};

/// The longest one connection may take, from accept to the last byte sent.
pub const CONNECTION_BUDGET: Duration = Duration::from_secs(1);
/// The largest request head taken.
const MAX_HEAD: usize = 8192;
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Counters of the endpoint itself, for the Admin API.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Expositions served.
    pub scrapes: AtomicU64,
    /// Requests refused for missing or wrong credentials.
    pub unauthorized: AtomicU64,
    /// Other requests refused (wrong path or method, malformed, too slow).
    pub rejected: AtomicU64,
}

/// The running endpoint (or why it is not running).
pub struct Endpoint {
    config: MetricsConfig,
    /// The bound address, or why binding failed.
    bound: Result<SocketAddr, String>,
    stats: Arc<EndpointStats>,
    stop: Arc<AtomicBool>,
    thread: Option<Spawned>,
}

/// What a scrape answers, and who may ask.
struct Server {
    listener: TcpListener,
    registry: Registry,
    path: String,
    /// `Basic <base64(user:password)>`, when authentication is on.
    credentials: Option<String>,
    stats: Arc<EndpointStats>,
    stop: Arc<AtomicBool>,
    errors: RateLimit,
}

impl Endpoint {
    /// Binds `config.listen` and starts serving. Never fails: a bind or
    /// thread error is logged and kept for `info`.
    pub fn start(config: &MetricsConfig, sources: Sources) -> Endpoint {
        let stats = Arc::new(EndpointStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut endpoint = Endpoint {
            config: config.clone(),
            bound: Err(String::new()),
            stats: stats.clone(),
            stop: stop.clone(),
            thread: None,
        };
        let listener = match TcpListener::bind(config.listen) {
            Ok(l) => l,
            Err(e) => {
                let why = format!("cannot listen on {}: {e}", config.listen);
                crate::jlog!(
                    Err,
                    "metrics: {why}; the Prometheus endpoint is off (set metrics.listen to a free address:port), everything else runs on"
                );
                endpoint.bound = Err(why);
                return endpoint;
            }
        };
        let addr = listener.local_addr().unwrap_or(config.listen);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collect::Exposition(Arc::new(sources))));
        let credentials = match (&config.user, &config.password) {
            (Some(u), Some(p)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )),
            _ => None,
        };
        let server = Server {
            listener,
            registry,
            path: config.path.clone(),
            credentials,
            stats,
            stop,
            errors: RateLimit::new(Duration::from_secs(60)),
        };
        match Spawned::spawn("lcevh metrics".into(), move || server.run()) {
            Ok(thread) => {
                crate::jlog!(
                    Info,
                    "metrics: Prometheus endpoint on http://{addr}{}{}",
                    config.path,
                    if config.user.is_some() {
                        " (basic authentication)"
                    } else {
                        ""
                    }
                );
                endpoint.bound = Ok(addr);
                endpoint.thread = Some(thread);
            }
            Err(e) => {
                let why = format!("cannot start its thread: {e}");
                crate::jlog!(Err, "metrics: {why}; the Prometheus endpoint is off");
                endpoint.bound = Err(why);
            }
        }
        endpoint
    }

    /// Where it listens, if it does.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bound.as_ref().ok().copied()
    }

    /// Why it does not listen, if it does not.
    pub fn error(&self) -> Option<&str> {
        self.bound.as_ref().err().map(String::as_str)
    }

    /// The endpoint's state for the Admin API `info`.
    pub fn info(&self) -> Value {
        json!({
            "enabled": true,
            "listen": self.config.listen.to_string(),
            "path": self.config.path,
            "listening": self.local_addr().is_some(),
            "basic_auth": self.config.user.is_some(),
            "error": self.error(),
            "scrapes": self.stats.scrapes.load(Relaxed),
            "unauthorized": self.stats.unauthorized.load(Relaxed),
            "rejected": self.stats.rejected.load(Relaxed),
        })
    }

    /// Stops serving within `within` (a thread that does not finish in time,
    /// stuck in a write the kernel does not time out, is left behind).
    pub fn stop(mut self, within: Duration) -> bool {
        self.shutdown(within)
    }

    fn shutdown(&mut self, within: Duration) -> bool {
        let Some(mut thread) = self.thread.take() else {
            return true;
        };
        self.stop.store(true, Relaxed);
        if let Some(addr) = self.local_addr() {
            // Wake the blocking accept with a connection of our own.
            let wake = match addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => {
                    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
                }
                IpAddr::V6(ip) if ip.is_unspecified() => {
                    SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
                }
                _ => addr,
            };
            let _ = TcpStream::connect_timeout(&wake, within / 2);
        }
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

/// The parts of a request the endpoint looks at.
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    openmetrics: bool,
}

impl Server {
    fn run(mut self) {
        loop {
            let accepted = self.listener.accept();
            if self.stop.load(Relaxed) {
                break;
            }
            match accepted {
                Ok((stream, _)) => {
                    if let Err(e) = self.serve(stream)
                        && let Some(more) = self.errors.allow()
                    {
                        crate::jlog!(
                            Verb,
                            "metrics: a connection failed: {e} ({more} more since the last report)"
                        );
                    }
                }
                Err(e) => {
                    if let Some(more) = self.errors.allow() {
                        crate::jlog!(
                            Warn,
                            "metrics: accept failed: {e} ({more} more since the last report)"
                        );
                    }
                    // E.g. out of file descriptors: do not spin.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn serve(&mut self, mut stream: TcpStream) -> io::Result<()> {
        let deadline = Instant::now() + CONNECTION_BUDGET;
        let _ = stream.set_nodelay(true);
        let request = match read_request(&mut stream, deadline) {
            Ok(r) => r,
            Err(e) => {
                self.stats.rejected.fetch_add(1, Relaxed);
                if e.kind() == io::ErrorKind::InvalidData {
                    let _ = respond(
                        &mut stream,
                        deadline,
                        "400 Bad Request",
                        &[],
                        b"bad request\n",
                        false,
                    );
                }
                return Err(e);
            }
        };
        let head_only = request.method == "HEAD";
        if request.method != "GET" && !head_only {
            self.stats.rejected.fetch_add(1, Relaxed);
            return respond(
                &mut stream,
                deadline,
                "405 Method Not Allowed",
                &[("Allow", "GET, HEAD")],
                b"GET only\n",
                false,
            );
        }
        if request.path.split('?').next() != Some(self.path.as_str()) {
            self.stats.rejected.fetch_add(1, Relaxed);
            let body = format!("the metrics are at {}\n", self.path);
            return respond(
                &mut stream,
                deadline,
                "404 Not Found",
                &[],
                body.as_bytes(),
                head_only,
            );
        }
        if let Some(expected) = &self.credentials
            && !request
                .authorization
                .as_deref()
                .is_some_and(|given| same(given.trim().as_bytes(), expected.as_bytes()))
        {
            self.stats.unauthorized.fetch_add(1, Relaxed);
            return respond(
                &mut stream,
                deadline,
                "401 Unauthorized",
                &[(
                    "WWW-Authenticate",
                    "Basic realm=\"lifecycleevh\", charset=\"UTF-8\"",
                )],
                b"unauthorized\n",
                head_only,
            );
        }
        let mut body = String::with_capacity(16 * 1024);
        let (encoded, content_type) = if request.openmetrics {
            (
                prometheus_client::encoding::text::encode(&mut body, &self.registry),
                OPENMETRICS,
            )
        } else {
            (
                prometheus_client::encoding::prometheus_text::encode(&mut body, &self.registry),
                PROMETHEUS_TEXT,
            )
        };
        if encoded.is_err() {
            return respond(
                &mut stream,
                deadline,
                "500 Internal Server Error",
                &[],
                b"encoding failed\n",
                head_only,
            );
        }
        self.stats.scrapes.fetch_add(1, Relaxed);
        respond(
            &mut stream,
            deadline,
            "200 OK",
            &[("Content-Type", content_type)],
            body.as_bytes(),
            head_only,
        )
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "too slow"))
    } else {
        Ok(left)
    }
}

/// Reads and parses a request head, within `deadline`.
fn read_request(stream: &mut TcpStream, deadline: Instant) -> io::Result<Request> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the request was complete",
            ));
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::to_string)
                };
                return Ok(Request {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("").to_string(),
                    authorization: header("authorization"),
                    openmetrics: header("accept")
                        .is_some_and(|a| a.contains("application/openmetrics-text")),
                });
            }
            Ok(httparse::Status::Partial) if len < buf.len() => {}
            Ok(httparse::Status::Partial) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request head too large",
                ));
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    }
}

fn respond(
    stream: &mut TcpStream,
    deadline: Instant,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    if !headers.iter().any(|(k, _)| *k == "Content-Type") {
        out += "Content-Type: text/plain; charset=utf-8\r\n";
    }
    out += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(&bytes)?;
    stream.flush()?;
    // Close gracefully: a socket closed with unread input (a request body)
    // resets the connection, and the client may lose the answer. The client
    // closes once it has the answer; wait for that, within the budget.
    stream.shutdown(Shutdown::Write)?;
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < 64 * 1024 {
        stream.set_read_timeout(Some(remaining(deadline)?.min(Duration::from_millis(200))))?;
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
