//! The `cluster-lab` commands that need no running lab: releases, help, errors.

use crate::lab_support;

use std::fs;

use crate::lab_support::{cluster_lab, ok};
use cluster_testbed::release::{read_trailer, sha256_file, Role, RELEASES};

#[test]
fn releases_lists_the_modelled_versions_one_per_line() {
    let out = String::from_utf8(ok(cluster_lab(&["releases"])).stdout).unwrap();
    assert_eq!(out.lines().collect::<Vec<_>>(), RELEASES);
}

#[test]
fn release_writes_both_executables_and_their_sums() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rel");
    ok(cluster_lab(&[
        "release",
        "0.11.0",
        "--out",
        out.to_str().unwrap(),
    ]));
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    for (file, role) in [
        ("ipfs-cluster-service", Role::Service),
        ("ipfs-cluster-ctl", Role::Ctl),
        ("ipfs-cluster-follow", Role::Follow),
    ] {
        let trailer = read_trailer(&out.join(file)).unwrap().unwrap();
        assert_eq!((trailer.role, trailer.version.as_str()), (role, "0.11.0"));
        assert!(sums.contains(&format!(
            "{}  {file}",
            sha256_file(&out.join(file)).unwrap()
        )));
    }
    let version = std::process::Command::new(out.join("ipfs-cluster-service"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("0.11.0"),
        "{version:?}"
    );
}

#[test]
fn an_unknown_release_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = cluster_lab(&["release", "0.12.0", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("release 0.12.0 is not modelled") && stderr.contains("1.1.6"),
        "{stderr}"
    );
    let up = cluster_lab(&[
        "up",
        "--dir",
        dir.path().to_str().unwrap(),
        "--version",
        "0.12.0",
    ]);
    assert_eq!(up.status.code(), Some(1));
    assert!(lab_support::processes_mentioning(dir.path()).is_empty());
}

#[test]
fn a_datastore_the_release_does_not_offer_is_refused_before_any_host_starts() {
    for (release, datastore, says) in [
        (
            "0.13.1",
            "badger",
            "IPFS Cluster 0.13.1 has no init --datastore (from 0.14)",
        ),
        (
            "0.14.5",
            "pebble",
            "IPFS Cluster 0.14.5 offers badger, leveldb",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let up = cluster_lab(&[
            "up",
            "--dir",
            dir.path().to_str().unwrap(),
            "--release",
            release,
            "--datastore",
            datastore,
        ]);
        assert_eq!(up.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&up.stderr);
        assert!(
            stderr.contains("--datastore") && stderr.contains(says),
            "{stderr}"
        );
        assert!(lab_support::processes_mentioning(dir.path()).is_empty());
    }
}

#[test]
fn every_subcommand_explains_its_options() {
    let help = |args: &[&str]| String::from_utf8(ok(cluster_lab(args)).stdout).unwrap();
    let up = help(&["up", "--help"]);
    for option in [
        "--dir",
        "--peers",
        "--version",
        "--pins",
        "--target",
        "--standin",
        "--wait-for-leader-timeout",
        "--peer-watch-interval",
        "--ssh-port",
        "--cluster-port",
        "--api-port",
        "--keep-on-failure",
        "--consensus",
        "--datastore",
        "--release",
        "--rtt <DURATION>",
        "--jitter <DURATION>",
    ] {
        assert!(up.contains(option), "up --help lacks {option}:\n{up}");
    }
    assert!(help(&["status", "--help"]).contains("--json"));
    assert!(help(&["down", "--help"]).contains("--dir"));
    assert!(help(&["release", "--help"]).contains("--out"));
    let fault = help(&["fault", "--help"]);
    for verb in [
        "stop-sshd",
        "start-sshd",
        "kill-peer",
        "rm-state",
        "rekey",
        "interrupted-merge",
    ] {
        assert!(fault.contains(verb), "fault --help lacks {verb}");
    }
    assert!(help(&["fault", "rm-state", "--help"]).contains("--backups"));
    assert!(help(&["fault", "rekey", "--help"]).contains("--update-known-hosts"));
    assert!(help(&["fault", "interrupted-merge", "--help"]).contains("--pins <N>"));
    assert!(help(&["--help"]).contains("releases"));
}

#[test]
fn status_and_fault_need_a_lab_and_down_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let status = cluster_lab(&["status", "--dir", path]);
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stderr).contains("is not a lab"));
    assert!(!cluster_lab(&["fault", "--dir", path, "kill-peer", "h1"])
        .status
        .success());
    ok(cluster_lab(&["down", "--dir", path]));
    ok(cluster_lab(&["down", "--dir", &format!("{path}/missing")]));
}
