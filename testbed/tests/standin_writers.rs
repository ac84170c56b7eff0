//! Acknowledged writes under load: the failure cluster-lab saw with early stand-ins
//! (acknowledged pins missing after the leadership moved under concurrent writers), at the
//! scale it was seen at.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{cid, eventually, stderr, stdout, Bed};

const VERSION: &str = "0.10.1";
const PINS: usize = 1000;
const WRITERS: usize = 4;

/// The test CIDs (see `common::cid`) that a `pin ls` output names, in any output format.
fn listed(text: &str) -> BTreeSet<String> {
    let base = &cid(0)[..cid(0).len() - 2];
    text.match_indices(base)
        .filter_map(|(at, _)| text.get(at..at + base.len() + 2))
        .map(str::to_string)
        .collect()
}

/// 3 peers, 4 writers through different peers' APIs, 1,000 pins: every peer must then list
/// exactly the pins that `pin add` acknowledged — none lost, none invented.
#[test]
fn every_peer_lists_exactly_the_acknowledged_pins_after_concurrent_writers() {
    let bed = Bed::new();
    let (peers, _daemons) = bed.cluster(VERSION, &["a", "b", "c"]);
    let acknowledged: BTreeSet<String> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (bed, peer) = (&bed, &peers[w % peers.len()]);
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for n in (w..PINS).step_by(WRITERS) {
                        // A write may fail while the leadership moves; the writer retries, as
                        // the lab does. Only a success counts as acknowledged.
                        for _ in 0..20 {
                            let out = bed.ctl(VERSION, peer, &["pin", "add", "--no-status", &cid(n)]);
                            if out.status.success() {
                                acked.push(cid(n));
                                break;
                            }
                            eprintln!("{}: pin add {n}: {}", peer.name, stderr(&out).trim());
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    acked
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(acknowledged.len(), PINS, "every pin is acknowledged in the end");
    for p in &peers {
        let mut last = BTreeSet::new();
        let settled = eventually(Duration::from_secs(10), || {
            last = listed(&stdout(&bed.ctl(VERSION, p, &["pin", "ls"])));
            last == acknowledged
        });
        assert!(
            settled,
            "{} lists {} pins; missing acknowledged: {:?}; never acknowledged: {:?}",
            p.name,
            last.len(),
            acknowledged.difference(&last).take(20).collect::<Vec<_>>(),
            last.difference(&acknowledged).take(20).collect::<Vec<_>>()
        );
    }
}
