//! Crash recovery: the set of open sessions, kept on disk in
//! `general.state_dir`, so that sessions still open when Janus died without
//! a shutdown (SIGKILL, OOM, a crash) are ended on the next start with
//! `reason: gateway_restart` and the last timestamp seen for them.
//!
//! Files (one writer: the worker thread; a `lock` file keeps a second
//! process out):
//! - `sessions.snapshot`: a header line `lifecycleevh-state 1 <generation>
//!   <open|clean> <emitter as a JSON string, or ->`, then one line per open
//!   session, `<id> <created> <last_seen>` (µs since the epoch). Replaced
//!   atomically (temporary file, fsync, rename, fsync of the folder).
//! - `sessions.journal.<generation>`: what happened since that snapshot, one
//!   line each, `+ <id> <ts>` (created) or `- <id>` (ended), written at once
//!   (no user-space buffer: a killed process loses nothing it wrote).
//!
//! Recovery is the snapshot plus its journal (a torn last line is ignored).
//! Each checkpoint and each start begins a new generation, so a crash at
//! any point never replays a journal twice.
//!
//! What is fsynced when (`state_fsync`): with `always`, every journal line;
//! with `interval`, the journal at each checkpoint (`checkpoint_ms`), when
//! the snapshot replacing it is fsynced; with `never`, nothing (the data
//! survives a Janus crash, the OS writes it back; a power cut may lose it).
//! Snapshots are fsynced unless `never`. `last_seen` is as fresh as the last
//! checkpoint.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::durable::{Fsync, write_atomically};

/// A session found open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub session_id: u64,
    pub created: i64,
    pub last_seen: i64,
}

/// What the previous run left open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Sorted by creation time, then id.
    pub sessions: Vec<OpenSession>,
    /// The `emitter` of the previous run's events.
    pub emitter: Option<String>,
    /// The previous run stopped cleanly (or there was none).
    pub clean: bool,
}

const SNAPSHOT: &str = "sessions.snapshot";
const MAGIC: &str = "lifecycleevh-state";

/// The on-disk set of open sessions. See the module documentation.
pub struct SessionStore {
    dir: PathBuf,
    fsync: Fsync,
    _lock: File,
    generation: u64,
    /// The current generation's journal (None only while opening).
    journal: Option<File>,
    open: HashMap<u64, (i64, i64)>,
    emitter: Option<String>,
    /// Something changed since the last checkpoint.
    dirty: bool,
}

impl SessionStore {
    /// Opens (creating) the store in `dir` and returns what the previous run
    /// left open. Those sessions are then forgotten: the caller ends them.
    pub fn open(dir: &Path, fsync: Fsync) -> io::Result<(SessionStore, Recovered)> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process", dir.display()),
            )
        })?;
        let (generation, recovered) = read_state(dir)?;
        let mut store = SessionStore {
            dir: dir.to_path_buf(),
            fsync,
            _lock: lock,
            generation,
            journal: None,
            open: HashMap::new(),
            emitter: recovered.emitter.clone(),
            dirty: true,
        };
        // A new generation with nothing open: what was recovered is handled.
        store.begin_generation(false)?;
        Ok((store, recovered))
    }

    /// A session was created at `ts`.
    pub fn created(&mut self, session_id: u64, ts: i64) -> io::Result<()> {
        self.open.insert(session_id, (ts, ts));
        self.dirty = true;
        self.append(&format!("+ {session_id} {ts}\n"))
    }

    /// A session was seen alive at `ts` (written at the next checkpoint).
    pub fn seen(&mut self, session_id: u64, ts: i64) {
        if let Some((_, last)) = self.open.get_mut(&session_id)
            && ts > *last
        {
            *last = ts;
            self.dirty = true;
        }
    }

    /// A session ended.
    pub fn ended(&mut self, session_id: u64) -> io::Result<()> {
        if self.open.remove(&session_id).is_none() {
            return Ok(());
        }
        self.dirty = true;
        self.append(&format!("- {session_id}\n"))
    }

    /// The `emitter` of Janus's events, stored with the next checkpoint.
    pub fn set_emitter(&mut self, emitter: &str) {
        if self.emitter.as_deref() != Some(emitter) {
            self.emitter = Some(emitter.to_string());
            self.dirty = true;
        }
    }

    /// Writes all open sessions with their last-seen time and starts a new
    /// journal. Nothing happens when nothing changed since the last one.
    pub fn checkpoint(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.begin_generation(false)
    }

    /// Clean stop: every session ended; the next start recovers nothing.
    pub fn close_clean(&mut self) -> io::Result<()> {
        self.open.clear();
        self.begin_generation(true)
    }

    /// Sessions open per the store.
    pub fn open_sessions(&self) -> usize {
        self.open.len()
    }

    fn append(&mut self, line: &str) -> io::Result<()> {
        let journal = self
            .journal
            .as_mut()
            .expect("a journal is open after open()");
        journal.write_all(line.as_bytes())?;
        if self.fsync == Fsync::Always {
            journal.sync_data()?;
        }
        Ok(())
    }

    /// Snapshot of the current state as generation + 1, then a fresh journal.
    fn begin_generation(&mut self, clean: bool) -> io::Result<()> {
        let next = self.generation + 1;
        let journal_path = self.dir.join(format!("sessions.journal.{next}"));
        let journal = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&journal_path)?;
        let mut text = format!(
            "{MAGIC} 1 {next} {} {}\n",
            if clean { "clean" } else { "open" },
            self.emitter
                .as_ref()
                .map_or("-".to_string(), |e| serde_json::Value::from(e.as_str())
                    .to_string())
        );
        let mut sessions: Vec<(&u64, &(i64, i64))> = self.open.iter().collect();
        sessions.sort_by_key(|(id, (created, _))| (*created, **id));
        for (id, (created, last)) in sessions {
            text += &format!("{id} {created} {last}\n");
        }
        let sync = self.fsync != Fsync::Never;
        if let (true, Some(j)) = (sync, &self.journal) {
            j.sync_data()?;
        }
        write_atomically(&self.dir, SNAPSHOT, text.as_bytes(), sync)?;
        let old = self
            .dir
            .join(format!("sessions.journal.{}", self.generation));
        self.journal = Some(journal);
        self.generation = next;
        let _ = fs::remove_file(old);
        self.dirty = false;
        Ok(())
    }
}

/// Reads snapshot and journal; returns the snapshot's generation and what
/// was open. Stale journals of other generations are removed.
fn read_state(dir: &Path) -> io::Result<(u64, Recovered)> {
    let corrupt = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut generation = 0;
    let mut clean = true;
    let mut emitter = None;
    let mut open: HashMap<u64, (i64, i64)> = HashMap::new();
    match File::open(dir.join(SNAPSHOT)) {
        Ok(f) => {
            let mut lines = BufReader::new(f).lines();
            let header = lines.next().transpose()?.unwrap_or_default();
            let words: Vec<&str> = header.splitn(5, ' ').collect();
            if words.len() != 5 || words[0] != MAGIC || words[1] != "1" {
                return Err(corrupt(format!(
                    "{}: not a lifecycleevh state file",
                    dir.join(SNAPSHOT).display()
                )));
            }
            generation = words[2]
                .parse()
                .map_err(|_| corrupt("bad generation in the snapshot".into()))?;
            clean = words[3] == "clean";
            emitter = serde_json::from_str::<String>(words[4]).ok();
            for line in lines {
                let line = line?;
                let mut w = line.split(' ');
                let (Some(id), Some(created), Some(last)) = (w.next(), w.next(), w.next()) else {
                    continue;
                };
                if let (Ok(id), Ok(created), Ok(last)) =
                    (id.parse::<u64>(), created.parse(), last.parse())
                {
                    open.insert(id, (created, last));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let journal = dir.join(format!("sessions.journal.{generation}"));
    if let Ok(f) = File::open(&journal) {
        let text = {
            let mut r = BufReader::new(f);
            let mut s = String::new();
            io::Read::read_to_string(&mut r, &mut s)?;
            s
        };
        // A line without its newline was torn by the crash: ignored.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        for line in complete.lines() {
            let w: Vec<&str> = line.split(' ').collect();
            match w.as_slice() {
                ["+", id, ts] => {
                    if let (Ok(id), Ok(ts)) = (id.parse(), ts.parse()) {
                        open.insert(id, (ts, ts));
                        clean = false;
                    }
                }
                ["-", id] => {
                    if let Ok(id) = id.parse::<u64>() {
                        open.remove(&id);
                    }
                }
                _ => {}
            }
        }
    }
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(g) = name.strip_prefix("sessions.journal.")
            && g.parse::<u64>().ok() != Some(generation)
        {
            let _ = fs::remove_file(dir.join(&*name));
        }
    }
    let mut sessions: Vec<OpenSession> = open
        .into_iter()
        .map(|(session_id, (created, last_seen))| OpenSession {
            session_id,
            created,
            last_seen,
        })
        .collect();
    sessions.sort_by_key(|s| (s.created, s.session_id));
    let clean = clean && sessions.is_empty();
    Ok((
        generation,
        Recovered {
            sessions,
            emitter,
            clean,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: &Recovered) -> Vec<u64> {
        r.sessions.iter().map(|s| s.session_id).collect()
    }

    #[test]
    fn a_new_store_recovers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        assert_eq!(
            r,
            Recovered {
                sessions: vec![],
                emitter: None,
                clean: true
            }
        );
    }

    #[test]
    fn open_sessions_survive_a_crash_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Always).unwrap();
            s.set_emitter("MyJanus");
            s.created(1, 100).unwrap();
            s.created(2, 200).unwrap();
            s.created(3, 300).unwrap();
            s.ended(2).unwrap();
            s.seen(1, 150);
            // No checkpoint: last_seen of 1 is not on disk yet, nor the emitter.
            assert_eq!(s.open_sessions(), 2);
        } // dropped: a crash
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        assert!(!r.clean);
        assert_eq!(
            r.sessions,
            vec![
                OpenSession {
                    session_id: 1,
                    created: 100,
                    last_seen: 100
                },
                OpenSession {
                    session_id: 3,
                    created: 300,
                    last_seen: 300
                },
            ]
        );
        drop(_s);
        // Recovery is one-shot.
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        assert!(r.sessions.is_empty());
    }

    #[test]
    fn checkpoints_keep_last_seen_and_emitter() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Interval).unwrap();
            s.set_emitter("Janus \"A\"");
            s.created(7, 10).unwrap();
            s.seen(7, 50);
            s.checkpoint().unwrap();
            // After the checkpoint the journal goes on.
            s.created(8, 60).unwrap();
            s.ended(7).unwrap();
            s.created(9, 70).unwrap();
            s.seen(9, 90);
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        assert_eq!(r.emitter.as_deref(), Some("Janus \"A\""));
        assert_eq!(ids(&r), vec![8, 9]);
        assert_eq!(r.sessions[1].last_seen, 70);
        let journals = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("sessions.journal.")
            })
            .count();
        assert_eq!(journals, 1, "old journals are removed");
    }

    #[test]
    fn clean_close_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
            s.created(1, 1).unwrap();
            s.close_clean().unwrap();
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        assert!(r.clean);
        assert!(r.sessions.is_empty());
    }

    #[test]
    fn a_torn_journal_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
            s.created(1, 1).unwrap();
            s.created(2, 2).unwrap();
            s.journal.as_mut().unwrap().write_all(b"- 1").unwrap(); // cut short by the crash
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        assert_eq!(ids(&r), vec![1, 2]);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, _) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        let e = SessionStore::open(dir.path(), Fsync::Never).err().unwrap();
        assert!(e.to_string().contains("in use"), "{e}");
    }

    #[test]
    fn many_sessions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
            for id in 1..=10_000u64 {
                s.created(id, id as i64).unwrap();
            }
            s.checkpoint().unwrap();
            for id in (1..=10_000u64).filter(|i| i % 2 == 0) {
                s.ended(id).unwrap();
            }
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never).unwrap();
        assert_eq!(r.sessions.len(), 5_000);
        assert!(r.sessions.iter().all(|s| s.session_id % 2 == 1));
    }

    #[test]
    fn a_foreign_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SNAPSHOT), "hello\n").unwrap();
        assert!(SessionStore::open(dir.path(), Fsync::Never).is_err());
    }
}
