//! `ssh:` settings: host-key policy, timeouts and how many hosts are worked on at once.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;

/// SSH client settings, validated. Defaults are secure: known hosts are checked and unknown keys
/// refused unless `accept_new_host_keys` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSettings {
    /// Absolute path of the known_hosts file.
    pub known_hosts: PathBuf,
    /// Record the keys of hosts not yet in `known_hosts` (a changed key is always refused).
    pub accept_new_host_keys: bool,
    pub connect_timeout: HumanDuration,
    /// Default timeout of a remote command when its step sets none.
    pub command_timeout: HumanDuration,
    /// At most this many hosts at once; `None` means every host (written as `0`).
    pub max_concurrency: Option<NonZeroUsize>,
}

impl SshSettings {
    pub const DEFAULT_CONNECT_TIMEOUT: HumanDuration = HumanDuration::from_secs(10);
    pub const DEFAULT_COMMAND_TIMEOUT: HumanDuration = HumanDuration::from_secs(120);

    /// `~/.ssh/known_hosts`, from `$HOME` (falls back to a relative path if HOME is unset,
    /// which then fails visibly when read rather than silently trusting anything).
    pub fn default_known_hosts() -> PathBuf {
        match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".ssh/known_hosts"),
            None => PathBuf::from(".ssh/known_hosts"),
        }
    }
}

impl Default for SshSettings {
    fn default() -> SshSettings {
        SshSettings {
            known_hosts: SshSettings::default_known_hosts(),
            accept_new_host_keys: false,
            connect_timeout: SshSettings::DEFAULT_CONNECT_TIMEOUT,
            command_timeout: SshSettings::DEFAULT_COMMAND_TIMEOUT,
            max_concurrency: None,
        }
    }
}
