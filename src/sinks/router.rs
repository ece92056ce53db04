//! From the worker to the sinks: each event staged once, then offered to
//! every sink a batch at a time, and what the sinks have finished with.

use std::sync::Arc;
use std::time::Instant;

use super::file::FilePosition;
use super::shared::SinkShared;
use super::spawn::SinkHandle;
use crate::output::OutEvent;

/// All running sinks: the worker stages each event, then hands the staged
/// events to every sink that takes them, a batch at a time (one lock and
/// one wake-up per sink and batch, not per event). Each event gets a route
/// number, the same for every sink, by which the worker learns what the
/// sinks have finished with ([`Router::settled`]).
#[derive(Default)]
pub struct Router {
    sinks: Vec<SinkHandle>,
    staged: Vec<(u64, Arc<OutEvent>)>,
    next_route: u64,
}

impl Router {
    pub fn new(sinks: Vec<SinkHandle>) -> Router {
        Router {
            sinks,
            staged: Vec::new(),
            next_route: 1,
        }
    }

    /// Adds an event to the next batch; returns its route number.
    pub fn stage(&mut self, ev: Arc<OutEvent>) -> u64 {
        let route = self.next_route;
        self.next_route += 1;
        self.staged.push((route, ev));
        route
    }

    pub fn staged(&self) -> usize {
        self.staged.len()
    }

    /// Hands the staged events to the sinks; returns how many were taken by
    /// at least one sink.
    pub fn flush(&mut self) -> u64 {
        if self.staged.is_empty() {
            return 0;
        }
        let forwarded = self
            .staged
            .iter()
            .filter(|(_, e)| self.sinks.iter().any(|s| s.shared().takes(e.ty)))
            .count() as u64;
        for s in self.offer_order() {
            s.shared().offer_all(&self.staged);
        }
        self.staged.clear();
        forwarded
    }

    /// The sinks in the order they are offered events: those with a spool
    /// first, so that their append is on disk (safe from a SIGKILL) before
    /// any other sink, the file above all, can have the event. Crash
    /// recovery counts on it: an ending the file holds is in every spool
    /// too (see `crate::crash_state`).
    fn offer_order(&self) -> impl Iterator<Item = &SinkHandle> {
        let spooled = |s: &&SinkHandle| s.shared().spool.is_some();
        let first = self.sinks.iter().filter(spooled);
        first.chain(self.sinks.iter().filter(move |s| !spooled(s)))
    }

    /// Every event routed up to the returned number was delivered by every
    /// sink that acknowledges (or is finished with otherwise), with the
    /// position of the acknowledging file sink's file then. Events still
    /// staged are not.
    pub fn settled(&self) -> (u64, Option<FilePosition>) {
        let mut through = self.next_route - 1 - self.staged.len() as u64;
        let mut position = None;
        for s in self.sinks.iter().filter(|s| s.shared().acknowledges()) {
            let (t, p) = s.shared().settled();
            through = through.min(t);
            position = position.or(p);
        }
        (through, position)
    }

    /// The sinks' shared parts, for the Admin API.
    pub fn shared(&self) -> Vec<Arc<SinkShared>> {
        self.sinks.iter().map(|s| s.shared().clone()).collect()
    }

    /// Hands over what is staged, then closes every sink, all within `deadline`.
    pub fn close_all(&mut self, deadline: Instant) -> bool {
        self.flush();
        let mut all = true;
        for s in &mut self.sinks {
            all &= s.close(deadline);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::spawn::tests::{Script, settings, spooled};

    /// Issue 16, finding 7: spooled sinks are offered an event before the
    /// others (the file sink is built first), so that an ending the file holds
    /// is in every spool too when Janus is killed.
    #[test]
    fn spooled_sinks_are_offered_events_first() {
        let dir = tempfile::tempdir().unwrap();
        let memory = SinkHandle::spawn("file", settings(10), Box::new(Script::default())).unwrap();
        let spooled =
            SinkHandle::spawn("http", spooled(dir.path(), 10), Box::new(Script::default()))
                .unwrap();
        let router = Router::new(vec![memory, spooled]);
        let order: Vec<&str> = router.offer_order().map(|s| s.shared().kind()).collect();
        assert_eq!(order, ["http", "file"]);
    }
}
