//! What can be wrong with an ssh_config: every error names `file:line`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A line of an ssh_config file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLine {
    pub file: Arc<Path>,
    pub line: usize,
}

impl ConfigLine {
    pub fn new(file: &Path, line: usize) -> ConfigLine {
        ConfigLine {
            file: Arc::from(file),
            line,
        }
    }
}

impl fmt::Display for ConfigLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An ssh_config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    /// A file (the config or one it includes) cannot be read.
    #[error("cannot read ssh_config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `~/.ssh/config` or an included file someone else could have written (ssh refuses it).
    #[error("bad owner or permissions on {} (owner uid {owner}, mode {mode:04o}): ssh refuses it too; it must belong to you or root and be writable by its owner only (chmod go-w)", path.display())]
    Permissions {
        path: PathBuf,
        mode: u32,
        owner: u32,
    },

    /// A line ssh itself would refuse.
    #[error("{at}: {message}")]
    Syntax { at: ConfigLine, message: String },

    /// A `Match` criterion we do not evaluate.
    #[error("{at}: `Match {criterion}` is not supported (only host, originalhost, user and all); refusing to guess")]
    UnsupportedMatch { at: ConfigLine, criterion: String },

    /// A setting that applies to the host and changes where ssh connects in a way we do not
    /// follow.
    #[error("{at}: {what} is not supported; refusing to guess where ssh would connect")]
    Unsupported { at: ConfigLine, what: &'static str },

    /// A value whose `%` token or `${VAR}` cannot be expanded.
    #[error("{at}: cannot expand `{value}`: {reason}")]
    Expand {
        at: ConfigLine,
        value: String,
        reason: String,
    },
}
