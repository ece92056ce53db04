//! The HTTP sink: POSTs events to a backend, the way Janus's own sampleevh
//! does, so backends written for sampleevh work unchanged.
//!
//! - `Content-Type: application/json`; with `grouping`, a JSON array of up to
//!   `max_batch` events per request, otherwise one JSON object per request;
//! - `json` style `compact`, `plain` or `indented` (sampleevh's three);
//! - basic authentication (`backend_user`, `backend_pwd`);
//! - optional compression: `gzip` (with `Content-Encoding: gzip`),
//!   `sampleevh` (a gzip body without the header, as Janus 1.1.x's sampleevh
//!   sends it), or `zlib` (with `Content-Encoding: deflate`);
//! - HTTPS with certificate verification against the system's CAs, or only
//!   those of `ca_file`;
//! - a request is delivered when the backend answers 2xx; anything else
//!   (connection error, timeout, 3xx, 4xx, 5xx) is a failure the runner
//!   retries with backoff;
//! - secrets stay secret: the backend URL's `user:password@` (which ureq
//!   turns into basic authentication) and `backend_pwd` never appear in an
//!   error (logged, and `last_error` in `info`) or in `info`'s `backend`.
//!   ureq's own error texts start with the full URL, so errors are built
//!   from their parts instead, with the URL shown masked.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use flate2::Compression as Level;
use serde_json::{Map, Value, json};

use super::json::body;
use super::{Sink, SinkError};
pub use crate::config::{Compression, HttpTarget, JsonStyle};

pub use super::tls::TlsSetupError;
use super::tls::{TlsOptions, client_config};

pub struct HttpSink {
    target: HttpTarget,
    agent: ureq::Agent,
    authorization: Option<String>,
    /// The backend URL as errors and `info` show it (password masked).
    shown: String,
}

impl HttpSink {
    /// Prepares the client (TLS roots are loaded here: a bad `ca_file` is a
    /// config error).
    pub fn new(target: HttpTarget) -> Result<HttpSink, TlsSetupError> {
        let tls = client_config(&TlsOptions {
            verify_peer: target.tls_verify,
            ..TlsOptions::verified(target.ca_file.clone())
        })?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(target.timeout.min(Duration::from_secs(5)))
            .redirects(0)
            .user_agent(concat!("lifecycleevh/", env!("CARGO_PKG_VERSION")))
            .build();
        let authorization = target.user.as_ref().map(|u| {
            let pair = format!("{u}:{}", target.password.as_deref().unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(HttpSink {
            shown: target.backend_shown(),
            target,
            agent,
            authorization,
        })
    }
}

fn compress(body: &[u8], how: Compression, level: u32) -> std::io::Result<Vec<u8>> {
    let level = Level::new(level.clamp(1, 9));
    match how {
        Compression::Gzip | Compression::Sampleevh => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(body)?;
            e.finish()
        }
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(body)?;
            e.finish()
        }
    }
}

impl Sink for HttpSink {
    fn deliver(&mut self, batch: &[&str], deadline: Option<Instant>) -> Result<(), SinkError> {
        let fail = |message: String| SinkError {
            delivered: 0,
            message,
        };
        let url = &self.shown;
        let mut body = body(batch, self.target.grouping, self.target.json).map_err(&fail)?;
        let mut request = self
            .agent
            .post(&self.target.backend)
            .set("Content-Type", "application/json");
        if let Some((how, level)) = self.target.compress {
            body = compress(&body, how, level)
                .map_err(|e| fail(format!("{url}: compressing: {e}")))?;
            match how {
                Compression::Gzip => request = request.set("Content-Encoding", "gzip"),
                Compression::Zlib => request = request.set("Content-Encoding", "deflate"),
                Compression::Sampleevh => {}
            }
        }
        if let Some(auth) = &self.authorization {
            request = request.set("Authorization", auth);
        }
        let mut timeout = self.target.timeout;
        if let Some(d) = deadline {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            if timeout.is_zero() {
                return Err(fail(format!("{url}: no time left before shutdown")));
            }
        }
        match request.timeout(timeout).send_bytes(&body) {
            Ok(resp) if (200..300).contains(&resp.status()) => Ok(()),
            Ok(resp) => Err(fail(format!(
                "{url}: HTTP {} {}",
                resp.status(),
                resp.status_text()
            ))),
            Err(ureq::Error::Status(code, resp)) => {
                Err(fail(format!("{url}: HTTP {code} {}", resp.status_text())))
            }
            Err(ureq::Error::Transport(t)) => Err(fail(format!("{url}: {}", transport_error(&t)))),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("backend".into(), json!(self.shown));
        m.insert("grouping".into(), json!(self.target.grouping));
        m
    }
}

/// A ureq transport error without the URL its `Display` starts with (the
/// URL may hold a password): the kind, ureq's message and the cause.
fn transport_error(t: &ureq::Transport) -> String {
    let mut text = t.kind().to_string();
    if let Some(message) = t.message() {
        text.push_str(": ");
        text.push_str(message);
    }
    if let Some(source) = std::error::Error::source(t) {
        text.push_str(": ");
        text.push_str(&source.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(grouping: bool, json: JsonStyle) -> HttpTarget {
        HttpTarget {
            backend: "http://127.0.0.1:9/x".into(),
            grouping,
            json,
            user: None,
            password: None,
            compress: None,
            timeout: Duration::from_secs(1),
            ca_file: None,
            tls_verify: true,
        }
    }

    #[test]
    fn compression_round_trips() {
        use std::io::Read;
        let body = br#"[{"a":1}]"#;
        let gz = compress(body, Compression::Gzip, 6).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let z = compress(body, Compression::Zlib, 9).unwrap();
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn unreachable_backend_is_a_failure_not_a_hang() {
        let mut s = HttpSink::new(target(true, JsonStyle::Compact)).unwrap();
        let e = s.deliver(&["{}"], None).unwrap_err();
        assert_eq!(e.delivered, 0);
        assert!(
            e.message
                .starts_with("http://127.0.0.1:9/x: Connection Failed: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn errors_and_info_never_show_a_password() {
        // ureq's own error text starts with the URL, password included.
        for backend in [
            "http://janus:urlsecret@127.0.0.1:9/x",
            "http://janus:urlsecret@no-such-host.invalid/x",
        ] {
            let mut t = target(true, JsonStyle::Compact);
            t.backend = backend.into();
            t.user = Some("janus".into());
            t.password = Some("pwdsecret".into());
            let mut s = HttpSink::new(t).unwrap();
            let e = s.deliver(&["{}"], None).unwrap_err();
            let info = serde_json::to_string(&s.describe()).unwrap();
            for text in [&e.message, &info] {
                assert!(
                    !text.contains("urlsecret") && !text.contains("pwdsecret"),
                    "{text}"
                );
                assert!(text.contains("http://janus:***@"), "{text}");
            }
        }
    }

    #[test]
    fn a_bad_ca_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut t = target(true, JsonStyle::Compact);
        t.ca_file = Some(ca);
        assert!(HttpSink::new(t).err().unwrap().0.contains("no certificate"));
    }
}
