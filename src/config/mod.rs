//! The handler's configuration: `janus.eventhandler.lifecycleevh.jcfg` in the
//! folder Janus passes to `init`. Janus's own files are not read: what the
//! handler needs of Janus (its version, `reclaim_session_timeout`, whether
//! transports report disconnects) comes from Janus's own events (the core
//! `started` event, transport events).
//!
//! Every key is documented in the README and in the sample
//! `conf/janus.eventhandler.lifecycleevh.jcfg`. A wrong key or value is an
//! error naming the file, the key and the problem; the handler then disables
//! itself and Janus keeps running.

pub mod jcfg;
pub mod mask;
pub mod metrics;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jcfg::{Setting, Value};
pub use mask::EventMask;
pub use metrics::MetricsConfig;

pub use crate::durable::Fsync;

use crate::reason::Reason;

/// The handler's package name, which is also its config file's stem.
pub const PACKAGE: &str = "janus.eventhandler.lifecycleevh";

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// `category.key`, or empty for a problem with the whole file.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.problem)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// `general` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct General {
    pub enabled: bool,
    /// Event types forwarded to sinks that do not set their own `events`.
    pub events: EventMask,
    /// Capacity of the channel between Janus's events thread and the worker.
    pub channel_capacity: usize,
    pub settle: Duration,
    /// `reclaim_session_timeout` set in this file (overrides what Janus
    /// reports in its `started` event).
    pub reclaim_session_timeout: Option<u64>,
    pub max_sessions: usize,
    /// How long `destroy()` may take to drain, flush and join.
    pub shutdown_timeout: Duration,
    /// Synthetic endings put on Janus's own event bus, by reason.
    pub inject: Vec<Reason>,
    /// Where the open sessions are kept for crash recovery (None: off).
    pub state_dir: Option<PathBuf>,
    pub state_fsync: Fsync,
    /// How often the open sessions' last-seen times are written.
    pub checkpoint: Duration,
}

impl Default for General {
    fn default() -> Self {
        General {
            enabled: false,
            events: EventMask::ALL,
            channel_capacity: 65_536,
            settle: Duration::from_millis(500),
            reclaim_session_timeout: None,
            max_sessions: 1_000_000,
            shutdown_timeout: Duration::from_millis(5_000),
            inject: vec![
                Reason::TransportGone,
                Reason::Timeout,
                Reason::ReclaimExpired,
                Reason::Shutdown,
            ],
            state_dir: None,
            state_fsync: Fsync::Interval,
            checkpoint: Duration::from_millis(5_000),
        }
    }
}

/// `file` settings: the JSON Lines sink.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    pub enabled: bool,
    pub path: PathBuf,
    pub flush: Duration,
    /// Overrides `general.events` for this sink.
    pub events: Option<EventMask>,
    pub queue_size: usize,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            enabled: true,
            path: PathBuf::from("/var/log/janus/lifecycleevh.jsonl"),
            flush: Duration::from_millis(1_000),
            events: None,
            queue_size: 65_536,
        }
    }
}

/// An `http` or `http-<name>` category: one HTTP backend.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// The category name (`http`, `http-billing`, ...), also the sink's name.
    pub name: String,
    pub enabled: bool,
    pub target: HttpTarget,
    /// Overrides `general.events` for this backend.
    pub events: Option<EventMask>,
    pub max_batch: usize,
    pub max_delay: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub queue_size: usize,
    pub spool: Option<SpoolOptions>,
}

/// sampleevh's `json` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// `{"a":1}`
    Compact,
    /// `{"a": 1}`: no newlines, spaces after separators.
    Plain,
    /// Newlines and three spaces of indentation, as sampleevh's default.
    Indented,
}

impl JsonStyle {
    pub fn parse(text: &str) -> Option<JsonStyle> {
        match text.to_ascii_lowercase().as_str() {
            "compact" => Some(JsonStyle::Compact),
            "plain" => Some(JsonStyle::Plain),
            "indented" => Some(JsonStyle::Indented),
            _ => None,
        }
    }
}

/// How request bodies are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    /// gzip, but no `Content-Encoding` header (Janus 1.1.x's sampleevh).
    Sampleevh,
    Zlib,
}

impl Compression {
    pub fn parse(text: &str) -> Option<Compression> {
        match text.to_ascii_lowercase().as_str() {
            "gzip" => Some(Compression::Gzip),
            "sampleevh" => Some(Compression::Sampleevh),
            "zlib" => Some(Compression::Zlib),
            _ => None,
        }
    }
}

/// What an HTTP sink needs to send (the queueing, retry and spool settings
/// are the runner's).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTarget {
    pub backend: String,
    pub grouping: bool,
    pub json: JsonStyle,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Compression and its level (1 to 9).
    pub compress: Option<(Compression, u32)>,
    pub timeout: Duration,
    /// Trust only these CAs (PEM) instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub tls_verify: bool,
}

/// The durable spool of an HTTP backend.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolOptions {
    /// `<spool_dir>/<category name>`.
    pub dir: PathBuf,
    pub all_events: bool,
    pub fsync: Fsync,
    pub fsync_every: Duration,
    pub max_bytes: u64,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub file_path: PathBuf,
    pub general: General,
    pub file: FileConfig,
    /// HTTP backends, in file order.
    pub http: Vec<HttpConfig>,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
}

impl Config {
    /// Reads `<folder>/janus.eventhandler.lifecycleevh.jcfg` and Janus's files.
    pub fn load(folder: &Path) -> Result<Config, ConfigError> {
        let path = folder.join(format!("{PACKAGE}.jcfg"));
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            file: path.clone(),
            key: String::new(),
            problem: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&path, &text)
    }

    /// Parses the handler's config text (`path` is only used in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let doc = jcfg::parse(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            problem: format!("syntax error at {e}"),
        })?;
        let mut config = Config {
            file_path: path.to_path_buf(),
            ..Config::default()
        };
        for setting in &doc.settings {
            let items = match &setting.value {
                Value::Group(items) => items,
                other => {
                    return Err(ConfigError {
                        file: path.to_path_buf(),
                        key: setting.name.clone(),
                        problem: format!(
                            "expected a category ({{ ... }}), found a {} at line {}",
                            other.type_name(),
                            setting.line
                        ),
                    });
                }
            };
            let mut r = Reader::new(path, &setting.name, items);
            match setting.name.as_str() {
                "general" => config.general = read_general(&mut r)?,
                "file" => config.file = read_file(&mut r)?,
                name if is_http_category(name) => config.http.push(read_http(&mut r, name)?),
                "metrics" => {
                    // Reads and checks its keys itself.
                    config.metrics = metrics::read_metrics(path, items)?;
                    continue;
                }
                other => {
                    return Err(r.error(
                        other,
                        "unknown category (known: general, file, http, http-<name>, metrics)",
                    ));
                }
            }
            r.finish()?;
        }
        Ok(config)
    }
}

fn read_general(r: &mut Reader<'_>) -> Result<General, ConfigError> {
    let d = General::default();
    Ok(General {
        enabled: r.bool("enabled")?.unwrap_or(d.enabled),
        events: r.mask("events")?.unwrap_or(d.events),
        channel_capacity: r
            .int_in("channel_capacity", 16, 16_777_216)?
            .map_or(d.channel_capacity, |v| v as usize),
        settle: r.millis("settle_ms", 0, 600_000)?.unwrap_or(d.settle),
        reclaim_session_timeout: r.int_in("reclaim_session_timeout", 0, 86_400 * 365)?,
        max_sessions: r
            .int_in("max_sessions", 1, 1 << 32)?
            .map_or(d.max_sessions, |v| v as usize),
        shutdown_timeout: r
            .millis("shutdown_timeout_ms", 100, 600_000)?
            .unwrap_or(d.shutdown_timeout),
        inject: r.reasons("inject")?.unwrap_or(d.inject),
        state_dir: r.path("state_dir")?,
        state_fsync: r
            .choice("state_fsync", "always, interval, never", Fsync::parse)?
            .unwrap_or(d.state_fsync),
        checkpoint: r
            .millis("checkpoint_ms", 100, 3_600_000)?
            .unwrap_or(d.checkpoint),
    })
}

/// `http`, or `http-` followed by letters, digits, `-` or `_`.
fn is_http_category(name: &str) -> bool {
    name == "http"
        || name.strip_prefix("http-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn read_http(r: &mut Reader<'_>, name: &str) -> Result<HttpConfig, ConfigError> {
    let backend = match r.string("backend")? {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => url,
        Some(url) => {
            return Err(r.error(
                "backend",
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
        None => return Err(r.error("backend", "missing: the URL events are POSTed to")),
    };
    let grouping = r.bool("grouping")?.unwrap_or(true);
    let compress = r.bool("compress")?.unwrap_or(false);
    let level = r.int_in("compression", 1, 9)?.unwrap_or(6) as u32;
    let format = r
        .choice(
            "compression_format",
            "gzip, sampleevh, zlib",
            Compression::parse,
        )?
        .unwrap_or(Compression::Gzip);
    let target = HttpTarget {
        backend,
        grouping,
        json: r
            .choice("json", "compact, plain, indented", JsonStyle::parse)?
            .unwrap_or(JsonStyle::Compact),
        user: r.string("backend_user")?,
        password: r.string("backend_pwd")?,
        compress: compress.then_some((format, level)),
        timeout: r
            .millis("timeout_ms", 100, 600_000)?
            .unwrap_or(Duration::from_secs(10)),
        ca_file: r.path("ca_file")?,
        tls_verify: r.bool("tls_verify")?.unwrap_or(true),
    };
    let spool_dir = r.path("spool_dir")?;
    let spool_what = r.choice("spool", "lifecycle, all", |t| {
        match t.to_ascii_lowercase().as_str() {
            "lifecycle" => Some(false),
            "all" => Some(true),
            _ => None,
        }
    })?;
    let fsync = r.choice("spool_fsync", "always, interval, never", Fsync::parse)?;
    let fsync_every = r.millis("spool_fsync_ms", 10, 600_000)?;
    let max_mb = r.int_in("spool_max_mb", 1, 1 << 20)?;
    let spool = spool_dir.map(|dir| SpoolOptions {
        dir: dir.join(name),
        all_events: spool_what.unwrap_or(false),
        fsync: fsync.unwrap_or(Fsync::Interval),
        fsync_every: fsync_every.unwrap_or(Duration::from_millis(1_000)),
        max_bytes: max_mb.unwrap_or(1024) << 20,
    });
    let backoff = r
        .millis("retransmissions_backoff", 1, 600_000)?
        .unwrap_or(Duration::from_millis(100));
    Ok(HttpConfig {
        name: name.to_string(),
        enabled: r.bool("enabled")?.unwrap_or(true),
        events: r.mask("events")?,
        max_batch: if grouping {
            r.int_in("max_batch", 1, 10_000)?.unwrap_or(100) as usize
        } else {
            r.int_in("max_batch", 1, 10_000)?;
            1
        },
        max_delay: r
            .millis("max_delay_ms", 0, 60_000)?
            .unwrap_or(Duration::ZERO),
        retries: r.int_in("max_retransmissions", 0, 1_000_000)?.unwrap_or(5) as u32,
        backoff,
        backoff_max: r
            .millis("backoff_max_ms", 1, 3_600_000)?
            .unwrap_or(Duration::from_secs(30))
            .max(backoff),
        queue_size: r
            .int_in("queue_size", 16, 16_777_216)?
            .map_or(65_536, |v| v as usize),
        spool,
        target,
    })
}

fn read_file(r: &mut Reader<'_>) -> Result<FileConfig, ConfigError> {
    let d = FileConfig::default();
    let path = match r.string("path")? {
        Some(p) if p.is_empty() => return Err(r.error("path", "must not be empty")),
        Some(p) => PathBuf::from(p),
        None => d.path,
    };
    Ok(FileConfig {
        enabled: r.bool("enabled")?.unwrap_or(d.enabled),
        path,
        flush: r.millis("flush_ms", 1, 3_600_000)?.unwrap_or(d.flush),
        events: r.mask("events")?,
        queue_size: r
            .int_in("queue_size", 16, 16_777_216)?
            .map_or(d.queue_size, |v| v as usize),
    })
}

/// Typed access to one category's settings, remembering which were read so
/// that unknown (misspelt) keys are reported.
struct Reader<'a> {
    file: &'a Path,
    category: &'a str,
    items: &'a [Setting],
    used: Vec<bool>,
}

impl<'a> Reader<'a> {
    fn new(file: &'a Path, category: &'a str, items: &'a [Setting]) -> Reader<'a> {
        Reader {
            file,
            category,
            items,
            used: vec![false; items.len()],
        }
    }

    fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        let key = if key == self.category {
            key.to_string()
        } else {
            format!("{}.{}", self.category, key)
        };
        ConfigError {
            file: self.file.to_path_buf(),
            key,
            problem: problem.into(),
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a Setting> {
        let i = self.items.iter().position(|s| s.name == key)?;
        self.used[i] = true;
        Some(&self.items[i])
    }

    /// A scalar as text (Janus reads every scalar as a string).
    fn text(&mut self, key: &str) -> Result<Option<(String, &'a Setting)>, ConfigError> {
        let Some(s) = self.get(key) else {
            return Ok(None);
        };
        match s.value.as_text() {
            Some(t) => Ok(Some((t, s))),
            None => Err(self.error(
                key,
                format!(
                    "expected a single value, found a {} (line {})",
                    s.value.type_name(),
                    s.line
                ),
            )),
        }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(s) = self.get(key) else {
            return Ok(None);
        };
        match &s.value {
            Value::Str(t) => Ok(Some(t.clone())),
            other => Err(self.error(
                key,
                format!(
                    "expected a quoted string, found a {} (line {})",
                    other.type_name(),
                    s.line
                ),
            )),
        }
    }

    /// A non-empty path string.
    fn path(&mut self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.string(key)? {
            Some(p) if p.is_empty() => Err(self.error(key, "must not be empty")),
            Some(p) => Ok(Some(PathBuf::from(p))),
            None => Ok(None),
        }
    }

    /// One of a fixed set of words.
    fn choice<T>(
        &mut self,
        key: &str,
        allowed: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((t, s)) = self.text(key)? else {
            return Ok(None);
        };
        match parse(t.trim()) {
            Some(v) => Ok(Some(v)),
            None => Err(self.error(
                key,
                format!("expected one of {allowed}, found {:?} (line {})", t, s.line),
            )),
        }
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some((t, s)) = self.text(key)? else {
            return Ok(None);
        };
        match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            _ => Err(self.error(
                key,
                format!("expected true or false, found {:?} (line {})", t, s.line),
            )),
        }
    }

    fn int_in(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let Some((t, s)) = self.text(key)? else {
            return Ok(None);
        };
        match t.trim().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            Ok(v) => Err(self.error(
                key,
                format!("{v} is out of range ({min} to {max}) (line {})", s.line),
            )),
            Err(_) => Err(self.error(
                key,
                format!(
                    "expected a whole number from {min} to {max}, found {:?} (line {})",
                    t, s.line
                ),
            )),
        }
    }

    fn millis(&mut self, key: &str, min: u64, max: u64) -> Result<Option<Duration>, ConfigError> {
        Ok(self.int_in(key, min, max)?.map(Duration::from_millis))
    }

    fn mask(&mut self, key: &str) -> Result<Option<EventMask>, ConfigError> {
        let Some((t, s)) = self.text(key)? else {
            return Ok(None);
        };
        EventMask::parse(&t)
            .map(Some)
            .map_err(|e| self.error(key, format!("{e} (line {})", s.line)))
    }

    fn reasons(&mut self, key: &str) -> Result<Option<Vec<Reason>>, ConfigError> {
        let Some((t, s)) = self.text(key)? else {
            return Ok(None);
        };
        parse_inject(&t)
            .map(Some)
            .map_err(|e| self.error(key, format!("{e} (line {})", s.line)))
    }

    /// Fails on the first setting nobody asked for.
    fn finish(self) -> Result<(), ConfigError> {
        match self.used.iter().position(|u| !u) {
            None => Ok(()),
            Some(i) => {
                let s = &self.items[i];
                Err(self.error(&s.name, format!("unknown key (line {})", s.line)))
            }
        }
    }
}

/// Parses `general.inject`: `none`, or a comma-separated list of reasons among
/// transport_gone, shutdown, timeout, reclaim_expired.
pub fn parse_inject(text: &str) -> Result<Vec<Reason>, String> {
    const ALLOWED: [Reason; 4] = [
        Reason::TransportGone,
        Reason::Shutdown,
        Reason::Timeout,
        Reason::ReclaimExpired,
    ];
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for word in text.split(',').map(str::trim) {
        match Reason::parse(&word.to_ascii_lowercase()) {
            Some(r) if ALLOWED.contains(&r) => {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            _ => {
                return Err(format!(
                    "unknown reason {word:?} (allowed: none, or a list of transport_gone, shutdown, timeout, reclaim_expired)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
