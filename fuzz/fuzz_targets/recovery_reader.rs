//! The crash-state reader: any bytes as the snapshot and the journal a crash
//! left (split at the first 0xff byte), and as the JSON Lines file recovery
//! reads endings from. Reading never panics; what it returns is consistent;
//! a store opened on it can be used, closed and read back.
#![no_main]

use janus_lifecycleevh::durable::Fsync;
use janus_lifecycleevh::janus::IdSet;
use janus_lifecycleevh::crash_state::{SessionStore, endings_in_file, read_state};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (snapshot, journal) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    // One folder for the whole run, emptied each time (a new temporary
    // folder per input makes the target ten times slower).
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // On tmpfs when there is one: the target does file system calls only.
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        }
    });
    for e in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::write(dir.path().join("sessions.snapshot"), snapshot).unwrap();
    // The journal of whatever generation the snapshot names, or the first.
    let generation = std::str::from_utf8(snapshot)
        .ok()
        .and_then(|t| t.split(' ').nth(2))
        .and_then(|g| g.parse::<u64>().ok())
        .unwrap_or(0);
    std::fs::write(dir.path().join(format!("sessions.journal.{generation}")), journal).unwrap();
    let Ok((_, recovered)) = read_state(dir.path()) else {
        return;
    };
    let ids: IdSet<u64> = recovered.sessions.iter().map(|s| s.session_id).collect();
    assert_eq!(ids.len(), recovered.sessions.len(), "one entry per session");
    assert!(!recovered.clean || recovered.sessions.is_empty());
    // The journal bytes as a JSON Lines file: only sessions asked for come back.
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, journal).unwrap();
    let found = endings_in_file(&file, None, &ids).unwrap();
    assert!(found.is_subset(&ids));
    // Opening keeps what was open; ending it all makes the next start clean.
    let (mut store, again) = SessionStore::open(dir.path(), Fsync::Never, 0o600).unwrap();
    assert_eq!(again.sessions, recovered.sessions);
    for s in &recovered.sessions {
        store.ended(s.session_id).unwrap();
    }
    store.close().unwrap();
    drop(store);
    let (_, after) = read_state(dir.path()).unwrap();
    assert!(after.clean && after.sessions.is_empty());
});
