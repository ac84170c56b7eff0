//! From a plan's [`Reach`] (the inventory's hosts, as planned) to connections: SSH options,
//! targets and probe variables of every host.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::lease::{Claim, Claims, LeaseRequest};
use crate::facts::{self, Connection, HostFacts, ProbeScope, ProbeTarget};
use crate::inventory::{hop_name, HostName, Identity as InventoryIdentity};
use crate::message::chain;
use crate::plan::{views_flicker, Reach, WholeViews};
use crate::transport::{
    Hop, HostKeyPolicy, Identity, SshConnector, SshOptions, SshSession, Target,
};

/// How long the read-only probe of one host may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the first probe waits for running crdt peers to list each other (their ping
/// metrics come every 15 s by default and a peer is listed while its last one is fresh: a late
/// ping, seen with real peers on a loaded machine, hides a peer for a moment).
const VIEW_PATIENCE: Duration = Duration::from_secs(45);

/// Why the hosts could not be connected to at all (one host's failure is in its facts).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{hosts} hosts need about {needed} open files (one SSH connection each, kept for the whole run), but this process may open {limit} ({why}); raise it (`ulimit -n {needed}`, or `nofile` in /etc/security/limits.conf or the unit's LimitNOFILE), or run on fewer hosts at a time")]
    OpenFiles {
        hosts: usize,
        needed: u64,
        limit: u64,
        why: String,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// SSH options of a run: the recorded `ssh:` settings (with the command line's overrides).
pub fn ssh_options(reach: &Reach) -> SshOptions {
    SshOptions {
        policy: if reach.ssh.accept_new_host_keys {
            HostKeyPolicy::AcceptNew
        } else {
            HostKeyPolicy::Strict
        },
        connect_timeout: reach.ssh.connect_timeout.into(),
        more_known_hosts: reach.ssh.more_known_hosts.clone(),
        ..SshOptions::new(reach.ssh.known_hosts.clone())
    }
}

/// How many hosts are worked on at once: the settings' limit, else every host.
pub fn concurrency(reach: &Reach) -> usize {
    reach
        .ssh
        .max_concurrency
        .map_or(reach.hosts.len(), |n| n.get())
        .max(1)
}

/// Connection and probe settings of every host, in inventory order.
pub fn probe_targets(reach: &Reach) -> Vec<ProbeTarget> {
    reach
        .hosts
        .iter()
        .map(|host| ProbeTarget {
            target: Target {
                name: host.name.clone(),
                address: host.address.to_string(),
                port: host.port.get(),
                user: host.user.to_string(),
                identity: identity(&host.identity),
                jumps: host
                    .jumps
                    .iter()
                    .enumerate()
                    .map(|(i, hop)| Hop {
                        name: hop_name(hop, i),
                        address: hop.address.to_string(),
                        port: hop.port.get(),
                        user: hop.user.to_string(),
                        identity: identity(&hop.identity),
                    })
                    .collect(),
                become_user: host.become_user.as_ref().map(ToString::to_string),
            },
            vars: host.probe.clone(),
        })
        .collect()
}

fn identity(identity: &InventoryIdentity) -> Identity {
    match identity {
        InventoryIdentity::File(path) => Identity::File(path.clone()),
        InventoryIdentity::Agent => Identity::Agent,
    }
}

/// What a probe with a script after it found: the connections, the facts, each host's output.
type ProbedThen = (Connected, Vec<HostFacts>, Vec<Option<facts::ThenOutput>>);

/// Open SSH sessions to every host of an inventory (or why a host could not be reached), and
/// the runtime they live on: `apply` plans and runs over the same connections.
pub struct Connected {
    runtime: tokio::runtime::Runtime,
    connector: Arc<SshConnector>,
    targets: Vec<ProbeTarget>,
    connections: Vec<Connection<SshSession>>,
    limit: usize,
}

impl Connected {
    /// Connects to every host and probes each one as soon as it is connected.
    pub fn open_and_probe(
        reach: &Reach,
        scope: ProbeScope,
    ) -> Result<(Connected, Vec<HostFacts>), ConnectError> {
        let (connected, facts, _) = Self::open_probe_then(reach, scope, None)?;
        Ok((connected, facts))
    }

    /// Connects to every host, probes each one as soon as it is connected and, in the same
    /// command, takes the lease `request` asks for (docs/adr/0023): the claims by host. The
    /// facts are what the probe found before the claim (the lease another run holds, say).
    pub fn open_probe_and_claim(
        reach: &Reach,
        scope: ProbeScope,
        request: &LeaseRequest,
    ) -> Result<(Connected, Vec<HostFacts>, Claims), ConnectError> {
        let targets = probe_targets(reach);
        let scripts: Vec<Result<String, String>> = targets
            .iter()
            .map(|t| super::lease::claim_script(&t.vars, request).map_err(|e| e.to_string()))
            .collect();
        let then = scripts
            .iter()
            .map(|script| script.clone().unwrap_or_else(|_| "exit 1".to_string()))
            .collect();
        let (connected, facts, outputs) =
            Self::open_probe_then(reach, scope, Some(Arc::new(then)))?;
        let claims = targets
            .iter()
            .zip(scripts)
            .zip(outputs)
            .map(|((target, script), output)| {
                let claim = match (script, output) {
                    (Err(why), _) => Claim::Failed(why),
                    (Ok(_), Some(Ok(stdout))) => super::lease::claim_of(&stdout),
                    (Ok(_), Some(Err(why))) => Claim::Failed(why),
                    (Ok(_), None) => Claim::Failed("not probed".to_string()),
                };
                (target.target.name.clone(), claim)
            })
            .collect();
        Ok((connected, facts, claims))
    }

    fn open_probe_then(
        reach: &Reach,
        scope: ProbeScope,
        then: Option<facts::Then>,
    ) -> Result<ProbedThen, ConnectError> {
        let mut connected = Self::new(reach)?;
        let started = std::time::Instant::now();
        let probed = connected.runtime.block_on(facts::connect_and_probe(
            Arc::clone(&connected.connector),
            &connected.targets,
            connected.limit,
            facts::Probing {
                scope,
                timeout: PROBE_TIMEOUT,
                then,
            },
        ));
        connected.connections = probed.connections;
        let facts = probed.facts;
        tracing::debug!(hosts = facts.len(), ?scope, elapsed = ?started.elapsed(), "connected and probed");
        let facts = connected
            .runtime
            .block_on(connected.settle_views(facts, scope));
        Ok((connected, facts, probed.then))
    }

    /// Gives back the lease of `run_id` on `hosts` (where it holds it), all at once: a run
    /// that took it with its planning probe and then did not start.
    pub fn release_lease(&self, run_id: &str, hosts: &[HostName]) {
        let commands: Vec<(HostName, String)> = hosts
            .iter()
            .filter_map(|host| {
                let target = self.targets.iter().find(|t| &t.target.name == host)?;
                match super::lease::release_script(&target.vars, run_id) {
                    Ok(script) => Some((host.clone(), script)),
                    Err(error) => {
                        tracing::warn!(%host, %error, "could not give the lease back");
                        None
                    }
                }
            })
            .collect();
        for (host, error) in self.run_each(commands, super::lease::LEASE_TIMEOUT) {
            tracing::warn!(%host, %error, "could not give the lease back");
        }
    }

    /// `facts`, probed again every 2 s for up to [`VIEW_PATIENCE`] while the only problem is a
    /// running peer listing fewer peers than the cluster has (the flicker of crdt peer lists
    /// under load), each peer keeping the whole view it showed once (`plan::WholeViews`).
    async fn settle_views(&self, facts: Vec<HostFacts>, scope: ProbeScope) -> Vec<HostFacts> {
        let mut views = WholeViews::default();
        let mut facts = views.merge(facts);
        let started = std::time::Instant::now();
        while views_flicker(&facts) && started.elapsed() < VIEW_PATIENCE {
            tracing::debug!("a peer lists fewer peers than the cluster has; probing again");
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            facts = views.merge(self.probe_async(scope).await);
        }
        facts
    }

    fn new(reach: &Reach) -> Result<Connected, ConnectError> {
        super::open_files::make_room(reach.hosts.len())?;
        Ok(Connected {
            runtime: runtime()?,
            connector: Arc::new(SshConnector::new(ssh_options(reach))),
            targets: probe_targets(reach),
            connections: Vec::new(),
            limit: concurrency(reach),
        })
    }

    /// Probes every host over its session.
    pub async fn probe_async(&self, scope: ProbeScope) -> Vec<HostFacts> {
        let started = std::time::Instant::now();
        let facts = facts::probe_all(&self.connections, &self.targets, scope, PROBE_TIMEOUT).await;
        tracing::debug!(hosts = facts.len(), ?scope, elapsed = ?started.elapsed(), "probed");
        facts
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Runs one command line on each named host over its session, all at once: what each
    /// host's command printed on stderr when it failed, by host (none: every one succeeded).
    pub fn run_each(
        &self,
        commands: Vec<(HostName, String)>,
        timeout: Duration,
    ) -> Vec<(HostName, String)> {
        let mut failed: Vec<(HostName, String)> = self
            .read_each(commands, timeout)
            .into_iter()
            .filter_map(|(host, result)| result.err().map(|why| (host, why)))
            .collect();
        failed.sort();
        failed
    }

    /// Runs one command line on each named host over its session, all at once: by host, what
    /// the command printed on stdout when it succeeded, or why it failed (its stderr).
    pub fn read_each(
        &self,
        commands: Vec<(HostName, String)>,
        timeout: Duration,
    ) -> Vec<(HostName, Result<String, String>)> {
        self.runtime.block_on(async {
            let mut running = tokio::task::JoinSet::new();
            for (host, command) in commands {
                let session = self
                    .targets
                    .iter()
                    .position(|t| t.target.name == host)
                    .and_then(|i| self.connections.get(i))
                    .map(|connection| connection.clone().map_err(|e| chain(e.as_ref())));
                running.spawn(async move {
                    let result = match session {
                        None => Err("not connected".to_string()),
                        Some(Err(reason)) => Err(reason),
                        Some(Ok(session)) => match session.run(&command, timeout).await {
                            Ok(out) if out.success() => {
                                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                            }
                            Ok(out) => Err(out.stderr_text()),
                            Err(error) => Err(chain(&error)),
                        },
                    };
                    (host, result)
                });
            }
            let mut results = Vec::new();
            while let Some(done) = running.join_next().await {
                if let Ok(result) = done {
                    results.push(result);
                }
            }
            results
        })
    }

    /// Reconnects the hosts whose session failed or dropped (say, during a long confirmation
    /// prompt), then returns every session, or every host that still cannot be reached.
    pub async fn sessions(
        &mut self,
    ) -> Result<HashMap<HostName, Arc<SshSession>>, Vec<(HostName, String)>> {
        let stale: Vec<usize> = (0..self.targets.len())
            .filter(|&i| match &self.connections[i] {
                Ok(session) => session.is_closed(),
                Err(_) => true,
            })
            .collect();
        if !stale.is_empty() {
            let targets: Vec<ProbeTarget> =
                stale.iter().map(|&i| self.targets[i].clone()).collect();
            let fresh = facts::connect_all(Arc::clone(&self.connector), &targets, self.limit).await;
            for (i, connection) in stale.into_iter().zip(fresh) {
                self.connections[i] = connection;
            }
        }
        let mut sessions = HashMap::new();
        let mut failures = Vec::new();
        for (target, connection) in self.targets.iter().zip(&self.connections) {
            match connection {
                Ok(session) => {
                    sessions.insert(target.target.name.clone(), Arc::clone(session));
                }
                Err(error) => failures.push((target.target.name.clone(), chain(error.as_ref()))),
            }
        }
        if failures.is_empty() {
            Ok(sessions)
        } else {
            Err(failures)
        }
    }

    /// Ends every connection politely.
    pub async fn close(&self) {
        let mut closing = tokio::task::JoinSet::new();
        for session in self.connections.iter().flatten() {
            let session = Arc::clone(session);
            closing.spawn(async move { session.close().await });
        }
        while closing.join_next().await.is_some() {}
    }
}

/// Gathers facts for `plan`: connects, probes and closes, every host at once (bounded).
pub fn gather_facts(reach: &Reach) -> Result<Vec<HostFacts>, ConnectError> {
    let (connected, facts) = Connected::open_and_probe(reach, ProbeScope::FULL)?;
    connected.runtime().block_on(connected.close());
    Ok(facts)
}

pub fn runtime() -> Result<tokio::runtime::Runtime, ConnectError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ConnectError::Runtime)
}
