//! The spool: its API, the files it leaves, what it makes of crashes and
//! corruption, a model-based test and a single-byte corruption property.

use super::format::{self, MAX_SEQ};
use super::ledger::{Ages, MARKS};
use super::*;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;

/// A folder for a test, in memory where there is a tmpfs: the property
/// tests open, write and fsync thousands of files, which on a shared disk
/// would slow every other test down.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        fsync: Fsync::Never,
        max_bytes,
        segment_bytes,
        file_mode: 0o640,
    }
}

fn open(dir: &Path, segment_bytes: u64) -> Spool {
    reopen(cfg(dir, segment_bytes, 1 << 30))
}

/// Opens, retrying while locked: a child process that another test spawns
/// holds copies of this process's descriptors (the lock's too) from its
/// fork to its exec.
fn reopen(config: SpoolConfig) -> Spool {
    for _ in 0..100 {
        match Spool::open(config.clone()) {
            Err(SpoolError::Locked(_)) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.unwrap(),
        }
    }
    panic!("{} stays locked", config.dir.display());
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn json(seq: u64) -> String {
    format!("{{\"seq\":{seq},\"event\":\"session\"}}")
}

fn line_len(seq: u64) -> u64 {
    format!("{seq}\t{}\n", json(seq)).len() as u64
}

/// The segment files on disk: (name, size), in order.
fn segment_files(dir: &Path) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().into_string().unwrap();
            let first = name.strip_suffix(".seg")?.parse().unwrap();
            Some((first, e.metadata().unwrap().len()))
        })
        .collect();
    out.sort_unstable();
    out
}

fn disk_bytes(dir: &Path) -> u64 {
    segment_files(dir).iter().map(|(_, len)| len).sum()
}

fn seg(dir: &Path, name: u64) -> PathBuf {
    segment_path(dir, name)
}

fn append_to_file(path: &Path, data: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(data)
        .unwrap();
}

fn all(s: &mut Spool) -> Vec<Record> {
    s.peek(usize::MAX).unwrap()
}

/// The segments of a folder as the reference reader takes them.
fn read_segments(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    segment_files(dir)
        .iter()
        .map(|&(name, _)| (name, fs::read(seg(dir, name)).unwrap()))
        .collect()
}

fn reference(dir: &Path, acked: u64) -> (Vec<(u64, String)>, format::Cost) {
    let files = read_segments(dir);
    let borrowed: Vec<(u64, &[u8])> = files.iter().map(|(n, b)| (*n, &b[..])).collect();
    format::reference(&borrowed, acked)
}

/// What the spool's scan on open counted, as the reference counts it.
fn cost(s: &Spool) -> format::Cost {
    format::Cost {
        records: s.corrupt_records(),
        bytes: s.corrupt_bytes(),
    }
}

fn pairs(records: &[Record]) -> Vec<(u64, String)> {
    records.iter().map(|r| (r.seq, r.json.clone())).collect()
}

#[test]
fn an_empty_spool_has_nothing() {
    let dir = tempdir();
    let mut s = open(dir.path(), 1 << 20);
    assert!(s.peek(10).unwrap().is_empty());
    assert!(s.peek(0).unwrap().is_empty());
    assert_eq!(
        (s.last_seq(), s.acked_seq(), s.pending(), s.bytes()),
        (0, 0, 0, 0)
    );
    assert_eq!(s.oldest_pending_age(), None);
    s.ack(5).unwrap(); // nothing to acknowledge: no-op
    assert_eq!(s.acked_seq(), 0);
    s.sync().unwrap();
    assert!(segment_files(dir.path()).is_empty());
    assert!(dir.path().join("lock").exists());
    assert!(s.damage().is_clean());
}

/// The process's umask (from /proc: no unsafe call needed).
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn new_files_and_folders_get_the_configured_modes() {
    let dir = tempdir();
    let deep = dir.path().join("spool/http-billing");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mask = umask();
    for (file_mode, dir_mode) in [(0o640, 0o750), (0o600, 0o700)] {
        let _ = fs::remove_dir_all(dir.path().join("spool"));
        let config = SpoolConfig {
            file_mode,
            ..cfg(&deep, 1 << 20, 1 << 20)
        };
        assert_eq!(config.dir_mode(), dir_mode);
        let mut s = reopen(config);
        s.append(1, "{}").unwrap();
        s.ack(1).unwrap();
        s.append(2, "{}").unwrap();
        assert_eq!(segment_files(&deep), vec![(2, 5)]);
        for file in [seg(&deep, 2), deep.join("ack"), deep.join("lock")] {
            assert_eq!(mode(&file), file_mode & !mask, "{}", file.display());
        }
        for folder in [&deep, &dir.path().join("spool")] {
            assert_eq!(mode(folder), dir_mode & !mask, "{}", folder.display());
        }
    }
    // A folder that exists keeps its mode.
    let existing = dir.path().join("mine");
    fs::create_dir(&existing).unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
    Spool::open(cfg(&existing, 1 << 20, 1 << 20)).unwrap();
    assert_eq!(mode(&existing), 0o755);
}

#[test]
fn append_peek_ack_round_trip() {
    let dir = tempdir();
    let mut s = open(dir.path(), 1 << 20);
    let texts = [
        "{\"a\":1}",
        "{}",
        "{\"tab\":\"x\\ty\",\"é\":\"ü€😀\"}",
        "{\"b\":[]}",
    ];
    for (i, text) in texts.iter().enumerate() {
        s.append(i as u64 + 1, text).unwrap();
    }
    assert_eq!(s.pending(), 4);
    assert_eq!(s.last_seq(), 4);
    assert_eq!(s.bytes(), disk_bytes(dir.path()));
    let expected: Vec<Record> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Record {
            seq: i as u64 + 1,
            json: t.to_string(),
        })
        .collect();
    assert_eq!(s.peek(10).unwrap(), expected);
    assert_eq!(s.peek(2).unwrap(), expected[..2], "peek does not consume");
    assert_eq!(s.peek(2).unwrap(), expected[..2]);
    s.ack(2).unwrap();
    assert_eq!((s.acked_seq(), s.pending()), (2, 2));
    assert_eq!(s.peek(10).unwrap(), expected[2..]);
    s.ack(4).unwrap();
    assert_eq!(s.pending(), 0);
    assert!(s.peek(10).unwrap().is_empty());
    assert_eq!(fs::read_to_string(dir.path().join("ack")).unwrap(), "4\n");
}

#[test]
fn peek_reads_a_record_from_disk_once() {
    let dir = tempdir();
    let mut s = open(dir.path(), 1 << 20);
    for seq in 1..=4 {
        s.append(seq, &json(seq)).unwrap();
    }
    assert_eq!(seqs(&s.peek(3).unwrap()), vec![1, 2, 3]);
    // Change the peeked records behind the spool's back (same length): a
    // peek that read them again would see it.
    let text = fs::read_to_string(seg(dir.path(), 1)).unwrap();
    fs::write(seg(dir.path(), 1), text.replace("session", "SESSION")).unwrap();
    let again = s.peek(4).unwrap();
    assert_eq!(seqs(&again), vec![1, 2, 3, 4]);
    assert_eq!(
        again[..3].iter().map(|r| &r.json).collect::<Vec<_>>(),
        [&json(1), &json(2), &json(3)]
    );
    // Acknowledging within what was read reads nothing either.
    s.ack(2).unwrap();
    assert_eq!(s.peek(2).unwrap()[0].json, json(3));
}

#[test]
fn appended_records_are_visible_to_peek_at_once() {
    let dir = tempdir();
    let mut s = open(dir.path(), 100);
    assert!(s.peek(5).unwrap().is_empty());
    for seq in 1..=30 {
        s.append(seq, &json(seq)).unwrap();
        let got = s.peek(5).unwrap();
        assert_eq!(seqs(&got), (1..=seq.min(5)).collect::<Vec<_>>());
    }
    s.ack(28).unwrap();
    assert_eq!(seqs(&s.peek(5).unwrap()), vec![29, 30]);
    s.append(31, &json(31)).unwrap();
    assert_eq!(seqs(&s.peek(5).unwrap()), vec![29, 30, 31]);
    s.ack(31).unwrap();
    assert!(s.peek(5).unwrap().is_empty());
    s.append(40, &json(40)).unwrap();
    assert_eq!(seqs(&s.peek(5).unwrap()), vec![40]);
}

#[test]
fn order_across_many_segments() {
    let dir = tempdir();
    let mut s = open(dir.path(), 64);
    let all_seqs: Vec<u64> = (1..=2000).map(|i| i * 3 + i % 2).collect();
    for &seq in &all_seqs {
        s.append(seq, &json(seq)).unwrap();
    }
    assert!(segment_files(dir.path()).len() > 500);
    assert_eq!(s.bytes(), disk_bytes(dir.path()));
    let mut got = Vec::new();
    loop {
        let batch = s.peek(7).unwrap();
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            assert_eq!(r.json, json(r.seq));
        }
        got.extend(seqs(&batch));
        s.ack(batch.last().unwrap().seq).unwrap();
        assert_eq!(s.pending(), (all_seqs.len() - got.len()) as u64);
    }
    assert_eq!(got, all_seqs);
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(s.bytes(), 0);
}

#[test]
fn segments_rotate_at_segment_bytes() {
    let dir = tempdir();
    let mut s = open(dir.path(), 2 * line_len(1));
    for seq in 1..=5 {
        s.append(seq, &json(seq)).unwrap();
    }
    let files = segment_files(dir.path());
    assert_eq!(files.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 3, 5]);
    assert_eq!(files[0].1, 2 * line_len(1));
    assert_eq!(
        fs::read_to_string(seg(dir.path(), 3)).unwrap(),
        format!("3\t{}\n4\t{}\n", json(3), json(4))
    );
}

#[test]
fn ack_deletes_only_fully_acknowledged_segments() {
    let dir = tempdir();
    let mut s = open(dir.path(), 3 * line_len(1));
    for seq in 1..=9 {
        s.append(seq, &json(seq)).unwrap();
    }
    let names = |d: &Path| segment_files(d).iter().map(|f| f.0).collect::<Vec<_>>();
    assert_eq!(names(dir.path()), vec![1, 4, 7]);
    s.ack(2).unwrap();
    assert_eq!(names(dir.path()), vec![1, 4, 7], "partially acknowledged");
    s.ack(3).unwrap();
    assert_eq!(names(dir.path()), vec![4, 7]);
    assert_eq!(s.bytes(), disk_bytes(dir.path()));
    // Without peeking first: whole segments are skipped.
    s.ack(8).unwrap();
    assert_eq!(names(dir.path()), vec![7]);
    assert_eq!((s.pending(), s.bytes()), (1, disk_bytes(dir.path())));
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![9]);
    s.ack(9).unwrap();
    assert!(names(dir.path()).is_empty(), "the last segment too");
    assert_eq!(s.bytes(), 0);
    s.append(10, &json(10)).unwrap();
    assert_eq!(names(dir.path()), vec![10]);
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![10]);
}

#[test]
fn acks_between_beyond_and_below() {
    let dir = tempdir();
    let mut s = open(dir.path(), 50);
    for seq in [2, 3, 5, 8, 9, 11, 12] {
        s.append(seq, &json(seq)).unwrap();
    }
    assert_eq!(seqs(&s.peek(3).unwrap()), vec![2, 3, 5]);
    s.ack(7).unwrap();
    assert_eq!((s.acked_seq(), s.pending()), (7, 4));
    assert_eq!(seqs(&s.peek(2).unwrap()), vec![8, 9]);
    s.ack(4).unwrap();
    assert_eq!((s.acked_seq(), s.pending()), (7, 4));
    assert_eq!(seqs(&s.peek(2).unwrap()), vec![8, 9]);
    s.ack(8).unwrap();
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![9, 11, 12]);
    assert_eq!(seqs(&s.peek(1).unwrap()), vec![9]);
    s.ack(11).unwrap();
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![12]);
    s.ack(1000).unwrap();
    assert_eq!((s.acked_seq(), s.pending(), s.last_seq()), (12, 0, 12));
    s.append(13, "{}").unwrap();
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![13]);
}

#[test]
fn reopen_resumes_with_the_same_records() {
    let dir = tempdir();
    {
        let mut s = open(dir.path(), 3 * line_len(10));
        for seq in 1..=20 {
            s.append(seq, &json(seq)).unwrap();
        }
        s.peek(4).unwrap();
        s.ack(7).unwrap();
        s.sync().unwrap();
    }
    let mut s = open(dir.path(), 3 * line_len(10));
    assert_eq!((s.last_seq(), s.acked_seq(), s.pending()), (20, 7, 13));
    assert_eq!(s.bytes(), disk_bytes(dir.path()));
    let pending = all(&mut s);
    assert_eq!(seqs(&pending), (8..=20).collect::<Vec<_>>());
    assert!(pending.iter().all(|r| r.json == json(r.seq)));
    assert!(matches!(s.append(20, "{}"), Err(SpoolError::Invalid(_))));
    // Appends go on in the last segment while it has room.
    let before = segment_files(dir.path()).len();
    s.append(21, &json(21)).unwrap();
    assert_eq!(segment_files(dir.path()).len(), before);
    assert_eq!(seqs(&all(&mut s)), (8..=21).collect::<Vec<_>>());
    assert!(s.damage().is_clean());
}

#[test]
fn last_seq_survives_when_everything_was_acknowledged() {
    let dir = tempdir();
    {
        let mut s = open(dir.path(), 1 << 20);
        for seq in [5, 9, 42] {
            s.append(seq, "{}").unwrap();
        }
        s.ack(42).unwrap();
        assert!(segment_files(dir.path()).is_empty());
    }
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!((s.last_seq(), s.acked_seq(), s.pending()), (42, 42, 0));
    assert!(s.append(42, "{}").is_err());
    s.append(43, "{}").unwrap();
}

#[test]
fn crash_without_sync_loses_nothing() {
    let dir = tempdir();
    for round in 0..3u64 {
        let base = round * 100;
        {
            let mut s = open(dir.path(), 200);
            assert_eq!(s.pending(), 0, "round {round}");
            for seq in base + 1..=base + 50 {
                s.append(seq, &json(seq)).unwrap();
            }
            assert_eq!(seqs(&s.peek(10).unwrap()).len(), 10);
            s.ack(base + 10).unwrap();
            s.peek(5).unwrap();
            s.ack(base + 13).unwrap();
            s.peek(30).unwrap(); // read ahead, then "killed"
        }
        let mut s = open(dir.path(), 200);
        assert_eq!(
            (s.acked_seq(), s.last_seq(), s.pending()),
            (base + 13, base + 50, 37)
        );
        let got = all(&mut s);
        assert_eq!(seqs(&got), (base + 14..=base + 50).collect::<Vec<_>>());
        assert!(got.iter().all(|r| r.json == json(r.seq)));
        s.ack(base + 50).unwrap();
    }
}

#[test]
fn a_torn_last_record_is_cut_on_open_and_not_counted() {
    let dir = tempdir();
    {
        let mut s = open(dir.path(), 2 * line_len(1));
        for seq in 1..=3 {
            s.append(seq, &json(seq)).unwrap();
        }
    }
    let last = seg(dir.path(), 3);
    let complete = fs::metadata(&last).unwrap().len();
    append_to_file(&last, b"4\t{\"seq\":4,\"ev");
    let mut s = open(dir.path(), 2 * line_len(1));
    assert_eq!(fs::metadata(&last).unwrap().len(), complete, "truncated");
    assert_eq!((s.last_seq(), s.pending(), s.corrupt_records()), (3, 3, 0));
    let torn = s.damage().torn.clone().unwrap();
    assert_eq!(
        (torn.file, torn.offset, torn.len),
        (last.clone(), complete, 14)
    );
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![1, 2, 3]);
    // The torn seq is free again (the caller never saw it appended).
    s.append(4, &json(4)).unwrap();
    drop(s);
    let mut s = open(dir.path(), 2 * line_len(1));
    let got = all(&mut s);
    assert_eq!(seqs(&got), vec![1, 2, 3, 4]);
    assert_eq!(got[3].json, json(4));
    assert!(s.damage().is_clean());
}

#[test]
fn torn_tails_of_other_shapes() {
    // A torn multibyte character, a zeroed tail (power cut), a file holding
    // only a torn record.
    let tails: [&[u8]; 3] = [b"7\t{\"a\":\"\xc3", b"\0\0\0\0\0\0", b"8"];
    for tail in tails {
        let dir = tempdir();
        {
            let mut s = open(dir.path(), 1 << 20);
            s.append(6, "{}").unwrap();
        }
        append_to_file(&seg(dir.path(), 6), tail);
        let mut s = open(dir.path(), 1 << 20);
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![6], "{tail:?}");
        assert_eq!((s.bytes(), disk_bytes(dir.path())), (5, 5));
        assert_eq!(s.corrupt_records(), 0);
    }
    let dir = tempdir();
    fs::write(seg(dir.path(), 9), b"9\t{\"a\"").unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert!(s.peek(10).unwrap().is_empty());
    assert!(
        segment_files(dir.path()).is_empty(),
        "an empty segment is removed"
    );
    assert!(s.damage().torn.is_some());
    s.append(10, "{}").unwrap();
}

#[test]
fn corrupt_lines_are_skipped_counted_and_located() {
    let cases: [(&str, &[u8], u64); 9] = [
        ("bad seq", b"1\t{}\nx2\t{}\n3\t{}\n", 5),
        ("no tab", b"1\t{}\n2{}\n3\t{}\n", 5),
        ("no digits", b"1\t{}\n\t{}\n3\t{}\n", 5),
        ("zero", b"1\t{}\n0\t{}\n3\t{}\n", 5),
        ("not utf-8", b"1\t{}\n2\t{\"\xff\"}\n3\t{}\n", 5),
        ("not json", b"1\t{}\n2\t{\"a\":}\n3\t{}\n", 5),
        ("not an object", b"1\t{}\n2\t[1]\n3\t{}\n", 5),
        ("overflow", b"1\t{}\n99999999999999999999\t{}\n3\t{}\n", 5),
        ("not increasing", b"3\t{}\n5\t{}\n2\t{}\n6\t{}\n", 10),
    ];
    for (what, text, offset) in cases {
        let dir = tempdir();
        fs::write(seg(dir.path(), 1), text).unwrap();
        let mut s = open(dir.path(), 1 << 20);
        let got = all(&mut s);
        assert_eq!(
            got.len(),
            2 + usize::from(what == "not increasing"),
            "{what}"
        );
        assert_eq!(s.pending(), got.len() as u64, "{what}");
        assert_eq!(s.corrupt_records(), 1, "{what}");
        let report = &s.damage().corrupt[0];
        assert_eq!(
            (&report.file, report.offset),
            (&seg(dir.path(), 1), offset),
            "{what}"
        );
        assert_eq!(pairs(&got), reference(dir.path(), 0).0, "{what}");
        // The file is left as it was; appends go on after it.
        assert_eq!(fs::read(seg(dir.path(), 1)).unwrap(), text, "{what}");
        s.append(10, "{\"new\":1}").unwrap();
        drop(s);
        let mut s = open(dir.path(), 1 << 20);
        assert_eq!(all(&mut s).last().unwrap().seq, 10, "{what}");
        assert_eq!(s.corrupt_records(), 1, "{what}");
    }
}

#[test]
fn corrupt_segments_and_names() {
    // A segment of a non-last segment without its newline; a first record
    // below the name; records not below the next segment's name.
    let dir = tempdir();
    fs::write(seg(dir.path(), 1), b"1\t{}\n2\t{").unwrap();
    fs::write(seg(dir.path(), 5), b"3\t{}\n5\t{}\n6\t{}\n9\t{}\n").unwrap();
    fs::write(seg(dir.path(), 9), b"9\t{}\n10\t{}\n").unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![1, 5, 6, 9, 10]);
    assert_eq!(s.corrupt_records(), 3);
    let at: Vec<(u64, u64)> = s
        .damage()
        .corrupt
        .iter()
        .map(|c| {
            (
                c.file.file_name().unwrap().to_str().unwrap()[..20]
                    .parse()
                    .unwrap(),
                c.offset,
            )
        })
        .collect();
    // The cut segment is listed twice: its torn last line, and where its
    // end is missing.
    assert_eq!(at, vec![(1, 5), (1, 8), (5, 0), (5, 15)]);
    assert!(s.damage().corrupt[0].what.contains("newline"));
    assert!(
        s.damage().corrupt[1]
            .what
            .contains("numbered after 1 and before 5 (at most 2)"),
        "{:?}",
        s.damage().corrupt[1]
    );
    assert!(s.damage().corrupt[2].what.contains("not above 4"));
    assert!(s.damage().corrupt[3].what.contains("next segment"));
    assert_eq!((s.corrupt_bytes(), s.damage().cut_segments), (3, 1));
    assert_eq!(cost(&s), reference(dir.path(), 0).1);
    // A segment that cannot be read at all (a folder by that name).
    let dir = tempdir();
    fs::write(seg(dir.path(), 1), b"1\t{}\n").unwrap();
    fs::create_dir(seg(dir.path(), 3)).unwrap();
    fs::write(seg(dir.path(), 7), b"7\t{}\n").unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![1, 7]);
    // Its records cannot be counted: its size is.
    assert_eq!(s.corrupt_records(), 0);
    assert_eq!(
        s.corrupt_bytes(),
        fs::metadata(seg(dir.path(), 3)).unwrap().len()
    );
    assert!(
        s.damage().corrupt[0].what.contains("cannot be read"),
        "{:?}",
        s.damage()
    );
}

#[test]
fn a_digit_changed_upwards_costs_its_own_record_only() {
    let dir = tempdir();
    fs::write(
        seg(dir.path(), 100),
        b"100\t{}\n101\t{}\n902\t{}\n103\t{}\n104\t{}\n",
    )
    .unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![100, 101, 103, 104]);
    assert_eq!(s.corrupt_records(), 1);
    assert_eq!(s.damage().corrupt[0].offset, 14);
    assert!(
        s.damage().corrupt[0]
            .what
            .contains("not below the next record's 103")
    );
    // Changed to its successor's number: the first of the two goes.
    drop(s);
    fs::write(
        seg(dir.path(), 100),
        b"100\t{}\n101\t{}\n103\t{\"a\":1}\n103\t{}\n",
    )
    .unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(
        pairs(&all(&mut s)),
        vec![(100, "{}".into()), (101, "{}".into()), (103, "{}".into())]
    );
    // In the last line it cannot be told: the record is kept, and the
    // sequence numbers go on above it.
    drop(s);
    fs::write(seg(dir.path(), 100), b"100\t{}\n101\t{}\n902\t{}\n").unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![100, 101, 902]);
    assert_eq!(s.last_seq(), 902);
}

#[test]
fn corrupt_lines_in_the_acknowledged_part_are_counted_too() {
    let dir = tempdir();
    fs::write(seg(dir.path(), 1), b"1\t{}\nxx\n2\t{}\nyy\n3\t{}\n").unwrap();
    fs::write(dir.path().join("ack"), b"2\n").unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![3]);
    assert_eq!(s.corrupt_records(), 2);
    let offsets: Vec<u64> = s.damage().corrupt.iter().map(|c| c.offset).collect();
    assert_eq!(offsets, vec![5, 13]);
    // The segment goes once 3 is delivered.
    s.ack(3).unwrap();
    assert!(segment_files(dir.path()).is_empty());
    // A pending record whose number became an acknowledged one is lost,
    // and shows as its skipped neighbour (here 42, skipped for it).
    let dir = tempdir();
    fs::write(
        seg(dir.path(), 40),
        b"40\t{}\n42\t{}\n41\t{\"was\":46}\n48\t{}\n",
    )
    .unwrap();
    fs::write(dir.path().join("ack"), b"42\n").unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![48]);
    assert_eq!(s.corrupt_records(), 1);
    assert_eq!(s.damage().corrupt[0].offset, 6);
}

/// Issue 16, finding 5: 4 KiB zeroed inside a segment (a bad block)
/// merged ten records into one line, counted as one corrupt record. What
/// it costs is now counted: the header left in it, and the bytes in which
/// records cannot be told apart, which the average record puts at the
/// number lost.
#[test]
fn a_zeroed_block_is_counted_by_its_bytes() {
    let dir = tempdir();
    let body = |seq: u64| format!("{{\"seq\":{seq:03},\"pad\":\"{}\"}}", "p".repeat(380));
    let len = format::encode(100, &body(100)).len() as u64;
    {
        let mut s = open(dir.path(), 1 << 20);
        for seq in 100..160 {
            s.append(seq, &body(seq)).unwrap();
        }
    }
    // From the middle of record 110 on, 4 KiB of zeros.
    let path = seg(dir.path(), 100);
    let mut bytes = fs::read(&path).unwrap();
    let from = (10 * len + len / 2) as usize;
    bytes[from..from + 4096].fill(0);
    fs::write(&path, &bytes).unwrap();
    // The records it touched: 110 up to the one the zeros end in.
    let touched: Vec<u64> = (110..160)
        .filter(|seq| (seq - 100) * len < (from + 4096) as u64)
        .collect();
    let mut s = open(dir.path(), 1 << 20);
    let got = seqs(&all(&mut s));
    assert_eq!(got.len() + touched.len(), 60);
    assert!(got.iter().all(|seq| !touched.contains(seq)));
    assert_eq!(s.corrupt_bytes(), touched.len() as u64 * len);
    assert_eq!(s.corrupt_records(), 1, "the header of 110 is left");
    assert_eq!(
        s.damage().records_in(s.corrupt_bytes()),
        Some(touched.len() as u64)
    );
    let report = &s.damage().corrupt[0];
    assert_eq!((report.offset, report.len), (10 * len, s.corrupt_bytes()));
    assert!(report.what.contains("cannot be told apart"), "{report}");
    assert_eq!(cost(&s), reference(dir.path(), 0).1);
}

/// Issue 16, finding 5: a segment that is not the last, cut in the middle
/// of a record (a file system that lost its end), lost every record after
/// the cut, and was counted as one. Its missing end is now counted as a
/// cut segment, and reported with the sequence numbers it held.
#[test]
fn a_segment_cut_short_is_counted_with_what_it_held() {
    let dir = tempdir();
    {
        let mut s = open(dir.path(), 100 * line_len(100));
        for seq in 1..=150 {
            s.append(seq, &json(seq)).unwrap();
        }
    }
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let (first, second) = (files[0].0, files[1].0);
    let path = seg(dir.path(), first);
    // Cut in the middle of the 30th record: 71 lost (30 to 100).
    let cut = (0..29).map(|seq| line_len(seq + 1)).sum::<u64>() + 7;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut s = open(dir.path(), 100 * line_len(100));
    let got = seqs(&all(&mut s));
    let lost = second - 30;
    assert_eq!(got.len() as u64 + lost, 150);
    let damage = s.damage().clone();
    assert_eq!(damage.cut_segments, 1);
    assert_eq!(damage.cut_records_at_most, lost - 1);
    assert_eq!((damage.corrupt_records, damage.corrupt_bytes), (1, 7));
    let missing = &damage.corrupt[1];
    assert_eq!((&missing.file, missing.offset), (&path, cut));
    let at_most = lost - 1;
    assert!(
        missing.what.contains(&format!(
            "numbered after 29 and before {second} (at most {at_most})"
        )),
        "{missing}"
    );
}

#[test]
fn only_the_first_few_are_listed_all_are_counted() {
    let dir = tempdir();
    let mut text = b"1\t{}\n".to_vec();
    for _ in 0..100 {
        text.extend_from_slice(b"garbage\n");
    }
    text.extend_from_slice(b"2\t{}\n");
    fs::write(seg(dir.path(), 1), &text).unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![1, 2]);
    assert_eq!(s.corrupt_records(), 100);
    assert_eq!(s.damage().corrupt.len(), REPORTED);
}

#[test]
fn a_line_longer_than_max_line_is_skipped_without_holding_it() {
    let dir = tempdir();
    let mut file = File::create(seg(dir.path(), 1)).unwrap();
    file.write_all(b"1\t{}\n2\t{\"a\":\"").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..(format::MAX_LINE >> 20) {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(b"\"}\n3\t{}\n").unwrap();
    drop(file);
    let mut s = open(dir.path(), 1 << 30);
    assert_eq!(seqs(&all(&mut s)), vec![1, 3]);
    // Not held, so not counted by its headers: by its bytes.
    assert_eq!(s.corrupt_records(), 0);
    assert_eq!(s.corrupt_bytes(), format::MAX_LINE as u64 + 11);
    assert!(s.damage().corrupt[0].what.contains("longer than"));
    assert!(
        s.append(
            4,
            &format!("{{\"a\":\"{}\"}}", "x".repeat(format::MAX_LINE))
        )
        .is_err()
    );
}

#[test]
fn the_ack_file() {
    let dir = tempdir();
    fs::write(seg(dir.path(), 1), b"1\t{}\n2\t{}\n3\t{}\n").unwrap();
    fs::write(dir.path().join("ack"), b"2\n").unwrap();
    fs::write(dir.path().join("ack.tmp"), b"3\n").unwrap();
    {
        let mut s = open(dir.path(), 1 << 20);
        assert!(
            !dir.path().join("ack.tmp").exists(),
            "stale ack.tmp removed"
        );
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![3]);
    }
    // Empty (a rename that a power cut did not let reach the disk).
    fs::write(dir.path().join("ack"), b"").unwrap();
    {
        let mut s = open(dir.path(), 1 << 20);
        assert_eq!(s.acked_seq(), 0);
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![1, 2, 3]);
        assert!(s.damage().is_clean());
    }
    // Unreadable: everything is sent again, and it is said.
    fs::write(dir.path().join("ack"), b"two\n").unwrap();
    {
        let mut s = open(dir.path(), 1 << 20);
        assert_eq!(seqs(&s.peek(10).unwrap()), vec![1, 2, 3]);
        assert_eq!(s.damage().ack_unreadable.as_deref(), Some("\"two\""));
        s.ack(1).unwrap();
    }
    assert_eq!(
        fs::read(dir.path().join("ack")).unwrap(),
        b"1\n",
        "replaced"
    );
    // Acknowledging everything after a deletion that did not happen.
    fs::write(dir.path().join("ack"), b"3\n").unwrap();
    let s = open(dir.path(), 1 << 20);
    assert_eq!((s.pending(), s.last_seq(), s.bytes()), (0, 3, 0));
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn segments_acknowledged_whole_are_deleted_unread() {
    let dir = tempdir();
    fs::write(seg(dir.path(), 1), b"garbage that is never read\n").unwrap();
    fs::write(seg(dir.path(), 5), b"5\t{}\n6\t{}\n").unwrap();
    fs::write(dir.path().join("ack"), b"5\n").unwrap();
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![6]);
    assert_eq!(s.corrupt_records(), 0);
    assert_eq!(
        segment_files(dir.path())
            .iter()
            .map(|f| f.0)
            .collect::<Vec<_>>(),
        vec![5]
    );
}

#[test]
fn a_last_segment_with_nothing_readable_is_appended_above_its_name() {
    let dir = tempdir();
    fs::write(seg(dir.path(), 1), b"1\t{}\n").unwrap();
    fs::write(seg(dir.path(), 50), b"garbage\n").unwrap();
    {
        let mut s = open(dir.path(), 1 << 20);
        assert_eq!(s.last_seq(), 50);
        s.append(51, "{\"n\":51}").unwrap();
        assert_eq!(seqs(&all(&mut s)), vec![1, 51]);
    }
    let mut s = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&all(&mut s)), vec![1, 51]);
    s.ack(51).unwrap();
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn full_until_acknowledged() {
    let dir = tempdir();
    let len = line_len(1);
    // One record a segment: acknowledging one frees its segment.
    let mut s = Spool::open(cfg(dir.path(), 1, 2 * len + 5)).unwrap();
    s.append(1, &json(1)).unwrap();
    s.append(2, &json(2)).unwrap();
    let before = disk_bytes(dir.path());
    match s.append(3, &json(3)) {
        Err(SpoolError::Full { max_bytes }) => assert_eq!(max_bytes, 2 * len + 5),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(disk_bytes(dir.path()), before, "nothing written");
    assert_eq!((s.pending(), s.last_seq(), s.bytes()), (2, 2, before));
    s.append(3, "{}").unwrap(); // a small record still fits
    assert!(matches!(
        s.append(4, &json(4)),
        Err(SpoolError::Full { .. })
    ));
    s.ack(1).unwrap();
    s.append(4, &json(4)).unwrap();
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![2, 3, 4]);
}

#[test]
fn bad_input_is_rejected() {
    let dir = tempdir();
    let mut s = open(dir.path(), 1 << 20);
    for bad in ["{}\n", "{\n}", "[]", "", " {}", "x"] {
        assert!(
            matches!(s.append(1, bad), Err(SpoolError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(s.append(0, "{}"), Err(SpoolError::Invalid(_))));
    assert!(matches!(
        s.append(MAX_SEQ + 1, "{}"),
        Err(SpoolError::Invalid(_))
    ));
    assert!(segment_files(dir.path()).is_empty(), "nothing written");
    assert_eq!((s.last_seq(), s.pending()), (0, 0));
    s.append(5, "{}").unwrap();
    assert!(matches!(s.append(5, "{}"), Err(SpoolError::Invalid(_))));
    assert!(matches!(s.append(4, "{}"), Err(SpoolError::Invalid(_))));
    s.append(6, "{}").unwrap();
    assert_eq!(seqs(&s.peek(10).unwrap()), vec![5, 6]);
    assert_eq!(disk_bytes(dir.path()), 10);
}

#[test]
fn a_second_open_is_locked_out() {
    let dir = tempdir();
    let mut first = open(dir.path(), 1 << 20);
    first.append(1, "{}").unwrap();
    match Spool::open(cfg(dir.path(), 1 << 20, 1 << 20)) {
        Err(SpoolError::Locked(path)) => assert_eq!(path, dir.path().join("lock")),
        other => panic!("expected Locked, got {other:?}"),
    }
    first.append(2, "{}").unwrap();
    assert_eq!(seqs(&first.peek(10).unwrap()), vec![1, 2]);
    drop(first);
    let mut second = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&second.peek(10).unwrap()), vec![1, 2]);
}

#[test]
fn a_folder_that_cannot_be_made_is_an_error() {
    let dir = tempdir();
    fs::write(dir.path().join("file"), b"").unwrap();
    assert!(matches!(
        Spool::open(cfg(&dir.path().join("file/spool"), 1 << 20, 1 << 20)),
        Err(SpoolError::Io(_))
    ));
}

#[test]
fn fsync_policies() {
    for fsync in [Fsync::Always, Fsync::Interval, Fsync::Never] {
        let dir = tempdir();
        let config = SpoolConfig {
            fsync,
            ..cfg(dir.path(), 3 * line_len(1), 1 << 20)
        };
        {
            let mut s = reopen(config.clone());
            for seq in 1..=10 {
                s.append(seq, &json(seq)).unwrap();
            }
            s.sync().unwrap();
            s.sync().unwrap(); // nothing changed
            assert_eq!(seqs(&s.peek(5).unwrap()), vec![1, 2, 3, 4, 5]);
            s.ack(4).unwrap();
            s.append(11, &json(11)).unwrap();
            assert_eq!(s.ledger.dirty_dir, fsync == Fsync::Interval, "{fsync:?}");
            s.sync().unwrap();
            assert!(
                !s.writer.dirty_data && !s.ledger.dirty_ack && !s.ledger.dirty_dir,
                "{fsync:?}"
            );
            s.ack(11).unwrap();
            s.sync().unwrap();
            s.append(12, &json(12)).unwrap();
        }
        let mut s = reopen(config);
        assert_eq!(seqs(&all(&mut s)), vec![12], "{fsync:?}");
        assert_eq!(s.acked_seq(), 11);
    }
}

#[test]
fn oldest_pending_age_is_an_upper_bound_without_reading() {
    let dir = tempdir();
    let mut s = open(dir.path(), 1 << 20);
    let start = SystemTime::now();
    s.append(1, "{}").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let age = s.oldest_pending_age().unwrap();
    assert!(age >= Duration::from_millis(30), "{age:?}");
    assert!(age <= start.elapsed().unwrap());
    s.ack(1).unwrap();
    assert_eq!(s.oldest_pending_age(), None);
    s.append(2, "{}").unwrap();
    assert!(s.oldest_pending_age().unwrap() < Duration::from_millis(30));
    drop(s);
    // After a restart: dated by the segment file.
    std::thread::sleep(Duration::from_millis(20));
    let s = open(dir.path(), 1 << 20);
    assert!(s.oldest_pending_age().unwrap() >= Duration::from_millis(20));
}

#[test]
fn the_age_index_stays_small_and_pessimistic() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let mut ages = Ages::new();
    // A million records over 20,000 seconds: at most MARKS marks.
    for seq in 1..=1_000_000u64 {
        ages.note(seq, t0 + Duration::from_millis(seq * 20));
    }
    assert!(ages.marks.len() <= MARKS, "{}", ages.marks.len());
    assert!(ages.step <= Duration::from_secs(16), "{:?}", ages.step);
    // The mark covering a record is never after it, and not much before.
    for oldest in [1u64, 77_777, 500_000, 999_999] {
        ages.release(oldest);
        let (seq, at) = ages.marks[0];
        assert!(seq <= oldest);
        let appended = t0 + Duration::from_millis(oldest * 20);
        assert!(at <= appended);
        assert!(
            appended.duration_since(at).unwrap() < 2 * ages.step,
            "{oldest}"
        );
    }
}

/// Set in the child process of the SIGKILL tests, to the spool's folder.
const CHILD_DIR: &str = "SPOOL_TEST_CHILD_DIR";

/// The child process of `survives_sigkill_mid_append` (does nothing on its
/// own): appends, acknowledging every tenth, printing each seq once
/// `append` returned, until killed.
#[test]
fn sigkill_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let mut s = open(Path::new(&dir), 4096);
    let mut out = std::io::stdout().lock();
    for seq in 1.. {
        // Records of varying size, some large, so that a kill can land
        // inside a write.
        let body = "x".repeat((seq as usize * 7919) % 200_000);
        s.append(seq, &format!("{{\"seq\":{seq},\"body\":\"{body}\"}}"))
            .unwrap();
        if seq % 10 == 0 {
            s.ack(seq - 5).unwrap();
        }
        writeln!(out, "{seq}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn survives_sigkill_mid_append() {
    use std::process::{Command, Stdio};
    for round in 0..3 {
        let dir = tempdir();
        let module = module_path!().split_once("::").unwrap().1;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &format!("{module}::sigkill_child"),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut returned = 0u64;
        let target = 40 + round * 37;
        let mut line = String::new();
        while returned < target {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the child died");
            if let Ok(seq) = line.trim().parse() {
                returned = seq;
            }
        }
        child.kill().unwrap(); // SIGKILL, most likely inside an append
        child.wait().unwrap();
        // Every append that returned is there, in order; at most the one in
        // flight more; nothing acknowledged is delivered again.
        let mut s = open(dir.path(), 4096);
        let acked = s.acked_seq();
        assert!(acked + 15 >= returned, "{acked} {returned}");
        let got = all(&mut s);
        assert_eq!(got.first().map(|r| r.seq), Some(acked + 1));
        // The child may have gone on a little after the line read last.
        let last = got.last().unwrap().seq;
        assert!(last >= returned, "{last} {returned}");
        assert_eq!(seqs(&got), (acked + 1..=last).collect::<Vec<_>>());
        for r in &got {
            assert!(r.json.starts_with(&format!("{{\"seq\":{},", r.seq)));
        }
        assert_eq!(s.corrupt_records(), 0);
        assert_eq!(s.bytes(), disk_bytes(dir.path()));
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// A record `gap` above the last one, with a body of `len` bytes.
        Append {
            gap: u8,
            len: u8,
        },
        Peek(u8),
        /// Acknowledges the `n`-th record of the last peek.
        AckPeeked(u8),
        /// Acknowledges `acked + delta` (below, between or beyond records).
        Ack(i8),
        Sync,
        /// Dropped without sync (a crash of the process), then opened.
        Reopen,
        /// A crash inside a write: part of a record at the end of the last
        /// segment, then opened.
        TornReopen(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..3u8, 0..60u8).prop_map(|(gap, len)| Op::Append { gap, len }),
            4 => (0..12u8).prop_map(Op::Peek),
            3 => any::<u8>().prop_map(Op::AckPeeked),
            2 => (-3..12i8).prop_map(Op::Ack),
            1 => Just(Op::Sync),
            1 => Just(Op::Reopen),
            1 => (1..30u8).prop_map(Op::TornReopen),
        ]
    }

    fn body(seq: u64, len: u8) -> String {
        const PIECES: [&str; 5] = ["a", "é", "😀", "\\t", " "];
        let text: String = (0..len)
            .map(|i| PIECES[(seq as usize + i as usize) % 5])
            .collect();
        format!("{{\"seq\":{seq},\"t\":\"{text}\"}}")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

        /// The spool against a model: the records appended (`append`
        /// returned Ok) and the highest acknowledged number (`ack` returned
        /// Ok). Process crashes lose nothing that was written, so the model
        /// is exact: every peek, also after any crash and reopen, returns
        /// the model's records above the acknowledged number, oldest first,
        /// unchanged. So no acknowledged record is ever delivered again, no
        /// unacknowledged one is lost, order is kept; what at-least-once
        /// allows to be delivered twice is exactly what was peeked and not
        /// acknowledged.
        #[test]
        fn matches_a_model(
            ops in proptest::collection::vec(op(), 1..150),
            segment_bytes in 1..400u64,
            max_bytes in 200..4000u64,
            fsync in prop_oneof![Just(Fsync::Never), Just(Fsync::Interval), Just(Fsync::Always)],
        ) {
            let dir = tempdir();
            let config = SpoolConfig { fsync, ..cfg(dir.path(), segment_bytes, max_bytes) };
            let mut s = reopen(config.clone());
            let mut model: VecDeque<Record> = VecDeque::new();
            let (mut last, mut acked) = (0u64, 0u64);
            let mut peeked: Vec<Record> = Vec::new();
            for (step, op) in ops.iter().enumerate() {
                match op {
                    Op::Append { gap, len } => {
                        let seq = last + 1 + u64::from(*gap);
                        let text = body(seq, *len);
                        let size = format::encode(seq, &text).len() as u64;
                        match s.append(seq, &text) {
                            Ok(()) => {
                                model.push_back(Record { seq, json: text });
                                last = seq;
                            }
                            Err(SpoolError::Full { .. }) => {
                                prop_assert!(s.bytes() + size > max_bytes, "step {}", step);
                            }
                            Err(e) => prop_assert!(false, "step {}: {}", step, e),
                        }
                    }
                    Op::Peek(max) => {
                        peeked = s.peek(*max as usize).unwrap();
                        let want: Vec<Record> = model.iter().take(*max as usize).cloned().collect();
                        prop_assert_eq!(&peeked, &want, "step {}", step);
                    }
                    Op::AckPeeked(n) => {
                        if let Some(r) = peeked.get(*n as usize % peeked.len().max(1)) {
                            s.ack(r.seq).unwrap();
                            acked = acked.max(r.seq.min(last));
                        }
                    }
                    Op::Ack(delta) => {
                        let seq = (acked as i64 + i64::from(*delta)).max(0) as u64;
                        s.ack(seq).unwrap();
                        acked = acked.max(seq.min(last));
                    }
                    Op::Sync => s.sync().unwrap(),
                    Op::Reopen => {
                        drop(s);
                        s = reopen(config.clone());
                        peeked.clear();
                    }
                    Op::TornReopen(cut) => {
                        drop(s);
                        if let Some(&(name, _)) = segment_files(dir.path()).last() {
                            let line = format::encode(last + 1, &body(last + 1, 40));
                            let cut = (*cut as usize).min(line.len() - 1);
                            append_to_file(&seg(dir.path(), name), &line.as_bytes()[..cut]);
                        }
                        s = reopen(config.clone());
                        prop_assert_eq!(s.corrupt_records(), 0);
                        peeked.clear();
                    }
                }
                while model.front().is_some_and(|r| r.seq <= acked) {
                    model.pop_front();
                }
                prop_assert_eq!(s.last_seq(), last, "step {}", step);
                prop_assert_eq!(s.acked_seq(), acked, "step {}", step);
                prop_assert_eq!(s.pending(), model.len() as u64, "step {}", step);
                prop_assert_eq!(s.oldest_pending_age().is_some(), !model.is_empty());
                prop_assert_eq!(s.bytes(), disk_bytes(dir.path()), "step {}", step);
                prop_assert_eq!(s.corrupt_records(), 0);
                // Fully acknowledged segments are gone: the first segment on
                // disk holds the oldest unacknowledged record.
                let files = segment_files(dir.path());
                if let Some(first) = files.first() {
                    let oldest = model.front().map(|r| r.seq);
                    prop_assert!(oldest.is_some_and(|o| o >= first.0), "step {}", step);
                    prop_assert!(files.get(1).is_none_or(|f| oldest.unwrap() < f.0), "step {}", step);
                }
            }
            drop(s);
            let mut s = reopen(config);
            prop_assert_eq!(all(&mut s), model.iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(pairs(&all(&mut s)), reference(dir.path(), acked).0);
        }

        /// One byte of one segment changed to any other value: the records
        /// delivered are all the records (acknowledged ones included) but
        /// those the byte touches — the record it is in, and the next one
        /// when it is that record's newline (the two lines merge), and the
        /// one before it when it is in the record's sequence number (see
        /// the module documentation) — in order and unchanged; a touched
        /// record may also be delivered changed (its own JSON under another
        /// number, or another valid JSON under its own), never anything else.
        #[test]
        fn one_changed_byte_costs_at_most_the_records_it_touches(
            n in 1..40u64,
            segment_bytes in 30..400u64,
            acked_at in 0..40u64,
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
            aim in 0..3u8,
        ) {
            let dir = tempdir();
            let mut original = Vec::new();
            {
                let mut s = open(dir.path(), segment_bytes);
                for i in 1..=n {
                    let seq = i * 3 + i % 2; // gaps, like a real sink's
                    let text = body(seq, (i * 7 % 30) as u8);
                    s.append(seq, &text).unwrap();
                    original.push(Record { seq, json: text });
                }
                let acked = original[(acked_at % n) as usize].seq;
                if acked_at < n {
                    s.ack(acked).unwrap();
                }
            }
            // Where every byte is: (segment, offset) -> record index.
            let files = segment_files(dir.path());
            // A third of the cases aim at sequence numbers, with a digit.
            let mut bytes = Vec::new();
            for &(name, _) in &files {
                let text = fs::read(seg(dir.path(), name)).unwrap();
                let mut in_header = true;
                for (off, &b) in text.iter().enumerate() {
                    in_header &= b != b'\t';
                    if aim > 0 || in_header {
                        bytes.push((name, off as u64));
                    }
                    in_header |= b == b'\n';
                }
            }
            prop_assume!(!bytes.is_empty());
            let value = if aim == 0 { b'0' + value % 10 } else { value };
            let (name, off) = bytes[at.index(bytes.len())];
            let path = seg(dir.path(), name);
            let mut text = fs::read(&path).unwrap();
            prop_assume!(text[off as usize] != value);
            // The record the byte is in and what it is in it.
            let line_start = text[..off as usize].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let line_end = off as usize + text[off as usize..].iter().position(|&b| b == b'\n').unwrap();
            let seq: u64 = std::str::from_utf8(&text[line_start..line_end]).unwrap()
                .split('\t').next().unwrap().parse().unwrap();
            let i = original.iter().position(|r| r.seq == seq).unwrap();
            let in_seq = (off as usize) < line_start + seq.to_string().len();
            let is_newline = off as usize == line_end;
            let mut touched = vec![i];
            if is_newline && line_end + 1 < text.len() {
                touched.push(i + 1);
            }
            if in_seq && line_start > 0 {
                touched.push(i - 1);
            }
            text[off as usize] = value;
            fs::write(&path, &text).unwrap();

            let mut s = open(dir.path(), segment_bytes);
            let acked = s.acked_seq();
            let got = all(&mut s);
            prop_assert_eq!(pairs(&got), reference(dir.path(), acked).0);
            prop_assert_eq!(s.pending(), got.len() as u64);
            prop_assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
            // Untouched records above the acknowledged number: all there.
            for (k, r) in original.iter().enumerate() {
                if r.seq > acked && !touched.contains(&k) {
                    prop_assert!(got.contains(r), "lost untouched {:?} (touched {:?})", r, touched);
                }
            }
            // Nothing else than untouched records and changed touched ones.
            for r in &got {
                let untouched = original.iter().enumerate().any(|(k, o)| o == r && !touched.contains(&k));
                let changed = touched.iter().any(|&k| original[k].seq == r.seq || original[k].json == r.json);
                prop_assert!(untouched || changed, "unexpected {:?}", r);
            }
            prop_assert!(s.corrupt_records() <= 2);
            let lost = original
                .iter()
                .filter(|r| r.seq > acked && !got.iter().any(|g| g.seq == r.seq || g.json == r.json))
                .count();
            prop_assert!(lost <= touched.len());
            if lost > 0 {
                prop_assert!(!s.damage().is_clean());
            }
        }

        /// The streaming reader and the reference reader agree on lines of
        /// any shape, also after acknowledging part and reopening.
        #[test]
        fn the_reader_agrees_with_the_reference(
            segments in proptest::collection::vec(
                (0..6u64, proptest::collection::vec(line(), 0..12), proptest::option::of(1..60u64)),
                1..5,
            ),
            acked in 0..60u64,
            ack_at in any::<prop::sample::Index>(),
        ) {
            let dir = tempdir();
            let mut name = 0;
            for (gap, lines, torn) in &segments {
                name += 1 + gap * 5;
                let mut text: Vec<u8> = lines.concat();
                if let Some(seq) = torn {
                    // Cut short: torn in the last segment, corrupt elsewhere.
                    text.extend_from_slice(format!("{seq}\t{{\"torn\"").as_bytes());
                }
                fs::write(seg(dir.path(), name), text).unwrap();
            }
            fs::write(dir.path().join("ack"), format!("{acked}\n")).unwrap();
            let (want, corrupt) = reference(dir.path(), acked);
            let mut s = open(dir.path(), 1 << 20);
            prop_assert_eq!(s.acked_seq(), acked);
            prop_assert_eq!(cost(&s), corrupt);
            prop_assert_eq!(s.pending(), want.len() as u64);
            // Peeking in small steps reads the same.
            let mut got = Vec::new();
            for max in [1usize, 3, 2, 5, 1000] {
                let batch = s.peek(max).unwrap();
                prop_assert!(batch.len() <= max);
                prop_assert_eq!(pairs(&batch), want.iter().take(max).cloned().collect::<Vec<_>>());
                got = batch;
            }
            prop_assert_eq!(pairs(&got), want.clone());
            prop_assert_eq!(s.bytes(), disk_bytes(dir.path()));
            if !want.is_empty() {
                let upto = want[ack_at.index(want.len())].0;
                s.ack(upto).unwrap();
                let rest: Vec<(u64, String)> = want.iter().filter(|r| r.0 > upto).cloned().collect();
                prop_assert_eq!(s.pending(), rest.len() as u64);
                prop_assert_eq!(pairs(&all(&mut s)), rest.clone());
                drop(s);
                let mut s = open(dir.path(), 1 << 20);
                prop_assert_eq!(pairs(&all(&mut s)), rest);
            }
        }
    }

    /// A line of a segment: a good record, or one of the ways one goes bad.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => (1..60u64).prop_map(|seq| format::encode(seq, &format!("{{\"n\":{seq}}}")).into_bytes()),
            1 => (1..60u64).prop_map(|seq| format!("{seq}\t{{\"n\":").into_bytes().into_iter().chain(*b"\n").collect()),
            1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(|mut v| { v.retain(|&b| b != b'\n'); v.push(b'\n'); v }),
            1 => (1..60u64).prop_map(|seq| format!("{seq}\t[]\n").into_bytes()),
        ]
    }
}
