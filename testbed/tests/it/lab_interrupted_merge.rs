//! `cluster-lab fault interrupted-merge`: the CRDT divergence of ADR 0015, made deterministic.
//! A 1.0.8 peer stopped "while it merges" lacks the pins it received last; started on 1.0.8
//! again it repairs its store and gets them back, started on 1.1.6 it lacks them for good,
//! until `state cleanup`.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cluster_testbed::lab::pins;
use cluster_testbed::standin::dirty::MARKER;

use crate::lab_support::{down_and_assert_clean, Lab};

/// Pins of the lab: `up` adds them through every peer, so each peer received most of them.
const PINS: usize = 12;
/// The lab's `crdt.rebroadcast_interval` (`lab::real_up::CRDT_REBROADCAST_INTERVAL`).
const REBROADCAST: Duration = Duration::from_secs(5);

/// The lab's pins, by CID.
fn all_pins() -> BTreeSet<String> {
    (0..PINS).map(pins::cid).collect()
}

fn config(lab: &Lab, host: &str) -> PathBuf {
    lab.home(host).join(".ipfs-cluster")
}

fn log(lab: &Lab, host: &str) -> String {
    fs::read_to_string(lab.home(host).join("ipfs-cluster.log")).unwrap_or_default()
}

/// Runs `COMMAND` on `host` over SSH (the host's `bin` named in full) and requires success;
/// returns stdout.
fn on(lab: &Lab, host: &str, command: &str) -> String {
    let bin = lab.home(host).join("bin");
    let out = lab.ssh(host, &format!("{}/{command}", bin.display()));
    assert!(
        out.status.success(),
        "{host}: `{command}` failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        lab.logs()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The CIDs of `ipfs-cluster-ctl pin ls` (or `status`) on `host`, asked of its own peer;
/// `None` while its API does not answer.
fn ctl_cids(lab: &Lab, host: &str, verb: &str) -> Option<BTreeSet<String>> {
    let api = lab_api(lab, host);
    let ctl = lab.home(host).join("bin/ipfs-cluster-ctl");
    let out = lab.ssh(
        host,
        &format!("{} --host {api} --enc json {verb}", ctl.display()),
    );
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        cluster_testbed::lab::ctl::pin_cids(&text)
            .unwrap()
            .into_iter()
            .collect(),
    )
}

fn pin_ls(lab: &Lab, host: &str) -> Option<BTreeSet<String>> {
    ctl_cids(lab, host, "pin ls")
}

/// Waits until `host` lists exactly `want`, or fails naming what it lists.
fn wait_pins(lab: &Lab, host: &str, want: &BTreeSet<String>, limit: Duration) {
    let start = Instant::now();
    loop {
        let listed = pin_ls(lab, host);
        if listed.as_ref() == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{host} lists {listed:?} after {limit:?}, not {want:?}\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `ipfs-cluster-service state export` of a stopped peer: the CIDs it holds.
fn exported(lab: &Lab, host: &str) -> BTreeSet<String> {
    let cfg = config(lab, host);
    let text = on(
        lab,
        host,
        &format!("ipfs-cluster-service -c {} state export", cfg.display()),
    );
    cluster_testbed::lab::ctl::pin_cids(&text)
        .unwrap()
        .into_iter()
        .collect()
}

/// A 3-peer 1.0.8 CRDT lab whose `host` was faulted and stopped: returns the lab and the
/// CIDs the stop left out (checked: exactly `N` of the lab's pins, the log and the marker).
fn interrupted(host: &str, n: usize) -> (Lab, BTreeSet<String>) {
    let lab = Lab::up(3, "1.0.8", PINS, &["--consensus", "crdt"]);
    let all = all_pins();
    assert_eq!(pin_ls(&lab, host).as_ref(), Some(&all));

    let n_text = n.to_string();
    let report = lab.fault(&["interrupted-merge", host, "--pins", &n_text]);
    assert!(
        report.contains(&format!("{host}: the peer's next stop interrupts a merge")),
        "{report}"
    );
    assert_eq!(
        fs::read_to_string(config(&lab, host).join(MARKER)).unwrap(),
        format!("{n}\n")
    );

    on(&lab, host, "ipfs-cluster-svc stop");
    let log = log(&lab, host);
    for line in [
        "WARN\tcrdt\tGetDeltas did not include all children",
        "ERROR\tcrdt\terror getting delta: context canceled",
        "WARN\tcrdt\tmarking datastore as dirty",
        "WARN\tcrdt\tdatastore is being closed marked as dirty",
    ] {
        assert!(log.contains(line), "{host}'s log lacks {line:?}:\n{log}");
    }
    assert!(
        !config(&lab, host).join(MARKER).exists(),
        "the stop consumed the marker"
    );
    // The stopped peer holds all but the pins left out.
    let held = exported(&lab, host);
    assert!(held.is_subset(&all));
    let left_out: BTreeSet<String> = all.difference(&held).cloned().collect();
    assert_eq!(left_out.len(), n, "{held:?}");
    (lab, left_out)
}

#[test]
fn a_1_0_8_peer_repairs_its_interrupted_merge_at_the_next_start() {
    let (lab, _) = interrupted("h2", 3);
    on(&lab, "h2", "ipfs-cluster-svc start");
    // The repair forgets the left-out updates; the next rebroadcast brings them back.
    wait_pins(&lab, "h2", &all_pins(), REBROADCAST * 4);
    let log = log(&lab, "h2");
    assert!(
        log.contains("WARN\tcrdt\tstore is marked dirty. Starting DAG repair operation"),
        "{log}"
    );
    assert!(log.contains("Dirty: true"), "{log}");
    down_and_assert_clean(&lab);
}

#[test]
fn a_peer_started_on_1_1_6_after_an_interrupted_merge_lacks_those_pins_until_state_cleanup() {
    let (lab, left_out) = interrupted("h3", 3);
    let all = all_pins();
    // The upgrade's swap: the 1.1.6 binaries in place of 1.0.8's.
    let release = lab.path().join("releases/1.1.6");
    let bin = lab.home("h3").join("bin");
    for file in ["ipfs-cluster-service", "ipfs-cluster-ctl"] {
        let out = lab.ssh(
            "h3",
            &format!(
                "cp {} {}",
                release.join(file).display(),
                bin.join(file).display()
            ),
        );
        assert!(out.status.success(), "{out:?}");
    }
    on(&lab, "h3", "ipfs-cluster-svc start");
    assert_eq!(lab.host_status("h3")["version"], "1.1.6");

    // Several rebroadcast intervals later h3 still lacks exactly those pins; the others list
    // every pin (exchanges with h3 take nothing from them).
    let held: BTreeSet<String> = all.difference(&left_out).cloned().collect();
    wait_pins(&lab, "h3", &held, REBROADCAST * 2);
    std::thread::sleep(REBROADCAST * 4);
    assert_eq!(pin_ls(&lab, "h3"), Some(held.clone()));
    assert_eq!(ctl_cids(&lab, "h3", "status"), Some(held.clone()));
    for other in ["h1", "h2"] {
        assert_eq!(pin_ls(&lab, other).as_ref(), Some(&all), "{other}");
    }
    let log = log(&lab, "h3");
    for line in [
        "INFO\tcrdt\tMigration v0 to v1 finished",
        "Dirty: false",
        "INFO\tcrdt\tstore is marked clean. No need to repair",
    ] {
        assert!(log.contains(line), "h3's log lacks {line:?}:\n{log}");
    }
    assert!(!log.contains("Starting DAG repair operation"), "{log}");

    // A new write of a left-out CID (through another peer) is a new update: it reaches h3.
    let again = left_out.iter().next().unwrap().clone();
    on(
        &lab,
        "h1",
        &format!(
            "ipfs-cluster-ctl --host {} pin add --no-status --name again {again}",
            lab_api(&lab, "h1")
        ),
    );
    let mut with_again = held.clone();
    with_again.insert(again.clone());
    wait_pins(&lab, "h3", &with_again, REBROADCAST * 2);

    // The resync of ADR 0015: stop, `state cleanup -f`, start.
    on(&lab, "h3", "ipfs-cluster-svc stop");
    assert_eq!(
        exported(&lab, "h3"),
        with_again,
        "export lists what it holds"
    );
    let cfg = config(&lab, "h3");
    on(
        &lab,
        "h3",
        &format!("ipfs-cluster-service -c {} state cleanup -f", cfg.display()),
    );
    assert!(exported(&lab, "h3").is_empty());
    on(&lab, "h3", "ipfs-cluster-svc start");
    wait_pins(&lab, "h3", &all, REBROADCAST * 4);
    down_and_assert_clean(&lab);
}

#[test]
fn the_fault_is_refused_for_a_raft_peer() {
    let lab = Lab::up(1, "1.0.8", 0, &["--consensus", "raft"]);
    let out = lab.run("fault", &["interrupted-merge", "h1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host h1: fault interrupted-merge does not apply: its peer runs raft"),
        "{stderr}"
    );
    assert!(!config(&lab, "h1").join(MARKER).exists());
    down_and_assert_clean(&lab);
}

/// The REST API multiaddress of `host`.
fn lab_api(lab: &Lab, host: &str) -> String {
    let state = lab.lab_json();
    let record = state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == host)
        .unwrap();
    format!(
        "/ip4/{}/tcp/{}",
        record["address"].as_str().unwrap(),
        state["ports"]["api"]
    )
}
