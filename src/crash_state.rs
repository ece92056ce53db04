//! Crash recovery: the set of open sessions, kept on disk in
//! `general.state_dir`, so that sessions still open when Janus died without
//! a shutdown (SIGKILL, OOM, a crash) are ended on the next start with
//! `reason: gateway_restart` and the last timestamp seen for them.
//!
//! # Who acknowledges what, in which order
//!
//! An ending is first *decided* here (`~ <id> <reason> <json>` in the
//! journal: the `destroyed` event as the sinks will get it), before any
//! sink is offered it. It is then *recorded* (`- <id>`) only after it
//! reached every sink that promises it: the JSON Lines file (the line was
//! handed to the kernel with `write(2)`, which a SIGKILL does not undo) and
//! each spooled HTTP sink (the record was appended to the spool, which
//! happens on the worker before the ending is even offered to the file sink:
//! the router offers to spooled sinks first). Until then the session stays
//! open here, in the journal and in every snapshot (a new generation never
//! forgets it, nor its decided ending). So a SIGKILL at any moment leaves
//! each ending either recorded here (and in the sinks) or still open here;
//! at the next start, an open session whose ending is already in the file
//! (written, but killed before it was recorded here) is recognised by
//! reading the file from the position recorded with the last
//! acknowledgement (`@` lines) and is not ended twice; one whose ending was
//! decided is ended again with that very event (a spooled sink, even its
//! backend, may have had it already: at least once repeats an ending, it
//! never contradicts it); the others are ended with `gateway_restart`. The `gateway_restart` endings themselves follow
//! the same rule: the recovered sessions stay open here until their endings
//! are acknowledged, so a second SIGKILL during the restart loses nothing
//! (the third start recovers them again). HTTP backends deduplicate on
//! `(session_id, event.name)` in any case (delivery is at least once).
//!
//! # Files
//!
//! One writer (the worker thread); a `lock` file keeps a second process out.
//! Files are created with `general.file_mode` (owner and group only by
//! default), the folder with the matching folder mode.
//! - `sessions.snapshot`: a header line `lifecycleevh-state 3 <generation>
//!   <open|clean> <emitter as a JSON string, or ->`, optionally a line
//!   `@ <dev> <ino> <len>` (the file sink's position at the last
//!   acknowledgement), then one line per open session, `<id> <created>
//!   <last_seen> <transport module> <transport id>` (µs since the epoch; `-`
//!   for an unknown transport), then one line per decided ending of an open
//!   session, `~ <id> <reason> <json>`. Replaced atomically (temporary file,
//!   fsync, rename, fsync of the folder). Versions 1 (without the `@` line
//!   and the transport) and 2 (without decided endings) are read too.
//! - `sessions.journal.<generation>`: what happened since that snapshot, one
//!   line each, written at once (no user-space buffer: a killed process
//!   loses nothing it wrote): `+ <id> <ts> <module> <instance>` (created),
//!   `~ <id> <reason> <json>` (ending decided; the endings of one batch in
//!   one write), `- <id>` (ended, acknowledged), `@ <dev> <ino> <len>` (file
//!   position).
//!
//! Recovery is the snapshot plus its journal (a torn last line is ignored,
//! other unreadable lines are skipped). Each checkpoint and each start
//! begins a new generation, so a crash at any point never replays a journal
//! twice.
//!
//! What is fsynced when (`state_fsync`): with `always`, every journal line;
//! with `interval`, the journal at each checkpoint (`checkpoint_ms`), when
//! the snapshot replacing it is fsynced; with `never`, nothing (the data
//! survives a Janus crash, the OS writes it back; a power cut may lose it).
//! Snapshots are fsynced unless `never`. `last_seen` is as fresh as the last
//! checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::durable::{self, Fsync, write_atomically_mode};
use crate::janus::{IdMap, IdSet};
use crate::sinks::file::FilePosition;

/// A session found open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub session_id: u64,
    pub created: i64,
    pub last_seen: i64,
    /// The transport it was created on: module and instance id.
    pub transport: Option<(String, String)>,
    /// Its ending, when it was decided before the crash.
    pub ending: Option<Decided>,
}

/// An ending decided, not yet acknowledged: its reason and its `destroyed`
/// event as the sinks get it (one line of JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub reason: String,
    pub json: String,
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
    /// The file sink's position at the last acknowledgement.
    pub file_position: Option<FilePosition>,
}

const SNAPSHOT: &str = "sessions.snapshot";
const MAGIC: &str = "lifecycleevh-state";
const VERSION: &str = "3";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    created: i64,
    last_seen: i64,
    transport: Option<(String, String)>,
    ending: Option<Decided>,
}

/// The on-disk set of open sessions. See the module documentation.
pub struct SessionStore {
    dir: PathBuf,
    fsync: Fsync,
    file_mode: u32,
    _lock: File,
    generation: u64,
    /// The current generation's journal (None only while opening).
    journal: Option<File>,
    /// Keyed by session ids a client may choose.
    open: IdMap<u64, Entry>,
    emitter: Option<String>,
    position: Option<FilePosition>,
    /// Endings decided and not yet written to the journal (lines).
    decided: String,
    /// Something changed since the last checkpoint.
    dirty: bool,
}

impl SessionStore {
    /// Opens (creating) the store in `dir` and returns what the previous run
    /// left open. Those sessions stay open in the store until the caller
    /// reports them [`ended`](SessionStore::ended).
    pub fn open(dir: &Path, fsync: Fsync, file_mode: u32) -> io::Result<(SessionStore, Recovered)> {
        durable::create_dir_all(dir, file_mode)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(file_mode)
            .open(dir.join("lock"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process", dir.display()),
            )
        })?;
        let (generation, recovered) = read_state(dir)?;
        let open = recovered
            .sessions
            .iter()
            .map(|s| {
                (
                    s.session_id,
                    Entry {
                        created: s.created,
                        last_seen: s.last_seen,
                        transport: s.transport.clone(),
                        ending: s.ending.clone(),
                    },
                )
            })
            .collect();
        let mut store = SessionStore {
            dir: dir.to_path_buf(),
            fsync,
            file_mode,
            _lock: lock,
            generation,
            journal: None,
            open,
            emitter: recovered.emitter.clone(),
            position: recovered.file_position,
            decided: String::new(),
            dirty: true,
        };
        store.begin_generation(false)?;
        Ok((store, recovered))
    }

    /// A session was created at `ts` on `transport` (module, instance id).
    pub fn created(
        &mut self,
        session_id: u64,
        ts: i64,
        transport: Option<(&str, &str)>,
    ) -> io::Result<()> {
        let transport = transport
            .filter(|(m, id)| is_word(m) && is_word(id))
            .map(|(m, id)| (m.to_string(), id.to_string()));
        let line = match &transport {
            Some((m, id)) => format!("+ {session_id} {ts} {m} {id}\n"),
            None => format!("+ {session_id} {ts} - -\n"),
        };
        self.open.insert(
            session_id,
            Entry {
                created: ts,
                last_seen: ts,
                transport,
                ending: None,
            },
        );
        self.dirty = true;
        self.append(&line)
    }

    /// A session's ending was decided: `reason`, and its `destroyed` event
    /// as the sinks will get it (one line of JSON). Kept until the ending
    /// is acknowledged ([`ended`](Self::ended)); written to the journal by
    /// the next [`write_decided`](Self::write_decided), which must come
    /// before any sink is offered the event.
    pub fn decided(&mut self, session_id: u64, reason: &str, json: &str) {
        let Some(entry) = self.open.get_mut(&session_id) else {
            return; // Not open here: nothing would recover it.
        };
        if !is_word(reason) || json.contains('\n') {
            return;
        }
        self.decided
            .push_str(&format!("~ {session_id} {reason} {json}\n"));
        entry.ending = Some(Decided {
            reason: reason.to_string(),
            json: json.to_string(),
        });
        self.dirty = true;
    }

    /// Writes the endings decided since the last call to the journal, in one
    /// write (fsynced with `Fsync::Always`).
    pub fn write_decided(&mut self) -> io::Result<()> {
        if self.decided.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.decided);
        self.append(&lines)
    }

    /// A session was seen alive at `ts` (written at the next checkpoint).
    pub fn seen(&mut self, session_id: u64, ts: i64) {
        if let Some(e) = self.open.get_mut(&session_id)
            && ts > e.last_seen
        {
            e.last_seen = ts;
            self.dirty = true;
        }
    }

    /// A session's ending reached every sink that promises it.
    pub fn ended(&mut self, session_id: u64) -> io::Result<()> {
        if self.open.remove(&session_id).is_none() {
            return Ok(());
        }
        self.dirty = true;
        self.append(&format!("- {session_id}\n"))
    }

    /// The file sink's position at this acknowledgement (see the module
    /// documentation): where the next start begins looking for endings that
    /// were written but not yet recorded here.
    pub fn file_position(&mut self, p: FilePosition) -> io::Result<()> {
        if self.position == Some(p) {
            return Ok(());
        }
        self.position = Some(p);
        self.dirty = true;
        self.append(&format!("@ {} {} {}\n", p.dev, p.ino, p.len))
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

    /// Clean stop: every session ended and acknowledged; the next start
    /// recovers nothing. Sessions still open (an ending that never reached
    /// a sink promising it) are kept, and the stop is not clean.
    pub fn close(&mut self) -> io::Result<()> {
        let clean = self.open.is_empty();
        self.begin_generation(clean)
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
            .mode(self.file_mode)
            .open(&journal_path)?;
        let mut text = format!(
            "{MAGIC} {VERSION} {next} {} {}\n",
            if clean { "clean" } else { "open" },
            self.emitter
                .as_ref()
                .map_or("-".to_string(), |e| serde_json::Value::from(e.as_str())
                    .to_string())
        );
        if let Some(p) = self.position {
            text += &format!("@ {} {} {}\n", p.dev, p.ino, p.len);
        }
        let mut sessions: Vec<(&u64, &Entry)> = self.open.iter().collect();
        sessions.sort_by_key(|(id, e)| (e.created, **id));
        for &(id, e) in &sessions {
            let (m, i) = e
                .transport
                .as_ref()
                .map_or(("-", "-"), |(m, i)| (m.as_str(), i.as_str()));
            text += &format!("{id} {} {} {m} {i}\n", e.created, e.last_seen);
        }
        for (id, e) in sessions {
            if let Some(d) = &e.ending {
                text += &format!("~ {id} {} {}\n", d.reason, d.json);
            }
        }
        let sync = self.fsync != Fsync::Never;
        if let (true, Some(j)) = (sync, &self.journal) {
            j.sync_data()?;
        }
        write_atomically_mode(&self.dir, SNAPSHOT, text.as_bytes(), sync, self.file_mode)?;
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

/// A word of the format: non-empty, no whitespace, not `-`.
fn is_word(s: &str) -> bool {
    !s.is_empty() && s != "-" && !s.chars().any(char::is_whitespace)
}

fn parse_position(words: &[&str]) -> Option<FilePosition> {
    match words {
        [dev, ino, len] => Some(FilePosition {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            len: len.parse().ok()?,
        }),
        _ => None,
    }
}

impl Entry {
    /// An entry read from a line; `transport` is the line's last two words
    /// (`<module> <instance>`, `- -` when unknown, absent in version 1).
    fn read(created: i64, last_seen: i64, transport: &[&str]) -> Entry {
        let transport = match transport {
            [m, id] if is_word(m) && is_word(id) => Some((m.to_string(), id.to_string())),
            _ => None,
        };
        Entry {
            created,
            last_seen,
            transport,
            ending: None,
        }
    }
}

/// A `~ <id> <reason> <json>` line: the session and its decided ending.
fn parse_decided(line: &str) -> Option<(u64, Decided)> {
    let mut words = line.splitn(4, ' ');
    let (Some("~"), Some(id), Some(reason), Some(json)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return None;
    };
    Some((
        id.parse().ok()?,
        Decided {
            reason: reason.to_string(),
            json: json.to_string(),
        },
    ))
}

/// Reads snapshot and journal; returns the snapshot's generation and what
/// was open. Stale journals of other generations are removed. Unreadable
/// lines are skipped (a torn last line is what a crash leaves).
pub fn read_state(dir: &Path) -> io::Result<(u64, Recovered)> {
    let corrupt = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut generation = 0;
    let mut clean = true;
    let mut emitter = None;
    let mut position = None;
    let mut open: IdMap<u64, Entry> = IdMap::default();
    match File::open(dir.join(SNAPSHOT)) {
        Ok(f) => {
            let mut lines = BufReader::new(f).lines();
            let header = lines.next().transpose()?.unwrap_or_default();
            let words: Vec<&str> = header.splitn(5, ' ').collect();
            if words.len() != 5 || words[0] != MAGIC || !matches!(words[1], "1" | "2" | "3") {
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
                let Ok(line) = line else {
                    break;
                };
                if let Some((id, ending)) = parse_decided(&line) {
                    if let Some(e) = open.get_mut(&id) {
                        e.ending = Some(ending);
                    }
                    continue;
                }
                let w: Vec<&str> = line.split(' ').collect();
                match w.as_slice() {
                    ["@", rest @ ..] => position = parse_position(rest).or(position),
                    [id, created, last, rest @ ..] => {
                        if let (Ok(id), Ok(created), Ok(last_seen)) =
                            (id.parse::<u64>(), created.parse(), last.parse())
                        {
                            open.insert(id, Entry::read(created, last_seen, rest));
                        }
                    }
                    _ => {}
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let journal = dir.join(format!("sessions.journal.{generation}"));
    if let Ok(f) = File::open(&journal) {
        let mut bytes = Vec::new();
        BufReader::new(f).read_to_end(&mut bytes)?;
        // A line without its newline was torn by the crash: ignored.
        let complete = &bytes[..bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)];
        for line in complete.split(|b| *b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            if let Some((id, ending)) = parse_decided(line) {
                if let Some(e) = open.get_mut(&id) {
                    e.ending = Some(ending);
                }
                continue;
            }
            let w: Vec<&str> = line.split(' ').collect();
            match w.as_slice() {
                ["+", id, ts, rest @ ..] => {
                    if let (Ok(id), Ok(ts)) = (id.parse(), ts.parse()) {
                        open.insert(id, Entry::read(ts, ts, rest));
                        clean = false;
                    }
                }
                ["-", id] => {
                    if let Ok(id) = id.parse::<u64>() {
                        open.remove(&id);
                    }
                }
                ["@", rest @ ..] => position = parse_position(rest).or(position),
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
        .map(|(session_id, e)| OpenSession {
            session_id,
            created: e.created,
            last_seen: e.last_seen,
            transport: e.transport,
            ending: e.ending,
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
            file_position: position,
        },
    ))
}

/// Most bytes read from a file that is not the one the position names (it
/// was rotated): its end is where an unrecorded ending can be.
const ROTATED_SCAN_BYTES: u64 = 16 << 20;

/// Which of `sessions` already have a `destroyed` line in the JSON Lines
/// file at `path`, written after `from` (or, if the file is not that one
/// any more, in its last [`ROTATED_SCAN_BYTES`]). A line cut short is
/// ignored. Only the lines that mention `destroyed` are parsed.
pub fn endings_in_file(
    path: &Path,
    from: Option<FilePosition>,
    sessions: &IdSet<u64>,
) -> io::Result<IdSet<u64>> {
    let mut found = IdSet::default();
    if sessions.is_empty() {
        return Ok(found);
    }
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let start = match from {
        Some(p) if p.dev == meta.dev() && p.ino == meta.ino() && p.len <= meta.len() => p.len,
        Some(_) | None => meta.len().saturating_sub(ROTATED_SCAN_BYTES),
    };
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            break;
        }
        if !line.windows(11).any(|w| w == b"\"destroyed\"") {
            continue;
        }
        if let Ok(facts) = crate::janus::decode(&line)
            && facts.kind == crate::janus::Kind::SessionDestroyed
            && let Some(sid) = facts.session_id
            && sessions.contains(&sid)
        {
            found.insert(sid);
        }
    }
    Ok(found)
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
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(
            r,
            Recovered {
                sessions: vec![],
                emitter: None,
                clean: true,
                file_position: None,
            }
        );
    }

    #[test]
    fn open_sessions_survive_a_crash_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Always, 0o640).unwrap();
            s.set_emitter("MyJanus");
            s.created(1, 100, None).unwrap();
            s.created(2, 200, None).unwrap();
            s.created(3, 300, None).unwrap();
            s.ended(2).unwrap();
            s.seen(1, 150);
            // No checkpoint: last_seen of 1 is not on disk yet, nor the emitter.
            assert_eq!(s.open_sessions(), 2);
        } // dropped: a crash
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert!(!r.clean);
        assert_eq!(
            r.sessions,
            vec![
                OpenSession {
                    session_id: 1,
                    created: 100,
                    last_seen: 100,
                    transport: None,
                    ending: None,
                },
                OpenSession {
                    session_id: 3,
                    created: 300,
                    last_seen: 300,
                    transport: None,
                    ending: None,
                },
            ]
        );
        // Recovered sessions stay open until their endings are acknowledged:
        // a second crash before that recovers them again...
        drop(_s);
        let (mut s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(ids(&r), vec![1, 3]);
        s.ended(1).unwrap();
        s.ended(3).unwrap();
        drop(s);
        // ...and once acknowledged, never again.
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert!(r.sessions.is_empty());
    }

    /// Issue 16, finding 7: an ending decided (and maybe delivered by a
    /// sink) but not acknowledged survives a crash, in the journal and
    /// through a checkpoint, so that the next start repeats it instead of
    /// ending the session another way.
    #[test]
    fn decided_endings_survive_a_crash_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let json = |sid: u64| {
            format!(
                "{{\"type\":1,\"session_id\":{sid},\"event\":{{\"name\":\"destroyed\",\"reason\":\"request\"}}}}"
            )
        };
        let ending = |r: &Recovered, sid: u64| {
            r.sessions
                .iter()
                .find(|s| s.session_id == sid)
                .and_then(|s| s.ending.clone())
        };
        let request = |sid: u64| {
            Some(Decided {
                reason: "request".into(),
                json: json(sid),
            })
        };
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
            for sid in 1..=4 {
                s.created(sid, sid as i64, None).unwrap();
            }
            s.decided(1, "request", &json(1));
            s.decided(2, "request", &json(2));
            s.decided(99, "request", &json(99)); // not open here: ignored
            s.write_decided().unwrap();
            s.ended(2).unwrap();
            s.decided(3, "timeout", "{\"not\":\"written\"}"); // staged only
        } // a crash
        let (mut s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(ids(&r), vec![1, 3, 4]);
        assert_eq!(ending(&r, 1), request(1));
        assert_eq!(ending(&r, 3), None, "never written");
        assert_eq!(ending(&r, 4), None);
        // Opening wrote a snapshot: the decided ending is in it, and is
        // kept through more checkpoints until acknowledged.
        s.checkpoint().unwrap();
        drop(s);
        let (mut s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(ending(&r, 1), request(1));
        s.ended(1).unwrap();
        drop(s);
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(ids(&r), vec![3, 4]);
    }

    #[test]
    fn checkpoints_keep_last_seen_and_emitter() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Interval, 0o640).unwrap();
            s.set_emitter("Janus \"A\"");
            s.created(7, 10, None).unwrap();
            s.seen(7, 50);
            s.checkpoint().unwrap();
            // After the checkpoint the journal goes on.
            s.created(8, 60, None).unwrap();
            s.ended(7).unwrap();
            s.created(9, 70, None).unwrap();
            s.seen(9, 90);
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
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
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
            s.created(1, 1, None).unwrap();
            s.created(2, 2, None).unwrap();
            s.ended(1).unwrap();
            s.ended(2).unwrap();
            s.close().unwrap();
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert!(r.clean);
        assert!(r.sessions.is_empty());
    }

    #[test]
    fn a_torn_journal_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
            s.created(1, 1, None).unwrap();
            s.created(2, 2, None).unwrap();
            s.journal.as_mut().unwrap().write_all(b"- 1").unwrap(); // cut short by the crash
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(ids(&r), vec![1, 2]);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, _) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        let e = SessionStore::open(dir.path(), Fsync::Never, 0o640)
            .err()
            .unwrap();
        assert!(e.to_string().contains("in use"), "{e}");
    }

    #[test]
    fn many_sessions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
            for id in 1..=10_000u64 {
                s.created(id, id as i64, None).unwrap();
            }
            s.checkpoint().unwrap();
            for id in (1..=10_000u64).filter(|i| i % 2 == 0) {
                s.ended(id).unwrap();
            }
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(r.sessions.len(), 5_000);
        assert!(r.sessions.iter().all(|s| s.session_id % 2 == 1));
    }

    #[test]
    fn a_foreign_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SNAPSHOT), "hello\n").unwrap();
        assert!(SessionStore::open(dir.path(), Fsync::Never, 0o640).is_err());
    }

    #[test]
    fn a_stop_with_unacknowledged_endings_is_not_clean() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
            s.created(1, 1, None).unwrap();
            s.close().unwrap();
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert!(!r.clean);
        assert_eq!(ids(&r), vec![1]);
    }

    #[test]
    fn transports_and_file_positions_survive() {
        let dir = tempfile::tempdir().unwrap();
        let pos = FilePosition {
            dev: 1,
            ino: 2,
            len: 3,
        };
        {
            let (mut s, _) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
            s.created(1, 10, Some(("janus.transport.websockets", "77")))
                .unwrap();
            s.created(2, 20, Some(("bad module", "x"))).unwrap();
            s.file_position(pos).unwrap();
            s.checkpoint().unwrap();
            s.created(3, 30, Some(("janus.transport.http", "5")))
                .unwrap();
        }
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(r.file_position, Some(pos));
        let t: Vec<_> = r.sessions.iter().map(|s| s.transport.clone()).collect();
        assert_eq!(
            t,
            vec![
                Some(("janus.transport.websockets".into(), "77".into())),
                None,
                Some(("janus.transport.http".into(), "5".into())),
            ]
        );
    }

    #[test]
    fn version_1_state_is_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(SNAPSHOT),
            "lifecycleevh-state 1 4 open \"J\"\n7 100 150\n",
        )
        .unwrap();
        fs::write(dir.path().join("sessions.journal.4"), "+ 8 200\n- 7\n").unwrap();
        let (_s, r) = SessionStore::open(dir.path(), Fsync::Never, 0o640).unwrap();
        assert_eq!(ids(&r), vec![8]);
        assert_eq!(r.emitter.as_deref(), Some("J"));
    }

    #[test]
    fn files_are_owner_and_group_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (mut s, _) = SessionStore::open(&state, Fsync::Never, 0o640).unwrap();
        s.created(1, 1, None).unwrap();
        s.checkpoint().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o750);
        for e in fs::read_dir(&state).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p) & 0o007, 0, "{} is readable by others", p.display());
        }
        assert_eq!(mode(&state.join(SNAPSHOT)), 0o640);
    }

    #[test]
    fn endings_already_in_the_file_are_found_after_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let line = |sid: u64, name: &str| {
            format!(
                "{{\"type\":1,\"timestamp\":1,\"session_id\":{sid},\"event\":{{\"name\":\"{name}\"}}}}\n"
            )
        };
        fs::write(&path, line(1, "destroyed")).unwrap();
        let meta = fs::metadata(&path).unwrap();
        let pos = FilePosition {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
        };
        let mut more = line(2, "created") + &line(2, "destroyed") + &line(3, "timeout");
        more += "{\"type\":1,\"session_id\":4,\"event\":{\"name\":\"destroyed\"";
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(more.as_bytes()).unwrap();
        let wanted: IdSet<u64> = [1, 2, 3, 4].into_iter().collect();
        // From the position: 1 is before it, 3 only timed out, 4 is cut short.
        assert_eq!(
            endings_in_file(&path, Some(pos), &wanted).unwrap(),
            [2].into()
        );
        // A rotated file (another inode): its end is read.
        let other = FilePosition {
            ino: pos.ino + 1,
            ..pos
        };
        assert_eq!(
            endings_in_file(&path, Some(other), &wanted).unwrap(),
            [1, 2].into()
        );
        assert!(
            endings_in_file(&dir.path().join("none"), None, &wanted)
                .unwrap()
                .is_empty()
        );
    }
}
