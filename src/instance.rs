//! The handler's one instance in this process: the slot holding the
//! [`Running`] handler (or why it is not running) that the C entry points
//! reach, and the events thread's end of its queue. `init` starts a
//! [`Running`], `destroy` stops it; events and Admin API requests go to it
//! while it runs.

use std::path::Path;
use std::sync::{Mutex, RwLock};

use try_lock::TryLock;

use serde_json::Value;

use crate::admin;
use crate::error::InitError;
use crate::ffi::{self, JsonRef};
use crate::intake::Intake;
use crate::running::Running;
use crate::sync::{lock, read, write};

static STATE: RwLock<Option<Running>> = RwLock::new(None);
/// The running handler's intake, apart from [`STATE`] so that an event
/// costs one uncontended try-lock (a compare-and-swap, then a store; no
/// poisoning to track). Janus has one events thread; the lock makes a
/// second caller (a test may be one) sound: it is refused, never kept
/// waiting.
static INTAKE: TryLock<Option<Intake<JsonRef>>> = TryLock::new(None);

/// Takes the intake lock for `init` and `destroy` (not on the events
/// thread): the only holder they can meet is an event being handed over.
fn with_intake<R>(f: impl FnOnce(&mut Option<Intake<JsonRef>>) -> R) -> R {
    loop {
        if let Some(mut intake) = INTAKE.try_lock() {
            return f(&mut intake);
        }
        std::thread::yield_now();
    }
}
/// Why the last `init` failed, for the Admin API of a handler Janus kept loaded.
static INIT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Starts the handler with the config found in `folder`.
pub fn init(folder: &Path) -> Result<(), InitError> {
    let inside_janus = ffi::setup();
    let mut state = write(&STATE);
    if state.is_some() {
        return Err(InitError::AlreadyRunning);
    }
    match Running::start(folder, inside_janus) {
        Ok((running, intake)) => {
            crate::jlog!(
                Info,
                "JANUS lifecycleevh {} initialized (config {}; forwarding {} to {} sink(s))",
                env!("CARGO_PKG_VERSION"),
                running.config().file_path.display(),
                running.config().general.events,
                running.sinks().len()
            );
            *state = Some(running);
            with_intake(|slot| *slot = Some(intake));
            *lock(&INIT_ERROR) = None;
            Ok(())
        }
        Err(e) => {
            *lock(&INIT_ERROR) = Some(e.to_string());
            Err(e)
        }
    }
}

/// Hands an event to the worker, if the handler runs. Called on Janus's
/// events thread: never blocks (a handler being started or stopped at that
/// moment counts as not running).
#[inline]
pub fn offer(retain: impl FnOnce() -> Option<JsonRef>) {
    let Some(mut guard) = INTAKE.try_lock() else {
        return refuse(retain);
    };
    if let Some(intake) = guard.as_mut()
        && let Some(event) = retain()
    {
        #[cfg(feature = "fault-injection")]
        crate::faults::on_incoming();
        intake.offer(event);
    }
}

/// Another call holds the intake: a second thread (never inside Janus), or
/// `init`/`destroy` at this moment. Counted as dropped, by type, if the
/// handler runs.
#[cold]
#[inline(never)]
fn refuse(retain: impl FnOnce() -> Option<JsonRef>) {
    let Ok(guard) = STATE.try_read() else {
        return;
    };
    if let Some(running) = guard.as_ref()
        && let Some(event) = retain()
    {
        running.refused(event.event_type());
    }
}

/// Stops the handler (see [`Running::stop`]). Idempotent.
pub fn destroy() {
    // First the intake (waiting, at most, for an event being handed over):
    // once it is dropped, the worker drains what is queued and finishes.
    let intake = with_intake(Option::take);
    let running = write(&STATE).take();
    match running {
        Some(running) => running.stop(intake),
        None => drop(intake),
    }
}

/// Answers an Admin API `query_eventhandler` request (None: no request object).
pub fn request(request: Option<&Value>) -> Value {
    let guard = read(&STATE);
    match guard.as_ref() {
        Some(running) => admin::handle(request, running),
        None => {
            let why = lock(&INIT_ERROR).clone();
            admin::AdminError::NotRunning(why).answer()
        }
    }
}
