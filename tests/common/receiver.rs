//! An HTTP server in the test that collects what event handlers POST.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use super::wait_until;

/// One request as received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inbox {
    requests: Vec<ReceivedRequest>,
    events: Vec<Value>,
}

/// Collects events like a sampleevh backend: a JSON object per request, or a
/// JSON array of them (grouping), flattened in arrival order.
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    port: u16,
    inbox: Arc<Mutex<Inbox>>,
    status: Arc<AtomicU16>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("receiver bind"));
        let port = server.server_addr().to_ip().expect("ip listener").port();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let status = Arc::new(AtomicU16::new(200));
        let thread = {
            let (server, inbox, status) = (server.clone(), inbox.clone(), status.clone());
            std::thread::spawn(move || {
                for mut req in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut body);
                    let code = status.load(Ordering::SeqCst);
                    let received = ReceivedRequest {
                        path: req.url().to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string(), h.value.to_string()))
                            .collect(),
                        body: body.clone(),
                    };
                    {
                        let mut inbox = inbox.lock().unwrap();
                        inbox.requests.push(received);
                        if code < 300 {
                            match serde_json::from_slice::<Value>(&body) {
                                Ok(Value::Array(items)) => inbox.events.extend(items),
                                Ok(v) => inbox.events.push(v),
                                Err(_) => {}
                            }
                        }
                    }
                    let _ = req.respond(tiny_http::Response::empty(code));
                }
            })
        };
        Receiver {
            server,
            port,
            inbox,
            status,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
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
