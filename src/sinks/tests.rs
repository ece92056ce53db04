//! The sink runner with a scripted sink: order, masks, batching, retries,
//! the spool, and closing.

use super::*;
use crate::config::Fsync;
use std::sync::atomic::AtomicUsize;

/// A sink that records what it got and fails while told to.
#[derive(Clone, Default)]
struct Script {
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

fn settings(max_batch: usize) -> SinkSettings {
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

fn spooled(dir: &std::path::Path, max_batch: usize) -> SinkSettings {
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
    // ... and the batch went out once.
    assert_eq!(script.events(), texts(1..=5));
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

/// Issue 16, finding 7: spooled sinks are offered an event before the
/// others (the file sink is built first), so that an ending the file holds
/// is in every spool too when Janus is killed.
#[test]
fn spooled_sinks_are_offered_events_first() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SinkHandle::spawn("file", settings(10), Box::new(Script::default())).unwrap();
    let spooled =
        SinkHandle::spawn("http", spooled(dir.path(), 10), Box::new(Script::default())).unwrap();
    let router = Router::new(vec![memory, spooled]);
    let order: Vec<&str> = router.offer_order().map(|s| s.shared.kind()).collect();
    assert_eq!(order, ["http", "file"]);
}
