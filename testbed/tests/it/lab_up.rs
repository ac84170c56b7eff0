//! `cluster-lab up` → `status` → `down` against real sshd processes and stand-in peers.

use crate::lab_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::lab_support::{assert_healthy, down_and_assert_clean, ok, Lab};

#[test]
fn three_hosts_come_up_report_status_and_go_down_without_a_trace() {
    let lab = Lab::up(3, "0.10.1", 50, &[]);
    assert_healthy(&lab.status(), 3, "0.10.1", 50);

    // The files the inventory refers to.
    let inventory = fs::read_to_string(lab.path().join("inventory.yaml")).unwrap();
    assert!(
        inventory.contains("target_version: \"0.11.0\""),
        "{inventory}"
    );
    assert!(inventory.contains("    source: local\n    path: releases\n"));
    assert!(inventory.contains("  known_hosts: known_hosts\n"));
    assert_eq!(
        inventory.matches("    identity_file: id_ed25519\n").count(),
        3
    );
    assert_eq!(inventory.matches("      service_manager: lab\n").count(), 3);
    for host in ["h1", "h2", "h3"] {
        let home = lab.home(host);
        assert!(inventory.contains(&format!("      bin_dir: \"{}/bin\"\n", home.display())));
        assert!(inventory.contains(&format!(
            "      config_dir: \"{}/.ipfs-cluster\"\n",
            home.display()
        )));
        assert!(inventory.contains(&format!(
            "      service_cmd: \"{}/bin/ipfs-cluster-svc\"\n",
            home.display()
        )));
        assert!(home.join("bin/ipfs-cluster-svc").is_file());
        let unit = fs::read_to_string(home.join("ipfs-cluster.unit")).unwrap();
        assert!(unit.contains(&format!(
            "ExecStart={0}/bin/ipfs-cluster-service -c {0}/.ipfs-cluster daemon",
            home.display()
        )));
    }
    let known_hosts = fs::read_to_string(lab.path().join("known_hosts")).unwrap();
    assert_eq!(known_hosts.lines().count(), 3);
    assert!(known_hosts
        .lines()
        .all(|l| l.starts_with("[127.") && l.contains("]:") && l.contains(" ssh-ed25519 ")));
    let mode = fs::metadata(lab.path().join("id_ed25519"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for version in cluster_testbed::release::RELEASES {
        let release = lab.path().join("releases").join(version);
        for file in ["ipfs-cluster-service", "ipfs-cluster-ctl", "SHA256SUMS"] {
            assert!(release.join(file).is_file(), "{version}/{file}");
        }
    }

    // Addresses: one random /24 outside 127.0.0.x, hosts from .2.
    let state = lab.lab_json();
    let addresses: Vec<&str> = state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["address"].as_str().unwrap())
        .collect();
    assert!(!addresses[0].starts_with("127.0.0."));
    assert!(
        addresses[0].ends_with(".2") && addresses[2].ends_with(".4"),
        "{addresses:?}"
    );

    // The text form names every host.
    let text = String::from_utf8(ok(lab.run("status", &[])).stdout).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.lines().all(|l| l.contains("0.10.1")
            && l.contains("running")
            && l.contains("3 peers")
            && l.contains("50 pins")),
        "{text}"
    );

    down_and_assert_clean(&lab);
    // Twice is fine, and finds nothing left to stop.
    let again = String::from_utf8(ok(lab.run("down", &[])).stdout).unwrap();
    assert!(
        again.contains("stopped 0 peer(s), 0 sshd(s), 0 other process(es)"),
        "{again}"
    );
}

#[test]
fn a_modern_release_forms_a_crdt_cluster_by_default_as_its_init_does() {
    let lab = Lab::up(3, "1.1.6", 5, &[]);
    assert_healthy(&lab.status(), 3, "1.1.6", 5);
    for host in ["h1", "h2", "h3"] {
        let config = lab.home(host).join(".ipfs-cluster");
        let service = fs::read_to_string(config.join("service.json")).unwrap();
        assert!(service.contains("\"crdt\": {"), "{host}: {service}");
        assert!(
            config.join("pebble").is_dir(),
            "{host}: no datastore folder"
        );
        assert!(!config.join("raft").exists(), "{host}: a raft folder");
    }
    down_and_assert_clean(&lab);
}

#[test]
fn a_modern_release_forms_a_raft_cluster_with_p2p_bootstrap_addresses() {
    let lab = Lab::up(
        3,
        "1.0.8",
        20,
        &["--target", "1.1.6", "--consensus", "raft"],
    );
    assert_healthy(&lab.status(), 3, "1.0.8", 20);
    let inventory = fs::read_to_string(lab.path().join("inventory.yaml")).unwrap();
    assert!(inventory.contains("target_version: \"1.1.6\""));
    let log = fs::read_to_string(lab.home("h2").join("ipfs-cluster.log")).unwrap();
    assert!(
        log.contains("start: ")
            && log.contains(" daemon --bootstrap /ip4/")
            && log.contains("/p2p/"),
        "{log}"
    );
    down_and_assert_clean(&lab);
}

#[test]
fn a_running_lab_is_not_replaced() {
    let lab = Lab::up(1, "0.9.0", 0, &[]);
    let again = lab_support::cluster_lab(&[
        "up",
        "--dir",
        lab.path_str(),
        "--peers",
        "1",
        "--version",
        "0.9.0",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds a running lab"));
    assert_healthy(&lab.status(), 1, "0.9.0", 0);
    down_and_assert_clean(&lab);
    // Once down, the folder can hold a new lab.
    ok(lab_support::cluster_lab(&[
        "up",
        "--dir",
        lab.path_str(),
        "--peers",
        "1",
        "--version",
        "0.10.1",
    ]));
    assert_healthy(&lab.status(), 1, "0.10.1", 0);
    down_and_assert_clean(&lab);
}
