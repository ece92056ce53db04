//! The running handler: what `init` builds and `destroy` takes down. It owns
//! the worker thread
//! (which owns the tracker, the router to the sinks, the bus and the crash
//! state) and what the Admin API reads: a [`Status`] view and a few
//! controls. The events thread's end of the queue, the [`Intake`], is handed
//! to the caller of [`Running::start`] (see `crate::instance`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use crate::bus::{Bus, BusStats};
use crate::config::Config;
use crate::counters::Counters;
use crate::crash_state::SessionStore;
use crate::error::InitError;
use crate::exporter::{Endpoint, Sources};
use crate::ffi::JsonRef;
use crate::intake::{self, ChannelView, Gauge, Intake};
use crate::reason::Reason;
use crate::sinks::{Router, SinkShared, open};
use crate::tracker::{SessionView, Tracker, TrackerConfig};
use crate::worker::{self, Checkpoints, Control, Pipeline, WorkerHandle};

/// How long an Admin API request waits for the worker.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

/// A running handler.
pub struct Running {
    /// The queue's counters, and the worker's doorbell.
    gauge: Gauge,
    worker: WorkerHandle,
    control: Sender<Control>,
    counters: Arc<Counters>,
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
    pub counters: &'a Counters,
    pub inside_janus: bool,
    pub uptime: Duration,
    /// The queue between Janus's events thread and the worker.
    pub channel: ChannelView,
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
    /// Returns the intake, the events thread's end of the worker's queue.
    pub fn start(
        folder: &Path,
        inside_janus: bool,
    ) -> Result<(Running, Intake<JsonRef>), InitError> {
        let config = Config::load(folder)?;
        if !config.general.enabled {
            return Err(InitError::Disabled {
                file: config.file_path.clone(),
            });
        }
        let counters = Arc::new(Counters::default());
        let router = Router::new(open::open_all(&config)?);
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
            counters.clone(),
        );
        if let Some(dir) = &config.general.state_dir {
            let (store, recovered) =
                SessionStore::open(dir, config.general.state_fsync, config.general.file_mode)
                    .map_err(|e| {
                        InitError::unusable(
                            &config.file_path,
                            "general.state_dir",
                            format!("cannot use {} for crash recovery", dir.display()),
                            e,
                        )
                    })?;
            let file = config.file.enabled.then_some(config.file.path.as_path());
            pipeline.recover(
                Checkpoints::new(store, config.general.checkpoint),
                recovered,
                file,
            );
        }
        let (intake, outlet, gauge) =
            intake::queue(config.general.channel_capacity, counters.clone());
        let mut endpoint = config.metrics.enabled.then(|| {
            let gauge = gauge.clone();
            Endpoint::start(
                &config.metrics,
                Sources {
                    metrics: counters.clone(),
                    sinks: sinks.clone(),
                    bus: bus_stats.clone(),
                    bus_available,
                    channel: Box::new(move || gauge.view::<JsonRef>()),
                    crash_state: config.general.state_dir.is_some(),
                    started_us: worker::now_us(),
                },
            )
        });
        // Janus's transports bind their ports after `init`: the endpoint
        // binds once Janus says it has started (outside Janus, at once).
        if let Some(opener) = endpoint.as_mut().and_then(Endpoint::opener) {
            if inside_janus {
                pipeline.on_janus_started(Box::new(move || opener.open()));
            } else {
                opener.open();
            }
        }
        let (control, control_rx) = bounded(64);
        let worker = worker::spawn(
            outlet,
            control_rx,
            pipeline,
            config.general.shutdown_timeout,
        )
        .map_err(|source| InitError::Thread {
            name: "worker".into(),
            source,
        })?;
        let running = Running {
            gauge,
            worker,
            control,
            counters,
            sinks,
            bus_available,
            bus: bus_stats,
            config,
            started: Instant::now(),
            inside_janus,
            endpoint,
        };
        Ok((running, intake))
    }

    /// Counts an event that could not be queued (see `instance::offer`).
    pub fn refused(&self, event_type: Option<i64>) {
        self.gauge.refused(event_type);
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
            counters: &self.counters,
            inside_janus: self.inside_janus,
            uptime: self.started.elapsed(),
            channel: self.gauge.view::<JsonRef>(),
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
        self.gauge.wake();
        answer.recv_timeout(CONTROL_TIMEOUT).ok()
    }

    /// Changes the settle window; false if the worker did not take it.
    pub fn set_settle_ms(&self, ms: u64) -> bool {
        let (reply, answer) = bounded(1);
        if self
            .control
            .send_timeout(Control::Settle { ms, reply }, CONTROL_TIMEOUT)
            .is_err()
        {
            return false;
        }
        self.gauge.wake();
        answer.recv_timeout(CONTROL_TIMEOUT).is_ok()
    }

    /// Stops: no new events (the intake is dropped); the worker drains the
    /// queue, ends the sessions still open, flushes the sinks and stops, all
    /// within `general.shutdown_timeout_ms` (a worker that does not finish in
    /// time is left behind).
    pub fn stop(self, intake: Option<Intake<JsonRef>>) {
        let Running {
            worker,
            control,
            counters,
            config,
            bus,
            endpoint,
            ..
        } = self;
        if let Some(endpoint) = endpoint {
            endpoint.stop(ENDPOINT_STOP);
        }
        // Janus calls destroy() after its events thread stopped: how long
        // before that the last injection was made is the margin it had.
        if let Some(at) = *crate::sync::lock(&bus.last_injection) {
            crate::jlog!(
                Info,
                "lifecycleevh: the last injection on Janus's event bus was {} ms before destroy() ({} injected in all)",
                at.elapsed().as_millis(),
                bus.injected_total()
            );
        }
        // Dropping the intake lets the worker drain the queue and finish.
        drop(intake);
        drop(control);
        let budget = config.general.shutdown_timeout + Duration::from_millis(500);
        if worker.join(budget) {
            crate::jlog!(
                Info,
                "JANUS lifecycleevh destroyed ({} events received, {} forwarded, {} dropped)",
                counters.received.load(Relaxed),
                counters.forwarded.load(Relaxed),
                counters.dropped.load(Relaxed)
            );
            // An injected ending comes back to this handler in the same
            // dispatch of Janus's events thread that gives it to every other
            // handler; one that never came back was dropped by Janus, whose
            // bus had stopped (the worker has seen everything Janus
            // delivered by now).
            let injected = bus.injected_total();
            let back = counters.tracker().stats.echoes;
            if back < injected {
                crate::jlog!(
                    Warn,
                    "lifecycleevh: only {back} of the {injected} endings injected on Janus's event bus came back through it: Janus stopped its bus before it gave the others to its event handlers"
                );
            } else if injected > 0 {
                crate::jlog!(
                    Info,
                    "lifecycleevh: all {injected} endings injected on Janus's event bus came back through it: Janus gave them to every event handler"
                );
            }
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
