//! The ledger: what the spool knows about its folder. The lock, the list of
//! segments with what each holds, the acknowledged and last sequence
//! numbers, the sizes, what is not yet fsynced, the age index, and what
//! opening found damaged. Opening builds it by scanning the segments once
//! (see "Damage found on open" in the module above); the writer and the
//! reader then keep it up to date.

use std::collections::VecDeque;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::time::{Duration, SystemTime};

use super::format::{self, Cost};
use super::segment::{self, Walker};
use super::{CorruptRecord, Damage, Fsync, REPORTED, SpoolConfig, SpoolError, ack};

const LOCK: &str = "lock";
/// Marks of the age index (see the module documentation).
pub(super) const MARKS: usize = 4096;

/// One segment file.
#[derive(Debug)]
pub(super) struct Segment {
    /// From the file name; no record kept in it is below it.
    pub(super) name: u64,
    pub(super) bytes: u64,
    /// Records to deliver (acknowledged or not), corrupt lines left out.
    pub(super) kept: u64,
    pub(super) last_kept: Option<u64>,
}

impl Segment {
    pub(super) fn new(name: u64, bytes: u64) -> Segment {
        Segment {
            name,
            bytes,
            kept: 0,
            last_kept: None,
        }
    }

    /// The floor of the order rule after its last line.
    pub(super) fn floor_at_end(&self) -> u64 {
        self.last_kept.unwrap_or(self.name.saturating_sub(1))
    }

    /// Nothing in it left to deliver.
    pub(super) fn done(&self, acked: u64) -> bool {
        self.last_kept.is_none_or(|last| last <= acked)
    }

    /// Where the next line appended to it starts.
    pub(super) fn end(&self) -> Pos {
        Pos {
            seg: self.name,
            off: self.bytes,
            idx: self.kept,
            floor: self.floor_at_end(),
        }
    }
}

/// A place in the spool: a byte offset in a segment, how many records of
/// that segment were kept before it, and the floor of the order rule there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    /// The segment's name. A segment that no longer exists stands for its
    /// end.
    pub(super) seg: u64,
    pub(super) off: u64,
    pub(super) idx: u64,
    pub(super) floor: u64,
}

/// Skipped lines: all counted (what they cost), the first few listed; and
/// the records read, for their average length.
#[derive(Debug, Clone, Default)]
struct Counter {
    cost: Cost,
    cut_segments: u64,
    cut_records_at_most: u64,
    reports: Vec<CorruptRecord>,
    reported: u64,
    kept: u64,
    kept_bytes: u64,
}

impl Counter {
    fn skip(&mut self, cost: Cost, report: CorruptRecord) {
        self.cost += cost;
        self.report(report);
    }

    fn report(&mut self, report: CorruptRecord) {
        self.reported += 1;
        if self.reports.len() < REPORTED {
            self.reports.push(report);
        }
    }
}

/// The age index (see the module documentation).
#[derive(Debug)]
pub(super) struct Ages {
    /// (sequence number, time): records from that number on were appended
    /// at or after that time.
    pub(super) marks: VecDeque<(u64, SystemTime)>,
    pub(super) step: Duration,
}

impl Ages {
    pub(super) fn new() -> Ages {
        Ages {
            marks: VecDeque::new(),
            step: Duration::from_secs(1),
        }
    }

    pub(super) fn note(&mut self, seq: u64, at: SystemTime) {
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
    pub(super) fn release(&mut self, oldest: u64) {
        while self.marks.get(1).is_some_and(|&(seq, _)| seq <= oldest) {
            self.marks.pop_front();
        }
    }

    pub(super) fn clear(&mut self) {
        self.marks.clear();
        self.step = Duration::from_secs(1);
    }
}

/// What opening found for the writer and the reader.
pub(super) struct Opened {
    pub(super) ledger: Ledger,
    /// Where the oldest unacknowledged record is (None: there is none).
    pub(super) cursor: Option<Pos>,
    /// The last segment must not be appended to.
    pub(super) rotate_next: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Ledger {
    pub(super) cfg: SpoolConfig,
    /// Holds the `flock` while the spool is open.
    _lock: File,
    pub(super) segments: VecDeque<Segment>,
    pub(super) last_seq: u64,
    pub(super) acked_seq: u64,
    /// Records appended and not acknowledged.
    pub(super) pending: u64,
    /// Bytes of segment files on disk.
    pub(super) bytes: u64,
    /// What `sync` has to fsync besides the last segment (never set with
    /// `Fsync::Never`).
    pub(super) dirty_ack: bool,
    pub(super) dirty_dir: bool,
    pub(super) ages: Ages,
    pub(super) damage: Damage,
}

impl Ledger {
    /// Creates the folder if needed, takes the lock, reads the `ack` file and
    /// scans the segments (see "Damage found on open").
    pub(super) fn open(cfg: SpoolConfig) -> Result<Opened, SpoolError> {
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
        let mut damage = Damage::default();
        let acked_seq = match ack::read(&cfg.dir) {
            Ok(ack::Acked::Upto(seq)) => seq,
            Ok(ack::Acked::Unreadable(text)) => {
                damage.ack_unreadable = Some(format!("{text:?}"));
                0
            }
            Err(e) => {
                damage.ack_unreadable = Some(e.to_string());
                0
            }
        };
        let names = segment::list(&cfg.dir)?;
        let mut opened = Opened {
            ledger: Ledger {
                cfg,
                _lock: lock,
                segments: VecDeque::new(),
                last_seq: acked_seq,
                acked_seq,
                pending: 0,
                bytes: 0,
                dirty_ack: false,
                dirty_dir: false,
                ages: Ages::new(),
                damage,
            },
            cursor: None,
            rotate_next: false,
        };
        let mut counter = Counter::default();
        for (k, &name) in names.iter().enumerate() {
            let next = names.get(k + 1).copied();
            let ledger = &mut opened.ledger;
            ledger.last_seq = ledger.last_seq.max(name);
            if next.is_some_and(|n| n - 1 <= acked_seq) {
                // Acknowledged whole: deleted below, unread.
                let bytes =
                    fs::metadata(segment::path(&ledger.cfg.dir, name)).map_or(0, |m| m.len());
                ledger.push_segment(Segment::new(name, bytes));
                continue;
            }
            opened.load_segment(name, next, &mut counter);
        }
        let ledger = &mut opened.ledger;
        let damage = &mut ledger.damage;
        damage.corrupt_records = counter.cost.records;
        damage.corrupt_bytes = counter.cost.bytes;
        damage.cut_segments = counter.cut_segments;
        damage.cut_records_at_most = counter.cut_records_at_most;
        damage.corrupt = counter.reports;
        damage.reports = counter.reported;
        damage.record_len = counter.kept_bytes.checked_div(counter.kept).unwrap_or(0);
        // A deletion that fails is retried at the next acknowledgement.
        let _ = ledger.drop_acked_segments(|_| {});
        ledger.sync_dir_if_always()?;
        Ok(opened)
    }

    pub(super) fn push_segment(&mut self, segment: Segment) {
        self.bytes += segment.bytes;
        self.segments.push_back(segment);
    }

    /// Persists the acknowledgement of everything up to `seq` in the `ack`
    /// file (atomically; fsynced with `Fsync::Always`, marked for the next
    /// `sync` with `Fsync::Interval`).
    pub(super) fn write_ack(&mut self, seq: u64) -> io::Result<()> {
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
        Ok(())
    }

    /// Deletes the leading segments with nothing left to deliver, telling
    /// `gone` each name first (the writer and the reader let go of it).
    pub(super) fn drop_acked_segments(&mut self, mut gone: impl FnMut(u64)) -> io::Result<()> {
        while let Some(segment) = self.segments.front() {
            if !segment.done(self.acked_seq) {
                break;
            }
            let (name, bytes) = (segment.name, segment.bytes);
            gone(name);
            match fs::remove_file(segment::path(&self.cfg.dir, name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            self.segments.pop_front();
            self.bytes -= bytes;
            self.dir_changed();
        }
        Ok(())
    }

    /// Fsyncs the `ack` file and the folder if they changed.
    pub(super) fn sync(&mut self) -> io::Result<()> {
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

    /// Notes a change of the folder (a file created, renamed or deleted).
    pub(super) fn dir_changed(&mut self) {
        if self.cfg.fsync != Fsync::Never {
            self.dirty_dir = true;
        }
    }

    pub(super) fn sync_dir_if_always(&mut self) -> io::Result<()> {
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
    pub(super) fn normalize(&self, pos: Pos) -> Option<(usize, Pos)> {
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
}

impl Opened {
    /// Scans a segment on open: its records, the cursor, a torn tail, corrupt
    /// lines (see "Damage found on open"). An I/O error makes it one corrupt
    /// record.
    fn load_segment(&mut self, name: u64, next: Option<u64>, counter: &mut Counter) {
        let ledger = &mut self.ledger;
        let path = segment::path(&ledger.cfg.dir, name);
        let before = counter.clone();
        let scanned = scan(ledger, name, next, counter);
        let is_last = next.is_none();
        let Scanned {
            mut segment,
            pending,
            first,
            torn,
        } = match scanned {
            Ok(scanned) => scanned,
            Err(e) => {
                *counter = before;
                let bytes = fs::metadata(&path).map_or(0, |m| m.len());
                let cost = Cost { records: 0, bytes };
                counter.skip(
                    cost,
                    CorruptRecord {
                        file: path,
                        offset: 0,
                        len: bytes,
                        what: format!("the segment cannot be read: {e}"),
                    },
                );
                ledger.push_segment(Segment::new(name, bytes));
                if is_last {
                    self.rotate_next = true;
                }
                return;
            }
        };
        if let Some(torn) = torn {
            let cut = segment::truncate(
                &ledger.cfg.dir,
                name,
                torn.offset,
                ledger.cfg.fsync != Fsync::Never,
            );
            if cut.is_err() {
                self.rotate_next = true;
                segment.bytes += torn.len;
            }
            ledger.damage.torn = Some(torn);
        }
        if pending > 0 {
            let meta = fs::metadata(&path).ok();
            let since = meta
                .as_ref()
                .and_then(|m| m.created().or_else(|_| m.modified()).ok())
                .unwrap_or_else(SystemTime::now);
            if let Some(first) = first {
                ledger.ages.marks.push_back((first.floor + 1, since));
            }
        }
        ledger.last_seq = ledger.last_seq.max(segment.last_kept.unwrap_or(0));
        ledger.pending += pending;
        if self.cursor.is_none() {
            self.cursor = first;
        }
        ledger.push_segment(segment);
    }
}

/// What scanning one segment found.
struct Scanned {
    segment: Segment,
    /// Records not acknowledged.
    pending: u64,
    /// Where the first of them is.
    first: Option<Pos>,
    /// A torn last line (of the last segment only).
    torn: Option<CorruptRecord>,
}

fn scan(
    ledger: &Ledger,
    name: u64,
    next: Option<u64>,
    counter: &mut Counter,
) -> io::Result<Scanned> {
    let path = segment::path(&ledger.cfg.dir, name);
    let len = fs::metadata(&path)?.len();
    let mut walker = Walker::open(&ledger.cfg.dir, name)?;
    let mut found = Scanned {
        segment: Segment::new(name, len),
        pending: 0,
        first: None,
        torn: None,
    };
    let seg = &mut found.segment;
    let mut floor = name.saturating_sub(1);
    while let Some(step) = walker.step(len, floor, next)? {
        match step.verdict {
            Ok(seq) => {
                counter.kept += 1;
                counter.kept_bytes += step.line.len;
                if seq > ledger.acked_seq {
                    found.pending += 1;
                    found.first.get_or_insert(Pos {
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
                found.torn = Some(CorruptRecord {
                    file: path.clone(),
                    offset: step.line.off,
                    len: step.line.len,
                    what: "a record cut short by a crash, cut off".into(),
                });
            }
            Err(defect) => {
                let line = &step.line;
                let cost = format::cost(walker.line(), line.len, line.newline, line.too_long);
                counter.skip(
                    cost,
                    CorruptRecord {
                        file: path.clone(),
                        offset: line.off,
                        len: line.len,
                        what: describe(&defect.to_string(), cost),
                    },
                );
                if let Some(next) = next.filter(|_| !line.newline) {
                    // Not the last segment, and it ends inside a record:
                    // its end is missing (only the last segment is ever
                    // appended to). What the missing part held is known
                    // only by the sequence numbers it can have had.
                    let after = floor;
                    let at_most = next.saturating_sub(after + 1).saturating_sub(cost.records);
                    counter.cut_segments += 1;
                    counter.cut_records_at_most += at_most;
                    counter.report(CorruptRecord {
                        file: path.clone(),
                        offset: line.off + line.len,
                        len: 0,
                        what: format!(
                            "the segment ends inside a record: its end is missing, with the records it held numbered after {after} and before {next} (at most {at_most})"
                        ),
                    });
                }
            }
        }
    }
    Ok(found)
}

/// A skipped line's report: why, and what it costs.
fn describe(why: &str, cost: Cost) -> String {
    match cost {
        Cost { records, bytes: 0 } => format!("{why}: {records} record(s) skipped"),
        Cost { records: 0, bytes } => {
            format!("{why}: {bytes} bytes skipped in which records cannot be told apart")
        }
        Cost { records, bytes } => format!(
            "{why}: {bytes} bytes skipped in which records cannot be told apart ({records} record header(s) among them)"
        ),
    }
}
