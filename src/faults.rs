//! Fault injection for the FFI harness (feature `fault-injection` only).
//!
//! The Admin API request `{"request": "fault", "in": WHERE}` arms a fault:
//! - `incoming_event`: the next `incoming_event` panics (after taking its reference);
//! - `handle_request`: this request panics;
//! - `worker`: the worker panics on its next event;
//! - `stall`: the worker blocks on its next event until `release`;
//! - `release`: unblocks a stalled worker.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

use crate::sync::{lock, wait};

static PANIC_INCOMING: AtomicBool = AtomicBool::new(false);
static PANIC_WORKER: AtomicBool = AtomicBool::new(false);
static STALL: Mutex<bool> = Mutex::new(false);
static RELEASED: Condvar = Condvar::new();
static STALL_ARMED: AtomicBool = AtomicBool::new(false);

/// Arms a fault; Err names an unknown place.
pub fn arm(place: &str) -> Result<(), String> {
    match place {
        "incoming_event" => PANIC_INCOMING.store(true, SeqCst),
        "handle_request" => panic!("injected fault in handle_request"),
        "worker" => PANIC_WORKER.store(true, SeqCst),
        "stall" => {
            *lock(&STALL) = true;
            STALL_ARMED.store(true, SeqCst);
        }
        "release" => {
            STALL_ARMED.store(false, SeqCst);
            *lock(&STALL) = false;
            RELEASED.notify_all();
        }
        other => return Err(format!("unknown fault place '{other}'")),
    }
    Ok(())
}

/// Called by incoming_event after it took its reference.
pub fn on_incoming() {
    if PANIC_INCOMING.swap(false, SeqCst) {
        panic!("injected fault in incoming_event");
    }
}

/// Called by the worker before it handles an event.
pub fn on_worker_event() {
    if PANIC_WORKER.swap(false, SeqCst) {
        panic!("injected fault in the worker");
    }
    if STALL_ARMED.load(SeqCst) {
        let mut stalled = lock(&STALL);
        while *stalled {
            stalled = wait(&RELEASED, stalled);
        }
    }
}
