//! Logging through Janus's logger, the way Janus's own handlers log.
//!
//! `jlog!(Warn, "...")` formats only when Janus's `debug_level` would print
//! the line, and prefixes it with the handler's name.

/// Logs a line at a Janus log level (`Fatal`, `Err`, `Warn`, `Info`, `Verb`, `Huge`, `Dbg`).
#[macro_export]
macro_rules! jlog {
    ($level:ident, $($arg:tt)*) => {{
        let level = $crate::ffi::Level::$level;
        if $crate::ffi::log_enabled(level) {
            $crate::ffi::log_line(level, &format!("[lifecycleevh] {}", format_args!($($arg)*)));
        }
    }};
}

/// Limits a repeated message to one line per interval, counting the rest.
pub struct RateLimit {
    interval: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub const fn new(interval: std::time::Duration) -> RateLimit {
        RateLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Some(number of lines suppressed since the last one) when this one may be logged.
    pub fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
