//! The transport layer's error: every variant names the host it concerns.

use crate::inventory::HostName;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::known_hosts::KnownHostsError;
use super::quote::QuoteError;

/// Why talking to a host failed. Messages never contain key material or passphrases.
///
/// Library causes are boxed: russh's errors are large and this type travels in every `Result`.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {host} at {address}")]
    Connect {
        /// The host's name in the inventory.
        host: HostName,
        /// `address:port` as dialled.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect, SSH handshake and login did not finish within the connect deadline.
    #[error("connecting to {host} at {address} took longer than {after:?}")]
    Timeout {
        /// The host's name in the inventory.
        host: HostName,
        /// `address:port` as dialled.
        address: String,
        /// The deadline.
        after: Duration,
    },
    /// The SSH protocol failed during connect (key exchange, disconnect by the server, ...).
    #[error("SSH handshake with {host} at {address} failed")]
    Handshake {
        /// The host's name in the inventory.
        host: HostName,
        /// `address:port` as dialled.
        address: String,
        /// Why.
        #[source]
        source: Box<russh::Error>,
    },
    /// The server's host key is not in known_hosts and new keys are not accepted.
    #[error("host key of {host} is unknown ({fingerprint}), not in {known_hosts}; {hint}")]
    HostKeyUnknown {
        /// The host's name in the inventory.
        host: HostName,
        /// The key the server presented, as `SHA256:...`.
        fingerprint: String,
        /// The files that were searched (`a` or `a, b`).
        known_hosts: String,
        /// How to trust the key after checking it.
        hint: String,
    },
    /// The host is known with another key: possibly a man-in-the-middle attack.
    #[error(
        "HOST KEY OF {host} HAS CHANGED: it presented {fingerprint}, but {known_hosts}:{line} lists another key; {hint}",
        known_hosts = known_hosts.display()
    )]
    HostKeyChanged {
        /// The host's name in the inventory.
        host: HostName,
        /// The key the server presented, as `SHA256:...`.
        fingerprint: String,
        /// The file holding the old key.
        known_hosts: PathBuf,
        /// The line holding the old key.
        line: usize,
        /// What to do if the change is legitimate.
        hint: String,
    },
    /// The server presented a key marked `@revoked`.
    #[error("host key of {host} ({fingerprint}) is marked @revoked at {known_hosts}:{line}; refusing to connect", known_hosts = known_hosts.display())]
    HostKeyRevoked {
        /// The host's name in the inventory.
        host: HostName,
        /// The key the server presented, as `SHA256:...`.
        fingerprint: String,
        /// The file with the `@revoked` line.
        known_hosts: PathBuf,
        /// The `@revoked` line.
        line: usize,
    },
    /// The server presented an OpenSSH host certificate that known_hosts does not trust.
    #[error("{host} presented a host certificate that {known_hosts} does not trust: {why}")]
    HostCertificate {
        /// The host's name in the inventory.
        host: HostName,
        why: String,
        /// The files that were searched (`a` or `a, b`).
        known_hosts: String,
    },
    /// known_hosts could not be read or appended to.
    #[error("known_hosts for {host}")]
    KnownHosts {
        /// The host's name in the inventory.
        host: HostName,
        /// Why.
        #[source]
        source: KnownHostsError,
    },
    /// The server refused every key offered.
    #[error("{host} refused login as {user} with {method}")]
    Auth {
        /// The host's name in the inventory.
        host: HostName,
        /// The login user.
        user: String,
        /// `key file PATH` or `ssh-agent`.
        method: String,
    },
    /// The private key file could not be loaded (passphrase-protected keys need the agent).
    #[error("cannot load private key {path} for {host}", path = path.display())]
    KeyFile {
        /// The host's name in the inventory.
        host: HostName,
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<russh::keys::Error>,
    },
    /// No ssh-agent to ask: `SSH_AUTH_SOCK` unset, empty, or naming no agent.
    #[error("cannot log in to {host} with the ssh-agent: {why}")]
    NoAgent {
        /// The host's name in the inventory.
        host: HostName,
        /// What is wrong with `SSH_AUTH_SOCK`, and what to do.
        why: String,
    },
    /// A passphrase-protected key file whose key the ssh-agent does not hold.
    #[error("{path} is passphrase-protected and {agent}: add it with `ssh-add {path}` (cluster-upgrade never asks for or stores a passphrase), then run again", path = path.display())]
    EncryptedKey {
        /// The host's name in the inventory.
        host: HostName,
        /// The key file.
        path: PathBuf,
        /// `the ssh-agent does not hold it`, or why there is no agent.
        agent: String,
    },
    /// The login cannot become the inventory's `become.user` without a password.
    #[error("`{login}` cannot run commands as `{user}` with `sudo -n` ({}): cluster-upgrade never types a sudo password; allow it on the host with a sudoers line such as `{login} ALL=({user}) NOPASSWD: ALL` (visudo -f /etc/sudoers.d/cluster-upgrade), or change `become` in the inventory", if sudo.is_empty() { "sudo said nothing" } else { sudo.as_str() })]
    BecomeRefused {
        /// The host's name in the inventory.
        host: HostName,
        login: String,
        user: String,
        /// What sudo printed.
        sudo: String,
    },
    /// An uploaded file could not be installed in place by the become user.
    #[error("could not install {path} as the become user: {stderr}")]
    BecomeInstall {
        host: HostName,
        path: String,
        stderr: String,
    },
    /// The ssh-agent (`SSH_AUTH_SOCK`) could not be used.
    #[error("ssh-agent failed while logging in to {host}")]
    Agent {
        /// The host's name in the inventory.
        host: HostName,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A channel could not be opened or used (the connection may be gone).
    #[error("SSH channel to {host} failed")]
    Channel {
        /// The host's name in the inventory.
        host: HostName,
        /// Why.
        #[source]
        source: Box<russh::Error>,
    },
    /// The server refused to run the command or start the subsystem.
    #[error("{host} refused the {request} request")]
    Refused {
        /// The host's name in the inventory.
        host: HostName,
        /// `exec` or `sftp`.
        request: &'static str,
    },
    /// A command did not finish in time; its channel was signalled and closed.
    #[error("command on {host} did not finish within {after:?}: {command}")]
    CommandTimeout {
        /// The host's name in the inventory.
        host: HostName,
        /// The command line.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection ended while a command ran; it may or may not have taken effect.
    #[error("connection to {host} was lost while running: {command}")]
    ConnectionLost {
        /// The host's name in the inventory.
        host: HostName,
        /// The command line.
        command: String,
    },
    /// An SFTP operation failed.
    #[error("SFTP {operation} of {path} on {host} failed")]
    Sftp {
        /// The host's name in the inventory.
        host: HostName,
        /// What was being done (`create`, `write`, `chmod`, `rename`, ...).
        operation: &'static str,
        /// The remote path.
        path: String,
        /// Why.
        #[source]
        source: russh_sftp::client::error::Error,
    },
    /// The local file to upload could not be read.
    #[error("cannot read {path} to upload it to {host}", path = path.display())]
    UploadSource {
        /// The host's name in the inventory.
        host: HostName,
        /// The local file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A jump host on the way could not be connected to (its own error is the source).
    #[error("cannot reach {host} through {hop} ({address})")]
    Jump {
        /// The host's name in the inventory.
        host: HostName,
        /// The jump host's name in the chain.
        hop: HostName,
        /// The jump host's `address:port`.
        address: String,
        /// What went wrong with the jump host.
        #[source]
        source: Box<TransportError>,
    },
    /// The last jump host did not open the forwarded connection to the host.
    #[error("{hop} could not open a connection to {host} at {address}")]
    Forward {
        /// The host's name in the inventory.
        host: HostName,
        /// The jump host's name in the chain.
        hop: HostName,
        /// `address:port` of the host, as the jump host was asked to dial it.
        address: String,
        /// Why.
        #[source]
        source: Box<russh::Error>,
    },
    /// A value could not be quoted for the remote shell.
    #[error("cannot build a command for {host}")]
    Quote {
        /// The host's name in the inventory.
        host: HostName,
        /// Why.
        #[source]
        source: QuoteError,
    },
}

impl TransportError {
    /// The host the error concerns.
    pub fn host(&self) -> &HostName {
        match self {
            Self::Connect { host, .. }
            | Self::Timeout { host, .. }
            | Self::Handshake { host, .. }
            | Self::HostKeyUnknown { host, .. }
            | Self::HostKeyChanged { host, .. }
            | Self::HostKeyRevoked { host, .. }
            | Self::HostCertificate { host, .. }
            | Self::KnownHosts { host, .. }
            | Self::Auth { host, .. }
            | Self::KeyFile { host, .. }
            | Self::Agent { host, .. }
            | Self::NoAgent { host, .. }
            | Self::EncryptedKey { host, .. }
            | Self::BecomeRefused { host, .. }
            | Self::BecomeInstall { host, .. }
            | Self::Channel { host, .. }
            | Self::Refused { host, .. }
            | Self::CommandTimeout { host, .. }
            | Self::ConnectionLost { host, .. }
            | Self::Sftp { host, .. }
            | Self::UploadSource { host, .. }
            | Self::Quote { host, .. }
            | Self::Jump { host, .. }
            | Self::Forward { host, .. } => host,
        }
    }

    /// Whether the error is about trusting the server's identity (never worth a retry).
    pub fn is_host_key(&self) -> bool {
        match self {
            Self::Jump { source, .. } => source.is_host_key(),
            other => matches!(
                other,
                Self::HostKeyUnknown { .. }
                    | Self::HostKeyChanged { .. }
                    | Self::HostKeyRevoked { .. }
                    | Self::HostCertificate { .. }
            ),
        }
    }
}
