//! The sinks a configuration asks for: each opened (a file that cannot be
//! opened, a spool that cannot be used or a CA file that cannot be read is an
//! init error naming its key) and started on its own thread.

use std::time::Duration;

use super::file::FileSink;
use super::http::HttpSink;
use super::spool::SpoolConfig;
use super::{OnFailure, SinkHandle, SinkSettings, SpawnError, SpoolSettings};
use crate::config::{Config, EventMask, FileConfig};
use crate::error::InitError;

/// Opens and starts every enabled sink, the file first, then the HTTP
/// backends in file order.
pub fn open_all(config: &Config) -> Result<Vec<SinkHandle>, InitError> {
    let file = &config.file_path;
    let spawned = |name: &str, key: String, dir: Option<&std::path::Path>, e: SpawnError| match e {
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
            spool: h.spool.as_ref().map(|s| SpoolSettings {
                config: SpoolConfig {
                    dir: s.dir.clone(),
                    fsync: s.fsync,
                    max_bytes: s.max_bytes,
                    segment_bytes: (16 << 20).min(s.max_bytes / 4).max(64 << 10),
                    // Owner and group only: events carry client IP addresses.
                    file_mode: s.file_mode,
                },
                all_events: s.all_events,
            }),
            acknowledges: false,
        };
        let dir = h.spool.as_ref().map(|s| s.dir.as_path());
        let handle = SinkHandle::spawn("http", settings, Box::new(sink))
            .map_err(|e| spawned(&h.name, format!("{}.spool_dir", h.name), dir, e))?;
        sinks.push(handle);
    }
    Ok(sinks)
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
