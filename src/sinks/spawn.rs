//! A sink started: its spool opened, its shared part made, its runner on
//! its own thread; and closed within a deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::runner::Runner;
use super::settings::SinkSettings;
use super::shared::{SinkShared, SpoolSlot};
use super::sink::Sink;
use super::spool::{Spool, SpoolError};
use crate::sync::{Spawned, lock};

/// Says once in Janus's log what opening a spool found damaged in its files
/// (the sink runs on with the rest; see `spool`'s "Damage found on open").
fn log_damage(name: &str, spool: &Spool) {
    let r = spool.damage();
    if r.reports > 0 {
        let listed: Vec<String> = r.corrupt.iter().map(ToString::to_string).collect();
        let more = r.reports - r.corrupt.len() as u64;
        let bytes = match r.records_in(r.corrupt_bytes) {
            Some(about) if r.corrupt_bytes > 0 => format!(
                ", {} bytes in which records cannot be told apart (about {about} records)",
                r.corrupt_bytes
            ),
            _ if r.corrupt_bytes > 0 => format!(
                ", {} bytes in which records cannot be told apart",
                r.corrupt_bytes
            ),
            _ => String::new(),
        };
        let cut = match r.cut_segments {
            0 => String::new(),
            n => format!(
                ", {n} segment(s) cut short (their end is missing, with at most {} records)",
                r.cut_records_at_most
            ),
        };
        crate::jlog!(
            Err,
            "{name}: spool: damaged: skipped {} records{bytes}{cut}; those events are lost, the others are sent in order: {}{}",
            r.corrupt_records,
            listed.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        );
    }
    if let Some(torn) = &r.torn {
        crate::jlog!(Warn, "{name}: spool: {torn}");
    }
    if let Some(what) = &r.ack_unreadable {
        crate::jlog!(
            Warn,
            "{name}: spool: the ack file holds {what}, not a sequence number: every spooled event is sent again"
        );
    }
}

/// A running sink: the shared part and its thread.
pub struct SinkHandle {
    shared: Arc<SinkShared>,
    thread: Spawned,
}

/// Why a sink could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// Its spool could not be opened.
    Spool(SpoolError),
    /// Its thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Spool(e) => e.fmt(f),
            SpawnError::Thread(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SpawnError {}

impl SinkHandle {
    /// Opens the sink's spool (if any) and starts its thread.
    pub fn spawn(
        kind: &'static str,
        settings: SinkSettings,
        sink: Box<dyn Sink>,
    ) -> Result<SinkHandle, SpawnError> {
        let spool = match &settings.spool {
            None => None,
            Some(sp) => {
                let spool = Spool::open(sp.config.clone()).map_err(SpawnError::Spool)?;
                log_damage(&settings.name, &spool);
                if spool.pending() > 0 {
                    crate::jlog!(
                        Info,
                        "{}: {} spooled events from an earlier run will be sent first",
                        settings.name,
                        spool.pending()
                    );
                }
                Some(SpoolSlot {
                    spool: Mutex::new(spool),
                    all_events: sp.all_events,
                    dir: sp.config.dir.display().to_string(),
                })
            }
        };
        let shared = Arc::new(SinkShared::new(
            kind,
            &settings,
            spool,
            sink.describe(),
            sink.connection(),
        ));
        let runner = Runner::new(sink, shared.clone(), &settings);
        let thread = Spawned::spawn(format!("lcevh {}", settings.name), move || runner.run())
            .map_err(SpawnError::Thread)?;
        Ok(SinkHandle { shared, thread })
    }

    pub fn shared(&self) -> &Arc<SinkShared> {
        &self.shared
    }

    /// Asks the thread to deliver what is queued (no retry waits any more),
    /// flush and stop, and waits for it until `deadline`. Returns false if it
    /// did not finish in time (the thread is then left to finish on its own;
    /// spooled events stay spooled for the next start).
    pub fn close(&mut self, deadline: Instant) -> bool {
        let queue = &self.shared.queue;
        lock(&queue.state).closing = Some(deadline);
        queue.notify();
        let finished = self
            .thread
            .join_within(deadline.saturating_duration_since(Instant::now()));
        if !finished {
            crate::jlog!(
                Warn,
                "sink {} did not finish within the shutdown timeout; {} events still queued",
                self.shared.name(),
                queue.len()
            );
        }
        finished
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        if self.thread.is_pending() {
            let _ = self.close(Instant::now() + Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! The sink runner with a scripted sink: order, masks, batching, retries,
    //! the spool, and closing.

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

    use serde_json::{Map, Value};

    use super::*;
    use crate::config::{EventMask, Fsync};
    use crate::output::OutEvent;
    use crate::sinks::spool::{self, SpoolConfig};
    use crate::sinks::{SinkError, SpoolSettings};

    /// A sink that records what it got and fails while told to.
    #[derive(Clone, Default)]
    pub(crate) struct Script {
        got: Arc<Mutex<Vec<Vec<String>>>>,
        fail: Arc<AtomicBool>,
        attempts: Arc<AtomicUsize>,
        flushes: Arc<AtomicUsize>,
    }

    impl Sink for Script {
        fn deliver(&mut self, batch: &[&str], _deadline: Option<Instant>) -> Result<(), SinkError> {
            self.attempts.fetch_add(1, Relaxed);
            if self.fail.load(Relaxed) {
                return Err(SinkError {
                    delivered: 0,
                    message: "backend down".into(),
                });
            }
            lock(&self.got).push(batch.iter().map(|s| s.to_string()).collect());
            Ok(())
        }
        fn flush(&mut self) -> Result<(), String> {
            self.flushes.fetch_add(1, Relaxed);
            Ok(())
        }
        fn describe(&self) -> Map<String, Value> {
            Map::new()
        }
    }

    impl Script {
        fn events(&self) -> Vec<String> {
            lock(&self.got).iter().flatten().cloned().collect()
        }
    }

    fn ev(ty: u32, lifecycle: bool, n: u64) -> Arc<OutEvent> {
        OutEvent::new(ty, lifecycle, Some(n), format!("{{\"n\":{n}}}"))
    }

    pub(crate) fn settings(max_batch: usize) -> SinkSettings {
        SinkSettings {
            max_batch,
            max_delay: Duration::ZERO,
            retries: 2,
            backoff: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            ..SinkSettings::simple(
                "t",
                EventMask(crate::janus::types::SESSION),
                100,
                Duration::from_secs(3600),
            )
        }
    }

    fn wait(cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn texts(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
        range.map(|n| format!("{{\"n\":{n}}}")).collect()
    }

    #[test]
    fn delivers_in_order_filters_by_mask_and_flushes_on_close() {
        let script = Script::default();
        let mut h = SinkHandle::spawn("test", settings(7), Box::new(script.clone())).unwrap();
        let shared = h.shared().clone();
        for n in 0..50 {
            assert!(shared.offer(&ev(1, false, n)));
        }
        assert!(!shared.offer(&ev(2, false, 99)), "masked out");
        assert!(h.close(Instant::now() + Duration::from_secs(10)));
        assert_eq!(script.events(), texts(0..=49));
        assert!(lock(&script.got).iter().all(|b| b.len() <= 7));
        assert_eq!(shared.stats().sent.load(Relaxed), 50);
        assert!(script.flushes.load(Relaxed) >= 1);
        assert_eq!(shared.info()["accepted"], 50);
    }

    #[test]
    fn retries_then_gives_up_on_events_that_are_not_spooled() {
        let script = Script::default();
        script.fail.store(true, Relaxed);
        let mut h = SinkHandle::spawn("test", settings(10), Box::new(script.clone())).unwrap();
        let shared = h.shared().clone();
        shared.offer(&ev(1, false, 1));
        // One attempt and two retries, then the event is given up.
        wait(|| shared.stats().failed.load(Relaxed) == 1);
        assert_eq!(script.attempts.load(Relaxed), 3);
        assert_eq!(shared.stats().last_error().as_deref(), Some("backend down"));
        script.fail.store(false, Relaxed);
        shared.offer(&ev(1, false, 2));
        wait(|| shared.stats().sent.load(Relaxed) == 1);
        assert_eq!(shared.stats().retrying.load(Relaxed), 0);
        assert!(h.close(Instant::now() + Duration::from_secs(5)));
        assert_eq!(script.events(), texts(2..=2));
    }

    pub(crate) fn spooled(dir: &std::path::Path, max_batch: usize) -> SinkSettings {
        SinkSettings {
            spool: Some(SpoolSettings {
                config: SpoolConfig {
                    dir: dir.to_path_buf(),
                    fsync: Fsync::Never,
                    max_bytes: 1 << 20,
                    segment_bytes: 256,
                    file_mode: 0o600,
                },
                all_events: false,
            }),
            ..settings(max_batch)
        }
    }

    #[test]
    fn spooled_events_wait_out_an_outage_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let script = Script::default();
        script.fail.store(true, Relaxed);
        let mut h =
            SinkHandle::spawn("test", spooled(dir.path(), 4), Box::new(script.clone())).unwrap();
        let shared = h.shared().clone();
        // Lifecycle events are spooled, the others queued in memory.
        for n in 1..=10 {
            shared.offer(&ev(1, n % 2 == 0, n));
        }
        // Past the retries, memory events are given up; spooled ones are kept
        // and retried (how the first batches mix the two depends on when the
        // sink's thread woke up).
        wait(|| script.attempts.load(Relaxed) >= 4);
        assert_eq!(shared.info()["spool"]["pending"], 5);
        // Closing with the backend still down: the spool keeps its five, the
        // memory events still queued (5, 7, 9) count as failed.
        assert!(h.close(Instant::now() + Duration::from_secs(5)));
        assert_eq!(shared.stats().failed.load(Relaxed), 5);
        drop(h);
        drop(shared); // releases the spool (and its lock)

        // Next start: the backend is up, the spool goes out first, in order.
        // (A test of another module that spawns a process can hold a copy of
        // the spool's lock for a moment, until that process execs.)
        let script = Script::default();
        let mut h = (0..50)
            .find_map(|_| {
                match SinkHandle::spawn("test", spooled(dir.path(), 4), Box::new(script.clone())) {
                    Ok(h) => Some(h),
                    Err(SpawnError::Spool(spool::SpoolError::Locked(_))) => {
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    }
                    Err(e) => panic!("{e}"),
                }
            })
            .expect("the spool's lock is released");
        let shared = h.shared().clone();
        shared.offer(&ev(1, false, 11));
        shared.offer(&ev(1, true, 12));
        wait(|| script.events().len() == 7);
        let want: Vec<String> = [2, 4, 6, 8, 10, 11, 12]
            .iter()
            .map(|n| format!("{{\"n\":{n}}}"))
            .collect();
        assert_eq!(script.events(), want);
        wait(|| shared.info()["spool"]["pending"] == 0);
        assert!(h.close(Instant::now() + Duration::from_secs(5)));
    }

    /// A spooled event never overtakes an older one kept in memory. An offer
    /// spools its lifecycle events before it queues the others, so when an
    /// offer lands between the sink thread's read of the spool and its read
    /// of the queue, the thread saw the `attached` that came before a
    /// `created` but not the `created`, and sent `attached` first (seen
    /// with a real Janus and RabbitMQ). The test offers right there.
    #[test]
    fn spooled_and_memory_events_go_out_in_the_order_offered() {
        let dir = tempfile::tempdir().unwrap();
        let script = Script::default();
        let mut h =
            SinkHandle::spawn("test", spooled(dir.path(), 8), Box::new(script.clone())).unwrap();
        let shared = h.shared().clone();
        let weak = Arc::downgrade(&shared);
        let mut offered = false;
        *lock(&shared.after_spool_read) = Some(Box::new(move || {
            if !std::mem::replace(&mut offered, true)
                && let Some(shared) = weak.upgrade()
            {
                // 2 (lifecycle: spooled), then 3 (not: in memory).
                assert_eq!(
                    shared.offer_all(&[(2, ev(1, true, 2)), (3, ev(1, false, 3))]),
                    2
                );
            }
        }));
        shared.offer(&ev(1, false, 1));
        wait(|| script.events().len() == 3);
        shared.offer(&ev(1, true, 4));
        wait(|| script.events().len() == 4);
        assert!(h.close(Instant::now() + Duration::from_secs(10)));
        assert_eq!(script.events(), texts(1..=4));
    }

    #[test]
    fn max_delay_groups_events() {
        let script = Script::default();
        let s = SinkSettings {
            max_delay: Duration::from_millis(300),
            ..settings(100)
        };
        let mut h = SinkHandle::spawn("test", s, Box::new(script.clone())).unwrap();
        let shared = h.shared().clone();
        for n in 0..5 {
            shared.offer(&ev(1, false, n));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(script.events().is_empty(), "waits for more");
        wait(|| script.events().len() == 5);
        assert_eq!(lock(&script.got).len(), 1, "one batch");
        assert!(h.close(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn close_gives_up_at_the_deadline() {
        let script = Script::default();
        script.fail.store(true, Relaxed);
        let s = SinkSettings {
            retries: 1_000,
            backoff: Duration::from_secs(60),
            backoff_max: Duration::from_secs(60),
            ..settings(10)
        };
        let mut h = SinkHandle::spawn("test", s, Box::new(script.clone())).unwrap();
        let shared = h.shared().clone();
        shared.offer(&ev(1, false, 1));
        wait(|| script.attempts.load(Relaxed) == 1);
        // In a 60 s backoff: close() must not wait for it.
        let start = Instant::now();
        assert!(h.close(Instant::now() + Duration::from_secs(5)));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(shared.stats().failed.load(Relaxed), 1);
    }

    /// Issue 16, finding 4: when the spool's `ack` file cannot be written, the
    /// batch that was just delivered must not be sent again and again (it was
    /// resent in a tight loop, 1,200+ POSTs a second): the sink backs off as
    /// after a failed delivery, says why, counts it, and resumes, without
    /// sending anything twice, once it can acknowledge again.
    #[test]
    fn a_spool_that_cannot_acknowledge_backs_off_and_never_resends() {
        let dir = tempfile::tempdir().unwrap();
        let script = Script::default();
        let mut h =
            SinkHandle::spawn("test", spooled(dir.path(), 100), Box::new(script.clone())).unwrap();
        let shared = h.shared().clone();
        // `ack` made a folder that is not empty: renaming `ack.tmp` over it
        // fails, also for root (whom a read-only folder would not stop).
        let blocker = dir.path().join("ack");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), b"").unwrap();
        for n in 1..=5 {
            shared.offer(&ev(1, true, n));
        }
        // Several acknowledgements failed (with 5 to 20 ms between tries)...
        wait(|| shared.stats().errors.load(Relaxed) >= 6);
        // ... and the batch went out once (the first batch: all five, or
        // as many as were spooled when the sink's thread woke up).
        let first = script.events();
        assert!(!first.is_empty());
        assert_eq!(first, texts(1..=first.len() as u64));
        assert_eq!(script.attempts.load(Relaxed), 1);
        assert!(shared.stats().retrying.load(Relaxed) >= 1);
        let info = shared.info();
        assert!(info["spool"]["ack_errors"].as_u64().unwrap() >= 6, "{info}");
        let error = shared.stats().cannot_acknowledge().expect("a warning");
        assert!(error.contains("cannot acknowledge"), "{error}");
        assert!(error.contains("ack"), "{error}");
        // Events offered meanwhile wait in the spool.
        shared.offer(&ev(1, true, 6));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(script.attempts.load(Relaxed), 1);
        // The folder is repaired: the acknowledgement is written, what waited
        // is sent, nothing twice.
        std::fs::remove_dir_all(&blocker).unwrap();
        wait(|| shared.info()["spool"]["pending"] == 0);
        assert_eq!(script.events(), texts(1..=6));
        assert_eq!(shared.stats().retrying.load(Relaxed), 0);
        assert_eq!(shared.stats().cannot_acknowledge(), None);
        assert!(h.close(Instant::now() + Duration::from_secs(5)));
    }
}
