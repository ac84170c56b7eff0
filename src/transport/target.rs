//! Where and how to connect: one [`Target`] per host, one [`SshOptions`] per run.

use std::path::PathBuf;
use std::time::Duration;

use crate::inventory::HostName;

/// One host to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host's name in the inventory, used in every message.
    pub name: HostName,
    /// The address dialled and looked up in known_hosts (a name or an IP address).
    pub address: String,
    /// The SSH port.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// How to authenticate.
    pub identity: Identity,
    /// The jump hosts to go through, first to last; empty to connect directly.
    pub jumps: Vec<Hop>,
    /// The user every command runs as, through `sudo -n -u USER` (uploads are placed by that
    /// user too); `None`: as the login.
    pub become_user: Option<String>,
}

/// A jump host: connected to like a host (its key checked against known_hosts before login),
/// then asked to open a `direct-tcpip` channel to the next hop or the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    /// The hop's name in the chain, used in every message.
    pub name: HostName,
    /// The address dialled (by the previous hop) and looked up in known_hosts.
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity: Identity,
}

impl Hop {
    /// `address:port` as dialled (IPv6 in brackets).
    pub fn endpoint(&self) -> String {
        endpoint(&self.address, self.port)
    }
}

impl Target {
    /// `address:port` as dialled (IPv6 in brackets).
    pub fn endpoint(&self) -> String {
        endpoint(&self.address, self.port)
    }
}

fn endpoint(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// How to prove who we are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An unencrypted private key file (encrypted keys go through the agent).
    File(PathBuf),
    /// The ssh-agent at `SSH_AUTH_SOCK`; every key it holds is tried in turn.
    Agent,
}

/// What to do with a host key that known_hosts does not list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse it (the default): the operator adds it after checking the fingerprint.
    #[default]
    Strict,
    /// Trust it and append it to known_hosts. Changed and revoked keys are still refused.
    AcceptNew,
}

/// Settings shared by every connection of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// The known_hosts file to check host keys against (and append to, with `AcceptNew`).
    pub known_hosts: PathBuf,
    /// More known_hosts files read with it, as one set of lines (never written to).
    pub more_known_hosts: Vec<PathBuf>,
    /// What to do with unknown host keys.
    pub policy: HostKeyPolicy,
    /// Deadline for TCP connect, SSH handshake and login together.
    pub connect_timeout: Duration,
    /// Channels open at once on one connection; real sshd allows 10 (`MaxSessions`).
    pub max_channels: usize,
}

impl SshOptions {
    /// The default connect deadline.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default channel cap: below OpenSSH's `MaxSessions 10`, leaving room for an operator's session.
    pub const DEFAULT_MAX_CHANNELS: usize = 8;

    /// Strict host key checking against `known_hosts`, with the default deadline and channel cap.
    pub fn new(known_hosts: impl Into<PathBuf>) -> Self {
        Self {
            known_hosts: known_hosts.into(),
            more_known_hosts: Vec::new(),
            policy: HostKeyPolicy::Strict,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            max_channels: Self::DEFAULT_MAX_CHANNELS,
        }
    }
}
