//! The Janus API over WebSocket (subprotocol `janus-protocol`).

use std::collections::VecDeque;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::client::ClientRequestBuilder;
use tungstenite::{Message, WebSocket};

use super::http::transaction;

/// A blocking Janus API client; messages Janus pushes unasked are kept.
pub struct WsClient {
    socket: WebSocket<TcpStream>,
    pushed: VecDeque<Value>,
}

impl WsClient {
    pub fn connect(port: u16) -> WsClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to Janus's WebSocket");
        stream.set_nodelay(true).unwrap();
        let uri = format!("ws://127.0.0.1:{port}/").parse().unwrap();
        let request = ClientRequestBuilder::new(uri).with_sub_protocol("janus-protocol");
        let (socket, _) = tungstenite::client(request, stream).expect("WebSocket handshake");
        WsClient {
            socket,
            pushed: VecDeque::new(),
        }
    }

    /// Reads one JSON message, waiting at most `timeout`.
    fn read(&mut self, timeout: Duration) -> Option<Value> {
        self.socket
            .get_ref()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        loop {
            match self.socket.read() {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("JSON from Janus"));
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("WebSocket read: {e}"),
            }
        }
    }

    /// Sends `body` with a new transaction and returns Janus's reply to it
    /// (skipping `ack`s of asynchronous requests, keeping pushed messages).
    pub fn request(&mut self, mut body: Value) -> Value {
        let tx = transaction();
        body["transaction"] = json!(tx);
        self.socket
            .send(Message::text(body.to_string()))
            .expect("WebSocket send");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no reply from Janus to {body}");
            match self.read(left) {
                Some(m) if m["transaction"] == tx.as_str() => return m,
                Some(m) => self.pushed.push_back(m),
                None => {}
            }
        }
    }

    fn success(&mut self, body: Value) -> Value {
        let reply = self.request(body);
        assert_eq!(reply["janus"], "success", "{reply}");
        reply
    }

    pub fn create_session(&mut self) -> u64 {
        self.success(json!({"janus": "create"}))["data"]["id"]
            .as_u64()
            .unwrap()
    }

    pub fn attach(&mut self, session: u64, plugin: &str) -> u64 {
        self.success(json!({"janus": "attach", "session_id": session, "plugin": plugin}))["data"]["id"]
            .as_u64()
            .unwrap()
    }

    pub fn detach(&mut self, session: u64, handle: u64) {
        self.success(json!({"janus": "detach", "session_id": session, "handle_id": handle}));
    }

    pub fn destroy(&mut self, session: u64) {
        self.success(json!({"janus": "destroy", "session_id": session}));
    }

    pub fn keepalive(&mut self, session: u64) {
        let reply = self.request(json!({"janus": "keepalive", "session_id": session}));
        assert_eq!(reply["janus"], "ack", "{reply}");
    }

    pub fn claim(&mut self, session: u64) -> Value {
        self.request(json!({"janus": "claim", "session_id": session}))
    }

    /// Waits for a message Janus pushes (e.g. `timeout`) that satisfies `pred`.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        if let Some(i) = self.pushed.iter().position(&pred) {
            return self.pushed.remove(i);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(m) = self.read(left.min(Duration::from_millis(200))) {
                if pred(&m) {
                    return Some(m);
                }
                self.pushed.push_back(m);
            }
        }
        None
    }

    /// A clean close (close frame, then the socket).
    pub fn close(mut self) {
        let _ = self.socket.close(None);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.socket.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }

    /// An abrupt drop: the TCP connection goes away without a close frame.
    pub fn drop_tcp(self) {
        let _ = self.socket.get_ref().shutdown(Shutdown::Both);
    }
}
