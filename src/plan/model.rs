//! The plan: everything `apply` will run, rendered, with the facts it was made from. Saved as
//! JSON; a resumed run executes the saved plan, never a silent re-plan.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choice::Choice;
use crate::facts::{HostFacts, ProbeVars};
use crate::inventory::{
    Address, HostName, Identity, Inventory, JumpHost, Port, Sha256, SshSettings, UserName,
};
use crate::journal::RunId;
use crate::procedure::{Mode, OnResume, RenderedStep, StepId};

/// The version of the plan file format. 2: the facts keep a peerset digest (`peerset`), not
/// the list of peer IDs (`cluster_peers`); a format-1 plan's facts fingerprint no longer matches
/// facts probed now, so it is refused rather than reported as stale. 3: compact JSON; a step's
/// host entries leave out what the step says for all of them and their `null` fields. 4: the
/// plan is sealed with a digest of its body, names its cluster (`cluster_id`) and records how
/// every host is reached (`reach`), so applying it never reads the inventory again.
pub const PLAN_FORMAT: u32 = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    /// The run this plan becomes when applied: names the run directory and the remote backup
    /// folder that the rendered commands use.
    pub run_id: RunId,
    /// Seconds since the Unix epoch when the plan was made.
    pub created_unix: u64,
    /// The inventory the plan was made from (canonical, absolute).
    pub inventory: PathBuf,
    pub cluster: String,
    /// The cluster the plan is for: runs are resumed only by a request for the same cluster.
    pub cluster_id: ClusterId,
    /// How every host was reached and probed when the plan was made (with `--var` and the
    /// command line's SSH options applied): a run of the plan connects exactly so.
    pub reach: Reach,
    /// The playbook the steps come from.
    pub playbook: PathBuf,
    pub choice: Choice,
    pub facts: Vec<HostFacts>,
    /// SHA-256 of the facts as JSON: `apply` probes again and compares before it starts.
    pub facts_fingerprint: Sha256,
    pub steps: Vec<PlannedStep>,
    /// Steps that run only on the peers the controller picks for them once the regular steps
    /// and the final checks are done (`on_demand:` in the playbook; for a rolling run, the
    /// resync of a peer whose pinset did not converge), one peer after another. Left out of
    /// the file when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_demand: Vec<PlannedStep>,
    pub expected_downtime: String,
    /// Backups the plan takes, in words (where and what).
    pub backups: Vec<String>,
}

/// One step of the procedure with its rendered command for every host it runs for. Written
/// without repeating on every host what the step's hosts share (see `file.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    pub id: StepId,
    pub name: String,
    pub mode: Mode,
    /// The executor takes a state backup before the first destructive step.
    pub destructive: bool,
    /// What resume does when this step was in flight when the run died.
    pub on_resume: OnResume,
    /// Before it starts, the executor checks that the cluster is still as planned.
    pub takes_quorum: bool,
    /// In host order; for a serial step, the order they run in.
    pub hosts: Vec<RenderedStep>,
}

/// Which cluster a plan or a run belongs to: the inventory file it was planned from, the
/// cluster's name and the addresses of its hosts. Two inventories in one folder (prod and
/// staging) never share one; editing the inventory's variables keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterId {
    /// The inventory's canonical absolute path.
    pub inventory: PathBuf,
    pub name: String,
    /// SHA-256 (first 16 hex digits) of the path, the name and every host's `address:port`.
    pub key: String,
}

impl ClusterId {
    /// The identity of the cluster `inventory` describes, read from `canonical_path`.
    pub fn of(inventory: &Inventory, canonical_path: PathBuf) -> ClusterId {
        use sha2::{Digest, Sha256};
        let mut addresses: Vec<String> = inventory
            .hosts
            .iter()
            .map(|host| format!("{}:{}", host.address, host.port))
            .collect();
        addresses.sort();
        let mut hash = Sha256::new();
        hash.update(canonical_path.as_os_str().as_encoded_bytes());
        hash.update([0]);
        hash.update(inventory.cluster.name.as_bytes());
        for address in &addresses {
            hash.update([0]);
            hash.update(address.as_bytes());
        }
        let key = hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        ClusterId {
            inventory: canonical_path,
            name: inventory.cluster.name.clone(),
            key,
        }
    }
}

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({})", self.name, self.inventory.display())
    }
}

/// How every host of a plan is reached and probed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    pub ssh: SshSettings,
    /// In inventory order.
    pub hosts: Vec<HostReach>,
}

/// One host's connection and probe settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReach {
    pub name: HostName,
    pub address: Address,
    pub port: Port,
    pub user: UserName,
    pub identity: Identity,
    /// The jump hosts it is reached through, first to last (none: directly).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jumps: Vec<JumpHost>,
    /// The user commands run as, through sudo (none: the login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<UserName>,
    pub probe: ProbeVars,
}

impl Reach {
    /// How to reach the hosts under the command line's SSH options.
    pub fn overridden(&self, overrides: &crate::inventory::SshOverrides) -> Reach {
        Reach {
            ssh: self.ssh.overridden(overrides),
            hosts: self.hosts.clone(),
        }
    }

    /// The inventory's hosts and `ssh:` settings (with `--var` already merged into its vars).
    pub fn of(inventory: &Inventory) -> Reach {
        Reach {
            ssh: inventory.ssh.clone(),
            hosts: inventory
                .hosts
                .iter()
                .map(|host| HostReach {
                    name: host.name.clone(),
                    address: host.address.clone(),
                    port: host.port,
                    user: host.user.clone(),
                    identity: host.identity.clone(),
                    jumps: host.jumps.clone(),
                    become_user: host.become_user.clone(),
                    probe: ProbeVars::of(&host.vars),
                })
                .collect(),
        }
    }
}

impl Plan {
    /// The on-demand steps of `hosts`, in the order they run: every step of one host, then the
    /// next host's.
    pub fn on_demand_for(&self, hosts: &[HostName]) -> Vec<PlannedStep> {
        hosts
            .iter()
            .flat_map(|host| {
                self.on_demand.iter().filter_map(move |step| {
                    let mine: Vec<RenderedStep> = step
                        .hosts
                        .iter()
                        .filter(|h| h.host == *host)
                        .cloned()
                        .collect();
                    (!mine.is_empty()).then(|| PlannedStep {
                        id: step.id.clone(),
                        name: step.name.clone(),
                        hosts: mine,
                        ..*step
                    })
                })
            })
            .collect()
    }

    /// The regular steps, then the on-demand steps of the hosts the run picked for them.
    pub fn steps_run(&self, picked: &[HostName]) -> Vec<PlannedStep> {
        let mut steps = self.steps.clone();
        steps.extend(self.on_demand_for(picked));
        steps
    }

    /// Every release the run passes through: source, intermediate ones, target.
    pub fn versions(&self) -> Vec<crate::inventory::Version> {
        let mut versions = vec![self.choice.from];
        versions.extend(self.choice.via.iter().copied());
        versions.push(self.choice.to);
        versions
    }

    /// SHA-256 over the facts' JSON, to notice that the cluster changed since planning.
    pub fn fingerprint(facts: &[HostFacts]) -> Sha256 {
        use sha2::Digest;
        // Streamed into the hash: the facts of a large cluster need no JSON copy in memory.
        struct Hashing(sha2::Sha256);
        impl std::io::Write for Hashing {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.update(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut hashing = Hashing(sha2::Sha256::new());
        // Free space and leases change by themselves (any write, another run): a plan is stale
        // when the cluster changed, and the lease is checked on its own.
        let lasting: Vec<HostFacts> = facts
            .iter()
            .map(|host| HostFacts {
                free_kib: None,
                lease: None,
                ..host.clone()
            })
            .collect();
        serde_json::to_writer(&mut hashing, &lasting).expect("facts serialize");
        Sha256::from_bytes(&hashing.0.finalize())
    }
}

#[cfg(test)]
impl Plan {
    /// A plan of `steps` on `hosts` (their facts only named), for tests of what reads plans.
    pub fn for_tests(hosts: &[&str], steps: Vec<PlannedStep>) -> Plan {
        let facts: Vec<crate::facts::HostFacts> = hosts
            .iter()
            .map(|h| crate::facts::HostFacts {
                host: h.parse().unwrap(),
                ..crate::facts::HostFacts::default()
            })
            .collect();
        let mut plan: Plan = serde_json::from_value(serde_json::json!({
            "format": PLAN_FORMAT, "run_id": "20261204T000000Z-0001", "created_unix": 0,
            "inventory": "/i.yaml", "cluster": "c",
            "cluster_id": {"inventory": "/i.yaml", "name": "c", "key": "k"},
            "reach": {"ssh": {"known_hosts": "/k", "accept_new_host_keys": false,
                "connect_timeout": "10s", "command_timeout": "2m", "max_concurrency": null},
                "hosts": []},
            "playbook": "p", "choice": {"procedure": "standard", "from": "1.0.8", "to": "1.1.6",
                "reasons": [], "warnings": [], "anchor": null},
            "facts": facts, "facts_fingerprint": "0".repeat(64), "steps": [],
            "expected_downtime": "", "backups": []
        }))
        .expect("a valid plan");
        plan.steps = steps;
        plan
    }
}
