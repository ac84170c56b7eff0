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

/// The gaps in words, each naming the peer, how many pins it lacks, a few of them, and the way
/// to resync it.
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
                     CRDT store missed updates and will not fetch them by itself; resync it (stop \
                     its peer, run `ipfs-cluster-service state cleanup` on it, start it: it fetches \
                     the whole pinset from the others), then run `cluster-upgrade status`",
                    cids.len(),
                    waited.as_secs(),
                    named.join(", ")
                )
            }
        })
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
        assert!(problems[0].contains("state cleanup"), "{}", problems[0]);
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
}
