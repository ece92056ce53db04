//! The FFI layer: the only place with `unsafe`.
//!
//! - [`sys`]: what bindgen generated from `janus-headers/janus_eventhandler.h`
//!   (the event-handler ABI) and `src/ffi/shim.h` (the C shim).
//! - [`JsonRef`]: an owned reference to one of jansson's `json_t`, released on drop.
//! - [`log_line`], [`log_enabled`]: Janus's logger (stderr outside Janus).
//! - [`bus`]: Janus's own event bus (`janus_events_notify_handlers`).
//!
//! The bottom layer: it imports nothing from the rest of the crate. The C
//! entry points Janus calls live in `crate::entry`, the only other module
//! allowed `unsafe`; everything else is safe Rust and never sees a raw
//! pointer.

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/janus_bindings.rs"));
}

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// Looks up Janus's logger and event bus in the running process (idempotent).
/// Returns true when running inside Janus (its logger was found).
pub fn setup() -> bool {
    // SAFETY: lcevh_setup only calls dlsym and stores the results atomically.
    unsafe { sys::lcevh_setup() != 0 }
}

/// An owned reference to a jansson value: created by taking a reference
/// (`json_incref`) or by parsing, released (`json_decref`) on drop.
pub struct JsonRef(NonNull<sys::json_t>);

// SAFETY: jansson 2.11+ updates reference counts with atomic builtins (Debian's
// 2.14 has JSON_HAVE_ATOMIC_BUILTINS), and Janus never mutates an event after
// handing it to the handlers, so a reference may move to and be read on
// another thread.
unsafe impl Send for JsonRef {}

impl JsonRef {
    /// Takes a new reference to a value the caller only borrows. Null gives None.
    ///
    /// # Safety
    /// `ptr` must be null or point to a live jansson value.
    pub(crate) unsafe fn retain(ptr: *mut sys::json_t) -> Option<JsonRef> {
        let ptr = NonNull::new(ptr)?;
        // jansson's `json_incref` (jansson.h), an inline function that every
        // caller compiles in, Janus included: a value whose count is
        // `(size_t)-1` is never counted; the others get an atomic increment
        // (`__atomic_add_fetch(.., __ATOMIC_ACQUIRE)`). Here rather than in
        // the shim: on the events thread the call into C cost as much again.
        // SAFETY: the caller guarantees ptr is a live json_t; its public
        // `refcount` is a size_t at LCEVH_JSON_REFCOUNT_OFFSET (shim.c checks
        // both against jansson.h at compile time), aligned within the struct,
        // and changed only atomically while references are held, as here.
        let refcount = unsafe {
            AtomicUsize::from_ptr(
                ptr.as_ptr()
                    .cast::<u8>()
                    .add(sys::LCEVH_JSON_REFCOUNT_OFFSET as usize)
                    .cast::<usize>(),
            )
        };
        if refcount.load(Relaxed) != usize::MAX {
            refcount.fetch_add(1, Acquire);
        }
        Some(JsonRef(ptr))
    }

    /// Parses JSON text into a new jansson value (None when it is not JSON).
    pub fn parse(text: &[u8]) -> Option<JsonRef> {
        // SAFETY: the pointer and length describe a live byte slice; jansson copies
        // what it needs and returns a new reference (or NULL).
        let ptr = unsafe { sys::lcevh_json_loadb(text.as_ptr().cast(), text.len()) };
        NonNull::new(ptr).map(JsonRef)
    }

    /// The integer `type` of an event object (None: not an object, no
    /// `type`, or not an integer). A hash lookup in jansson, no copy.
    pub fn event_type(&self) -> Option<i64> {
        // SAFETY: self.0 is a live reference; the shim only reads the value.
        let ty = unsafe { sys::lcevh_json_event_type(self.0.as_ptr()) };
        (ty != i64::MIN).then_some(ty)
    }

    /// Serialises the value compactly into `buf` (replacing its contents).
    /// Returns false when jansson cannot serialise it.
    pub fn dump_into(&self, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        loop {
            let capacity = buf.capacity();
            // SAFETY: self.0 is a live reference; jansson writes at most `capacity`
            // bytes into the spare capacity of buf and returns the size it needs.
            let needed = unsafe {
                sys::lcevh_json_dumpb(self.0.as_ptr(), buf.as_mut_ptr().cast(), capacity)
            };
            if needed == 0 {
                return false;
            }
            if needed <= capacity {
                // SAFETY: jansson initialised exactly `needed` bytes of the buffer.
                unsafe { buf.set_len(needed) };
                return true;
            }
            buf.reserve(needed);
        }
    }

    /// Hands the reference to C (for example as handle_request's answer).
    pub(crate) fn into_raw(self) -> *mut sys::json_t {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }
}

impl Drop for JsonRef {
    fn drop(&mut self) {
        // SAFETY: we own exactly one reference, taken in retain() or parse().
        unsafe { sys::lcevh_json_decref(self.0.as_ptr()) }
    }
}

/// Janus's log levels (debug.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    Fatal = 1,
    Err = 2,
    Warn = 3,
    Info = 4,
    Verb = 5,
    Huge = 6,
    Dbg = 7,
}

/// Whether a message at `level` would be printed (Janus's `debug_level`).
pub fn log_enabled(level: Level) -> bool {
    // SAFETY: reads an int through a pointer found by dlsym, or a constant.
    unsafe { sys::lcevh_log_enabled(level as i32) != 0 }
}

/// Prints one line through Janus's logger, like JANUS_LOG (stderr outside Janus).
pub fn log_line(level: Level, message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: text is a valid NUL-terminated string for the duration of the call;
    // janus_vprintf copies it.
    unsafe { sys::lcevh_log(level as i32, text.as_ptr()) }
}

/// Janus's own event bus: events put here reach every loaded handler.
pub mod bus {
    use super::sys;

    /// Whether `janus_events_notify_handlers` exists in this process.
    pub fn available() -> bool {
        // SAFETY: dlsym lookups only.
        unsafe { sys::lcevh_bus_available() != 0 }
    }

    /// Queues a session `destroyed` event for `session_id`, exactly as Janus
    /// 1.3.2+ does when a transport goes away. Returns false when unavailable.
    pub fn notify_session_destroyed(session_id: u64) -> bool {
        // SAFETY: the name is a static NUL-terminated string; Janus copies it into
        // a new json_t and queues it for its events thread.
        unsafe { sys::lcevh_bus_notify_session(session_id, c"destroyed".as_ptr()) == 0 }
    }
}
