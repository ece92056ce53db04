//! Segment files: their names, listing them, creating and appending to
//! them, reading their lines at an offset (with the rules of `format`),
//! cutting a torn tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::format::{self, Defect, MAX_LINE};

const SUFFIX: &str = ".seg";
/// The reader's buffer (peek, and the scan on open).
const READ_BUFFER: usize = 64 << 10;

/// `NNNNNNNNNNNNNNNNNNNN.seg`: the name (first sequence number), 20 digits.
pub fn file_name(name: u64) -> String {
    format!("{name:020}{SUFFIX}")
}

pub fn path(dir: &Path, name: u64) -> PathBuf {
    dir.join(file_name(name))
}

/// The segments in `dir`, by name, in order. Other files (and names that
/// are not 20 digits of a valid sequence number) are not segments.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if digits.len() == 20
            && let Some(n) = format::parse_seq(digits.as_bytes())
        {
            names.push(n);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Creates a new segment (never an existing one) for appending.
pub fn create(dir: &Path, name: u64, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(mode)
        .open(path(dir, name))
}

pub fn open_append(dir: &Path, name: u64) -> io::Result<File> {
    OpenOptions::new().append(true).open(path(dir, name))
}

/// Cuts a segment to `len` bytes (a torn last record), fsynced if `sync`.
pub fn truncate(dir: &Path, name: u64, len: u64, sync: bool) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path(dir, name))?;
    file.set_len(len)?;
    if sync {
        file.sync_all()?;
    }
    Ok(())
}

/// A line as read: where it is and its shape.
#[derive(Debug, Clone, Copy)]
pub struct RawLine {
    pub off: u64,
    /// With the newline.
    pub len: u64,
    pub newline: bool,
    /// Longer than `MAX_LINE`: its bytes were skipped, not kept.
    pub too_long: bool,
}

/// Reads a segment's lines from an offset, one buffer of memory plus the
/// line (at most `MAX_LINE`).
#[derive(Debug)]
struct LineReader {
    inner: BufReader<File>,
    off: u64,
}

impl LineReader {
    fn seek(&mut self, off: u64) -> io::Result<()> {
        if off != self.off {
            self.inner.seek(SeekFrom::Start(off))?;
            self.off = off;
        }
        Ok(())
    }

    /// The next line before `end` (the segment's length as the spool knows
    /// it) into `buf` (without its newline), or None at `end`.
    fn read(&mut self, end: u64, buf: &mut Vec<u8>) -> io::Result<Option<RawLine>> {
        buf.clear();
        let off = self.off;
        let avail = end.saturating_sub(off);
        if avail == 0 {
            return Ok(None);
        }
        let limit = avail.min(MAX_LINE as u64);
        let n = (&mut self.inner).take(limit).read_until(b'\n', buf)? as u64;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the segment is shorter than written",
            ));
        }
        let mut line = RawLine {
            off,
            len: n,
            newline: buf.last() == Some(&b'\n'),
            too_long: false,
        };
        if line.newline {
            buf.pop();
        } else if n < avail {
            // Longer than MAX_LINE: skip the rest of it, holding nothing.
            line.too_long = true;
            buf.clear();
            while line.len < avail {
                let chunk = self.inner.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                let room = (avail - line.len).min(chunk.len() as u64) as usize;
                let (used, found) = match chunk[..room].iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (room, false),
                };
                self.inner.consume(used);
                line.len += used as u64;
                if found {
                    line.newline = true;
                    break;
                }
            }
        }
        self.off += line.len;
        Ok(Some(line))
    }
}

/// One step of a [`Walker`]: a line, and whether it is a record to deliver
/// (its sequence number) or why not.
#[derive(Debug, Clone)]
pub struct Step {
    pub line: RawLine,
    pub verdict: Result<u64, Defect>,
}

/// Walks the lines of one segment applying the rules of `format`, with a
/// look-ahead of one line (kept, so that no line is read twice in order).
#[derive(Debug)]
pub struct Walker {
    pub name: u64,
    reader: LineReader,
    /// The line of the last step (the JSON of a record is in it).
    cur: Vec<u8>,
    cur_json: usize,
    /// The line after it, already read.
    ahead: Option<(RawLine, Vec<u8>)>,
    spare: Vec<u8>,
}

impl Walker {
    pub fn open(dir: &Path, name: u64) -> io::Result<Walker> {
        Ok(Walker {
            name,
            reader: LineReader {
                inner: BufReader::with_capacity(READ_BUFFER, File::open(path(dir, name))?),
                off: 0,
            },
            cur: Vec::new(),
            cur_json: 0,
            ahead: None,
            spare: Vec::new(),
        })
    }

    /// Where the next step starts.
    pub fn offset(&self) -> u64 {
        match &self.ahead {
            Some((line, _)) => line.off,
            None => self.reader.off,
        }
    }

    pub fn seek(&mut self, off: u64) -> io::Result<()> {
        if off != self.offset() {
            if let Some((_, buf)) = self.ahead.take() {
                self.spare = buf;
            }
            self.reader.seek(off)?;
        }
        Ok(())
    }

    /// The next line before `end`, judged with `floor` (the last record kept
    /// in this segment, or the name minus one) and `next_segment`; None at
    /// `end`. On an I/O error the walker must be dropped.
    pub fn step(
        &mut self,
        end: u64,
        floor: u64,
        next_segment: Option<u64>,
    ) -> io::Result<Option<Step>> {
        let line = match self.ahead.take() {
            Some((line, buf)) => {
                self.spare = std::mem::replace(&mut self.cur, buf);
                line
            }
            None => match self.reader.read(end, &mut self.cur)? {
                Some(line) => line,
                None => return Ok(None),
            },
        };
        let decoded = format::decode(&self.cur, line.newline, line.too_long)
            .map(|(seq, json)| (seq, self.cur.len() - json.len()));
        let verdict = match decoded {
            Err(defect) => Err(defect),
            Ok((seq, json_at)) => match format::check_order(seq, floor, next_segment) {
                Err(defect) => Err(defect),
                Ok(()) => {
                    let next = self.look_ahead(end)?;
                    self.cur_json = json_at;
                    format::check_next(seq, floor, next).map(|()| seq)
                }
            },
        };
        Ok(Some(Step { line, verdict }))
    }

    /// The line of the last step, without its newline (empty if it was
    /// too long to hold).
    pub fn line(&self) -> &[u8] {
        &self.cur
    }

    /// The JSON of the record the last step kept.
    pub fn json(&self) -> &str {
        std::str::from_utf8(&self.cur[self.cur_json..]).unwrap_or_default()
    }

    /// The header's sequence number of the next line, if it has a header
    /// and a newline.
    fn look_ahead(&mut self, end: u64) -> io::Result<Option<u64>> {
        if self.ahead.is_none() {
            let mut buf = std::mem::take(&mut self.spare);
            match self.reader.read(end, &mut buf)? {
                Some(line) => self.ahead = Some((line, buf)),
                None => self.spare = buf,
            }
        }
        Ok(self.ahead.as_ref().and_then(|(line, buf)| {
            (line.newline && !line.too_long)
                .then(|| format::seq_prefix(buf))
                .flatten()
        }))
    }
}
