//! Threads and locks, the way the whole handler uses them.
//!
//! - Locks ignore poisoning: every value guarded here stays valid whatever
//!   panicked while it was held, and a panic must never spread to Janus.
//! - [`Spawned`] is a named thread that can be waited for with a time limit:
//!   `destroy()` must return within a bounded time, so a thread that does not
//!   finish in time is left behind (the library is linked `-z nodelete`, so
//!   its code stays mapped) rather than joined forever.

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded};

/// Locks a mutex, ignoring poisoning.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read-locks, ignoring poisoning.
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks, ignoring poisoning.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Waits on a condition variable, ignoring poisoning.
pub fn wait<'a, T>(c: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    c.wait(g).unwrap_or_else(|p| p.into_inner())
}

/// Waits on a condition variable at most `timeout`, ignoring poisoning.
pub fn wait_timeout<'a, T>(
    c: &Condvar,
    g: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    c.wait_timeout(g, timeout)
        .unwrap_or_else(|p| p.into_inner())
        .0
}

/// A named thread that says when it is done, so that it can be waited for
/// with a time limit.
pub struct Spawned {
    thread: Option<JoinHandle<()>>,
    done: Receiver<()>,
}

impl Spawned {
    /// Starts `f` on a new thread called `name`.
    pub fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<Spawned> {
        let (done_tx, done) = bounded(1);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            f();
            let _ = done_tx.send(());
        })?;
        Ok(Spawned {
            thread: Some(thread),
            done,
        })
    }

    /// Waits at most `timeout` for the thread to finish, then joins it.
    /// False when it did not finish in time: it is then left behind (and
    /// never waited for again).
    pub fn join_within(&mut self, timeout: Duration) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        if self.done.recv_timeout(timeout).is_ok() {
            let _ = thread.join();
            true
        } else {
            false
        }
    }

    /// Whether the thread is still to be waited for.
    pub fn is_pending(&self) -> bool {
        self.thread.is_some()
    }
}
