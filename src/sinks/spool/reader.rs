//! The reader: reads the oldest unacknowledged records (`peek`), each from
//! disk once, and moves past what is acknowledged (`ack`), whole segments
//! at a time where it can. Lines are judged by the rules of `format`, the
//! same as on open, so counts and reads always agree.

use std::collections::VecDeque;
use std::io;

use super::ledger::{Ledger, Pos};
use super::segment::Walker;
use super::{Record, SpoolError};

#[derive(Debug, Default)]
pub(super) struct Reader {
    walker: Option<Walker>,
    /// Where reading the oldest unacknowledged record starts (meaningful
    /// while the ledger's `pending > 0`).
    cursor: Option<Pos>,
    /// The records returned by the last peek, from `cursor` on, each with
    /// where the line after it starts: a record is read from disk once.
    window: VecDeque<(Record, Pos)>,
}

/// What an acknowledgement changes, computed before anything is changed.
pub(super) struct AckPlan {
    /// Records of the peek window that are now acknowledged.
    popped: usize,
    cursor: Option<Pos>,
    pending: u64,
    /// The first record not acknowledged, if it had to be read.
    next: Option<(Record, Pos)>,
}

impl Reader {
    pub(super) fn new(cursor: Option<Pos>) -> Reader {
        Reader {
            cursor,
            ..Reader::default()
        }
    }

    /// A record was appended at `at` to a spool with nothing pending.
    pub(super) fn start_at(&mut self, at: Pos) {
        self.cursor = Some(at);
        self.window.clear();
    }

    /// Up to `max` records not yet acknowledged, oldest first (see
    /// [`super::Spool::peek`]).
    pub(super) fn peek(&mut self, ledger: &Ledger, max: usize) -> Result<Vec<Record>, SpoolError> {
        self.window.truncate(max);
        while self.window.len() < max && (self.window.len() as u64) < ledger.pending {
            let from = match (self.window.back(), self.cursor) {
                (Some((_, end)), _) => *end,
                (None, Some(cursor)) => cursor,
                (None, None) => break,
            };
            match self.read_from(ledger, from)? {
                Some(next) => self.window.push_back(next),
                None => break,
            }
        }
        Ok(self.window.iter().map(|(r, _)| r.clone()).collect())
    }

    /// Where the cursor goes when everything up to `seq` is acknowledged
    /// (`seq` not above the ledger's `last_seq`): past the acknowledged
    /// records of the peek window, then past whole segments, then record by
    /// record. Changes nothing but what was read.
    pub(super) fn plan_ack(&mut self, ledger: &Ledger, seq: u64) -> io::Result<AckPlan> {
        let popped = self.window.iter().take_while(|(r, _)| r.seq <= seq).count();
        let mut pending = ledger.pending - popped as u64;
        let mut cursor = match popped {
            0 => self.cursor,
            n => Some(self.window[n - 1].1),
        };
        let mut next = None;
        if popped == self.window.len() {
            while pending > 0 {
                let Some((i, pos)) = cursor.and_then(|p| ledger.normalize(p)) else {
                    break;
                };
                let segment = &ledger.segments[i];
                if segment.done(seq) {
                    pending = pending.saturating_sub(segment.kept - pos.idx);
                    cursor = Some(segment.end());
                    continue;
                }
                let Some((record, end)) = self.read_from(ledger, pos)? else {
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

    /// Applies a plan once the acknowledgement is persisted; returns the
    /// records still pending.
    pub(super) fn apply(&mut self, plan: AckPlan) -> u64 {
        self.window.drain(..plan.popped);
        if let Some(next) = plan.next {
            debug_assert!(self.window.is_empty());
            self.window.push_back(next);
        }
        self.cursor = plan.cursor;
        if plan.pending == 0 {
            self.window.clear();
        }
        plan.pending
    }

    /// The oldest pending record's sequence number as far as it is known
    /// without reading: exact once peeked.
    pub(super) fn oldest_pending_floor(&self, acked_seq: u64) -> u64 {
        self.window
            .front()
            .map_or(acked_seq + 1, |(record, _)| record.seq)
    }

    /// The segment `name` changed below what was read of it, or is being
    /// deleted: what was buffered from it is stale.
    pub(super) fn forget(&mut self, name: u64) {
        if self.walker.as_ref().is_some_and(|w| w.name == name) {
            self.walker = None;
        }
    }

    /// The first record kept at or after `pos`, and where the line after it
    /// starts; `None` at the end of the spool.
    fn read_from(&mut self, ledger: &Ledger, pos: Pos) -> io::Result<Option<(Record, Pos)>> {
        let mut pos = pos;
        loop {
            let Some((i, at)) = ledger.normalize(pos) else {
                return Ok(None);
            };
            pos = at;
            let end = ledger.segments[i].bytes;
            let next_segment = ledger.segments.get(i + 1).map(|s| s.name);
            if self.walker.as_ref().is_none_or(|w| w.name != pos.seg) {
                self.walker = None;
                self.walker = Some(Walker::open(&ledger.cfg.dir, pos.seg)?);
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
}
