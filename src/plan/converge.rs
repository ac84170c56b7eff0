//! Whether the peers of a cluster that kept taking writes agree on its pins: the last check of a
//! rolling run. Pure.
//!
//! Counting pins cannot see this: under writes every peer lists more pins than planned, and no
//! two list the same set at the same instant. A peer can still miss pins for good: a real
//! 1.0.8 peer stopped while it merged CRDT updates ("error getting delta: context canceled",
//! "marking datastore as dirty") came back on 1.1.6 with a clean store and never fetched them
//! (seen with 5 real peers under 20 writes a second; see docs/adr/0015-pinset-convergence.md).
//! So the check takes the pins any peer listed when it began (`settled`) and waits until every
//! one of them is listed by every running peer, or by none (unpinned meanwhile).

use std::collections::{BTreeMap, BTreeSet};

use crate::facts::HostFacts;
use crate::inventory::HostName;

/// How many missing CIDs a problem names.
const NAMED: usize = 3;

/// The CIDs any running peer listed: what every peer must list once the cluster settled.
pub fn settled_pins(facts: &[HostFacts]) -> BTreeSet<String> {
    facts
        .iter()
        .filter(|h| h.running)
        .filter_map(|h| h.listed_cids.as_deref())
        .flat_map(|cids| cids.iter().cloned())
        .collect()
}

/// The pins of `settled` that a running peer lacks while another lists them, by peer; a running
/// peer that did not list its pins is there with `None`.
pub fn pinset_gaps(
    settled: &BTreeSet<String>,
    now: &[HostFacts],
) -> BTreeMap<HostName, Option<Vec<String>>> {
    let running: Vec<&HostFacts> = now.iter().filter(|h| h.running).collect();
    let mut gaps = BTreeMap::new();
    for host in &running {
        if host.listed_cids.is_none() {
            gaps.insert(host.host.clone(), None);
        }
    }
    let lists: Vec<(&HostName, &BTreeSet<String>)> = running
        .iter()
        .filter_map(|h| Some((&h.host, h.listed_cids.as_deref()?)))
        .collect();
    for cid in settled {
        let listing = lists.iter().filter(|(_, cids)| cids.contains(cid)).count();
        if listing == 0 || listing == lists.len() {
            continue;
        }
        for (host, cids) in &lists {
            if !cids.contains(cid) {
                gaps.entry((*host).clone())
                    .or_insert_with(|| Some(Vec::new()))
                    .as_mut()
                    .expect("a peer with a list")
                    .push(cid.clone());
            }
        }
    }
    gaps
}

/// The gaps in words, each naming the peer, how many pins it lacks and a few of them. What to
/// do about them depends on [`resync_choice`]: see [`NoResync::advice`].
pub fn gap_problems(
    gaps: &BTreeMap<HostName, Option<Vec<String>>>,
    waited: std::time::Duration,
) -> Vec<String> {
    gaps.iter()
        .map(|(host, missing)| match missing {
            None => format!("{host} did not list its pins"),
            Some(cids) => {
                let named: Vec<&str> = cids.iter().take(NAMED).map(String::as_str).collect();
                let more = if cids.len() > NAMED { ", …" } else { "" };
                format!(
                    "{host} still lacks {} pin(s) the other peers list after {}s ({}{more}): its \
                     CRDT store missed updates and will not fetch them by itself",
                    cids.len(),
                    waited.as_secs(),
                    named.join(", ")
                )
            }
        })
        .collect()
}

/// How far the lagging peers (the `Some` gaps of [`pinset_gaps`]) are behind the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// The settled pins they lack, in all.
    pub missing: usize,
    /// How many fewer pins they list than the running peer that lists most, in all.
    pub behind: usize,
}

/// The [`Lag`] of the peers in `gaps` among the running peers `now`.
pub fn lag(gaps: &BTreeMap<HostName, Option<Vec<String>>>, now: &[HostFacts]) -> Lag {
    let listed = |h: &HostFacts| h.listed_cids.as_deref().map(BTreeSet::len);
    let most = now
        .iter()
        .filter(|h| h.running)
        .filter_map(listed)
        .max()
        .unwrap_or(0);
    let behind = now
        .iter()
        .filter(|h| h.running && gaps.contains_key(&h.host))
        .filter_map(listed)
        .map(|n| most - n)
        .sum();
    Lag {
        missing: gaps.values().map(|m| m.as_ref().map_or(0, Vec::len)).sum(),
        behind,
    }
}

/// Whether lagging peers are still catching up: each probe's [`Lag`] is compared with the best
/// seen so far, and either measure reaching a new low is progress.
///
/// The settled pins alone do not show all of it: a blank (resynced) CRDT peer walks the DAG
/// from the newest head it hears of, so while the others take writes it spends a while merging
/// pins added after the check began before it reaches the settled ones it lacks (a resynced
/// real 1.1.6 peer, under 15 writes a second on a loaded machine, merged such pins for over
/// 30 s while the settled ones it lacked stayed as many).
/// Listing more pins faster than the others take them closes `behind`; a peer that lacks pins
/// for good only keeps pace with the writes, and makes no progress by either measure.
#[derive(Debug, Default)]
pub struct CatchUp {
    best: Option<Lag>,
}

impl CatchUp {
    /// Records `lag`; true when it is closer than any before by either measure (the first is).
    pub fn closer(&mut self, lag: Lag) -> bool {
        let closer = self
            .best
            .is_none_or(|best| lag.missing < best.missing || lag.behind < best.behind);
        let best = self.best.get_or_insert(lag);
        best.missing = best.missing.min(lag.missing);
        best.behind = best.behind.min(lag.behind);
        closer
    }
}

/// How long the convergence check waits for the peers to get closer to agreeing: CRDT peers
/// fetch missed updates when another peer rebroadcasts its heads, so twice the longest
/// `rebroadcast_interval` the peers are configured with (the real default, 1 minute, when none
/// is known), and never under 20 s.
pub fn convergence_patience(planned: &[HostFacts]) -> std::time::Duration {
    const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
    const LEAST: std::time::Duration = std::time::Duration::from_secs(20);
    let interval = planned
        .iter()
        .filter_map(|f| f.rebroadcast_interval)
        .max()
        .unwrap_or(DEFAULT_INTERVAL);
    (interval * 2).max(LEAST)
}

/// How long a pin must have been listed before the last probe to be judged by
/// [`resync_choice`]: a pin added through a lagging peer a moment ago may not have reached the
/// others yet (they fetch it within a second or so), and is no sign that the peer holds pins
/// no other peer has.
pub const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a rolling run may do about the peers that lack pins (the `Some` gaps of
/// [`pinset_gaps`]), given the plan it ran.
pub struct ResyncInputs<'a> {
    pub gaps: &'a BTreeMap<HostName, Option<Vec<String>>>,
    /// The facts the plan was made from (consensus, per peer).
    pub planned: &'a [HostFacts],
    /// The last probe of the convergence check, the one `gaps` came from.
    pub now: &'a [HostFacts],
    /// A probe of the same check that ended at least [`IN_FLIGHT`] before `now` began (the first
    /// one when none did).
    pub before: &'a [HostFacts],
    /// The hosts the plan has on-demand resync steps for.
    pub resyncable: &'a BTreeSet<HostName>,
    /// The hosts this run already resynced.
    pub resynced: &'a [HostName],
}

/// The peer to resync in this round, and why some other lagging peers wait for a later one
/// (those that may be resynced then are not named: each round picks one peer, on the probes
/// of a check made after the previous resync).
#[derive(Debug, PartialEq, Eq)]
pub struct Resync {
    pub host: HostName,
    /// One reason per lagging peer that holds pins no peer that lacks nothing lists.
    pub later: Vec<String>,
}

/// Why no lagging peer is resynced automatically.
#[derive(Debug, PartialEq, Eq)]
pub enum NoResync {
    /// A resync could lose pins, or its outcome is unknown: nobody should empty these peers
    /// before the cause is found.
    Unsafe(String),
    /// A resync would be safe, but this run cannot do it (no steps, or done once already).
    NotHere(String),
}

impl NoResync {
    /// What the operator may do about the lagging `hosts`, after the reason.
    pub fn advice(&self, hosts: &[HostName]) -> String {
        let hosts = crate::message::HostNames(hosts);
        match self {
            NoResync::Unsafe(why) => format!(
                "not resynced automatically: {why}; do not resync {hosts} by hand either before \
                 finding out why (`state cleanup` empties a peer, losing what only it holds)"
            ),
            NoResync::NotHere(why) => format!(
                "not resynced automatically: {why}; resync {hosts} by hand, one peer at a time \
                 (stop its peer, run `ipfs-cluster-service state cleanup` on it, start it: it \
                 fetches the whole pinset from the others), then run `cluster-upgrade status`"
            ),
        }
    }

    /// The reason alone.
    pub fn reason(&self) -> &str {
        match self {
            NoResync::Unsafe(why) | NoResync::NotHere(why) => why,
        }
    }
}

/// The lagging peer to resync in this round, or why none is resynced automatically (ADR 0019).
/// A resync empties a peer's CRDT store and lets it fetch the pinset from the others, so it is
/// done only when that loses nothing and can help:
/// - every lagging peer listed its pins and is a CRDT peer (otherwise it is unsafe), has the
///   plan's steps and was not resynced by this run already (it would not help twice);
/// - some running peer lacks nothing (it lists every pin of the check any peer lists): the
///   pinset a blank peer fetches is whole somewhere;
/// - a lagging peer is resynced only when every pin it listed [`IN_FLIGHT`] before the last
///   probe and still lists is listed by such a peer: emptying it loses no pin only it holds.
///   The others wait for a later round, and when all wait, none is resynced.
///
/// One peer per round: the checks run again after its resync, so the next peer is judged on
/// fresh probes, never on lists taken minutes before it is emptied.
pub fn resync_choice(inputs: &ResyncInputs<'_>) -> Result<Resync, NoResync> {
    let mut lagging = Vec::new();
    for (host, missing) in inputs.gaps {
        if missing.is_none() {
            return Err(NoResync::Unsafe(format!(
                "{host} did not list its pins, so what it lacks is unknown"
            )));
        }
        lagging.push(host.clone());
    }
    let whole: Vec<&BTreeSet<String>> = inputs
        .now
        .iter()
        .filter(|h| h.running && !inputs.gaps.contains_key(&h.host))
        .filter_map(|h| h.listed_cids.as_deref())
        .collect();
    if whole.is_empty() {
        return Err(NoResync::Unsafe(format!(
            "every running peer lacks pins another lists ({} of them): none holds the whole \
             pinset for a resynced peer to fetch",
            lagging.len()
        )));
    }
    for host in &lagging {
        let consensus = inputs
            .planned
            .iter()
            .find(|f| f.host == *host)
            .and_then(|f| f.consensus);
        if consensus != Some(crate::facts::Consensus::Crdt) {
            return Err(NoResync::Unsafe(format!(
                "{host} is not known to be a CRDT peer: `state cleanup` on a raft peer would \
                 take it out of the raft peerset"
            )));
        }
        if inputs.resynced.contains(host) {
            return Err(NoResync::NotHere(format!(
                "{host} was resynced by this run already and still lacks them"
            )));
        }
        if !inputs.resyncable.contains(host) {
            return Err(NoResync::NotHere(format!(
                "the plan has no resync steps for {host} (a peer in Docker, or a playbook \
                 without them)"
            )));
        }
    }
    let mut picked = None;
    let mut later = Vec::new();
    for host in lagging {
        let only_here = held_only_by(&host, inputs, &whole);
        if only_here.is_empty() {
            picked = picked.or(Some(host));
            continue;
        }
        let named: Vec<&str> = only_here.iter().take(NAMED).map(String::as_str).collect();
        let more = if only_here.len() > NAMED { ", …" } else { "" };
        later.push(format!(
            "{host} lists {} pin(s) that no peer lacking nothing lists ({}{more}): emptying it \
             could lose them",
            only_here.len(),
            named.join(", ")
        ));
    }
    match picked {
        Some(host) => Ok(Resync { host, later }),
        None => Err(NoResync::Unsafe(later.join("; "))),
    }
}

/// The pins `host` listed in both probes that none of the `whole` peers lists now; all it lists
/// now when the earlier probe has no list of it.
fn held_only_by(
    host: &HostName,
    inputs: &ResyncInputs<'_>,
    whole: &[&BTreeSet<String>],
) -> Vec<String> {
    let listed = |facts: &[HostFacts]| {
        facts
            .iter()
            .find(|f| f.host == *host)
            .and_then(|f| f.listed_cids.clone())
    };
    let Some(now) = listed(inputs.now) else {
        return Vec::new();
    };
    let before = listed(inputs.before);
    now.iter()
        .filter(|cid| before.as_ref().is_none_or(|b| b.contains(*cid)))
        .filter(|cid| !whole.iter().any(|w| w.contains(*cid)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn peer(name: &str, cids: &[&str]) -> HostFacts {
        HostFacts {
            running: true,
            listed_cids: Some(Arc::new(cids.iter().map(|c| c.to_string()).collect())),
            ..HostFacts::of(name.into())
        }
    }

    #[test]
    fn a_pin_every_peer_lists_or_none_lists_is_settled() {
        let before = [peer("a", &["x", "y"]), peer("b", &["x"])];
        let settled = settled_pins(&before);
        assert_eq!(settled.len(), 2);
        // y reached b; x was unpinned everywhere; z is new (written after the check began).
        let now = [peer("a", &["y", "z"]), peer("b", &["y"])];
        assert!(pinset_gaps(&settled, &now).is_empty());
    }

    #[test]
    fn a_peer_that_lacks_a_pin_the_others_list_is_named_with_the_pins() {
        let settled = settled_pins(&[peer("a", &["x", "y"]), peer("b", &["x", "y"])]);
        let now = [
            peer("a", &["x", "y"]),
            peer("b", &["x", "y"]),
            peer("c", &["x"]),
        ];
        let gaps = pinset_gaps(&settled, &now);
        assert_eq!(
            gaps,
            BTreeMap::from([(HostName::from("c"), Some(vec!["y".to_string()]))])
        );
        let problems = gap_problems(&gaps, std::time::Duration::from_secs(120));
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("c still lacks 1 pin(s) the other peers list after 120s (y): "),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].ends_with("will not fetch them by itself"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn a_stopped_peer_is_left_to_the_health_check_and_a_silent_one_is_named() {
        let settled = settled_pins(&[peer("a", &["x"])]);
        let stopped = HostFacts {
            running: false,
            ..HostFacts::of("b".into())
        };
        let silent = HostFacts {
            running: true,
            ..HostFacts::of("c".into())
        };
        let gaps = pinset_gaps(&settled, &[peer("a", &["x"]), stopped, silent]);
        assert_eq!(gaps, BTreeMap::from([(HostName::from("c"), None)]));
        assert_eq!(
            gap_problems(&gaps, std::time::Duration::ZERO),
            vec!["c did not list its pins".to_string()]
        );
    }

    fn listing(name: &str, count: usize) -> HostFacts {
        let cids: Vec<String> = (0..count).map(|i| format!("pin{i}")).collect();
        peer(name, &cids.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn lag_counts_the_settled_pins_missing_and_how_far_a_peer_lists_fewer_than_the_most() {
        let gaps = BTreeMap::from([(HostName::from("c"), Some(vec!["x".to_string(); 3]))]);
        let now = [listing("a", 100), listing("b", 98), listing("c", 40)];
        assert_eq!(
            lag(&gaps, &now),
            Lag {
                missing: 3,
                behind: 60
            }
        );
    }

    #[test]
    fn a_peer_merging_newer_pins_faster_than_the_writes_is_catching_up() {
        let mut catch_up = CatchUp::default();
        assert!(catch_up.closer(Lag {
            missing: 150,
            behind: 1600
        }));
        // It merges pins written after the check began: the settled ones it lacks stay, but it
        // lists 500 more while the others take 100.
        assert!(catch_up.closer(Lag {
            missing: 150,
            behind: 1200
        }));
        // Then it reaches the settled ones.
        assert!(catch_up.closer(Lag {
            missing: 20,
            behind: 1250
        }));
        assert!(!catch_up.closer(Lag {
            missing: 20,
            behind: 1250
        }));
    }

    #[test]
    fn a_peer_that_only_keeps_pace_with_the_writes_makes_no_progress() {
        let gaps = BTreeMap::from([(HostName::from("c"), Some(vec!["x".to_string(); 18]))]);
        let mut catch_up = CatchUp::default();
        assert!(catch_up.closer(lag(
            &gaps,
            &[listing("a", 500), listing("b", 499), listing("c", 482)]
        )));
        // Writes go on: every peer lists 30 more, c still lacks the same 18.
        for written in [10, 20, 30] {
            let now = [
                listing("a", 500 + written),
                listing("b", 499 + written),
                listing("c", 482 + written),
            ];
            assert!(!catch_up.closer(lag(&gaps, &now)));
        }
    }

    #[test]
    fn patience_is_twice_the_longest_rebroadcast_interval_and_at_least_20s() {
        let with = |secs: &[u64]| -> Vec<HostFacts> {
            secs.iter()
                .map(|s| HostFacts {
                    rebroadcast_interval: Some(std::time::Duration::from_secs(*s)),
                    ..peer("a", &[])
                })
                .collect()
        };
        let secs = std::time::Duration::from_secs;
        assert_eq!(convergence_patience(&with(&[5, 30])), secs(60));
        assert_eq!(convergence_patience(&with(&[5])), secs(20));
        assert_eq!(convergence_patience(&[peer("a", &[])]), secs(120));
    }

    fn crdt(name: &str) -> HostFacts {
        HostFacts {
            consensus: Some(crate::facts::Consensus::Crdt),
            ..peer(name, &[])
        }
    }

    fn lacking(hosts: &[&str]) -> BTreeMap<HostName, Option<Vec<String>>> {
        hosts
            .iter()
            .map(|h| (HostName::from(*h), Some(vec!["x".to_string()])))
            .collect()
    }

    fn choice(
        gaps: &BTreeMap<HostName, Option<Vec<String>>>,
        planned: &[HostFacts],
        resynced: &[HostName],
    ) -> Result<Resync, NoResync> {
        let resyncable: BTreeSet<HostName> = planned.iter().map(|f| f.host.clone()).collect();
        resync_choice(&ResyncInputs {
            gaps,
            planned,
            now: planned,
            before: planned,
            resyncable: &resyncable,
            resynced,
        })
    }

    fn hosts(names: &[&str]) -> Vec<HostName> {
        names.iter().map(|n| HostName::from(*n)).collect()
    }

    #[test]
    fn one_lagging_peer_is_resynced_per_round_the_first_in_host_order() {
        let planned: Vec<HostFacts> = ["a", "b", "c", "d", "e"].map(crdt).to_vec();
        let picked = choice(&lacking(&["d", "b"]), &planned, &[]).unwrap();
        assert_eq!(
            picked,
            Resync {
                host: "b".into(),
                later: vec![]
            }
        );
        // The next round, on fresh probes, picks d.
        let picked = choice(&lacking(&["d"]), &planned, &["b".into()]).unwrap();
        assert_eq!(picked.host, HostName::from("d"));
    }

    /// A CRDT peer of `name` listing `cids`.
    fn crdt_listing(name: &str, cids: &[&str]) -> HostFacts {
        HostFacts {
            consensus: Some(crate::facts::Consensus::Crdt),
            ..peer(name, cids)
        }
    }

    /// The choice for the probes `before` and `now` of one convergence check, every peer
    /// resyncable, none resynced yet.
    fn choice_between(before: &[HostFacts], now: &[HostFacts]) -> Result<Resync, NoResync> {
        let settled = settled_pins(before);
        let gaps = pinset_gaps(&settled, now);
        let resyncable: BTreeSet<HostName> = now.iter().map(|f| f.host.clone()).collect();
        resync_choice(&ResyncInputs {
            gaps: &gaps,
            planned: now,
            now,
            before,
            resyncable: &resyncable,
            resynced: &[],
        })
    }

    #[test]
    fn most_peers_lacking_pins_are_resynced_while_one_running_peer_lacks_nothing() {
        // Seen with 5 real peers: h3, h4 and h5 each missed updates while they merged.
        let probe = || {
            [
                crdt_listing("h1", &["p1", "p2", "p3", "p4"]),
                crdt_listing("h2", &["p1", "p2", "p3", "p4"]),
                crdt_listing("h3", &["p1", "p2"]),
                crdt_listing("h4", &["p1", "p3"]),
                crdt_listing("h5", &["p4"]),
            ]
        };
        let picked = choice_between(&probe(), &probe()).unwrap();
        assert_eq!(picked.host, HostName::from("h3"));
        assert!(picked.later.is_empty());
        // One peer that lacks nothing is enough.
        let mut one_whole = probe();
        one_whole[0] = crdt_listing("h1", &["p2"]);
        let picked = choice_between(&one_whole, &one_whole).unwrap();
        assert_eq!(picked.host, HostName::from("h1"));
    }

    #[test]
    fn no_resync_when_every_peer_lacks_a_pin_another_lists_or_one_did_not_list_them() {
        // c holds p4, which a and b lack; c lacks p5, which a and b hold.
        let probe = [
            crdt_listing("a", &["p1", "p2", "p3", "p5"]),
            crdt_listing("b", &["p1", "p2", "p3", "p5"]),
            crdt_listing("c", &["p1", "p2", "p3", "p4"]),
        ];
        let why = choice_between(&probe, &probe).unwrap_err();
        assert_eq!(
            why,
            NoResync::Unsafe(
                "every running peer lacks pins another lists (3 of them): none holds the whole \
                 pinset for a resynced peer to fetch"
                    .into()
            )
        );
        // The operator is told not to resync them by hand either.
        let advice = why.advice(&hosts(&["a", "b", "c"]));
        assert!(
            advice.contains("; do not resync a, b, c by hand either before finding out why"),
            "{advice}"
        );
        let planned: Vec<HostFacts> = ["a", "b", "c", "d"].map(crdt).to_vec();
        let mut silent = lacking(&["a"]);
        silent.insert("b".into(), None);
        let why = choice(&silent, &planned, &[]).unwrap_err();
        assert_eq!(
            why,
            NoResync::Unsafe("b did not list its pins, so what it lacks is unknown".into())
        );
    }

    #[test]
    fn a_lagging_peer_that_holds_a_pin_no_whole_peer_lists_waits_unless_it_is_in_flight() {
        // The check began with c and d lacking p2.
        let first = [
            crdt_listing("a", &["p1", "p2"]),
            crdt_listing("b", &["p1", "p2"]),
            crdt_listing("c", &["p1"]),
            crdt_listing("d", &["p1"]),
        ];
        // Then p9 was added through c and never reached a or b...
        let mut earlier = first.clone();
        earlier[2] = crdt_listing("c", &["p1", "p9"]);
        // ...and p10 through d, a moment before the last probe.
        let mut now = earlier.clone();
        now[3] = crdt_listing("d", &["p1", "p10"]);
        let gaps = pinset_gaps(&settled_pins(&first), &now);
        assert_eq!(gaps.keys().cloned().collect::<Vec<_>>(), hosts(&["c", "d"]));
        let resyncable: BTreeSet<HostName> = now.iter().map(|f| f.host.clone()).collect();
        let inputs = |before: &[HostFacts]| -> Result<Resync, NoResync> {
            resync_choice(&ResyncInputs {
                gaps: &gaps,
                planned: &now,
                now: &now,
                before,
                resyncable: &resyncable,
                resynced: &[],
            })
        };
        let picked = inputs(&earlier).unwrap();
        assert_eq!(picked.host, HostName::from("d"));
        assert_eq!(
            picked.later,
            ["c lists 1 pin(s) that no peer lacking nothing lists (p9): emptying it could lose them"]
        );
        // Had p10 been on d for as long, neither would be resynced, nor by hand.
        let why = inputs(&now).unwrap_err();
        assert!(matches!(why, NoResync::Unsafe(_)), "{why:?}");
        assert!(why.reason().starts_with("c lists 1 pin(s)"), "{why:?}");
        assert!(why.reason().contains("; d lists 1 pin(s)"), "{why:?}");
    }

    #[test]
    fn no_resync_of_a_raft_peer_a_peer_resynced_already_or_one_without_the_steps() {
        let mut planned: Vec<HostFacts> = ["a", "b", "c"].map(crdt).to_vec();
        let why = choice(&lacking(&["c"]), &planned, &["c".into()]).unwrap_err();
        assert_eq!(
            why,
            NoResync::NotHere("c was resynced by this run already and still lacks them".into())
        );
        // A resync is still the repair, by hand.
        let advice = why.advice(&hosts(&["c"]));
        assert!(
            advice.contains("; resync c by hand, one peer at a time (stop its peer, run"),
            "{advice}"
        );
        let resyncable = BTreeSet::from([HostName::from("a")]);
        let why = resync_choice(&ResyncInputs {
            gaps: &lacking(&["c"]),
            planned: &planned,
            now: &planned,
            before: &planned,
            resyncable: &resyncable,
            resynced: &[],
        })
        .unwrap_err();
        assert!(
            matches!(&why, NoResync::NotHere(reason) if reason.starts_with("the plan has no resync steps for c")),
            "{why:?}"
        );
        planned[2].consensus = Some(crate::facts::Consensus::Raft);
        let why = choice(&lacking(&["c"]), &planned, &[]).unwrap_err();
        assert!(
            matches!(&why, NoResync::Unsafe(reason) if reason.starts_with("c is not known to be a CRDT peer")),
            "{why:?}"
        );
    }
}
