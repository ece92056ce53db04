//! The running handler: what `init` builds and `destroy` takes down. It owns
//! the intake (the events thread's end of the channel), the worker thread
//! (which owns the tracker, the router to the sinks, the bus and the crash
//! state) and what the Admin API reads: a [`Status`] view and a few
//! controls.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use crate::bus::{Bus, BusStats};
use crate::config::Config;
use crate::durable::DEFAULT_FILE_MODE;
use crate::error::InitError;
use crate::exporter::{Endpoint, Sources};
use crate::ffi::JsonRef;
use crate::intake::{self, Intake};
use crate::metrics::Metrics;
use crate::reason::Reason;
use crate::recovery::SessionStore;
use crate::sinks::{Router, SinkShared, build};
use crate::tracker::{SessionView, Tracker, TrackerConfig};
use crate::worker::{self, Checkpoints, Control, Pipeline, WorkerHandle};

/// How long an Admin API request waits for the worker.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

/// A running handler.
pub struct Running {
    intake: Intake<JsonRef>,
    worker: WorkerHandle,
    control: Sender<Control>,
    metrics: Arc<Metrics>,
    sinks: Vec<Arc<SinkShared>>,
    bus_available: bool,
    bus: Arc<BusStats>,
    config: Config,
    started: Instant,
    inside_janus: bool,
    /// The Prometheus endpoint (`metrics.enabled`).
    endpoint: Option<Endpoint>,
}

/// How long stopping waits for the Prometheus endpoint's thread.
const ENDPOINT_STOP: Duration = Duration::from_millis(1500);

/// What the Admin API `info` reports: a read-only view of the running handler.
pub struct Status<'a> {
    pub config: &'a Config,
    pub metrics: &'a Metrics,
    pub inside_janus: bool,
    pub uptime: Duration,
    /// Events waiting in the channel, and its capacity.
    pub channel_depth: usize,
    pub channel_capacity: usize,
    pub sinks: &'a [Arc<SinkShared>],
    /// Janus's event bus: whether it is in the process, what is injected.
    pub bus_available: bool,
    pub bus_reasons: &'a [Reason],
    pub bus_stats: &'a BusStats,
    /// The Prometheus endpoint, if enabled.
    pub endpoint: Option<&'a Endpoint>,
}

/// The tracker's settings from the handler's config.
pub fn tracker_config(config: &Config) -> TrackerConfig {
    let pinned = config.general.reclaim_session_timeout;
    TrackerConfig {
        settle_us: config.general.settle.as_micros().min(i64::MAX as u128) as i64,
        reclaim_session_timeout: pinned.unwrap_or(0),
        reclaim_pinned: pinned.is_some(),
        max_sessions: config.general.max_sessions,
        ..TrackerConfig::default()
    }
}

impl Running {
    /// Reads the config in `folder`, opens the sinks and the crash state,
    /// ends what a crashed previous run left open, and starts the worker.
    pub fn start(folder: &Path, inside_janus: bool) -> Result<Running, InitError> {
        let config = Config::load(folder)?;
        if !config.general.enabled {
            return Err(InitError::Disabled {
                file: config.file_path.clone(),
            });
        }
        let metrics = Arc::new(Metrics::default());
        let router = Router::new(build::build(&config)?);
        let sinks = router.shared();
        let bus = Bus::new(config.general.inject.clone());
        let bus_available = bus.available();
        if bus.enabled() && !bus_available {
            crate::jlog!(
                Warn,
                "janus_events_notify_handlers is not in this process: synthetic endings are not re-injected into Janus's event bus (this handler's own sinks still get them)"
            );
        }
        let bus_stats = bus.stats();
        let mut pipeline = Pipeline::new(
            Tracker::new(tracker_config(&config)),
            router,
            bus,
            metrics.clone(),
        );
        if let Some(dir) = &config.general.state_dir {
            let (store, recovered) =
                SessionStore::open(dir, config.general.state_fsync, DEFAULT_FILE_MODE).map_err(
                    |e| {
                        InitError::unusable(
                            &config.file_path,
                            "general.state_dir",
                            format!("cannot use {} for crash recovery", dir.display()),
                            e,
                        )
                    },
                )?;
            let file = config.file.enabled.then_some(config.file.path.as_path());
            pipeline.recover(
                Checkpoints::new(store, config.general.checkpoint),
                recovered,
                file,
            );
        }
        let (intake, rx) = intake::channel(config.general.channel_capacity, metrics.clone());
        let channel = rx.clone();
        let (control, control_rx) = bounded(64);
        let worker = worker::spawn(rx, control_rx, pipeline, config.general.shutdown_timeout)
            .map_err(|source| InitError::Thread {
                name: "worker".into(),
                source,
            })?;
        let endpoint = config.metrics.enabled.then(|| {
            Endpoint::start(
                &config.metrics,
                Sources {
                    metrics: metrics.clone(),
                    sinks: sinks.clone(),
                    bus: bus_stats.clone(),
                    bus_available,
                    channel: Box::new(move || (channel.len(), channel.capacity().unwrap_or(0))),
                    crash_state: config.general.state_dir.is_some(),
                    started_us: worker::now_us(),
                },
            )
        });
        Ok(Running {
            intake,
            worker,
            control,
            metrics,
            sinks,
            bus_available,
            bus: bus_stats,
            config,
            started: Instant::now(),
            inside_janus,
            endpoint,
        })
    }

    /// Hands one event to the worker (on Janus's events thread: never blocks).
    #[inline]
    pub fn offer(&self, event: JsonRef) {
        self.intake.offer(event);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn sinks(&self) -> &[Arc<SinkShared>] {
        &self.sinks
    }

    /// What the Admin API `info` reports.
    pub fn status(&self) -> Status<'_> {
        Status {
            config: &self.config,
            metrics: &self.metrics,
            inside_janus: self.inside_janus,
            uptime: self.started.elapsed(),
            channel_depth: self.intake.depth(),
            channel_capacity: self.intake.capacity(),
            sinks: &self.sinks,
            bus_available: self.bus_available,
            bus_reasons: &self.config.general.inject,
            bus_stats: &self.bus,
            endpoint: self.endpoint.as_ref(),
        }
    }

    /// A page of live sessions from the worker (None if it does not answer
    /// within 2 s).
    pub fn sessions(&self, offset: usize, limit: usize) -> Option<(usize, Vec<SessionView>)> {
        let (reply, answer) = bounded(1);
        self.control
            .send_timeout(
                Control::Sessions {
                    offset,
                    limit,
                    reply,
                },
                CONTROL_TIMEOUT,
            )
            .ok()?;
        answer.recv_timeout(CONTROL_TIMEOUT).ok()
    }

    /// Changes the settle window; false if the worker did not take it.
    pub fn set_settle_ms(&self, ms: u64) -> bool {
        let (reply, answer) = bounded(1);
        self.control
            .send_timeout(Control::Settle { ms, reply }, CONTROL_TIMEOUT)
            .is_ok()
            && answer.recv_timeout(CONTROL_TIMEOUT).is_ok()
    }

    /// Stops: no new events; the worker drains the channel, ends the
    /// sessions still open, flushes the sinks and stops, all within
    /// `general.shutdown_timeout_ms` (a worker that does not finish in time
    /// is left behind).
    pub fn stop(self) {
        let Running {
            intake,
            worker,
            control,
            metrics,
            config,
            endpoint,
            ..
        } = self;
        if let Some(endpoint) = endpoint {
            endpoint.stop(ENDPOINT_STOP);
        }
        // Dropping the only sender lets the worker drain the channel and finish.
        drop(intake);
        drop(control);
        let budget = config.general.shutdown_timeout + Duration::from_millis(500);
        if worker.join(budget) {
            crate::jlog!(
                Info,
                "JANUS lifecycleevh destroyed ({} events received, {} forwarded, {} dropped)",
                metrics.received.load(Relaxed),
                metrics.forwarded.load(Relaxed),
                metrics.dropped.load(Relaxed)
            );
        } else {
            crate::jlog!(
                Err,
                "lifecycleevh: the worker did not finish within {} ms; leaving it behind",
                budget.as_millis()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_settings_come_from_general() {
        let c = Config::parse(
            Path::new("x.jcfg"),
            "general: { settle_ms = 250, reclaim_session_timeout = 30, max_sessions = 5000 }",
        )
        .unwrap();
        let t = tracker_config(&c);
        assert_eq!(t.settle_us, 250_000);
        assert_eq!(t.reclaim_session_timeout, 30);
        assert!(t.reclaim_pinned);
        assert_eq!(t.max_sessions, 5000);
    }
}
