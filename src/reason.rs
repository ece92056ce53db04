//! Why a session ended: the `reason` of its `destroyed` event, the
//! vocabulary of the output contract (docs/output.md). Shared by the
//! config (`general.inject`), the tracker, the output and the counters.

/// Why a session ended: the `reason` of its `destroyed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Janus API `destroy` or Admin API `destroy_session`.
    Request,
    /// Janus's session timeout (no keepalive for `session_timeout` seconds).
    Timeout,
    /// The transport connection closed (reclaim off).
    TransportGone,
    /// The transport closed and nobody claimed the session within
    /// `reclaim_session_timeout`.
    ReclaimExpired,
    /// Janus shut down with the session open.
    Shutdown,
    /// Found open after Janus died without a shutdown (crash recovery).
    GatewayRestart,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Request,
        Reason::Timeout,
        Reason::TransportGone,
        Reason::ReclaimExpired,
        Reason::Shutdown,
        Reason::GatewayRestart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Request => "request",
            Reason::Timeout => "timeout",
            Reason::TransportGone => "transport_gone",
            Reason::ReclaimExpired => "reclaim_expired",
            Reason::Shutdown => "shutdown",
            Reason::GatewayRestart => "gateway_restart",
        }
    }

    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}
