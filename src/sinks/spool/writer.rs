//! The writer: appends records to the last segment, one `write` each and no
//! user-space buffer, starts a new segment when the last one is full, and
//! undoes what a failed write left.

use std::fs::{self, File};
use std::io::{self, Write};
use std::time::SystemTime;

use super::ledger::{Ledger, Pos, Segment};
use super::{Fsync, SpoolError, format, segment};

#[derive(Debug, Default)]
pub(super) struct Writer {
    /// The last segment's name and the handle appends go through.
    file: Option<(u64, File)>,
    /// The last segment must not be appended to (a write that could not be
    /// undone, a torn tail that could not be cut, a segment that cannot be
    /// read): the next record starts a new segment.
    rotate_next: bool,
    /// Appended since the last fsync (never set with `Fsync::Never`).
    pub(super) dirty_data: bool,
}

impl Writer {
    pub(super) fn new(rotate_next: bool) -> Writer {
        Writer {
            rotate_next,
            ..Writer::default()
        }
    }

    /// Appends a record (see [`super::Spool::append`]); returns where its
    /// line starts. On an error nothing of the record is left behind (or the
    /// segment is never appended to again), and the ledger is unchanged but
    /// for a segment started for it; `undone` is told the name of a segment
    /// whose end was cut back.
    pub(super) fn append(
        &mut self,
        ledger: &mut Ledger,
        seq: u64,
        json: &str,
        undone: impl FnOnce(u64),
    ) -> Result<Pos, SpoolError> {
        if seq <= ledger.last_seq || seq > format::MAX_SEQ {
            return Err(SpoolError::Invalid(format!(
                "sequence number {seq} is not after {}",
                ledger.last_seq
            )));
        }
        format::check_new(json)
            .map_err(|what| SpoolError::Invalid(format!("record {seq}: {what}")))?;
        let line = format::encode(seq, json);
        let len = line.len() as u64;
        if ledger.bytes.saturating_add(len) > ledger.cfg.max_bytes {
            return Err(SpoolError::Full {
                max_bytes: ledger.cfg.max_bytes,
            });
        }
        let rotate = self.rotate_next
            || ledger
                .segments
                .back()
                .is_none_or(|s| s.bytes >= ledger.cfg.segment_bytes);
        if rotate {
            self.start_segment(ledger, seq)?;
        } else if self.file.is_none() {
            let name = ledger.segments.back().map_or(0, |s| s.name);
            self.file = Some((name, segment::open_append(&ledger.cfg.dir, name)?));
        }
        let (Some((_, file)), Some(segment)) = (self.file.as_mut(), ledger.segments.back_mut())
        else {
            unreachable!("a segment is open for appending");
        };
        if let Err(e) = file.write_all(line.as_bytes()) {
            undone(segment.name);
            self.undo_write(ledger);
            return Err(e.into());
        }
        let at = segment.end();
        segment.bytes += len;
        segment.kept += 1;
        segment.last_kept = Some(seq);
        ledger.bytes += len;
        ledger.last_seq = seq;
        ledger.pending += 1;
        ledger.ages.note(seq, SystemTime::now());
        match ledger.cfg.fsync {
            Fsync::Always => {
                file.sync_data()?;
                ledger.sync_dir_if_always()?;
            }
            Fsync::Interval => self.dirty_data = true,
            Fsync::Never => {}
        }
        Ok(at)
    }

    /// Fsyncs the last segment if anything was appended since the last time.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if self.dirty_data {
            if let Some((_, file)) = &self.file {
                file.sync_data()?;
            }
            self.dirty_data = false;
        }
        Ok(())
    }

    /// The segment `name` is being deleted: nothing to append to or sync in
    /// it any more.
    pub(super) fn forget(&mut self, name: u64) {
        if self.file.as_ref().is_some_and(|(n, _)| *n == name) {
            self.file = None;
            self.dirty_data = false;
        }
    }

    /// Starts the segment whose first record is `seq`.
    fn start_segment(&mut self, ledger: &mut Ledger, seq: u64) -> Result<(), SpoolError> {
        // The segment being closed is complete on disk before the next one
        // exists, so that a power cut can only damage the last one.
        self.sync()?;
        self.file = None;
        let file = segment::create(&ledger.cfg.dir, seq, ledger.cfg.file_mode).map_err(|e| {
            let path = segment::path(&ledger.cfg.dir, seq);
            io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
        })?;
        self.file = Some((seq, file));
        self.rotate_next = false;
        ledger.segments.push_back(Segment::new(seq, 0));
        ledger.dir_changed();
        Ok(())
    }

    /// After a failed write to the last segment: cuts what was written of
    /// the record (or deletes a segment that has nothing else).
    fn undo_write(&mut self, ledger: &mut Ledger) {
        let Some(segment) = ledger.segments.back() else {
            return;
        };
        let (name, bytes) = (segment.name, segment.bytes);
        if bytes == 0 {
            self.file = None;
            ledger.segments.pop_back();
            let _ = fs::remove_file(segment::path(&ledger.cfg.dir, name));
            ledger.dir_changed();
            // The previous segment may be the one a failed write could not
            // be undone in: never append to it again.
            self.rotate_next = true;
            return;
        }
        let undone = self
            .file
            .as_ref()
            .is_some_and(|(_, f)| f.set_len(bytes).is_ok());
        if !undone {
            self.file = None;
            self.rotate_next = true;
        }
    }
}
