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
use crate::sinks::build::file_settings;

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

/// A tmpfs of `size`, mounted on a temporary folder for the test, unmounted
/// when dropped. Tests and CI run as root; if mounting fails, the test
/// fails and says why (it is never skipped).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Tmpfs { dir },
            Ok(o) => panic!(
                "this test needs a {size} tmpfs: `mount -t tmpfs -o size={size} tmpfs {}` failed \
                 ({}): {} -- run the tests as root (as `make test` and CI do)",
                dir.path().display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("this test needs a {size} tmpfs, and `mount` cannot run: {e}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
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

/// A full disk: the file never holds an invalid line, every line that never
/// made it is counted (lifecycle or not), lifecycle lines held back are
/// written once space is freed, and nothing is written twice.
#[test]
fn a_full_disk_loses_only_bulk_lines_counted_and_lifecycle_lines_wait_for_space() {
    let fs = Tmpfs::mount("64k");
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
}

/// The sink alone on a full tmpfs: a short write is cut back to the last
/// whole line, the lines written are reported, and the rest is written
/// once (not twice) when space returns.
#[test]
fn a_short_write_is_cut_back_to_the_last_whole_line() {
    let fs = Tmpfs::mount("64k");
    let path = fs.path().join("events.jsonl");
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![b'x'; 60 * 1024]).unwrap();
    let mut sink = FileSink::open(&path, 0o640).unwrap();
    let texts: Vec<String> = (0..100).map(|n| event(n).json.to_string()).collect();
    let e = sink.put(&texts).unwrap_err();
    assert!(e.delivered > 0 && e.delivered < 100, "{e:?}");
    assert_eq!(lines(&path), (0..e.delivered as u64).collect::<Vec<_>>());
    // Still full: nothing more, nothing torn.
    let again = sink.put(&texts[e.delivered..]).unwrap_err();
    assert_eq!(again.delivered, 0);
    assert_eq!(lines(&path).len(), e.delivered);
    std::fs::remove_file(&filler).unwrap();
    sink.put(&texts[e.delivered..]).unwrap();
    assert_eq!(lines(&path), (0..100).collect::<Vec<_>>());
}
