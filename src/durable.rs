//! What reaches the disk when: the fsync policy shared by the spools and the
//! crash-recovery state, and replacing a small file atomically. The bottom
//! of the file-writing modules; imports nothing from the crate.

use std::fs::{self, File};
use std::io::{self, Write};
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

/// The folder mode that goes with a file mode: the same permissions, plus
/// search (x) wherever reading is allowed.
pub fn dir_mode(file_mode: u32) -> u32 {
    let mut mode = file_mode & 0o777;
    for (read, search) in [(0o400, 0o100), (0o040, 0o010), (0o004, 0o001)] {
        if mode & read != 0 {
            mode |= search;
        }
    }
    mode
}

/// Creates `dir` and its missing parents with the folder mode that goes with
/// `file_mode` (existing folders are left as they are).
pub fn create_dir_all(dir: &Path, file_mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode(file_mode))
        .create(dir)
}

/// Replaces `dir/name` with `data`: temporary file created with `mode` (less
/// the umask), (fsync,) rename, (fsync of the folder).
pub fn write_atomically_mode(
    dir: &Path,
    name: &str,
    data: &[u8],
    sync: bool,
    mode: u32,
) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = fs::OpenOptions::new()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_modes_follow_file_modes() {
        assert_eq!(dir_mode(0o640), 0o750);
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o644), 0o755);
    }
}
