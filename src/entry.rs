//! The C entry points Janus calls: the top of the crate. Each one only
//! crosses the boundary: it catches panics (none may unwind into C),
//! converts pointers to safe values and hands over to [`crate::instance`].
//! With `crate::ffi`, the only module allowed `unsafe`.

use std::cell::UnsafeCell;
use std::ffi::{CStr, c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ffi::{JsonRef, sys};
use crate::instance;
use crate::janus::types;

/// The table Janus reads. `events_mask` starts empty and becomes "all" once
/// `init` succeeds: a handler whose init failed is still registered by Janus
/// 1.1.x, and then gets no events at all.
struct HandlerTable(UnsafeCell<sys::janus_eventhandler>);

// SAFETY: the only field ever written after creation is `events_mask`, and
// only through atomic operations (as Janus itself reads it, with g_atomic_*);
// the function pointers are immutable.
unsafe impl Sync for HandlerTable {}

static HANDLER: HandlerTable = HandlerTable(UnsafeCell::new(sys::janus_eventhandler {
    init: Some(init),
    destroy: Some(destroy),
    get_api_compatibility: Some(get_api_compatibility),
    get_version: Some(get_version),
    get_version_string: Some(get_version_string),
    get_description: Some(get_description),
    get_name: Some(get_name),
    get_author: Some(get_author),
    get_package: Some(get_package),
    incoming_event: Some(incoming_event),
    handle_request: Some(handle_request),
    events_mask: 0,
}));

fn set_events_mask(mask: u32) {
    // SAFETY: the field lives in a static for the life of the process, is
    // 8-byte aligned (checked by bindgen's layout tests and tests/abi_layout.rs)
    // and is only accessed atomically, here and by Janus.
    let field = unsafe { AtomicU64::from_ptr(&raw mut (*HANDLER.0.get()).events_mask) };
    field.store(u64::from(mask), Ordering::SeqCst);
}

/// Runs `f`, turning a panic into `fallback` (and a log line) instead of
/// unwinding into Janus.
#[inline(always)]
fn guard<R>(what: &'static str, fallback: impl FnOnce() -> R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            report_panic(what, payload);
            catch_unwind(AssertUnwindSafe(fallback)).unwrap_or_else(|_| std::process::abort())
        }
    }
}

/// Logs a caught panic. Out of line, so that an entry point's own path
/// carries nothing for it (Janus's events thread calls one per event).
#[cold]
#[inline(never)]
fn report_panic(what: &'static str, payload: Box<dyn std::any::Any + Send>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        crate::jlog!(Err, "internal error (panic) in {what}: {msg}");
    }));
    // A payload whose drop panics must not unwind into Janus either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

const VERSION_STRING: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("version string"),
    };

/// The symbol Janus looks up after loading the library.
#[unsafe(no_mangle)]
pub extern "C" fn create() -> *mut sys::janus_eventhandler {
    HANDLER.0.get()
}

extern "C" fn init(config_path: *const c_char) -> c_int {
    guard(
        "init",
        || -1,
        || {
            if config_path.is_null() {
                crate::jlog!(Err, "init called without a configuration folder");
                return -1;
            }
            // SAFETY: Janus passes a NUL-terminated path that lives during the call.
            let bytes = unsafe { CStr::from_ptr(config_path) }.to_bytes();
            let folder = Path::new(std::ffi::OsStr::from_bytes(bytes));
            match instance::init(folder) {
                Ok(()) => {
                    set_events_mask(types::ALL);
                    0
                }
                Err(e) => {
                    crate::jlog!(Err, "{e}");
                    crate::jlog!(Err, "lifecycleevh is disabled; Janus continues without it");
                    -1
                }
            }
        },
    )
}

extern "C" fn destroy() {
    guard(
        "destroy",
        || (),
        || {
            set_events_mask(0);
            instance::destroy();
        },
    )
}

extern "C" fn get_api_compatibility() -> c_int {
    types::API_VERSION
}

extern "C" fn get_version() -> c_int {
    // 0.1.0 -> 100, like Janus's small integer versions.
    let v = |s: &str| s.parse::<c_int>().unwrap_or(0);
    guard(
        "get_version",
        || 0,
        || {
            v(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
                + v(env!("CARGO_PKG_VERSION_MINOR")) * 100
                + v(env!("CARGO_PKG_VERSION_PATCH"))
        },
    )
}

extern "C" fn get_version_string() -> *const c_char {
    VERSION_STRING.as_ptr()
}

extern "C" fn get_description() -> *const c_char {
    c"Closes the gaps in Janus's session lifecycle events (every created session ends with exactly one destroyed, with its reason) and forwards the event stream to files, HTTP backends and Janus's own event bus.".as_ptr()
}

extern "C" fn get_name() -> *const c_char {
    c"JANUS lifecycleevh event handler".as_ptr()
}

extern "C" fn get_author() -> *const c_char {
    c"lifecycleevh developers".as_ptr()
}

extern "C" fn get_package() -> *const c_char {
    c"janus.eventhandler.lifecycleevh".as_ptr()
}

extern "C" fn incoming_event(event: *mut sys::json_t) {
    guard(
        "incoming_event",
        || (),
        || {
            // SAFETY: Janus passes a live json_t, borrowed for this call; retain()
            // takes our own reference before the call returns.
            instance::offer(|| unsafe { JsonRef::retain(event) });
        },
    )
}

extern "C" fn handle_request(request: *mut sys::json_t) -> *mut sys::json_t {
    let answer = guard(
        "handle_request",
        || crate::admin::AdminError::Internal("internal error".into()).answer(),
        || {
            // SAFETY: Janus passes a live json_t (or NULL) borrowed for this call.
            let parsed = unsafe { JsonRef::retain(request) }.and_then(|r| {
                let mut buf = Vec::new();
                r.dump_into(&mut buf)
                    .then(|| serde_json::from_slice::<serde_json::Value>(&buf).ok())
                    .flatten()
            });
            instance::request(parsed.as_ref())
        },
    );
    let text = answer.to_string();
    JsonRef::parse(text.as_bytes())
        .map(JsonRef::into_raw)
        .unwrap_or(std::ptr::null_mut())
}
