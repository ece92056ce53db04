//! Admin API: answers to `query_eventhandler` requests, in Janus's style.
//!
//! ```text
//! POST /admin {"janus": "query_eventhandler", "handler": "janus.eventhandler.lifecycleevh",
//!              "request": {"request": "info"}, ...}
//! ```
//!
//! Requests: `info`. Errors carry `error_code` and `error` like Janus's own
//! handlers (411 unknown request, 412 missing element, 413 invalid element,
//! 414 handler not running).

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Map, Value, json};

use crate::config::PACKAGE;
use crate::handler::Running;
use crate::sinks::janus_bus::JanusBus;
use crate::tracker::Reason;

pub const ERROR_INVALID_REQUEST: i64 = 411;
pub const ERROR_MISSING_ELEMENT: i64 = 412;
pub const ERROR_INVALID_ELEMENT: i64 = 413;
pub const ERROR_NOT_RUNNING: i64 = 414;

pub fn error(code: i64, message: impl Into<String>) -> Value {
    json!({"error_code": code, "error": message.into()})
}

/// The answer of a handler that Janus keeps loaded although its `init` failed.
pub fn not_running(why: Option<&str>) -> Value {
    error(
        ERROR_NOT_RUNNING,
        match why {
            Some(w) => format!("lifecycleevh is not running: {w}"),
            None => "lifecycleevh is not running".to_string(),
        },
    )
}

/// Answers one request.
pub fn handle(request: Option<&Value>, running: &Running) -> Value {
    let Some(request) = request else {
        return error(ERROR_MISSING_ELEMENT, "Missing mandatory element (request)");
    };
    let Some(obj) = request.as_object() else {
        return error(
            ERROR_INVALID_ELEMENT,
            "Invalid element type (request should be an object)",
        );
    };
    let name = match obj.get("request") {
        None => return error(ERROR_MISSING_ELEMENT, "Missing mandatory element (request)"),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(_) => {
            return error(
                ERROR_INVALID_ELEMENT,
                "Invalid element type (request should be a string)",
            );
        }
    };
    match name.as_str() {
        "info" => info(running),
        #[cfg(feature = "fault-injection")]
        "fault" => match crate::faults::arm(obj.get("in").and_then(Value::as_str).unwrap_or("")) {
            Ok(()) => json!({"result": 200}),
            Err(e) => error(ERROR_INVALID_ELEMENT, e),
        },
        _ => error(
            ERROR_INVALID_REQUEST,
            format!(
                "Unknown request '{}'",
                obj["request"].as_str().unwrap_or("")
            ),
        ),
    }
}

/// `info`: version, counters, channel, tracker and sinks.
fn info(r: &Running) -> Value {
    let m = &r.metrics;
    let t = m.tracker();
    let (depth, capacity) = r.channel();
    let mut endings = Map::new();
    for (i, reason) in Reason::ALL.iter().enumerate() {
        endings.insert(reason.as_str().into(), json!(t.stats.endings[i]));
    }
    let mut sinks = Map::new();
    for s in &r.sinks {
        sinks.insert(s.name().to_string(), s.info());
    }
    json!({
        "result": 200,
        "package": PACKAGE,
        "version": env!("CARGO_PKG_VERSION"),
        "config_file": r.config.file_path.display().to_string(),
        "inside_janus": r.inside_janus,
        "uptime_s": r.started.elapsed().as_secs(),
        "events": {
            "received": m.received.load(Relaxed),
            "dropped": m.dropped.load(Relaxed),
            "processed": m.processed.load(Relaxed),
            "forwarded": m.forwarded.load(Relaxed),
            "suppressed": m.suppressed.load(Relaxed),
            "decode_errors": m.decode_errors.load(Relaxed),
            "internal_errors": m.internal_errors.load(Relaxed),
            "forwarding": r.config.general.events.to_string(),
        },
        "channel": {"depth": depth, "capacity": capacity},
        "tracker": {
            "live_sessions": t.live_sessions,
            "created": t.stats.created,
            "endings": endings,
            "synthetic": t.stats.synthetic,
            "duplicates_suppressed": t.stats.duplicates,
            "echoes": t.stats.echoes,
            "unknown_sessions": t.stats.unknown_sessions,
            "evicted": t.stats.evicted,
            "claimed": t.stats.claimed,
            "settle_ms": t.settle_ms,
            "reclaim_session_timeout": t.reclaim_session_timeout,
            "max_sessions": r.config.general.max_sessions,
            "disconnects_visible": r.config.janus.websockets_events,
            "shut_down": t.shut_down,
        },
        "sinks": sinks,
        "janus_bus": JanusBus::info(&r.config.general.inject, r.bus_available, &r.bus),
        "warnings": r.config.janus.warnings,
    })
}
