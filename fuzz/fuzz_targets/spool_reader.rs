//! The spool's reader: arbitrary bytes as segment files and an `ack` file
//! in a fresh folder, then open, peek everything (in steps), acknowledge
//! half, append, reopen. Never panics; every record returned is well formed
//! and in order; counts agree with each other, with the files and with the
//! reference reader (`spool::format::reference`, the rules on whole files).
//!
//! Input: parts separated by 0x1E. The first is the `ack` file when it
//! starts with `A` (the rest of it), else there is none. Each other part is
//! a segment: `@<digits>:` names it (else it is named one above the one
//! before), the rest is its content. Names that are not valid sequence
//! numbers make files that are not segments.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use janus_lifecycleevh::durable::Fsync;
use janus_lifecycleevh::sinks::spool::format::{self, MAX_SEQ};
use janus_lifecycleevh::sinks::spool::{Record, Spool, SpoolConfig, SpoolError, segment_path};
use libfuzzer_sys::fuzz_target;

const SEP: u8 = 0x1e;

/// A new folder, in memory where there is a tmpfs (twice the runs a second).
fn fresh_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "spool-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &std::path::Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        fsync: Fsync::Never,
        max_bytes: 1 << 30,
        segment_bytes: 256,
        file_mode: 0o600,
    }
}

/// The segment files on disk (name, content), as the spool lists them.
fn on_disk(dir: &std::path::Path) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(digits) = name.strip_suffix(".seg") else {
            continue;
        };
        if digits.len() == 20
            && let Some(n) = format::parse_seq(digits.as_bytes())
        {
            out.push((n, fs::read(dir.join(&name)).unwrap()));
        }
    }
    out.sort();
    out
}

fn reference(dir: &std::path::Path, acked: u64) -> (Vec<(u64, String)>, format::Cost) {
    let files = on_disk(dir);
    let borrowed: Vec<(u64, &[u8])> = files.iter().map(|(n, b)| (*n, &b[..])).collect();
    format::reference(&borrowed, acked)
}

fn pairs(records: &[Record]) -> Vec<(u64, String)> {
    records.iter().map(|r| (r.seq, r.json.clone())).collect()
}

/// What every read must satisfy.
fn well_formed(records: &[Record], acked: u64, last: u64) {
    let mut prev = acked;
    for r in records {
        assert!(r.seq > prev && r.seq <= last, "{} after {prev}, last {last}", r.seq);
        prev = r.seq;
        assert!(!r.json.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&r.json).expect("JSON");
        assert!(value.is_object());
    }
}

fn check_counts(s: &Spool, dir: &std::path::Path, records: &[Record]) {
    assert_eq!(s.pending(), records.len() as u64);
    assert_eq!(s.oldest_pending_age().is_some(), !records.is_empty());
    let disk: u64 = on_disk(dir).iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(s.bytes(), disk);
    assert!(s.last_seq() >= s.acked_seq());
}

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir();
    fs::create_dir_all(&dir).unwrap();
    let mut parts = data.split(|&b| b == SEP);
    let ack_part = parts.next().unwrap_or_default();
    let mut ack_text = None;
    if let Some(text) = ack_part.strip_prefix(b"A") {
        fs::write(dir.join("ack"), text).unwrap();
        ack_text = Some(text.to_vec());
    }
    let mut files: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut name = 0u64;
    for part in parts.take(8) {
        let mut content = part;
        name = name.saturating_add(1);
        if let Some(rest) = part.strip_prefix(b"@")
            && let Some(colon) = rest.iter().position(|&b| b == b':')
            && let Some(n) = std::str::from_utf8(&rest[..colon])
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
        {
            name = n % (MAX_SEQ + 2); // 0 and MAX_SEQ + 1 are not segments
            content = &rest[colon + 1..];
        }
        files.insert(name, content.to_vec());
    }
    for (name, content) in &files {
        fs::write(segment_path(&dir, *name), content).unwrap();
    }

    // Open: never fails on what the files hold.
    let mut s = match Spool::open(config(&dir)) {
        Ok(s) => s,
        Err(e) => panic!("open failed: {e}"),
    };
    let acked = s.acked_seq();
    // The ack file: a number is taken, anything else is 0 and said.
    let expected_ack = ack_text.map_or(Some(0), |t| {
        let t = String::from_utf8_lossy(&t).into_owned();
        let t = t.trim_matches(|c: char| c == '\0' || c.is_ascii_whitespace());
        if t.is_empty() { Some(0) } else { format::parse_seq(t.as_bytes()) }
    });
    match expected_ack {
        Some(n) => {
            assert_eq!(acked, n);
            assert!(s.damage().ack_unreadable.is_none());
        }
        None => {
            assert_eq!(acked, 0);
            assert!(s.damage().ack_unreadable.is_some());
        }
    }
    let segments: Vec<(u64, &[u8])> = files
        .iter()
        .filter(|(n, _)| (1..=MAX_SEQ).contains(*n))
        .map(|(n, b)| (*n, &b[..]))
        .collect();
    // The reference reads the files as they were written.
    let (want, corrupt) = format::reference(&segments, acked);
    assert_eq!(s.corrupt_records(), corrupt.records);
    assert_eq!(s.corrupt_bytes(), corrupt.bytes);
    assert!(s.damage().corrupt.len() as u64 <= s.damage().reports);
    assert_eq!(s.pending(), want.len() as u64);
    assert!(segments.iter().all(|&(n, _)| s.last_seq() >= n));

    // Peek in steps: the same records each time, a prefix of everything.
    for max in [1usize, 4, 2] {
        let got = s.peek(max).unwrap();
        assert_eq!(pairs(&got), want.iter().take(max).cloned().collect::<Vec<_>>());
    }
    let all = s.peek(usize::MAX).unwrap();
    well_formed(&all, acked, s.last_seq());
    assert_eq!(pairs(&all), want);
    check_counts(&s, &dir, &all);

    // Acknowledge half, append one, reopen: exactly the rest and the new one.
    let mut rest = all.clone();
    if !all.is_empty() {
        let upto = all[all.len() / 2].seq;
        s.ack(upto).unwrap();
        rest.retain(|r| r.seq > upto);
        let again = s.peek(usize::MAX).unwrap();
        assert_eq!(again, rest);
        check_counts(&s, &dir, &rest);
    }
    let seq = s.last_seq() + 1;
    match s.append(seq, "{\"fuzz\":true}") {
        Ok(()) => rest.push(Record {
            seq,
            json: "{\"fuzz\":true}".into(),
        }),
        Err(SpoolError::Full { .. }) => {}
        Err(e) => panic!("append failed: {e}"),
    }
    assert_eq!(s.peek(usize::MAX).unwrap(), rest);
    let first_corrupt = s.corrupt_records();
    let acked = s.acked_seq();
    drop(s);
    let mut s = Spool::open(config(&dir)).unwrap();
    assert_eq!(s.acked_seq(), acked);
    let got = s.peek(usize::MAX).unwrap();
    assert_eq!(got, rest);
    assert_eq!(pairs(&got), reference(&dir, acked).0);
    assert!(s.corrupt_records() <= first_corrupt);
    assert!(s.damage().torn.is_none());
    check_counts(&s, &dir, &got);
    drop(s);
    let _ = fs::remove_dir_all(&dir);
});
