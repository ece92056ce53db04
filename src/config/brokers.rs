//! The broker sinks' categories: `rabbitmq` (and `rabbitmq-<name>`), with
//! the keys of Janus's own rabbitmqevh where it has them, and the HTTP
//! sink's keys for batching, retries and the spool.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::jcfg::Value;
use super::keys::{Key, Kind};
use super::{
    ConfigError, EventMask, General, JsonStyle, Reader, SpoolOptions, as_bool, as_mask, as_millis,
    as_path, as_string, as_whole, as_word, read_spool,
};

/// A secret (a password): shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// What a sink's TLS client trusts and shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Trust only these CAs (PEM) instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and its key (PEM), both or neither.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Check the server's certificate chain (false: accept any, tests only).
    pub verify_peer: bool,
    /// Check that the certificate names the host (false: any name).
    pub verify_hostname: bool,
}

impl TlsOptions {
    /// The system's CAs (or `ca_file`'s), full verification, no client certificate.
    pub fn verified(ca_file: Option<PathBuf>) -> TlsOptions {
        TlsOptions {
            ca_file,
            client_cert: None,
            verify_peer: true,
            verify_hostname: true,
        }
    }
}

/// How a broker sink's runner delivers: batching, retries, queue, spool
/// (the same keys as an HTTP backend's).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The category name (`rabbitmq`, `rabbitmq-billing`, ...), also the sink's name.
    pub name: String,
    pub enabled: bool,
    /// Overrides `general.events` for this sink.
    pub events: Option<EventMask>,
    /// Events per attempt (published, then confirmed together).
    pub max_batch: usize,
    pub max_delay: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// How long connecting, and confirming an attempt's messages, may take.
    pub timeout: Duration,
    pub queue_size: usize,
    pub spool: Option<SpoolOptions>,
}

/// A `rabbitmq` or `rabbitmq-<name>` category: one RabbitMQ (AMQP 0-9-1) broker.
#[derive(Debug, Clone, PartialEq)]
pub struct RabbitMqConfig {
    pub delivery: Delivery,
    /// One message per batch (a JSON array), or one per event.
    pub grouping: bool,
    pub json: JsonStyle,
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub username: String,
    pub password: Secret,
    /// None: the default exchange (`""`), which routes by queue name.
    pub exchange: Option<String>,
    pub exchange_type: String,
    pub route_key: String,
    /// A durable queue declared (and bound to `exchange` with `route_key`).
    pub queue_name: Option<String>,
    /// Seconds (0: off).
    pub heartbeat: u16,
    /// Some: AMQPS.
    pub tls: Option<TlsOptions>,
}

/// MQTT's protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    V311,
    V5,
}

/// An `mqtt` or `mqtt-<name>` category: one MQTT broker.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub delivery: Delivery,
    pub json: JsonStyle,
    /// The URL as configured (shown in `info`; it has no password).
    pub url: String,
    pub host: String,
    pub port: u16,
    pub version: MqttVersion,
    pub client_id: String,
    /// Zero: no keep-alive.
    pub keep_alive: Duration,
    /// 1 or 2.
    pub qos: u8,
    pub retain: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The base topic; with `addevent`, `<topic>/<type>` (`/janus/events/sessions`).
    pub topic: String,
    pub addevent: bool,
    /// Some: TLS (an `ssl://` or `mqtts://` URL, or `tls_enable`).
    pub tls: Option<TlsOptions>,
}

/// A `nats` or `nats-<name>` category: one NATS server with JetStream.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsConfig {
    pub delivery: Delivery,
    pub json: JsonStyle,
    /// The URL as configured (shown in `info`).
    pub url: String,
    pub host: String,
    pub port: u16,
    pub subject: String,
    /// The stream that takes `subject` (None: whichever does).
    pub stream: Option<String>,
    /// Create `stream` when it is missing.
    pub create_stream: bool,
    /// The deduplication window of a stream this sink creates.
    pub duplicate_window: Duration,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    pub tls: Option<TlsOptions>,
}

/// `<prefix>`, or `<prefix>-` followed by letters, digits, `-` or `_`.
pub(super) fn is_named(name: &str, prefix: &str) -> bool {
    name == prefix
        || name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
}

/// The delivery keys; `max_batch` is the name of the key that bounds the
/// events of an attempt, and a category without `max_delay_ms` sends at once.
fn read_delivery(
    r: &mut Reader<'_>,
    name: &str,
    general: &General,
    max_batch: &str,
) -> Result<Delivery, ConfigError> {
    let backoff = r.value("retransmissions_backoff", as_millis)?;
    let max_delay = match super::keys::find(r.keys, "max_delay_ms") {
        Some(_) => r.value("max_delay_ms", as_millis)?,
        None => Duration::ZERO,
    };
    Ok(Delivery {
        name: name.to_string(),
        enabled: r.value("enabled", as_bool)?,
        events: r.optional("events", as_mask)?,
        max_batch: r.value(max_batch, as_whole)? as usize,
        max_delay,
        retries: r.value("max_retransmissions", as_whole)? as u32,
        backoff,
        backoff_max: r.value("backoff_max_ms", as_millis)?.max(backoff),
        timeout: r.value("timeout_ms", as_millis)?,
        queue_size: r.value("queue_size", as_whole)? as usize,
        spool: read_spool(r, name, general)?,
    })
}

/// A host name or IP address: not empty, no spaces, no scheme or port.
fn as_host(key: &Key, value: &Value) -> Result<String, String> {
    let host = as_string(key, value)?;
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok(host)
}

pub(super) fn read_rabbitmq(
    r: &mut Reader<'_>,
    name: &str,
    general: &General,
) -> Result<RabbitMqConfig, ConfigError> {
    let delivery = read_delivery(r, name, general, "max_batch")?;
    let grouping = r.value("grouping", as_bool)?;
    let exchange = r.optional("exchange", as_string)?.filter(|e| !e.is_empty());
    let exchange_type = r.value("exchange_type", |k, v| {
        as_word(k, v, |t| {
            ["fanout", "direct", "topic", "headers"]
                .contains(&t.to_ascii_lowercase().as_str())
                .then(|| t.to_ascii_lowercase())
        })
    })?;
    let route_key = r.value("route_key", as_string)?;
    let queue_name = r
        .optional("queue_name", as_string)?
        .filter(|q| !q.is_empty());
    // The default exchange routes by queue name: a queue of another name
    // than route_key would never get a message.
    if exchange.is_none()
        && let Some(q) = &queue_name
        && *q != route_key
    {
        return Err(r.error(
            "queue_name",
            format!(
                "{q:?} differs from route_key {route_key:?}: without an exchange, messages go to the queue named by route_key (set exchange, or the same name in both)"
            ),
        ));
    }
    let ssl = r.value("ssl_enable", as_bool)?;
    let ca_file = r.optional("ssl_cacert", as_path)?;
    let cert = r.optional("ssl_cert", as_path)?;
    let key = r.optional("ssl_key", as_path)?;
    let verify_peer = r.value("ssl_verify_peer", as_bool)?;
    let verify_hostname = r.value("ssl_verify_hostname", as_bool)?;
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(r.error("ssl_key", "missing: ssl_cert is set, and needs its key"));
        }
        (None, Some(_)) => {
            return Err(r.error(
                "ssl_cert",
                "missing: ssl_key is set, and needs its certificate",
            ));
        }
    };
    let tls = ssl.then_some(TlsOptions {
        ca_file,
        client_cert,
        verify_peer,
        verify_hostname,
    });
    Ok(RabbitMqConfig {
        delivery,
        grouping,
        json: r.value("json", |k, v| as_word(k, v, JsonStyle::parse))?,
        host: r.value("host", as_host)?,
        port: r.value("port", as_whole)? as u16,
        vhost: r.value("vhost", as_string)?,
        username: r.value("username", as_string)?,
        password: Secret(r.value("password", as_string)?),
        exchange,
        exchange_type,
        route_key,
        queue_name,
        heartbeat: r.value("heartbeat", as_whole)? as u16,
        tls,
    })
}

/// A broker URL: `scheme://host[:port]` (nothing after the authority but
/// an optional `/`). Returns the scheme, host and port (None: the
/// scheme's default).
fn as_broker_url(key: &Key, value: &Value) -> Result<(String, String, Option<u16>), String> {
    let text = as_string(key, value)?;
    let Kind::BrokerUrl { schemes } = key.kind else {
        return Err("internal error: not a broker URL key".into());
    };
    let allowed: Vec<&str> = schemes
        .split(", ")
        .map(|s| s.trim_matches('`').trim_end_matches("://"))
        .collect();
    let url = url::Url::parse(&text).map_err(|e| format!("{text:?} is not a valid URL: {e}"))?;
    if !allowed.contains(&url.scheme()) {
        return Err(format!(
            "{text:?}: the scheme must be one of {}",
            schemes.replace('`', "")
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{text:?} has no host"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{:?}: put the user name and password in username and password, not in the URL",
            super::redact_url(&text)
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?}: nothing may follow the host and port"));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((url.scheme().to_string(), host, url.port()))
}

pub(super) fn read_mqtt(
    r: &mut Reader<'_>,
    name: &str,
    general: &General,
) -> Result<MqttConfig, ConfigError> {
    let delivery = read_delivery(r, name, general, "max_inflight")?;
    let (scheme, host, port) = r.value("url", as_broker_url)?;
    let url = r.value("url", as_string)?;
    let tls = read_tls(r, matches!(scheme.as_str(), "ssl" | "mqtts"))?;
    let username = r.optional("username", as_string)?;
    let password = r.optional("password", as_string)?.map(Secret);
    if password.is_some() && username.is_none() {
        return Err(r.error(
            "username",
            "missing: password is set, and needs its user name",
        ));
    }
    Ok(MqttConfig {
        delivery,
        json: r.value("json", |k, v| as_word(k, v, JsonStyle::parse))?,
        url,
        port: port.unwrap_or(if tls.is_some() { 8883 } else { 1883 }),
        host,
        version: r.value("mqtt_version", |k, v| {
            as_word(k, v, |t| match t {
                "3.1.1" => Some(MqttVersion::V311),
                "5" | "5.0" => Some(MqttVersion::V5),
                _ => None,
            })
        })?,
        client_id: r.value("client_id", as_string)?,
        keep_alive: Duration::from_secs(r.value("keep_alive_interval", as_whole)?),
        qos: r.value("qos", as_whole)? as u8,
        retain: r.value("retain", as_bool)?,
        username,
        password,
        topic: r.value("topic", as_string)?,
        addevent: r.value("addevent", as_bool)?,
        tls,
    })
}

/// The `tls_*` keys (mqttevh's names): Some with `tls_enable` or a TLS URL.
fn read_tls(r: &mut Reader<'_>, tls_url: bool) -> Result<Option<TlsOptions>, ConfigError> {
    let enabled = r.value("tls_enable", as_bool)? || tls_url;
    let ca_file = r.optional("tls_cacert", as_path)?;
    let cert = r.optional("tls_client_cert", as_path)?;
    let key = r.optional("tls_client_key", as_path)?;
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(r.error(
                "tls_client_key",
                "missing: tls_client_cert is set, and needs its key",
            ));
        }
        (None, Some(_)) => {
            return Err(r.error(
                "tls_client_cert",
                "missing: tls_client_key is set, and needs its certificate",
            ));
        }
    };
    let tls = TlsOptions {
        ca_file,
        client_cert,
        verify_peer: r.value("tls_verify_peer", as_bool)?,
        verify_hostname: r.value("tls_verify_hostname", as_bool)?,
    };
    Ok(enabled.then_some(tls))
}

pub(super) fn read_nats(
    r: &mut Reader<'_>,
    name: &str,
    general: &General,
) -> Result<NatsConfig, ConfigError> {
    let delivery = read_delivery(r, name, general, "max_batch")?;
    let (scheme, host, port) = r.value("url", as_broker_url)?;
    let url = r.value("url", as_string)?;
    let tls = read_tls(r, scheme == "tls")?;
    let username = r.optional("username", as_string)?;
    let password = r.optional("password", as_string)?.map(Secret);
    let token = r.optional("token", as_string)?.map(Secret);
    if password.is_some() && username.is_none() {
        return Err(r.error(
            "username",
            "missing: password is set, and needs its user name",
        ));
    }
    if token.is_some() && username.is_some() {
        return Err(r.error("token", "set a token, or a username and password, not both"));
    }
    let subject = r.value("subject", as_string)?;
    if subject.is_empty()
        || subject.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
        || subject.split('.').any(str::is_empty)
    {
        return Err(r.error(
            "subject",
            format!("{subject:?} is not a NATS subject to publish to (dot-separated tokens, no spaces or wildcards)"),
        ));
    }
    let stream = r.optional("stream", as_string)?.filter(|s| !s.is_empty());
    if let Some(s) = &stream
        && s.contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(r.error(
            "stream",
            format!("{s:?} is not a stream name (no spaces, '.', '*', '>', '/' or '\\')"),
        ));
    }
    let create_stream = r.value("create_stream", as_bool)?;
    if create_stream && stream.is_none() {
        return Err(r.error("stream", "missing: create_stream needs the stream's name"));
    }
    Ok(NatsConfig {
        delivery,
        json: r.value("json", |k, v| as_word(k, v, JsonStyle::parse))?,
        url,
        host,
        port: port.unwrap_or(4222),
        subject,
        stream,
        create_stream,
        duplicate_window: r.value("duplicate_window_ms", as_millis)?,
        username,
        password,
        token,
        tls,
    })
}
