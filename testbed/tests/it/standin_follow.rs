//! `ipfs-cluster-follow` of the stand-in (≥ 0.11): a CRDT peer in follower mode that receives
//! the trusted peers' pinset, never writes, is not one of the trusted peers, and is stranded
//! when the trusted peers move to another RPC protocol.

use std::time::Duration;

use crate::common::{cid, eventually, stderr, stdout, Bed, Daemon, Peer};

/// Ping metrics every 200 ms; pinsets rebroadcast every 500 ms.
const ENV: &[(&str, &str)] = &[
    ("CLUSTER_MONITORPINGINTERVAL", "200ms"),
    ("CLUSTER_CRDT_REBROADCASTINTERVAL", "500ms"),
];

/// A 3-peer CRDT lab of `version`: a alone, b and c bootstrapping to a.
fn three(bed: &Bed, version: &str) -> (Vec<Peer>, Vec<Daemon>) {
    let peers: Vec<Peer> = ["a", "b", "c"].iter().map(|n| bed.peer(n)).collect();
    for p in &peers {
        bed.init_crdt(version, p);
    }
    let mut daemons = vec![start(bed, version, &peers[0], &[])];
    let maddr = daemons[0].maddr();
    for p in &peers[1..] {
        daemons.push(start(bed, version, p, &["--bootstrap", &maddr]));
    }
    (peers, daemons)
}

fn start(bed: &Bed, version: &str, peer: &Peer, args: &[&str]) -> Daemon {
    let daemon = bed.daemon_env((version, peer), args, ENV);
    daemon.wait_log("** IPFS Cluster is READY **", Duration::from_secs(15));
    daemon
}

/// `init`s the follower "lab" of peer `f`, trusting `trusted`, and runs it.
fn follow(bed: &Bed, version: &str, f: &Peer, trusted: &str) -> Daemon {
    let out = bed
        .follow(version, f, &["lab", "init", trusted])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    bed.follower(version, (f, "lab"), ENV)
}

fn listed(bed: &Bed, version: &str, f: &Peer) -> String {
    let out = bed.follow(version, f, &["lab", "list"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn peer_ids(bed: &Bed, version: &str, peer: &Peer) -> String {
    stdout(&bed.ctl(version, peer, &["--enc=json", "peers", "ls"]))
}

#[test]
fn a_follower_receives_the_pinset_is_no_trusted_peer_and_refuses_writes() {
    let bed = Bed::new();
    let v = "1.1.6";
    let (peers, daemons) = three(&bed, v);
    let f = bed.peer("f");
    let follower = follow(&bed, v, &f, &daemons[0].maddr());
    let folder = f.config.join("lab");
    for file in ["identity.json", "peerstore", "service.json"] {
        assert!(folder.join(file).exists(), "{file}");
    }
    let out = bed.ctl(v, &peers[1], &["pin", "add", &cid(1)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(Duration::from_secs(10), || listed(&bed, v, &f)
        .contains(&cid(1))));

    // The trusted peers list each other, never the follower.
    let follower_id = follower.log_text();
    let follower_id = follower_id
        .split("/p2p/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the follower logs its address")
        .to_string();
    for p in &peers {
        assert!(eventually(Duration::from_secs(10), || {
            let ls = peer_ids(&bed, v, p);
            ls.matches("\"id\"").count() >= 3
        }));
        assert!(!peer_ids(&bed, v, p).contains(&follower_id), "{}", p.name);
    }

    // A write on the follower is refused and reaches nobody.
    let out = bed.ctl(v, &f, &["pin", "add", &cid(2)]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("follower mode. Write operations are disabled"),
        "{}",
        stdout(&out)
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!stdout(&bed.ctl(v, &peers[0], &["pin", "ls"])).contains(&cid(2)));
    assert!(!listed(&bed, v, &f).contains(&cid(2)));
}

#[test]
fn a_follower_stops_syncing_when_the_trusted_peers_move_to_another_rpc_protocol() {
    let bed = Bed::new();
    let (old, new) = ("0.14.5", "1.0.5");
    let (peers, mut daemons) = three(&bed, old);
    let f = bed.peer("f");
    let _follower = follow(&bed, old, &f, &daemons[0].maddr());
    assert!(bed
        .ctl(old, &peers[0], &["pin", "add", &cid(1)])
        .status
        .success());
    assert!(eventually(Duration::from_secs(10), || listed(
        &bed, old, &f
    )
    .contains(&cid(1))));

    // The trusted peers move to 1.0.5 (/ipfscluster/1.0/rpc; 0.14.5 speaks 0.12's).
    for (p, d) in peers.iter().zip(daemons.iter_mut()) {
        assert!(d.stop().success());
        *d = start(&bed, new, p, &[]);
    }
    let out = bed.ctl(new, &peers[0], &["pin", "add", &cid(2)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(Duration::from_secs(10), || stdout(&bed.ctl(
        new,
        &peers[2],
        &["pin", "ls"]
    ))
    .contains(&cid(2))));
    std::thread::sleep(Duration::from_secs(2));
    let held = listed(&bed, old, &f);
    assert!(held.contains(&cid(1)), "{held}");
    assert!(!held.contains(&cid(2)), "{held}");
}
