//! Janus's own event bus: synthetic endings re-injected into Janus, so that
//! every loaded handler (sampleevh, rabbitmqevh, mqttevh, wsevh, gelfevh, ...)
//! gets them too, exactly as Janus 1.3.2+ emits its own `destroyed` when a
//! transport goes away: type 1, name `destroyed`, the session id, no
//! transport object.
//!
//! It is not a sink: it runs on the worker thread, synchronously:
//! `janus_events_notify_handlers` only queues the event for Janus's events
//! thread (never from that thread itself), and the tracker must know at once
//! that the `destroyed` coming back is our own echo.
//!
//! When to inject (`general.inject` lists the reasons; all four synthetic
//! ones by default):
//! - never an ending Janus puts on its bus itself: on Janus >= 1.3.2 with
//!   reclaim off, a connection's session at shutdown (the tracker decides,
//!   see `Ending::janus_ends_too`; its transport-gone endings are native
//!   already);
//! - never once the core `shutdown` event was seen or `destroy()` began,
//!   except for the shutdown endings themselves, injected while the shutdown
//!   event is processed (Janus's events thread still runs then);
//! - the handler's own sinks get every ending directly in any case, with the
//!   ending's own timestamp; the echo is recognised and not forwarded again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{Value, json};

use crate::ffi;
use crate::tracker::{Ending, Reason};

/// Counters shared with the Admin API.
#[derive(Debug, Default)]
pub struct BusStats {
    /// Endings injected, by reason (indexed like [`Reason::ALL`]).
    pub injected: [AtomicU64; 6],
    /// Endings that would have been injected but could not be (bus missing).
    pub skipped: AtomicU64,
    /// Endings not injected because Janus puts its own on the bus (a
    /// connection's session at shutdown, Janus >= 1.3.2, reclaim off).
    pub left_to_janus: AtomicU64,
    /// When the last ending was injected (to measure, at `destroy()`, how
    /// long before the bus went away the last injection was made).
    pub last_injection: std::sync::Mutex<Option<std::time::Instant>>,
}

impl BusStats {
    pub fn injected_total(&self) -> u64 {
        self.injected.iter().map(|n| n.load(Relaxed)).sum()
    }
}

/// The re-injection of synthetic endings onto Janus's event bus.
pub struct Bus {
    reasons: Vec<Reason>,
    available: bool,
    stats: Arc<BusStats>,
}

impl Bus {
    /// `reasons`: the endings to inject. Looks the bus up in the process.
    pub fn new(reasons: Vec<Reason>) -> Bus {
        Bus::with_availability(reasons, ffi::bus::available())
    }

    /// For tests: a bus that is (not) there.
    pub fn with_availability(reasons: Vec<Reason>, available: bool) -> Bus {
        Bus {
            reasons,
            available,
            stats: Arc::new(BusStats::default()),
        }
    }

    pub fn available(&self) -> bool {
        self.available
    }

    pub fn enabled(&self) -> bool {
        !self.reasons.is_empty()
    }

    pub fn stats(&self) -> Arc<BusStats> {
        self.stats.clone()
    }

    /// Puts the ending on Janus's bus if its reason is listed and the bus is
    /// there. `allowed` is false once shutdown was seen or destroy began
    /// (see the module documentation). Returns true when injected.
    pub fn inject(&self, ending: &Ending, allowed: bool) -> bool {
        if !allowed || !ending.synthetic || !self.reasons.contains(&ending.reason) {
            return false;
        }
        if ending.janus_ends_too {
            self.stats.left_to_janus.fetch_add(1, Relaxed);
            return false;
        }
        if !self.available {
            self.stats.skipped.fetch_add(1, Relaxed);
            return false;
        }
        let ok = ffi::bus::notify_session_destroyed(ending.session_id);
        if ok {
            let r = Reason::ALL
                .iter()
                .position(|r| *r == ending.reason)
                .unwrap_or(0);
            self.stats.injected[r].fetch_add(1, Relaxed);
            *crate::sync::lock(&self.stats.last_injection) = Some(std::time::Instant::now());
        } else {
            self.stats.skipped.fetch_add(1, Relaxed);
        }
        ok
    }

    /// The bus's state for the Admin API `info`.
    pub fn info(reasons: &[Reason], available: bool, stats: &BusStats) -> Value {
        let reasons: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        let mut by_reason = serde_json::Map::new();
        for (i, r) in Reason::ALL.iter().enumerate() {
            by_reason.insert(r.as_str().into(), json!(stats.injected[i].load(Relaxed)));
        }
        json!({
            "available": available,
            "enabled": !reasons.is_empty() && available,
            "reasons": reasons,
            "injected": stats.injected_total(),
            "injected_by_reason": by_reason,
            "skipped": stats.skipped.load(Relaxed),
            "left_to_janus": stats.left_to_janus.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ending(reason: Reason, synthetic: bool) -> Ending {
        Ending::new(1, reason, 0, synthetic)
    }

    #[test]
    fn injects_only_listed_synthetic_endings_when_allowed() {
        // Outside Janus the bus is missing: nothing is injected, misses are counted.
        let bus = Bus::new(vec![Reason::TransportGone]);
        assert!(!bus.available());
        assert!(!bus.inject(&ending(Reason::TransportGone, true), true));
        assert_eq!(bus.stats().skipped.load(Relaxed), 1);
        // Not listed, not synthetic, or not allowed: not even attempted.
        assert!(!bus.inject(&ending(Reason::Timeout, true), true));
        assert!(!bus.inject(&ending(Reason::TransportGone, false), true));
        assert!(!bus.inject(&ending(Reason::TransportGone, true), false));
        assert_eq!(bus.stats().skipped.load(Relaxed), 1);
        // Janus puts its own ending on the bus: not injected, counted.
        let bus = Bus::with_availability(vec![Reason::Shutdown], true);
        let own = Ending {
            janus_ends_too: true,
            ..ending(Reason::Shutdown, true)
        };
        assert!(!bus.inject(&own, true));
        assert_eq!(bus.stats().left_to_janus.load(Relaxed), 1);
        let none = Bus::with_availability(vec![], true);
        assert!(!none.enabled());
        assert!(!none.inject(&ending(Reason::Shutdown, true), true));
    }
}
