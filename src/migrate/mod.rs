//! raft → crdt (`cluster-upgrade migrate-consensus INVENTORY --to crdt`): the conditions under
//! which a cluster can switch consensus, the plan (`playbooks/migrate-crdt.yaml` rendered for
//! every host, on the version the peers run) and the final check. Pure: no I/O.

mod plan;

pub use plan::{build_migration_plan, MigrationInputs};

use crate::facts::{Consensus, HostFacts, Pinset};
use crate::inventory::{HostName, Version};
use crate::message::HostNames;
use crate::plan::{health_problems, Plan};

/// The first release whose CHANGELOG documents the raft → crdt migration (export with raft,
/// re-init with CRDT, import) and whose `init` takes `--consensus`.
pub const FIRST_CRDT_MIGRATION: Version = Version::new(0, 11, 0);

/// The consensus a migration goes to (only CRDT: raft is the legacy one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetConsensus {
    Crdt,
}

/// Why a migration cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration refused: {0}")]
    Refused(#[from] MigrateRefusal),
    #[error(transparent)]
    Render(#[from] crate::procedure::RenderError),
}

/// Why a cluster cannot be migrated now.
#[derive(Debug, thiserror::Error)]
pub enum MigrateRefusal {
    #[error("every peer must answer before the migration: {}", problems.join("; "))]
    Unreachable { problems: Vec<String> },
    #[error("{} run{} the peer in a Docker container: migrate-consensus runs `ipfs-cluster-service state …` and `init` with the binaries on the host and has no Docker procedure yet", HostNames(hosts), if hosts.len() == 1 { "s" } else { "" })]
    Docker { hosts: Vec<HostName> },
    #[error("{} already use{} CRDT: nothing to migrate{}", HostNames(hosts), if hosts.len() == 1 { "s" } else { "" }, if *all { "" } else { " (a cluster mixing raft and CRDT peers is broken: fix it by hand first)" })]
    AlreadyCrdt { hosts: Vec<HostName>, all: bool },
    #[error("the consensus of {} is not known (no service.json consensus section read): refusing to guess", HostNames(hosts))]
    UnknownConsensus { hosts: Vec<HostName> },
    #[error("the peers run different versions ({versions}): a state is imported by the release that exported it, so every peer must run the same one; finish the upgrade first")]
    MixedVersions { versions: String },
    #[error("the peers run {version}: the raft → crdt migration needs {FIRST_CRDT_MIGRATION} or later (its `init --consensus crdt` and CRDT `state import`); upgrade first")]
    TooOld { version: Version },
    #[error("the cluster must be healthy before the migration (the export is checked against the pinset every peer lists now): {}", problems.join("; "))]
    Unhealthy { problems: Vec<String> },
}

/// Checks that the cluster can move to CRDT: every peer reachable, raft, the same version
/// (≥ 0.11), running and healthy with one pinset. Returns the version they run.
pub fn check_migration(facts: &[HostFacts]) -> Result<Version, MigrateRefusal> {
    let unreachable: Vec<String> = facts
        .iter()
        .filter_map(|f| Some(format!("{} ({})", f.host, f.unreachable.as_ref()?)))
        .collect();
    if !unreachable.is_empty() {
        return Err(MigrateRefusal::Unreachable {
            problems: unreachable,
        });
    }
    let docker: Vec<HostName> = facts
        .iter()
        .filter(|f| f.container.is_some())
        .map(|f| f.host.clone())
        .collect();
    if !docker.is_empty() {
        return Err(MigrateRefusal::Docker { hosts: docker });
    }
    let with = |consensus: Option<Consensus>| -> Vec<HostName> {
        facts
            .iter()
            .filter(|f| f.consensus == consensus)
            .map(|f| f.host.clone())
            .collect()
    };
    let crdt = with(Some(Consensus::Crdt));
    if !crdt.is_empty() {
        let all = crdt.len() == facts.len();
        return Err(MigrateRefusal::AlreadyCrdt { hosts: crdt, all });
    }
    let unknown = with(None);
    if !unknown.is_empty() {
        return Err(MigrateRefusal::UnknownConsensus { hosts: unknown });
    }
    let versions: std::collections::BTreeSet<Option<Version>> =
        facts.iter().map(|f| f.service_version).collect();
    let version = match versions.iter().collect::<Vec<_>>()[..] {
        [Some(version)] => *version,
        _ => {
            let text = facts
                .iter()
                .map(|f| {
                    let v = f.service_version.map_or("none".into(), |v| v.to_string());
                    format!("{} {v}", f.host)
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(MigrateRefusal::MixedVersions { versions: text });
        }
    };
    if version < FIRST_CRDT_MIGRATION {
        return Err(MigrateRefusal::TooOld { version });
    }
    let problems = health_problems(facts, version, Pinset::expected(facts).as_ref());
    if !problems.is_empty() {
        return Err(MigrateRefusal::Unhealthy { problems });
    }
    Ok(version)
}

/// The final check of a migration: every peer healthy on the version it ran, with CRDT
/// configured, listing the pinset planned (which the export held).
pub fn migration_problems(plan: &Plan, now: &[HostFacts]) -> Vec<String> {
    let mut problems = health_problems(now, plan.choice.to, Pinset::expected(&plan.facts).as_ref());
    for host in now.iter().filter(|f| f.unreachable.is_none()) {
        if host.consensus != Some(Consensus::Crdt) {
            let consensus = host.consensus.map_or("no known consensus", Consensus::name);
            problems.push(format!(
                "{} is configured with {consensus}, not crdt",
                host.host
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: usize, version: &str) -> HostFacts {
        let peers: Vec<String> = (1..=3).map(|i| format!("Qm{i}")).collect();
        HostFacts {
            host: format!("h{n}").parse().unwrap(),
            service_version: Some(version.parse().unwrap()),
            running: true,
            peer_id: Some(format!("Qm{n}")),
            peerset: Some(crate::facts::Peerset::from_ids(&peers)),
            pins: Some(crate::facts::pinset_of_listing("Qma\nQmb\n")),
            consensus: Some(Consensus::Raft),
            ..HostFacts::default()
        }
    }

    fn cluster(version: &str) -> Vec<HostFacts> {
        (1..=3).map(|n| peer(n, version)).collect()
    }

    #[test]
    fn a_healthy_raft_cluster_of_one_version_can_move_to_crdt() {
        assert_eq!(
            check_migration(&cluster("1.1.6")).unwrap(),
            Version::new(1, 1, 6)
        );
    }

    #[test]
    fn docker_hosts_are_refused_by_name() {
        let mut facts = cluster("1.1.6");
        facts[2].container = Some(crate::facts::ContainerFacts::Unreadable {
            reason: "stopped".into(),
        });
        assert_eq!(
            check_migration(&facts).unwrap_err().to_string(),
            "h3 runs the peer in a Docker container: migrate-consensus runs `ipfs-cluster-service state …` and `init` \
             with the binaries on the host and has no Docker procedure yet"
        );
    }

    #[test]
    fn a_crdt_peer_is_refused_whether_all_or_some_are() {
        let mut facts = cluster("1.1.6");
        facts[1].consensus = Some(Consensus::Crdt);
        let error = check_migration(&facts).unwrap_err().to_string();
        assert!(error.contains("h2 already uses CRDT"), "{error}");
        assert!(error.contains("mixing raft and CRDT"), "{error}");
        for f in &mut facts {
            f.consensus = Some(Consensus::Crdt);
        }
        let error = check_migration(&facts).unwrap_err().to_string();
        assert_eq!(error, "h1, h2, h3 already use CRDT: nothing to migrate");
    }

    #[test]
    fn versions_must_agree_and_be_recent_enough() {
        let mut facts = cluster("1.1.6");
        facts[0].service_version = Some(Version::new(1, 0, 8));
        let error = check_migration(&facts).unwrap_err().to_string();
        assert!(error.contains("h1 1.0.8, h2 1.1.6, h3 1.1.6"), "{error}");
        let error = check_migration(&cluster("0.10.1")).unwrap_err().to_string();
        assert!(error.contains("needs 0.11.0 or later"), "{error}");
    }

    #[test]
    fn unknown_consensus_unreachable_and_unhealthy_fail_closed() {
        let mut facts = cluster("1.1.6");
        facts[2].consensus = None;
        assert!(matches!(
            check_migration(&facts),
            Err(MigrateRefusal::UnknownConsensus { .. })
        ));
        let mut facts = cluster("1.1.6");
        facts[0].unreachable = Some("connection refused".into());
        let error = check_migration(&facts).unwrap_err().to_string();
        assert!(error.contains("h1 (connection refused)"), "{error}");
        let mut facts = cluster("1.1.6");
        facts[1].running = false;
        let error = check_migration(&facts).unwrap_err().to_string();
        assert!(error.contains("h2 is not running"), "{error}");
    }
}
