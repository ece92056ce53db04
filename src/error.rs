//! Why the handler could not start: one error type for the whole init path,
//! flattened to a log line (and the Admin API's 414 answer) only at the C
//! entry point.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why `init` failed. Its `Display` is the line Janus's log shows.
#[derive(Debug)]
pub enum InitError {
    /// A syntax error, an unknown key or a bad value in the handler's file.
    Config(ConfigError),
    /// `general.enabled` is not true: the handler stays off, on purpose.
    Disabled { file: PathBuf },
    /// A setting names something that cannot be used: a file that cannot be
    /// opened, a folder that cannot be created, a certificate that cannot be
    /// read. Reported like a config error, naming the key.
    Unusable {
        file: PathBuf,
        key: String,
        /// What was tried, e.g. "cannot open /x.jsonl for appending".
        action: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A thread of the handler could not be started.
    Thread { name: String, source: io::Error },
    /// `init` was called while the handler runs.
    AlreadyRunning,
}

impl InitError {
    /// `key` of `file` names something that cannot be used.
    pub fn unusable(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        action: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> InitError {
        InitError::Unusable {
            file: file.into(),
            key: key.into(),
            action: action.into(),
            source: source.into(),
        }
    }
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Config(e) => e.fmt(f),
            InitError::Disabled { file } => write!(
                f,
                "{}: general.enabled is not true: lifecycleevh stays disabled",
                file.display()
            ),
            InitError::Unusable {
                file,
                key,
                action,
                source,
            } => write!(f, "{}: {key}: {action}: {source}", file.display()),
            InitError::Thread { name, source } => {
                write!(f, "lifecycleevh: cannot start the {name} thread: {source}")
            }
            InitError::AlreadyRunning => {
                f.write_str("lifecycleevh: init called twice; keeping the running instance")
            }
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::Config(e) => Some(e),
            InitError::Unusable { source, .. } => Some(source.as_ref()),
            InitError::Thread { source, .. } => Some(source),
            InitError::Disabled { .. } | InitError::AlreadyRunning => None,
        }
    }
}

impl From<ConfigError> for InitError {
    fn from(e: ConfigError) -> Self {
        InitError::Config(e)
    }
}
