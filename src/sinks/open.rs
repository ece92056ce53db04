//! The sinks a configuration asks for: each opened (a file that cannot be
//! opened, a spool that cannot be used or a CA file that cannot be read is an
//! init error naming its key) and started on its own thread.

use std::path::Path;
use std::time::Duration;

use super::broker::mqtt::{Mqtt, MqttFormat};
use super::broker::nats::{Nats, NatsFormat};
use super::broker::rabbitmq::{RabbitMq, RabbitMqFormat};
use super::broker::{BrokerSink, Client, Format};
use super::file::FileSink;
use super::http::HttpSink;
use super::spool::SpoolConfig;
use super::tls::TlsSetupError;
use super::{OnFailure, SinkHandle, SinkSettings, SpawnError, SpoolSettings};
use crate::config::{Config, Delivery, EventMask, FileConfig, SpoolOptions, TlsOptions};
use crate::error::InitError;

/// Opens and starts every enabled sink, the file first, then the HTTP
/// backends, the RabbitMQ, MQTT and NATS brokers, each kind in file order.
pub fn open_all(config: &Config) -> Result<Vec<SinkHandle>, InitError> {
    let file = &config.file_path;
    let spawned = |name: &str, key: String, dir: Option<&Path>, e: SpawnError| {
        spawn_error(file, name, key, dir, e)
    };
    let mut sinks = Vec::new();
    let f = &config.file;
    if f.enabled {
        let sink = FileSink::open(&f.path, f.file_mode).map_err(|e| {
            InitError::unusable(
                file,
                "file.path",
                format!("cannot open {} for appending", f.path.display()),
                e,
            )
        })?;
        let settings = file_settings(f, f.events.unwrap_or(config.general.events));
        let handle = SinkHandle::spawn("file", settings, Box::new(sink))
            .map_err(|e| spawned("file", "file".into(), None, e))?;
        sinks.push(handle);
    }
    for h in config.http.iter().filter(|h| h.enabled) {
        let sink = HttpSink::new(h.target.clone()).map_err(|e| {
            let key = if h.target.ca_file.is_some() {
                "ca_file"
            } else {
                "backend"
            };
            InitError::unusable(file, format!("{}.{key}", h.name), "cannot set up TLS", e)
        })?;
        let settings = SinkSettings {
            name: h.name.clone(),
            mask: h.events.unwrap_or(config.general.events),
            queue_size: h.queue_size,
            max_batch: h.max_batch,
            max_delay: h.max_delay,
            flush_every: h
                .spool
                .as_ref()
                .map_or(Duration::from_secs(1), |s| s.fsync_every),
            retries: h.retries,
            backoff: h.backoff,
            backoff_max: h.backoff_max,
            on_failure: OnFailure::GiveUp,
            spool: h.spool.as_ref().map(spool_settings),
            acknowledges: false,
        };
        let dir = h.spool.as_ref().map(|s| s.dir.as_path());
        let handle = SinkHandle::spawn("http", settings, Box::new(sink))
            .map_err(|e| spawned(&h.name, format!("{}.spool_dir", h.name), dir, e))?;
        sinks.push(handle);
    }
    for b in config.rabbitmq.iter().filter(|b| b.delivery.enabled) {
        let d = &b.delivery;
        let client = RabbitMq::new(b.clone())
            .map_err(|e| tls_error(file, tls_key(&b.tls, "ssl_cert", "ssl_cacert"), d, e))?;
        let format = RabbitMqFormat {
            grouping: b.grouping,
            json: b.json,
        };
        sinks.push(broker(
            config,
            "rabbitmq",
            d,
            format,
            client,
            RabbitMq::describe(b),
        )?);
    }
    for m in config.mqtt.iter().filter(|m| m.delivery.enabled) {
        let d = &m.delivery;
        let client = Mqtt::new(m.clone())
            .map_err(|e| tls_error(file, tls_key(&m.tls, "tls_client_cert", "tls_cacert"), d, e))?;
        let format = MqttFormat {
            json: m.json,
            topic: m.topic.clone(),
            addevent: m.addevent,
        };
        sinks.push(broker(
            config,
            "mqtt",
            d,
            format,
            client,
            Mqtt::describe(m),
        )?);
    }
    for n in config.nats.iter().filter(|n| n.delivery.enabled) {
        let d = &n.delivery;
        let client = Nats::new(n.clone())
            .map_err(|e| tls_error(file, tls_key(&n.tls, "tls_client_cert", "tls_cacert"), d, e))?;
        let format = NatsFormat { json: n.json };
        sinks.push(broker(
            config,
            "nats",
            d,
            format,
            client,
            Nats::describe(n),
        )?);
    }
    Ok(sinks)
}

/// A sink that could not be started: its spool (an error of `key`), or its thread.
fn spawn_error(
    file: &Path,
    name: &str,
    key: String,
    dir: Option<&Path>,
    e: SpawnError,
) -> InitError {
    match e {
        SpawnError::Spool(e) => InitError::unusable(
            file,
            key,
            format!(
                "cannot open the spool in {}",
                dir.map_or(String::new(), |d| d.display().to_string())
            ),
            e,
        ),
        SpawnError::Thread(source) => InitError::Thread {
            name: name.to_string(),
            source,
        },
    }
}

/// The key a TLS setup error is about: the client certificate's when one
/// is set (its file, or its key's), else the CA file's.
fn tls_key(tls: &Option<TlsOptions>, cert: &'static str, ca: &'static str) -> &'static str {
    match tls {
        Some(t) if t.client_cert.is_some() => cert,
        _ => ca,
    }
}

/// A broker sink's client could not set up TLS: an error of `key`.
fn tls_error(file: &Path, key: &str, d: &Delivery, e: TlsSetupError) -> InitError {
    InitError::unusable(file, format!("{}.{key}", d.name), "cannot set up TLS", e)
}

/// Starts a broker sink: its I/O thread (which connects in the background:
/// a broker that is down is no init error), then its runner.
fn broker<F: Format, C: Client>(
    config: &Config,
    kind: &'static str,
    d: &Delivery,
    format: F,
    client: C,
    describe: serde_json::Map<String, serde_json::Value>,
) -> Result<SinkHandle, InitError> {
    let sink =
        BrokerSink::start(&d.name, format, client, d.timeout, describe).map_err(|source| {
            InitError::Thread {
                name: d.name.clone(),
                source,
            }
        })?;
    let settings = delivery_settings(d, config.general.events);
    let dir = d.spool.as_ref().map(|s| s.dir.as_path());
    SinkHandle::spawn(kind, settings, Box::new(sink)).map_err(|e| {
        spawn_error(
            &config.file_path,
            &d.name,
            format!("{}.spool_dir", d.name),
            dir,
            e,
        )
    })
}

/// A spool's settings from its config.
fn spool_settings(s: &SpoolOptions) -> SpoolSettings {
    SpoolSettings {
        config: SpoolConfig {
            dir: s.dir.clone(),
            fsync: s.fsync,
            max_bytes: s.max_bytes,
            segment_bytes: (16 << 20).min(s.max_bytes / 4).max(64 << 10),
            // Owner and group only: events carry client IP addresses.
            file_mode: s.file_mode,
        },
        all_events: s.all_events,
    }
}

/// How a broker sink is run: as an HTTP backend (best effort for what is
/// not spooled, the spool for what must arrive).
fn delivery_settings(d: &Delivery, events: EventMask) -> SinkSettings {
    SinkSettings {
        name: d.name.clone(),
        mask: d.events.unwrap_or(events),
        queue_size: d.queue_size,
        max_batch: d.max_batch,
        max_delay: d.max_delay,
        flush_every: d
            .spool
            .as_ref()
            .map_or(Duration::from_secs(1), |s| s.fsync_every),
        retries: d.retries,
        backoff: d.backoff,
        backoff_max: d.backoff_max,
        on_failure: OnFailure::GiveUp,
        spool: d.spool.as_ref().map(spool_settings),
        acknowledges: false,
    }
}

/// How the file sink is run: lines written as they come (no delay), a
/// failed write retried after a jittered wait of up to `flush_ms`, and on
/// failure the non-lifecycle lines dropped while lifecycle lines wait in the
/// queue for space to return (`OnFailure::KeepLifecycle`).
pub fn file_settings(f: &FileConfig, mask: EventMask) -> SinkSettings {
    SinkSettings {
        retries: 0,
        backoff: f.flush,
        backoff_max: f.flush,
        on_failure: OnFailure::KeepLifecycle,
        // Crash recovery records an ending once its line is in the kernel.
        acknowledges: true,
        ..SinkSettings::simple("file", mask, f.queue_size, f.flush)
    }
}
