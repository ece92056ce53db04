//! Every key of `janus.eventhandler.lifecycleevh.jcfg`, once: its name, the
//! values it takes (for numbers: the range, and why it is the range) and its
//! default.
//!
//! This table is the one place these facts are written. The reader
//! (`super::Config::parse`) takes each key's default and range from it, so a
//! missing key gets exactly the default written here (through the same
//! validation as a value in the file) and an out-of-range value gets an error
//! quoting the range and its reason. The tests in `super::tests` check the
//! configuration tables in docs/configuration.md (the `default` and `values` columns) and the
//! sample `conf/janus.eventhandler.lifecycleevh.jcfg` against it, key by key.

/// What a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` or `false` (also `yes`/`no`/`1`/`0`, as Janus reads them).
    Bool,
    /// A whole number from `min` to `max`: an integer literal or a string of
    /// decimal digits; fractions and exponents (`1.5e3`) are refused.
    /// `why` says why the bounds are what they are.
    Whole {
        min: u64,
        max: u64,
        why: &'static str,
    },
    /// One word of a fixed set (or a list of them), given as `values`.
    Words { values: &'static str },
    /// A quoted string of at most `max` bytes (0: any length).
    Text { max: usize },
    /// A quoted host name or IP address.
    Host,
    /// A quoted, non-empty file system path.
    Path,
    /// A quoted `http://` or `https://` URL with a host.
    Url,
    /// Permission bits as a quoted octal string (`"0640"`): no bits beyond
    /// `0777`, the owner keeps read and write, and neither the group nor
    /// others may write.
    Mode,
    /// A quoted IP address and port (`"127.0.0.1:7090"`, `"[::1]:7090"`).
    Address,
    /// A quoted broker URL: one of `schemes`, a host, an optional port.
    BrokerUrl { schemes: &'static str },
}

impl Kind {
    /// The accepted values as docs/configuration.md's `values` column shows them.
    pub fn describe(&self) -> String {
        match self {
            Kind::Bool => "`true`, `false`".to_string(),
            Kind::Whole { min, max, .. } => format!("{min} to {max}"),
            Kind::Words { values } => (*values).to_string(),
            Kind::Text { max: 0 } => "text".to_string(),
            Kind::Text { max } => format!("text, at most {max} bytes"),
            Kind::Host => "a host name or IP address".to_string(),
            Kind::Path => "a path".to_string(),
            Kind::Url => "an `http://` or `https://` URL".to_string(),
            Kind::Mode => {
                "octal permission bits, owner read and write, no group or other write".to_string()
            }
            Kind::Address => "an IP address and port".to_string(),
            Kind::BrokerUrl { schemes } => format!("a {schemes} URL"),
        }
    }
}

/// A key's value when the file does not set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// This value, as it is written in the file (`65536`, `all`, `0640`).
    Is(&'static str),
    /// Not set: the feature is off, or nothing is sent (`state_dir`, `ca_file`).
    Unset,
    /// The key must be set (`backend`).
    Required,
    /// The value of another key (`general.events`).
    Inherits(&'static str),
    /// What Janus reports in its core `started` event (`reclaim_session_timeout`).
    FromJanus,
}

impl Default {
    /// The default as docs/configuration.md's `default` column shows it.
    pub fn describe(&self) -> String {
        match self {
            Default::Is(v) => format!("`{v}`"),
            Default::Unset => "unset".to_string(),
            Default::Required => "required".to_string(),
            Default::Inherits(key) => format!("`{key}`"),
            Default::FromJanus => "from Janus".to_string(),
        }
    }
}

/// One key of a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Default,
}

const fn key(name: &'static str, kind: Kind, default: Default) -> Key {
    Key {
        name,
        kind,
        default,
    }
}

/// Any text.
const TEXT: Kind = Kind::Text { max: 0 };

const fn whole(min: u64, max: u64, why: &'static str) -> Kind {
    Kind::Whole { min, max, why }
}

/// Words accepted by `events` keys.
pub const MASK_VALUES: &str = "`none`, `all`, or a list of `sessions`, `handles`, `jsep`, `webrtc`, `media`, `plugins`, `transports`, `core`, `external`";
/// Words accepted by `general.inject`.
pub const INJECT_VALUES: &str =
    "`none`, or a list of `transport_gone`, `shutdown`, `timeout`, `reclaim_expired`";
/// Words accepted by the fsync policies.
pub const FSYNC_VALUES: &str = "`always`, `interval`, `never`";

/// Memory queues (the channel and every sink's queue) share their bounds.
const QUEUE_MIN: u64 = 16;
const QUEUE_MAX: u64 = 1 << 24;
const QUEUE_WHY: &str = "fewer than 16 places would drop events in the ordinary bursts of a single session (created, attached, media, detached, destroyed); each waiting event keeps Janus's JSON in memory (typically 0.5 to 2 KB), so 16777216 of them are already gigabytes, and a larger bound would only let a stalled consumer exhaust the process's memory instead of dropping and counting";

/// `general`.
pub const GENERAL: &[Key] = &[
    key("enabled", Kind::Bool, Default::Is("false")),
    key(
        "events",
        Kind::Words {
            values: MASK_VALUES,
        },
        Default::Is("all"),
    ),
    key(
        "channel_capacity",
        whole(QUEUE_MIN, QUEUE_MAX, QUEUE_WHY),
        Default::Is("65536"),
    ),
    key(
        "settle_ms",
        whole(
            0,
            600_000,
            "0 ends a disconnected transport's sessions at once; Janus's own ending lags a disconnect by milliseconds, so waiting more than 10 minutes would only keep dead sessions open",
        ),
        Default::Is("500"),
    ),
    key(
        "reclaim_session_timeout",
        whole(
            0,
            31_536_000,
            "seconds, as in Janus's janus.jcfg; a session waiting more than a year to be reclaimed is a mistake, and the bound keeps the tracker's microsecond arithmetic far from overflow",
        ),
        Default::FromJanus,
    ),
    key(
        "max_sessions",
        whole(
            1,
            1 << 32,
            "at least one session must be tracked; a tracked session costs about 250 bytes, so 4294967296 of them would need a terabyte",
        ),
        Default::Is("1000000"),
    ),
    key(
        "shutdown_timeout_ms",
        whole(
            100,
            600_000,
            "Janus waits for the handler when it stops: under 100 ms there is no time to write the last events, and more than 10 minutes would hold Janus's shutdown hostage to a stuck backend",
        ),
        Default::Is("5000"),
    ),
    key(
        "inject",
        Kind::Words {
            values: INJECT_VALUES,
        },
        Default::Is("transport_gone,timeout,reclaim_expired,shutdown"),
    ),
    key("state_dir", Kind::Path, Default::Unset),
    key(
        "state_fsync",
        Kind::Words {
            values: FSYNC_VALUES,
        },
        Default::Is("interval"),
    ),
    key(
        "checkpoint_ms",
        whole(
            100,
            3_600_000,
            "each checkpoint rewrites every open session's last-seen time, too much work more often than every 100 ms; a gateway_restart ending's timestamp may be this old, and more than an hour says little about when the session ended",
        ),
        Default::Is("5000"),
    ),
    key("file_mode", Kind::Mode, Default::Is("0640")),
];

/// `file`.
pub const FILE: &[Key] = &[
    key("enabled", Kind::Bool, Default::Is("true")),
    key(
        "path",
        Kind::Path,
        Default::Is("/var/log/janus/lifecycleevh.jsonl"),
    ),
    key(
        "flush_ms",
        whole(
            1,
            3_600_000,
            "how often the file's rotation is checked and, while writes fail, the longest wait between retries: from 1 ms to an hour, beyond which a rotated file would be written to for too long",
        ),
        Default::Is("1000"),
    ),
    key(
        "events",
        Kind::Words {
            values: MASK_VALUES,
        },
        Default::Inherits("general.events"),
    ),
    key(
        "queue_size",
        whole(QUEUE_MIN, QUEUE_MAX, QUEUE_WHY),
        Default::Is("65536"),
    ),
    key(
        "file_mode",
        Kind::Mode,
        Default::Inherits("general.file_mode"),
    ),
];

// Keys that several sinks share (each sink's table lists them), so that
// their ranges and reasons are written once.

const ENABLED_ON: Key = key("enabled", Kind::Bool, Default::Is("true"));
const SINK_EVENTS: Key = key(
    "events",
    Kind::Words {
        values: MASK_VALUES,
    },
    Default::Inherits("general.events"),
);
const GROUPING: Key = key("grouping", Kind::Bool, Default::Is("true"));
const MAX_DELAY_MS: Key = key(
    "max_delay_ms",
    whole(
        0,
        60_000,
        "0 sends at once; a partial batch waiting more than a minute would make the backend's view of sessions stale",
    ),
    Default::Is("0"),
);
const JSON: Key = key(
    "json",
    Kind::Words {
        values: "`compact`, `plain`, `indented`",
    },
    Default::Is("compact"),
);
const MAX_RETRANSMISSIONS: Key = key(
    "max_retransmissions",
    whole(
        0,
        1_000_000,
        "0 gives up after the first failure; a million retries at the longest backoff are weeks, as good as forever",
    ),
    Default::Is("5"),
);
const RETRANSMISSIONS_BACKOFF: Key = key(
    "retransmissions_backoff",
    whole(
        1,
        600_000,
        "the first retry's wait is at most this (ms): at least 1 ms, and no outage is shortened by a first wait of more than 10 minutes",
    ),
    Default::Is("100"),
);
const BACKOFF_MAX_MS: Key = key(
    "backoff_max_ms",
    whole(
        1,
        3_600_000,
        "the longest wait between retries: at least 1 ms, at most an hour, so that a backend back from an outage gets its events within the hour",
    ),
    Default::Is("30000"),
);
const TIMEOUT_MS: Key = key(
    "timeout_ms",
    whole(
        100,
        600_000,
        "a request needs at least 100 ms even on loopback; a backend that takes more than 10 minutes to answer is down",
    ),
    Default::Is("10000"),
);
const SINK_QUEUE_SIZE: Key = key(
    "queue_size",
    whole(QUEUE_MIN, QUEUE_MAX, QUEUE_WHY),
    Default::Is("65536"),
);
const SPOOL_DIR: Key = key("spool_dir", Kind::Path, Default::Unset);
const SPOOL: Key = key(
    "spool",
    Kind::Words {
        values: "`lifecycle`, `all`",
    },
    Default::Is("lifecycle"),
);
const SPOOL_FSYNC: Key = key(
    "spool_fsync",
    Kind::Words {
        values: FSYNC_VALUES,
    },
    Default::Is("interval"),
);
const SPOOL_FSYNC_MS: Key = key(
    "spool_fsync_ms",
    whole(
        10,
        600_000,
        "an fsync more often than every 10 ms costs more than it protects; more than 10 minutes of events lost to a power cut is too many",
    ),
    Default::Is("1000"),
);
const SPOOL_MAX_MB: Key = key(
    "spool_max_mb",
    whole(
        1,
        1 << 20,
        "at least one megabyte; 1048576 MB (1 TiB) is more than any spool folder should hold",
    ),
    Default::Is("1024"),
);
const SINK_FILE_MODE: Key = key(
    "file_mode",
    Kind::Mode,
    Default::Inherits("general.file_mode"),
);
const PORT_WHY: &str = "a TCP port number: 0 is no port, and there are none above 65535";
/// Broker names (exchanges, queues, routing keys) are AMQP short strings.
const SHORT_TEXT: Kind = Kind::Text { max: 255 };

/// `http` and every `http-<name>`.
pub const HTTP: &[Key] = &[
    ENABLED_ON,
    key("backend", Kind::Url, Default::Required),
    SINK_EVENTS,
    GROUPING,
    key(
        "max_batch",
        whole(
            1,
            10_000,
            "a request carries at least one event; 10000 events make a body of several megabytes, beyond what backends usually accept in one request",
        ),
        Default::Is("100"),
    ),
    MAX_DELAY_MS,
    JSON,
    key("backend_user", TEXT, Default::Unset),
    key("backend_pwd", TEXT, Default::Unset),
    key("compress", Kind::Bool, Default::Is("false")),
    key(
        "compression",
        whole(1, 9, "zlib's compression levels"),
        Default::Is("6"),
    ),
    key(
        "compression_format",
        Kind::Words {
            values: "`gzip`, `sampleevh`, `zlib`",
        },
        Default::Is("gzip"),
    ),
    MAX_RETRANSMISSIONS,
    RETRANSMISSIONS_BACKOFF,
    BACKOFF_MAX_MS,
    TIMEOUT_MS,
    key("ca_file", Kind::Path, Default::Unset),
    key("tls_verify", Kind::Bool, Default::Is("true")),
    SINK_QUEUE_SIZE,
    SPOOL_DIR,
    SPOOL,
    SPOOL_FSYNC,
    SPOOL_FSYNC_MS,
    SPOOL_MAX_MB,
    SINK_FILE_MODE,
];

/// How many events a broker sink has unconfirmed at once.
const MAX_BATCH_BROKER_WHY: &str = "at least one event per attempt; beyond 10000 unconfirmed messages a broker applies flow control and a lost connection sends too much again";

/// `rabbitmq` and every `rabbitmq-<name>`: rabbitmqevh's keys, and the
/// HTTP sink's for batching, retries and the spool.
pub const RABBITMQ: &[Key] = &[
    ENABLED_ON,
    SINK_EVENTS,
    GROUPING,
    key(
        "max_batch",
        whole(1, 10_000, MAX_BATCH_BROKER_WHY),
        Default::Is("100"),
    ),
    MAX_DELAY_MS,
    JSON,
    key("host", Kind::Host, Default::Is("localhost")),
    key("port", whole(1, 65_535, PORT_WHY), Default::Is("5672")),
    key("vhost", SHORT_TEXT, Default::Is("/")),
    key("username", TEXT, Default::Is("guest")),
    key("password", TEXT, Default::Is("guest")),
    key("exchange", SHORT_TEXT, Default::Unset),
    key(
        "exchange_type",
        Kind::Words {
            values: "`fanout`, `direct`, `topic`, `headers`",
        },
        Default::Is("fanout"),
    ),
    key("route_key", SHORT_TEXT, Default::Required),
    key("queue_name", SHORT_TEXT, Default::Unset),
    key(
        "heartbeat",
        whole(
            0,
            3600,
            "seconds, as AMQP negotiates them (0: off); a dead connection is noticed after two silent heartbeats, so more than an hour would leave events waiting on a dead connection for hours",
        ),
        Default::Is("60"),
    ),
    key("ssl_enable", Kind::Bool, Default::Is("false")),
    key("ssl_cacert", Kind::Path, Default::Unset),
    key("ssl_cert", Kind::Path, Default::Unset),
    key("ssl_key", Kind::Path, Default::Unset),
    key("ssl_verify_peer", Kind::Bool, Default::Is("true")),
    key("ssl_verify_hostname", Kind::Bool, Default::Is("true")),
    MAX_RETRANSMISSIONS,
    RETRANSMISSIONS_BACKOFF,
    BACKOFF_MAX_MS,
    TIMEOUT_MS,
    SINK_QUEUE_SIZE,
    SPOOL_DIR,
    SPOOL,
    SPOOL_FSYNC,
    SPOOL_FSYNC_MS,
    SPOOL_MAX_MB,
    SINK_FILE_MODE,
];

/// `mqtt` and every `mqtt-<name>`: mqttevh's keys, and the HTTP sink's
/// for retries and the spool.
pub const MQTT: &[Key] = &[
    ENABLED_ON,
    SINK_EVENTS,
    JSON,
    key(
        "url",
        Kind::BrokerUrl {
            schemes: MQTT_SCHEMES,
        },
        Default::Is("tcp://localhost:1883"),
    ),
    key(
        "mqtt_version",
        Kind::Words {
            values: "`3.1.1`, `5`",
        },
        Default::Is("3.1.1"),
    ),
    key("client_id", SHORT_TEXT, Default::Required),
    key(
        "keep_alive_interval",
        whole(
            0,
            65_535,
            "seconds (0: off), as MQTT's CONNECT carries them in 16 bits",
        ),
        Default::Is("30"),
    ),
    key(
        "qos",
        whole(
            1,
            2,
            "QoS 0 has no acknowledgement, so no event could leave the spool knowing it arrived",
        ),
        Default::Is("1"),
    ),
    key("retain", Kind::Bool, Default::Is("false")),
    key("username", TEXT, Default::Unset),
    key("password", TEXT, Default::Unset),
    key("topic", TEXT, Default::Is("/janus/events")),
    key("addevent", Kind::Bool, Default::Is("true")),
    key(
        "max_inflight",
        whole(1, 10_000, MAX_BATCH_BROKER_WHY),
        Default::Is("100"),
    ),
    TLS_ENABLE,
    TLS_CACERT,
    TLS_CLIENT_CERT,
    TLS_CLIENT_KEY,
    TLS_VERIFY_PEER,
    TLS_VERIFY_HOSTNAME,
    MAX_RETRANSMISSIONS,
    RETRANSMISSIONS_BACKOFF,
    BACKOFF_MAX_MS,
    TIMEOUT_MS,
    SINK_QUEUE_SIZE,
    SPOOL_DIR,
    SPOOL,
    SPOOL_FSYNC,
    SPOOL_FSYNC_MS,
    SPOOL_MAX_MB,
    SINK_FILE_MODE,
];

// TLS as mqttevh names its keys (the NATS sink's too).
const TLS_ENABLE: Key = key("tls_enable", Kind::Bool, Default::Is("false"));
const TLS_CACERT: Key = key("tls_cacert", Kind::Path, Default::Unset);
const TLS_CLIENT_CERT: Key = key("tls_client_cert", Kind::Path, Default::Unset);
const TLS_CLIENT_KEY: Key = key("tls_client_key", Kind::Path, Default::Unset);
const TLS_VERIFY_PEER: Key = key("tls_verify_peer", Kind::Bool, Default::Is("true"));
const TLS_VERIFY_HOSTNAME: Key = key("tls_verify_hostname", Kind::Bool, Default::Is("true"));

/// `nats` and every `nats-<name>`: NATS JetStream.
pub const NATS: &[Key] = &[
    ENABLED_ON,
    SINK_EVENTS,
    key(
        "max_batch",
        whole(1, 10_000, MAX_BATCH_BROKER_WHY),
        Default::Is("100"),
    ),
    MAX_DELAY_MS,
    JSON,
    key(
        "url",
        Kind::BrokerUrl {
            schemes: NATS_SCHEMES,
        },
        Default::Is("nats://localhost:4222"),
    ),
    key("subject", TEXT, Default::Is("janus.events")),
    key("stream", TEXT, Default::Unset),
    key("create_stream", Kind::Bool, Default::Is("false")),
    key(
        "duplicate_window_ms",
        whole(
            1000,
            86_400_000,
            "how long the stream remembers a message id: a retry later than this after the first copy was stored is stored again; the server keeps every id of the window in memory, so a day is plenty",
        ),
        Default::Is("600000"),
    ),
    key("username", TEXT, Default::Unset),
    key("password", TEXT, Default::Unset),
    key("token", TEXT, Default::Unset),
    TLS_ENABLE,
    TLS_CACERT,
    TLS_CLIENT_CERT,
    TLS_CLIENT_KEY,
    TLS_VERIFY_PEER,
    TLS_VERIFY_HOSTNAME,
    MAX_RETRANSMISSIONS,
    RETRANSMISSIONS_BACKOFF,
    BACKOFF_MAX_MS,
    TIMEOUT_MS,
    SINK_QUEUE_SIZE,
    SPOOL_DIR,
    SPOOL,
    SPOOL_FSYNC,
    SPOOL_FSYNC_MS,
    SPOOL_MAX_MB,
    SINK_FILE_MODE,
];

/// The URL schemes of `nats.url` (`tls://`: TLS).
pub const NATS_SCHEMES: &str = "`nats://`, `tls://`";

/// The URL schemes of `mqtt.url`: mqttevh's (`tcp`, `ssl`) and their usual
/// other names.
pub const MQTT_SCHEMES: &str = "`tcp://`, `mqtt://`, `ssl://`, `mqtts://`";

/// `metrics`: the Prometheus endpoint (read in `super::metrics`).
pub const METRICS: &[Key] = &[
    key("enabled", Kind::Bool, Default::Is("false")),
    // 7090: none of Janus's default ports (HTTP 8088/8089, WebSockets
    // 8188/8989, Admin 7088/7889 and 7188/7989), below every RTP range, and
    // outside 9100-9999, which Prometheus's list of default ports has handed
    // out to other exporters (node_exporter's 9100 is often on the host).
    key("listen", Kind::Address, Default::Is("127.0.0.1:7090")),
    key("path", TEXT, Default::Is("/metrics")),
    key("user", TEXT, Default::Unset),
    key("password", TEXT, Default::Unset),
    // HTTPS, as the Prometheus exporter-toolkit's `tls_server_config`
    // (`cert_file`, `key_file`): both or neither.
    key("tls_cert", Kind::Path, Default::Unset),
    key("tls_key", Kind::Path, Default::Unset),
];

/// The categories: `general`, `file`, `http` (which also stands for every
/// `http-<name>`), `rabbitmq`, `mqtt` and `nats` (and every
/// `rabbitmq-<name>`, `mqtt-<name>`, `nats-<name>`), `metrics`.
pub const CATEGORIES: [(&str, &[Key]); 7] = [
    ("general", GENERAL),
    ("file", FILE),
    ("http", HTTP),
    ("rabbitmq", RABBITMQ),
    ("mqtt", MQTT),
    ("nats", NATS),
    ("metrics", METRICS),
];

/// A key of a category's table.
pub fn find(keys: &'static [Key], name: &str) -> Option<&'static Key> {
    keys.iter().find(|k| k.name == name)
}
