//! The handler's configuration: `janus.eventhandler.lifecycleevh.jcfg` in the
//! folder Janus passes to `init`. Janus's own files are not read: what the
//! handler needs of Janus (its version, `reclaim_session_timeout`, whether
//! transports report disconnects) comes from Janus's own events (the core
//! `started` event, transport events).
//!
//! Every key is documented in docs/configuration.md and in the sample
//! `conf/janus.eventhandler.lifecycleevh.jcfg`. A wrong key or value is an
//! error naming the file, the key and the problem; the handler then disables
//! itself and Janus keeps running.

mod brokers;
pub mod exporter;
pub mod jcfg;
pub mod keys;
pub mod mask;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use brokers::{
    Delivery, MqttConfig, MqttVersion, NatsConfig, RabbitMqConfig, Secret, TlsOptions,
};
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
    /// RabbitMQ brokers, in file order.
    pub rabbitmq: Vec<RabbitMqConfig>,
    /// MQTT brokers, in file order.
    pub mqtt: Vec<MqttConfig>,
    /// NATS servers (JetStream), in file order.
    pub nats: Vec<NatsConfig>,
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
        let mut rabbitmq = Vec::new();
        let mut mqtt = Vec::new();
        let mut nats = Vec::new();
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
                name if brokers::is_named(name, "rabbitmq") => {
                    let mut r = Reader::new(path, name, keys::RABBITMQ, items);
                    rabbitmq.push(brokers::read_rabbitmq(&mut r, name, &general)?);
                    r.finish()?;
                }
                name if brokers::is_named(name, "mqtt") => {
                    let mut r = Reader::new(path, name, keys::MQTT, items);
                    mqtt.push(brokers::read_mqtt(&mut r, name, &general)?);
                    r.finish()?;
                }
                name if brokers::is_named(name, "nats") => {
                    let mut r = Reader::new(path, name, keys::NATS, items);
                    nats.push(brokers::read_nats(&mut r, name, &general)?);
                    r.finish()?;
                }
                // Reads and checks its keys itself.
                "metrics" => metrics = exporter::read_metrics(path, items)?,
                other => {
                    return Err(ConfigError {
                        file: path.to_path_buf(),
                        key: other.to_string(),
                        problem:
                            "unknown category (known: general, file, http, http-<name>, rabbitmq, rabbitmq-<name>, mqtt, mqtt-<name>, nats, nats-<name>, metrics)"
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
            rabbitmq,
            mqtt,
            nats,
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
    brokers::is_named(name, "http")
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
    let spool = read_spool(r, name, general)?;
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

/// A sink's spool settings (`spool_dir` and the `spool*` keys, `file_mode`):
/// None without `spool_dir`.
fn read_spool(
    r: &mut Reader<'_>,
    name: &str,
    general: &General,
) -> Result<Option<SpoolOptions>, ConfigError> {
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
    Ok(spool_dir.map(|dir| SpoolOptions {
        dir: dir.join(name),
        all_events,
        fsync,
        fsync_every,
        max_bytes: max_mb << 20,
        file_mode,
    }))
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

fn as_string(key: &Key, value: &Value) -> Result<String, String> {
    match value {
        Value::Str(t) => match key.kind {
            Kind::Text { max } if max > 0 && t.len() > max => Err(format!(
                "{} bytes long, longer than the {max} bytes allowed",
                t.len()
            )),
            _ => Ok(t.clone()),
        },
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            Path::new("/etc/janus/janus.eventhandler.lifecycleevh.jcfg"),
            text,
        )
    }

    #[test]
    fn sample_config_parses_to_the_defaults() {
        let text = include_str!("../../conf/janus.eventhandler.lifecycleevh.jcfg");
        // The sample turns the handler on (copying it is how one installs it);
        // everything else it sets, uncommented, is the default.
        let sample = parse(text).unwrap();
        let defaults = parse("general: { enabled = true }").unwrap();
        assert_eq!(sample, defaults);
        assert!(sample.http.is_empty());
    }

    #[test]
    fn defaults_come_from_the_table_of_keys() {
        // An empty file: every key takes its default, through the same checks
        // as a value in the file (an invalid default would be an error here).
        let c = parse("").unwrap();
        assert!(!c.general.enabled);
        assert_eq!(c.general.events, EventMask::ALL);
        assert_eq!(c.general.channel_capacity, 65_536);
        assert_eq!(c.general.settle, Duration::from_millis(500));
        assert_eq!(c.general.reclaim_session_timeout, None);
        assert_eq!(c.general.max_sessions, 1_000_000);
        assert_eq!(c.general.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(
            c.general.inject,
            vec![
                Reason::TransportGone,
                Reason::Timeout,
                Reason::ReclaimExpired,
                Reason::Shutdown
            ]
        );
        assert_eq!(c.general.state_dir, None);
        assert_eq!(c.general.state_fsync, Fsync::Interval);
        assert_eq!(c.general.checkpoint, Duration::from_secs(5));
        assert_eq!(c.general.file_mode, 0o640);
        assert!(c.file.enabled);
        assert_eq!(
            c.file.path,
            PathBuf::from("/var/log/janus/lifecycleevh.jsonl")
        );
        assert_eq!(c.file.flush, Duration::from_secs(1));
        assert_eq!(c.file.events, None);
        assert_eq!(c.file.queue_size, 65_536);
        assert_eq!(c.file.file_mode, 0o640);
        let h = &parse("http: { backend = \"http://b/\" }").unwrap().http[0];
        assert!(h.enabled);
        assert_eq!(h.events, None);
        assert!(h.target.grouping);
        assert_eq!(h.max_batch, 100);
        assert_eq!(h.max_delay, Duration::ZERO);
        assert_eq!(h.target.json, JsonStyle::Compact);
        assert_eq!((&h.target.user, &h.target.password), (&None, &None));
        assert_eq!(h.target.compress, None);
        assert_eq!(h.retries, 5);
        assert_eq!(h.backoff, Duration::from_millis(100));
        assert_eq!(h.backoff_max, Duration::from_secs(30));
        assert_eq!(h.target.timeout, Duration::from_secs(10));
        assert_eq!(h.target.ca_file, None);
        assert!(h.target.tls_verify);
        assert_eq!(h.queue_size, 65_536);
        assert_eq!(h.spool, None);
        assert_eq!(c.metrics, MetricsConfig::default());
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            r#"
general: {
    enabled = "yes"
    events = "sessions,handles"
    channel_capacity = 1024
    settle_ms = 250
    reclaim_session_timeout = 30
    max_sessions = 5000
    shutdown_timeout_ms = 2000
    inject = "none"
    state_dir = "/var/lib/x"
    state_fsync = "always"
    checkpoint_ms = 200
    file_mode = "0600"
}
file: {
    enabled = false
    path = "/tmp/x.jsonl"
    flush_ms = 50
    events = "core"
    queue_size = 100
    file_mode = "0644"
}
"#,
        )
        .unwrap();
        assert!(c.general.enabled);
        assert_eq!(c.general.events.to_string(), "sessions,handles");
        assert_eq!(c.general.channel_capacity, 1024);
        assert_eq!(c.general.settle, Duration::from_millis(250));
        assert_eq!(c.general.reclaim_session_timeout, Some(30));
        assert_eq!(c.general.max_sessions, 5000);
        assert_eq!(c.general.shutdown_timeout, Duration::from_millis(2000));
        assert!(c.general.inject.is_empty());
        assert_eq!(c.general.state_dir, Some(PathBuf::from("/var/lib/x")));
        assert_eq!(c.general.state_fsync, Fsync::Always);
        assert_eq!(c.general.checkpoint, Duration::from_millis(200));
        assert_eq!(c.general.file_mode, 0o600);
        assert!(!c.file.enabled);
        assert_eq!(c.file.path, PathBuf::from("/tmp/x.jsonl"));
        assert_eq!(c.file.flush, Duration::from_millis(50));
        assert_eq!(c.file.events.unwrap().to_string(), "core");
        assert_eq!(c.file.queue_size, 100);
        assert_eq!(c.file.file_mode, 0o644);
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = parse("general: { enabled = true, settle_ms = \"soon\" }").unwrap_err();
        assert_eq!(e.key, "general.settle_ms");
        assert!(e.problem.contains("\"soon\""), "{e}");
        assert!(
            e.to_string().starts_with(
                "/etc/janus/janus.eventhandler.lifecycleevh.jcfg: general.settle_ms: "
            ),
            "{e}"
        );

        let e = parse("general: { enabled = maybe }").unwrap_err();
        assert_eq!(e.key, "");
        assert!(e.problem.starts_with("syntax error at line 1"), "{e}");

        let e = parse("general: { enabled = 2 }").unwrap_err();
        assert_eq!(e.key, "general.enabled");

        let e = parse("general: { events = \"sessions,handels\" }").unwrap_err();
        assert_eq!(e.key, "general.events");
        assert!(e.problem.contains("handels"));

        let e = parse("general: { setle_ms = 5 }").unwrap_err();
        assert_eq!(e.key, "general.setle_ms");
        assert!(e.problem.starts_with("unknown key"));

        let e = parse("fiel: { path = \"/x\" }").unwrap_err();
        assert_eq!(e.key, "fiel");

        let e = parse("file: { path = 5 }").unwrap_err();
        assert_eq!(e.key, "file.path");
        assert!(e.problem.contains("quoted string"));

        let e = parse("file: { path = \"\" }").unwrap_err();
        assert_eq!(e.key, "file.path");

        let e = parse("general: { channel_capacity = 3 }").unwrap_err();
        assert!(e.problem.contains("out of range"), "{e}");

        let e = parse("general: { inject = \"transport_gone,request\" }").unwrap_err();
        assert_eq!(e.key, "general.inject");

        let e = parse("general = 5").unwrap_err();
        assert_eq!(e.key, "general");

        let e = parse("general: { events = [\"a\"] }").unwrap_err();
        assert!(e.problem.contains("single value"), "{e}");
    }

    #[test]
    fn inject_lists() {
        assert_eq!(
            parse_inject("shutdown, timeout,shutdown").unwrap(),
            vec![Reason::Shutdown, Reason::Timeout]
        );
        assert_eq!(parse_inject("NONE").unwrap(), vec![]);
        assert!(parse_inject("gateway_restart").is_err());
        assert!(parse_inject("").is_err());
    }

    /// Janus's own files are not read (what the handler needs of Janus comes
    /// from its events): whatever libconfig accepts there, `@include` included,
    /// never turns into a handler error.
    #[test]
    fn janus_own_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("janus.jcfg"),
            "@include \"elsewhere.jcfg\"\ngeneral: { session_timeout = 60L, x = 0x10 }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("janus.transport.websockets.jcfg"),
            "general: { events = false",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("janus.eventhandler.lifecycleevh.jcfg"),
            "general: { enabled = true }",
        )
        .unwrap();
        let c = Config::load(dir.path()).unwrap();
        assert!(c.general.enabled);
    }

    #[test]
    fn load_reports_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::load(dir.path()).unwrap_err();
        assert!(e.file.ends_with("janus.eventhandler.lifecycleevh.jcfg"));
        assert!(e.problem.starts_with("cannot read the file"));
    }

    /// The sample's commented-out category that starts with `start`, uncommented.
    fn sample_section(start: &str) -> String {
        let sample = include_str!("../../conf/janus.eventhandler.lifecycleevh.jcfg");
        let at = sample.find(start).unwrap();
        let mut section = Vec::new();
        for line in sample[at..].lines() {
            section.push(line.strip_prefix('#').unwrap_or(line));
            if line == "#}" {
                break;
            }
        }
        section.join("\n")
    }

    #[test]
    fn the_sample_http_section_parses_with_every_key() {
        let section = sample_section("#http-billing: {");
        let c = parse(&format!("general: {{ enabled = true }}\n{section}")).unwrap();
        let h = &c.http[0];
        assert_eq!(h.name, "http-billing");
        assert_eq!(h.target.backend, "https://billing.example.com/janus-events");
        assert_eq!(h.events.unwrap().to_string(), "sessions");
        assert!(h.target.grouping);
        assert_eq!(h.max_batch, 100);
        assert_eq!(h.max_delay, Duration::ZERO);
        assert_eq!(h.target.json, JsonStyle::Compact);
        assert_eq!(h.target.user.as_deref(), Some("janus"));
        assert_eq!(h.target.password.as_deref(), Some("secret"));
        assert_eq!(h.target.compress, None);
        assert_eq!(h.retries, 5);
        assert_eq!(h.backoff, Duration::from_millis(100));
        assert_eq!(h.backoff_max, Duration::from_secs(30));
        assert_eq!(h.target.timeout, Duration::from_secs(10));
        assert_eq!(
            h.target.ca_file,
            Some(PathBuf::from("/etc/ssl/private-ca.pem"))
        );
        assert!(h.target.tls_verify);
        assert_eq!(h.queue_size, 65536);
        let spool = h.spool.as_ref().unwrap();
        assert_eq!(
            spool.dir,
            PathBuf::from("/var/spool/lifecycleevh/http-billing")
        );
        assert!(!spool.all_events);
        assert_eq!(spool.fsync, Fsync::Interval);
        assert_eq!(spool.fsync_every, Duration::from_secs(1));
        assert_eq!(spool.max_bytes, 1024 << 20);
        assert_eq!(spool.file_mode, 0o640);
    }

    #[test]
    fn the_sample_rabbitmq_section_parses_with_every_key() {
        let section = sample_section("#rabbitmq-fleet: {");
        let c = parse(&format!("general: {{ enabled = true }}\n{section}")).unwrap();
        let r = &c.rabbitmq[0];
        let d = &r.delivery;
        assert_eq!(d.name, "rabbitmq-fleet");
        assert!(d.enabled);
        assert_eq!(d.events.unwrap().to_string(), "sessions");
        assert_eq!((d.max_batch, d.max_delay), (100, Duration::ZERO));
        assert_eq!(d.retries, 5);
        assert_eq!(d.backoff, Duration::from_millis(100));
        assert_eq!(d.backoff_max, Duration::from_secs(30));
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.queue_size, 65536);
        let spool = d.spool.as_ref().unwrap();
        assert_eq!(
            spool.dir,
            PathBuf::from("/var/spool/lifecycleevh/rabbitmq-fleet")
        );
        assert!(r.grouping);
        assert_eq!(r.json, JsonStyle::Compact);
        assert_eq!((r.host.as_str(), r.port), ("localhost", 5672));
        assert_eq!(r.vhost, "/");
        assert_eq!(r.username, "guest");
        assert_eq!(r.password.0, "guest");
        assert_eq!(format!("{:?}", r.password), "\"***\"");
        assert_eq!(r.exchange.as_deref(), Some("janus-exchange"));
        assert_eq!(r.exchange_type, "fanout");
        assert_eq!(r.route_key, "janus-events");
        assert_eq!(r.queue_name.as_deref(), Some("janus-events"));
        assert_eq!(r.heartbeat, 60);
        assert_eq!(r.tls, None, "ssl_enable = false");
        // Every other key is rabbitmqevh's, whose sample sets ssl_enable.
        let c = parse(&format!(
            "{}\n",
            section.replace("ssl_enable = false", "ssl_enable = true")
        ))
        .unwrap();
        let tls = c.rabbitmq[0].tls.as_ref().unwrap();
        assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/ssl/rabbitmq-ca.pem")));
        assert_eq!(
            tls.client_cert,
            Some((
                PathBuf::from("/etc/ssl/janus.pem"),
                PathBuf::from("/etc/ssl/private/janus.key")
            ))
        );
        assert!(tls.verify_peer && tls.verify_hostname);
    }

    #[test]
    fn the_sample_mqtt_section_parses_with_every_key() {
        let section = sample_section("#mqtt-fleet: {");
        let c = parse(&format!("general: {{ enabled = true }}\n{section}")).unwrap();
        let m = &c.mqtt[0];
        let d = &m.delivery;
        assert_eq!(d.name, "mqtt-fleet");
        assert_eq!(d.events.unwrap().to_string(), "sessions");
        assert_eq!((d.max_batch, d.max_delay), (100, Duration::ZERO));
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(
            d.spool.as_ref().unwrap().dir,
            PathBuf::from("/var/spool/lifecycleevh/mqtt-fleet")
        );
        assert_eq!(m.json, JsonStyle::Compact);
        assert_eq!((m.host.as_str(), m.port), ("localhost", 1883));
        assert_eq!(m.version, MqttVersion::V311);
        assert_eq!(m.client_id, "janus-1.example.com");
        assert_eq!(m.keep_alive, Duration::from_secs(30));
        assert_eq!((m.qos, m.retain), (1, false));
        assert_eq!(m.username.as_deref(), Some("janus"));
        assert_eq!(m.password.as_ref().unwrap().0, "secret");
        assert_eq!((m.topic.as_str(), m.addevent), ("/janus/events", true));
        assert_eq!(m.tls, None);
        let c = parse(&section.replace("tls_enable = false", "tls_enable = true")).unwrap();
        let tls = c.mqtt[0].tls.as_ref().unwrap();
        assert_eq!(tls.ca_file, Some(PathBuf::from("/etc/ssl/mqtt-ca.pem")));
        assert!(tls.client_cert.is_some() && tls.verify_peer && tls.verify_hostname);
    }

    /// mqttevh's URLs: tcp:// and ssl:// (TLS, port 8883 by default).
    #[test]
    fn mqtt_urls() {
        let m = |url: &str| {
            parse(&format!("mqtt: {{ client_id = \"j\", url = \"{url}\" }}")).map(|c| {
                let m = c.mqtt[0].clone();
                (m.host, m.port, m.tls.is_some())
            })
        };
        assert_eq!(
            m("tcp://b.example").unwrap(),
            ("b.example".into(), 1883, false)
        );
        assert_eq!(
            m("ssl://b.example").unwrap(),
            ("b.example".into(), 8883, true)
        );
        assert_eq!(
            m("mqtts://10.0.0.1:9999").unwrap(),
            ("10.0.0.1".into(), 9999, true)
        );
        assert_eq!(
            m("mqtt://[::1]:1884/").unwrap(),
            ("::1".into(), 1884, false)
        );
        for bad in ["ws://b", "tcp://", "tcp://u:p@b", "tcp://b/topic", "b:1883"] {
            let e = m(bad).unwrap_err();
            assert_eq!(e.key, "mqtt.url", "{bad}: {e}");
            assert!(!e.problem.contains(":p@"), "{e}");
        }
        let e = parse("mqtt: { url = \"tcp://b\" }").unwrap_err();
        assert_eq!(e.key, "mqtt.client_id");
        let e = parse("mqtt: { client_id = \"j\", password = \"p\" }").unwrap_err();
        assert_eq!(e.key, "mqtt.username");
        let e = parse("mqtt: { client_id = \"j\", tls_client_key = \"/k\" }").unwrap_err();
        assert_eq!(e.key, "mqtt.tls_client_cert");
    }

    #[test]
    fn the_sample_nats_section_parses_with_every_key() {
        let section = sample_section("#nats-fleet: {");
        // The sample shows both ways to authenticate; one at a time.
        let section = section.replace("token = ", "#token = ");
        let c = parse(&format!("general: {{ enabled = true }}\n{section}")).unwrap();
        let n = &c.nats[0];
        let d = &n.delivery;
        assert_eq!(d.name, "nats-fleet");
        assert_eq!(d.events.unwrap().to_string(), "sessions");
        assert_eq!((d.max_batch, d.max_delay), (100, Duration::ZERO));
        assert_eq!(
            d.spool.as_ref().unwrap().dir,
            PathBuf::from("/var/spool/lifecycleevh/nats-fleet")
        );
        assert_eq!((n.host.as_str(), n.port), ("localhost", 4222));
        assert_eq!(n.subject, "janus.events");
        assert_eq!(n.stream.as_deref(), Some("JANUS"));
        assert!(!n.create_stream);
        assert_eq!(n.duplicate_window, Duration::from_secs(600));
        assert_eq!(n.username.as_deref(), Some("janus"));
        assert_eq!(n.password.as_ref().unwrap().0, "secret");
        assert_eq!(n.token, None);
        assert_eq!(n.tls, None);
        let c = parse(&section.replace("nats://localhost", "tls://localhost")).unwrap();
        assert!(c.nats[0].tls.is_some());
    }

    #[test]
    fn nats_errors() {
        let c = parse("nats: {}").unwrap();
        assert_eq!(c.nats[0].subject, "janus.events");
        assert_eq!(c.nats[0].stream, None);
        let e = parse("nats: { create_stream = true }").unwrap_err();
        assert_eq!(e.key, "nats.stream");
        let e = parse("nats: { username = \"u\", token = \"t\" }").unwrap_err();
        assert_eq!(e.key, "nats.token");
        for bad in ["a..b", ".a", "a b", "a.>"] {
            let e = parse(&format!("nats: {{ subject = \"{bad}\" }}")).unwrap_err();
            assert_eq!(e.key, "nats.subject", "{bad}");
        }
    }

    /// rabbitmqevh's minimal config is one of ours: route_key is all it needs.
    #[test]
    fn rabbitmq_defaults_and_errors() {
        let c = parse("rabbitmq: { route_key = \"janus-events\" }").unwrap();
        let r = &c.rabbitmq[0];
        assert_eq!(r.delivery.name, "rabbitmq");
        assert!(r.grouping && r.exchange.is_none() && r.queue_name.is_none());
        assert!(r.delivery.spool.is_none());
        let e = parse("rabbitmq: { host = \"x\" }").unwrap_err();
        assert_eq!(e.key, "rabbitmq.route_key");
        // Without an exchange, the default exchange routes by queue name.
        let e = parse("rabbitmq: { route_key = \"a\", queue_name = \"b\" }").unwrap_err();
        assert_eq!(e.key, "rabbitmq.queue_name");
        assert!(e.problem.contains("without an exchange"), "{e}");
        let e = parse("rabbitmq: { route_key = \"a\", ssl_key = \"/k.pem\" }").unwrap_err();
        assert_eq!(e.key, "rabbitmq.ssl_cert");
        let e = parse("rabbitmq-x y: { route_key = \"a\" }");
        assert!(e.is_err());
        let e = parse("rabbitmq-: { route_key = \"a\" }").unwrap_err();
        assert!(e.problem.contains("unknown category"), "{e}");
        let c = parse(
            "rabbitmq-a: { route_key = \"a\" }\nrabbitmq-b: { route_key = \"b\", enabled = false }",
        )
        .unwrap();
        assert_eq!(c.rabbitmq.len(), 2);
        assert!(!c.rabbitmq[1].delivery.enabled);
    }

    #[test]
    fn http_errors() {
        let e = parse("http: { events = \"all\" }").unwrap_err();
        assert_eq!(e.key, "http.backend");
        assert!(e.problem.starts_with("missing"));
        let e = parse("http-x: { backend = \"ftp://x\" }").unwrap_err();
        assert_eq!(e.key, "http-x.backend");
        let e = parse("http-x: { backend = \"http://x\", json = \"pretty\" }").unwrap_err();
        assert_eq!(e.key, "http-x.json");
        assert!(e.problem.contains("compact, plain, indented"));
        let e = parse("http-x: { backend = \"http://x\", compression = 10 }").unwrap_err();
        assert_eq!(e.key, "http-x.compression");
        let e =
            parse("http-x: { backend = \"http://x\", spool_fsync = \"sometimes\" }").unwrap_err();
        assert_eq!(e.key, "http-x.spool_fsync");
        let e = parse("http-x!: { backend = \"http://x\" }").unwrap_err();
        assert_eq!(e.key, "");
        let e = parse("http-: { backend = \"http://x\" }").unwrap_err();
        assert_eq!(e.key, "http-");
        let c = parse("http: { backend = \"http://a\", grouping = false, max_batch = 50, compress = true, compression_format = \"zlib\" }\nhttp-b: { backend = \"http://b\", enabled = false }").unwrap();
        assert_eq!(c.http.len(), 2);
        assert_eq!(c.http[0].max_batch, 1, "no grouping: one event per request");
        assert_eq!(c.http[0].target.compress, Some((Compression::Zlib, 6)));
        assert!(!c.http[1].enabled);
    }

    /// Every setting of the sample config, commented out or not, with its
    /// category (`http-*` categories as `http`), in file order.
    fn sample_settings() -> Vec<(String, jcfg::Setting)> {
        let sample = include_str!("../../conf/janus.eventhandler.lifecycleevh.jcfg");
        // Settings and categories, commented out or not; prose comments dropped.
        let is_setting = |t: &str| {
            let name: String = t
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            !name.is_empty() && t[name.len()..].trim_start().starts_with('=')
        };
        let uncommented: String = sample
            .lines()
            .map(|l| l.trim_start().trim_start_matches('#').trim_start())
            .filter(|t| is_setting(t) || t.ends_with(": {") || *t == "}")
            .collect::<Vec<_>>()
            .join("\n");
        let doc = jcfg::parse(&uncommented).expect("the sample parses once uncommented");
        let mut settings = Vec::new();
        for cat in &doc.settings {
            if let jcfg::Value::Group(items) = &cat.value {
                // `http-<name>` stands for `http`, `rabbitmq-<name>` for `rabbitmq`...
                let category = cat.name.split('-').next().unwrap_or_default();
                for item in items {
                    settings.push((category.to_string(), item.clone()));
                }
            }
        }
        settings
    }

    /// Every key of the sample config, as `category.key`.
    fn sample_keys() -> Vec<String> {
        sample_settings()
            .iter()
            .map(|(category, s)| format!("{category}.{}", s.name))
            .collect()
    }

    /// Every key of the table of keys, as `category.key`.
    fn table_keys() -> Vec<String> {
        keys::CATEGORIES
            .iter()
            .flat_map(|(category, keys)| keys.iter().map(move |k| format!("{category}.{}", k.name)))
            .collect()
    }

    fn table_key(category: &str, name: &str) -> &'static Key {
        let (_, keys) = keys::CATEGORIES
            .iter()
            .find(|(c, _)| *c == category)
            .unwrap_or_else(|| panic!("no category {category}"));
        keys::find(keys, name).unwrap_or_else(|| panic!("{category}.{name} is not in the table"))
    }

    /// The sample jcfg shows every key of the table and no other, each with its
    /// default where it has one of its own (commented out or not), and says
    /// each range in the comment next to its key.
    #[test]
    fn the_sample_config_agrees_with_the_table_of_keys() {
        let mut sample = sample_keys();
        let mut table = table_keys();
        sample.sort();
        table.sort();
        assert_eq!(
            sample, table,
            "the sample config and keys.rs list different keys"
        );
        let text = include_str!("../../conf/janus.eventhandler.lifecycleevh.jcfg");
        for (category, setting) in sample_settings() {
            let key = table_key(&category, &setting.name);
            let shown = setting.value.as_text().unwrap_or_default();
            if let KeyDefault::Is(default) = key.default {
                // The sample turns the handler on: that is what it is for.
                if (category.as_str(), key.name) != ("general", "enabled") {
                    assert_eq!(
                        shown, default,
                        "{category}.{}: the sample shows {shown:?}, the default is {default:?}",
                        key.name
                    );
                }
            }
            if let Kind::Whole { min, max, .. } = key.kind {
                // The comment from this key's line (in its category) to the next key's.
                let category_at = text
                    .lines()
                    .position(|l| {
                        let t = l.trim_start_matches('#');
                        t.starts_with(category.as_str()) && t.trim_end().ends_with('{')
                    })
                    .unwrap();
                let at = category_at
                    + text
                        .lines()
                        .skip(category_at)
                        .position(|l| {
                            let t = l.trim_start().trim_start_matches('#').trim_start();
                            t.starts_with(key.name)
                                && t[key.name.len()..].trim_start().starts_with('=')
                        })
                        .unwrap();
                let comment: String = text
                    .lines()
                    .skip(at)
                    .take_while({
                        let mut first = true;
                        move |l| {
                            let t = l.trim_start().trim_start_matches('#').trim_start();
                            let is_key = t.split_whitespace().nth(1) == Some("=");
                            std::mem::replace(&mut first, false) || !is_key
                        }
                    })
                    .flat_map(|l| l.split_whitespace().filter(|w| *w != "#"))
                    .map(|w| w.trim_start_matches('#'))
                    .collect::<Vec<_>>()
                    .join(" ");
                assert!(
                    comment.contains(&format!("({min} to {max}")),
                    "{category}.{}: the sample's comment does not say ({min} to {max}...: {comment}",
                    key.name
                );
            }
        }
    }

    /// The tables of docs/configuration.md under `## \`general\``, `## \`file\``,
    /// `## \`http\`` and `## \`metrics\``: (category, key, default cell, values
    /// cell) per row.
    fn documented_rows() -> Vec<(String, String, String, String)> {
        let doc = include_str!("../../docs/configuration.md");
        let mut rows = Vec::new();
        for (category, _) in keys::CATEGORIES {
            let heading = format!("## `{category}`");
            let at = doc
                .lines()
                .position(|l| l.starts_with(&heading))
                .unwrap_or_else(|| panic!("docs/configuration.md: no heading {heading}"));
            let table: Vec<&str> = doc
                .lines()
                .skip(at + 1)
                .skip_while(|l| !l.starts_with('|'))
                .take_while(|l| l.starts_with('|'))
                .collect();
            let cells = |line: &str| -> Vec<String> {
                line.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect()
            };
            assert_eq!(
                cells(table[0])[..3],
                ["key", "default", "values"],
                "docs/configuration.md {heading}: the table's columns"
            );
            for line in &table[2..] {
                let c = cells(line);
                let key = c[0].trim_matches('`').to_string();
                rows.push((category.to_string(), key, c[1].clone(), c[2].clone()));
            }
        }
        rows
    }

    /// docs/configuration.md's tables list every key of the table and no
    /// other, each with the default and the values keys.rs gives it.
    #[test]
    fn the_docs_agree_with_the_table_of_keys() {
        let rows = documented_rows();
        let mut documented: Vec<String> =
            rows.iter().map(|(c, k, _, _)| format!("{c}.{k}")).collect();
        let mut table = table_keys();
        documented.sort();
        table.sort();
        assert_eq!(documented, table, "the docs and keys.rs differ");
        for (category, name, default, values) in &rows {
            let key = table_key(category, name);
            assert_eq!(
                *default,
                key.default.describe(),
                "docs/configuration.md: the default of {category}.{name}"
            );
            assert_eq!(
                *values,
                key.kind.describe(),
                "docs/configuration.md: the values of {category}.{name}"
            );
        }
    }

    #[test]
    fn every_range_says_why() {
        for (category, keys) in keys::CATEGORIES {
            for key in keys {
                if let Kind::Whole { min, max, why } = key.kind {
                    assert!(min <= max && why.len() > 10, "{category}.{}", key.name);
                    // The reason is in the error message.
                    let backend = required(category, key.name);
                    let text = format!("{category}: {{ {backend}{} = {} }}", key.name, max + 1);
                    let e = parse(&text).unwrap_err();
                    assert!(e.problem.contains(why), "{e}");
                    assert!(e.problem.contains(&format!("({min} to {max}: ")), "{e}");
                }
            }
        }
    }

    /// `max_sessions = 1.5e3` was accepted as 1500: the parser turned the float
    /// into the text "1500". Whole-number keys refuse fractions and exponents.
    #[test]
    fn whole_numbers_refuse_fractions_and_exponents() {
        for bad in [
            "1.5e3",
            "2.0",
            "1e3",
            "1500.",
            "1.5",
            "\"1.5e3\"",
            "\"1500.0\"",
            "true",
        ] {
            let e = parse(&format!("general: {{ max_sessions = {bad} }}")).unwrap_err();
            assert_eq!(e.key, "general.max_sessions", "{bad}");
            assert!(
                e.problem
                    .starts_with("expected a whole number from 1 to 4294967296, found "),
                "{bad}: {e}"
            );
        }
        let e = parse("general: { settle_ms = 1.5e3 }").unwrap_err();
        assert_eq!(
            e.problem,
            "expected a whole number from 0 to 600000, found 1500.0 (a fraction or an exponent is not a whole number) (line 1)"
        );
        for good in ["1500", "\"1500\"", "0x5DC", "1500L"] {
            let c = parse(&format!("general: {{ max_sessions = {good} }}")).unwrap();
            assert_eq!(c.general.max_sessions, 1500, "{good}");
        }
    }

    #[test]
    fn backend_must_be_an_http_url_with_a_host() {
        for bad in [
            "http://[::1",
            "http://",
            "http:///path",
            "http:host",
            "HTTPS:\\\\host/",
            "https://:80/",
            "ftp://host/",
            "host:80/path",
            "",
            "http://exa mple.com/",
        ] {
            let text = format!("http: {{ backend = \"{bad}\" }}");
            let e = parse(&text).expect_err(&text);
            assert_eq!(e.key, "http.backend", "{bad}: {e}");
        }
        for good in [
            "http://127.0.0.1:8080/events",
            "https://[::1]:8443/",
            "http://janus:pw@example.com/x?y=1",
        ] {
            let c = parse(&format!("http: {{ backend = \"{good}\" }}")).unwrap();
            assert_eq!(c.http[0].target.backend, good);
        }
        // The password of a URL is not repeated in the error.
        let e = parse("http: { backend = \"http://janus:hunter2@[::1\" }").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("http://janus:***@[::1"), "{e}");
    }

    #[test]
    fn file_modes() {
        for (text, mode) in [
            ("\"0640\"", 0o640),
            ("\"640\"", 0o640),
            ("\"0600\"", 0o600),
            ("\"0644\"", 0o644),
            ("\"0755\"", 0o755),
        ] {
            let c = parse(&format!("general: {{ file_mode = {text} }}")).unwrap();
            assert_eq!(c.general.file_mode, mode, "{text}");
        }
        for bad in [
            "0640",
            "640",
            "\"0400\"",
            "\"0200\"",
            "\"4750\"",
            "\"1777\"",
            "\"0o640\"",
            "\"rw-r-----\"",
            "\"0648\"",
            "\"06400\"",
            "\"64\"",
            "\"\"",
        ] {
            let e = parse(&format!("file: {{ file_mode = {bad} }}")).expect_err(bad);
            assert_eq!(e.key, "file.file_mode", "{bad}: {e}");
        }
        // Group- or world-writable modes are refused, for every file_mode key,
        // naming the key and the file (finding 6 of issue 16: "0777" made the
        // billing log world-writable).
        for (section, key) in [
            ("general: { file_mode = ", "general.file_mode"),
            ("file: { file_mode = ", "file.file_mode"),
            (
                "http: { backend = \"http://a/\", spool_dir = \"/s\", file_mode = ",
                "http.file_mode",
            ),
            (
                "http-billing: { backend = \"http://a/\", spool_dir = \"/s\", file_mode = ",
                "http-billing.file_mode",
            ),
        ] {
            for (bad, who) in [
                ("\"0777\"", "the group and every user"),
                ("\"0666\"", "the group and every user"),
                ("\"0660\"", "the group write"),
                ("\"0620\"", "the group write"),
                ("\"0646\"", "every user write"),
                ("\"0602\"", "every user write"),
            ] {
                let e = parse(&format!("{section}{bad} }}")).expect_err(bad);
                assert_eq!(e.key, key, "{bad}: {e}");
                assert!(e.problem.contains(who), "{bad}: {e}");
                let shown = e.to_string();
                assert!(shown.contains(key) && shown.contains(".jcfg"), "{shown}");
            }
        }
        let e = parse("general: { file_mode = \"0440\" }").unwrap_err();
        assert!(e.problem.contains("must keep both"), "{e}");
        let e = parse("general: { file_mode = 640 }").unwrap_err();
        assert!(e.problem.contains("quoted octal string"), "{e}");
        // The sinks inherit general.file_mode unless they set their own,
        // whichever comes first in the file.
        let c = parse(
            "file: { }\nhttp-a: { backend = \"http://a/\", spool_dir = \"/s\" }\n\
         http-b: { backend = \"http://b/\", spool_dir = \"/s\", file_mode = \"0600\" }\n\
         general: { file_mode = \"0644\" }",
        )
        .unwrap();
        assert_eq!(c.file.file_mode, 0o644);
        assert_eq!(c.http[0].spool.as_ref().unwrap().file_mode, 0o644);
        assert_eq!(c.http[1].spool.as_ref().unwrap().file_mode, 0o600);
        assert_eq!(dir_mode(0o640), 0o750);
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o664), 0o775);
    }

    #[test]
    fn secrets_are_masked_when_shown() {
        assert_eq!(
            redact_url("https://janus:s3cret@host:8443/p?q=1"),
            "https://janus:***@host:8443/p?q=1"
        );
        assert_eq!(redact_url("http://TOKEN@host/"), "http://***@host/");
        assert_eq!(redact_url("http://host/a@b"), "http://host/a@b");
        assert_eq!(redact_url("http://u:p@w@host"), "http://u:***@host");
        assert_eq!(redact_url("http://host"), "http://host");
        assert_eq!(redact_url("not a url"), "not a url");
        let c = parse(
            "http: { backend = \"http://u:urlpass@b/\", backend_user = \"u\", backend_pwd = \"pwdpass\" }",
        )
        .unwrap();
        let t = &c.http[0].target;
        assert_eq!(t.backend_shown(), "http://u:***@b/");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("urlpass") && !debug.contains("pwdpass"),
            "{debug}"
        );
    }

    /// The keys `category` requires, unless `name` is the one: settings to put
    /// before a key tried alone.
    fn required(category: &str, name: &str) -> &'static str {
        match category {
            "http" if name != "backend" => "backend = \"http://127.0.0.1:1/\", ",
            "rabbitmq" if name != "route_key" => "route_key = \"events\", ",
            "mqtt" if name != "client_id" => "client_id = \"janus\", ",
            _ => "",
        }
    }

    /// A name longer than AMQP's short strings (255 bytes).
    const LONG_NAME: &str = concat!(
        "\"",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "\""
    );

    /// Failure behaviour: every key, given a wrong type and a wrong value, is
    /// refused with an error naming the file and that key.
    #[test]
    fn every_key_refuses_a_wrong_type_and_a_wrong_value() {
        // (key, a value of the wrong type, a wrong value of the right type)
        let cases: &[(&str, &str, &str)] = &[
            ("general.enabled", "[true]", "\"perhaps\""),
            ("general.events", "5", "\"sessions,everything\""),
            ("general.channel_capacity", "\"many\"", "0"),
            ("general.settle_ms", "true", "600001"),
            ("general.reclaim_session_timeout", "\"soon\"", "-1"),
            ("general.max_sessions", "1.5", "0"),
            ("general.shutdown_timeout_ms", "\"x\"", "10"),
            ("general.inject", "7", "\"request\""),
            ("general.state_dir", "5", "\"\""),
            ("general.state_fsync", "1", "\"sometimes\""),
            ("general.checkpoint_ms", "\"often\"", "5"),
            ("general.file_mode", "640", "\"0400\""),
            ("file.enabled", "{ }", "\"y\""),
            ("file.path", "true", "\"\""),
            ("file.flush_ms", "\"fast\"", "0"),
            ("file.events", "[1]", "\"nothing\""),
            ("file.queue_size", "\"big\"", "1"),
            ("file.file_mode", "[\"0640\"]", "\"7777\""),
            ("http.enabled", "[]", "\"on\""),
            ("http.backend", "5", "\"ftp://x\""),
            ("http.events", "3", "\"al\""),
            ("http.grouping", "[1]", "\"maybe\""),
            ("http.max_batch", "\"lots\"", "0"),
            ("http.max_delay_ms", "\"later\"", "60001"),
            ("http.json", "1", "\"pretty\""),
            ("http.backend_user", "5", ""),
            ("http.backend_pwd", "5", ""),
            ("http.compress", "(1)", "\"zip\""),
            ("http.compression", "\"best\"", "10"),
            ("http.compression_format", "1", "\"brotli\""),
            ("http.max_retransmissions", "\"few\"", "-3"),
            ("http.retransmissions_backoff", "\"short\"", "0"),
            ("http.backoff_max_ms", "\"long\"", "0"),
            ("http.timeout_ms", "\"5s\"", "50"),
            ("http.ca_file", "5", "\"\""),
            ("http.tls_verify", "[]", "\"never\""),
            ("http.queue_size", "\"big\"", "2"),
            ("http.spool_dir", "5", "\"\""),
            ("http.spool", "1", "\"some\""),
            ("http.spool_fsync", "0", "\"daily\""),
            ("http.spool_fsync_ms", "\"1s\"", "1"),
            ("http.spool_max_mb", "\"1G\"", "0"),
            ("http.file_mode", "true", "\"0644x\""),
            ("rabbitmq.enabled", "[]", "\"on\""),
            ("rabbitmq.events", "3", "\"al\""),
            ("rabbitmq.grouping", "[1]", "\"maybe\""),
            ("rabbitmq.max_batch", "\"lots\"", "10001"),
            ("rabbitmq.max_delay_ms", "\"later\"", "60001"),
            ("rabbitmq.json", "1", "\"pretty\""),
            ("rabbitmq.host", "5", "\"amqp://x\""),
            ("rabbitmq.port", "\"amqp\"", "65536"),
            ("rabbitmq.vhost", "5", ""),
            ("rabbitmq.username", "5", ""),
            ("rabbitmq.password", "5", ""),
            ("rabbitmq.exchange", "5", LONG_NAME),
            ("rabbitmq.exchange_type", "1", "\"broadcast\""),
            ("rabbitmq.route_key", "5", LONG_NAME),
            ("rabbitmq.queue_name", "5", "\"other\""),
            ("rabbitmq.heartbeat", "\"often\"", "3601"),
            ("rabbitmq.ssl_enable", "[]", "\"on\""),
            ("rabbitmq.ssl_cacert", "5", "\"\""),
            ("rabbitmq.ssl_cert", "5", "\"\""),
            ("rabbitmq.ssl_key", "5", "\"\""),
            ("rabbitmq.ssl_verify_peer", "[]", "\"never\""),
            ("rabbitmq.ssl_verify_hostname", "[]", "\"never\""),
            ("rabbitmq.max_retransmissions", "\"few\"", "-3"),
            ("rabbitmq.retransmissions_backoff", "\"short\"", "0"),
            ("rabbitmq.backoff_max_ms", "\"long\"", "0"),
            ("rabbitmq.timeout_ms", "\"5s\"", "50"),
            ("rabbitmq.queue_size", "\"big\"", "2"),
            ("rabbitmq.spool_dir", "5", "\"\""),
            ("rabbitmq.spool", "1", "\"some\""),
            ("rabbitmq.spool_fsync", "0", "\"daily\""),
            ("rabbitmq.spool_fsync_ms", "\"1s\"", "1"),
            ("rabbitmq.spool_max_mb", "\"1G\"", "0"),
            ("rabbitmq.file_mode", "true", "\"0644x\""),
            ("mqtt.enabled", "[]", "\"on\""),
            ("mqtt.events", "3", "\"al\""),
            ("mqtt.json", "1", "\"pretty\""),
            ("mqtt.url", "5", "\"http://broker\""),
            ("mqtt.mqtt_version", "[5]", "\"3.1\""),
            ("mqtt.client_id", "5", LONG_NAME),
            ("mqtt.keep_alive_interval", "\"30s\"", "65536"),
            ("mqtt.qos", "[1]", "0"),
            ("mqtt.retain", "[]", "\"2\""),
            ("mqtt.username", "5", ""),
            ("mqtt.password", "5", ""),
            ("mqtt.topic", "5", ""),
            ("mqtt.addevent", "[]", "\"sometimes\""),
            ("mqtt.max_inflight", "\"many\"", "0"),
            ("mqtt.tls_enable", "[]", "\"on\""),
            ("mqtt.tls_cacert", "5", "\"\""),
            ("mqtt.tls_client_cert", "5", "\"\""),
            ("mqtt.tls_client_key", "5", "\"\""),
            ("mqtt.tls_verify_peer", "[]", "\"never\""),
            ("mqtt.tls_verify_hostname", "[]", "\"never\""),
            ("mqtt.max_retransmissions", "\"few\"", "-3"),
            ("mqtt.retransmissions_backoff", "\"short\"", "0"),
            ("mqtt.backoff_max_ms", "\"long\"", "0"),
            ("mqtt.timeout_ms", "\"5s\"", "50"),
            ("mqtt.queue_size", "\"big\"", "2"),
            ("mqtt.spool_dir", "5", "\"\""),
            ("mqtt.spool", "1", "\"some\""),
            ("mqtt.spool_fsync", "0", "\"daily\""),
            ("mqtt.spool_fsync_ms", "\"1s\"", "1"),
            ("mqtt.spool_max_mb", "\"1G\"", "0"),
            ("mqtt.file_mode", "true", "\"0644x\""),
            ("nats.enabled", "[]", "\"on\""),
            ("nats.events", "3", "\"al\""),
            ("nats.max_batch", "\"lots\"", "10001"),
            ("nats.max_delay_ms", "\"later\"", "60001"),
            ("nats.json", "1", "\"pretty\""),
            ("nats.url", "5", "\"tcp://nats\""),
            ("nats.subject", "5", "\"janus.*\""),
            ("nats.stream", "5", "\"a.b\""),
            ("nats.create_stream", "[]", "\"yes please\""),
            ("nats.duplicate_window_ms", "\"1h\"", "999"),
            ("nats.username", "5", ""),
            ("nats.password", "5", ""),
            ("nats.token", "5", ""),
            ("nats.tls_enable", "[]", "\"on\""),
            ("nats.tls_cacert", "5", "\"\""),
            ("nats.tls_client_cert", "5", "\"\""),
            ("nats.tls_client_key", "5", "\"\""),
            ("nats.tls_verify_peer", "[]", "\"never\""),
            ("nats.tls_verify_hostname", "[]", "\"never\""),
            ("nats.max_retransmissions", "\"few\"", "-3"),
            ("nats.retransmissions_backoff", "\"short\"", "0"),
            ("nats.backoff_max_ms", "\"long\"", "0"),
            ("nats.timeout_ms", "\"5s\"", "50"),
            ("nats.queue_size", "\"big\"", "2"),
            ("nats.spool_dir", "5", "\"\""),
            ("nats.spool", "1", "\"some\""),
            ("nats.spool_fsync", "0", "\"daily\""),
            ("nats.spool_fsync_ms", "\"1s\"", "1"),
            ("nats.spool_max_mb", "\"1G\"", "0"),
            ("nats.file_mode", "true", "\"0644x\""),
            ("metrics.enabled", "[true]", "\"perhaps\""),
            ("metrics.listen", "7090", "\"localhost:7090\""),
            ("metrics.path", "5", "\"metrics\""),
            ("metrics.user", "5", "\"a:b\""),
            ("metrics.password", "5", "\"\""),
            ("metrics.tls_cert", "5", "\"\""),
            ("metrics.tls_key", "5", "\"\""),
        ];
        let documented = sample_keys();
        for key in &documented {
            assert!(
                cases.iter().any(|(k, _, _)| k == key),
                "{key} has no failure case: add one here and to docs/configuration.md"
            );
        }
        for (key, _, _) in cases {
            assert!(
                documented.iter().any(|k| k == key),
                "{key} is not in the sample config"
            );
        }
        for (key, wrong_type, wrong_value) in cases {
            let (category, name) = key.split_once('.').unwrap();
            for bad in [wrong_type, wrong_value]
                .into_iter()
                .filter(|b| !b.is_empty())
            {
                let backend = required(category, name);
                let text = format!("{category}: {{ {backend}{name} = {bad} }}");
                let e = parse(&text).expect_err(&text);
                let names_key =
                    e.key == *key || (e.key.is_empty() && e.problem.starts_with("syntax"));
                assert!(names_key, "{text}: {e}");
                assert!(
                    e.to_string()
                        .starts_with("/etc/janus/janus.eventhandler.lifecycleevh.jcfg: "),
                    "{e}"
                );
            }
        }
    }
}
