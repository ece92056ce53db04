//! An HTTP(S) server in the test that collects what event handlers POST,
//! decoding what sampleevh-compatible senders may send (gzip, zlib, basic
//! authentication).

use std::io::Read;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::wait_until;

/// One request as received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body as sent (possibly compressed).
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub status: u16,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON text, decompressed: gzip by magic number (with or without
    /// Content-Encoding, as Janus 1.1.x's sampleevh sends it), zlib when
    /// `Content-Encoding: deflate`.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        if self.body.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("gzip body");
        } else if self.header("Content-Encoding") == Some("deflate") {
            flate2::read::ZlibDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("zlib body");
        } else {
            out = self.body.clone();
        }
        String::from_utf8(out).expect("UTF-8 body")
    }
}

#[derive(Default)]
struct Inbox {
    requests: Vec<ReceivedRequest>,
    events: Vec<Value>,
}

/// How a receiver listens.
#[derive(Default, Clone)]
pub struct ReceiverOptions {
    /// Listen on this port (default: a free one).
    pub port: Option<u16>,
    /// Demand basic authentication with these credentials (else 401).
    pub auth: Option<(String, String)>,
    /// Serve HTTPS with this certificate chain and key (PEM).
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
}

/// Collects events like a sampleevh backend: a JSON object per request, or a
/// JSON array of them (grouping), flattened in arrival order.
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    port: u16,
    https: bool,
    inbox: Arc<Mutex<Inbox>>,
    status: Arc<AtomicU16>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
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
        let server = Arc::new(server.unwrap_or_else(|e| panic!("receiver bind {addr}: {e}")));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let status = Arc::new(AtomicU16::new(200));
        let expected_auth = opts.auth.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let thread = {
            let (server, inbox, status) = (server.clone(), inbox.clone(), status.clone());
            std::thread::spawn(move || {
                for mut req in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut body);
                    let headers: Vec<(String, String)> = req
                        .headers()
                        .iter()
                        .map(|h| (h.field.to_string(), h.value.to_string()))
                        .collect();
                    let authorized = expected_auth.as_ref().is_none_or(|want| {
                        headers
                            .iter()
                            .any(|(k, v)| k.eq_ignore_ascii_case("Authorization") && v == want)
                    });
                    let code = if authorized {
                        status.load(Ordering::SeqCst)
                    } else {
                        401
                    };
                    let received = ReceivedRequest {
                        path: req.url().to_string(),
                        headers,
                        body,
                        status: code,
                    };
                    {
                        let mut inbox = inbox.lock().unwrap();
                        if code < 300 {
                            match serde_json::from_str::<Value>(&received.text()) {
                                Ok(Value::Array(items)) => inbox.events.extend(items),
                                Ok(v) => inbox.events.push(v),
                                Err(_) => {}
                            }
                        }
                        inbox.requests.push(received);
                    }
                    let _ = req.respond(tiny_http::Response::empty(code));
                }
            })
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

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.https { "localhost" } else { "127.0.0.1" };
        format!("{scheme}://{host}:{}/events", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every JSON event accepted so far (answered with a 2xx), in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.inbox.lock().unwrap().events.clone()
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.inbox.lock().unwrap().requests.clone()
    }

    pub fn wait_until(&self, pred: impl Fn(&[Value]) -> bool, timeout: Duration) -> bool {
        wait_until(|| pred(&self.inbox.lock().unwrap().events), timeout)
    }

    /// The status it answers with from now on (default 200).
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
