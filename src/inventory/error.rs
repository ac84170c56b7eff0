//! Everything that can be wrong with an inventory. Each error names file, line and column (and
//! the host where one is involved) so the operator can go straight to it.

use std::io;
use std::path::PathBuf;

use super::location::SourcePosition;
use super::names::HostName;
use crate::message::{HostNames, Lines, Prefix};

/// Why a private key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityProblem {
    #[error("not a private key (no `-----BEGIN … PRIVATE KEY-----` line; is it the `.pub` file?)")]
    NotAPrivateKey,
    #[error("permissions {mode:04o} are too open: others can read the private key, and OpenSSH refuses such a key (chmod 600 it)")]
    TooOpen { mode: u32 },
}

/// An inventory that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read at all.
    #[error("{}: cannot read the inventory: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Larger than [`super::Inventory::MAX_BYTES`]: not read at all.
    #[error("{}: the inventory is {bytes} bytes, over the limit of 16 MiB (ten thousand hosts take under 1 MiB); is it the right file?", path.display())]
    TooLarge { path: PathBuf, bytes: u64 },

    /// Not UTF-8 text.
    #[error("{at}: not UTF-8 text (byte 0x{byte:02x}); save the inventory as UTF-8")]
    NotUtf8 { at: SourcePosition, byte: u8 },

    /// An identity file that OpenSSH would not use either.
    #[error("{at}: host `{host}`: identity file {}: {problem}", path.display())]
    IdentityNotUsable {
        at: SourcePosition,
        host: HostName,
        path: PathBuf,
        problem: IdentityProblem,
    },

    /// Host keys could only be refused: no known_hosts file exists and new keys are not
    /// accepted.
    #[error("{}known_hosts file {files} does not exist, and new host keys are not accepted, so every host would be refused; create it (ssh-keyscan), point `ssh.known_hosts` (or --known-hosts) at the right one, or pass --accept-new-host-keys", at.as_ref().map_or_else(|| "command line --known-hosts: ".to_string(), |at| format!("{at}: ")))]
    KnownHostsMissing {
        at: Option<SourcePosition>,
        /// The files, `a` or `a, b` (none of them exists).
        files: String,
    },

    /// YAML syntax, unknown key, wrong type or missing required key, as found by the parser.
    #[error("{at}: {message}")]
    Yaml { at: SourcePosition, message: String },

    /// A value of the right type that is still not acceptable (version, address, name, …).
    #[error("{at}: {}invalid {field} `{value}`: {reason}", Prefix("host", host))]
    InvalidValue {
        at: SourcePosition,
        host: Option<HostName>,
        /// The key, as a path from the document root (`hosts[].address`).
        field: &'static str,
        value: String,
        reason: String,
    },

    /// A setting that has no value anywhere it may be given.
    #[error("{at}: {}missing `{field}`: {hint}", Prefix("host", host))]
    Missing {
        at: SourcePosition,
        host: Option<HostName>,
        field: &'static str,
        hint: &'static str,
    },

    /// Two hosts with one name.
    #[error("{at}: duplicate host name `{host}` (first defined at {first})")]
    DuplicateHost {
        at: SourcePosition,
        host: HostName,
        first: SourcePosition,
    },

    /// Two groups with one name.
    #[error("{at}: duplicate group name `{group}` (first defined at {first})")]
    DuplicateGroup {
        at: SourcePosition,
        group: String,
        first: SourcePosition,
    },

    /// A host lists a group that `groups:` does not define.
    #[error("{at}: host `{host}`: unknown group `{group}` (defined groups: {known})")]
    UnknownGroup {
        at: SourcePosition,
        host: HostName,
        group: String,
        known: String,
    },

    /// The identity file named for a host cannot be read.
    #[error("{at}: host `{host}`: cannot read identity file {}: {source}", path.display())]
    IdentityFile {
        at: SourcePosition,
        host: HostName,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The ssh_config named (or the default `~/.ssh/config`) cannot be used.
    #[error("{}ssh_config: {source}", at.as_ref().map_or_else(String::new, |at| format!("{at}: ")))]
    SshConfig {
        /// Where `ssh.config` is set; `None` for the command line or the default file.
        at: Option<SourcePosition>,
        #[source]
        source: Box<super::ssh_config::SshConfigError>,
    },

    /// A host's address could not be resolved in the ssh_config.
    #[error("{at}: host `{host}`: ssh_config: {source}")]
    SshConfigHost {
        at: SourcePosition,
        host: HostName,
        #[source]
        source: Box<super::ssh_config::SshConfigError>,
    },

    /// A jump chain that cannot be used (syntax, a hop that does not resolve, a loop).
    #[error("{at}: host `{host}`: proxy_jump: {problem}")]
    Jump {
        at: SourcePosition,
        host: HostName,
        #[source]
        problem: Box<super::jump::JumpProblem>,
    },

    /// The ssh_config sends a host through a proxy command, which we cannot run: connecting
    /// directly instead could reach another machine or none at all.
    #[error("{at}: host `{host}`: the ssh_config says to connect through `{how}` ({config_at}); {what} is not supported, and connecting directly instead is refused; reach the host directly (`ProxyJump none` for it) or through jump hosts (`ProxyJump`, or `proxy_jump` in the inventory)")]
    ProxyUnsupported {
        at: SourcePosition,
        host: HostName,
        /// `ProxyJump` or `ProxyCommand`.
        what: &'static str,
        how: String,
        config_at: super::ssh_config::ConfigLine,
    },

    /// Hosts whose ssh_config resolutions name different known_hosts files.
    #[error("{config_at}: ssh_config gives host `{host}` UserKnownHostsFile {value}, but host `{other}` {other_value}; this tool checks one set of known_hosts files per run: set `ssh.known_hosts` in the inventory (or --known-hosts)")]
    KnownHostsDisagree {
        config_at: super::ssh_config::ConfigLine,
        host: HostName,
        value: String,
        other: HostName,
        other_value: String,
    },

    /// `UserKnownHostsFile none`: no file to check host keys against.
    #[error("{config_at}: ssh_config gives host `{host}` `UserKnownHostsFile none`, which leaves no file to check host keys against; set `ssh.known_hosts` in the inventory (or --known-hosts)")]
    KnownHostsNone {
        config_at: super::ssh_config::ConfigLine,
        host: HostName,
    },

    /// The url release source has no checksums for the target version.
    #[error(
        "{at}: no sha256 entry for target version {version} (the url source needs one per version)"
    )]
    MissingSha256 { at: SourcePosition, version: String },

    /// The local release folder lacks what the target version needs.
    #[error("{at}: local release folder {}: {problem}", folder.display())]
    ReleaseFolder {
        at: SourcePosition,
        folder: PathBuf,
        problem: String,
    },

    /// A `--var key=value` override from the command line is not usable.
    #[error("command line --var {key}: {reason}")]
    Override {
        key: String,
        #[source]
        reason: super::names::NameError,
    },

    /// One error that every host of `more` has too, word for word but for the host's name
    /// (a `defaults:` value wrong for every host): said once, with the others named after it.
    #[error("{error}; the same for {}", HostNames(more))]
    Repeated {
        error: Box<InventoryError>,
        more: Vec<HostName>,
    },

    /// Several of the above; each is printed on its own line.
    #[error("{}", Lines(errors))]
    Several { errors: Vec<InventoryError> },
}

impl InventoryError {
    /// The individual errors (one, or each of `Several`).
    pub fn errors(&self) -> Vec<&InventoryError> {
        match self {
            InventoryError::Several { errors } => errors.iter().collect(),
            single => vec![single],
        }
    }

    /// Where the error is, when it comes from the file.
    pub fn position(&self) -> Option<&SourcePosition> {
        match self {
            InventoryError::Yaml { at, .. }
            | InventoryError::InvalidValue { at, .. }
            | InventoryError::Missing { at, .. }
            | InventoryError::DuplicateHost { at, .. }
            | InventoryError::DuplicateGroup { at, .. }
            | InventoryError::UnknownGroup { at, .. }
            | InventoryError::IdentityFile { at, .. }
            | InventoryError::IdentityNotUsable { at, .. }
            | InventoryError::NotUtf8 { at, .. }
            | InventoryError::MissingSha256 { at, .. }
            | InventoryError::ReleaseFolder { at, .. }
            | InventoryError::SshConfigHost { at, .. }
            | InventoryError::ProxyUnsupported { at, .. }
            | InventoryError::Jump { at, .. } => Some(at),
            InventoryError::SshConfig { at, .. } => at.as_ref(),
            InventoryError::Repeated { error, .. } => error.position(),
            InventoryError::Read { .. }
            | InventoryError::TooLarge { .. }
            | InventoryError::KnownHostsMissing { .. }
            | InventoryError::Override { .. }
            | InventoryError::KnownHostsDisagree { .. }
            | InventoryError::KnownHostsNone { .. }
            | InventoryError::Several { .. } => None,
        }
    }

    /// The host an error is about, if any.
    fn host(&self) -> Option<&HostName> {
        match self {
            InventoryError::InvalidValue { host, .. } | InventoryError::Missing { host, .. } => {
                host.as_ref()
            }
            InventoryError::UnknownGroup { host, .. }
            | InventoryError::IdentityFile { host, .. }
            | InventoryError::IdentityNotUsable { host, .. }
            | InventoryError::SshConfigHost { host, .. }
            | InventoryError::ProxyUnsupported { host, .. }
            | InventoryError::Jump { host, .. } => Some(host),
            _ => None,
        }
    }

    /// One error for a list: the error itself when alone; an error repeated for many hosts
    /// once.
    pub(crate) fn from_list(errors: Vec<InventoryError>) -> Option<InventoryError> {
        let mut errors = merge_repeated(errors);
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(InventoryError::Several { errors }),
        }
    }
}

/// Errors that differ only by the host's name, merged into the first of them, in order.
fn merge_repeated(errors: Vec<InventoryError>) -> Vec<InventoryError> {
    let mut merged: Vec<InventoryError> = Vec::with_capacity(errors.len());
    let mut first_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for error in errors {
        let Some(host) = error.host().cloned() else {
            merged.push(error);
            continue;
        };
        let without_host = error
            .to_string()
            .replacen(&format!("host `{host}`: "), "", 1);
        match first_of.get(&without_host) {
            Some(&at) => match &mut merged[at] {
                InventoryError::Repeated { more, .. } => more.push(host),
                first => {
                    let placeholder = InventoryError::Several { errors: Vec::new() };
                    let first_error = std::mem::replace(first, placeholder);
                    *first = InventoryError::Repeated {
                        error: Box::new(first_error),
                        more: vec![host],
                    };
                }
            },
            None => {
                first_of.insert(without_host, merged.len());
                merged.push(error);
            }
        }
    }
    merged
}
