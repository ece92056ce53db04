//! The intake: what runs on Janus's events thread.
//!
//! `incoming_event` takes a reference to the event and `try_send`s it into a
//! bounded, lock-free channel (crossbeam's array flavour) to the worker. It
//! never blocks, never does I/O and allocates nothing: when the channel is
//! full the event is released at once and counted as dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::ffi::JsonRef;
use crate::metrics::Metrics;

/// Something that crossed from Janus to the worker and can be read as JSON.
pub trait Inbound: Send + 'static {
    /// Writes the event's compact JSON text into `buf` (replacing it);
    /// false when it cannot.
    fn write_json(&self, buf: &mut Vec<u8>) -> bool;
}

impl Inbound for JsonRef {
    fn write_json(&self, buf: &mut Vec<u8>) -> bool {
        self.dump_into(buf)
    }
}

/// JSON text, for tests and replays that feed the worker without jansson.
impl Inbound for Vec<u8> {
    fn write_json(&self, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        buf.extend_from_slice(self);
        true
    }
}

/// The sending side, owned by the running handler.
pub struct Intake<T: Inbound> {
    tx: Sender<T>,
    metrics: Arc<Metrics>,
}

/// Makes the channel: the intake for the events thread, the receiver for the worker.
pub fn channel<T: Inbound>(capacity: usize, metrics: Arc<Metrics>) -> (Intake<T>, Receiver<T>) {
    let (tx, rx) = bounded(capacity);
    (Intake { tx, metrics }, rx)
}

impl<T: Inbound> Intake<T> {
    /// Hands one event to the worker, or drops it when the channel is full.
    #[inline]
    pub fn offer(&self, event: T) {
        self.metrics.received.fetch_add(1, Relaxed);
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event) | TrySendError::Disconnected(event)) => {
                self.metrics.dropped.fetch_add(1, Relaxed);
                drop(event);
            }
        }
    }

    pub fn depth(&self) -> usize {
        self.tx.len()
    }

    pub fn capacity(&self) -> usize {
        self.tx.capacity().unwrap_or(0)
    }
}
