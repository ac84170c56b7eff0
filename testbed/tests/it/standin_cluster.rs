//! Several stand-in peers: forming clusters, the right upgrade procedures (all at once with
//! `--upgrade`, and the bootstrap procedure) and the wrong ones (rolling across a protocol
//! change, bootstrapping to another protocol, removing the last peer, losing quorum).

use crate::common;

use std::fs;
use std::time::Duration;

use crate::common::{cid, eventually, listing, stderr, stdout, Bed, Daemon};

fn peer_id(daemon: &Daemon) -> String {
    daemon.maddr().rsplit('/').next().unwrap().to_string()
}

fn pin_count(bed: &Bed, version: &str, peer: &common::Peer) -> usize {
    stdout(&bed.ctl(version, peer, &["pin", "ls"]))
        .lines()
        .count()
}

#[test]
fn three_peers_replicate_and_forward_writes() {
    let bed = Bed::new();
    let (peers, _daemons) = bed.cluster("0.10.1", &["a", "b", "c"]);
    // A write on any peer reaches every peer.
    for (n, p) in peers.iter().enumerate() {
        let out = bed.ctl("0.10.1", p, &["pin", "add", &cid(n)]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for p in &peers {
        assert!(eventually(Duration::from_secs(5), || pin_count(
            &bed, "0.10.1", p
        ) == 3));
    }
    let out = bed.ctl("0.10.1", &peers[2], &["peers", "ls"]);
    let text = stdout(&out);
    assert_eq!(text.matches("Sees 2 other peers").count(), 3, "{text}");
    let out = bed.ctl("0.10.1", &peers[0], &["--enc", "json", "peers", "ls"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3, "≤ 0.14 prints one array");
}

#[test]
fn stopping_all_and_starting_all_with_upgrade_keeps_every_pin() {
    let bed = Bed::new();
    let (peers, mut daemons) = bed.cluster("0.9.0", &["a", "b", "c"]);
    for n in 0..5 {
        assert!(bed
            .ctl("0.9.0", &peers[n % 3], &["pin", "add", &cid(n)])
            .status
            .success());
    }
    for d in daemons.iter_mut() {
        assert!(d.stop().success());
    }
    drop(daemons);
    let started: Vec<Daemon> = peers
        .iter()
        .map(|p| bed.daemon("0.10.1", p, &["--upgrade"]))
        .collect();
    for d in &started {
        d.wait_log("** IPFS Cluster is READY **", Duration::from_secs(15));
    }
    for p in &peers {
        assert_eq!(pin_count(&bed, "0.10.1", p), 5);
        assert!(p.config.join("raft.old.0").exists());
        let out = bed.ctl("0.10.1", p, &["peers", "ls"]);
        assert!(!stdout(&out).contains("ERROR"), "{}", stdout(&out));
    }
}

#[test]
fn a_rolling_restart_across_a_protocol_change_fails() {
    let bed = Bed::new();
    let (peers, mut daemons) = bed.cluster("0.9.0", &["a", "b", "c"]);
    assert!(bed
        .ctl("0.9.0", &peers[0], &["pin", "add", &cid(1)])
        .status
        .success());
    // Upgrade c alone, the "one node at a time" way.
    assert!(daemons[2].stop().success());
    let mut upgraded = bed.daemon("0.10.1", &peers[2], &["--upgrade"]);
    upgraded.wait_log("listening on:", Duration::from_secs(10));
    let c_id = peer_id(&upgraded);
    // The old peers keep a majority but see c with an error.
    assert!(eventually(Duration::from_secs(5), || {
        stdout(&bed.ctl("0.9.0", &peers[0], &["peers", "ls"]))
            .contains(&format!("{c_id} | ERROR: protocol not supported"))
    }));
    assert!(bed
        .ctl("0.9.0", &peers[1], &["pin", "add", &cid(2)])
        .status
        .success());
    // Writes through c fail: it has no leader it can talk to.
    let out = bed.ctl("0.10.1", &peers[2], &["pin", "add", &cid(3)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // c never becomes ready: it times out and exits 0.
    assert_eq!(upgraded.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let log = upgraded.log_text();
    assert!(!log.contains("IPFS Cluster is READY"));
    assert!(log.contains("***** ipfs-cluster consensus start timed out (tips below) *****"));
    assert!(log.contains("same version of IPFS-cluster."));
}

#[test]
fn the_bootstrap_procedure_keeps_every_pin() {
    let bed = Bed::new();
    let (peers, mut daemons) = bed.cluster("0.9.0", &["a", "b", "c"]);
    for n in 0..4 {
        assert!(bed
            .ctl("0.9.0", &peers[0], &["pin", "add", &cid(n)])
            .status
            .success());
    }
    // 1. peers rm every peer but the last (a); they shut down and back up their state.
    for i in [1, 2] {
        let id = peer_id(&daemons[i]);
        let out = bed.ctl("0.9.0", &peers[0], &["peers", "rm", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            daemons[i].wait_exit(Duration::from_secs(10)).code(),
            Some(0)
        );
        assert!(daemons[i]
            .log_text()
            .contains(&format!("{id}: removed from raft. Initiating shutdown")));
        assert!(peers[i].config.join("raft.old.0/snapshots").exists());
        assert!(!peers[i].config.join("raft").exists());
    }
    // 2. stop the last, upgrade its state offline, restart it alone.
    assert!(daemons[0].stop().success());
    let out = bed.service("0.10.1", &peers[0], &["state", "upgrade"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = bed.ready("0.10.1", &peers[0], &[]);
    let maddr = first.maddr();
    // 3. bootstrap the others to it.
    let mut others = Vec::new();
    for p in &peers[1..] {
        others.push(bed.ready("0.10.1", p, &["--bootstrap", &maddr]));
    }
    for p in &peers {
        assert!(
            eventually(Duration::from_secs(5), || pin_count(&bed, "0.10.1", p) == 4),
            "{}",
            p.name
        );
    }
    let out = bed.ctl("0.10.1", &peers[1], &["peers", "ls"]);
    assert_eq!(
        stdout(&out).matches("Sees 2 other peers").count(),
        3,
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_removed_peer_restarted_plainly_is_a_lonely_new_cluster() {
    let bed = Bed::new();
    let (peers, mut daemons) = bed.cluster("1.1.6", &["a", "b"]);
    assert!(bed
        .ctl("1.1.6", &peers[0], &["pin", "add", &cid(1)])
        .status
        .success());
    let b_id = peer_id(&daemons[1]);
    assert!(bed
        .ctl("1.1.6", &peers[0], &["peers", "rm", &b_id])
        .status
        .success());
    assert_eq!(
        daemons[1].wait_exit(Duration::from_secs(10)).code(),
        Some(0)
    );
    let _lonely = bed.ready("1.1.6", &peers[1], &[]);
    assert_eq!(
        pin_count(&bed, "1.1.6", &peers[1]),
        0,
        "split brain: empty pinset"
    );
    assert!(stdout(&bed.ctl("1.1.6", &peers[1], &["id"])).contains("Sees 0 other peers"));
    assert!(stdout(&bed.ctl("1.1.6", &peers[0], &["id"])).contains("Sees 0 other peers"));
    // The last peer of a cluster cannot be removed.
    let a_id = peer_id(&daemons[0]);
    let out = bed.ctl("1.1.6", &peers[0], &["peers", "rm", &a_id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("cannot remove ourselves from a 1-peer cluster"));
}

#[test]
fn bootstrapping_to_another_protocol_fails_and_leaves_an_empty_raft_folder() {
    let bed = Bed::new();
    let a = bed.peer("a");
    bed.init("1.1.6", &a);
    let target = bed.ready("1.1.6", &a, &[]);
    let b = bed.peer("b");
    bed.init("0.10.1", &b);
    // b had a state of its own: --bootstrap backs it up first.
    let mut own = bed.ready("0.10.1", &b, &[]);
    assert!(bed
        .ctl("0.10.1", &b, &["pin", "add", &cid(9)])
        .status
        .success());
    assert!(own.stop().success());
    let maddr = target.maddr().replace("/p2p/", "/ipfs/");
    let mut joiner = bed.daemon("0.10.1", &b, &["--bootstrap", &maddr]);
    assert_eq!(joiner.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let log = joiner.log_text();
    assert!(
        log.contains(&format!(
            "bootstrap to {maddr} failed: protocol not supported"
        )),
        "{log}"
    );
    assert!(log.contains("consensus start timed out"));
    assert!(
        b.config.join("raft.old.0/snapshots").exists(),
        "the old state is kept as a backup"
    );
    assert!(listing(&b.config.join("raft/snapshots")).is_empty());
    // A bootstrap address without a peer ID is refused.
    let out = bed.service(
        "0.10.1",
        &b,
        &["daemon", "--bootstrap", &format!("/ip4/{}/tcp/9096", a.ip)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error parsing bootstrap multiaddress"));
}

#[test]
fn writes_fail_without_quorum_and_leaving_on_shutdown_removes_the_peer() {
    let bed = Bed::new();
    let (peers, mut daemons) = bed.cluster("0.10.1", &["a", "b", "c"]);
    // c leaves the peerset on a clean stop.
    let mut cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(peers[2].config.join("service.json")).unwrap())
            .unwrap();
    cfg["cluster"]["leave_on_shutdown"] = serde_json::Value::Bool(true);
    fs::write(peers[2].config.join("service.json"), cfg.to_string()).unwrap();
    assert!(daemons[2].stop().success());
    let mut leaver = bed.ready("0.10.1", &peers[2], &[]);
    assert!(leaver.stop().success());
    assert!(peers[2].config.join("raft.old.0").exists());
    assert!(eventually(Duration::from_secs(5), || {
        stdout(&bed.ctl("0.10.1", &peers[0], &["id"])).contains("Sees 1 other peers")
    }));
    // a and b remain; without b there is no majority of two.
    assert!(daemons[1].stop().success());
    let out = bed.ctl("0.10.1", &peers[0], &["pin", "add", &cid(1)]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("Code: 500"));
    let out = bed.ctl("0.10.1", &peers[0], &["peers", "ls"]);
    assert!(stdout(&out).contains("| ERROR: "), "{}", stdout(&out));
}

#[test]
fn a_rolling_restart_within_one_protocol_works() {
    let bed = Bed::new();
    let (peers, mut daemons) = bed.cluster("1.0.8", &["a", "b", "c"]);
    for (n, p) in peers.iter().enumerate() {
        assert!(bed
            .ctl("1.0.8", p, &["pin", "add", &cid(n)])
            .status
            .success());
    }
    // 1.0.8 and 1.1.6 share /ipfscluster/1.0/rpc: one peer at a time is fine.
    for (i, p) in peers.iter().enumerate() {
        assert!(daemons[i].stop().success());
        daemons[i] = bed.ready("1.1.6", p, &[]);
    }
    for p in &peers {
        assert!(eventually(Duration::from_secs(5), || pin_count(
            &bed, "1.1.6", p
        ) == 3));
    }
    let out = bed.ctl("1.1.6", &peers[0], &["--enc", "json", "peers", "ls"]);
    let ids: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids.len(), 3, "1.x prints one object per peer");
    assert!(ids
        .iter()
        .all(|id| id["error"] == "" && id["version"] == "1.1.6"));
}

#[test]
fn a_new_cluster_can_start_from_init_peerset_and_the_peerstore() {
    let bed = Bed::new();
    let peers: Vec<common::Peer> = ["a", "b", "c"].iter().map(|n| bed.peer(n)).collect();
    let mut ids = Vec::new();
    for p in &peers {
        bed.init("0.10.1", p);
        let cfg: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(p.config.join("service.json")).unwrap())
                .unwrap();
        ids.push(cfg["cluster"]["id"].as_str().unwrap().to_string());
    }
    let peerstore: String = peers
        .iter()
        .zip(&ids)
        .map(|(p, id)| format!("/ip4/{}/tcp/9096/ipfs/{id}\n", p.ip))
        .collect();
    for p in &peers {
        let path = p.config.join("service.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        cfg["consensus"]["raft"]["init_peerset"] = serde_json::json!(ids);
        fs::write(&path, cfg.to_string()).unwrap();
        fs::write(p.config.join("peerstore"), &peerstore).unwrap();
    }
    let daemons: Vec<Daemon> = peers.iter().map(|p| bed.daemon("0.10.1", p, &[])).collect();
    for d in &daemons {
        d.wait_log("** IPFS Cluster is READY **", Duration::from_secs(15));
    }
    assert!(bed
        .ctl("0.10.1", &peers[1], &["pin", "add", &cid(5)])
        .status
        .success());
    for p in &peers {
        assert!(eventually(Duration::from_secs(5), || pin_count(
            &bed, "0.10.1", p
        ) == 1));
    }
}

/// Guard for the loss cluster-lab saw with an early stand-in (acknowledged pins gone after the
/// leadership moved under concurrent writers): every pin that `pin add` acknowledged must end
/// up on every peer.
#[test]
fn acknowledged_pins_survive_concurrent_writers() {
    let bed = Bed::new();
    let (peers, _daemons) = bed.cluster("1.1.6", &["a", "b", "c", "d", "e"]);
    let acknowledged: Vec<String> = std::thread::scope(|scope| {
        let writers: Vec<_> = peers
            .iter()
            .enumerate()
            .map(|(w, p)| {
                let bed = &bed;
                scope.spawn(move || {
                    (0..15)
                        .map(|i| cid(w * 100 + i))
                        .filter(|c| {
                            bed.ctl("1.1.6", p, &["pin", "add", "--no-status", c])
                                .status
                                .success()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        acknowledged.len() >= 50,
        "most writes succeed: {}",
        acknowledged.len()
    );
    for p in &peers {
        assert!(
            eventually(Duration::from_secs(5), || {
                let listed = stdout(&bed.ctl("1.1.6", p, &["pin", "ls"]));
                acknowledged.iter().all(|c| listed.contains(c.as_str()))
            }),
            "{} lost acknowledged pins",
            p.name
        );
    }
}
