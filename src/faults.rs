//! Fault injection for the FFI harness (feature `fault-injection` only).
//!
//! The Admin API request `{"request": "fault", "in": WHERE}` arms a fault:
//! - `incoming_event`: the next `incoming_event` panics (after taking its reference);
//! - `handle_request`: this request panics;
//! - `worker`: the worker panics on its next event;
//! - `stall`: the worker blocks on its next event until `release`;
//! - `stall_sink:<name>`: the sink `<name>` (e.g. `file`) blocks before its
//!   next delivery until `release` (to kill Janus while that sink holds an
//!   event the others already have);
//! - `release`: unblocks a stalled worker and stalled sinks.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};

use crate::sync::{lock, wait};

static PANIC_INCOMING: AtomicBool = AtomicBool::new(false);
static PANIC_WORKER: AtomicBool = AtomicBool::new(false);
static STALL: Mutex<bool> = Mutex::new(false);
static RELEASED: Condvar = Condvar::new();
static STALL_ARMED: AtomicBool = AtomicBool::new(false);
/// The sinks told to stall before their next delivery.
static STALL_SINKS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SINKS_RELEASED: Condvar = Condvar::new();

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
            lock(&STALL_SINKS).clear();
            SINKS_RELEASED.notify_all();
            *lock(&STALL) = false;
            RELEASED.notify_all();
        }
        other => match other.strip_prefix("stall_sink:") {
            Some(sink) if !sink.is_empty() => lock(&STALL_SINKS).push(sink.to_string()),
            _ => return Err(format!("unknown fault place '{other}'")),
        },
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

/// Called by a sink's thread before each delivery.
pub fn on_sink_delivery(sink: &str) {
    let mut stalled = lock(&STALL_SINKS);
    while stalled.iter().any(|s| s == sink) {
        stalled = wait(&SINKS_RELEASED, stalled);
    }
}
