//! What a remote command returns, and what an upload sends.

use std::path::PathBuf;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(i32),
    /// It was killed by this signal (name without `SIG`, e.g. `KILL`).
    Signal(String),
    /// The channel closed without saying (e.g. sshd lost the process).
    Unknown,
}

/// Everything a remote command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Bytes written to standard output.
    pub stdout: Vec<u8>,
    /// Bytes written to standard error.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub exit: Exit,
}

impl CommandOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Status(0)
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Where upload content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// These bytes.
    Bytes(Vec<u8>),
    /// This local file, streamed (binaries can be large).
    File(PathBuf),
}

/// A file to place on a host, atomically: readers see the old file or the whole new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The content.
    pub source: Source,
    /// Absolute remote path of the final file; its folder must exist.
    pub remote_path: String,
    /// Permission bits of the final file, e.g. `0o755`.
    pub mode: u32,
}
