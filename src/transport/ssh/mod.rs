//! The SSH implementation of [`Connector`] and [`Session`], on russh: one connection per
//! host, commands on long-lived shells (one per channel, see `shell.rs`), at most
//! [`SshOptions::max_channels`] channels at once.

mod auth;
mod host_key;
mod jump;
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
use self::jump::{JumpLink, JumpPool};
use self::shell::{Ran, Shell, ShellHost};
use self::stream::QuickAckStream;
use super::command::{CommandOutput, Upload};
use super::error::TransportError;
use super::known_hosts::KnownHosts;
use super::session::{Connector, Session};
use super::target::{Hop, Identity, SshOptions, Target};

/// How long installing an uploaded file as the become user may take (a copy on the host).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
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
    /// The run's jump connections, one per chain, shared by the hosts behind it.
    jumps: Arc<JumpPool>,
}

impl SshConnector {
    /// A connector with these options.
    pub fn new(options: SshOptions) -> Self {
        Self {
            options,
            known_hosts: Arc::default(),
            jumps: Arc::default(),
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
        let dial = Dial {
            options: &self.options,
            known_hosts: &known_hosts,
        };
        let via = self.jumps.link(target, &dial).await?;
        SshSession::connect_with(target, &dial, via).await
    }
}

/// What every connection of a run shares: the options and the known_hosts copy.
pub(crate) struct Dial<'a> {
    pub(crate) options: &'a SshOptions,
    pub(crate) known_hosts: &'a SharedKnownHosts,
}

/// Who to connect to and log in as: a host or a jump host.
pub(crate) struct Endpoint<'a> {
    pub(crate) name: &'a HostName,
    pub(crate) address: &'a str,
    pub(crate) port: u16,
    pub(crate) user: &'a str,
    pub(crate) identity: &'a Identity,
}

impl<'a> Endpoint<'a> {
    fn of_target(target: &'a Target) -> Self {
        Endpoint {
            name: &target.name,
            address: &target.address,
            port: target.port,
            user: &target.user,
            identity: &target.identity,
        }
    }

    pub(crate) fn of_hop(hop: &'a Hop) -> Self {
        Endpoint {
            name: &hop.name,
            address: &hop.address,
            port: hop.port,
            user: &hop.user,
            identity: &hop.identity,
        }
    }

    fn address_port(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// Connects to `endpoint` (directly, or through the jump connection `via`), verifies its host
/// key against known_hosts (before any authentication) and logs in, within the connect
/// deadline.
pub(crate) async fn open(
    endpoint: &Endpoint<'_>,
    via: Option<&JumpLink>,
    dial: &Dial<'_>,
) -> Result<Handle<HostKeyCheck>, TransportError> {
    let deadline = dial.options.connect_timeout;
    match tokio::time::timeout(deadline, open_now(endpoint, via, dial)).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::Timeout {
            host: endpoint.name.clone(),
            address: endpoint.address_port(),
            after: deadline,
        }),
    }
}

async fn open_now(
    endpoint: &Endpoint<'_>,
    via: Option<&JumpLink>,
    dial: &Dial<'_>,
) -> Result<Handle<HostKeyCheck>, TransportError> {
    let started = std::time::Instant::now();
    let host = endpoint.name.clone();
    let address = endpoint.address_port();
    let (known_types, certificates) = {
        let known = dial.known_hosts.read().expect("known_hosts lock");
        (
            known.key_types(endpoint.address, endpoint.port),
            known.has_authority_for(endpoint.address, endpoint.port),
        )
    };
    let config = Arc::new(client::Config {
        nodelay: true,
        // A host that vanishes without closing (power loss, reboot mid-step) is noticed
        // within about a minute, and idle connections between waves survive NAT timeouts.
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        preferred: preferred_for(&known_types, certificates),
        ..client::Config::default()
    });
    let check = HostKeyCheck {
        host: host.clone(),
        address: endpoint.address.to_string(),
        port: endpoint.port,
        known_hosts: Arc::clone(dial.known_hosts),
        policy: dial.options.policy,
    };
    let connected = match via {
        Some(link) => {
            let stream = link.forward(endpoint).await?;
            client::connect_stream(config, stream, check).await
        }
        None => {
            let connect_error = |source| TransportError::Connect {
                host: host.clone(),
                address: address.clone(),
                source,
            };
            let tcp = TcpStream::connect((endpoint.address, endpoint.port))
                .await
                .map_err(connect_error)?;
            // `Config::nodelay` only applies to sockets russh opens itself; without it every
            // command after the first waits ~40 ms for Nagle.
            tcp.set_nodelay(true).map_err(connect_error)?;
            client::connect_stream(config, QuickAckStream(tcp), check).await
        }
    };
    let mut handle = connected.map_err(|e| handshake_error(e, &host, &address))?;
    // Where a connection's round trips go (bench/run --rtt reads these from the run's log).
    tracing::debug!(%host, elapsed = ?started.elapsed(), "key exchange done");
    auth::login(&mut handle, endpoint).await?;
    tracing::debug!(%host, elapsed = ?started.elapsed(), "logged in");
    Ok(handle)
}

/// An authenticated SSH connection to one host.
pub struct SshSession {
    host: HostName,
    handle: Handle<HostKeyCheck>,
    channels: Arc<Semaphore>,
    max_channels: u32,
    /// Shells waiting for their next command (each holds a channel open).
    idle: Mutex<Vec<Shell>>,
    /// The jump connection this one runs over, kept open while it is in use.
    _via: Option<Arc<JumpLink>>,
    /// The user commands run as, through sudo (`None`: the login).
    become_user: Option<String>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connects (through the target's jump hosts, if any, over connections of its own),
    /// verifies every host key against known_hosts (before any authentication), and logs in,
    /// each connection within `options.connect_timeout`.
    pub async fn connect(target: &Target, options: &SshOptions) -> Result<Self, TransportError> {
        let known_hosts = Arc::new(RwLock::new(load_known_hosts(options, &target.name)?));
        let dial = Dial {
            options,
            known_hosts: &known_hosts,
        };
        let via = JumpPool::default().link(target, &dial).await?;
        Self::connect_with(target, &dial, via).await
    }

    async fn connect_with(
        target: &Target,
        dial: &Dial<'_>,
        via: Option<Arc<JumpLink>>,
    ) -> Result<Self, TransportError> {
        let handle = open(&Endpoint::of_target(target), via.as_deref(), dial).await?;
        if let Some(user) = &target.become_user {
            become_check(&handle, target, user, dial.options.connect_timeout).await?;
        }
        let max_channels = dial.options.max_channels.clamp(1, Semaphore::MAX_PERMITS) as u32;
        Ok(Self {
            host: target.name.clone(),
            handle,
            channels: Arc::new(Semaphore::new(max_channels as usize)),
            max_channels,
            idle: Mutex::new(Vec::new()),
            _via: via,
            become_user: target.become_user.clone(),
        })
    }

    /// Where this session's shells start.
    fn shell_host(&self) -> ShellHost<'_> {
        ShellHost {
            handle: &self.handle,
            host: &self.host,
            become_user: self.become_user.as_deref(),
        }
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
        let idle = loop {
            let idle = self.idle.lock().expect("idle shells lock").pop();
            let Some(mut shell) = idle else {
                break None;
            };
            if shell.still_usable().await {
                break Some(shell);
            }
        };
        let (shell, ran) = match idle {
            Some(mut shell) => {
                let ran = shell.run(&self.host, command, deadline).await?;
                (shell, ran)
            }
            // A new shell takes the command with its exec request: one round trip less.
            None => Shell::start_running(&self.shell_host(), command, deadline, timed_out).await?,
        };
        match ran {
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
        let stop = shell::stop_command(pid);
        match Shell::start_running(&self.shell_host(), &stop, deadline, timed_out).await {
            Ok((shell, Ran::Reusable(_))) => {
                self.idle.lock().expect("idle shells lock").push(shell)
            }
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
        match &self.become_user {
            None => upload::upload(&self.handle, &self.host, upload).await,
            Some(_) => {
                let placed = upload::upload_private(&self.handle, &self.host, upload).await?;
                // The file is the login's; the become user installs it in place, as its own.
                let install = placed.install_command();
                let outcome = self.run_as_become(&install).await;
                placed.remove(&self.handle, &self.host).await;
                let output = outcome?;
                if output.success() {
                    Ok(())
                } else {
                    Err(TransportError::BecomeInstall {
                        host: self.host.clone(),
                        path: upload.remote_path.clone(),
                        stderr: output.stderr_text().trim().to_string(),
                    })
                }
            }
        }
    }

    /// Runs the command that installs an upload, on a shell of its own (the caller holds the
    /// permits).
    async fn run_as_become(&self, command: &str) -> Result<CommandOutput, TransportError> {
        let deadline = tokio::time::Instant::now() + INSTALL_TIMEOUT;
        let timed_out = || TransportError::CommandTimeout {
            host: self.host.clone(),
            command: command.to_string(),
            after: INSTALL_TIMEOUT,
        };
        let mut shell = Shell::start(&self.shell_host(), deadline, timed_out).await?;
        match shell.run(&self.host, command, deadline).await? {
            Ran::Reusable(output) => {
                shell.close().await;
                Ok(output)
            }
            Ran::ShellGone(output) => Ok(output),
            Ran::TimedOut { .. } => Err(timed_out()),
        }
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

/// Checks, right after login, that the login can become `user` without a password
/// (`sudo -n -u USER -- true`): a host that cannot fails here, before anything runs on it.
async fn become_check(
    handle: &Handle<HostKeyCheck>,
    target: &Target,
    user: &str,
    within: Duration,
) -> Result<(), TransportError> {
    let deadline = tokio::time::Instant::now() + within;
    let timed_out = || TransportError::Timeout {
        host: target.name.clone(),
        address: target.endpoint(),
        after: within,
    };
    let login = ShellHost {
        handle,
        host: &target.name,
        become_user: None,
    };
    let command = format!(
        "sudo -n -u {} -- true",
        super::quote::quote(user).map_err(|source| TransportError::Quote {
            host: target.name.clone(),
            source,
        })?
    );
    let (shell, ran) = Shell::start_running(&login, &command, deadline, timed_out).await?;
    let output = match ran {
        Ran::Reusable(output) => {
            shell.close().await;
            output
        }
        Ran::ShellGone(output) => output,
        Ran::TimedOut { .. } => return Err(timed_out()),
    };
    if output.success() {
        return Ok(());
    }
    Err(TransportError::BecomeRefused {
        host: target.name.clone(),
        login: target.user.clone(),
        user: user.to_string(),
        sudo: output.stderr_text().trim().to_string(),
    })
}

fn load_known_hosts(options: &SshOptions, host: &HostName) -> Result<KnownHosts, TransportError> {
    let files: Vec<std::path::PathBuf> = std::iter::once(&options.known_hosts)
        .chain(&options.more_known_hosts)
        .cloned()
        .collect();
    KnownHosts::load_all(&files).map_err(|source| TransportError::KnownHosts {
        host: host.clone(),
        source,
    })
}
