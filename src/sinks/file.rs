//! The file sink: one event per line (JSON Lines), appended to `file.path`.
//!
//! What it promises, and how:
//!
//! - **Written to the kernel before it counts.** Each batch is built as whole
//!   lines in one buffer and handed to `write(2)` at once (no buffering in
//!   the process): `deliver` returns Ok only when the kernel took every
//!   line, so a SIGKILL of Janus right after loses nothing the sink counted
//!   as `sent`, and an ending never waits in the process for a timer.
//!   (Surviving a power cut would need an fsync; the file does not ask for
//!   one.)
//! - **A line is whole or absent, and the file never shrinks.** Before
//!   each `write(2)` the sink reserves room for its lines after the file's
//!   end (`fallocate` with `FALLOC_FL_KEEP_SIZE`, through `rustix`: the
//!   size does not change, the blocks are allocated), as many whole lines
//!   as the file system has room for; the write then cannot run out of
//!   space. On a full disk nothing is written (`ENOSPC`), rather than part
//!   of a line that would have to be cut off again: a program tailing the
//!   file (Vector, fluent-bit, Filebeat) would have read that part, then
//!   seen the file shrink and taken it for truncated. (A reader can still
//!   catch a write of several pages half copied, as with any appending
//!   program: the rest of the line follows at once.) Only where the file
//!   system cannot reserve space (`fallocate` unsupported: said once in the
//!   log) or when another process appends to the file at the same moment
//!   can a write still be short; then the sink asks the kernel where its
//!   write ended (its file offset) and cuts the file back to the end of
//!   the last whole line, so that no cut-short line stays and the lines it
//!   cut are written again, once, later. It does not cut when the file
//!   grew past its write meanwhile (another writer: cutting would destroy
//!   theirs); it says so instead. A partial last line found when the file
//!   is opened (a write interrupted by a crash) is removed, and logged.
//! - **A full disk costs what it must, counted.** A failed batch is handed
//!   back to the runner (`OnFailure::KeepLifecycle`): the lines that are not
//!   session lifecycle events are dropped (`dropped`), lifecycle lines wait
//!   in the sink's queue (bounded by `queue_size`) and are retried, with a
//!   jittered wait of up to `flush_ms`, until space returns; what is still
//!   waiting at stop counts as `dropped` and `dropped_lifecycle`.
//! - **Rotation.** Every `flush_ms` (the runner's flush) the sink checks
//!   that `file.path` is still the file it has open (same device and inode);
//!   when it was renamed or removed (logrotate), the sink reopens the path.
//! - **Who may read it.** A file the sink creates gets exactly `file_mode`
//!   (default `0640`, whatever the umask), and each folder it creates on the
//!   way `dir_mode(file_mode)` (`0750`). Existing files and folders keep
//!   theirs.
//! - Errors other than a full disk (permissions, I/O errors) drop the open
//!   file: it is reopened on the next write.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{ErrorKind, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Sink, SinkError};
use crate::config::dir_mode;

/// Where the file stands: which file (device and inode) and how long it is
/// after the last delivered batch. Crash recovery records it with each
/// acknowledged ending and, on the next start, reads the file from there
/// for endings written just before a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
}

pub struct FileSink {
    path: PathBuf,
    /// Permission bits of the file when the sink creates it.
    mode: u32,
    out: Option<Open>,
    reopened: u64,
    /// The batch being written, as whole lines.
    buf: Vec<u8>,
    /// Where each line of `buf` ends (one past its newline).
    ends: Vec<usize>,
    /// A partial line of ours that could not be cut back yet: the file
    /// length to cut back to, and the length the file had after our write.
    torn: Option<(u64, u64)>,
    /// The file system can reserve space (false once `fallocate` said it
    /// cannot).
    reserves: bool,
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
}

/// What one `write(2)` of whole lines achieved.
enum Wrote {
    All,
    /// A short write: this many more lines are whole in the file (anything
    /// after them was cut back).
    Lines(usize),
}

impl FileSink {
    /// Opens (creating it and its folder if needed, with `mode` and the
    /// matching folder mode) the file for appending. Fails when it cannot be
    /// opened: a config problem the caller reports.
    pub fn open(path: &Path, mode: u32) -> std::io::Result<FileSink> {
        let out = open(path, mode)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            mode,
            out: Some(out),
            reopened: 0,
            buf: Vec::new(),
            ends: Vec::new(),
            torn: None,
            reserves: true,
        })
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> String {
        format!("file sink: cannot {what} {}: {e}", self.path.display())
    }

    fn ensure_open(&mut self) -> Result<(), String> {
        if self.out.is_none() {
            let opened = open(&self.path, self.mode).map_err(|e| self.error("open", e))?;
            self.out = Some(opened);
            self.reopened += 1;
        }
        Ok(())
    }

    /// True when `path` no longer names the file we have open.
    fn rotated(&self) -> bool {
        let Some(out) = &self.out else {
            return false;
        };
        match std::fs::metadata(&self.path) {
            Ok(m) => m.dev() != out.dev || m.ino() != out.ino,
            Err(_) => true,
        }
    }

    /// Removes a partial line an earlier cut back could not (the file is
    /// cut only if nobody appended after it).
    fn mend(&mut self) -> Result<(), String> {
        let (Some((keep, end)), Some(out)) = (self.torn, &self.out) else {
            return Ok(());
        };
        match cut_back(&out.file, end, keep) {
            Ok(true) => {
                self.torn = None;
                Ok(())
            }
            Ok(false) => {
                // Someone appended after our partial line: leave it.
                self.torn = None;
                Err(self.error(
                    "cut back a partial line in",
                    "another process appended to the file after it",
                ))
            }
            Err(e) => Err(self.error("cut back a partial line in", e)),
        }
    }

    /// Reserves room after the file's end for the lines of `buf` from line
    /// `line` on (see the module documentation): for all of them if it can,
    /// else for as many as fit; returns how many. Fails with the file
    /// system's "no space" error when not even one fits.
    fn reserve(&mut self, line: usize) -> std::io::Result<usize> {
        let count = self.ends.len() - line;
        if !self.reserves {
            return Ok(count);
        }
        let file = &self.out.as_ref().expect("opened by the caller").file;
        let at = file.metadata()?.len();
        let from = if line == 0 { 0 } else { self.ends[line - 1] };
        let room = |k: usize| (self.ends[line + k - 1] - from) as u64;
        let reserve = |k: usize| {
            rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, at, room(k))
                .map_err(std::io::Error::from)
        };
        let mut full = match reserve(count) {
            Ok(()) => return Ok(count),
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                self.reserves = false;
                crate::jlog!(
                    Warn,
                    "file sink: the file system of {} cannot reserve space (fallocate: {e}): on a full disk a line may be cut short, then cut off again",
                    self.path.display()
                );
                return Ok(count);
            }
            Err(e) if is_full(&e) => e,
            Err(e) => return Err(e),
        };
        // The most lines that fit: `fits` do, `fails` do not.
        let (mut fits, mut fails) = (0, count);
        while fails - fits > 1 {
            let mid = fits + (fails - fits) / 2;
            match reserve(mid) {
                Ok(()) => fits = mid,
                Err(e) if is_full(&e) => {
                    fails = mid;
                    full = e;
                }
                Err(e) => return Err(e),
            }
        }
        if fits == 0 { Err(full) } else { Ok(fits) }
    }

    /// One `write(2)` of whole lines from line `line` on, as many as room
    /// could be reserved for.
    fn write_lines(&mut self, line: usize) -> Result<Wrote, std::io::Error> {
        let fit = self.reserve(line)?;
        let out = self.out.as_mut().expect("opened by the caller");
        let from = if line == 0 { 0 } else { self.ends[line - 1] };
        let to = self.ends[line + fit - 1];
        let chunk = &self.buf[from..to];
        let n = loop {
            match out.file.write(chunk) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == chunk.len() {
            return Ok(if line + fit == self.ends.len() {
                Wrote::All
            } else {
                Wrote::Lines(fit)
            });
        }
        if n == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        // A short write: our bytes end at the file offset (O_APPEND moved
        // it to the end of what this write put in the file).
        let end = out.file.stream_position()?;
        let whole = self.ends[line..line + fit]
            .iter()
            .take_while(|e| **e - from <= n)
            .count();
        let kept = if whole == 0 {
            0
        } else {
            self.ends[line + whole - 1] - from
        };
        if kept < n {
            let keep = end - n as u64 + kept as u64;
            match cut_back(&out.file, end, keep) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(std::io::Error::other(
                        "a line was cut short and another process appended to the file after it",
                    ));
                }
                Err(e) => {
                    self.torn = Some((keep, end));
                    return Err(e);
                }
            }
        }
        Ok(Wrote::Lines(whole))
    }
}

/// Cuts the file back to `keep` bytes if it still ends at `end` (nobody
/// appended after our write); false if it does not.
fn cut_back(file: &File, end: u64, keep: u64) -> std::io::Result<bool> {
    if file.metadata()?.len() != end {
        return Ok(false);
    }
    file.set_len(keep)?;
    Ok(true)
}

/// Creates the missing folders of `dir`, each with exactly `mode`.
fn create_dirs(dir: &Path, mode: u32) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, mode)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        // The umask may have taken bits away: set exactly `mode`.
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(mode)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

fn open(path: &Path, mode: u32) -> std::io::Result<Open> {
    if let Some(parent) = path.parent() {
        create_dirs(parent, dir_mode(mode))?;
    }
    let options = || {
        let mut o = OpenOptions::new();
        o.append(true).read(true);
        o
    };
    let file = match options().create_new(true).mode(mode).open(path) {
        Ok(file) => {
            // The umask may have taken bits away: set exactly `mode`.
            file.set_permissions(Permissions::from_mode(mode))?;
            file
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => options().open(path)?,
        Err(e) => return Err(e),
    };
    remove_partial_last_line(&file, path)?;
    let meta = file.metadata()?;
    Ok(Open {
        file,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// A write interrupted by a crash (or a power cut) may have left the file
/// ending in part of a line: cut it off, so that the file holds only whole
/// lines, and say so.
fn remove_partial_last_line(file: &File, path: &Path) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.read_exact_at(part, start)?;
        if let Some(i) = part.iter().rposition(|b| *b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        file.set_len(end)?;
        crate::jlog!(
            Warn,
            "file sink: {} ended in a partial line ({} bytes, from a write interrupted by a crash): removed it",
            path.display(),
            len - end
        );
    }
    Ok(())
}

/// Errors that mean "no space": the file stays open, the batch waits.
fn is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge
    )
}

impl Sink for FileSink {
    fn deliver(&mut self, batch: &[&str], _deadline: Option<Instant>) -> Result<(), SinkError> {
        let fail = |delivered: usize, message: String| SinkError { delivered, message };
        self.ensure_open().map_err(|m| fail(0, m))?;
        self.mend().map_err(|m| fail(0, m))?;
        self.buf.clear();
        self.ends.clear();
        for ev in batch {
            self.buf.extend_from_slice(ev.as_bytes());
            self.buf.push(b'\n');
            self.ends.push(self.buf.len());
        }
        // Normally one write. When room was left for only some lines, the
        // rest is tried again at once (the space may have been a passing
        // shortage); the second shortage or error ends the attempt.
        let mut done = 0;
        while done < batch.len() {
            match self.write_lines(done) {
                Ok(Wrote::All) => return Ok(()),
                Ok(Wrote::Lines(n)) if n > 0 => done += n,
                Ok(Wrote::Lines(_)) => {
                    let why = "short write (disk full?): cut back to the last whole line";
                    return Err(fail(done, self.error("write", why)));
                }
                Err(e) => {
                    if !is_full(&e) {
                        self.out = None;
                    }
                    return Err(fail(done, self.error("write", e)));
                }
            }
        }
        Ok(())
    }

    /// Lines are in the kernel already: checks for rotation only.
    fn flush(&mut self) -> Result<(), String> {
        if self.rotated() {
            self.out = None;
            self.torn = None;
            self.ensure_open()?;
        }
        Ok(())
    }

    fn describe(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("path".into(), json!(self.path.display().to_string()));
        m.insert("file_mode".into(), json!(format!("{:04o}", self.mode)));
        m
    }

    /// Where the file stands after the last delivered batch (the file is
    /// opened for appending: its end is the end of our last write).
    fn position(&self) -> Option<FilePosition> {
        let out = self.out.as_ref()?;
        let len = out.file.metadata().ok()?.len();
        Some(FilePosition {
            dev: out.dev,
            ino: out.ino,
            len,
        })
    }
}

impl FileSink {
    /// How many times the file was reopened (rotation or errors).
    pub fn reopened(&self) -> u64 {
        self.reopened
    }
}

#[cfg(test)]
mod tests {
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
}
