//! An HTTP(S) server in the test that collects what event handlers POST,
//! like the backend of Janus's `sampleevh`, decoding what such senders may
//! send (gzip, zlib) and checking basic authentication when asked.

use std::io::Read;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use super::wait_until;

/// One request as received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The request target, e.g. `/events`.
    pub path: String,
    /// The headers, in order, as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body as sent (possibly compressed: see [`ReceivedRequest::text`]).
    pub body: Vec<u8>,
    /// The status the receiver answered with.
    pub status: u16,
}

impl ReceivedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body decompressed: gzip by its magic number (with or without
    /// `Content-Encoding`, as Janus 1.1.x's sampleevh sends it), zlib when
    /// `Content-Encoding: deflate`, else as is.
    pub fn decoded(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if self.body.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&self.body[..]).read_to_end(&mut out)?;
        } else if self
            .header("Content-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("deflate"))
        {
            flate2::read::ZlibDecoder::new(&self.body[..]).read_to_end(&mut out)?;
        } else {
            out.clone_from(&self.body);
        }
        Ok(out)
    }

    /// The decompressed body as text; panics if it does not decode.
    pub fn text(&self) -> String {
        let bytes = self
            .decoded()
            .unwrap_or_else(|e| panic!("undecodable body ({e}) of {self:?}"));
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("body is not UTF-8 ({e})"))
    }

    /// The decompressed body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.decoded().ok()?).ok()
    }
}

/// How a receiver listens. `ReceiverOptions::default()` is plain HTTP on a
/// free port, no authentication.
#[derive(Debug, Default, Clone)]
pub struct ReceiverOptions {
    /// Listen on this port (default: a free one), e.g. to bring a backend
    /// back on the port a handler was configured with.
    pub port: Option<u16>,
    /// Demand basic authentication with these (user, password); other
    /// requests are answered 401 (and are not delivered events).
    pub auth: Option<(String, String)>,
    /// Serve HTTPS with this certificate chain and private key (PEM); the
    /// URL is then `https://localhost:<port>/events`.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Default)]
struct Inbox {
    requests: Vec<ReceivedRequest>,
    events: Vec<Value>,
}

/// Collects events POSTed to it: a JSON object per request, or a JSON array
/// of them (sampleevh's `grouping`), flattened, in arrival order.
///
/// Only requests it answers with a 2xx count as delivered events; every
/// request, answered any way, is in [`Receiver::requests`].
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    port: u16,
    https: bool,
    inbox: Arc<Mutex<Inbox>>,
    status: Arc<AtomicU16>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Plain HTTP on 127.0.0.1 at a free port, served by a background thread.
    pub fn start() -> Receiver {
        Receiver::start_with(ReceiverOptions::default())
    }

    pub fn start_with(opts: ReceiverOptions) -> Receiver {
        let addr = format!("127.0.0.1:{}", opts.port.unwrap_or(0));
        let server = match &opts.tls {
            None => tiny_http::Server::http(&addr),
            Some((certificate, private_key)) => tiny_http::Server::https(
                &addr,
                tiny_http::SslConfig {
                    certificate: certificate.clone(),
                    private_key: private_key.clone(),
                },
            ),
        };
        let server = Arc::new(server.unwrap_or_else(|e| panic!("receiver: bind {addr}: {e}")));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let status = Arc::new(AtomicU16::new(200));
        let expected_auth = opts.auth.as_ref().map(|(user, password)| {
            format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
        });
        let thread = {
            let (server, inbox, status) = (server.clone(), inbox.clone(), status.clone());
            std::thread::Builder::new()
                .name(format!("receiver-{port}"))
                .spawn(move || serve(&server, &inbox, &status, expected_auth.as_deref()))
                .expect("spawn the receiver thread")
        };
        Receiver {
            server,
            port,
            https: opts.tls.is_some(),
            inbox,
            status,
            thread: Some(thread),
        }
    }

    /// Where to POST: `http://127.0.0.1:<port>/events`, or
    /// `https://localhost:<port>/events` with TLS.
    pub fn url(&self) -> String {
        if self.https {
            format!("https://localhost:{}/events", self.port)
        } else {
            format!("http://127.0.0.1:{}/events", self.port)
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event delivered so far (answered with a 2xx), in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.inbox().events.clone()
    }

    /// How many events so far satisfy `pred` (without copying them).
    pub fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.inbox().events.iter().filter(|e| pred(e)).count()
    }

    /// Every request so far, however it was answered.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.inbox().requests.clone()
    }

    /// Forgets what was received so far.
    pub fn clear(&self) {
        let mut inbox = self.inbox();
        inbox.events.clear();
        inbox.requests.clear();
    }

    /// Polls until `pred` holds for the events so far (true) or `timeout`
    /// passes (false).
    #[must_use = "a wait that timed out must fail the test: assert the result, or use expect"]
    pub fn wait_until(&self, pred: impl Fn(&[Value]) -> bool, timeout: Duration) -> bool {
        wait_until(|| pred(&self.inbox().events), timeout)
    }

    /// Waits until `pred` holds for the events so far and returns them; on
    /// timeout, fails the test naming `what` and listing every event received:
    /// `let events = receiver.expect("a destroyed for s", |ev| ..., secs(5));`
    #[track_caller]
    pub fn expect(
        &self,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
        timeout: Duration,
    ) -> Vec<Value> {
        if !self.wait_until(&pred, timeout) {
            let events = self.events();
            let listing: String = events.iter().map(|e| format!("  {e}\n")).collect();
            panic!("waited {timeout:?} for {what}; received:\n{listing}");
        }
        self.events()
    }

    /// The status code to answer with from now on (default 200).
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

fn serve(server: &tiny_http::Server, inbox: &Mutex<Inbox>, status: &AtomicU16, auth: Option<&str>) {
    for mut request in server.incoming_requests() {
        let mut body = Vec::new();
        let _ = request.as_reader().read_to_end(&mut body);
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect();
        let authorized = auth.is_none_or(|want| {
            headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("Authorization") && v == want)
        });
        let code = if authorized {
            status.load(Ordering::SeqCst)
        } else {
            401
        };
        let received = ReceivedRequest {
            path: request.url().to_string(),
            headers,
            body,
            status: code,
        };
        {
            let mut inbox = inbox.lock().unwrap_or_else(|e| e.into_inner());
            if (200..300).contains(&code) {
                match received.json() {
                    Some(Value::Array(items)) => inbox.events.extend(items),
                    Some(event) => inbox.events.push(event),
                    None => {} // Not JSON: only in requests().
                }
            }
            inbox.requests.push(received);
        }
        // Recorded before answering, so that a sender that got its answer
        // finds its events here.
        let _ = request.respond(tiny_http::Response::empty(code));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Standard base64 with padding (for the expected `Authorization` header).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
