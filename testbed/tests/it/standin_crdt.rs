//! CRDT peers of the stand-in (≥ 0.11): what an operator sees of a cluster without a leader.
//! `tests/it/fidelity.rs` compares the same behaviours with the real binaries.

use std::fs;
use std::time::Duration;

use crate::common::{cid, eventually, listing, stderr, stdout, Bed, Daemon, Peer};

const V: &str = "1.1.6";
/// Ping metrics every 200 ms: a stopped peer leaves `peers ls` after 400 ms.
const PING: (&str, &str) = ("CLUSTER_MONITORPINGINTERVAL", "200ms");
/// Pinsets rebroadcast every 500 ms (1 minute by default).
const REBROADCAST: (&str, &str) = ("CLUSTER_CRDT_REBROADCASTINTERVAL", "500ms");

fn start(bed: &Bed, peer: &Peer, args: &[&str]) -> Daemon {
    let daemon = bed.daemon_env((V, peer), args, &[PING, REBROADCAST]);
    daemon.wait_log("** IPFS Cluster is READY **", Duration::from_secs(15));
    daemon
}

fn peer_count(bed: &Bed, peer: &Peer) -> usize {
    let out = bed.ctl(V, peer, &["--enc=json", "peers", "ls"]);
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .map(|v| match v {
            serde_json::Value::Array(items) => items.len(),
            _ => 1,
        })
        .sum()
}

fn pins(bed: &Bed, peer: &Peer) -> String {
    stdout(&bed.ctl(V, peer, &["pin", "ls"]))
}

/// a alone, b and c bootstrapping to a.
fn three(bed: &Bed) -> (Vec<Peer>, Vec<Daemon>) {
    let peers: Vec<Peer> = ["a", "b", "c"].iter().map(|n| bed.peer(n)).collect();
    for p in &peers {
        bed.init_crdt(V, p);
    }
    let first = start(bed, &peers[0], &[]);
    let maddr = first.maddr();
    let mut daemons = vec![first];
    for p in &peers[1..] {
        daemons.push(start(bed, p, &["--bootstrap", &maddr]));
    }
    (peers, daemons)
}

#[test]
fn peers_know_each_other_through_metrics_and_a_stopped_peer_drops_out() {
    let bed = Bed::new();
    let (peers, mut daemons) = three(&bed);
    // b and c only dialled a, yet everyone lists everyone (metrics spread the addresses).
    for p in &peers {
        assert!(
            eventually(Duration::from_secs(10), || peer_count(&bed, p) == 3),
            "{} sees {}",
            p.name,
            peer_count(&bed, p)
        );
    }
    assert!(daemons[2].stop().success());
    assert!(eventually(Duration::from_secs(5), || peer_count(
        &bed, &peers[0]
    ) == 2));
    // No raft folder, the datastore folder instead; the lock is gone after the stop.
    assert_eq!(
        listing(&peers[2].config),
        ["identity.json", "pebble", "peerstore", "service.json"]
    );
}

#[test]
fn pins_reach_every_peer_also_one_that_was_down() {
    let bed = Bed::new();
    let (peers, mut daemons) = three(&bed);
    let out = bed.ctl(V, &peers[1], &["pin", "add", &cid(1)]);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in &peers {
        assert!(eventually(Duration::from_secs(10), || pins(&bed, p).contains(&cid(1))));
    }
    // c is down while a pin is added and another removed; it catches up at the next
    // rebroadcast once back.
    assert!(daemons[2].stop().success());
    assert!(bed
        .ctl(V, &peers[0], &["pin", "add", &cid(2)])
        .status
        .success());
    assert!(bed
        .ctl(V, &peers[0], &["pin", "rm", &cid(1)])
        .status
        .success());
    daemons[2] = start(&bed, &peers[2], &[]);
    assert!(eventually(Duration::from_secs(10), || {
        let listed = pins(&bed, &peers[2]);
        listed.contains(&cid(2)) && !listed.contains(&cid(1))
    }));
    // A pin that is not there: 404 and `state.ErrNotFound`, exit 2.
    let out = bed.ctl(V, &peers[0], &["pin", "rm", &cid(9)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("pin is not part of the pinset"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn peers_rm_is_refused_and_nothing_leaves() {
    let bed = Bed::new();
    let (peers, daemons) = three(&bed);
    assert!(eventually(Duration::from_secs(10), || peer_count(
        &bed, &peers[0]
    ) == 3));
    let id = daemons[1].maddr().rsplit('/').next().unwrap().to_string();
    let out = bed.ctl(V, &peers[0], &["peers", "rm", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("crdt consensus component cannot remove peers"),
        "{}",
        stdout(&out)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(peer_count(&bed, &peers[0]), 3);
}

#[test]
fn state_export_cleanup_and_import_work_on_the_datastore_of_a_stopped_peer() {
    let bed = Bed::new();
    let a = bed.peer("a");
    bed.init_crdt(V, &a);
    let mut daemon = start(&bed, &a, &[]);
    for n in 0..3 {
        assert!(bed.ctl(V, &a, &["pin", "add", &cid(n)]).status.success());
    }
    // While the daemon runs, the state commands cannot take the lock.
    let out = bed.service(V, &a, &["state", "export"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("someone else has the lock"),
        "{}",
        stderr(&out)
    );
    assert!(daemon.stop().success());

    let out = bed.service(V, &a, &["state", "export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let export = stdout(&out);
    assert_eq!(export.lines().count(), 3);
    assert!(export
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"] == "pin"));
    let file = bed.dir.path().join("export.json");
    fs::write(&file, &export).unwrap();

    let out = bed.service(V, &a, &["state", "cleanup", "-f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(a.config.join("pebble").is_dir(), "cleanup keeps the folder");
    assert_eq!(stdout(&bed.service(V, &a, &["state", "export"])), "");

    let out = bed.service(V, &a, &["state", "import", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&bed.service(V, &a, &["state", "export"])), export);
    let _daemon = start(&bed, &a, &["--upgrade"]);
    assert_eq!(pins(&bed, &a).lines().count(), 3);
}
