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
mod tests;
