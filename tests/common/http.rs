//! A tiny blocking HTTP/1.1 client (enough for Janus's libmicrohttpd), and
//! the Janus API over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Value, json};

use super::transaction;

/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP response: status code, headers (in order) and the decoded body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 exchange on a new connection (`Connection: close`).
///
/// `url` is `http://host:port/path`; a body is sent as `application/json`.
/// The response body is read by `Content-Length`, chunked transfer coding,
/// or up to the end of the connection.
pub fn http_request(method: &str, url: &str, body: Option<&[u8]>) -> std::io::Result<HttpResponse> {
    http_request_within(method, url, body, HTTP_TIMEOUT)
}

/// [`http_request`] with a timeout for connecting and for each read/write.
pub fn http_request_within(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<HttpResponse> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other(format!("not an http:// URL: {url}")))?;
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("no address for {host}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(body) = body {
        head += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head += "\r\n";
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&request)?;

    let mut reader = BufReader::new(stream);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let status_line = read_line(&mut reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(&format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let length = response
        .header("Content-Length")
        .and_then(|l| l.parse::<usize>().ok());
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        // No body.
    } else if chunked {
        loop {
            let size_line = read_line(&mut reader)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad(&format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(&mut reader)?.is_empty() {}
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            reader.read_exact(&mut response.body[start..])?;
            read_line(&mut reader)?; // the CRLF after the chunk
        }
    } else if let Some(length) = length {
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// A line without its CRLF; an error at the end of the stream.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// POSTs JSON and returns the JSON answer, whatever the status code (Janus
/// answers errors as JSON too). Panics when there is no JSON answer.
pub(crate) fn post_json(url: &str, body: &Value) -> Value {
    let response = http_request("POST", url, Some(body.to_string().as_bytes()))
        .unwrap_or_else(|e| panic!("POST {url} {body}: {e}"));
    response.json().unwrap_or_else(|e| {
        panic!(
            "POST {url} {body}: answered {} with no JSON ({e}): {:?}",
            response.status,
            response.text()
        )
    })
}

/// Panics unless `reply` is a `"janus": "success"`.
pub(crate) fn expect_success(what: &str, reply: Value) -> Value {
    assert_eq!(reply["janus"], "success", "{what}: Janus answered {reply}");
    reply
}

/// The Janus API over HTTP (`http://127.0.0.1:<port>/janus`).
#[derive(Debug, Clone)]
pub struct HttpApi {
    base: String,
}

impl HttpApi {
    pub fn new(base: impl Into<String>) -> HttpApi {
        HttpApi { base: base.into() }
    }

    /// POSTs `body` plus a new `transaction` to the base URL + `path`
    /// (`""`, `"/<session>"` or `"/<session>/<handle>"`); returns Janus's reply.
    pub fn post(&self, path: &str, mut body: Value) -> Value {
        body["transaction"] = json!(transaction());
        post_json(&format!("{}{path}", self.base), &body)
    }

    /// GETs base URL + `path` (e.g. `"/info"`, or `"/<session>?maxev=5"` for
    /// a long poll, which can take up to 30 s) and returns the JSON answer.
    pub fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let response = http_request("GET", &url, None).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        response.json().unwrap_or_else(|e| {
            panic!(
                "GET {url}: {} no JSON ({e}): {:?}",
                response.status,
                response.text()
            )
        })
    }

    pub fn create_session(&self) -> u64 {
        let reply = expect_success("create", self.post("", json!({"janus": "create"})));
        reply["data"]["id"].as_u64().expect("session id")
    }

    pub fn attach(&self, session: u64, plugin: &str) -> u64 {
        let reply = self.post(
            &format!("/{session}"),
            json!({"janus": "attach", "plugin": plugin}),
        );
        expect_success("attach", reply)["data"]["id"]
            .as_u64()
            .expect("handle id")
    }

    pub fn detach(&self, session: u64, handle: u64) {
        let reply = self.post(&format!("/{session}/{handle}"), json!({"janus": "detach"}));
        expect_success("detach", reply);
    }

    pub fn destroy(&self, session: u64) {
        let reply = self.post(&format!("/{session}"), json!({"janus": "destroy"}));
        expect_success("destroy", reply);
    }

    pub fn keepalive(&self, session: u64) {
        let reply = self.post(&format!("/{session}"), json!({"janus": "keepalive"}));
        assert_eq!(reply["janus"], "ack", "keepalive: Janus answered {reply}");
    }
}
