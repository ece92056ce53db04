//! The `ack` file: the highest acknowledged sequence number, in decimal and
//! a newline, replaced atomically (`ack.tmp`, then a rename).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use super::format;
use crate::durable::write_atomically_mode;

const NAME: &str = "ack";
const TMP: &str = "ack.tmp";

/// What the `ack` file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acked {
    /// Up to this sequence number (0: nothing; also for a missing file, or
    /// an empty or zeroed one, which a power cut can leave).
    Upto(u64),
    /// Not a sequence number: what it holds (its first 64 bytes).
    Unreadable(String),
}

/// Reads the `ack` file; an I/O error other than "not found" is returned.
pub fn read(dir: &Path) -> io::Result<Acked> {
    let mut bytes = Vec::new();
    match File::open(dir.join(NAME)) {
        Ok(file) => file.take(64).read_to_end(&mut bytes)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Acked::Upto(0)),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim_matches(|c: char| c == '\0' || c.is_ascii_whitespace());
    if text.is_empty() {
        return Ok(Acked::Upto(0));
    }
    Ok(match format::parse_seq(text.as_bytes()) {
        Some(seq) => Acked::Upto(seq),
        None => Acked::Unreadable(text.to_string()),
    })
}

/// Replaces the `ack` file (fsyncing it and the folder if `sync`).
pub fn write(dir: &Path, seq: u64, sync: bool, mode: u32) -> io::Result<()> {
    write_atomically_mode(dir, NAME, format!("{seq}\n").as_bytes(), sync, mode)
}

/// Fsyncs the `ack` file (after a write without `sync`).
pub fn sync(dir: &Path) -> io::Result<()> {
    match File::open(dir.join(NAME)) {
        Ok(file) => file.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes an `ack.tmp` that a crash left (it may have another mode).
pub fn remove_stale(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(TMP)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_file_may_hold() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), Acked::Upto(0), "missing");
        for (text, want) in [
            (&b"17\n"[..], Acked::Upto(17)),
            (b"17", Acked::Upto(17)),
            (b"", Acked::Upto(0)),
            (b"\0\0\0\0", Acked::Upto(0)),
            (b"two\n", Acked::Unreadable("two".into())),
            (b"-1\n", Acked::Unreadable("-1".into())),
            (
                b"99999999999999999999\n",
                Acked::Unreadable("99999999999999999999".into()),
            ),
        ] {
            fs::write(dir.path().join(NAME), text).unwrap();
            assert_eq!(read(dir.path()).unwrap(), want, "{text:?}");
        }
        write(dir.path(), 42, true, 0o600).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Acked::Upto(42));
        assert_eq!(fs::read(dir.path().join(NAME)).unwrap(), b"42\n");
        assert!(!dir.path().join(TMP).exists());
    }
}
