//! The Janus API over WebSocket (subprotocol `janus-protocol`).

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::client::ClientRequestBuilder;
use tungstenite::{Message, WebSocket};

use super::http::expect_success;
use super::transaction;

/// How long [`WsClient::request`] waits for its reply by default.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A blocking Janus API client over one WebSocket connection.
///
/// Messages Janus pushes unasked (`timeout`, `detached`, `hangup`, `event`,
/// and replies nobody waits for) are kept, in order, for
/// [`WsClient::wait_for`] and [`WsClient::take_pushed`].
pub struct WsClient {
    socket: WebSocket<TcpStream>,
    pushed: VecDeque<Value>,
    reply_timeout: Duration,
    closed: bool,
}

/// What one read from the socket gave.
enum Read {
    Json(Value),
    TimedOut,
    Closed,
}

impl WsClient {
    /// Connects to `url` (`ws://127.0.0.1:<port>/`) with the `janus-protocol`
    /// subprotocol, which Janus requires.
    pub fn connect(url: &str) -> WsClient {
        let uri: tungstenite::http::Uri =
            url.parse().unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
        let host = uri.host().expect("host in the WebSocket URL");
        let port = uri.port_u16().unwrap_or(80);
        let stream = TcpStream::connect((host, port))
            .unwrap_or_else(|e| panic!("connect to Janus's WebSocket {url}: {e}"));
        stream.set_nodelay(true).unwrap();
        let request = ClientRequestBuilder::new(uri).with_sub_protocol("janus-protocol");
        let (socket, _response) = tungstenite::client(request, stream)
            .unwrap_or_else(|e| panic!("WebSocket handshake with {url}: {e}"));
        WsClient {
            socket,
            pushed: VecDeque::new(),
            reply_timeout: REPLY_TIMEOUT,
            closed: false,
        }
    }

    /// How long [`WsClient::request`] waits for a reply (default 15 s).
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.reply_timeout = timeout;
    }

    /// Reads one message, waiting at most `timeout`.
    fn read(&mut self, timeout: Duration) -> Read {
        if self.closed {
            return Read::Closed;
        }
        let timeout = timeout.max(Duration::from_millis(1));
        self.socket
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
        loop {
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    let value = serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!("not JSON from Janus ({e}): {:?}", text.as_str())
                    });
                    return Read::Json(value);
                }
                Ok(Message::Close(_)) => {
                    self.closed = true;
                    return Read::Closed;
                }
                // Pings are answered by tungstenite itself.
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Read::TimedOut;
                }
                Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(_),
                ) => {
                    self.closed = true;
                    return Read::Closed;
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                    ) =>
                {
                    self.closed = true;
                    return Read::Closed;
                }
                Err(e) => panic!("WebSocket read: {e}"),
            }
        }
    }

    /// Sends `body` as is (no transaction added).
    pub fn send(&mut self, body: &Value) {
        self.socket
            .send(Message::text(body.to_string()))
            .unwrap_or_else(|e| panic!("WebSocket send {body}: {e}"));
    }

    /// Sends `body` with a new `transaction` and returns the first message
    /// Janus sends with that transaction: the reply (`success`, `error`), or
    /// the `ack` of an asynchronous request (`keepalive`, a plugin `message`,
    /// whose `event` comes later: see [`WsClient::wait_for`]). Other messages
    /// meanwhile are kept. Panics after the reply timeout or if Janus closes.
    pub fn request(&mut self, mut body: Value) -> Value {
        let tx = transaction();
        body["transaction"] = json!(tx);
        self.send(&body);
        let deadline = Instant::now() + self.reply_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no reply from Janus within {:?} to {body}",
                self.reply_timeout
            );
            match self.read(left) {
                Read::Json(m) if m["transaction"] == tx.as_str() => return m,
                Read::Json(m) => self.pushed.push_back(m),
                Read::TimedOut => {}
                Read::Closed => panic!("Janus closed the WebSocket before replying to {body}"),
            }
        }
    }

    pub fn create_session(&mut self) -> u64 {
        let reply = expect_success("create", self.request(json!({"janus": "create"})));
        reply["data"]["id"].as_u64().expect("session id")
    }

    pub fn attach(&mut self, session: u64, plugin: &str) -> u64 {
        let body = json!({"janus": "attach", "session_id": session, "plugin": plugin});
        expect_success("attach", self.request(body))["data"]["id"]
            .as_u64()
            .expect("handle id")
    }

    pub fn detach(&mut self, session: u64, handle: u64) {
        let body = json!({"janus": "detach", "session_id": session, "handle_id": handle});
        expect_success("detach", self.request(body));
    }

    pub fn destroy(&mut self, session: u64) {
        let body = json!({"janus": "destroy", "session_id": session});
        expect_success("destroy", self.request(body));
    }

    pub fn keepalive(&mut self, session: u64) {
        let reply = self.request(json!({"janus": "keepalive", "session_id": session}));
        assert_eq!(reply["janus"], "ack", "keepalive: Janus answered {reply}");
    }

    /// Claims a session (e.g. one whose WebSocket went away, within
    /// `reclaim_session_timeout`); returns Janus's whole reply.
    pub fn claim(&mut self, session: u64) -> Value {
        self.request(json!({"janus": "claim", "session_id": session}))
    }

    /// The first message Janus pushed (or pushes within `timeout`) that
    /// satisfies `pred`, e.g. `|m| m["janus"] == "timeout"`. It is taken out
    /// of the kept messages; the others stay.
    #[must_use = "None means it never came: assert on it"]
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        if let Some(i) = self.pushed.iter().position(&pred) {
            return self.pushed.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.read(left) {
                Read::Json(m) if pred(&m) => return Some(m),
                Read::Json(m) => self.pushed.push_back(m),
                Read::TimedOut => {}
                Read::Closed => return None,
            }
        }
    }

    /// The messages kept so far (oldest first), taken out.
    pub fn take_pushed(&mut self) -> Vec<Value> {
        self.pushed.drain(..).collect()
    }

    /// Whether Janus closed this connection (seen while reading).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// A clean close: a close frame, waiting (up to 2 s) for Janus's.
    pub fn close(mut self) {
        if self.closed {
            return;
        }
        if self.socket.close(None).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let _ = self
                .socket
                .get_ref()
                .set_read_timeout(Some(Duration::from_millis(100)));
            match self.socket.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break, // ConnectionClosed: the close handshake is done.
            }
        }
    }

    /// An abrupt end, as when a browser tab dies: the TCP connection is shut
    /// down without a WebSocket close frame.
    pub fn drop_tcp(self) {
        let _ = self.socket.get_ref().shutdown(Shutdown::Both);
    }
}
