//! From the inventory to connections: SSH options, targets and probe variables of every host.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::cli::SshArgs;
use crate::facts::{probe_session, HostFacts, ProbeTarget, ProbeVars};
use crate::inventory::{Identity as InventoryIdentity, Inventory};
use crate::transport::{
    HostKeyPolicy, Identity, SshConnector, SshOptions, SshSession, Target, TransportError,
};

/// How long the read-only probe of one host may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// SSH options: the inventory's `ssh:` section under the command line's overrides.
pub fn ssh_options(inventory: &Inventory, ssh: &SshArgs) -> SshOptions {
    let known_hosts = ssh
        .known_hosts
        .clone()
        .unwrap_or_else(|| inventory.ssh.known_hosts.clone());
    SshOptions {
        policy: if ssh.accept_new_host_keys || inventory.ssh.accept_new_host_keys {
            HostKeyPolicy::AcceptNew
        } else {
            HostKeyPolicy::Strict
        },
        connect_timeout: inventory.ssh.connect_timeout.into(),
        ..SshOptions::new(known_hosts)
    }
}

/// How many hosts are worked on at once: the command line, else the inventory, else all.
pub fn concurrency(inventory: &Inventory, ssh: &SshArgs) -> usize {
    ssh.concurrency
        .or(inventory.ssh.max_concurrency)
        .map_or(inventory.hosts.len(), |n| n.get())
        .max(1)
}

/// Connection and probe settings of every host, in inventory order.
pub fn probe_targets(inventory: &Inventory) -> Vec<ProbeTarget> {
    inventory
        .hosts
        .iter()
        .map(|host| ProbeTarget {
            target: Target {
                name: host.name.to_string(),
                address: host.address.to_string(),
                port: host.port.get(),
                user: host.user.to_string(),
                identity: match &host.identity {
                    InventoryIdentity::File(path) => Identity::File(path.clone()),
                    InventoryIdentity::Agent => Identity::Agent,
                },
            },
            vars: ProbeVars {
                bin_dir: host
                    .vars
                    .str("bin_dir")
                    .unwrap_or("/usr/local/bin")
                    .to_string(),
                config_dir: host
                    .vars
                    .str("config_dir")
                    .unwrap_or("~/.ipfs-cluster")
                    .to_string(),
                api: host
                    .vars
                    .str("api")
                    .unwrap_or("/ip4/127.0.0.1/tcp/9094")
                    .to_string(),
            },
        })
        .collect()
}

/// Opens one session per host, all at once. Returns the sessions, or every host that failed.
pub async fn connect_all(
    options: SshOptions,
    targets: &[ProbeTarget],
) -> Result<HashMap<String, Arc<SshSession>>, Vec<(String, TransportError)>> {
    let options = Arc::new(options);
    let mut tasks = JoinSet::new();
    for target in targets {
        let (target, options) = (target.target.clone(), Arc::clone(&options));
        tasks.spawn(async move {
            (
                target.name.clone(),
                SshSession::connect(&target, &options).await,
            )
        });
    }
    let (mut sessions, mut failures) = (HashMap::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("connect task panicked") {
            (name, Ok(session)) => {
                sessions.insert(name, Arc::new(session));
            }
            (name, Err(err)) => failures.push((name, err)),
        }
    }
    if failures.is_empty() {
        Ok(sessions)
    } else {
        failures.sort_by(|a, b| a.0.cmp(&b.0));
        Err(failures)
    }
}

/// Probes every host over its open session, in inventory order.
pub async fn probe_all(
    sessions: &HashMap<String, Arc<SshSession>>,
    targets: &[ProbeTarget],
) -> Vec<HostFacts> {
    let mut tasks = JoinSet::new();
    for (index, target) in targets.iter().enumerate() {
        let session = Arc::clone(&sessions[&target.target.name]);
        let target = target.clone();
        tasks.spawn(async move {
            (
                index,
                probe_session(session.as_ref(), &target, PROBE_TIMEOUT).await,
            )
        });
    }
    let mut facts: Vec<Option<HostFacts>> = vec![None; targets.len()];
    while let Some(joined) = tasks.join_next().await {
        let (index, host) = joined.expect("probe task panicked");
        facts[index] = Some(host);
    }
    facts
        .into_iter()
        .map(|f| f.expect("every host probed"))
        .collect()
}

/// Gathers facts for `plan`: connects, probes and closes, every host at once (bounded).
pub fn gather_facts(
    inventory: &Inventory,
    ssh: &SshArgs,
) -> Result<Vec<HostFacts>, crate::error::Error> {
    let runtime = runtime()?;
    let connector = Arc::new(SshConnector::new(ssh_options(inventory, ssh)));
    Ok(runtime.block_on(crate::facts::gather(
        connector,
        probe_targets(inventory),
        concurrency(inventory, ssh),
        PROBE_TIMEOUT,
    )))
}

pub fn runtime() -> Result<tokio::runtime::Runtime, crate::error::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(crate::error::Error::Runtime)
}
