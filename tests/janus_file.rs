//! The JSON Lines file with a real Janus 1.1.2: a SIGKILL loses no line the
//! sink counted as written, and a full disk (a 64 KiB tmpfs that fills and
//! frees) leaves only whole lines, drops and counts the bulk lines, and
//! writes every session's `created` and `destroyed` once space returns.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn counter(i: &Value, name: &str) -> u64 {
    i["sinks"]["file"][name].as_u64().unwrap()
}

/// Every line of the file, each a whole JSON value (a partial last line is
/// a failure here, unlike `read_jsonl`).
fn whole_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a partial last line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn session_events(lines: &[Value], session: u64, name: &str) -> usize {
    lines
        .iter()
        .filter(|e| e["type"] == 1 && e["session_id"] == session && e["event"]["name"] == name)
        .count()
}

#[test]
fn a_sigkill_loses_no_line_the_file_sink_counted_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    // flush_ms no longer holds lines back: a minute changes nothing.
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ path = \"{}\", flush_ms = 60000 }}\n",
            path.display()
        )),
        http_events: false,
        ..JanusOptions::default()
    });
    let mut ws = janus.ws();
    let sessions: Vec<u64> = (0..20)
        .map(|_| {
            let s = ws.create_session();
            ws.destroy(s);
            s
        })
        .collect();
    // Janus queues events for its handlers in order: once the marker is in
    // the file, every session's `destroyed` has been handed to the sink.
    let marker = send_marker(&janus);
    let mut sent = 0;
    assert!(
        wait_until(
            || {
                let i = info(&janus);
                sent = counter(&i, "sent");
                sent == counter(&i, "accepted") && has_marker(&read_jsonl(&path), &marker)
            },
            Duration::from_secs(10)
        ),
        "the sink never caught up with the marker: {}",
        info(&janus)
    );
    janus.kill();
    let lines = whole_lines(&path);
    assert!(
        lines.len() as u64 >= sent,
        "{} lines, {sent} sent",
        lines.len()
    );
    for s in sessions {
        assert_eq!(session_events(&lines, s, "created"), 1);
        assert_eq!(session_events(&lines, s, "destroyed"), 1);
    }
}

/// A tmpfs mounted for the test (as root, like `make test` and CI); the
/// test fails, saying why, when it cannot be mounted.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs a {size} tmpfs: mount failed ({}): {} -- run the tests as root",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_keeps_the_file_whole_and_every_ending_once_space_returns() {
    let fs = Tmpfs::mount("64k");
    let path = fs.0.path().join("events.jsonl");
    let filler = fs.0.path().join("filler");
    // 16 KiB left for the file: about 45 of the flood's lines.
    std::fs::write(&filler, vec![b'x'; 48 * 1024]).unwrap();
    let mut janus = Janus::start(JanusOptions {
        lifecycleevh_config: Some(format!(
            "general: {{ enabled = true }}\nfile: {{ path = \"{}\", flush_ms = 100 }}\n",
            path.display()
        )),
        http_events: false,
        ..JanusOptions::default()
    });
    // Append-only (where the file system allows it: Linux >= 6.0 for a
    // tmpfs): a sink that cut its file back, as one did after a write cut
    // short by the full disk, would fail here for sure (issue 16, finding
    // 13: a reader tailing the file saw the line, then the file shrink).
    assert!(wait_until(|| path.exists(), Duration::from_secs(10)));
    let append_only = Command::new("chattr").arg("+a").arg(&path).status();
    if !append_only.is_ok_and(|s| s.success()) {
        eprintln!(
            "note: chattr +a {} failed: only the size is watched",
            path.display()
        );
    }
    let mut longest = 0u64;
    let mut never_shrinks = || {
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            len >= longest,
            "the file shrank from {longest} to {len} bytes"
        );
        longest = len;
    };
    // A flood of bulk events fills the disk.
    let admin = janus.admin();
    let blob = "b".repeat(300);
    for n in 0..100 {
        admin.custom_event("flood", json!({"n": n, "blob": blob}));
    }
    assert!(wait_until(
        || {
            never_shrinks();
            let i = info(&janus);
            counter(&i, "errors") > 0 && counter(&i, "dropped") > 0
        },
        Duration::from_secs(10)
    ));
    // Sessions come and go while the disk is full: their endings wait.
    let mut ws = janus.ws();
    let sessions: Vec<u64> = (0..10)
        .map(|_| {
            let s = ws.create_session();
            ws.destroy(s);
            s
        })
        .collect();
    // The handler has them all (and so has offered them to the sink).
    let i = expect_info(
        &janus,
        "the 10 sessions created and ended",
        |i| i["tracker"]["created"] == 10 && i["tracker"]["endings"]["request"] == 10,
        Duration::from_secs(10),
    );
    assert_eq!(counter(&i, "dropped_lifecycle"), 0, "{i}");
    assert!(
        sessions
            .iter()
            .all(|s| session_events(&whole_lines(&path), *s, "destroyed") == 0),
        "the disk was full"
    );
    // Space returns: every created and destroyed is written, once.
    std::fs::remove_file(&filler).unwrap();
    assert!(wait_until(
        || {
            never_shrinks();
            let lines = whole_lines(&path);
            sessions
                .iter()
                .all(|s| session_events(&lines, *s, "destroyed") == 1)
        },
        Duration::from_secs(10)
    ));
    // The sink is done once every line it took is written or dropped (an
    // empty queue is not enough: its thread may hold a batch), and its
    // count of written lines is the file's, read after it.
    let mut seen = (Value::Null, Vec::new());
    let done = wait_until(
        || {
            let i = info(&janus);
            let lines = whole_lines(&path);
            let done = counter(&i, "queued") == 0
                && counter(&i, "retrying") == 0
                && counter(&i, "sent") + counter(&i, "dropped") == counter(&i, "accepted")
                && counter(&i, "sent") == lines.len() as u64;
            seen = (i, lines);
            done
        },
        Duration::from_secs(10),
    );
    let (i, lines) = seen;
    assert!(done, "the sink never finished: {i}");
    for s in &sessions {
        assert_eq!(session_events(&lines, *s, "created"), 1);
        assert_eq!(session_events(&lines, *s, "destroyed"), 1);
    }
    // Every line is in the file or counted as dropped; only bulk was lost.
    assert_eq!(counter(&i, "sent"), lines.len() as u64, "{i}");
    assert_eq!(
        counter(&i, "sent") + counter(&i, "dropped"),
        counter(&i, "accepted"),
        "{i}"
    );
    assert_eq!(counter(&i, "dropped_lifecycle"), 0, "{i}");
    assert!(janus.stop().success());
}
