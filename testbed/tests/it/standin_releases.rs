//! The CRDT-era releases the stand-in models besides 1.0.8 and 1.1.6 (0.13.1, 0.14.5, 1.0.5,
//! 1.1.2, 1.1.3): `init --datastore` per release, pebble's `format_major_version` rules at
//! start, and the metrics break between 0.13 and 0.14 (ipfs-cluster#1409). The texts are the
//! real releases' (their sources, and the real 1.0.8 and 1.1.6 where built; ADR 0012).

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::{cid, eventually, listing, stderr, stdout, Bed, Daemon, Peer};

const PING: (&str, &str) = ("CLUSTER_MONITORPINGINTERVAL", "200ms");
const REBROADCAST: (&str, &str) = ("CLUSTER_CRDT_REBROADCASTINTERVAL", "500ms");
const READY: &str = "** IPFS Cluster is READY **";

fn service_json(peer: &Peer) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(peer.config.join("service.json")).unwrap()).unwrap()
}

/// The key of the `datastore` section, or `(none)`.
fn datastore_key(peer: &Peer) -> String {
    service_json(peer)["datastore"]
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "(none)".into())
}

fn pebble_format(peer: &Peer) -> Option<u64> {
    service_json(peer)["datastore"]["pebble"]["pebble_options"]["format_major_version"].as_u64()
}

fn set_pebble_format(peer: &Peer, format: u32) {
    let mut cfg = service_json(peer);
    cfg["datastore"]["pebble"]["pebble_options"]["format_major_version"] = format.into();
    fs::write(
        peer.config.join("service.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
}

/// `init` with `args`; the exit code and stderr.
fn init(bed: &Bed, version: &str, peer: &Peer, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    let out = bed.service(version, peer, &all);
    (out.status.code(), stderr(&out))
}

/// What the facts probe reads: the newest `OPTIONS-*` file's `format_major_version`.
fn options_format(store: &Path) -> Option<u32> {
    let newest = listing(store)
        .into_iter()
        .filter(|n| n.starts_with("OPTIONS-"))
        .max()?;
    let text = fs::read_to_string(store.join(newest)).ok()?;
    text.split_once("format_major_version=")?
        .1
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The format in the store's `marker.format-version.N.FFF` file, if it has one.
fn marker_format(store: &Path) -> Option<u32> {
    listing(store)
        .iter()
        .filter_map(|n| n.strip_prefix("marker.format-version."))
        .filter_map(|rest| rest.rsplit('.').next()?.parse().ok())
        .max()
}

#[test]
fn init_offers_the_datastores_of_each_release_and_refuses_the_others_as_it_does() {
    let bed = Bed::new();
    // 0.13: no --datastore (urfave's usage error, exit 0 and nothing written); CRDT on badger.
    let p = bed.peer("v013");
    let (code, err) = init(&bed, "0.13.1", &p, &["--datastore", "badger"]);
    assert_eq!(code, Some(0));
    assert!(
        err.contains("flag provided but not defined: -datastore"),
        "{err}"
    );
    assert!(!p.config.join("service.json").exists());
    assert_eq!(init(&bed, "0.13.1", &p, &[]).0, Some(0));
    assert_eq!(datastore_key(&p), "badger");

    // 0.14: badger (default) or leveldb; pebble is refused with 0.14's own text.
    let p = bed.peer("v014");
    let (code, err) = init(&bed, "0.14.5", &p, &["--datastore", "pebble"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "error choosing datastore: flag value must be set to 'leveldb' or 'badger'"
    );
    assert_eq!(init(&bed, "0.14.5", &p, &[]).0, Some(0));
    assert_eq!(datastore_key(&p), "badger");
    assert_eq!(
        init(&bed, "0.14.5", &p, &["-f", "--datastore", "leveldb"]).0,
        Some(0)
    );
    assert_eq!(datastore_key(&p), "leveldb");

    // 1.0.5: badger by default, pebble at format 1 when asked; 1.0.8 and 1.1.3: pebble at
    // their newest format.
    let p = bed.peer("v105");
    assert_eq!(init(&bed, "1.0.5", &p, &[]).0, Some(0));
    assert_eq!(datastore_key(&p), "badger");
    assert_eq!(
        init(&bed, "1.0.5", &p, &["-f", "--datastore", "pebble"]).0,
        Some(0)
    );
    assert_eq!(pebble_format(&p), Some(1));
    let (code, err) = init(&bed, "1.0.5", &p, &["-f", "--datastore", "rocks"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("flag value must be set to 'leveldb', 'badger', 'badger3' or 'pebble'"),
        "{err}"
    );
    for (version, newest) in [("1.0.8", 16), ("1.1.2", 16), ("1.1.3", 19), ("1.1.6", 24)] {
        let p = bed.peer(&format!("v{}", version.replace('.', "")));
        assert_eq!(init(&bed, version, &p, &[]).0, Some(0));
        assert_eq!(pebble_format(&p), Some(newest), "{version}");
    }
    // A raft peer has no datastore section, whatever --datastore says.
    let p = bed.peer("raft");
    assert_eq!(
        init(
            &bed,
            "1.1.6",
            &p,
            &["--consensus", "raft", "--datastore", "leveldb"]
        )
        .0,
        Some(0)
    );
    assert_eq!(datastore_key(&p), "(none)");
}

#[test]
fn a_crdt_peer_keeps_its_state_in_the_folder_of_its_datastore() {
    let bed = Bed::new();
    let p = bed.peer("a");
    assert_eq!(
        init(&bed, "0.14.5", &p, &["--datastore", "leveldb"]).0,
        Some(0)
    );
    let mut d = bed.daemon_env(("0.14.5", &p), &[], &[PING]);
    d.wait_log(READY, Duration::from_secs(15));
    assert!(bed
        .ctl("0.14.5", &p, &["pin", "add", &cid(1)])
        .status
        .success());
    assert!(d.stop().success());
    assert_eq!(
        listing(&p.config),
        ["identity.json", "leveldb", "peerstore", "service.json"]
    );
    let out = bed.service("0.14.5", &p, &["state", "export"]);
    assert!(stdout(&out).contains(&cid(1)), "{}", stderr(&out));
}

/// A 1.0.5 peer with a pebble store, stopped: its store is in format 1.
fn old_pebble_peer(bed: &Bed) -> Peer {
    let p = bed.peer("old");
    assert_eq!(
        init(bed, "1.0.5", &p, &["--datastore", "pebble"]).0,
        Some(0)
    );
    let mut d = bed.daemon_env(("1.0.5", &p), &[], &[PING]);
    d.wait_log(READY, Duration::from_secs(15));
    assert!(bed
        .ctl("1.0.5", &p, &["pin", "add", &cid(7)])
        .status
        .success());
    assert!(d.stop().success());
    p
}

#[test]
fn pebble_v2_refuses_a_format_1_config_or_store_and_1_0_8_raises_the_store_first() {
    let bed = Bed::new();
    let p = old_pebble_peer(&bed);
    let store = p.config.join("pebble");
    assert_eq!(options_format(&store), Some(1));
    assert_eq!(
        marker_format(&store),
        None,
        "format-1 stores have no marker"
    );
    assert!(store.join("CURRENT").exists());

    // 1.1.6 on the config as it is: refused when the configuration loads.
    let out = bed.service("1.1.6", &p, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with(
            "error loading configurations: FormatMajorVersion (1) must be between 13 and 24\n"
        ),
        "{}",
        stderr(&out)
    );
    // 1.1.3 with its own bounds.
    let out = bed.service("1.1.3", &p, &["daemon"]);
    assert!(
        stderr(&out).contains("FormatMajorVersion (1) must be between 13 and 19"),
        "{}",
        stderr(&out)
    );
    // The config raised by hand, the store never reopened: the store is refused.
    set_pebble_format(&p, 13);
    let out = bed.service("1.1.6", &p, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "error creating datastore: failed to open pebble database: pebble: database \"{}\" was written in format major version 1, which is no longer supported\n",
        store.display()
    );
    assert!(stderr(&out).ends_with(&expected), "{}", stderr(&out));
    // So is a state export (the same store is opened).
    let out = bed.service("1.1.6", &p, &["state", "export"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("which is no longer supported"),
        "{}",
        stderr(&out)
    );
    // 1.0.5 cannot write 13 (its pebble's newest is 12).
    let out = bed.service("1.0.5", &p, &["daemon"]);
    assert!(
        stderr(&out).contains("FormatMajorVersion (13) must be <= 12"),
        "{}",
        stderr(&out)
    );
    assert_eq!(options_format(&store), Some(1), "nothing was rewritten");

    // 1.0.8 opens the store with the raised config: it warns (16 is its newest) and rewrites
    // the store to 13; then 1.1.6 opens it and keeps the pin.
    let mut d = bed.daemon_env(("1.0.8", &p), &[], &[PING]);
    d.wait_log(READY, Duration::from_secs(15));
    assert!(
        d.log_text()
            .contains("Pebble's format_major_version is set to 13, but newest version is 16."),
        "{}",
        d.log_text()
    );
    assert!(d.stop().success());
    assert_eq!(options_format(&store), Some(13));
    assert_eq!(marker_format(&store), Some(13));
    let mut d = bed.daemon_env(("1.1.6", &p), &[], &[PING]);
    d.wait_log(READY, Duration::from_secs(15));
    assert!(stdout(&bed.ctl("1.1.6", &p, &["pin", "ls"])).contains(&cid(7)));
    assert!(d.stop().success());
}

#[test]
fn a_store_stays_at_its_format_when_the_config_says_less_and_newer_stores_are_refused() {
    let bed = Bed::new();
    let p = bed.peer("new");
    assert_eq!(init(&bed, "1.1.6", &p, &[]).0, Some(0));
    let mut d = bed.daemon_env(("1.1.6", &p), &[], &[PING]);
    d.wait_log(READY, Duration::from_secs(15));
    assert!(d.stop().success());
    let store = p.config.join("pebble");
    assert_eq!(marker_format(&store), Some(24));
    // 1.0.8 (pebble v1, newest 16) cannot go back: the config first, then the store.
    let out = bed.service("1.0.8", &p, &["daemon"]);
    assert!(
        stderr(&out)
            .contains("error loading configurations: FormatMajorVersion (24) must be <= 16"),
        "{}",
        stderr(&out)
    );
    set_pebble_format(&p, 16);
    let out = bed.service("1.0.8", &p, &["daemon"]);
    assert!(
        stderr(&out).ends_with(&format!(
            "failed to open pebble database: pebble: database \"{}\" written in format major version 24\n",
            store.display()
        )),
        "{}",
        stderr(&out)
    );
    // 1.1.6 with a lower configured format: it opens, the store stays at 24 and OPTIONS says
    // what was configured (as the real 1.1.6 did with a 1.0.8 store).
    set_pebble_format(&p, 13);
    let mut d = bed.daemon_env(("1.1.6", &p), &[], &[PING]);
    d.wait_log(READY, Duration::from_secs(15));
    assert!(d.stop().success());
    assert_eq!(marker_format(&store), Some(24));
    assert_eq!(options_format(&store), Some(13));
}

fn peer_ids(bed: &Bed, version: &str, peer: &Peer) -> usize {
    let out = bed.ctl(version, peer, &["--enc=json", "peers", "ls"]);
    serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<serde_json::Value>()
        .filter_map(Result::ok)
        .map(|v| match v {
            serde_json::Value::Array(items) => items.len(),
            _ => 1,
        })
        .sum()
}

fn crdt(bed: &Bed, version: &str, peer: &Peer, args: &[&str]) -> Daemon {
    let d = bed.daemon_env((version, peer), args, &[PING, REBROADCAST]);
    d.wait_log(READY, Duration::from_secs(15));
    d
}

#[test]
fn peers_of_0_13_and_0_14_share_the_protocol_but_not_their_metrics() {
    let bed = Bed::new();
    let (a, b, c) = (bed.peer("a13"), bed.peer("b14"), bed.peer("c14"));
    bed.init_crdt("0.13.1", &a);
    bed.init_crdt("0.14.5", &b);
    bed.init_crdt("0.14.5", &c);
    let da = crdt(&bed, "0.13.1", &a, &[]);
    let maddr = da.maddr();
    let db = crdt(&bed, "0.14.5", &b, &["--bootstrap", &maddr]);
    let dc = crdt(&bed, "0.14.5", &c, &["--bootstrap", &maddr]);
    // The 0.14 peers read the 0.13 peer's metrics (PR #1446, in 0.14.1) and warn once...
    for (peer, daemon) in [(&b, &db), (&c, &dc)] {
        assert!(
            eventually(Duration::from_secs(10), || peer_ids(&bed, "0.14.5", peer)
                == 3),
            "{} sees {}",
            peer.name,
            peer_ids(&bed, "0.14.5", peer)
        );
        let warned = daemon
            .log_text()
            .matches("Peers in versions <= v0.13.3 detected.")
            .count();
        assert_eq!(warned, 1, "{}", daemon.log_text());
    }
    // ... the 0.13 peer cannot read theirs: it sees itself only, however long it waits.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(peer_ids(&bed, "0.13.1", &a), 1);
    assert!(
        da.log_text().contains("multicodec did not match"),
        "{}",
        da.log_text()
    );
    // Two 0.14 peers see each other as they always do; the pinset still travels everywhere.
    assert!(bed
        .ctl("0.14.5", &b, &["pin", "add", &cid(3)])
        .status
        .success());
    assert!(eventually(Duration::from_secs(10), || stdout(&bed.ctl(
        "0.13.1",
        &a,
        &["pin", "ls"]
    ))
    .contains(&cid(3))));
    drop((da, db, dc));
}
