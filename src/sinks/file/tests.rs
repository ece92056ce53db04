//! The file sink alone, and with its runner on a small tmpfs that fills and
//! then frees.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::*;
use crate::config::{Config, EventMask};
use crate::output::OutEvent;
use crate::sinks::SinkHandle;
use crate::sinks::open::file_settings;

fn ev(n: u64) -> String {
    format!("{{\"session_id\":{n}}}")
}

impl FileSink {
    fn put(&mut self, events: &[String]) -> Result<(), SinkError> {
        let texts: Vec<&str> = events.iter().map(String::as_str).collect();
        self.deliver(&texts, None)
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn lines_are_in_the_file_when_deliver_returns_and_rotation_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/events.jsonl");
    let mut sink = FileSink::open(&path, 0o640).unwrap();
    sink.put(&[ev(1), ev(2)]).unwrap();
    // No flush: deliver returns once the kernel has the lines (a SIGKILL
    // now loses nothing).
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"session_id\":1}\n{\"session_id\":2}\n"
    );
    // logrotate: rename away; lines go to the old file until the next
    // flush notices and reopens the path.
    let rotated = dir.path().join("sub/events.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    sink.put(&[ev(3)]).unwrap();
    sink.flush().unwrap();
    sink.put(&[ev(4)]).unwrap();
    assert_eq!(sink.reopened(), 1);
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap(),
        "{\"session_id\":1}\n{\"session_id\":2}\n{\"session_id\":3}\n"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"session_id\":4}\n"
    );
    // copytruncate: the file is emptied under the sink; its lines go on at
    // the new end, whole.
    std::fs::File::create(&path).unwrap();
    sink.put(&[ev(5)]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"session_id\":5}\n"
    );
}

#[test]
fn a_partial_last_line_is_removed_when_the_file_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, "{\"whole\":1}\n{\"torn\":").unwrap();
    let mut sink = FileSink::open(&path, 0o640).unwrap();
    sink.put(&[ev(1)]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"whole\":1}\n{\"session_id\":1}\n"
    );
    // A file holding nothing but a partial line, longer than one read.
    std::fs::write(&path, "x".repeat(200_000)).unwrap();
    let mut sink = FileSink::open(&path, 0o640).unwrap();
    sink.put(&[ev(2)]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"session_id\":2}\n"
    );
}

#[test]
fn unwritable_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "").unwrap();
    // A path below a regular file can never be created.
    assert!(FileSink::open(&file.join("x.jsonl"), 0o640).is_err());
}

/// Events carry client IP addresses: the file and the folders the sink
/// creates are owner and group only by default, exactly `file_mode` in any
/// case (the umask of Janus's process neither widens nor narrows it), and
/// existing files keep their mode.
#[test]
fn files_and_folders_get_exactly_file_mode() {
    let dir = tempfile::tempdir().unwrap();
    let default_mode = Config::parse(Path::new("x.jcfg"), "")
        .unwrap()
        .file
        .file_mode;
    let path = dir.path().join("a/b/events.jsonl");
    FileSink::open(&path, default_mode).unwrap();
    assert_eq!(mode_of(&path), 0o640);
    assert_eq!(mode_of(&dir.path().join("a")), 0o750);
    assert_eq!(mode_of(&dir.path().join("a/b")), 0o750);
    // Wider than the usual umask 022 allows, and narrower.
    for (mode, folder) in [(0o660, 0o770), (0o600, 0o700)] {
        let path = dir.path().join(format!("{mode:o}/events.jsonl"));
        FileSink::open(&path, mode).unwrap();
        assert_eq!(mode_of(&path), mode);
        assert_eq!(mode_of(path.parent().unwrap()), folder);
    }
    // An existing file keeps its mode.
    let existing = dir.path().join("existing.jsonl");
    std::fs::write(&existing, "").unwrap();
    std::fs::set_permissions(&existing, Permissions::from_mode(0o644)).unwrap();
    FileSink::open(&existing, 0o600).unwrap();
    assert_eq!(mode_of(&existing), 0o644);
}

/// A small file system mounted on a temporary folder for the test,
/// unmounted when dropped: a tmpfs, or an ext4 image on a loop device (the
/// two reserve space differently: pages of memory, blocks on a disk). Tests
/// and CI run as root; if mounting fails, the test fails and says why (it
/// is never skipped).
struct SmallFs {
    dir: tempfile::TempDir,
    /// The ext4 image, in a folder of its own.
    _image: Option<tempfile::TempDir>,
}

impl SmallFs {
    fn tmpfs(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let opts = format!("size={size}");
        mount(&["-t", "tmpfs", "-o", &opts, "tmpfs"], dir.path());
        SmallFs { dir, _image: None }
    }

    /// An ext4 file system of `kib` KiB (1 KiB blocks, no journal, no
    /// blocks kept for root: all of it is usable).
    fn ext4(kib: u64) -> SmallFs {
        let image_dir = tempfile::tempdir().unwrap();
        let image = image_dir.path().join("fs.ext4");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(kib << 10)
            .unwrap();
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "1024", "-m", "0", "-O", "^has_journal"])
            .arg(&image)
            .output()
            .unwrap_or_else(|e| panic!("this test needs mkfs.ext4 (e2fsprogs): {e}"));
        assert!(
            made.status.success(),
            "mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let dir = tempfile::tempdir().unwrap();
        mount(&["-o", "loop", image.to_str().unwrap()], dir.path());
        SmallFs {
            dir,
            _image: Some(image_dir),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn mount(args: &[&str], on: &Path) {
    let out = Command::new("mount").args(args).arg(on).output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "this test needs to mount a small file system: `mount {} {}` failed ({}): {} \
             -- run the tests as root (as `make test` and CI do)",
            args.join(" "),
            on.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            panic!("this test needs to mount a small file system, and `mount` cannot run: {e}")
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Makes `path` append-only (`chattr +a`): any attempt to shrink it, or to
/// write anywhere but at its end, then fails, so that a sink that ever
/// cuts its file back fails the test for sure, not only when a reader
/// happens to look at that moment. False (and said) where the file system
/// cannot (tmpfs before Linux 6.0): the polling reader still watches.
fn append_only(path: &Path) -> bool {
    let out = Command::new("chattr").arg("+a").arg(path).output();
    match out {
        Ok(o) if o.status.success() => true,
        other => {
            eprintln!("note: chattr +a {} failed ({other:?})", path.display());
            false
        }
    }
}

/// A reader tailing the file as a log shipper does, in a loop of its own
/// while the test runs: what it has read must never be taken back. Each
/// look, the file is at least as long as before and begins with every
/// byte read before (no line cut short and cut off, no truncation).
struct Tail {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Option<String>>>,
}

impl Tail {
    /// Starts the reader; returns once it has read the file once.
    fn follow(path: &Path) -> Tail {
        let path = path.to_path_buf();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let looked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stopped, first) = (stop.clone(), looked.clone());
        let thread = std::thread::spawn(move || {
            let mut seen: Vec<u8> = Vec::new();
            loop {
                let now = std::fs::read(&path).unwrap_or_default();
                first.store(true, Relaxed);
                if !now.starts_with(&seen) {
                    let common = seen.iter().zip(&now).take_while(|(a, b)| a == b).count();
                    return Some(format!(
                        "read {} bytes, then the file was {} bytes and differed from byte {common} on: {:?} became {:?}",
                        seen.len(),
                        now.len(),
                        String::from_utf8_lossy(&seen[common..]),
                        String::from_utf8_lossy(&now[common..now.len().min(seen.len())]),
                    ));
                }
                seen = now;
                if stopped.load(Relaxed) {
                    return None;
                }
            }
        });
        wait("the reader's first look", || looked.load(Relaxed));
        Tail {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the reader (after one more look); panics if it ever saw bytes
    /// taken back.
    fn check(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(what) = self.thread.take().unwrap().join().unwrap() {
            panic!("a reader tailing the file saw bytes taken back: {what}");
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// Fills the rest of the file system with a file, a page at a time.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let page = [b'x'; 4096];
    while f.write(&page).is_ok_and(|n| n > 0) {}
}

/// An event of about 100 bytes; every 4th one a lifecycle event, 20 bytes
/// longer than the others (so that a lifecycle line never fits in what a
/// cut-back leaves of a page: the test's counts do not depend on luck).
fn event(n: u64) -> Arc<OutEvent> {
    let lifecycle = n.is_multiple_of(4);
    let json = format!(
        "{{\"type\":1,\"n\":{n},\"lifecycle\":{lifecycle},\"pad\":\"{}\"}}",
        "p".repeat(if lifecycle { 70 } else { 50 })
    );
    OutEvent::new(1, lifecycle, Some(n), json)
}

fn wait(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every line of the file, each checked to be a whole JSON object; the
/// `n` of each.
fn lines(path: &Path) -> Vec<u64> {
    let text = std::fs::read(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "the file ends in a partial line"
    );
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!(
                    "an invalid line in the file ({e}): {}",
                    String::from_utf8_lossy(l)
                )
            });
            v["n"].as_u64().unwrap()
        })
        .collect()
}

/// A full disk: the file never holds an invalid line, and never shrinks (a
/// reader tailing it never sees a line cut short and cut off: issue 16,
/// finding 13); every line that never made it is counted (lifecycle or
/// not), lifecycle lines held back are written once space is freed, and
/// nothing is written twice.
#[test]
fn a_full_disk_loses_only_bulk_lines_counted_and_lifecycle_lines_wait_for_space() {
    let fs = SmallFs::tmpfs("64k");
    let path = fs.path().join("events.jsonl");
    let filler = fs.path().join("filler");
    // Leave the file two pages (8 KiB): about 80 of our lines.
    std::fs::write(&filler, vec![b'x'; 56 * 1024]).unwrap();
    let config = Config::parse(
        Path::new("x.jcfg"),
        "file: { flush_ms = 50, queue_size = 100000 }",
    )
    .unwrap();
    let sink = FileSink::open(&path, config.file.file_mode).unwrap();
    append_only(&path);
    let tail = Tail::follow(&path);
    let mut h = SinkHandle::spawn(
        "file",
        file_settings(&config.file, EventMask::ALL),
        Box::new(sink),
    )
    .unwrap();
    let shared = h.shared().clone();
    let stats = || {
        let s = shared.stats();
        (
            s.sent.load(Relaxed),
            s.dropped.load(Relaxed),
            s.dropped_lifecycle.load(Relaxed),
        )
    };

    // 300 events, 30 KB: the disk fills after about 80 lines.
    let first: Vec<_> = (0..300).map(|n| (n + 1, event(n))).collect();
    assert_eq!(shared.offer_all(&first), 300);
    wait("the disk to fill", || {
        shared.stats().errors.load(Relaxed) >= 2 && shared.queue.is_empty()
    });
    let written = lines(&path);
    assert!(
        written.len() >= 40 && written.len() < 120,
        "{}",
        written.len()
    );
    let last_error = shared.stats().last_error().unwrap();
    assert!(
        last_error.contains("No space left on device") || last_error.contains("short write"),
        "{last_error}"
    );
    // The lines that did not fit: bulk ones dropped and counted, lifecycle
    // ones waiting (none dropped).
    let (sent, dropped, dropped_lifecycle) = stats();
    assert_eq!(sent, written.len() as u64);
    assert_eq!(dropped_lifecycle, 0);
    let unwritten = (written.len() as u64..300)
        .filter(|n| !n.is_multiple_of(4))
        .count() as u64;
    assert_eq!(
        dropped, unwritten,
        "every bulk line that did not fit is counted"
    );
    // Still full: the lifecycle lines keep waiting.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(lines(&path), written);

    // Space returns: the waiting lifecycle lines are written, in order,
    // once each; then new events flow as usual.
    std::fs::remove_file(&filler).unwrap();
    let mut expected = written.clone();
    expected.extend((written.len() as u64..300).filter(|n| n.is_multiple_of(4)));
    wait("the lifecycle lines to be written", || {
        lines(&path).len() == expected.len()
    });
    let second: Vec<_> = (300..400).map(|n| (n + 1, event(n))).collect();
    shared.offer_all(&second);
    expected.extend(300..400);
    wait("the new lines", || lines(&path).len() == expected.len());
    assert_eq!(lines(&path), expected, "each line once, in order");

    // Full again, and the handler stops: what waits is counted dropped,
    // the lifecycle lines among it as dropped_lifecycle too.
    fill(&filler);
    let third: Vec<_> = (400..600).map(|n| (n + 1, event(n))).collect();
    shared.offer_all(&third);
    wait("the disk to fill again", || shared.queue.is_empty());
    assert!(h.close(Instant::now() + Duration::from_secs(10)));
    let in_file = lines(&path);
    let (sent, dropped, dropped_lifecycle) = stats();
    assert_eq!(sent, in_file.len() as u64);
    assert_eq!(sent + dropped, 600, "every line is written or counted");
    let lifecycle_lost = (0..600)
        .filter(|n: &u64| n.is_multiple_of(4) && !in_file.contains(n))
        .count() as u64;
    assert!(lifecycle_lost > 0, "the last test needs lines left waiting");
    assert_eq!(dropped_lifecycle, lifecycle_lost);
    assert!(
        in_file.windows(2).all(|w| w[0] < w[1]),
        "no line twice, in order"
    );
    // Crash recovery must not count a lifecycle line that never reached the
    // file as delivered (event n was offered as route n + 1).
    let first_lost = (0..600u64)
        .find(|n| n.is_multiple_of(4) && !in_file.contains(n))
        .unwrap();
    let (settled, _) = shared.settled();
    assert!(
        settled < first_lost + 1,
        "settled through route {settled}, but event {first_lost} never reached the file"
    );
    drop(shared);
    drop(h);
    tail.check();
}

/// Fills the file system with `filler`, then frees `room` bytes of it.
fn leave_room(filler: &Path, room: u64) {
    fill(filler);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(filler)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(room)).unwrap();
}

/// The sink alone on a full file system: it writes the whole lines there is
/// room for and nothing of the next one (it reserves the room first:
/// nothing is cut back, the file never shrinks), reports the lines
/// written, and writes the rest once (not twice) when space returns.
fn a_full_disk_takes_whole_lines_only(fs: &SmallFs) {
    let path = fs.path().join("events.jsonl");
    let filler = fs.path().join("filler");
    let mut sink = FileSink::open(&path, 0o640).unwrap();
    append_only(&path);
    leave_room(&filler, 4096);
    let tail = Tail::follow(&path);
    let texts: Vec<String> = (0..100).map(|n| event(n).json.to_string()).collect();
    let e = sink.put(&texts).unwrap_err();
    assert!(e.delivered > 0 && e.delivered < 100, "{e:?}");
    assert!(e.message.contains("No space left on device"), "{e:?}");
    assert_eq!(lines(&path), (0..e.delivered as u64).collect::<Vec<_>>());
    // Still full: nothing more, nothing torn.
    let again = sink.put(&texts[e.delivered..]).unwrap_err();
    assert_eq!(again.delivered, 0);
    assert_eq!(lines(&path).len(), e.delivered);
    std::fs::remove_file(&filler).unwrap();
    sink.put(&texts[e.delivered..]).unwrap();
    assert_eq!(lines(&path), (0..100).collect::<Vec<_>>());
    tail.check();
}

#[test]
fn a_full_tmpfs_takes_whole_lines_only_and_the_file_never_shrinks() {
    a_full_disk_takes_whole_lines_only(&SmallFs::tmpfs("64k"));
}

#[test]
fn a_full_ext4_takes_whole_lines_only_and_the_file_never_shrinks() {
    a_full_disk_takes_whole_lines_only(&SmallFs::ext4(1024));
}
