//! What an ssh_config contributes to the inventory. Precedence, as Ansible's: a value the
//! inventory sets (on the host, under `defaults:` or `ssh:`) wins over the ssh_config's, and the
//! command line wins over both. Per host: HostName, Port, User, the first readable
//! IdentityFile. Per run (one value for every host): the first UserKnownHostsFile,
//! StrictHostKeyChecking (`accept-new` or `no` on every host → accept new keys), the longest
//! ConnectTimeout. A host's ProxyJump chain is followed unless the inventory sets `proxy_jump`
//! (`jump.rs` resolves the hops); a host the config sends through a ProxyCommand is refused.

use std::path::{Path, PathBuf};

use super::duration::HumanDuration;
use super::error::InventoryError;
use super::location::SourcePosition;
use super::names::HostName;
use super::ssh_config::{
    ConfigLine, Context, Jump, JumpChain, Resolved, Setting, SshConfig, StrictHostKeyChecking,
};

/// Which ssh_config a load reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ConfigSource {
    /// `-F FILE` / `--ssh-config FILE`.
    CommandLine(PathBuf),
    /// `ssh.config` in the inventory, resolved, and where it is set.
    Inventory { path: PathBuf, at: SourcePosition },
    /// `~/.ssh/config`, read only when it exists.
    Default(PathBuf),
    /// `none` on the command line or in the inventory.
    Ignored,
}

impl ConfigSource {
    /// The source for the command line's `-F` value and the inventory's `ssh.config` (already
    /// resolved against the inventory's folder), in that order of precedence.
    pub(super) fn choose(
        command_line: Option<&Path>,
        inventory: Option<(PathBuf, SourcePosition)>,
        home: &Path,
    ) -> ConfigSource {
        let is_none = |path: &Path| path.as_os_str() == "none";
        match (command_line, inventory) {
            (Some(path), _) if is_none(path) => ConfigSource::Ignored,
            (Some(path), _) => ConfigSource::CommandLine(path.to_path_buf()),
            (None, Some((path, _))) if is_none(&path) => ConfigSource::Ignored,
            (None, Some((path, at))) => ConfigSource::Inventory { path, at },
            (None, None) => ConfigSource::Default(home.join(".ssh/config")),
        }
    }

    /// The parsed config, `None` when there is none to read.
    pub(super) fn load(self, context: Context) -> Result<Option<SshConfig>, InventoryError> {
        let (path, at, load): (_, _, fn(&Path, Context) -> _) = match self {
            ConfigSource::Ignored => return Ok(None),
            ConfigSource::Default(path) if !path.exists() => return Ok(None),
            ConfigSource::Default(path) => (path, None, SshConfig::load_default),
            ConfigSource::CommandLine(path) => (path, None, SshConfig::load),
            ConfigSource::Inventory { path, at } => (path, Some(at), SshConfig::load),
        };
        load(&path, context)
            .map(Some)
            .map_err(|source| InventoryError::SshConfig {
                at,
                source: Box::new(source),
            })
    }
}

/// A config line as an inventory position (column 1), for errors that share the inventory's
/// variants.
pub(super) fn position(line: &ConfigLine) -> SourcePosition {
    SourcePosition {
        file: line.file.clone(),
        line: u32::try_from(line.line).unwrap_or(u32::MAX),
        column: 1,
    }
}

/// Refuses a host the config sends through a proxy command (a `ProxyJump` chain is followed).
pub(super) fn refuse_proxy(
    resolved: &Resolved,
    host: &HostName,
    at: &SourcePosition,
) -> Result<(), InventoryError> {
    if let Some(command) = resolved.proxy_command() {
        return Err(InventoryError::ProxyUnsupported {
            at: at.clone(),
            host: host.clone(),
            what: "ProxyCommand",
            how: command.value.clone(),
            config_at: command.at.clone(),
        });
    }
    Ok(())
}

/// The jump chain the config sends a host through, and the line that says so.
pub(super) fn jump_chain(resolved: &Resolved) -> Option<(&JumpChain, &ConfigLine)> {
    match resolved.jump()? {
        Setting {
            value: Jump::Via(chain),
            at,
        } => Some((chain, at)),
        Setting { .. } => None,
    }
}

/// An IdentityFile that cannot be opened, and why.
pub(super) type Unreadable<'a> = (&'a Setting<PathBuf>, std::io::Error);

/// The first IdentityFile that can be opened (ssh skips missing ones too); `Err` with the
/// first one's error when none can.
pub(super) fn first_identity(
    resolved: &Resolved,
) -> Option<Result<&Setting<PathBuf>, Unreadable<'_>>> {
    let first = resolved.identity_paths.first()?;
    let readable = resolved
        .identity_paths
        .iter()
        .find(|file| std::fs::File::open(&file.value).is_ok());
    Some(match readable {
        Some(file) => Ok(file),
        None => Err((
            first,
            std::fs::File::open(&first.value)
                .err()
                .unwrap_or_else(|| std::io::Error::other("cannot be opened")),
        )),
    })
}

/// The run-wide settings the config gives, for the inventory's `ssh:` to fall back on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RunWide {
    /// The `UserKnownHostsFile` files, in order.
    pub known_hosts: Option<(Vec<PathBuf>, SourcePosition)>,
    pub accept_new_host_keys: bool,
    pub connect_timeout: Option<HumanDuration>,
}

/// What every host's resolution says about the run-wide settings; `Err` when hosts name
/// different known_hosts files (one file per run) or `UserKnownHostsFile none`, unless
/// `known_hosts_fixed` (the inventory or the command line names the file).
pub(super) fn run_wide(
    hosts: &[(HostName, Resolved)],
    known_hosts_fixed: bool,
) -> Result<RunWide, InventoryError> {
    let mut wide = RunWide {
        accept_new_host_keys: !hosts.is_empty(),
        ..RunWide::default()
    };
    let mut first_known: Option<(&HostName, Option<&Setting<Vec<String>>>)> = None;
    for (host, resolved) in hosts {
        let known = resolved
            .user_known_hosts_files
            .as_ref()
            .filter(|_| !known_hosts_fixed);
        match first_known {
            None => first_known = Some((host, known)),
            Some((other, other_known)) => same_known_hosts((host, known), (other, other_known))?,
        }
        let strict = resolved.strict_host_key_checking.as_ref().map(|s| s.value);
        wide.accept_new_host_keys &= matches!(
            strict,
            Some(StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No)
        );
        if let Some(Setting {
            value: Some(seconds @ 1..),
            ..
        }) = resolved.connect_timeout
        {
            let timeout = HumanDuration::from_secs(seconds);
            wide.connect_timeout = Some(wide.connect_timeout.map_or(timeout, |t| t.max(timeout)));
        }
    }
    if let Some((host, Some(files))) = first_known {
        let first = files.value.first().map(String::as_str).unwrap_or("none");
        if first == "none" {
            return Err(InventoryError::KnownHostsNone {
                config_at: files.at.clone(),
                host: host.clone(),
            });
        }
        let paths = files.value.iter().map(PathBuf::from).collect();
        wide.known_hosts = Some((paths, position(&files.at)));
    }
    Ok(wide)
}

type KnownHostsOf<'a> = (&'a HostName, Option<&'a Setting<Vec<String>>>);

fn same_known_hosts(this: KnownHostsOf<'_>, other: KnownHostsOf<'_>) -> Result<(), InventoryError> {
    let first = |files: Option<&Setting<Vec<String>>>| {
        files.map_or_else(
            || "the default ~/.ssh/known_hosts".to_string(),
            |f| f.value.join(" "),
        )
    };
    let (value, other_value) = (first(this.1), first(other.1));
    if value == other_value {
        return Ok(());
    }
    let config_at = this
        .1
        .or(other.1)
        .map(|f| f.at.clone())
        .expect("one of them is set");
    Err(InventoryError::KnownHostsDisagree {
        config_at,
        host: this.0.clone(),
        value,
        other: other.0.clone(),
        other_value,
    })
}

/// This process's context for ssh_config: `$HOME`, the login name, the environment.
pub(super) fn context() -> Context {
    Context::of_process()
}
