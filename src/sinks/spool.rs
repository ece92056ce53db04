//! A sink's durable spool: an append-only, on-disk FIFO of events. Events
//! are written here before they are sent and acknowledged only once the
//! backend took them (a 2xx answer); what is not acknowledged is sent again
//! after a backend outage or a restart, in order. Delivery is at least once.
//!
//! Files in the spool's folder (`<spool_dir>/<sink name>/`):
//! - segments `NNNNNNNNNNNNNNNNNNNN.seg` (the first record's sequence number,
//!   20 digits), one record a line: `<seq>\t<compact JSON>\n`, each written
//!   with one `write` (no user-space buffer: a killed Janus loses nothing it
//!   wrote);
//! - `ack`: the highest acknowledged sequence number, replaced atomically
//!   (temporary file and rename);
//! - `lock`: held while the spool is open, so two processes never share it.
//!
//! On open, a record cut short by a crash (the last line of the last
//! segment, without its newline) is dropped and the file truncated; fully
//! acknowledged segments are deleted as acknowledgements arrive.
//!
//! What is fsynced when (`spool_fsync`): `always`, every record before
//! `append` returns, and every `ack`; `interval`, both at each `sync()` (the
//! sink's thread calls it every `spool_fsync_ms`); `never`, nothing (the data
//! survives a Janus crash, not a power cut). Creating and deleting segments
//! fsyncs the folder unless `never`.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use crate::durable::Fsync;
use crate::durable::write_atomically;

/// Where and how a spool keeps its events.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// Cap on the bytes of segment files; appending beyond it fails (`Full`).
    pub max_bytes: u64,
    /// A new segment starts when the current one reaches this size.
    pub segment_bytes: u64,
}

/// One spooled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub json: String,
}

#[derive(Debug)]
pub enum SpoolError {
    Full { max_bytes: u64 },
    Io(io::Error),
    Corrupt(String),
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full { max_bytes } => {
                write!(f, "full ({} MB of unsent events)", max_bytes >> 20)
            }
            SpoolError::Io(e) => write!(f, "{e}"),
            SpoolError::Corrupt(what) => write!(f, "corrupt: {what}"),
        }
    }
}

impl std::error::Error for SpoolError {}

impl From<io::Error> for SpoolError {
    fn from(e: io::Error) -> Self {
        SpoolError::Io(e)
    }
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    last_seq: u64,
    bytes: u64,
    path: PathBuf,
}

/// See the module documentation.
pub struct Spool {
    cfg: SpoolConfig,
    _lock: File,
    segments: VecDeque<Segment>,
    /// Appends go to the last segment through this handle.
    writer: Option<File>,
    last_seq: u64,
    acked_seq: u64,
    pending: u64,
    bytes: u64,
    /// Where the oldest unacknowledged record starts: (segment's first seq, offset).
    cursor: Option<(u64, u64)>,
    unsynced_data: bool,
    unsynced_ack: bool,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

fn parse_line(line: &str) -> Option<(u64, &str)> {
    let (seq, json) = line.split_once('\t')?;
    Some((seq.parse().ok()?, json))
}

impl Spool {
    /// Opens (creating) the spool and finds what was not acknowledged.
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        fs::create_dir_all(&cfg.dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(cfg.dir.join("lock"))?;
        lock.try_lock().map_err(|_| {
            SpoolError::Corrupt(format!(
                "{} is in use by another process",
                cfg.dir.display()
            ))
        })?;
        let acked_seq = match fs::read_to_string(cfg.dir.join("ack")) {
            Ok(t) => t
                .trim()
                .parse()
                .map_err(|_| SpoolError::Corrupt(format!("bad ack file: {t:?}")))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        let mut firsts: Vec<u64> = fs::read_dir(&cfg.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut spool = Spool {
            _lock: lock,
            segments: VecDeque::new(),
            writer: None,
            last_seq: acked_seq,
            acked_seq,
            pending: 0,
            bytes: 0,
            cursor: None,
            unsynced_data: false,
            unsynced_ack: false,
            cfg,
        };
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            spool.scan_segment(first, i + 1 == count)?;
        }
        spool.drop_acked_segments()?;
        if let Some(last) = spool.segments.back()
            && last.bytes < spool.cfg.segment_bytes
        {
            spool.writer = Some(OpenOptions::new().append(true).open(&last.path)?);
        }
        Ok(spool)
    }

    /// Reads one segment at open: its records, the cursor, a torn tail.
    fn scan_segment(&mut self, first: u64, is_last: bool) -> Result<(), SpoolError> {
        let path = self.cfg.dir.join(segment_name(first));
        let mut text = String::new();
        File::open(&path)?
            .read_to_string(&mut text)
            .map_err(|e| SpoolError::Corrupt(format!("{}: {e}", path.display())))?;
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            if !is_last {
                return Err(SpoolError::Corrupt(format!(
                    "{}: torn record",
                    path.display()
                )));
            }
            // Cut short by a crash: drop the partial record.
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(complete as u64)?;
        }
        let mut offset = 0u64;
        let mut last_seq = None;
        for line in text[..complete].split_inclusive('\n') {
            let (seq, _) = parse_line(line.trim_end_matches('\n')).ok_or_else(|| {
                SpoolError::Corrupt(format!("{}: bad record at byte {offset}", path.display()))
            })?;
            if seq > self.acked_seq {
                self.pending += 1;
                if self.cursor.is_none() {
                    self.cursor = Some((first, offset));
                }
            }
            self.last_seq = self.last_seq.max(seq);
            last_seq = Some(seq);
            offset += line.len() as u64;
        }
        let Some(last_seq) = last_seq else {
            fs::remove_file(&path)?;
            return Ok(());
        };
        self.bytes += complete as u64;
        self.segments.push_back(Segment {
            first_seq: first,
            last_seq,
            bytes: complete as u64,
            path,
        });
        Ok(())
    }

    /// Appends a record; `seq` must be higher than any before.
    pub fn append(&mut self, seq: u64, json: &str) -> Result<(), SpoolError> {
        if seq <= self.last_seq {
            return Err(SpoolError::Corrupt(format!(
                "sequence {seq} is not after {}",
                self.last_seq
            )));
        }
        if json.contains('\n') {
            return Err(SpoolError::Corrupt("a record contains a newline".into()));
        }
        let line = format!("{seq}\t{json}\n");
        let len = line.len() as u64;
        if self.bytes + len > self.cfg.max_bytes {
            return Err(SpoolError::Full {
                max_bytes: self.cfg.max_bytes,
            });
        }
        let rotate = match self.segments.back() {
            None => true,
            Some(s) => self.writer.is_none() || s.bytes >= self.cfg.segment_bytes,
        };
        if rotate {
            let path = self.cfg.dir.join(segment_name(seq));
            self.writer = Some(OpenOptions::new().create(true).append(true).open(&path)?);
            self.segments.push_back(Segment {
                first_seq: seq,
                last_seq: seq,
                bytes: 0,
                path,
            });
            self.sync_dir()?;
        }
        let writer = self.writer.as_mut().expect("a segment is open");
        writer.write_all(line.as_bytes())?;
        let segment = self.segments.back_mut().expect("a segment is open");
        if self.cursor.is_none() {
            self.cursor = Some((segment.first_seq, segment.bytes));
        }
        segment.bytes += len;
        segment.last_seq = seq;
        self.bytes += len;
        self.last_seq = seq;
        self.pending += 1;
        match self.cfg.fsync {
            Fsync::Always => writer.sync_data()?,
            Fsync::Interval => self.unsynced_data = true,
            Fsync::Never => {}
        }
        Ok(())
    }

    /// Up to `max` unacknowledged records, oldest first (not removed).
    pub fn peek(&mut self, max: usize) -> Result<Vec<Record>, SpoolError> {
        let mut out = Vec::new();
        let Some((first, offset)) = self.cursor else {
            return Ok(out);
        };
        let mut offset = offset;
        for segment in self.segments.iter().filter(|s| s.first_seq >= first) {
            if out.len() >= max {
                break;
            }
            let mut file = File::open(&segment.path)?;
            file.seek(SeekFrom::Start(offset))?;
            let reader = BufReader::new(file.take(segment.bytes.saturating_sub(offset)));
            for line in reader.lines() {
                let line = line?;
                let (seq, json) = parse_line(&line).ok_or_else(|| {
                    SpoolError::Corrupt(format!("{}: bad record", segment.path.display()))
                })?;
                if seq > self.acked_seq {
                    out.push(Record {
                        seq,
                        json: json.to_string(),
                    });
                    if out.len() >= max {
                        break;
                    }
                }
            }
            offset = 0;
        }
        Ok(out)
    }

    /// Everything up to `seq` was delivered.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        let seq = seq.min(self.last_seq);
        if seq <= self.acked_seq {
            return Ok(());
        }
        // Move the cursor past the acknowledged records, counting them.
        let mut cursor = None;
        let mut acked = 0;
        if let Some((first, offset)) = self.cursor {
            let mut offset = offset;
            'segments: for segment in self.segments.iter().filter(|s| s.first_seq >= first) {
                let mut file = File::open(&segment.path)?;
                file.seek(SeekFrom::Start(offset))?;
                let mut reader = BufReader::new(file.take(segment.bytes.saturating_sub(offset)));
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = reader.read_line(&mut line)?;
                    if n == 0 {
                        break;
                    }
                    let Some((rseq, _)) = parse_line(line.trim_end_matches('\n')) else {
                        return Err(SpoolError::Corrupt(format!(
                            "{}: bad record",
                            segment.path.display()
                        )));
                    };
                    if rseq > seq {
                        cursor = Some((segment.first_seq, offset));
                        break 'segments;
                    }
                    acked += 1;
                    offset += n as u64;
                }
                offset = 0;
            }
        }
        self.cursor = cursor;
        self.pending = self.pending.saturating_sub(acked);
        self.acked_seq = seq;
        let sync = self.cfg.fsync == Fsync::Always;
        write_atomically(&self.cfg.dir, "ack", format!("{seq}\n").as_bytes(), sync)?;
        if self.cfg.fsync == Fsync::Interval {
            self.unsynced_ack = true;
        }
        self.drop_acked_segments()?;
        Ok(())
    }

    /// Deletes segments whose records are all acknowledged.
    fn drop_acked_segments(&mut self) -> Result<(), SpoolError> {
        let mut removed = false;
        while let Some(s) = self.segments.front() {
            if s.last_seq > self.acked_seq {
                break;
            }
            let s = self.segments.pop_front().expect("front");
            fs::remove_file(&s.path)?;
            self.bytes -= s.bytes;
            removed = true;
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
        if removed {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        if self.cfg.fsync != Fsync::Never {
            File::open(&self.cfg.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Makes appended records and the last acknowledgement durable.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced_data {
            if let Some(w) = &self.writer {
                w.sync_data()?;
            }
            self.unsynced_data = false;
        }
        if self.unsynced_ack {
            File::open(self.cfg.dir.join("ack"))?.sync_all()?;
            self.sync_dir()?;
            self.unsynced_ack = false;
        }
        Ok(())
    }

    /// Highest sequence number ever appended (or acknowledged), 0 for none.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path, segment_bytes: u64, max_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            fsync: Fsync::Never,
            max_bytes,
            segment_bytes,
        }
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    fn segments(dir: &std::path::Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count()
    }

    #[test]
    fn append_peek_ack_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path(), 20, 1 << 20)).unwrap();
        assert!(s.peek(10).unwrap().is_empty());
        for seq in [2, 3, 5, 8, 9, 11, 12] {
            s.append(seq, &format!("{{\"n\":{seq}}}")).unwrap();
        }
        assert_eq!(s.pending(), 7);
        assert!(segments(dir.path()) >= 3);
        let first = s.peek(3).unwrap();
        assert_eq!(seqs(&first), vec![2, 3, 5]);
        assert_eq!(first[0].json, "{\"n\":2}");
        assert_eq!(
            seqs(&s.peek(3).unwrap()),
            vec![2, 3, 5],
            "peek does not consume"
        );
        s.ack(5).unwrap();
        assert_eq!(s.pending(), 4);
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![8, 9, 11, 12]);
        // Acknowledging a seq between records (7) moves to the next one.
        s.ack(7).unwrap();
        assert_eq!(seqs(&s.peek(1).unwrap()), vec![8]);
        s.ack(12).unwrap();
        assert_eq!(s.pending(), 0);
        assert!(s.peek(10).unwrap().is_empty());
        assert_eq!(
            segments(dir.path()),
            0,
            "fully acknowledged segments are deleted"
        );
        assert_eq!(s.bytes(), 0);
        // And it goes on.
        s.append(13, "{}").unwrap();
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![13]);
    }

    #[test]
    fn partially_acked_segments_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        for seq in 1..=3 {
            s.append(seq, "{}").unwrap();
        }
        s.ack(2).unwrap();
        assert_eq!(segments(dir.path()), 1);
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![3]);
    }

    #[test]
    fn reopen_resumes_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(cfg(dir.path(), 30, 1 << 20)).unwrap();
            for seq in 1..=20 {
                s.append(seq, &format!("[{seq}]")).unwrap();
            }
            s.ack(7).unwrap();
        } // dropped without sync(): a crash
        let mut s = Spool::open(cfg(dir.path(), 30, 1 << 20)).unwrap();
        assert_eq!(s.last_seq(), 20);
        assert_eq!(s.acked_seq(), 7);
        assert_eq!(s.pending(), 13);
        assert_eq!(seqs(&s.peek(100).unwrap()), (8..=20).collect::<Vec<_>>());
        assert!(
            s.append(20, "{}").is_err(),
            "sequence numbers keep increasing"
        );
        s.append(21, "{}").unwrap();
    }

    #[test]
    fn a_torn_record_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
            s.append(1, "{\"a\":1}").unwrap();
            s.append(2, "{\"a\":2}").unwrap();
        }
        let seg = dir.path().join(segment_name(1));
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(b"3\t{\"a\":")
            .unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![1, 2]);
        s.append(3, "{\"a\":3}").unwrap();
        drop(s);
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![1, 2, 3]);
    }

    #[test]
    fn full_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        // One record a segment: acknowledging one frees its segment.
        let mut s = Spool::open(cfg(dir.path(), 10, 32)).unwrap();
        s.append(1, "0123456789").unwrap(); // 13 bytes
        s.append(2, "0123456789").unwrap(); // 26
        assert!(matches!(
            s.append(3, "0123456789"),
            Err(SpoolError::Full { .. })
        ));
        assert_eq!(s.pending(), 2);
        s.ack(1).unwrap();
        s.append(3, "0123456789").unwrap();
    }

    #[test]
    fn rejects_bad_input_and_a_second_opener() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        assert!(s.append(1, "a\nb").is_err());
        s.append(5, "{}").unwrap();
        assert!(s.append(4, "{}").is_err());
        assert!(Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)).is_err());
    }

    #[test]
    fn fsync_policies_work() {
        for fsync in [Fsync::Always, Fsync::Interval] {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Spool::open(SpoolConfig {
                fsync,
                ..cfg(dir.path(), 64, 1 << 20)
            })
            .unwrap();
            for seq in 1..=10 {
                s.append(seq, "{}").unwrap();
            }
            s.ack(4).unwrap();
            s.sync().unwrap();
            drop(s);
            let mut s = Spool::open(cfg(dir.path(), 64, 1 << 20)).unwrap();
            assert_eq!(seqs(&s.peek(100).unwrap()), (5..=10).collect::<Vec<_>>());
        }
    }
}
