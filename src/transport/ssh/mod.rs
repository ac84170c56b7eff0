//! The SSH implementation of [`Connector`] and [`Session`], on russh: one connection per
//! host, commands on long-lived shells (one per channel, see `shell.rs`), at most
//! [`SshOptions::max_channels`] channels at once.

mod auth;
mod host_key;
mod shell;
mod stream;
mod upload;

use crate::inventory::HostName;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::Disconnect;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use self::host_key::{handshake_error, preferred_for, HostKeyCheck};
use self::shell::{Ran, Shell};
use self::stream::QuickAckStream;
use super::command::{CommandOutput, Upload};
use super::error::TransportError;
use super::known_hosts::KnownHosts;
use super::session::{Connector, Session};
use super::target::{SshOptions, Target};

/// How long stopping a timed-out command from another shell may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection is probed, and how many unanswered probes end it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;

/// A known_hosts file read once and shared by a run's connections (accepted keys are added).
type SharedKnownHosts = Arc<RwLock<KnownHosts>>;

/// Opens [`SshSession`]s with the run's [`SshOptions`]. The known_hosts file is read at the
/// first connection and kept for the others: reading it for each of N hosts made a run cost
/// O(N²) (10 ms a connection for 10,000 entries).
#[derive(Debug, Clone)]
pub struct SshConnector {
    options: SshOptions,
    known_hosts: Arc<Mutex<Option<SharedKnownHosts>>>,
}

impl SshConnector {
    /// A connector with these options.
    pub fn new(options: SshOptions) -> Self {
        Self {
            options,
            known_hosts: Arc::default(),
        }
    }

    /// The parsed known_hosts file, read now if this is the first connection (a file that
    /// cannot be read is tried again by the next one).
    fn known_hosts(&self, host: &HostName) -> Result<SharedKnownHosts, TransportError> {
        let mut cached = self.known_hosts.lock().expect("known_hosts lock");
        if let Some(known) = cached.as_ref() {
            return Ok(Arc::clone(known));
        }
        let known = Arc::new(RwLock::new(load_known_hosts(&self.options, host)?));
        tracing::debug!(path = %self.options.known_hosts.display(), "read known_hosts for the run");
        *cached = Some(Arc::clone(&known));
        Ok(known)
    }

    /// The options in use.
    pub fn options(&self) -> &SshOptions {
        &self.options
    }
}

impl Connector for SshConnector {
    type Session = SshSession;

    async fn connect(&self, target: &Target) -> Result<SshSession, TransportError> {
        let known_hosts = self.known_hosts(&target.name)?;
        SshSession::connect_with(target, &self.options, known_hosts).await
    }
}

/// An authenticated SSH connection to one host.
pub struct SshSession {
    host: HostName,
    handle: Handle<HostKeyCheck>,
    channels: Arc<Semaphore>,
    max_channels: u32,
    /// Shells waiting for their next command (each holds a channel open).
    idle: Mutex<Vec<Shell>>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connects, verifies the host key against known_hosts (before any authentication), and
    /// logs in, all within `options.connect_timeout`.
    pub async fn connect(target: &Target, options: &SshOptions) -> Result<Self, TransportError> {
        let known_hosts = Arc::new(RwLock::new(load_known_hosts(options, &target.name)?));
        Self::connect_with(target, options, known_hosts).await
    }

    async fn connect_with(
        target: &Target,
        options: &SshOptions,
        known_hosts: SharedKnownHosts,
    ) -> Result<Self, TransportError> {
        let address = format!("{}:{}", target.address, target.port);
        let deadline = options.connect_timeout;
        let connecting = Self::connect_now(target, options, &address, known_hosts);
        match tokio::time::timeout(deadline, connecting).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                host: target.name.clone(),
                address,
                after: deadline,
            }),
        }
    }

    async fn connect_now(
        target: &Target,
        options: &SshOptions,
        address: &str,
        known_hosts: SharedKnownHosts,
    ) -> Result<Self, TransportError> {
        let host = target.name.clone();
        let known_types = known_hosts
            .read()
            .expect("known_hosts lock")
            .key_types(&target.address, target.port);
        let config = client::Config {
            nodelay: true,
            // A host that vanishes without closing (power loss, reboot mid-step) is noticed
            // within about a minute, and idle connections between waves survive NAT timeouts.
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            keepalive_max: KEEPALIVE_MAX,
            preferred: preferred_for(&known_types),
            ..client::Config::default()
        };
        let check = HostKeyCheck {
            host: host.clone(),
            address: target.address.clone(),
            port: target.port,
            known_hosts,
            policy: options.policy,
        };
        let tcp = TcpStream::connect((target.address.as_str(), target.port))
            .await
            .map_err(|source| TransportError::Connect {
                host: host.clone(),
                address: address.to_string(),
                source,
            })?;
        // `Config::nodelay` only applies to sockets russh opens itself; without it every command
        // after the first waits ~40 ms for Nagle.
        tcp.set_nodelay(true)
            .map_err(|source| TransportError::Connect {
                host: host.clone(),
                address: address.to_string(),
                source,
            })?;
        let mut handle = client::connect_stream(Arc::new(config), QuickAckStream(tcp), check)
            .await
            .map_err(|e| handshake_error(e, &host, address))?;
        auth::login(&mut handle, target).await?;
        let max_channels = options.max_channels.clamp(1, Semaphore::MAX_PERMITS) as u32;
        Ok(Self {
            host,
            handle,
            channels: Arc::new(Semaphore::new(max_channels as usize)),
            max_channels,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The host's name in the inventory.
    pub fn host(&self) -> &HostName {
        &self.host
    }

    /// Whether the connection is gone (the server closed it, or keepalives went unanswered);
    /// a closed session fails every call, so the caller may connect again.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Runs a command; see [`Session::run`].
    pub async fn run(
        &self,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, TransportError> {
        // The semaphore is never closed, so acquiring only fails if that invariant breaks.
        let _permit = self
            .channels
            .acquire()
            .await
            .expect("channel semaphore is never closed");
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || TransportError::CommandTimeout {
            host: self.host.clone(),
            command: command.to_string(),
            after: timeout,
        };
        let mut shell = loop {
            let idle = self.idle.lock().expect("idle shells lock").pop();
            let Some(mut shell) = idle else {
                break Shell::start(&self.handle, &self.host, deadline, timed_out).await?;
            };
            if shell.still_usable().await {
                break shell;
            }
        };
        match shell.run(&self.host, command, deadline).await? {
            Ran::Reusable(output) => {
                self.idle.lock().expect("idle shells lock").push(shell);
                Ok(output)
            }
            Ran::ShellGone(output) => Ok(output),
            Ran::TimedOut { pid } => {
                if let Some(pid) = pid {
                    self.stop_command(pid).await;
                }
                Err(timed_out())
            }
        }
    }

    /// Stops a command that timed out from another shell (with the permit its own shell held),
    /// which root logins need: sshd does not pass them the channel's signal request. Best effort
    /// within a few seconds; the shell is kept for the next command if it can be.
    async fn stop_command(&self, pid: u32) {
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        let timed_out = || TransportError::CommandTimeout {
            host: self.host.clone(),
            command: shell::stop_command(pid),
            after: STOP_TIMEOUT,
        };
        let Ok(mut shell) = Shell::start(&self.handle, &self.host, deadline, timed_out).await
        else {
            return;
        };
        match shell
            .run(&self.host, &shell::stop_command(pid), deadline)
            .await
        {
            Ok(Ran::Reusable(_)) => self.idle.lock().expect("idle shells lock").push(shell),
            Ok(_) | Err(_) => {
                tracing::debug!(host = %self.host, pid, "could not stop a timed-out command")
            }
        }
    }

    /// Closes idle shells so that the channels the caller holds permits for can be opened
    /// within `max_channels` (sshd's `MaxSessions` counts idle shells too).
    async fn make_room(&self) {
        let excess = {
            let mut idle = self.idle.lock().expect("idle shells lock");
            // Permits in use: running commands and the caller's own.
            let busy = self.max_channels as usize - self.channels.available_permits();
            let keep = (self.max_channels as usize).saturating_sub(busy);
            let excess = idle.len().saturating_sub(keep);
            idle.drain(..excess).collect::<Vec<_>>()
        };
        for shell in excess {
            shell.close().await;
        }
    }

    /// Uploads a file; see [`Session::upload`].
    pub async fn upload(&self, upload: &Upload) -> Result<(), TransportError> {
        // Two channels: the SFTP session and, briefly, the one that renames.
        let permits = self.max_channels.min(2);
        let _permit = self
            .channels
            .acquire_many(permits)
            .await
            .expect("channel semaphore is never closed");
        self.make_room().await;
        upload::upload(&self.handle, &self.host, upload).await
    }

    /// Disconnects.
    pub async fn close(&self) -> Result<(), TransportError> {
        // Disconnecting ends the idle shells too: sshd closes their stdin and they exit.
        self.idle.lock().expect("idle shells lock").clear();
        self.handle
            .disconnect(Disconnect::ByApplication, "done", "en")
            .await
            .map_err(|source| TransportError::Channel {
                host: self.host.clone(),
                source: Box::new(source),
            })
    }
}

impl Session for SshSession {
    async fn run(&self, command: &str, timeout: Duration) -> Result<CommandOutput, TransportError> {
        SshSession::run(self, command, timeout).await
    }

    async fn upload(&self, upload: &Upload) -> Result<(), TransportError> {
        SshSession::upload(self, upload).await
    }

    async fn close(&self) -> Result<(), TransportError> {
        SshSession::close(self).await
    }
}

fn load_known_hosts(options: &SshOptions, host: &HostName) -> Result<KnownHosts, TransportError> {
    KnownHosts::load(&options.known_hosts).map_err(|source| TransportError::KnownHosts {
        host: host.clone(),
        source,
    })
}
