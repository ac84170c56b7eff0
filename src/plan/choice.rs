//! The procedure choice: standard when the upgrade docs' conditions hold, bootstrap when they
//! do not (with the failed conditions as reasons), a refusal when neither is safe. Pure.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::facts::{Consensus, HostFacts, Peerset};
use crate::inventory::{HostName, Version};
use crate::journal::RunId;

/// The two upgrade procedures of the IPFS Cluster docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcedureKind {
    /// Swap binaries everywhere, restart every peer at once with `daemon --upgrade`.
    Standard,
    /// One peer at a time (stop, swap, start, wait until it is back with every peer and pin),
    /// the others serving throughout: no downtime. Only inside one RPC protocol.
    Rolling,
    /// `peers rm` all but one peer, upgrade that one, bootstrap the others to it.
    Bootstrap,
    /// Disaster recovery (`cluster-upgrade recover`): restore a surviving state on one peer,
    /// upgrade it alone, bootstrap the others to it. Never chosen by `plan` or `apply`.
    Recover,
    /// raft → crdt on the running version (`cluster-upgrade migrate-consensus`): export, switch
    /// every `service.json` to CRDT, import on one peer, start it, then the others. Never
    /// chosen by `plan` or `apply`.
    Migrate,
    /// Back to the release a finished or failed run replaced (`cluster-upgrade rollback`): the
    /// previous binaries from the run's backup on each host it swapped, one peer at a time, the
    /// others serving. Never chosen by `plan` or `apply`.
    Rollback,
}

impl ProcedureKind {
    /// One peer at a time, the others serving and taking pins throughout.
    pub fn keeps_serving(self) -> bool {
        matches!(self, ProcedureKind::Rolling | ProcedureKind::Rollback)
    }

    pub fn name(self) -> &'static str {
        match self {
            ProcedureKind::Standard => "standard",
            ProcedureKind::Rolling => "rolling",
            ProcedureKind::Bootstrap => "bootstrap",
            ProcedureKind::Recover => "recover",
            ProcedureKind::Migrate => "migrate-consensus",
            ProcedureKind::Rollback => "rollback",
        }
    }
}

impl fmt::Display for ProcedureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The planner's decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub procedure: ProcedureKind,
    /// The version every peer runs now (the lowest, when they differ).
    pub from: Version,
    pub to: Version,
    /// Why this procedure: the conditions checked, or the ones that failed.
    pub reasons: Vec<String>,
    /// Overrides the operator asked for against the facts.
    pub warnings: Vec<String>,
    /// The peer that keeps the state in the bootstrap procedure (the others bootstrap to it).
    pub anchor: Option<HostName>,
    /// Intermediate releases the upgrade passes through, in order (0.9 → 0.10 → 1.x).
    #[serde(default)]
    pub via: Vec<Version>,
    /// The run a rollback undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<RunId>,
}

/// Why no procedure is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("host {host} is unreachable ({reason}); no procedure can upgrade a peer it cannot reach: fix access to it, or remove it from the cluster and the inventory first")]
    Unreachable { host: HostName, reason: String },
    #[error("host {host}: ipfs-cluster-service was not found or did not report its version; check bin_dir for this host")]
    NotInstalled { host: HostName },
    #[error("host {host}: its peer's systemd unit cannot be driven: {why}; check `systemd_unit` for this host (`systemctl cat` and `systemctl show` of that unit)")]
    UnitUnusable { host: HostName, why: String },
    #[error(
        "host {host} runs {current}, newer than the target {target}; downgrades are not supported"
    )]
    Downgrade {
        host: HostName,
        current: Version,
        target: Version,
    },
    #[error("every peer already runs {target}; nothing to do")]
    AlreadyAtTarget { target: Version },
    #[error("{from} → {to} cannot be done directly: {from} keeps raft state format {format}, which {to} cannot read (only 0.10.x migrates it, and 0.11 removed `state upgrade`). Upgrade to 0.10.1 first, then to {to}")]
    UnsupportedJump {
        from: Version,
        to: Version,
        format: u8,
    },
    #[error("{from} → {to} must pass through a 0.10.x release (only 0.10 migrates raft state format {format}, and 0.11 removed `state upgrade`), but none is available in {looked_in}: add one (with its SHA256SUMS or sha256 entry) to plan both stages, or upgrade to 0.10.1 first")]
    IntermediateMissing {
        from: Version,
        to: Version,
        format: u8,
        looked_in: String,
    },
    #[error("no running peer holds the cluster state, so there is no peer to keep it during the bootstrap procedure; start a peer, or use `cluster-upgrade recover`")]
    NoAnchor,
    #[error("the inventory does not describe the whole cluster: {}", problems.join("; "))]
    NotWholeCluster { problems: Vec<String> },
    #[error("every peer already runs {target}, but the cluster is not healthy: {}; nothing to upgrade, repair it first", problems.join("; "))]
    AtTargetUnhealthy {
        target: Version,
        problems: Vec<String>,
    },
    #[error("the peers use different consensus components ({hosts}); every peer of a cluster must use the same one (switching means `state export`, a new `init --consensus` and `state import`): fix the cluster first")]
    MixedConsensus { hosts: String },
    #[error("the bootstrap procedure is for raft clusters (it removes peers from the raft peerset and cleans their raft state); this cluster uses crdt consensus: use the standard procedure, which the IPFS Cluster docs give for 1.x (replace the binaries, restart the peers)")]
    BootstrapOnCrdt,
    #[error("the pebble datastore cannot be carried to the target as it is: {0}")]
    PebbleHazard(#[source] super::pebble::PebbleProblem),
    #[error("the rolling procedure (one peer at a time) is unsafe here: {failed}; use the standard procedure")]
    RollingUnsafe { failed: String },
    #[error("this crdt cluster fails the standard procedure's conditions ({failed}), and the bootstrap procedure is for raft clusters only: fix the cluster first, or force the standard procedure with --procedure standard")]
    CrdtNotReady { failed: String },
    #[error("host {host}: {problem}")]
    Container { host: HostName, problem: String },
}

/// Chooses the procedure for upgrading every host in `facts` (inventory order) to `target`.
/// `requested` is the operator's `--procedure`, which wins with a warning when unsafe.
pub fn choose(
    facts: &[HostFacts],
    target: Version,
    requested: Option<ProcedureKind>,
) -> Result<Choice, Refusal> {
    let mut versions = Vec::with_capacity(facts.len());
    for host in facts {
        if let Some(reason) = &host.unreachable {
            return Err(Refusal::Unreachable {
                host: host.host.clone(),
                reason: reason.clone(),
            });
        }
        let version = host.service_version.ok_or_else(|| Refusal::NotInstalled {
            host: host.host.clone(),
        })?;
        if let Some(why) = host.unit.as_ref().and_then(|unit| unit.problem()) {
            return Err(Refusal::UnitUnusable {
                host: host.host.clone(),
                why,
            });
        }
        if version > target {
            return Err(Refusal::Downgrade {
                host: host.host.clone(),
                current: version,
                target,
            });
        }
        versions.push(version);
    }
    let from = versions.iter().min().copied().unwrap_or(target);
    if versions.iter().all(|v| *v == target) {
        return Err(Refusal::AlreadyAtTarget { target });
    }
    if let Some(format) = from
        .state_format()
        .filter(|f| *f < 6 && target.state_format().is_none())
    {
        return Err(Refusal::UnsupportedJump {
            from,
            to: target,
            format,
        });
    }

    // Recovery and migration are planned by `crate::recover` and `crate::migrate`, never here.
    let requested = requested.filter(|kind| {
        !matches!(
            kind,
            ProcedureKind::Recover | ProcedureKind::Migrate | ProcedureKind::Rollback
        )
    });
    let consensus = cluster_consensus(facts)?;
    let failed = standard_conditions_failing(facts, &versions, consensus);
    let rolling_failed = rolling_conditions_failing(facts, &versions, target, consensus);
    if consensus == Consensus::Crdt {
        match requested {
            Some(ProcedureKind::Bootstrap) => return Err(Refusal::BootstrapOnCrdt),
            None if !failed.is_empty() && !rolling_failed.is_empty() => {
                return Err(Refusal::CrdtNotReady {
                    failed: failed.join("; "),
                })
            }
            _ => {}
        }
    }
    if requested == Some(ProcedureKind::Rolling) && !rolling_failed.is_empty() {
        return Err(Refusal::RollingUnsafe {
            failed: rolling_failed.join("; "),
        });
    }
    let pebble = super::pebble::pebble_plan(facts, target).map_err(Refusal::PebbleHazard)?;
    let mut warnings = followers_warning(consensus, (from, target), facts)
        .into_iter()
        .collect::<Vec<_>>();
    let procedure = match requested {
        None if rolling_failed.is_empty() => ProcedureKind::Rolling,
        Some(ProcedureKind::Standard) if !failed.is_empty() => {
            warnings.push(format!(
                "standard procedure forced although it is unsafe: {}",
                failed.join("; ")
            ));
            ProcedureKind::Standard
        }
        Some(kind) => kind,
        None if failed.is_empty() => ProcedureKind::Standard,
        None => ProcedureKind::Bootstrap,
    };
    let reasons = match (procedure, failed.is_empty()) {
        (ProcedureKind::Rolling, _) => rolling_reasons(facts, target, consensus),
        (ProcedureKind::Standard, true) => {
            let mut reasons = standard_reasons(facts, from, consensus);
            if requested.is_none() {
                reasons.extend(rolling_failed.iter().map(|r| format!("not rolled: {r}")));
            }
            reasons
        }
        (ProcedureKind::Standard, false) => failed,
        (ProcedureKind::Bootstrap, false) => failed,
        (ProcedureKind::Bootstrap, true) => vec![
            "bootstrap procedure requested with --procedure; the standard one would also be safe"
                .to_string(),
        ],
        (ProcedureKind::Recover | ProcedureKind::Migrate | ProcedureKind::Rollback, _) => {
            unreachable!("recover, migrate and rollback are filtered out above")
        }
    };
    let anchor = match procedure {
        ProcedureKind::Bootstrap | ProcedureKind::Recover | ProcedureKind::Migrate => {
            Some(choose_anchor(facts).ok_or(Refusal::NoAnchor)?)
        }
        ProcedureKind::Standard | ProcedureKind::Rolling | ProcedureKind::Rollback => None,
    };
    let mut reasons = reasons;
    if let super::pebble::PebblePlan::Raise { to, hosts } = &pebble {
        let behind: Vec<String> = hosts
            .iter()
            .map(|h| format!("{} (format {})", h.host, h.format))
            .collect();
        reasons.push(format!(
            "pebble stores older than {target} opens: {}; first, one peer at a time, format_major_version is raised to {to} in service.json and the peer restarted on {from}, which rewrites its store",
            behind.join(", ")
        ));
    }
    reasons.extend(units_reason(facts));
    Ok(Choice {
        procedure,
        from,
        to: target,
        reasons,
        warnings,
        anchor,
        via: Vec::new(),
        undoes: None,
    })
}

/// The cluster's consensus: the one every peer's config names (raft when none could be read:
/// releases before 0.11 have nothing else). Peers that disagree are refused.
fn cluster_consensus(facts: &[HostFacts]) -> Result<Consensus, Refusal> {
    let known: BTreeSet<&str> = facts
        .iter()
        .filter_map(|h| h.consensus.map(Consensus::name))
        .collect();
    if known.len() > 1 {
        let hosts: Vec<String> = facts
            .iter()
            .map(|h| {
                let consensus = h.consensus.map_or("unknown", Consensus::name);
                format!("{} {consensus}", h.host)
            })
            .collect();
        return Err(Refusal::MixedConsensus {
            hosts: hosts.join(", "),
        });
    }
    Ok(match known.first() {
        Some(&"crdt") => Consensus::Crdt,
        _ => Consensus::Raft,
    })
}

/// The upgrade docs' conditions for restarting every peer at once, each failed one described.
fn standard_conditions_failing(
    facts: &[HostFacts],
    versions: &[Version],
    consensus: Consensus,
) -> Vec<String> {
    let mut failed = Vec::new();
    let distinct: BTreeSet<&Version> = versions.iter().collect();
    if distinct.len() > 1 {
        let list: Vec<String> = facts
            .iter()
            .zip(versions)
            .map(|(f, v)| format!("{} {v}", f.host))
            .collect();
        failed.push(format!(
            "peers run different versions ({})",
            list.join(", ")
        ));
    }
    for host in facts.iter().filter(|h| !h.running) {
        failed.push(format!(
            "{}, so its membership of the peerset cannot be checked",
            host.not_running()
        ));
    }
    let expected = Peerset::expected(facts);
    for host in facts.iter().filter(|h| h.running) {
        if let Some(mismatch) = peerset_mismatch(host, &expected) {
            failed.push(format!("peerset mismatch: {mismatch}"));
        }
        for error in &host.peer_errors {
            failed.push(format!(
                "{} reports peer {} with an error: {}",
                host.host, error.peer_id, error.error
            ));
        }
    }
    // A crdt peer has no raft peerset to leave (its leave on shutdown removes nothing).
    let raft = consensus == Consensus::Raft;
    for host in facts
        .iter()
        .filter(|h| raft && h.leave_on_shutdown == Some(true))
    {
        failed.push(format!("{} has leave_on_shutdown: true, so stopping it removes it from the peerset and a plain restart would not rejoin", host.host));
    }
    failed
}

/// Followers (`ipfs-cluster-follow`) of a crdt cluster are run by others and cannot be
/// upgraded by this run: when the RPC protocol changes they stop syncing until they upgrade.
/// What the planning probe read of the peers' systemd units (`systemctl show`), in one line:
/// each distinct command line a flagged start runs, the user and the drop-ins.
fn units_reason(facts: &[HostFacts]) -> Option<String> {
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for host in facts {
        let Some(unit) = &host.unit else { continue };
        let drop_ins: Vec<&str> = unit
            .drop_ins
            .iter()
            .map(|path| path.rsplit('/').next().unwrap_or(path))
            .collect();
        let text = format!(
            "`{}` as {}{}",
            unit.exec_start.join(" "),
            unit.user.as_deref().unwrap_or("root"),
            if drop_ins.is_empty() {
                String::new()
            } else {
                format!(" (drop-ins: {})", drop_ins.join(", "))
            }
        );
        match seen.iter_mut().find(|(t, _)| *t == text) {
            Some((_, hosts)) => hosts.push(host.host.to_string()),
            None => seen.push((text, vec![host.host.to_string()])),
        }
    }
    if seen.is_empty() {
        return None;
    }
    let units = seen
        .iter()
        .map(|(text, hosts)| format!("{}: {text}", hosts.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    Some(format!(
        "systemd units as loaded: {units}; a start with --upgrade or --bootstrap runs that command line with the flag, \
         through a runtime drop-in (zz-cluster-upgrade.conf) removed right after it"
    ))
}

/// The followers the probe saw (on the hosts' logins) are named.
fn followers_warning(
    consensus: Consensus,
    (from, to): (Version, Version),
    facts: &[HostFacts],
) -> Option<String> {
    let seen: Vec<String> = facts
        .iter()
        .flat_map(|f| {
            f.followers
                .iter()
                .map(move |name| format!("{name} on {}", f.host))
        })
        .collect();
    let (old, new) = (
        super::protocol::protocol_of(from),
        super::protocol::protocol_of(to),
    );
    (consensus == Consensus::Crdt && old != new).then(|| {
        format!(
            "the RPC protocol changes ({} → {}): followers of this crdt cluster (ipfs-cluster-follow, often run by others) stop syncing until they upgrade to {to} too; tell their operators{}",
            old.as_deref().unwrap_or("unknown"),
            new.as_deref().unwrap_or("unknown"),
            if seen.is_empty() {
                String::new()
            } else {
                format!(" (followers seen: {})", seen.join(", "))
            }
        )
    })
}

/// What a rolling upgrade needs: a healthy cluster whose every peer sees the whole peerset,
/// peers of the current and the target version that work together (one RPC protocol, no known
/// break), and for raft a quorum that survives one peer down (at least 3 peers).
fn rolling_conditions_failing(
    facts: &[HostFacts],
    versions: &[Version],
    target: Version,
    consensus: Consensus,
) -> Vec<String> {
    // Different versions are fine (an interrupted rolling upgrade), when each works with the target.
    let mut failed: Vec<String> = standard_conditions_failing(facts, versions, consensus)
        .into_iter()
        .filter(|f| !f.starts_with("peers run different versions"))
        .collect();
    let distinct: BTreeSet<Version> = versions.iter().copied().collect();
    failed.extend(
        distinct
            .iter()
            .filter(|v| **v != target)
            .filter_map(|v| super::protocol::mixed_versions_problem(*v, target)),
    );
    for host in facts {
        let expected = host.service_version.and_then(super::protocol::protocol_of);
        if let (Some(seen), Some(expected)) = (&host.rpc_protocol, expected) {
            if *seen != expected {
                failed.push(format!(
                    "{} speaks {seen}, not the {expected} of its release",
                    host.host
                ));
            }
        }
    }
    if facts.len() < 2 {
        failed.push("a cluster of one peer is down while that peer restarts".to_string());
    } else if consensus == Consensus::Raft && facts.len() < 3 {
        failed.push(format!(
            "a raft cluster of {} peers loses its quorum while one of them is down",
            facts.len()
        ));
    }
    failed
}

fn rolling_reasons(facts: &[HostFacts], target: Version, consensus: Consensus) -> Vec<String> {
    let protocol = super::protocol::protocol_of(target).unwrap_or_default();
    let quorum = match consensus {
        Consensus::Crdt => "crdt consensus: every other peer keeps accepting pins and serving while one restarts".to_string(),
        Consensus::Raft => format!(
            "raft consensus with {} peers: one down leaves a quorum, so the cluster keeps accepting pins",
            facts.len()
        ),
    };
    vec![
        "every peer is reachable and running, and sees the same peerset, which is exactly the inventory's peers".to_string(),
        format!("every peer's release and {target} speak {protocol}, with no known break between them: peers of both versions work together (the upgrade docs allow restarting the peers sequentially)"),
        quorum,
        "each peer is stopped, swapped and started alone (steps marked rolling), and the next one only once it runs the target, sees every peer, reaches IPFS and lists no fewer pins than planned".to_string(),
    ]
}

fn standard_reasons(facts: &[HostFacts], from: Version, consensus: Consensus) -> Vec<String> {
    if consensus == Consensus::Crdt {
        return vec![
            format!("every peer is reachable and runs {from}"),
            "every peer sees the same peerset, which is exactly the inventory's peers".to_string(),
            "the cluster uses crdt consensus: no leader to elect and no raft peerset to leave; each restarted peer rejoins through its peerstore and syncs the pinset".to_string(),
            "the IPFS Cluster docs upgrade 1.x clusters by replacing the binaries and restarting the peers, sequentially or at once: all at once here".to_string(),
        ];
    }
    let timeouts: BTreeSet<&str> = facts
        .iter()
        .filter_map(|h| h.wait_for_leader_timeout.as_deref())
        .collect();
    vec![
        format!("every peer is reachable and runs {from}"),
        "every peer sees the same peerset, which is exactly the inventory's peers".to_string(),
        "leave_on_shutdown is false on every peer, so a stopped peer stays in the raft peerset".to_string(),
        format!(
            "all peers restart at once, well inside wait_for_leader_timeout ({}) + 5 s, so a leader is elected",
            if timeouts.is_empty() { "default 15s".to_string() } else { timeouts.into_iter().collect::<Vec<_>>().join(", ") }
        ),
    ]
}

/// The peer that keeps the state: a running one with the most pins, the last such in
/// inventory order (the docs keep "the last" peer).
fn choose_anchor(facts: &[HostFacts]) -> Option<HostName> {
    facts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.running && h.peer_id.is_some())
        .max_by_key(|(index, h)| (h.pins.as_ref().map_or(0, |p| p.count), *index))
        .map(|(_, h)| h.host.clone())
}

/// How the peerset `host` sees differs from `expected` (every peer of the inventory), if it
/// does. Digests tell whether two peersets differ, not which peers: the counts say which way.
fn peerset_mismatch(host: &HostFacts, expected: &Peerset) -> Option<String> {
    let name = &host.host;
    let Some(seen) = &host.peerset else {
        return Some(format!("{name} did not report the peers it sees"));
    };
    if seen == expected {
        return None;
    }
    let (count, all) = (seen.count, expected.count);
    let what = match count.cmp(&all) {
        std::cmp::Ordering::Less => {
            format!("{name} does not see every peer: it sees {count} of the inventory's {all}")
        }
        std::cmp::Ordering::Greater => format!(
            "{name} sees peers outside the inventory: {count} peers, the inventory's hosts are {all}"
        ),
        std::cmp::Ordering::Equal => {
            format!("{name} sees {count} peers, but not the inventory's {all}")
        }
    };
    Some(format!(
        "{what} (peerset hash {}, expected {})",
        seen.short_hash(),
        expected.short_hash()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{PeerError, Pinset};

    fn peer(name: &str, version: &str, peers: &[&str]) -> HostFacts {
        HostFacts {
            host: name.into(),
            service_version: Some(version.parse().unwrap()),
            running: true,
            peer_id: Some(format!("Qm{name}")),
            peerset: Some(Peerset::from_ids(
                &peers.iter().map(|p| format!("Qm{p}")).collect::<Vec<_>>(),
            )),
            leave_on_shutdown: Some(false),
            pins: Some(Pinset::from_cids(["QmX".to_string()])),
            ..HostFacts::default()
        }
    }

    fn cluster(version: &str) -> Vec<HostFacts> {
        ["h1", "h2", "h3"]
            .iter()
            .map(|h| peer(h, version, &["h1", "h2", "h3"]))
            .collect()
    }

    const V010: Version = Version::new(0, 10, 1);

    #[test]
    fn same_version_and_peerset_chooses_standard() {
        let choice = choose(&cluster("0.9.0"), V010, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Standard);
        assert_eq!(choice.anchor, None);
        assert!(choice.reasons.iter().any(|r| r.contains("runs 0.9.0")));
    }

    #[test]
    fn mixed_versions_choose_bootstrap_and_say_so() {
        let mut facts = cluster("0.9.0");
        facts[1].service_version = Some(V010);
        let choice = choose(&facts, V010, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Bootstrap);
        assert!(
            choice.reasons[0].contains("different versions (h1 0.9.0, h2 0.10.1, h3 0.9.0)"),
            "{:?}",
            choice.reasons
        );
    }

    #[test]
    fn peerset_mismatch_chooses_bootstrap_and_says_how_the_peerset_differs() {
        let mut facts = cluster("0.9.0");
        facts[0].peerset = Some(Peerset::from_ids(&["Qmh1", "Qmh2"]));
        facts[1].peerset = Some(Peerset::from_ids(&["Qmh1", "Qmh2", "Qmh3", "Qmx"]));
        facts[2].peerset = Some(Peerset::from_ids(&["Qmh1", "Qmh2", "Qmx"]));
        let choice = choose(&facts, V010, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Bootstrap);
        let expected = Peerset::from_ids(&["Qmh1", "Qmh2", "Qmh3"]);
        let hash = |ids: &[&str]| Peerset::from_ids(ids).short_hash().to_string();
        for reason in [
            format!(
                "peerset mismatch: h1 does not see every peer: it sees 2 of the inventory's 3 (peerset hash {}, expected {})",
                hash(&["Qmh1", "Qmh2"]),
                expected.short_hash()
            ),
            format!(
                "peerset mismatch: h2 sees peers outside the inventory: 4 peers, the inventory's hosts are 3 (peerset hash {}, expected {})",
                hash(&["Qmh1", "Qmh2", "Qmh3", "Qmx"]),
                expected.short_hash()
            ),
            format!(
                "peerset mismatch: h3 sees 3 peers, but not the inventory's 3 (peerset hash {}, expected {})",
                hash(&["Qmh1", "Qmh2", "Qmx"]),
                expected.short_hash()
            ),
        ] {
            assert!(choice.reasons.contains(&reason), "{reason}\n{:?}", choice.reasons);
        }
    }

    #[test]
    fn a_running_peer_without_a_peerset_fails_the_standard_conditions() {
        let mut facts = cluster("0.9.0");
        facts[1].peerset = None;
        let choice = choose(&facts, V010, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Bootstrap);
        assert!(
            choice
                .reasons
                .contains(&"peerset mismatch: h2 did not report the peers it sees".to_string()),
            "{:?}",
            choice.reasons
        );
    }

    #[test]
    fn peers_without_ids_agree_on_the_empty_peerset() {
        // Facts recorded without peer IDs (as bench/plan-scale's lean shape): nothing differs.
        let mut facts = cluster("0.9.0");
        for host in &mut facts {
            host.peer_id = None;
            host.peerset = Some(Peerset::from_ids::<&str>(&[]));
        }
        assert_eq!(
            choose(&facts, V010, None).unwrap().procedure,
            ProcedureKind::Standard
        );
    }

    #[test]
    fn leave_on_shutdown_chooses_bootstrap() {
        let mut facts = cluster("0.9.0");
        facts[2].leave_on_shutdown = Some(true);
        let choice = choose(&facts, V010, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Bootstrap);
        assert!(choice
            .reasons
            .iter()
            .any(|r| r.starts_with("h3 has leave_on_shutdown: true")));
    }

    #[test]
    fn peer_errors_and_stopped_peers_fail_the_standard_conditions() {
        let mut facts = cluster("1.0.8");
        facts[0].peer_errors = vec![PeerError {
            peer_id: "Qmh2".into(),
            error: "protocol not supported".into(),
        }];
        facts[2].running = false;
        let choice = choose(&facts, "1.1.6".parse().unwrap(), None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Bootstrap);
        assert_eq!(
            choice.anchor.as_deref(),
            Some("h2"),
            "the last running peer keeps the state"
        );
        assert!(choice
            .reasons
            .iter()
            .any(|r| r.contains("h3 is not running")));
        assert!(choice
            .reasons
            .iter()
            .any(|r| r.contains("protocol not supported")));
    }

    #[test]
    fn unreachable_peer_is_refused_with_the_reason() {
        let mut facts = cluster("0.9.0");
        facts[1] = HostFacts::unreachable(&"h2".into(), "connection refused".into());
        let refusal = choose(&facts, V010, None).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Unreachable {
                host: "h2".into(),
                reason: "connection refused".into()
            }
        );
    }

    #[test]
    fn unsupported_jump_is_refused_with_the_intermediate_release() {
        let refusal = choose(&cluster("0.9.0"), "1.1.6".parse().unwrap(), None).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::UnsupportedJump { format: 5, .. }
        ));
        assert!(refusal.to_string().contains("Upgrade to 0.10.1 first"));
        assert!(choose(&cluster("0.10.1"), "1.1.6".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn downgrade_and_no_op_are_refused() {
        assert!(matches!(
            choose(&cluster("0.10.1"), "0.9.0".parse().unwrap(), None),
            Err(Refusal::Downgrade { .. })
        ));
        assert!(matches!(
            choose(&cluster("0.10.1"), V010, None),
            Err(Refusal::AlreadyAtTarget { .. })
        ));
    }

    #[test]
    fn forcing_standard_when_unsafe_warns() {
        let mut facts = cluster("0.9.0");
        facts[0].leave_on_shutdown = Some(true);
        let choice = choose(&facts, V010, Some(ProcedureKind::Standard)).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Standard);
        assert!(choice.warnings[0].starts_with(
            "standard procedure forced although it is unsafe: h1 has leave_on_shutdown"
        ));
        let choice = choose(&cluster("0.9.0"), V010, Some(ProcedureKind::Bootstrap)).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Bootstrap);
        assert!(choice.warnings.is_empty());
    }

    fn crdt_cluster(version: &str) -> Vec<HostFacts> {
        let mut facts = cluster(version);
        for host in &mut facts {
            host.consensus = Some(Consensus::Crdt);
            host.wait_for_leader_timeout = None;
        }
        facts
    }

    #[test]
    fn a_crdt_cluster_inside_1_x_is_rolled_and_standard_keeps_crdt_reasons() {
        let to: Version = "1.1.6".parse().unwrap();
        let choice = choose(&crdt_cluster("1.0.8"), to, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Rolling);
        let reasons = choice.reasons.join("\n");
        assert!(reasons.contains("/ipfscluster/1.0/rpc"), "{reasons}");
        assert!(reasons.contains("crdt consensus"), "{reasons}");
        let choice = choose(&crdt_cluster("1.0.8"), to, Some(ProcedureKind::Standard)).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Standard);
        let reasons = choice.reasons.join("\n");
        assert!(reasons.contains("crdt consensus"), "{reasons}");
        assert!(
            !reasons.contains("raft") || reasons.contains("no raft peerset"),
            "{reasons}"
        );
        assert!(!reasons.contains("wait_for_leader_timeout"), "{reasons}");
        // leave_on_shutdown leaves no raft peerset on crdt: not a failed condition.
        let mut facts = crdt_cluster("1.0.8");
        facts[0].leave_on_shutdown = Some(true);
        assert_eq!(
            choose(&facts, to, None).unwrap().procedure,
            ProcedureKind::Rolling
        );
    }

    #[test]
    fn a_protocol_change_is_not_rolled_and_says_why() {
        // 0.9 → 0.10 changes the RPC protocol: standard, with the reason rolling was not chosen.
        let choice = choose(&cluster("0.9.0"), V010, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Standard);
        let reasons = choice.reasons.join("\n");
        assert!(
            reasons.contains("not rolled: the RPC protocol changes"),
            "{reasons}"
        );
        // 0.14 → 1.0 on crdt: standard, the protocol changes; followers are warned about.
        let choice = choose(&crdt_cluster("0.14.5"), "1.0.8".parse().unwrap(), None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Standard);
        assert!(choice.reasons.join("\n").contains("/ipfscluster/0.12/rpc"));
        assert!(
            choice.warnings[0].contains("followers of this crdt cluster"),
            "{:?}",
            choice.warnings
        );
        let mut seen = crdt_cluster("0.14.5");
        seen[1].followers = vec!["archive".into(), "mirror".into()];
        let choice = choose(&seen, "1.0.8".parse().unwrap(), None).unwrap();
        assert_eq!(
            choice.warnings[0],
            format!(
                "the RPC protocol changes (/ipfscluster/0.12/rpc → /ipfscluster/1.0/rpc): followers of this crdt cluster (ipfs-cluster-follow, often run by others) stop syncing until they upgrade to 1.0.8 too; tell their operators (followers seen: archive on {0}, mirror on {0})",
                seen[1].host
            )
        );
        let inside = choose(&crdt_cluster("1.0.8"), "1.1.6".parse().unwrap(), None).unwrap();
        assert!(inside.warnings.is_empty(), "{:?}", inside.warnings);
        // 0.13 → 0.14 shares the protocol but breaks metrics: not rolled.
        let choice = choose(&crdt_cluster("0.13.3"), "0.14.5".parse().unwrap(), None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Standard);
        assert!(choice.reasons.join("\n").contains("ipfs-cluster#1409"));
        // Asking for rolling there is refused with the reason.
        let refused = choose(&cluster("0.9.0"), V010, Some(ProcedureKind::Rolling)).unwrap_err();
        assert!(
            matches!(refused, Refusal::RollingUnsafe { .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("RPC protocol changes"),
            "{refused}"
        );
    }

    #[test]
    fn rolling_needs_a_quorum_that_survives_one_peer_down_on_raft() {
        let to: Version = "1.1.6".parse().unwrap();
        assert_eq!(
            choose(&cluster("1.0.8"), to, None).unwrap().procedure,
            ProcedureKind::Rolling
        );
        let two: Vec<HostFacts> = ["h1", "h2"]
            .iter()
            .map(|h| peer(h, "1.0.8", &["h1", "h2"]))
            .collect();
        let choice = choose(&two, to, None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Standard);
        assert!(choice.reasons.join("\n").contains("loses its quorum"));
        let mut two_crdt = two.clone();
        for host in &mut two_crdt {
            host.consensus = Some(Consensus::Crdt);
        }
        assert_eq!(
            choose(&two_crdt, to, None).unwrap().procedure,
            ProcedureKind::Rolling
        );
    }

    #[test]
    fn an_interrupted_roll_with_peers_on_both_versions_is_rolled_on() {
        let mut facts = crdt_cluster("1.0.8");
        facts[0].service_version = Some("1.1.6".parse().unwrap());
        let choice = choose(&facts, "1.1.6".parse().unwrap(), None).unwrap();
        assert_eq!(choice.procedure, ProcedureKind::Rolling);
        assert_eq!(choice.from, "1.0.8".parse().unwrap());
    }

    #[test]
    fn a_crdt_cluster_never_gets_the_raft_only_bootstrap_procedure() {
        let target = "1.1.6".parse().unwrap();
        assert_eq!(
            choose(
                &crdt_cluster("1.0.8"),
                target,
                Some(ProcedureKind::Bootstrap)
            ),
            Err(Refusal::BootstrapOnCrdt)
        );
        let mut facts = crdt_cluster("1.0.8");
        facts[2].running = false;
        let refusal = choose(&facts, target, None).unwrap_err();
        assert!(
            matches!(&refusal, Refusal::CrdtNotReady { failed } if failed.contains("h3 is not running")),
            "{refusal:?}"
        );
        // Forcing the standard procedure stays possible, with the warning.
        let forced = choose(&facts, target, Some(ProcedureKind::Standard)).unwrap();
        assert!(forced.warnings[0].contains("h3 is not running"));
    }

    #[test]
    fn peers_of_different_consensus_are_refused() {
        let mut facts = crdt_cluster("1.0.8");
        facts[1].consensus = Some(Consensus::Raft);
        let refusal = choose(&facts, "1.1.6".parse().unwrap(), None).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::MixedConsensus {
                hosts: "h1 crdt, h2 raft, h3 crdt".into()
            }
        );
        // Facts without a consensus (older releases, older facts files) are raft.
        let facts = cluster("0.9.0");
        assert_eq!(cluster_consensus(&facts), Ok(Consensus::Raft));
    }

    #[test]
    fn bootstrap_without_a_running_peer_is_refused() {
        let mut facts = cluster("0.9.0");
        for host in &mut facts {
            host.running = false;
        }
        assert_eq!(choose(&facts, V010, None), Err(Refusal::NoAnchor));
    }
}
