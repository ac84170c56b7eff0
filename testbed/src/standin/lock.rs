//! The execution lock `<config>/cluster.lock`: an flock held while a daemon or a `state`
//! command runs, so they cannot run at the same time on one config folder.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::release::{Era, Release};

/// File name of the lock inside the config folder.
pub const LOCK_FILE: &str = "cluster.lock";

/// A held lock; dropping it releases the flock and removes the file (as go-fs-lock does).
#[derive(Debug)]
pub struct ExecutionLock {
    file: Option<(File, PathBuf)>,
}

impl Drop for ExecutionLock {
    fn drop(&mut self) {
        if let Some((file, path)) = self.file.take() {
            let _ = std::fs::remove_file(&path);
            drop(file);
        }
    }
}

impl ExecutionLock {
    /// Takes the lock or fails with the release's own message.
    pub fn acquire(config_dir: &Path, release: &Release) -> Result<ExecutionLock> {
        if !config_dir.is_dir() {
            // Nothing to protect yet; the configuration load that follows reports the folder.
            return Ok(ExecutionLock { file: None });
        }
        let path = config_dir.join(LOCK_FILE);
        let failed = |reason: String| match release.era() {
            Era::Raft010 => Error::LockOld,
            Era::Modern => Error::LockModern {
                reason,
                path: path.clone(),
            },
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| failed(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => Ok(ExecutionLock {
                file: Some((file, path)),
            }),
            Err(TryLockError::WouldBlock) => Err(failed(format!(
                "lock {}: someone else has the lock",
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(failed(e.to_string())),
        }
    }
}
