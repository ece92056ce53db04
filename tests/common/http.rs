//! A small blocking HTTP/1.1 client (enough for Janus's libmicrohttpd), and
//! the Janus API and Admin API over it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// A transaction id unique in this process.
pub fn transaction() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("rig-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// One request; returns the status code and the body.
pub fn request(method: &str, url: &str, body: Option<&[u8]>) -> std::io::Result<(u16, Vec<u8>)> {
    let (host, path) = split_url(url);
    let mut stream = TcpStream::connect(&host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or(b"");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    Ok((code, payload))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

pub fn get(url: &str) -> std::io::Result<(u16, Vec<u8>)> {
    request("GET", url, None)
}

/// POSTs JSON and parses the JSON answer (panics on transport errors).
pub fn post_json(url: &str, body: &Value) -> Value {
    let (code, payload) = request("POST", url, Some(body.to_string().as_bytes()))
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert_eq!(
        code,
        200,
        "POST {url} answered {code}: {}",
        String::from_utf8_lossy(&payload)
    );
    serde_json::from_slice(&payload).unwrap_or_else(|e| {
        panic!(
            "POST {url}: not JSON ({e}): {}",
            String::from_utf8_lossy(&payload)
        )
    })
}

/// The Janus API over HTTP.
pub struct HttpApi {
    base: String,
}

impl HttpApi {
    pub fn new(base: String) -> HttpApi {
        HttpApi { base }
    }

    pub fn post(&self, path: &str, mut body: Value) -> Value {
        body["transaction"] = json!(transaction());
        post_json(&format!("{}{path}", self.base), &body)
    }

    fn success(&self, path: &str, body: Value) -> Value {
        let reply = self.post(path, body);
        assert_eq!(reply["janus"], "success", "{reply}");
        reply
    }

    pub fn create_session(&self) -> u64 {
        self.success("", json!({"janus": "create"}))["data"]["id"]
            .as_u64()
            .unwrap()
    }

    pub fn attach(&self, session: u64, plugin: &str) -> u64 {
        self.success(
            &format!("/{session}"),
            json!({"janus": "attach", "plugin": plugin}),
        )["data"]["id"]
            .as_u64()
            .unwrap()
    }

    pub fn destroy(&self, session: u64) {
        self.success(&format!("/{session}"), json!({"janus": "destroy"}));
    }

    pub fn keepalive(&self, session: u64) {
        let reply = self.post(&format!("/{session}"), json!({"janus": "keepalive"}));
        assert_eq!(reply["janus"], "ack", "{reply}");
    }
}

/// The Admin API over HTTP.
pub struct Admin {
    base: String,
}

impl Admin {
    pub fn new(base: String) -> Admin {
        Admin { base }
    }

    fn post(&self, path: &str, mut body: Value) -> Value {
        body["transaction"] = json!(transaction());
        body["admin_secret"] = json!("janusoverlord");
        post_json(&format!("{}{path}", self.base), &body)
    }

    /// A request to /admin.
    pub fn request(&self, body: Value) -> Value {
        self.post("", body)
    }

    /// A session-level request, to /admin/<session>.
    pub fn session_request(&self, session: u64, body: Value) -> Value {
        self.post(&format!("/{session}"), body)
    }

    pub fn list_sessions(&self) -> Vec<u64> {
        let reply = self.request(json!({"janus": "list_sessions"}));
        reply["sessions"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"))
            .iter()
            .filter_map(Value::as_u64)
            .collect()
    }

    pub fn destroy_session(&self, session: u64) -> Value {
        let reply = self.session_request(session, json!({"janus": "destroy_session"}));
        assert_eq!(reply["janus"], "success", "{reply}");
        reply
    }

    pub fn query_eventhandler(&self, handler: &str, request: Value) -> Value {
        self.request(json!({"janus": "query_eventhandler", "handler": handler, "request": request}))
    }

    pub fn custom_event(&self, schema: &str, data: Value) -> Value {
        let reply = self.request(json!({"janus": "custom_event", "schema": schema, "data": data}));
        assert_eq!(reply["janus"], "success", "{reply}");
        reply
    }
}
