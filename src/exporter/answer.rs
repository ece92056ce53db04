//! What the endpoint answers to one request: the exposition for `GET` or
//! `HEAD` on the path, with the right credentials; 401, 404, 405 or 500
//! otherwise. Knows nothing of connections (see `super::serve`).

use base64::Engine;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;

use super::EndpointStats;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
const PLAIN: &str = "text/plain; charset=utf-8";

/// The exposition and who may read it.
pub struct Answer {
    registry: Registry,
    path: String,
    /// `user:password`, when authentication is on.
    credentials: Option<Vec<u8>>,
}

impl Answer {
    pub fn new(registry: Registry, path: String, user_password: Option<(&str, &str)>) -> Answer {
        Answer {
            registry,
            path,
            credentials: user_password.map(|(u, p)| format!("{u}:{p}").into_bytes()),
        }
    }

    /// Whether it asks for credentials.
    pub fn authenticates(&self) -> bool {
        self.credentials.is_some()
    }

    /// The answer to `request`, counted in `stats`.
    pub fn respond<B>(&self, request: &Request<B>, stats: &EndpointStats) -> Response<Full<Bytes>> {
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            stats.rejected.fetch_add(1, Relaxed);
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if request.uri().path() != self.path {
            stats.rejected.fetch_add(1, Relaxed);
            return text(
                StatusCode::NOT_FOUND,
                format!("the metrics are at {}\n", self.path),
            );
        }
        if let Some(expected) = &self.credentials {
            let given = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| basic_credentials(v.as_bytes()));
            if !given.is_some_and(|g| same(&g, expected)) {
                stats.unauthorized.fetch_add(1, Relaxed);
                let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n".into());
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"lifecycleevh\", charset=\"UTF-8\""),
                );
                return r;
            }
        }
        let openmetrics = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .any(|a| contains(a.as_bytes(), b"application/openmetrics-text"));
        let mut body = String::with_capacity(16 * 1024);
        let (encoded, content_type) = if openmetrics {
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
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding failed\n".into(),
            );
        }
        stats.scrapes.fetch_add(1, Relaxed);
        let mut r = Response::new(Full::new(Bytes::from(body)));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PLAIN));
    r
}

/// `user:password` from an `Authorization` header of the Basic scheme,
/// whose name is case-insensitive (RFC 7617, RFC 9110 section 11.1).
pub fn basic_credentials(header: &[u8]) -> Option<Vec<u8>> {
    let header = header.trim_ascii();
    let split = header.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let (scheme, token) = header.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(token.trim_ascii())
        .ok()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
