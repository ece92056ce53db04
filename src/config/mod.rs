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

pub mod exporter;
pub mod jcfg;
pub mod keys;
pub mod mask;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use exporter::MetricsConfig;
use jcfg::{Setting, Value};
use keys::{Default as KeyDefault, Key, Kind};
pub use mask::EventMask;

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
    /// `reclaim_session_timeout` set in this file (overrides janus.jcfg).
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
    /// Permission bits of the crash-state files the handler creates (their
    /// folder gets [`dir_mode`] of it), and of the sinks' files unless a sink
    /// sets its own `file_mode`.
    pub file_mode: u32,
}

/// `file` settings: the JSON Lines sink.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    pub enabled: bool,
    pub path: PathBuf,
    /// How often rotation is checked, and the longest wait between retries
    /// while writes fail (lines are written at once, never held for it).
    pub flush: Duration,
    /// Overrides `general.events` for this sink.
    pub events: Option<EventMask>,
    pub queue_size: usize,
    /// Permission bits of the file when the sink creates it (its folder,
    /// when created, gets [`dir_mode`] of it); `general.file_mode` if unset.
    pub file_mode: u32,
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
///
/// `backend` may carry `user:password@` and `password` is a secret: neither
/// is ever shown. Use [`HttpTarget::backend_shown`] in logs, errors and
/// `info`; `Debug` masks both.
#[derive(Clone, PartialEq)]
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

impl HttpTarget {
    /// The backend URL without its password (see [`redact_url`]).
    pub fn backend_shown(&self) -> String {
        redact_url(&self.backend)
    }
}

impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTarget")
            .field("backend", &self.backend_shown())
            .field("grouping", &self.grouping)
            .field("json", &self.json)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("compress", &self.compress)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("tls_verify", &self.tls_verify)
            .finish()
    }
}

/// `url` with the secret part of its `user:password@` masked:
/// `https://janus:***@host/path`. A userinfo without `:` may be a token
/// (`https://TOKEN@host`) and is masked whole. Works on any text, valid URL
/// or not, so that error messages about a bad URL can use it too.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let masked = match authority[..at].split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{}{masked}{}", &url[..start], &rest[at..])
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
    /// Permission bits of the spool's files (its folder: [`dir_mode`] of
    /// it); `general.file_mode` if the category does not set `file_mode`.
    pub file_mode: u32,
}

/// Parses a `file_mode`: permission bits as octal digits (`"640"` or
/// `"0640"`), none beyond `0777` (no setuid, setgid or sticky bit), the
/// owner (the user Janus runs as) keeps read and write, and neither the
/// group nor others may write: the files are billing records and crash
/// state that the handler trusts when it reads them back.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim();
    let octal = (3..=4).contains(&digits.len()) && digits.chars().all(|c| ('0'..='7').contains(&c));
    let mode = match u32::from_str_radix(digits, 8) {
        Ok(mode) if octal => mode,
        _ => {
            return Err(format!(
                "expected permission bits in octal such as \"0640\", found {text:?}"
            ));
        }
    };
    if mode > 0o777 {
        return Err(format!(
            "{text:?} sets more than permission bits (0 to 0777): no setuid, setgid or sticky bit"
        ));
    }
    if mode & 0o600 != 0o600 {
        return Err(format!(
            "{text:?} takes read or write away from the owner (the user Janus runs as), who must keep both (0600)"
        ));
    }
    if mode & 0o022 != 0 {
        let who = match mode & 0o022 {
            0o020 => "the group",
            0o002 => "every user",
            _ => "the group and every user",
        };
        return Err(format!(
            "{text:?} lets {who} write: the files hold billing records and the crash state the handler reads back, so only the owner may write (e.g. \"0640\", or \"0644\" to let everyone read)"
        ));
    }
    Ok(mode)
}

pub use crate::durable::dir_mode;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
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
    /// Reads `<folder>/janus.eventhandler.lifecycleevh.jcfg`.
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
    /// Keys the text does not set get their defaults from [`keys`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let doc = jcfg::parse(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            problem: format!("syntax error at {e}"),
        })?;
        // `general` first: the other categories inherit from it.
        let general_items = doc.category("general").unwrap_or(&[]);
        let mut r = Reader::new(path, "general", keys::GENERAL, general_items);
        let general = read_general(&mut r)?;
        r.finish()?;
        let mut file = None;
        let mut http = Vec::new();
        let mut metrics = MetricsConfig::default();
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
            match setting.name.as_str() {
                "general" => {}
                "file" => {
                    let mut r = Reader::new(path, "file", keys::FILE, items);
                    file = Some(read_file(&mut r, &general)?);
                    r.finish()?;
                }
                name if is_http_category(name) => {
                    let mut r = Reader::new(path, name, keys::HTTP, items);
                    http.push(read_http(&mut r, name, &general)?);
                    r.finish()?;
                }
                // Reads and checks its keys itself.
                "metrics" => metrics = exporter::read_metrics(path, items)?,
                other => {
                    return Err(ConfigError {
                        file: path.to_path_buf(),
                        key: other.to_string(),
                        problem:
                            "unknown category (known: general, file, http, http-<name>, metrics)"
                                .into(),
                    });
                }
            }
        }
        let file = match file {
            Some(file) => file,
            None => {
                let mut r = Reader::new(path, "file", keys::FILE, &[]);
                read_file(&mut r, &general)?
            }
        };
        Ok(Config {
            file_path: path.to_path_buf(),
            general,
            file,
            http,
            metrics,
        })
    }
}

fn read_general(r: &mut Reader<'_>) -> Result<General, ConfigError> {
    Ok(General {
        enabled: r.value("enabled", as_bool)?,
        events: r.value("events", as_mask)?,
        channel_capacity: r.value("channel_capacity", as_whole)? as usize,
        settle: r.value("settle_ms", as_millis)?,
        reclaim_session_timeout: r.optional("reclaim_session_timeout", as_whole)?,
        max_sessions: r.value("max_sessions", as_whole)? as usize,
        shutdown_timeout: r.value("shutdown_timeout_ms", as_millis)?,
        inject: r.value("inject", as_inject)?,
        state_dir: r.optional("state_dir", as_path)?,
        state_fsync: r.value("state_fsync", |k, v| as_word(k, v, Fsync::parse))?,
        checkpoint: r.value("checkpoint_ms", as_millis)?,
        file_mode: r.value("file_mode", as_mode)?,
    })
}

fn read_file(r: &mut Reader<'_>, general: &General) -> Result<FileConfig, ConfigError> {
    Ok(FileConfig {
        enabled: r.value("enabled", as_bool)?,
        path: r.value("path", as_path)?,
        flush: r.value("flush_ms", as_millis)?,
        events: r.optional("events", as_mask)?,
        queue_size: r.value("queue_size", as_whole)? as usize,
        file_mode: r
            .optional("file_mode", as_mode)?
            .unwrap_or(general.file_mode),
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

fn read_http(r: &mut Reader<'_>, name: &str, general: &General) -> Result<HttpConfig, ConfigError> {
    let grouping = r.value("grouping", as_bool)?;
    let compress = r.value("compress", as_bool)?;
    let level = r.value("compression", as_whole)? as u32;
    let format = r.value("compression_format", |k, v| {
        as_word(k, v, Compression::parse)
    })?;
    let target = HttpTarget {
        backend: r.value("backend", as_url)?,
        grouping,
        json: r.value("json", |k, v| as_word(k, v, JsonStyle::parse))?,
        user: r.optional("backend_user", as_string)?,
        password: r.optional("backend_pwd", as_string)?,
        compress: compress.then_some((format, level)),
        timeout: r.value("timeout_ms", as_millis)?,
        ca_file: r.optional("ca_file", as_path)?,
        tls_verify: r.value("tls_verify", as_bool)?,
    };
    let spool_dir = r.optional("spool_dir", as_path)?;
    let all_events = r.value("spool", |k, v| {
        as_word(k, v, |t| match t.to_ascii_lowercase().as_str() {
            "lifecycle" => Some(false),
            "all" => Some(true),
            _ => None,
        })
    })?;
    let fsync = r.value("spool_fsync", |k, v| as_word(k, v, Fsync::parse))?;
    let fsync_every = r.value("spool_fsync_ms", as_millis)?;
    let max_mb = r.value("spool_max_mb", as_whole)?;
    let file_mode = r
        .optional("file_mode", as_mode)?
        .unwrap_or(general.file_mode);
    let spool = spool_dir.map(|dir| SpoolOptions {
        dir: dir.join(name),
        all_events,
        fsync,
        fsync_every,
        max_bytes: max_mb << 20,
        file_mode,
    });
    let max_batch = r.value("max_batch", as_whole)? as usize;
    let backoff = r.value("retransmissions_backoff", as_millis)?;
    Ok(HttpConfig {
        name: name.to_string(),
        enabled: r.value("enabled", as_bool)?,
        events: r.optional("events", as_mask)?,
        // Without grouping, one event per request (max_batch is still checked).
        max_batch: if grouping { max_batch } else { 1 },
        max_delay: r.value("max_delay_ms", as_millis)?,
        retries: r.value("max_retransmissions", as_whole)? as u32,
        backoff,
        backoff_max: r.value("backoff_max_ms", as_millis)?.max(backoff),
        queue_size: r.value("queue_size", as_whole)? as usize,
        spool,
        target,
    })
}

/// Typed access to one category's settings: each key's value from the file
/// or, when absent, its default from [`keys`] (through the same checks), and
/// the keys that were read, so that unknown (misspelt) keys are reported.
struct Reader<'a> {
    file: &'a Path,
    category: &'a str,
    keys: &'static [Key],
    items: &'a [Setting],
    used: Vec<bool>,
    /// Keys asked for (a test checks every key of the table is read).
    asked: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    fn new(
        file: &'a Path,
        category: &'a str,
        keys: &'static [Key],
        items: &'a [Setting],
    ) -> Reader<'a> {
        Reader {
            file,
            category,
            keys,
            items,
            used: vec![false; items.len()],
            asked: Vec::new(),
        }
    }

    fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            key: format!("{}.{}", self.category, key),
            problem: problem.into(),
        }
    }

    /// The key's value: from the file, else its default (None when the
    /// default is "unset", another key's or Janus's).
    fn optional<T>(
        &mut self,
        name: &str,
        check: impl Fn(&Key, &Value) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(key) = keys::find(self.keys, name) else {
            return Err(self.error(name, "internal error: the key is not in the table of keys"));
        };
        self.asked.push(key.name);
        if let Some(i) = self.items.iter().position(|s| s.name == name) {
            self.used[i] = true;
            let s = &self.items[i];
            return check(key, &s.value)
                .map(Some)
                .map_err(|problem| self.error(name, format!("{problem} (line {})", s.line)));
        }
        match key.default {
            KeyDefault::Is(text) => {
                check(key, &Value::Str(text.to_string()))
                    .map(Some)
                    .map_err(|problem| {
                        self.error(
                            name,
                            format!("internal error: the default {text:?}: {problem}"),
                        )
                    })
            }
            KeyDefault::Required => Err(self.error(name, "missing: this key is required")),
            KeyDefault::Unset | KeyDefault::Inherits(_) | KeyDefault::FromJanus => Ok(None),
        }
    }

    /// The value of a key that has a default of its own.
    fn value<T>(
        &mut self,
        name: &str,
        check: impl Fn(&Key, &Value) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.optional(name, check)? {
            Some(v) => Ok(v),
            None => Err(self.error(name, "internal error: the key has no default of its own")),
        }
    }

    /// Fails on the first setting nobody asked for.
    fn finish(self) -> Result<(), ConfigError> {
        debug_assert!(
            self.keys.iter().all(|k| self.asked.contains(&k.name)),
            "{}: a key of the table is never read",
            self.category
        );
        match self.used.iter().position(|u| !u) {
            None => Ok(()),
            Some(i) => {
                let s = &self.items[i];
                Err(self.error(&s.name, format!("unknown key (line {})", s.line)))
            }
        }
    }
}

/// A scalar as text (Janus reads every scalar as a string).
fn scalar(value: &Value) -> Result<String, String> {
    value
        .as_text()
        .ok_or_else(|| format!("expected a single value, found a {}", value.type_name()))
}

fn as_bool(_: &Key, value: &Value) -> Result<bool, String> {
    let t = scalar(value)?;
    match t.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected true or false, found {t:?}")),
    }
}

/// A whole number in the key's range: an integer, or a string of digits
/// (Janus reads `"5000"` as 5000). Fractions and exponents are refused,
/// also when they happen to be whole (`1.5e3`, `2.0`).
fn as_whole(key: &Key, value: &Value) -> Result<u64, String> {
    let Kind::Whole { min, max, why } = key.kind else {
        return Err("internal error: not a whole-number key".into());
    };
    let expected = format!("expected a whole number from {min} to {max}");
    let n = match value {
        Value::Int(i) => u64::try_from(*i).map_err(|_| format!("{expected}, found {i}"))?,
        Value::Float(_) => {
            return Err(format!(
                "{expected}, found {} (a fraction or an exponent is not a whole number)",
                scalar(value)?
            ));
        }
        other => {
            let t = scalar(other)?;
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("{expected}, found {t:?}"))?
        }
    };
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range ({min} to {max}: {why})"))
    }
}

fn as_millis(key: &Key, value: &Value) -> Result<Duration, String> {
    as_whole(key, value).map(Duration::from_millis)
}

/// One of the key's words.
fn as_word<T>(key: &Key, value: &Value, parse: fn(&str) -> Option<T>) -> Result<T, String> {
    let t = scalar(value)?;
    parse(t.trim()).ok_or_else(|| {
        let allowed = key.kind.describe().replace('`', "");
        format!("expected one of {allowed}, found {t:?}")
    })
}

fn as_mask(_: &Key, value: &Value) -> Result<EventMask, String> {
    EventMask::parse(&scalar(value)?)
}

fn as_inject(_: &Key, value: &Value) -> Result<Vec<Reason>, String> {
    parse_inject(&scalar(value)?)
}

fn as_string(_: &Key, value: &Value) -> Result<String, String> {
    match value {
        Value::Str(t) => Ok(t.clone()),
        other => Err(format!(
            "expected a quoted string, found a {}",
            other.type_name()
        )),
    }
}

/// A non-empty path string.
fn as_path(key: &Key, value: &Value) -> Result<PathBuf, String> {
    match as_string(key, value)? {
        p if p.is_empty() => Err("must not be empty".into()),
        p => Ok(PathBuf::from(p)),
    }
}

/// An `http://` or `https://` URL with a host, as `url` (and so ureq)
/// parses it. The URL standard `url` follows forgives `http:host` and
/// `http:///host`; they are refused here, since they are typos more often
/// than not. Errors show the URL without its password.
fn as_url(key: &Key, value: &Value) -> Result<String, String> {
    let text = as_string(key, value)?;
    let shown = redact_url(&text);
    let lower = text.to_ascii_lowercase();
    let after_scheme = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match url::Url::parse(&text) {
        Err(e) => Err(format!("{shown:?} is not a valid URL: {e}")),
        Ok(_) if after_scheme.is_none() => {
            Err(format!("{shown:?} is not an http:// or https:// URL"))
        }
        Ok(_) if after_scheme.is_some_and(|rest| rest.starts_with(['/', '\\'])) => {
            Err(format!("{shown:?} has no host after the \"//\""))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Err(format!("{shown:?} has no host")),
        Ok(_) => Ok(text),
    }
}

/// Permission bits as a quoted octal string (a bare `0640` is the decimal
/// integer 640 in this syntax, so it is refused).
fn as_mode(_: &Key, value: &Value) -> Result<u32, String> {
    match value {
        Value::Str(t) => parse_mode(t),
        other => Err(format!(
            "expected permission bits as a quoted octal string such as \"0640\", found {} (a {})",
            scalar(other).unwrap_or_default(),
            other.type_name()
        )),
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
