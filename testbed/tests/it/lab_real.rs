//! `cluster-lab up --real`: the real IPFS Cluster releases and a real kubo daemon per host, as
//! built by scripts/real-releases. These tests fail (never skip) when the real releases are
//! missing, with the lab's error naming scripts/real-releases.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::lab_support::{alive, cluster_lab, down_and_assert_clean, ok, Lab};
use cluster_testbed::lab::real::RealReleases;
use serde_json::Value;

/// Every real release the issue asks for, and kubo, are built.
fn require_real_releases() {
    let real = RealReleases::open(None);
    for version in ["1.0.8", "1.1.6"] {
        if let Err(error) = real.require(version) {
            panic!("{error}");
        }
    }
    if let Err(error) = real.require_kubo() {
        panic!("{error}");
    }
}

#[test]
fn releases_real_lists_the_real_versions_built() {
    require_real_releases();
    let out = String::from_utf8(ok(cluster_lab(&["releases", "--real"])).stdout).unwrap();
    let listed: Vec<&str> = out.lines().collect();
    assert!(
        listed.contains(&"1.0.8") && listed.contains(&"1.1.6"),
        "{listed:?}"
    );
}

#[test]
fn without_the_real_releases_up_real_fails_naming_the_script_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    let out = cluster_lab(&[
        "up",
        "--dir",
        lab.to_str().unwrap(),
        "--real",
        "--real-dir",
        dir.path().join("no-cache").to_str().unwrap(),
        "--version",
        "1.0.8",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("IPFS Cluster 1.0.8 is not built")
            && stderr.contains("run scripts/real-releases"),
        "{stderr}"
    );
    assert!(!lab.join("lab.json").exists(), "no host was started");
    let listed = cluster_lab(&[
        "releases",
        "--real",
        "--real-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(listed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&listed.stderr).contains("scripts/real-releases"));
}

/// A CRDT lab of real peers: each host runs kubo and the peer under the service wrapper, the
/// pins' blocks are in every kubo so every pin is PINNED, the inventory points at the real
/// release folder, and status, fault and down work as with stand-ins.
#[test]
fn a_real_crdt_lab_runs_kubo_and_the_real_peer_on_every_host() {
    require_real_releases();
    let lab = Lab::up(3, "1.0.8", 10, &["--real", "--consensus", "crdt"]);

    // up printed every host's start times and memory.
    for host in ["h1", "h2", "h3"] {
        let line = lab
            .up_stdout
            .lines()
            .find(|l| l.starts_with(&format!("{host}: kubo ready in ")))
            .unwrap_or_else(|| panic!("no measures for {host}:\n{}", lab.up_stdout));
        assert!(
            line.contains("ipfs-cluster-service ready in ") && !line.contains('?'),
            "{line}"
        );
    }

    let status = lab.status();
    for host in &status {
        assert_eq!(host["version"], "1.0.8", "{host}");
        assert_eq!(host["running"], true, "{host}");
        assert_eq!(host["ipfs_running"], true, "{host}");
        assert_eq!(host["peers"], 3, "{host}");
        assert_eq!(host["pins"], 10, "{host}");
    }

    // The real binaries, verified on the host, not a stand-in.
    let real = RealReleases::open(None);
    let sums = fs::read_to_string(real.cluster_dir().join("1.0.8/SHA256SUMS")).unwrap();
    let service_sum = sums
        .lines()
        .find(|l| l.ends_with(" ipfs-cluster-service"))
        .unwrap();
    let installed = Command::new("sha256sum")
        .arg(lab.home("h2").join("bin/ipfs-cluster-service"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&installed.stdout)
            .split_whitespace()
            .next(),
        service_sum.split_whitespace().next()
    );
    let config = fs::read_to_string(lab.home("h1").join(".ipfs-cluster/service.json")).unwrap();
    assert!(config.contains("\"crdt\": {"), "init --consensus crdt");
    assert!(config.contains("\"mdns_interval\": \"0s\""), "no mDNS");

    // Every lab pin is PINNED on every peer: its block is in that host's kubo.
    let state = lab.lab_json();
    let pins: Vec<&str> = state["real"]["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(pins.len(), 10);
    let api = format!(
        "/ip4/{}/tcp/{}",
        state["hosts"][2]["address"].as_str().unwrap(),
        state["ports"]["api"]
    );
    let out = Command::new(lab.home("h3").join("bin/ipfs-cluster-ctl"))
        .args(["--host", &api, "--enc", "json", "status", "--local"])
        .output()
        .unwrap();
    let pinned = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .filter(|v| {
            let map = v["peer_map"].as_object().unwrap();
            map.values().all(|p| p["status"] == "pinned")
        })
        .count();
    assert_eq!(pinned, 10, "{}", String::from_utf8_lossy(&out.stdout));

    let inventory = fs::read_to_string(lab.path().join("inventory.yaml")).unwrap();
    assert!(
        inventory.contains(&format!("path: \"{}\"", real.cluster_dir().display())),
        "{inventory}"
    );

    // fault: a killed peer shows as stopped while its kubo keeps running; rm-state removes a
    // CRDT peer's datastore.
    let pid: u32 = fs::read_to_string(lab.home("h3").join("ipfs-cluster.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(lab.fault(&["kill-peer", "h3"]).contains("peer killed"));
    assert!(!alive(pid));
    let h3 = lab.host_status("h3");
    assert_eq!(h3["running"], false, "{h3}");
    assert_eq!(h3["ipfs_running"], true, "{h3}");
    let datastore = lab.home("h3").join(".ipfs-cluster/pebble");
    assert!(datastore.is_dir());
    assert!(lab.fault(&["rm-state", "h3"]).contains("removed pebble"));
    assert!(!datastore.exists());
    lab.wait_status("h1 and h2 to keep the pins", Duration::from_secs(10), |s| {
        s[0]["running"] == true && s[1]["pins"] == 10
    });

    // down stops every peer and kubo by PID, and leaves no process of the lab behind.
    let kubo: u32 = fs::read_to_string(lab.home("h1").join("ipfs.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    down_and_assert_clean(&lab);
    assert!(!alive(kubo), "kubo {kubo} survived down");
}
