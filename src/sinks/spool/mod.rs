//! A sink's durable spool: an append-only, on-disk FIFO of events.
//!
//! Events are written to the spool before they are sent, and removed only
//! once the backend acknowledged them (a 2xx answer). What was not
//! acknowledged survives a backend outage, a restart and a crash (`SIGKILL`
//! included) and is sent again, in order, on the next start: delivery is at
//! least once. A spool belongs to one sink and lives in its own folder; the
//! [`Spool`] itself is single-threaded (the caller wraps it in a `Mutex`).
//! Nothing else may change its files while it is open.
//!
//! # On-disk format
//!
//! Files in the spool's folder ([`SpoolConfig::dir`]; created with its
//! missing parents, mode [`SpoolConfig::dir_mode`], when missing):
//!
//! - **Segments**, `NNNNNNNNNNNNNNNNNNNN.seg`: the sequence number of the
//!   segment's first record, zero-padded to 20 digits, so that names sort in
//!   record order (the segment's *name* below). One record a line,
//!   `<seq>\t<json>\n`: the sequence number in decimal (1 to
//!   [`format::MAX_SEQ`]), a tab, the event as one JSON object on one line
//!   (UTF-8, no newline), a newline; a line is at most [`format::MAX_LINE`]
//!   bytes. Sequence numbers strictly increase across lines and segments
//!   (with gaps: the caller also numbers events it does not spool). Records
//!   are appended to the last segment, each with one `write` and no
//!   user-space buffer, so a killed process loses nothing that `append`
//!   returned for; a new segment starts when the last one reaches
//!   [`SpoolConfig::segment_bytes`] (a segment exceeds it by at most one
//!   record). A segment is deleted once all its records are acknowledged.
//!   [`SpoolConfig::max_bytes`] caps the size of all segment files, including
//!   the acknowledged records of a partly acknowledged segment.
//! - **`ack`**: the highest acknowledged sequence number, in decimal, and a
//!   newline: everything up to it was delivered. Replaced atomically
//!   (`ack.tmp`, then a rename over `ack`; a stale `ack.tmp` is deleted on
//!   open).
//! - **`lock`**: held with an exclusive, non-blocking `flock` while the spool
//!   is open, so that two processes (or two opens) never share a spool; a
//!   second open fails with [`SpoolError::Locked`].
//!
//! Segments, `ack` and `lock` are created with [`SpoolConfig::file_mode`]
//! (less the process's umask): events carry client IP addresses.
//!
//! This is the format of the first spool (one file, `spool.rs`), unchanged.
//! There is no checksum: a changed byte that leaves a valid record (a letter
//! inside a JSON string) is not detected; everything else is (see below).
//!
//! # Durability ([`Fsync`])
//!
//! - `Always`: `append` fsyncs the record (and the folder, for a new segment)
//!   before returning; `ack` fsyncs `ack.tmp` before the rename, then the
//!   folder.
//! - `Interval`: nothing is fsynced until [`Spool::sync`], which the caller
//!   calls periodically: it fsyncs the last segment, the `ack` file and the
//!   folder (only what changed). A segment is also fsynced when the next one
//!   starts, so a power cut can only cut the last one short.
//! - `Never`: nothing is ever fsynced. The data survives a crash of the
//!   process, not a power cut.
//!
//! Dropping a [`Spool`] does not sync: the caller calls [`Spool::sync`]
//! before closing.
//!
//! # Recovery (on open)
//!
//! Opening never fails because of what the files hold: only a folder that
//! cannot be created, listed or locked is an error. Segments are scanned
//! once, streaming (one buffer and one line of memory); a segment whose
//! records are all acknowledged (the next segment's name is at most the
//! acknowledged number plus one) is deleted unread.
//!
//! - **Torn tail**: the last line of the last segment without its newline is
//!   a record cut short by a crash (its `append` never returned): the file is
//!   cut back to the last complete line. Not counted as corruption; it is in
//!   [`Recovery::torn`].
//! - **Corrupt lines** are skipped, counted ([`Spool::corrupt_records`]) and
//!   listed with their file and byte offset ([`Recovery::corrupt`], the
//!   first [`REPORTED`]): a line that does not decode (no `<digits>\t`
//!   header, a number of 0 or above `MAX_SEQ`, not UTF-8, not one JSON
//!   object, longer than `MAX_LINE`, a non-last segment ending without a
//!   newline), and a record out of order: not above the record kept before
//!   it in the segment (the first one: not at least the segment's name), not
//!   below the next segment's name, or not below the sequence number in the
//!   header of the next line when that one is above the record kept before
//!   (look-ahead of one line: a digit changed upwards costs its own record,
//!   not every later one). Everything else is replayed, in order. Every
//!   line skipped in the segments read is counted, also in the acknowledged
//!   part of the first one (its event may have been delivered already: the
//!   count errs on the side of saying so, because a record whose number was
//!   lowered to an acknowledged one is a loss that only its skipped
//!   neighbour shows). The same rules decide what
//!   `peek` returns, so counts and reads always agree
//!   ([`format::reference`] is the rules on whole files, for tests).
//! - What one changed byte costs (proved by a property test): the record it
//!   is in; both records, when it is the newline between them (two lines
//!   merge into one that is not JSON); and when it makes a sequence number
//!   lower than the one before but higher than the one before that, the
//!   record before instead (which of the two is wrong cannot be told; the
//!   JSON of the kept one is intact). A changed digit that stays in order
//!   costs nothing (the record is delivered under the new number).
//! - **`ack` file**: missing, empty or zeroed (a power cut with `Interval`
//!   or `Never`) means 0; anything else that is not a sequence number is
//!   reported ([`Recovery::ack_unreadable`]) and also taken as 0: every
//!   record is sent again rather than lost. A changed digit in it is not
//!   detected (lower: sent again; higher: records count as delivered).
//! - A segment that cannot be read (an I/O error) counts as one corrupt
//!   record, is never appended to, and is deleted in turn.
//!
//! # Age of the oldest pending event
//!
//! [`Spool::oldest_pending_age`] reads no disk and never underestimates:
//! the spool keeps a mark (sequence number, time) at most once a step (one
//! second) of appends, and dates a record by the mark before it. Past 4096
//! marks the step doubles and the marks closer than a step to the one kept
//! before them go, until half are left: memory stays under 100 KB whatever
//! the number of records, and the age is the true one plus less than twice
//! the step (one second for the first hour and more of an outage).
//! Records from an earlier run are dated by their segment's creation time
//! (its modification time where the file system has none): over by at most
//! the time the segment took to fill. Times are wall-clock.

mod ack;
pub mod format;
mod segment;

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use crate::durable::Fsync;
use segment::Walker;

const LOCK: &str = "lock";
/// Corrupt records listed in [`Recovery::corrupt`] (all are counted).
pub const REPORTED: usize = 8;
/// Marks of the age index (see the module documentation).
const MARKS: usize = 4096;

/// Where and how a spool keeps its events.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    /// The spool's folder; one spool per folder.
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// Cap on the bytes of segment files on disk; an append beyond it fails
    /// with [`SpoolError::Full`].
    pub max_bytes: u64,
    /// A new segment file starts when the current one reaches this size.
    pub segment_bytes: u64,
    /// Mode of the files the spool creates (segments, `ack`, `lock`), less
    /// the umask.
    pub file_mode: u32,
}

impl SpoolConfig {
    /// The mode of the folders the spool creates: `file_mode` with the
    /// search bit wherever it has the read bit (0o640 gives 0o750).
    pub fn dir_mode(&self) -> u32 {
        let mode = self.file_mode & 0o777;
        mode | ((mode & 0o444) >> 2)
    }
}

/// One spooled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub json: String,
}

#[derive(Debug)]
pub enum SpoolError {
    /// The segment files would exceed `max_bytes`; nothing was written.
    Full {
        max_bytes: u64,
    },
    /// The lock file is held: another process (or open) uses the spool.
    Locked(PathBuf),
    /// A record `append` refuses: its sequence number does not increase,
    /// or it is not one line of a JSON object.
    Invalid(String),
    Io(io::Error),
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full { max_bytes } => {
                write!(f, "full ({} MB of unsent events)", max_bytes >> 20)
            }
            SpoolError::Locked(path) => write!(
                f,
                "{} is locked: the spool is in use by another process",
                path.display()
            ),
            SpoolError::Invalid(what) => f.write_str(what),
            SpoolError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SpoolError {
    fn from(e: io::Error) -> Self {
        SpoolError::Io(e)
    }
}

/// A line of a segment that was skipped (or cut), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord {
    pub file: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub what: String,
}

impl fmt::Display for CorruptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} ({} bytes): {}",
            self.file.display(),
            self.offset,
            self.len,
            self.what
        )
    }
}

/// What opening found wrong in the files (see "Recovery" above).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Corrupt records skipped (not delivered).
    pub corrupt_records: u64,
    /// The first [`REPORTED`] of them.
    pub corrupt: Vec<CorruptRecord>,
    /// The record torn by a crash, cut from the end of the last segment.
    pub torn: Option<CorruptRecord>,
    /// What the `ack` file held when it was not a sequence number.
    pub ack_unreadable: Option<String>,
}

impl Recovery {
    /// Anything worth saying?
    pub fn is_clean(&self) -> bool {
        self.corrupt_records == 0 && self.torn.is_none() && self.ack_unreadable.is_none()
    }
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    /// From the file name; no record kept in it is below it.
    name: u64,
    bytes: u64,
    /// Records to deliver (acknowledged or not), corrupt lines left out.
    kept: u64,
    last_kept: Option<u64>,
}

impl Segment {
    /// The floor of the order rule after its last line.
    fn floor_at_end(&self) -> u64 {
        self.last_kept.unwrap_or(self.name.saturating_sub(1))
    }

    /// Nothing in it left to deliver.
    fn done(&self, acked: u64) -> bool {
        self.last_kept.is_none_or(|last| last <= acked)
    }
}

/// A place in the spool: a byte offset in a segment, how many records of
/// that segment were kept before it, and the floor of the order rule there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    /// The segment's name. A segment that no longer exists stands for its
    /// end.
    seg: u64,
    off: u64,
    idx: u64,
    floor: u64,
}

/// Skipped lines: all counted, the first few listed.
#[derive(Debug, Clone, Default)]
struct Counter {
    counted: u64,
    reports: Vec<CorruptRecord>,
}

impl Counter {
    fn skip(&mut self, report: CorruptRecord) {
        self.counted += 1;
        if self.reports.len() < REPORTED {
            self.reports.push(report);
        }
    }
}

/// The age index (see the module documentation).
#[derive(Debug)]
struct Ages {
    /// (sequence number, time): records from that number on were appended
    /// at or after that time.
    marks: VecDeque<(u64, SystemTime)>,
    step: Duration,
}

impl Ages {
    fn new() -> Ages {
        Ages {
            marks: VecDeque::new(),
            step: Duration::from_secs(1),
        }
    }

    fn note(&mut self, seq: u64, at: SystemTime) {
        let due = self
            .marks
            .back()
            .is_none_or(|&(_, t)| at.duration_since(t).is_ok_and(|d| d >= self.step));
        if !due {
            return;
        }
        self.marks.push_back((seq, at));
        // Too many: coarser steps, dropping the marks closer than a step to
        // the one kept before them, until half are left.
        if self.marks.len() <= MARKS {
            return;
        }
        loop {
            self.step *= 2;
            let step = self.step;
            let mut kept: Option<SystemTime> = None;
            self.marks.retain(|&(_, t)| {
                let keep = kept.is_none_or(|k| t.duration_since(k).is_ok_and(|d| d >= step));
                if keep {
                    kept = Some(t);
                }
                keep
            });
            if self.marks.len() <= MARKS / 2 {
                break;
            }
        }
    }

    /// Forgets the marks before the one that covers `oldest`.
    fn release(&mut self, oldest: u64) {
        while self.marks.get(1).is_some_and(|&(seq, _)| seq <= oldest) {
            self.marks.pop_front();
        }
    }

    fn clear(&mut self) {
        self.marks.clear();
        self.step = Duration::from_secs(1);
    }
}

/// What an acknowledgement changes, computed before anything is changed.
struct AckPlan {
    /// Records of the peek window that are now acknowledged.
    popped: usize,
    cursor: Option<Pos>,
    pending: u64,
    /// The first record not acknowledged, if it had to be read.
    next: Option<(Record, Pos)>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    /// Holds the `flock` while the spool is open.
    _lock: File,
    segments: VecDeque<Segment>,
    /// Appends go to the last segment through this handle (no buffer).
    writer: Option<File>,
    /// The last segment must not be appended to (a write that could not be
    /// undone, a torn tail that could not be cut, a segment that cannot be
    /// read): the next record starts a new segment.
    rotate_next: bool,
    walker: Option<Walker>,
    /// Where reading the oldest unacknowledged record starts (meaningful
    /// while `pending > 0`).
    cursor: Option<Pos>,
    /// The records returned by the last peek, from `cursor` on, each with
    /// where the line after it starts: a record is read from disk once.
    window: VecDeque<(Record, Pos)>,
    last_seq: u64,
    acked_seq: u64,
    pending: u64,
    bytes: u64,
    /// What `sync` has to fsync (never set with `Fsync::Never`).
    dirty_data: bool,
    dirty_ack: bool,
    dirty_dir: bool,
    ages: Ages,
    recovery: Recovery,
}

impl Spool {
    /// Opens (creating if needed) the spool in `cfg.dir` and finds what was
    /// not acknowledged, skipping what cannot be read (see "Recovery").
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        DirBuilder::new()
            .recursive(true)
            .mode(cfg.dir_mode())
            .create(&cfg.dir)?;
        let lock_path = cfg.dir.join(LOCK);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(cfg.file_mode)
            .open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(SpoolError::Locked(lock_path)),
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        ack::remove_stale(&cfg.dir)?;
        let mut recovery = Recovery::default();
        let acked_seq = match ack::read(&cfg.dir) {
            Ok(ack::Acked::Upto(seq)) => seq,
            Ok(ack::Acked::Unreadable(text)) => {
                recovery.ack_unreadable = Some(format!("{text:?}"));
                0
            }
            Err(e) => {
                recovery.ack_unreadable = Some(e.to_string());
                0
            }
        };
        let names = segment::list(&cfg.dir)?;
        let mut spool = Spool {
            cfg,
            _lock: lock,
            segments: VecDeque::new(),
            writer: None,
            rotate_next: false,
            walker: None,
            cursor: None,
            window: VecDeque::new(),
            last_seq: acked_seq,
            acked_seq,
            pending: 0,
            bytes: 0,
            dirty_data: false,
            dirty_ack: false,
            dirty_dir: false,
            ages: Ages::new(),
            recovery,
        };
        let mut counter = Counter::default();
        for (k, &name) in names.iter().enumerate() {
            let next = names.get(k + 1).copied();
            spool.last_seq = spool.last_seq.max(name);
            if next.is_some_and(|n| n - 1 <= acked_seq) {
                // Acknowledged whole: deleted below, unread.
                let bytes =
                    fs::metadata(segment::path(&spool.cfg.dir, name)).map_or(0, |m| m.len());
                spool.push_segment(name, bytes);
                continue;
            }
            spool.load_segment(name, next, &mut counter);
        }
        spool.recovery.corrupt_records = counter.counted;
        spool.recovery.corrupt = counter.reports;
        // A deletion that fails is retried at the next acknowledgement.
        let _ = spool.drop_acked_segments();
        spool.sync_dir_if_always()?;
        Ok(spool)
    }

    /// Appends a record. `seq` must be greater than
    /// [`last_seq`](Self::last_seq) (and at most `MAX_SEQ`) and `json` one
    /// JSON object on one line; with `Fsync::Always` the record is on disk
    /// when this returns. Fails with `Full`, writing nothing, when the
    /// segments would exceed `max_bytes`.
    pub fn append(&mut self, seq: u64, json: &str) -> Result<(), SpoolError> {
        if seq <= self.last_seq || seq > format::MAX_SEQ {
            return Err(SpoolError::Invalid(format!(
                "sequence number {seq} is not after {}",
                self.last_seq
            )));
        }
        format::check_new(json)
            .map_err(|what| SpoolError::Invalid(format!("record {seq}: {what}")))?;
        let line = format::encode(seq, json);
        let len = line.len() as u64;
        if self.bytes.saturating_add(len) > self.cfg.max_bytes {
            return Err(SpoolError::Full {
                max_bytes: self.cfg.max_bytes,
            });
        }
        let rotate = self.rotate_next
            || self
                .segments
                .back()
                .is_none_or(|s| s.bytes >= self.cfg.segment_bytes);
        if rotate {
            self.start_segment(seq)?;
        } else if self.writer.is_none() {
            let name = self.segments.back().map_or(0, |s| s.name);
            self.writer = Some(segment::open_append(&self.cfg.dir, name)?);
        }
        let (Some(writer), Some(segment)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            unreachable!("a segment is open for appending");
        };
        if let Err(e) = writer.write_all(line.as_bytes()) {
            self.undo_write();
            return Err(e.into());
        }
        let at = Pos {
            seg: segment.name,
            off: segment.bytes,
            idx: segment.kept,
            floor: segment.floor_at_end(),
        };
        segment.bytes += len;
        segment.kept += 1;
        segment.last_kept = Some(seq);
        self.bytes += len;
        self.last_seq = seq;
        if self.pending == 0 {
            self.cursor = Some(at);
            self.window.clear();
        }
        self.pending += 1;
        self.ages.note(seq, SystemTime::now());
        match self.cfg.fsync {
            Fsync::Always => {
                writer.sync_data()?;
                self.sync_dir_if_always()?;
            }
            Fsync::Interval => self.dirty_data = true,
            Fsync::Never => {}
        }
        Ok(())
    }

    /// Up to `max` records not yet acknowledged, oldest first, without
    /// removing them: repeated calls return the same records until `ack`.
    /// Reads from disk only records it has not returned before.
    pub fn peek(&mut self, max: usize) -> Result<Vec<Record>, SpoolError> {
        self.window.truncate(max);
        while self.window.len() < max && (self.window.len() as u64) < self.pending {
            let from = match (self.window.back(), self.cursor) {
                (Some((_, end)), _) => *end,
                (None, Some(cursor)) => cursor,
                (None, None) => break,
            };
            match self.read_from(from)? {
                Some(next) => self.window.push_back(next),
                None => break,
            }
        }
        Ok(self.window.iter().map(|(r, _)| r.clone()).collect())
    }

    /// Everything with a sequence number up to `seq` was delivered: persists
    /// the acknowledgement (atomically) and deletes the segment files whose
    /// records are all acknowledged. A `seq` above `last_seq` acknowledges up
    /// to `last_seq`; one not above `acked_seq` changes nothing.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        let seq = seq.min(self.last_seq);
        if seq > self.acked_seq {
            let plan = self.plan_ack(seq)?;
            ack::write(
                &self.cfg.dir,
                seq,
                self.cfg.fsync == Fsync::Always,
                self.cfg.file_mode,
            )?;
            if self.cfg.fsync == Fsync::Interval {
                self.dirty_ack = true;
            }
            self.dir_changed();
            self.window.drain(..plan.popped);
            if let Some(next) = plan.next {
                debug_assert!(self.window.is_empty());
                self.window.push_back(next);
            }
            self.cursor = plan.cursor;
            self.pending = plan.pending;
            self.acked_seq = seq;
            if self.pending == 0 {
                self.window.clear();
                self.ages.clear();
            } else {
                self.ages.release(self.oldest_pending_floor());
            }
        }
        // Also retries deletions that failed before.
        self.drop_acked_segments()?;
        self.sync_dir_if_always()
    }

    /// Makes the appended records and the last acknowledgement durable
    /// (fsync of the last segment, the `ack` file and the folder, each only
    /// if it changed). Does nothing with `Fsync::Never`.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.dirty_data {
            if let Some(writer) = &self.writer {
                writer.sync_data()?;
            }
            self.dirty_data = false;
        }
        if self.dirty_ack {
            ack::sync(&self.cfg.dir)?;
            self.dirty_ack = false;
        }
        if self.dirty_dir {
            File::open(&self.cfg.dir)?.sync_all()?;
            self.dirty_dir = false;
        }
        Ok(())
    }

    /// Highest sequence number ever appended (also across restarts), or
    /// acknowledged, and at least every segment's name; 0 for none.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Highest acknowledged sequence number, or 0.
    pub fn acked_seq(&self) -> u64 {
        self.acked_seq
    }

    /// Records appended and not acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Bytes of segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Corrupt records skipped since open.
    pub fn corrupt_records(&self) -> u64 {
        self.recovery.corrupt_records
    }

    /// What opening found wrong in the files.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// How long the oldest unacknowledged event has been in the spool (None
    /// when there is none): never less than the truth, more by at most the
    /// step described in the module documentation. Reads no disk.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        if self.pending == 0 {
            return None;
        }
        let &(_, since) = self.ages.marks.front()?;
        Some(SystemTime::now().duration_since(since).unwrap_or_default())
    }

    /// The oldest pending record's sequence number as far as it is known
    /// without reading: exact once peeked.
    fn oldest_pending_floor(&self) -> u64 {
        self.window
            .front()
            .map_or(self.acked_seq + 1, |(record, _)| record.seq)
    }

    fn push_segment(&mut self, name: u64, bytes: u64) {
        self.bytes += bytes;
        self.segments.push_back(Segment {
            name,
            bytes,
            kept: 0,
            last_kept: None,
        });
    }

    /// Scans a segment on open: its records, the cursor, a torn tail, corrupt
    /// lines (see "Recovery"). An I/O error makes it one corrupt record.
    fn load_segment(&mut self, name: u64, next: Option<u64>, counter: &mut Counter) {
        let path = segment::path(&self.cfg.dir, name);
        let before = counter.clone();
        let scanned = self.scan(name, next, counter);
        let is_last = next.is_none();
        let (mut seg, pending, first, torn) = match scanned {
            Ok(scanned) => scanned,
            Err(e) => {
                *counter = before;
                let bytes = fs::metadata(&path).map_or(0, |m| m.len());
                counter.skip(CorruptRecord {
                    file: path,
                    offset: 0,
                    len: bytes,
                    what: format!("the segment cannot be read: {e}"),
                });
                self.push_segment(name, bytes);
                if is_last {
                    self.rotate_next = true;
                }
                return;
            }
        };
        if let Some(torn) = torn {
            let cut = segment::truncate(
                &self.cfg.dir,
                name,
                torn.offset,
                self.cfg.fsync != Fsync::Never,
            );
            if cut.is_err() {
                self.rotate_next = true;
                seg.bytes += torn.len;
            }
            self.recovery.torn = Some(torn);
        }
        if pending > 0 {
            let meta = fs::metadata(&path).ok();
            let since = meta
                .as_ref()
                .and_then(|m| m.created().or_else(|_| m.modified()).ok())
                .unwrap_or_else(SystemTime::now);
            if let Some(first) = first {
                self.ages.marks.push_back((first.floor + 1, since));
            }
        }
        self.last_seq = self.last_seq.max(seg.last_kept.unwrap_or(0));
        self.pending += pending;
        if self.cursor.is_none() {
            self.cursor = first;
        }
        self.bytes += seg.bytes;
        self.segments.push_back(seg);
    }

    #[allow(clippy::type_complexity)]
    fn scan(
        &mut self,
        name: u64,
        next: Option<u64>,
        counter: &mut Counter,
    ) -> io::Result<(Segment, u64, Option<Pos>, Option<CorruptRecord>)> {
        let path = segment::path(&self.cfg.dir, name);
        let len = fs::metadata(&path)?.len();
        let mut walker = Walker::open(&self.cfg.dir, name)?;
        let mut seg = Segment {
            name,
            bytes: len,
            kept: 0,
            last_kept: None,
        };
        let mut floor = name.saturating_sub(1);
        let (mut pending, mut first, mut torn) = (0, None, None);
        while let Some(step) = walker.step(len, floor, next)? {
            match step.verdict {
                Ok(seq) => {
                    if seq > self.acked_seq {
                        pending += 1;
                        first.get_or_insert(Pos {
                            seg: name,
                            off: step.line.off,
                            idx: seg.kept,
                            floor,
                        });
                    }
                    seg.kept += 1;
                    seg.last_kept = Some(seq);
                    floor = seq;
                }
                Err(_) if next.is_none() && !step.line.newline => {
                    // Only the last line can lack its newline.
                    seg.bytes = step.line.off;
                    torn = Some(CorruptRecord {
                        file: path.clone(),
                        offset: step.line.off,
                        len: step.line.len,
                        what: "a record cut short by a crash, cut off".into(),
                    });
                }
                Err(defect) => counter.skip(CorruptRecord {
                    file: path.clone(),
                    offset: step.line.off,
                    len: step.line.len,
                    what: defect.to_string(),
                }),
            }
        }
        Ok((seg, pending, first, torn))
    }

    /// Starts the segment whose first record is `seq`.
    fn start_segment(&mut self, seq: u64) -> Result<(), SpoolError> {
        // The segment being closed is complete on disk before the next one
        // exists, so that a power cut can only damage the last one.
        if self.dirty_data {
            if let Some(writer) = &self.writer {
                writer.sync_data()?;
            }
            self.dirty_data = false;
        }
        self.writer = None;
        let file = segment::create(&self.cfg.dir, seq, self.cfg.file_mode)?;
        self.writer = Some(file);
        self.rotate_next = false;
        self.segments.push_back(Segment {
            name: seq,
            bytes: 0,
            kept: 0,
            last_kept: None,
        });
        self.dir_changed();
        Ok(())
    }

    /// After a failed write to the last segment: cuts what was written of
    /// the record (or deletes a segment that has nothing else).
    fn undo_write(&mut self) {
        let Some(segment) = self.segments.back() else {
            return;
        };
        let (name, bytes) = (segment.name, segment.bytes);
        if self.walker.as_ref().is_some_and(|w| w.name == name) {
            self.walker = None;
        }
        if bytes == 0 {
            self.writer = None;
            self.segments.pop_back();
            let _ = fs::remove_file(segment::path(&self.cfg.dir, name));
            self.dir_changed();
            // The previous segment may be the one a failed write could not
            // be undone in: never append to it again.
            self.rotate_next = true;
            return;
        }
        let undone = self
            .writer
            .as_ref()
            .is_some_and(|w| w.set_len(bytes).is_ok());
        if !undone {
            self.writer = None;
            self.rotate_next = true;
        }
    }

    /// Deletes the leading segments with nothing left to deliver.
    fn drop_acked_segments(&mut self) -> Result<(), SpoolError> {
        while let Some(segment) = self.segments.front() {
            if !segment.done(self.acked_seq) {
                break;
            }
            let (name, bytes) = (segment.name, segment.bytes);
            if self.segments.len() == 1 {
                // The last segment: nothing to sync in it any more.
                self.writer = None;
                self.dirty_data = false;
            }
            if self.walker.as_ref().is_some_and(|w| w.name == name) {
                self.walker = None;
            }
            match fs::remove_file(segment::path(&self.cfg.dir, name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            self.segments.pop_front();
            self.bytes -= bytes;
            self.dir_changed();
        }
        Ok(())
    }

    /// Notes a change of the folder (a file created, renamed or deleted).
    fn dir_changed(&mut self) {
        if self.cfg.fsync != Fsync::Never {
            self.dirty_dir = true;
        }
    }

    fn sync_dir_if_always(&mut self) -> Result<(), SpoolError> {
        if self.cfg.fsync == Fsync::Always && self.dirty_dir {
            File::open(&self.cfg.dir)?.sync_all()?;
            self.dirty_dir = false;
        }
        Ok(())
    }

    /// `pos`, or the start of the next segment if `pos` is past the last
    /// record kept in its segment (nothing but corrupt lines, if anything,
    /// is left to read there), with the segment's index; `None` at the end
    /// of the spool.
    fn normalize(&self, pos: Pos) -> Option<(usize, Pos)> {
        let mut i = self.segments.partition_point(|s| s.name < pos.seg);
        let mut pos = pos;
        loop {
            let segment = self.segments.get(i)?;
            if segment.name != pos.seg {
                // The end of the previous (or of a deleted) segment.
                pos = Pos {
                    seg: segment.name,
                    off: 0,
                    idx: 0,
                    floor: segment.name.saturating_sub(1),
                };
            }
            if pos.off < segment.bytes && pos.idx < segment.kept {
                return Some((i, pos));
            }
            i += 1;
        }
    }

    /// The first record kept at or after `pos`, and where the line after it
    /// starts; `None` at the end of the spool.
    fn read_from(&mut self, pos: Pos) -> io::Result<Option<(Record, Pos)>> {
        let mut pos = pos;
        loop {
            let Some((i, at)) = self.normalize(pos) else {
                return Ok(None);
            };
            pos = at;
            let end = self.segments[i].bytes;
            let next_segment = self.segments.get(i + 1).map(|s| s.name);
            if self.walker.as_ref().is_none_or(|w| w.name != pos.seg) {
                self.walker = None;
                self.walker = Some(Walker::open(&self.cfg.dir, pos.seg)?);
            }
            let walker = self.walker.as_mut().expect("just set");
            let step = walker
                .seek(pos.off)
                .and_then(|()| walker.step(end, pos.floor, next_segment));
            let step = match step {
                Ok(Some(step)) => step,
                Ok(None) => {
                    pos.off = end;
                    continue;
                }
                Err(e) => {
                    self.walker = None;
                    return Err(e);
                }
            };
            let after = step.line.off + step.line.len;
            match step.verdict {
                Err(_) => pos.off = after,
                Ok(seq) => {
                    let record = Record {
                        seq,
                        json: walker.json().to_string(),
                    };
                    let end = Pos {
                        seg: pos.seg,
                        off: after,
                        idx: pos.idx + 1,
                        floor: seq,
                    };
                    return Ok(Some((record, end)));
                }
            }
        }
    }

    /// Where the cursor goes when everything up to `seq` is acknowledged
    /// (`seq` not above `last_seq`): past the acknowledged records of the
    /// peek window, then past whole segments, then record by record.
    fn plan_ack(&mut self, seq: u64) -> io::Result<AckPlan> {
        let popped = self.window.iter().take_while(|(r, _)| r.seq <= seq).count();
        let mut pending = self.pending - popped as u64;
        let mut cursor = match popped {
            0 => self.cursor,
            n => Some(self.window[n - 1].1),
        };
        let mut next = None;
        if popped == self.window.len() {
            while pending > 0 {
                let Some((i, pos)) = cursor.and_then(|p| self.normalize(p)) else {
                    break;
                };
                let segment = &self.segments[i];
                if segment.done(seq) {
                    pending = pending.saturating_sub(segment.kept - pos.idx);
                    cursor = Some(Pos {
                        seg: segment.name,
                        off: segment.bytes,
                        idx: segment.kept,
                        floor: segment.floor_at_end(),
                    });
                    continue;
                }
                let Some((record, end)) = self.read_from(pos)? else {
                    break;
                };
                if record.seq <= seq {
                    pending -= 1;
                    cursor = Some(end);
                } else {
                    cursor = Some(pos);
                    next = Some((record, end));
                    break;
                }
            }
        }
        Ok(AckPlan {
            popped,
            cursor,
            pending,
            next,
        })
    }
}

/// The path of a spool's segment (for tests and tools).
pub fn segment_path(dir: &Path, name: u64) -> PathBuf {
    segment::path(dir, name)
}

#[cfg(test)]
mod tests;
