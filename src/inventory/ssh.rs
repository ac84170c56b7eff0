//! `ssh:` settings: host-key policy, timeouts and how many hosts are worked on at once.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;

/// SSH client settings, validated. Defaults are secure: known hosts are checked and unknown keys
/// refused unless `accept_new_host_keys` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSettings {
    /// Absolute path of the known_hosts file (new host keys are appended to it).
    pub known_hosts: PathBuf,
    /// More known_hosts files, read with the first as one set of lines (OpenSSH's
    /// `UserKnownHostsFile a b`; a list in `ssh.known_hosts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_known_hosts: Vec<PathBuf>,
    /// Record the keys of hosts not yet in `known_hosts` (a changed key is always refused).
    pub accept_new_host_keys: bool,
    pub connect_timeout: HumanDuration,
    /// Default timeout of a remote command when its step sets none.
    pub command_timeout: HumanDuration,
    /// At most this many hosts at once; `None` means every host (written as `0`).
    pub max_concurrency: Option<NonZeroUsize>,
    /// Where `known_hosts` was set (the start of the inventory when it was not), for errors.
    #[serde(skip)]
    pub known_hosts_at: Option<crate::inventory::SourcePosition>,
}

/// SSH settings the command line overrides (`--known-hosts`, `--accept-new-host-keys`,
/// `--concurrency`), over an inventory's or over those a plan recorded; and the ssh_config
/// to read (`-F`/`--ssh-config`, `none` for none) when an inventory loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOverrides {
    pub ssh_config: Option<PathBuf>,
    /// `--known-hosts`, once or more (empty: not given).
    pub known_hosts: Vec<PathBuf>,
    pub accept_new_host_keys: bool,
    pub max_concurrency: Option<NonZeroUsize>,
}

impl SshSettings {
    /// These settings under the command line's `overrides`.
    pub fn overridden(&self, overrides: &SshOverrides) -> SshSettings {
        let mut ssh = self.clone();
        let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or_else(|_| path.clone());
        if let Some((first, more)) = overrides.known_hosts.split_first() {
            ssh.known_hosts = absolute(first);
            ssh.more_known_hosts = more.iter().map(absolute).collect();
            ssh.known_hosts_at = None;
        }
        ssh.accept_new_host_keys |= overrides.accept_new_host_keys;
        ssh.max_concurrency = overrides.max_concurrency.or(ssh.max_concurrency);
        ssh
    }

    /// Every known_hosts file, the first (written to) first.
    pub fn known_hosts_files(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.known_hosts).chain(&self.more_known_hosts)
    }

    /// Host keys could only be refused: no known_hosts file exists and new keys are not
    /// accepted. Checked before any connection (the inventory loads without it, so that it
    /// can be checked on another machine than the controller).
    pub fn check_known_hosts(&self) -> Result<(), crate::inventory::InventoryError> {
        if self.accept_new_host_keys || self.known_hosts_files().any(|path| path.exists()) {
            return Ok(());
        }
        let files: Vec<String> = self
            .known_hosts_files()
            .map(|path| path.display().to_string())
            .collect();
        Err(crate::inventory::InventoryError::KnownHostsMissing {
            at: self.known_hosts_at.clone(),
            files: files.join(", "),
        })
    }

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
            more_known_hosts: Vec::new(),
            accept_new_host_keys: false,
            connect_timeout: SshSettings::DEFAULT_CONNECT_TIMEOUT,
            command_timeout: SshSettings::DEFAULT_COMMAND_TIMEOUT,
            max_concurrency: None,
            known_hosts_at: None,
        }
    }
}
