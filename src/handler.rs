//! The handler's life: what `init` builds, what `destroy` takes down, and the
//! one global that the C entry points reach it through.
//!
//! `init` reads the config, opens the sinks, starts the worker and makes the
//! intake reachable; `destroy` makes it unreachable (no new events), lets the
//! worker drain the channel, end the sessions still open, flush the sinks and
//! stop, all within `general.shutdown_timeout_ms`.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admin;
use crate::config::{Config, ConfigError};
use crate::ffi::{self, JsonRef};
use crate::intake::{self, Intake};
use crate::metrics::Metrics;
use crate::sinks::file::FileSink;
use crate::sinks::http::HttpSink;
use crate::sinks::janus_bus::{BusStats, JanusBus};
use crate::sinks::spool::SpoolConfig;
use crate::sinks::{Router, SinkHandle, SinkSettings, SinkShared, SpoolSettings};
use crate::state::SessionStore;
use crate::tracker::{SessionView, Tracker};
use crate::worker::{self, Control, Pipeline, Store, WorkerHandle};

use crossbeam_channel::{Sender, bounded};

/// A running handler.
pub struct Running {
    intake: Intake<JsonRef>,
    worker: WorkerHandle,
    control: Sender<Control>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) sinks: Vec<Arc<SinkShared>>,
    pub(crate) bus_available: bool,
    pub(crate) bus: Arc<BusStats>,
    pub(crate) config: Config,
    pub(crate) started: Instant,
    pub(crate) inside_janus: bool,
}

impl Running {
    pub(crate) fn channel(&self) -> (usize, usize) {
        (self.intake.depth(), self.intake.capacity())
    }

    /// A page of live sessions from the worker (None if it does not answer
    /// within 2 s).
    pub(crate) fn sessions(
        &self,
        offset: usize,
        limit: usize,
    ) -> Option<(usize, Vec<SessionView>)> {
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
    pub(crate) fn set_settle_ms(&self, ms: u64) -> bool {
        let (reply, answer) = bounded(1);
        self.control
            .send_timeout(Control::Settle { ms, reply }, CONTROL_TIMEOUT)
            .is_ok()
            && answer.recv_timeout(CONTROL_TIMEOUT).is_ok()
    }
}

/// How long an Admin API request waits for the worker.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

static STATE: RwLock<Option<Running>> = RwLock::new(None);
/// Why the last `init` failed, for the Admin API of a handler Janus kept loaded.
static INIT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Starts the handler with the config found in `folder`.
pub fn init(folder: &Path) -> Result<(), String> {
    let inside_janus = ffi::setup();
    let mut state = STATE.write().unwrap_or_else(|p| p.into_inner());
    if state.is_some() {
        return Err("lifecycleevh: init called twice; keeping the running instance".into());
    }
    let result = start(folder, inside_janus);
    match result {
        Ok(running) => {
            crate::jlog!(
                Info,
                "JANUS lifecycleevh {} initialized (config {}; forwarding {} to {} sink(s))",
                env!("CARGO_PKG_VERSION"),
                running.config.file_path.display(),
                running.config.general.events,
                running.sinks.len()
            );
            *state = Some(running);
            *INIT_ERROR.lock().unwrap_or_else(|p| p.into_inner()) = None;
            Ok(())
        }
        Err(e) => {
            *INIT_ERROR.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            Err(e)
        }
    }
}

fn start(folder: &Path, inside_janus: bool) -> Result<Running, String> {
    let config = Config::load(folder).map_err(|e| e.to_string())?;
    if !config.general.enabled {
        return Err(format!(
            "{}: general.enabled is not true: lifecycleevh stays disabled",
            config.file_path.display()
        ));
    }
    for w in &config.janus.warnings {
        crate::jlog!(Warn, "{w}");
    }
    if !config.janus.websockets_events {
        crate::jlog!(
            Warn,
            "janus.transport.websockets.jcfg has events = false: closed WebSocket connections are invisible to event handlers, so sessions they end get their destroyed only at timeout or shutdown"
        );
    }
    let metrics = Arc::new(Metrics::default());
    let router = Router::new(start_sinks(&config)?);
    let sinks = router.shared();
    let bus = JanusBus::new(config.general.inject.clone());
    let bus_available = bus.available();
    if bus.enabled() && !bus_available {
        crate::jlog!(
            Warn,
            "janus_events_notify_handlers is not in this process: synthetic endings are not re-injected into Janus's event bus (this handler's own sinks still get them)"
        );
    }
    let bus_stats = bus.stats();
    let mut pipeline = Pipeline::new(Tracker::new(config.tracker()), router, bus, metrics.clone());
    if let Some(dir) = &config.general.state_dir {
        let (store, recovered) =
            SessionStore::open(dir, config.general.state_fsync).map_err(|e| {
                ConfigError {
                    file: config.file_path.clone(),
                    key: "general.state_dir".into(),
                    problem: format!("cannot use {} for crash recovery: {e}", dir.display()),
                }
                .to_string()
            })?;
        pipeline.recover(Store::new(store, config.general.checkpoint), recovered);
    }
    let (intake, rx) = intake::channel(config.general.channel_capacity, metrics.clone());
    let (control, control_rx) = bounded(64);
    let worker = worker::spawn(rx, control_rx, pipeline, config.general.shutdown_timeout)
        .map_err(|e| format!("lifecycleevh: cannot start the worker thread: {e}"))?;
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
    })
}

fn start_sinks(config: &Config) -> Result<Vec<SinkHandle>, String> {
    let config_error = |key: String, problem: String| {
        ConfigError {
            file: config.file_path.clone(),
            key,
            problem,
        }
        .to_string()
    };
    let mut sinks = Vec::new();
    let f = &config.file;
    if f.enabled {
        let sink = FileSink::open(&f.path).map_err(|e| {
            config_error(
                "file.path".into(),
                format!("cannot open {} for appending: {e}", f.path.display()),
            )
        })?;
        let settings = SinkSettings::simple(
            "file",
            f.events.unwrap_or(config.general.events),
            f.queue_size,
            f.flush,
        );
        sinks.push(SinkHandle::spawn("file", settings, Box::new(sink))?);
    }
    for h in config.http.iter().filter(|h| h.enabled) {
        let key = if h.target.ca_file.is_some() {
            "ca_file"
        } else {
            "backend"
        };
        let sink = HttpSink::new(h.target.clone())
            .map_err(|e| config_error(format!("{}.{key}", h.name), e))?;
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
            spool: h.spool.as_ref().map(|s| SpoolSettings {
                config: SpoolConfig {
                    dir: s.dir.clone(),
                    fsync: s.fsync,
                    max_bytes: s.max_bytes,
                    segment_bytes: (16 << 20).min(s.max_bytes / 4).max(64 << 10),
                },
                all_events: s.all_events,
            }),
        };
        let handle = SinkHandle::spawn("http", settings, Box::new(sink))
            .map_err(|e| config_error(format!("{}.spool_dir", h.name), e))?;
        sinks.push(handle);
    }
    Ok(sinks)
}

/// Hands an event to the worker, if the handler runs. Called on Janus's
/// events thread: never blocks (a handler being started or stopped at that
/// moment counts as not running).
#[inline]
pub fn offer(retain: impl FnOnce() -> Option<JsonRef>) {
    let guard = match STATE.try_read() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    if let Some(running) = guard.as_ref()
        && let Some(event) = retain()
    {
        #[cfg(feature = "fault-injection")]
        crate::faults::on_incoming();
        running.intake.offer(event);
    }
}

/// Stops the handler (see the module documentation). Idempotent.
pub fn destroy() {
    let running = STATE.write().unwrap_or_else(|p| p.into_inner()).take();
    let Some(running) = running else {
        return;
    };
    let Running {
        intake,
        worker,
        control,
        metrics,
        config,
        ..
    } = running;
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

/// Answers an Admin API `query_eventhandler` request (None: no request object).
pub fn request(request: Option<&Value>) -> Value {
    let guard = STATE.read().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(running) => admin::handle(request, running),
        None => {
            let why = INIT_ERROR.lock().unwrap_or_else(|p| p.into_inner()).clone();
            admin::not_running(why.as_deref())
        }
    }
}
