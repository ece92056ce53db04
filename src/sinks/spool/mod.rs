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
//! # Layout (after Vector's `disk_v2`)
//!
//! - this file: the format, the rules and the [`Spool`] that callers use;
//! - `ledger`: what the spool knows of its folder (lock, segments, counts,
//!   sequence numbers, age index), built by the scan on open;
//! - `writer`: appending, starting segments, undoing a failed write;
//! - `reader`: peeking at the oldest records and moving past acknowledged
//!   ones;
//! - `format` (a line's bytes and the rules), `segment` (a segment file and
//!   walking its lines), `ack` (the `ack` file).
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
//! # Damage found on open
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
//!   [`Damage::torn`].
//! - **Corrupt lines** are skipped, counted as what they cost (below) and
//!   listed with their file and byte offset ([`Damage::corrupt`], the
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
//! - **What a skipped line costs** ([`format::cost`]). A record has exactly
//!   one tab (after its number) and no other byte below 0x20, so a skipped
//!   line of text (UTF-8, no control byte but tabs, with its newline) is
//!   whole records, one per tab and at least one: counted in
//!   [`Damage::corrupt_records`]. Any other line (zeroed or binary bytes,
//!   not UTF-8, cut short, longer than `MAX_LINE`) is a damaged stretch in
//!   which records cannot be told apart: its bytes are counted in
//!   [`Damage::corrupt_bytes`] (and the headers still in it as records);
//!   [`Damage::records_in`] puts them in records at the average length of
//!   the records read.
//! - **A segment cut short**: a segment other than the last that ends
//!   inside a record lost its end (only the last segment is appended to).
//!   What the end held is gone, so it is counted by sequence numbers: the
//!   ones between the last record kept in it and the next segment's name
//!   ([`Damage::cut_segments`], [`Damage::cut_records_at_most`]; exact when
//!   every event of the sink is spooled, an upper bound otherwise).
//! - What one changed byte costs (proved by a property test): the record it
//!   is in; both records, when it is the newline between them (two lines
//!   merge into one that is not JSON); and when it makes a sequence number
//!   lower than the one before but higher than the one before that, the
//!   record before instead (which of the two is wrong cannot be told; the
//!   JSON of the kept one is intact). A changed digit that stays in order
//!   costs nothing (the record is delivered under the new number).
//! - **`ack` file**: missing, empty or zeroed (a power cut with `Interval`
//!   or `Never`) means 0; anything else that is not a sequence number is
//!   reported ([`Damage::ack_unreadable`]) and also taken as 0: every
//!   record is sent again rather than lost. A changed digit in it is not
//!   detected (lower: sent again; higher: records count as delivered).
//! - A segment that cannot be read (an I/O error) counts as its bytes, is
//!   never appended to, and is deleted in turn.
//!
//! Skipped bytes are not kept elsewhere: a segment is deleted once the
//! records kept in it are acknowledged. To look at the damage, copy the
//! folder before the spool is opened again (Janus stopped).
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
mod ledger;
mod reader;
mod segment;
mod writer;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use crate::durable::Fsync;
use ledger::Ledger;
use reader::Reader;
use writer::Writer;

/// Corrupt records listed in [`Damage::corrupt`] (all are counted).
pub const REPORTED: usize = 8;

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

/// What opening found damaged in the files (see "Damage found on open"
/// above).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Damage {
    /// Records skipped (not delivered), counted by their headers.
    pub corrupt_records: u64,
    /// Bytes skipped in which records cannot be told apart (the records in
    /// them are lost too, and not counted in `corrupt_records`).
    pub corrupt_bytes: u64,
    /// Segments, other than the last, that end inside a record: their end
    /// is missing, and with it records that nothing counts (each is in
    /// `corrupt` with the sequence numbers they can have had).
    pub cut_segments: u64,
    /// The most records the missing ends of those segments can have held:
    /// the sequence numbers between the last record kept in each and the
    /// next segment's first (exact when every event of the sink is spooled
    /// and none fell back to memory; an upper bound otherwise).
    pub cut_records_at_most: u64,
    /// The first [`REPORTED`] skipped lines and cut segments.
    pub corrupt: Vec<CorruptRecord>,
    /// How many there are in all.
    pub reports: u64,
    /// The record torn by a crash, cut from the end of the last segment.
    pub torn: Option<CorruptRecord>,
    /// What the `ack` file held when it was not a sequence number.
    pub ack_unreadable: Option<String>,
    /// The average length of a record read on open (with its header and
    /// newline; 0 when none was), to put skipped bytes in records.
    pub record_len: u64,
}

impl Damage {
    /// Anything worth saying?
    pub fn is_clean(&self) -> bool {
        self.corrupt_records == 0
            && self.corrupt_bytes == 0
            && self.cut_segments == 0
            && self.torn.is_none()
            && self.ack_unreadable.is_none()
    }

    /// About how many records `bytes` of damage held (see `record_len`).
    pub fn records_in(&self, bytes: u64) -> Option<u64> {
        (self.record_len > 0).then(|| bytes.div_ceil(self.record_len))
    }
}

/// See the module documentation: the [`Ledger`] of the folder, and the
/// [`Writer`] and the [`Reader`] that keep it.
#[derive(Debug)]
pub struct Spool {
    ledger: Ledger,
    writer: Writer,
    reader: Reader,
}

impl Spool {
    /// Opens (creating if needed) the spool in `cfg.dir` and finds what was
    /// not acknowledged, skipping what cannot be read (see "Damage found on
    /// open").
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        let opened = Ledger::open(cfg)?;
        Ok(Spool {
            ledger: opened.ledger,
            writer: Writer::new(opened.rotate_next),
            reader: Reader::new(opened.cursor),
        })
    }

    /// Appends a record. `seq` must be greater than
    /// [`last_seq`](Self::last_seq) (and at most `MAX_SEQ`) and `json` one
    /// JSON object on one line; with `Fsync::Always` the record is on disk
    /// when this returns. Fails with `Full`, writing nothing, when the
    /// segments would exceed `max_bytes`.
    pub fn append(&mut self, seq: u64, json: &str) -> Result<(), SpoolError> {
        let was_empty = self.ledger.pending == 0;
        let reader = &mut self.reader;
        let at = self
            .writer
            .append(&mut self.ledger, seq, json, |name| reader.forget(name))?;
        if was_empty {
            self.reader.start_at(at);
        }
        Ok(())
    }

    /// Up to `max` records not yet acknowledged, oldest first, without
    /// removing them: repeated calls return the same records until `ack`.
    /// Reads from disk only records it has not returned before.
    pub fn peek(&mut self, max: usize) -> Result<Vec<Record>, SpoolError> {
        self.reader.peek(&self.ledger, max)
    }

    /// Everything with a sequence number up to `seq` was delivered: persists
    /// the acknowledgement (atomically) and deletes the segment files whose
    /// records are all acknowledged. A `seq` above `last_seq` acknowledges up
    /// to `last_seq`; one not above `acked_seq` changes nothing. On an error
    /// nothing changed: the same records are pending.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        let ledger = &mut self.ledger;
        let seq = seq.min(ledger.last_seq);
        if seq > ledger.acked_seq {
            let plan = self.reader.plan_ack(ledger, seq)?;
            ledger.write_ack(seq)?;
            ledger.pending = self.reader.apply(plan);
            ledger.acked_seq = seq;
            if ledger.pending == 0 {
                ledger.ages.clear();
            } else {
                ledger
                    .ages
                    .release(self.reader.oldest_pending_floor(ledger.acked_seq));
            }
        }
        // Also retries deletions that failed before.
        let (writer, reader) = (&mut self.writer, &mut self.reader);
        ledger.drop_acked_segments(|name| {
            writer.forget(name);
            reader.forget(name);
        })?;
        ledger.sync_dir_if_always()?;
        Ok(())
    }

    /// Makes the appended records and the last acknowledgement durable
    /// (fsync of the last segment, the `ack` file and the folder, each only
    /// if it changed). Does nothing with `Fsync::Never`.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.writer.sync()?;
        self.ledger.sync()?;
        Ok(())
    }

    /// Highest sequence number ever appended (also across restarts), or
    /// acknowledged, and at least every segment's name; 0 for none.
    pub fn last_seq(&self) -> u64 {
        self.ledger.last_seq
    }

    /// Highest acknowledged sequence number, or 0.
    pub fn acked_seq(&self) -> u64 {
        self.ledger.acked_seq
    }

    /// Records appended and not acknowledged.
    pub fn pending(&self) -> u64 {
        self.ledger.pending
    }

    /// Bytes of segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.ledger.bytes
    }

    /// Corrupt records skipped on open (see [`Damage`]).
    pub fn corrupt_records(&self) -> u64 {
        self.ledger.damage.corrupt_records
    }

    /// Bytes skipped on open in which records cannot be told apart.
    pub fn corrupt_bytes(&self) -> u64 {
        self.ledger.damage.corrupt_bytes
    }

    /// What opening found damaged in the files.
    pub fn damage(&self) -> &Damage {
        &self.ledger.damage
    }

    /// How long the oldest unacknowledged event has been in the spool (None
    /// when there is none): never less than the truth, more by at most the
    /// step described in the module documentation. Reads no disk.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        if self.ledger.pending == 0 {
            return None;
        }
        let &(_, since) = self.ledger.ages.marks.front()?;
        Some(SystemTime::now().duration_since(since).unwrap_or_default())
    }
}

/// The path of a spool's segment (for tests and tools).
pub fn segment_path(dir: &Path, name: u64) -> PathBuf {
    segment::path(dir, name)
}

#[cfg(test)]
mod tests;
