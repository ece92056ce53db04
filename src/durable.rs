//! What reaches the disk when: the fsync policy shared by the spools and the
//! crash-recovery state, and replacing a small file atomically. The bottom
//! of the file-writing modules; imports nothing from the crate.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// When data is forced to disk (spools, crash-recovery state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every write.
    Always,
    /// Periodically (`spool_fsync_ms`, `checkpoint_ms`).
    Interval,
    /// Never: the OS writes back (safe against a Janus crash, not a power cut).
    Never,
}

impl Fsync {
    pub fn parse(text: &str) -> Option<Fsync> {
        match text.to_ascii_lowercase().as_str() {
            "always" => Some(Fsync::Always),
            "interval" => Some(Fsync::Interval),
            "never" => Some(Fsync::Never),
            _ => None,
        }
    }
}

/// Replaces `dir/name` with `data`: temporary file, (fsync,) rename, (fsync dir).
pub fn write_atomically(dir: &Path, name: &str, data: &[u8], sync: bool) -> io::Result<()> {
    write_atomically_with_mode(dir, name, data, sync, 0o666)
}

/// [`write_atomically`], creating the file with `mode` (less the umask).
pub fn write_atomically_with_mode(
    dir: &Path,
    name: &str,
    data: &[u8],
    sync: bool,
    mode: u32,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, dir.join(name))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
