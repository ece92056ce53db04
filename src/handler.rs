//! The one global: the running handler (or why it is not running), reached
//! by the C entry points. `init` starts a [`Running`], `destroy` stops it;
//! events and Admin API requests go to it while it runs.

use std::path::Path;
use std::sync::{Mutex, RwLock, TryLockError};

use serde_json::Value;

use crate::admin;
use crate::error::InitError;
use crate::ffi::{self, JsonRef};
use crate::running::Running;
use crate::sync::{lock, read, write};

static STATE: RwLock<Option<Running>> = RwLock::new(None);
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
        Ok(running) => {
            crate::jlog!(
                Info,
                "JANUS lifecycleevh {} initialized (config {}; forwarding {} to {} sink(s))",
                env!("CARGO_PKG_VERSION"),
                running.config().file_path.display(),
                running.config().general.events,
                running.sinks().len()
            );
            *state = Some(running);
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
        running.offer(event);
    }
}

/// Stops the handler (see [`Running::stop`]). Idempotent.
pub fn destroy() {
    let running = write(&STATE).take();
    if let Some(running) = running {
        running.stop();
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
