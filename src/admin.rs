//! Admin API: answers to `query_eventhandler` requests, in Janus's style.
//!
//! ```text
//! POST /admin {"janus": "query_eventhandler", "handler": "janus.eventhandler.lifecycleevh",
//!              "request": {"request": "info"}, "transaction": "...", "admin_secret": "..."}
//! ```
//!
//! Requests (docs/admin-api.md documents each answer):
//! - `info`: version, counters, channel, tracker, sinks, Janus's bus;
//! - `sessions` (`offset`, `limit`): live sessions with transport, created
//!   time, handles and plugins;
//! - `tweak`: `events` (a mask; with `sink`, only that sink's), `enabled`
//!   (with `sink`), `settle_ms`.
//!
//! Errors carry `error_code` and `error` like Janus's own handlers (411
//! unknown request, 412 missing element, 413 invalid element, 414 handler
//! not running, 499 internal error). [`parse`] validates without touching the
//! running handler, so it can be fuzzed on its own.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Map, Value, json};

use crate::bus::Bus;
use crate::config::{EventMask, PACKAGE};
use crate::intake::BULK;
use crate::running::{Running, Status};
use crate::tracker::{Reason, SessionView};

/// An Admin API error, answered as `{"error_code": code, "error": text}`
/// with the codes of Janus's own handlers (sampleevh's 411, 412, 413, 499),
/// plus 414 for a handler that is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// 411: the `request` is not one this handler knows.
    UnknownRequest(String),
    /// 412: a mandatory element is missing.
    Missing(&'static str),
    /// 412: a `tweak` that changes nothing.
    NothingToTweak,
    /// 413: an element of the wrong type or out of range.
    Invalid { element: String, should: String },
    /// 413: an element the request does not take.
    Unsupported { element: String, request: String },
    /// 413: a value that does not parse (a mask, a sink name, a fault place).
    BadValue(String),
    /// 414: the handler is not running (with why its `init` failed).
    NotRunning(Option<String>),
    /// 499: the worker did not answer, or a panic was caught.
    Internal(String),
}

impl AdminError {
    pub fn code(&self) -> i64 {
        match self {
            AdminError::UnknownRequest(_) => 411,
            AdminError::Missing(_) | AdminError::NothingToTweak => 412,
            AdminError::Invalid { .. }
            | AdminError::Unsupported { .. }
            | AdminError::BadValue(_) => 413,
            AdminError::NotRunning(_) => 414,
            AdminError::Internal(_) => 499,
        }
    }

    /// The Janus-style answer.
    pub fn answer(&self) -> Value {
        json!({"error_code": self.code(), "error": self.to_string()})
    }

    fn invalid(element: &str, should: impl Into<String>) -> AdminError {
        AdminError::Invalid {
            element: element.to_string(),
            should: should.into(),
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::UnknownRequest(r) => write!(f, "Unknown request '{r}'"),
            AdminError::Missing(name) => write!(f, "Missing mandatory element ({name})"),
            AdminError::NothingToTweak => {
                f.write_str("Missing element: nothing to tweak (events, enabled, settle_ms)")
            }
            AdminError::Invalid { element, should } => {
                write!(f, "Invalid element type ({element} should be {should})")
            }
            AdminError::Unsupported { element, request } => {
                write!(f, "Unsupported element ({element}) for request '{request}'")
            }
            AdminError::BadValue(what) => f.write_str(what),
            AdminError::NotRunning(Some(why)) => write!(f, "lifecycleevh is not running: {why}"),
            AdminError::NotRunning(None) => f.write_str("lifecycleevh is not running"),
            AdminError::Internal(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for AdminError {}

/// Most sessions one `sessions` answer lists.
pub const MAX_LIMIT: u64 = 10_000;

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Info,
    Sessions {
        offset: usize,
        limit: usize,
    },
    Tweak(Tweak),
    /// Fault injection (feature `fault-injection` only).
    Fault(String),
}

/// The changes a `tweak` asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tweak {
    /// Only this sink (else: every sink, for `events`).
    pub sink: Option<String>,
    pub events: Option<EventMask>,
    pub enabled: Option<bool>,
    pub settle_ms: Option<u64>,
}

/// Validates a request object (None: Janus passed no `request`).
pub fn parse(request: Option<&Value>) -> Result<Request, AdminError> {
    let request = request.ok_or(AdminError::Missing("request"))?;
    let obj = request
        .as_object()
        .ok_or_else(|| AdminError::invalid("request", "an object"))?;
    let name = match obj.get("request") {
        None => return Err(AdminError::Missing("request")),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(_) => return Err(AdminError::invalid("request", "a string")),
    };
    let allow = |keys: &[&str]| -> Result<(), AdminError> {
        match obj
            .keys()
            .find(|k| *k != "request" && !keys.contains(&k.as_str()))
        {
            None => Ok(()),
            Some(k) => Err(AdminError::Unsupported {
                element: k.clone(),
                request: name.clone(),
            }),
        }
    };
    match name.as_str() {
        "info" => {
            allow(&[])?;
            Ok(Request::Info)
        }
        "sessions" => {
            allow(&["offset", "limit"])?;
            let offset = uint(obj, "offset", u64::MAX)?.unwrap_or(0);
            let limit = uint(obj, "limit", MAX_LIMIT)?.unwrap_or(100);
            if limit == 0 {
                return Err(AdminError::invalid(
                    "limit",
                    format!("an integer from 1 to {MAX_LIMIT}"),
                ));
            }
            Ok(Request::Sessions {
                offset: usize::try_from(offset).unwrap_or(usize::MAX),
                limit: limit as usize,
            })
        }
        "tweak" => {
            allow(&["sink", "events", "enabled", "settle_ms"])?;
            let sink = match obj.get("sink") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(AdminError::invalid("sink", "a string")),
            };
            let events = match obj.get("events") {
                None => None,
                Some(Value::String(s)) => Some(
                    EventMask::parse(s)
                        .map_err(|e| AdminError::BadValue(format!("Invalid events: {e}")))?,
                ),
                Some(_) => return Err(AdminError::invalid("events", "a string")),
            };
            let enabled = match obj.get("enabled") {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return Err(AdminError::invalid("enabled", "a boolean")),
            };
            if enabled.is_some() && sink.is_none() {
                return Err(AdminError::Missing("sink"));
            }
            let settle_ms = uint(obj, "settle_ms", 600_000)?;
            let tweak = Tweak {
                sink,
                events,
                enabled,
                settle_ms,
            };
            if tweak.events.is_none() && tweak.enabled.is_none() && tweak.settle_ms.is_none() {
                return Err(AdminError::NothingToTweak);
            }
            Ok(Request::Tweak(tweak))
        }
        "fault" if cfg!(feature = "fault-injection") => Ok(Request::Fault(
            obj.get("in")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )),
        _ => Err(AdminError::UnknownRequest(
            obj["request"].as_str().unwrap_or("").to_string(),
        )),
    }
}

fn uint(obj: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>, AdminError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(AdminError::invalid(
                key,
                format!("an integer from 0 to {max}"),
            )),
        },
    }
}

/// Answers one request.
pub fn handle(request: Option<&Value>, running: &Running) -> Value {
    let answer = match parse(request) {
        Err(e) => Err(e),
        Ok(Request::Info) => Ok(info(&running.status())),
        Ok(Request::Sessions { offset, limit }) => match running.sessions(offset, limit) {
            Some((total, page)) => Ok(sessions(total, offset, limit, &page)),
            None => Err(AdminError::Internal(
                "the worker did not answer in time".into(),
            )),
        },
        Ok(Request::Tweak(t)) => tweak(running, &t),
        Ok(Request::Fault(place)) => fault(&place),
    };
    answer.unwrap_or_else(|e| e.answer())
}

#[cfg(feature = "fault-injection")]
fn fault(place: &str) -> Result<Value, AdminError> {
    crate::faults::arm(place).map_err(AdminError::BadValue)?;
    Ok(json!({"result": 200}))
}

#[cfg(not(feature = "fault-injection"))]
fn fault(_place: &str) -> Result<Value, AdminError> {
    Err(AdminError::UnknownRequest("fault".into()))
}

fn sessions(total: usize, offset: usize, limit: usize, page: &[SessionView]) -> Value {
    let list: Vec<Value> = page
        .iter()
        .map(|s| {
            json!({
                "session_id": s.session_id,
                "transport": s.transport.as_ref().map(|(t, id)| json!({"transport": t, "id": id})),
                "created": s.created,
                "last_event": s.last_event,
                "state": s.state,
                "handles": s.handles.iter().map(|(h, p)| json!({"handle_id": h, "plugin": p})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"result": 200, "total": total, "offset": offset, "limit": limit, "sessions": list})
}

fn tweak(r: &Running, t: &Tweak) -> Result<Value, AdminError> {
    let targets: Vec<_> = match &t.sink {
        Some(name) => match r.sinks().iter().find(|s| s.name() == name) {
            Some(s) => vec![s.clone()],
            None => {
                let known: Vec<&str> = r.sinks().iter().map(|s| s.name()).collect();
                return Err(AdminError::BadValue(format!(
                    "No such sink '{name}' (sinks: {})",
                    known.join(", ")
                )));
            }
        },
        None => r.sinks().to_vec(),
    };
    if let Some(settle) = t.settle_ms
        && !r.set_settle_ms(settle)
    {
        return Err(AdminError::Internal(
            "the worker did not take the new settle_ms".into(),
        ));
    }
    for s in &targets {
        if let Some(mask) = t.events {
            s.set_mask(mask);
        }
        if let Some(enabled) = t.enabled {
            s.set_enabled(enabled);
        }
    }
    crate::jlog!(Info, "tweaked through the Admin API: {t:?}");
    Ok(json!({"result": 200}))
}

/// `info`: version, counters, channel, tracker and sinks.
fn info(r: &Status<'_>) -> Value {
    let m = r.counters;
    let t = m.tracker();
    let mut endings = Map::new();
    let mut synthetic = Map::new();
    let mut durations = Map::new();
    for (i, reason) in Reason::ALL.iter().enumerate() {
        endings.insert(reason.as_str().into(), json!(t.stats.endings[i]));
        synthetic.insert(
            reason.as_str().into(),
            json!(t.stats.synthetic_by_reason[i]),
        );
        let d = m.durations.read(*reason);
        durations.insert(
            reason.as_str().into(),
            json!({"count": d.count, "sum_s": d.sum_seconds}),
        );
    }
    let mut dropped_by_type = Map::new();
    for ((_, name), n) in BULK.iter().zip(r.channel.dropped_bulk) {
        dropped_by_type.insert((*name).into(), json!(n));
    }
    let by_type: Map<String, Value> = (0..crate::counters::TYPE_SLOTS)
        .map(|i| {
            (
                crate::counters::type_label(i).to_string(),
                json!(m.processed_by_type[i].load(Relaxed)),
            )
        })
        .collect();
    let checkpointed = m.checkpointed_at_us.load(Relaxed);
    let checkpoint_age_s = (r.config.general.state_dir.is_some() && checkpointed > 0)
        .then(|| (crate::worker::now_us() - checkpointed).max(0) as f64 / 1e6);
    let mut sinks = Map::new();
    for s in r.sinks {
        sinks.insert(s.name().to_string(), s.info());
    }
    json!({
        "result": 200,
        "package": PACKAGE,
        "version": env!("CARGO_PKG_VERSION"),
        "config_file": r.config.file_path.display().to_string(),
        "inside_janus": r.inside_janus,
        "uptime_s": r.uptime.as_secs(),
        "events": {
            "received": m.received.load(Relaxed),
            "dropped": m.dropped.load(Relaxed),
            "dropped_by_type": dropped_by_type,
            "dropped_lifecycle": r.channel.dropped_lifecycle,
            "processed": m.processed.load(Relaxed),
            "processed_by_type": by_type,
            "forwarded": m.forwarded.load(Relaxed),
            "suppressed": m.suppressed.load(Relaxed),
            "decode_errors": m.decode_errors.load(Relaxed),
            "internal_errors": m.internal_errors.load(Relaxed),
            "forwarding": r.config.general.events.to_string(),
        },
        "channel": {
            "depth": r.channel.depth,
            "capacity": r.channel.capacity,
            "peak_depth": r.channel.peak_depth,
            "over_capacity": r.channel.over_capacity,
            "buffer_bytes": r.channel.buffer_bytes,
            "peak_buffer_bytes": r.channel.peak_buffer_bytes,
        },
        "tracker": {
            "live_sessions": t.live_sessions,
            "created": t.stats.created,
            "endings": endings,
            "synthetic": t.stats.synthetic,
            "synthetic_endings": synthetic,
            "durations": durations,
            "handles": t.handles_by_plugin.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>(),
            "duplicates_suppressed": t.stats.duplicates,
            "echoes": t.stats.echoes,
            "unknown_sessions": t.stats.unknown_sessions,
            "evicted": t.stats.evicted,
            "claimed": t.stats.claimed,
            "claims_retracted": t.stats.claims_retracted,
            "settle_ms": t.settle_ms,
            "reclaim_session_timeout": t.reclaim_session_timeout,
            "max_sessions": r.config.general.max_sessions,
            "disconnects_visible": t.janus.disconnects_visible,
            "janus_version": t.janus.version.map(|v| v.to_string()),
            "janus_session_timeout": t.janus.session_timeout,
            "janus_ends_transport_gone": t.janus.ends_transport_gone,
            "connections": t.janus.connections,
            "connections_by_transport": t.connections_by_transport.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>(),
            "janus_server_name": t.janus.server_name,
            "janus_core": t.janus.core.map(|c| json!({
                "sessions": c.sessions,
                "handles": c.handles,
                "peerconnections": c.peerconnections,
            })),
            "shut_down": t.shut_down,
        },
        "recovery": {
            "state_dir": r.config.general.state_dir.as_ref().map(|d| d.display().to_string()),
            "recovered_sessions": m.recovered.load(Relaxed),
            "recovered_already_written": m.recovered_written.load(Relaxed),
            "recovered_repeated": m.recovered_repeated.load(Relaxed),
            "unacknowledged_endings": t.unacknowledged,
            "state_errors": m.state_errors.load(Relaxed),
            "checkpoint_age_s": checkpoint_age_s,
        },
        "sinks": sinks,
        "janus_bus": Bus::info(r.bus_reasons, r.bus_available, r.bus_stats),
        "metrics": r.endpoint.map_or_else(|| json!({"enabled": false}), |e| e.info()),
        "warnings": warnings(&t, r.endpoint.map(|e| e.warnings()).unwrap_or_default(), r.sinks),
    })
}

/// What an operator should fix, in words.
fn warnings(
    t: &crate::counters::TrackerSnapshot,
    endpoint: Vec<String>,
    sinks: &[std::sync::Arc<crate::sinks::SinkShared>],
) -> Vec<String> {
    let mut w = Vec::new();
    if !t.janus.disconnects_visible {
        w.push("the WebSockets transport has events = false: closed connections are invisible to event handlers".to_string());
    }
    w.extend(endpoint);
    for s in sinks {
        if let Some(why) = s.stats().cannot_acknowledge() {
            w.push(format!("sink {}: {why}", s.name()));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Result<Request, AdminError> {
        parse(Some(&v))
    }

    #[test]
    fn validates_like_janus() {
        assert_eq!(parse(None).unwrap_err().code(), 412);
        assert_eq!(p(json!([])).unwrap_err().code(), 413);
        assert_eq!(p(json!({})).unwrap_err(), AdminError::Missing("request"));
        assert_eq!(
            p(json!({"request": 1})).unwrap_err(),
            AdminError::invalid("request", "a string")
        );
        assert_eq!(
            p(json!({"request": "Nope"})).unwrap_err(),
            AdminError::UnknownRequest("Nope".into())
        );
        assert_eq!(p(json!({"request": "INFO"})).unwrap(), Request::Info);
        assert_eq!(
            p(json!({"request": "info", "x": 1})).unwrap_err().code(),
            413
        );
    }

    #[test]
    fn sessions_paging() {
        assert_eq!(
            p(json!({"request": "sessions"})).unwrap(),
            Request::Sessions {
                offset: 0,
                limit: 100
            }
        );
        assert_eq!(
            p(json!({"request": "sessions", "offset": 5, "limit": 2})).unwrap(),
            Request::Sessions {
                offset: 5,
                limit: 2
            }
        );
        assert_eq!(
            p(json!({"request": "sessions", "limit": 0}))
                .unwrap_err()
                .code(),
            413
        );
        assert_eq!(
            p(json!({"request": "sessions", "limit": 10001}))
                .unwrap_err()
                .code(),
            413
        );
        assert_eq!(
            p(json!({"request": "sessions", "offset": -1}))
                .unwrap_err()
                .code(),
            413
        );
        assert_eq!(
            p(json!({"request": "sessions", "offset": "1"}))
                .unwrap_err()
                .code(),
            413
        );
    }

    #[test]
    fn tweaks() {
        assert_eq!(
            p(json!({"request": "tweak", "events": "sessions", "settle_ms": 900})).unwrap(),
            Request::Tweak(Tweak {
                events: Some(EventMask(crate::janus::types::SESSION)),
                settle_ms: Some(900),
                ..Tweak::default()
            })
        );
        assert_eq!(p(json!({"request": "tweak"})).unwrap_err().code(), 412);
        assert_eq!(
            p(json!({"request": "tweak", "enabled": false})).unwrap_err(),
            AdminError::Missing("sink")
        );
        assert_eq!(
            p(json!({"request": "tweak", "events": "bogus"}))
                .unwrap_err()
                .code(),
            413
        );
        assert_eq!(
            p(json!({"request": "tweak", "settle_ms": 600001}))
                .unwrap_err()
                .code(),
            413
        );
        assert_eq!(
            p(json!({"request": "tweak", "sink": 3, "enabled": true}))
                .unwrap_err()
                .code(),
            413
        );
    }
}
