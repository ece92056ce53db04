//! The file sink: one event per line (JSON Lines), appended to `file.path`.
//!
//! - Lines are buffered and flushed at least every `file.flush_ms`, and when
//!   the handler stops.
//! - Rotation: at each flush the sink checks that `file.path` is still the
//!   file it has open (same device and inode); when it was renamed or removed
//!   (logrotate), the sink reopens the path, so new lines go to the new file.
//! - Errors (disk full, permissions) are reported in the log and in `info`;
//!   the file is reopened on the next write. A line cut short by a failed
//!   write is terminated before the next line, so every line stays parseable
//!   except that one.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Sink, SinkError};
use crate::recovery::FilePosition;

pub struct FileSink {
    path: PathBuf,
    out: Option<Open>,
    reopened: u64,
}

struct Open {
    writer: BufWriter<File>,
    dev: u64,
    ino: u64,
}

impl FileSink {
    /// Opens (creating it and its folder if needed) the file for appending.
    /// Fails when it cannot be opened: a config problem the caller reports.
    pub fn open(path: &Path) -> std::io::Result<FileSink> {
        let out = open(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            out: Some(out),
            reopened: 0,
        })
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>, String> {
        if self.out.is_none() {
            let opened = open(&self.path)
                .map_err(|e| format!("file sink: cannot open {}: {e}", self.path.display()))?;
            self.out = Some(opened);
            self.reopened += 1;
        }
        Ok(&mut self.out.as_mut().expect("opened above").writer)
    }

    /// True when `path` no longer names the file we have open.
    fn rotated(&self) -> bool {
        let Some(out) = &self.out else {
            return false;
        };
        match std::fs::metadata(&self.path) {
            Ok(m) => m.dev() != out.dev || m.ino() != out.ino,
            Err(_) => true,
        }
    }
}

fn open(path: &Path) -> std::io::Result<Open> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    let meta = file.metadata()?;
    // A line cut short by an earlier failure (or crash) must not swallow ours.
    if meta.len() > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(Open {
        writer: BufWriter::with_capacity(64 * 1024, file),
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

impl Sink for FileSink {
    fn deliver(&mut self, batch: &[&str], _deadline: Option<Instant>) -> Result<(), SinkError> {
        let path = self.path.clone();
        let w = self.writer().map_err(|message| SinkError {
            delivered: 0,
            message,
        })?;
        for (i, ev) in batch.iter().enumerate() {
            let written = w.write_all(ev.as_bytes()).and_then(|_| w.write_all(b"\n"));
            if let Err(e) = written {
                self.out = None;
                return Err(SinkError {
                    delivered: i,
                    message: format!("file sink: cannot write {}: {e}", path.display()),
                });
            }
        }
        // Delivered means handed to the kernel: a SIGKILL does not lose it.
        if let Err(e) = w.flush() {
            self.out = None;
            return Err(SinkError {
                delivered: 0,
                message: format!("file sink: cannot write {}: {e}", path.display()),
            });
        }
        Ok(())
    }

    fn position(&self) -> Option<FilePosition> {
        let out = self.out.as_ref()?;
        let len = out.writer.get_ref().metadata().ok()?.len();
        Some(FilePosition {
            dev: out.dev,
            ino: out.ino,
            len,
        })
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(out) = &mut self.out
            && let Err(e) = out.writer.flush()
        {
            self.out = None;
            return Err(format!(
                "file sink: cannot write {}: {e}",
                self.path.display()
            ));
        }
        if self.rotated() {
            self.out = None;
            self.writer()?;
        }
        Ok(())
    }

    fn describe(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("path".into(), json!(self.path.display().to_string()));
        m
    }
}

impl FileSink {
    /// How many times the file was reopened (rotation or errors).
    pub fn reopened(&self) -> u64 {
        self.reopened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> String {
        format!("{{\"session_id\":{n}}}")
    }

    impl FileSink {
        fn put(&mut self, events: &[String]) -> Result<(), SinkError> {
            let texts: Vec<&str> = events.iter().map(String::as_str).collect();
            self.deliver(&texts, None)
        }
    }

    #[test]
    fn appends_lines_and_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.jsonl");
        let mut sink = FileSink::open(&path).unwrap();
        sink.put(&[ev(1), ev(2)]).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"session_id\":1}\n{\"session_id\":2}\n"
        );
        // logrotate: rename away, the next flush notices and reopens the path.
        let rotated = dir.path().join("sub/events.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.put(&[ev(3)]).unwrap();
        sink.flush().unwrap();
        sink.put(&[ev(4)]).unwrap();
        sink.flush().unwrap();
        assert_eq!(sink.reopened(), 1);
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "{\"session_id\":1}\n{\"session_id\":2}\n{\"session_id\":3}\n"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"session_id\":4}\n"
        );
    }

    #[test]
    fn terminates_a_torn_last_line_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"torn\":").unwrap();
        let mut sink = FileSink::open(&path).unwrap();
        sink.put(&[ev(1)]).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"torn\":\n{\"session_id\":1}\n"
        );
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        // A path below a regular file can never be created.
        assert!(FileSink::open(&file.join("x.jsonl")).is_err());
    }
}
