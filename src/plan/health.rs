//! What the cluster must look like, as problems in words: the final gate after a run, the
//! "already converged" check before one, the re-check right before a step that takes quorum
//! away, and whether the inventory describes the whole cluster. Pure.

use std::collections::BTreeMap;

use super::choice::ProcedureKind;
use crate::facts::{Consensus, HostFacts, Peerset, Pinset};
use crate::inventory::Version;

/// Every peer on `target`, running, seeing every other peer (and no unreachable one), listing
/// `expected_pins` (count and hash of the sorted CIDs) when known.
pub fn health_problems(
    now: &[HostFacts],
    target: Version,
    expected_pins: Option<&Pinset>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let all_peers = Peerset::expected(now);
    for host in now {
        let name = &host.host;
        if let Some(reason) = &host.unreachable {
            problems.push(format!("{name} is unreachable ({reason})"));
            continue;
        }
        if host.service_version != Some(target) {
            problems.push(format!(
                "{name} runs {}, not {target}",
                version_text(host.service_version)
            ));
        }
        if !host.running {
            problems.push(host.not_running());
            continue;
        }
        match &host.peerset {
            Some(seen) if *seen == all_peers => {}
            Some(seen) => problems.push(format!(
                "{name} sees {} peers (peerset hash {}), expected {} (hash {})",
                seen.count,
                seen.short_hash(),
                all_peers.count,
                all_peers.short_hash()
            )),
            None => problems.push(format!("{name} did not report the peers it sees")),
        }
        for error in &host.peer_errors {
            problems.push(format!(
                "{name} reports {} with an error: {}",
                error.peer_id, error.error
            ));
        }
        if let Some(expected) = expected_pins {
            problems.extend(pinset_problem(host, expected, |pins| {
                format!(
                    "{name} lists {} pins (hash {}), expected {} (hash {}): the pinset changed",
                    pins.count,
                    pins.short_hash(),
                    expected.count,
                    expected.short_hash()
                )
            }));
        }
    }
    problems
}

/// The final gate of a run: [`health_problems`] against the plan's target and the pinset the
/// cluster had when the plan was made.
pub fn final_gate_problems(
    planned: &[HostFacts],
    target: Version,
    now: &[HostFacts],
    procedure: ProcedureKind,
) -> Vec<String> {
    if !procedure.keeps_serving() {
        return health_problems(now, target, Pinset::expected(planned).as_ref());
    }
    // A rolling upgrade keeps the cluster in service: pins added meanwhile are welcome, and
    // peers that take writes never list one pinset at the same instant. Every peer lists at
    // least the pins planned.
    let mut problems = health_problems(now, target, None);
    let Some(planned) = Pinset::expected(planned) else {
        return problems;
    };
    for host in now.iter().filter(|h| h.running) {
        match &host.pins {
            Some(pins) if pins.count >= planned.count => {}
            Some(pins) => problems.push(format!(
                "{} lists {} pins, fewer than the {} planned: pins were lost",
                host.host, pins.count, planned.count
            )),
            None => problems.push(format!("{} did not list its pins", host.host)),
        }
    }
    problems
}

#[cfg(test)]
mod whole_view_tests {
    use super::*;

    fn peer(name: &str, sees: &[&str], pins: usize) -> HostFacts {
        HostFacts {
            host: name.into(),
            running: true,
            peer_id: Some(format!("Qm{name}")),
            peerset: Some(Peerset::from_ids(
                &sees.iter().map(|p| format!("Qm{p}")).collect::<Vec<_>>(),
            )),
            pins: Some(Pinset::from_cids((0..pins).map(|n| format!("Qm{n}")))),
            ..HostFacts::default()
        }
    }

    #[test]
    fn a_peer_that_saw_the_whole_cluster_keeps_that_view_but_not_its_old_pins() {
        let mut views = WholeViews::default();
        let all = ["a", "b", "c"];
        let first = views.merge(vec![
            peer("a", &all, 5),
            peer("b", &all, 5),
            peer("c", &["c"], 5),
        ]);
        assert!(settling(&first), "c sees only itself: settling");
        let second = views.merge(vec![
            peer("a", &["a"], 4),
            peer("b", &all, 5),
            peer("c", &all, 5),
        ]);
        assert!(!settling(&second), "a saw every peer a probe ago");
        assert_eq!(
            second[0].pins.as_ref().unwrap().count,
            4,
            "pins are always the latest"
        );
        let mut fresh = WholeViews::default();
        let never = fresh.merge(vec![
            peer("a", &["a"], 5),
            peer("b", &all, 5),
            peer("c", &all, 5),
        ]);
        assert!(settling(&never), "a never saw the others");
    }

    #[test]
    fn only_a_running_peer_that_lists_too_few_peers_is_a_flicker() {
        let all = ["a", "b", "c"];
        let crdt = |mut facts: HostFacts| {
            facts.consensus = Some(Consensus::Crdt);
            facts
        };
        let whole = vec![peer("a", &all, 5), peer("b", &all, 5), peer("c", &all, 5)]
            .into_iter()
            .map(crdt)
            .collect::<Vec<_>>();
        assert!(!views_flicker(&whole), "every peer sees every peer");
        let short = vec![
            peer("a", &["a", "b"], 5),
            peer("b", &all, 5),
            peer("c", &all, 5),
        ];
        let raft = short.clone();
        assert!(
            !views_flicker(&raft),
            "a raft peerset is configuration: it does not flicker"
        );
        let short: Vec<HostFacts> = short.into_iter().map(crdt).collect();
        assert!(views_flicker(&short), "a misses c: probe again");
        let mut down = short.clone();
        down[2].running = false;
        assert!(!views_flicker(&down), "c is down: waiting will not help");
    }
}

/// A peer still settling: not answering, not running, reporting a peer it cannot reach yet, or
/// seeing fewer peers than the cluster has (a crdt peer lists another only once that peer's
/// ping metric arrived).
pub fn settling(facts: &[HostFacts]) -> bool {
    let all = Peerset::expected(facts);
    facts.iter().any(|h| {
        !h.is_reachable()
            || !h.running
            || !h.peer_errors.is_empty()
            || h.peerset
                .as_ref()
                .is_some_and(|seen| seen.count < all.count)
    })
}

/// Whether the only thing wrong with a probe is a running crdt peer that lists fewer peers
/// than the cluster has: every host answers and runs. Under load a crdt peer lists another only
/// while that peer's last ping metric is fresh, so such a view is worth probing again (see
/// [`WholeViews`]); a peer that is down or unreachable is not, nor a raft peerset (its voters
/// are configuration, not pings).
pub fn views_flicker(facts: &[HostFacts]) -> bool {
    let all = Peerset::expected(facts);
    facts.iter().all(|h| h.is_reachable() && h.running)
        && facts.iter().any(|h| {
            h.consensus == Some(Consensus::Crdt) && !h.peer_errors.is_empty()
                || h.consensus == Some(Consensus::Crdt)
                    && h.peerset
                        .as_ref()
                        .is_some_and(|seen| seen.count < all.count)
        })
}

/// Each peer's latest view of the whole cluster across the final gate's probes. Under load, a
/// crdt peer's list of peers flickers (a peer is listed while its last ping metric is fresh):
/// every peer must have seen every other, not all of them in the same instant.
#[derive(Debug, Default)]
pub struct WholeViews {
    whole: Vec<Option<Peerset>>,
}

impl WholeViews {
    /// `now`, where a running peer that does not see the whole peerset now gets the peers it
    /// saw in its latest probe that did (everything else, versions and pins above all, is
    /// always the latest probe's).
    pub fn merge(&mut self, now: Vec<HostFacts>) -> Vec<HostFacts> {
        let all = Peerset::expected(&now);
        self.whole.resize(now.len(), None);
        now.into_iter()
            .zip(self.whole.iter_mut())
            .map(|(mut facts, kept)| {
                let whole = facts.running
                    && facts.peer_errors.is_empty()
                    && facts.peerset.as_ref() == Some(&all);
                if whole {
                    *kept = facts.peerset.clone();
                } else if facts.running && kept.is_some() {
                    facts.peerset = kept.clone();
                    facts.peer_errors.clear();
                }
                facts
            })
            .collect()
    }
}

/// Whether a cluster whose peers all run `target` needs nothing more: healthy, every peer
/// listing the same pinset. The problems when it does not.
pub fn converged_problems(facts: &[HostFacts], target: Version) -> Vec<String> {
    let mut problems = health_problems(facts, target, Pinset::expected(facts).as_ref());
    let pinsets: std::collections::BTreeSet<&str> = facts
        .iter()
        .filter_map(|f| f.pins.as_ref().map(|p| p.hash.as_str()))
        .collect();
    if pinsets.len() > 1 && problems.is_empty() {
        problems.push("the peers list different pinsets".to_string());
    }
    problems
}

/// How the cluster moved away from the plan's facts, for the check right before a step that
/// takes quorum away: a peer that ran when planned and no longer answers, or that answers with
/// another peer ID, or with a version that is neither its own from the plan nor one of
/// `versions` (those the run installs: a staged plan's second stage starts on the first's).
pub fn drift_problems(
    planned: &[HostFacts],
    versions: &[Version],
    now: &[HostFacts],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (before, after) in planned.iter().zip(now) {
        let name = &before.host;
        if let Some(reason) = &after.unreachable {
            problems.push(format!("{name} is no longer reachable ({reason})"));
            continue;
        }
        if before.running && !after.running {
            problems.push(format!(
                "{name}'s peer no longer answers (it ran when the plan was made)"
            ));
            continue;
        }
        let expected = after.service_version == before.service_version
            || after.service_version.is_some_and(|v| versions.contains(&v));
        if !expected {
            problems.push(format!(
                "{name} runs {} now, {} when the plan was made",
                version_text(after.service_version),
                version_text(before.service_version)
            ));
        }
        if after.running && after.peer_id.is_some() && after.peer_id != before.peer_id {
            problems.push(format!(
                "{name}'s peer ID is {} now, {} when the plan was made",
                after.peer_id.as_deref().unwrap_or("?"),
                before.peer_id.as_deref().unwrap_or("?")
            ));
        }
        for error in &after.peer_errors {
            problems.push(format!(
                "{name} reports {} with an error: {}",
                error.peer_id, error.error
            ));
        }
    }
    problems
}

/// The pinset moved away from the plan's, for the check right before a step that takes quorum
/// away in a procedure that carries exactly the planned pinset through a state export (the
/// standard and bootstrap upgrades, a consensus migration): a running peer that lists other
/// pins than the cluster held when planned, or none. Found there, the run stops with the
/// cluster still up; found only by the export's own check, it would stop with every peer down.
pub fn pinset_drift_problems(planned: &[HostFacts], now: &[HostFacts]) -> Vec<String> {
    let Some(expected) = Pinset::expected(planned) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let mut moved = false;
    for host in now.iter().filter(|h| h.running) {
        problems.extend(pinset_problem(host, &expected, |pins| {
            moved = true;
            format!(
                "{} lists {} pins ({}) now, the cluster held {} ({}) when the plan was made",
                host.host,
                pins.count,
                pins.short_hash(),
                expected.count,
                expected.short_hash()
            )
        }));
    }
    if moved {
        // Said once, however many peers list the new pins.
        problems.push(
            "pins were added or removed since the plan was made, and this upgrade carries exactly \
             the planned pinset through its state export, so a resume would stop here again: stop \
             writing pins to the cluster, then `cluster-upgrade runs abandon` this run and plan again"
                .to_string(),
        );
    }
    problems
}

/// `None` when `host` lists exactly `expected`; otherwise what is wrong: `differs` words a
/// host listing another pinset (given that pinset).
pub fn pinset_problem(
    host: &HostFacts,
    expected: &Pinset,
    differs: impl FnOnce(&Pinset) -> String,
) -> Option<String> {
    match &host.pins {
        Some(pins) if pins == expected => None,
        Some(pins) => Some(differs(pins)),
        None => Some(format!("{} did not list its pins", host.host)),
    }
}

/// Why the inventory does not describe the whole cluster: two hosts answering with one peer
/// ID (a copy-pasted host), or peers in the cluster that no host of the inventory is (a
/// forgotten host). An upgrade planned without them would leave the cluster broken.
pub fn membership_problems(facts: &[HostFacts]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for host in facts {
        if let Some(id) = &host.peer_id {
            by_id.entry(id).or_default().push(&host.host);
        }
    }
    for (id, hosts) in &by_id {
        if hosts.len() > 1 {
            problems.push(format!(
                "{} report the same peer ID {id}: they are one peer (a host listed twice, under two names or with a copied address)",
                hosts.join(" and ")
            ));
        }
    }
    let listed: std::collections::BTreeSet<&str> = facts
        .iter()
        .flat_map(|f| f.listed_peers.iter().map(String::as_str))
        .collect();
    let unknown: Vec<&str> = listed
        .into_iter()
        .filter(|id| !by_id.contains_key(id))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "the cluster's peerset holds {} peer(s) that no host of the inventory is: {}; add their hosts to the inventory (or remove them from the cluster first)",
            unknown.len(),
            unknown.join(", ")
        ));
    } else if let Some(host) = facts
        .iter()
        .find(|f| f.running && f.peerset.as_ref().is_some_and(|p| p.count > by_id.len()))
    {
        problems.push(format!(
            "{} sees {} peers, but the inventory's hosts are {} peers; add the missing hosts to the inventory",
            host.host,
            host.peerset.as_ref().map_or(0, |p| p.count),
            by_id.len()
        ));
    }
    problems
}

/// A version for messages: `0.9.0`, or `an unknown version`.
fn version_text(version: Option<Version>) -> String {
    version.map_or_else(|| "an unknown version".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PeerError;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn peer(name: &str, id: &str, ids: &[&str]) -> HostFacts {
        HostFacts {
            host: name.into(),
            service_version: Some(v("1.1.6")),
            running: true,
            peer_id: Some(id.into()),
            peerset: Some(Peerset::from_ids(ids)),
            pins: Some(Pinset::from_cids(["QmA".to_string()])),
            ..HostFacts::default()
        }
    }

    fn cluster() -> Vec<HostFacts> {
        let ids = ["Qm1", "Qm2", "Qm3"];
        vec![
            peer("h1", "Qm1", &ids),
            peer("h2", "Qm2", &ids),
            peer("h3", "Qm3", &ids),
        ]
    }

    #[test]
    fn a_healthy_cluster_on_its_target_has_converged_and_one_that_is_not_says_why() {
        assert!(converged_problems(&cluster(), v("1.1.6")).is_empty());
        let mut down = cluster();
        down[1].running = false;
        assert_eq!(converged_problems(&down, v("1.1.6")), ["h2 is not running"]);
        let mut lost = cluster();
        lost[2].pins = Some(Pinset::from_cids(Vec::<String>::new()));
        let problems = converged_problems(&lost, v("1.1.6"));
        assert!(problems[0].starts_with("h3 lists 0 pins"), "{problems:?}");
    }

    #[test]
    fn drift_names_a_peer_that_died_or_changed_since_the_plan() {
        let planned = cluster();
        assert!(drift_problems(&planned, &[], &planned).is_empty());
        let mut now = cluster();
        now[1].running = false;
        now[2].service_version = Some(v("1.1.5"));
        now[0].peer_errors = vec![PeerError {
            peer_id: "Qm2".into(),
            error: "dial backoff".into(),
        }];
        assert_eq!(
            drift_problems(&planned, &[v("1.1.5")], &now).len(),
            2,
            "a version the run installs"
        );
        let problems = drift_problems(&planned, &[], &now);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[1].contains("h2's peer no longer answers"));
        assert!(problems[2].contains("h3 runs 1.1.5 now, 1.1.6 when the plan was made"));
    }

    #[test]
    fn pins_written_since_the_plan_are_named_before_the_cluster_is_taken_down() {
        let planned = cluster();
        assert!(pinset_drift_problems(&planned, &planned).is_empty());
        let mut now = cluster();
        now[0].pins = Some(Pinset::from_cids(["QmA".to_string(), "QmB".to_string()]));
        now[1].running = false; // drift_problems names a peer that stopped
        now[2].pins = None;
        let problems = pinset_drift_problems(&planned, &now);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("h1 lists 2 pins (")
                && problems[0].contains("the cluster held 1 ("),
            "{problems:?}"
        );
        assert_eq!(problems[1], "h3 did not list its pins");
        assert!(problems[2].contains("stop writing pins"), "{problems:?}");
        let mut same_count = cluster();
        same_count[2].pins = Some(Pinset::from_cids(["QmZ".to_string()]));
        same_count[1].pins = Some(Pinset::from_cids(["QmZ".to_string()]));
        let problems = pinset_drift_problems(&planned, &same_count);
        assert_eq!(
            problems.len(),
            3,
            "a pin removed and another added (same count, other pinset) on two peers, and what to do, once: {problems:?}"
        );
        let mut unlisted = cluster();
        unlisted[0].pins = None;
        assert_eq!(
            pinset_drift_problems(&planned, &unlisted),
            ["h1 did not list its pins"],
            "no advice about writes when no peer listed other pins"
        );
    }

    #[test]
    fn a_copied_host_and_a_forgotten_one_are_named() {
        assert!(membership_problems(&cluster()).is_empty());
        let ids = ["Qm1", "Qm2", "Qm3", "Qm4"];
        let mut forgotten = vec![
            peer("h1", "Qm1", &ids),
            peer("h2", "Qm2", &ids),
            peer("h3", "Qm3", &ids),
        ];
        assert!(membership_problems(&forgotten)[0].contains("h1 sees 4 peers"));
        forgotten[0].listed_peers = ids.iter().map(|s| s.to_string()).collect();
        let problems = membership_problems(&forgotten);
        assert!(
            problems[0].contains("1 peer(s) that no host of the inventory is: Qm4"),
            "{problems:?}"
        );
        let copied = vec![
            peer("h1", "Qm1", &ids[..2]),
            peer("h2", "Qm2", &ids[..2]),
            peer("h3", "Qm2", &ids[..2]),
        ];
        assert!(
            membership_problems(&copied)[0].starts_with("h2 and h3 report the same peer ID Qm2")
        );
    }
}
