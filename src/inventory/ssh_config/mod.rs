//! OpenSSH client configuration (`~/.ssh/config`, `-F FILE`): parsed once, then resolved per
//! host exactly as `ssh -G HOST` resolves it, for the keys we use: HostName, Port, User,
//! IdentityFile, IdentitiesOnly, IdentityAgent, ProxyJump (and ProxyCommand, to refuse it),
//! UserKnownHostsFile, StrictHostKeyChecking, ConnectTimeout; with `Host` patterns, `Match
//! host|originalhost|user|all`, `Include` and its globs. Pure but for reading the files.
//!
//! Differences from ssh, on purpose: `~` is `$HOME` (ssh takes the home folder from the
//! password database for most keys); the system file `/etc/ssh/ssh_config` is not read;
//! keywords we do not resolve are skipped, not checked (HostKeyAlias and CheckHostIP among
//! them); `Match` criteria other than those four, and `CanonicalizeHostname` on, are refused.

mod error;
mod expand;
mod include;
mod jump;
mod lexer;
mod parse;
mod pattern;
mod resolve;

use std::path::{Path, PathBuf};

pub use error::{ConfigLine, SshConfigError};
pub use jump::{Hop, Jump, JumpChain};
pub use parse::StrictHostKeyChecking;

/// Where `~`, `%d` and `%u` point, and the environment for `${VAR}`.
#[derive(Debug, Clone)]
pub struct Context {
    pub home: PathBuf,
    /// The local login name (`%u`, and the remote user when none is set).
    pub local_user: String,
    /// Looks up an environment variable.
    pub env: fn(&str) -> Option<String>,
}

impl Context {
    /// `$HOME`, the user of this process, the process environment.
    pub fn of_process() -> Context {
        Context {
            home: std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from),
            local_user: local_user(),
            env: |name| std::env::var(name).ok(),
        }
    }
}

/// The login name of this process's user, from the password database, else `$USER`.
fn local_user() -> String {
    let uid = rustix::process::getuid().as_raw().to_string();
    let from_passwd = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
            })
        });
    from_passwd
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".to_string())
}

/// A value and the line that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub at: ConfigLine,
}

/// A parsed ssh_config file and the files it includes.
#[derive(Debug, Clone)]
pub struct SshConfig {
    root: parse::ConfigFile,
    context: Context,
}

impl SshConfig {
    /// Reads `path` (as `ssh -F` does) and its includes; refuses what ssh would refuse and
    /// what we cannot evaluate, naming `file:line`.
    pub fn load(path: &Path, context: Context) -> Result<SshConfig, SshConfigError> {
        Ok(SshConfig {
            root: parse::read(path, &context, 0, false)?,
            context,
        })
    }

    /// [`SshConfig::load`] for the user's own `~/.ssh/config`, which ssh also refuses when
    /// someone else could have written it.
    pub fn load_default(path: &Path, context: Context) -> Result<SshConfig, SshConfigError> {
        Ok(SshConfig {
            root: parse::read(path, &context, 0, true)?,
            context,
        })
    }

    /// Where `~`, `%d` and `%u` point.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The settings for `host` (as given to `ssh`).
    pub fn resolve(&self, host: &str) -> Result<Resolved, SshConfigError> {
        resolve::resolve(&self.root, host, &self.context)
    }
}

/// One host's settings. `None` (or empty) means the config does not set the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The host name to connect to: `HostName` with `%h` expanded, else the host as given,
    /// lowercased (as ssh does).
    pub hostname: String,
    /// The `HostName` line that applied, unexpanded.
    pub hostname_set: Option<Setting<String>>,
    pub port: Option<Setting<u16>>,
    pub user: Option<Setting<String>>,
    /// `IdentityFile`s in order, as written (as `ssh -G` prints them).
    pub identity_files: Vec<Setting<String>>,
    /// The same, expanded (`~`, `%` tokens, `${VAR}`).
    pub identity_paths: Vec<Setting<PathBuf>>,
    pub identities_only: Option<Setting<bool>>,
    /// Expanded, but for `none`, `SSH_AUTH_SOCK` and `$NAME`.
    pub identity_agent: Option<Setting<String>>,
    pub proxy_jump: Option<Setting<Jump>>,
    /// `none` when a `ProxyJump` chain applies (as ssh records it).
    pub proxy_command: Option<Setting<String>>,
    /// Expanded, or `["none"]`.
    pub user_known_hosts_files: Option<Setting<Vec<String>>>,
    pub strict_host_key_checking: Option<Setting<StrictHostKeyChecking>>,
    /// Seconds; `Some(None)` for `none`.
    pub connect_timeout: Option<Setting<Option<u64>>>,
    /// `CanonicalizeHostname`: resolving fails when it is on.
    pub canonicalize_hostname: Option<Setting<bool>>,
}

impl Resolved {
    fn empty(host: &str) -> Resolved {
        Resolved {
            hostname: host.to_ascii_lowercase(),
            hostname_set: None,
            port: None,
            user: None,
            identity_files: Vec::new(),
            identity_paths: Vec::new(),
            identities_only: None,
            identity_agent: None,
            proxy_jump: None,
            proxy_command: None,
            user_known_hosts_files: None,
            strict_host_key_checking: None,
            connect_timeout: None,
            canonicalize_hostname: None,
        }
    }

    /// The jump chain ssh would go through, if any.
    pub fn jump(&self) -> Option<&Setting<Jump>> {
        self.proxy_jump
            .as_ref()
            .filter(|set| matches!(set.value, Jump::Via(_)))
    }

    /// The proxy command ssh would run, if any.
    pub fn proxy_command(&self) -> Option<&Setting<String>> {
        self.proxy_command
            .as_ref()
            .filter(|set| !set.value.eq_ignore_ascii_case("none"))
    }
}

#[cfg(test)]
mod tests;
