//! `cluster-lab up --host-kind systemd`: every host a container booted with a real systemd
//! (systemd-nspawn over the cached Debian tree, an overlay per host), sshd and the peer run by
//! it, the peer as `ipfs-cluster.service` with `User=ipfs`. Needs root and builds the tree on
//! first use (`cluster-lab systemd-tree`).

use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::lab_support::{alive, assert_healthy, down_and_assert_clean, ok, on, Lab};
use cluster_testbed::lab::systemd;

/// A file of the machine's `/tmp` that booting and stopping systemd must not remove (systemd
/// empties `/tmp` when it boots: only the container's own may be emptied). Removed on drop.
struct TmpMarker(PathBuf);

impl TmpMarker {
    fn new() -> TmpMarker {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = PathBuf::from(format!(
            "/tmp/cluster-lab-systemd-marker-{}-{nanos}",
            std::process::id()
        ));
        fs::write(&path, "systemd hosts must leave the machine's /tmp alone\n").unwrap();
        TmpMarker(path)
    }

    fn assert_present(&self, when: &str) {
        assert!(
            self.0.is_file(),
            "{} vanished {when}: a systemd cleaned the machine's /tmp",
            self.0.display()
        );
    }
}

impl Drop for TmpMarker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn options_systemd_hosts_do_not_combine_with_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    let out = crate::lab_support::cluster_lab(&[
        "up",
        "--dir",
        lab.to_str().unwrap(),
        "--host-kind",
        "systemd",
        "--bastion",
        "--version",
        "1.1.6",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid option --host-kind systemd: not combined with --bastion"),
        "{stderr}"
    );
    assert!(!lab.join("lab.json").exists());
    let out = crate::lab_support::cluster_lab(&[
        "up",
        "--dir",
        lab.to_str().unwrap(),
        "--host-kind",
        "vm",
        "--version",
        "1.1.6",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("not a host kind (process, systemd or docker)"));
}

#[test]
fn systemd_hosts_run_the_peer_as_a_unit_of_the_ipfs_user_and_go_down_without_a_trace() {
    let marker = TmpMarker::new();
    let lab = Lab::up(3, "1.1.6", 5, &["--host-kind", "systemd"]);
    marker.assert_present("after up");
    assert_healthy(&lab.status(), 3, "1.1.6", 5);

    for host in ["h1", "h2", "h3"] {
        // A real systemd is the host's init, and names it.
        assert_eq!(on(&lab, host, "cat /proc/1/comm"), "systemd");
        assert_eq!(on(&lab, host, "hostname"), host);
        assert_eq!(on(&lab, host, "systemctl is-active ipfs-cluster"), "active");
        assert_eq!(
            on(&lab, host, "systemctl show -p User ipfs-cluster"),
            "User=ipfs"
        );
        assert_eq!(
            on(&lab, host, "systemctl is-enabled ipfs-cluster"),
            "enabled"
        );
        // The daemon really runs as ipfs, on the config folder that user owns.
        let pid = on(&lab, host, "systemctl show -p MainPID --value ipfs-cluster");
        assert_eq!(on(&lab, host, &format!("ps -o user= -p {pid}")), "ipfs");
        assert_eq!(
            on(&lab, host, "stat -c %U:%a /home/ipfs/.ipfs-cluster"),
            "ipfs:700"
        );
        assert_eq!(
            on(&lab, host, "stat -c %U /usr/local/bin/ipfs-cluster-service"),
            "root"
        );
    }

    // The peers see each other: the cluster's own peer list, through h2's API.
    let state = lab.lab_json();
    let api = format!(
        "/ip4/{}/tcp/{}",
        state["hosts"][1]["address"].as_str().unwrap(),
        state["ports"]["api"]
    );
    let peers = on(
        &lab,
        "h2",
        &format!("ipfs-cluster-ctl --host {api} --enc json peers ls"),
    );
    assert_eq!(peers.matches("\"peername\":").count(), 3, "{peers}");

    // The inventory says how cluster-upgrade reaches and drives these hosts.
    let inventory = fs::read_to_string(lab.path().join("inventory.yaml")).unwrap();
    for line in [
        "vars:\n  service_manager: systemd\n  service_user: \"ipfs\"\n  systemd_unit: \"ipfs-cluster\"\n",
        "  user: \"root\"\n",
    ] {
        assert!(inventory.contains(line), "{line:?} not in\n{inventory}");
    }
    assert_eq!(
        inventory
            .matches("      service_manager: systemd\n")
            .count(),
        3
    );
    assert_eq!(
        inventory
            .matches("      bin_dir: \"/usr/local/bin\"\n")
            .count(),
        3
    );
    assert_eq!(
        inventory
            .matches("      config_dir: \"/home/ipfs/.ipfs-cluster\"\n")
            .count(),
        3
    );
    assert_eq!(
        inventory
            .matches("      systemd_unit: \"ipfs-cluster\"\n")
            .count(),
        3
    );
    assert!(!inventory.contains("service_cmd"), "{inventory}");
    let known_hosts = fs::read_to_string(lab.path().join("known_hosts")).unwrap();
    assert_eq!(known_hosts.lines().count(), 3, "{known_hosts}");

    // systemctl drives the peer: stopped, the lab sees it stopped; started, it rejoins.
    on(&lab, "h3", "systemctl stop ipfs-cluster");
    assert_eq!(lab.host_status("h3")["running"], false);
    on(&lab, "h3", "systemctl start ipfs-cluster");
    lab.wait_status("h3 back", std::time::Duration::from_secs(60), |s| {
        s[2]["running"] == true && s[2]["peers"] == 3
    });

    // A running lab is not replaced, and faults (which act on the lab's own processes) are
    // refused on containers.
    let again = crate::lab_support::cluster_lab(&[
        "up",
        "--dir",
        lab.path_str(),
        "--host-kind",
        "systemd",
        "--version",
        "1.1.6",
    ]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("holds a running lab"), "{stderr}");
    let fault = lab.run("fault", &["kill-peer", "h1"]);
    assert!(!fault.status.success());
    let stderr = String::from_utf8_lossy(&fault.stderr);
    assert!(
        stderr.contains("faults other than crash-at-start act on process hosts only"),
        "{stderr}"
    );

    let machines: Vec<String> = state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["container"]["machine"].as_str().unwrap().to_string())
        .collect();
    let pids: Vec<u32> = state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["container"]["pid"].as_u64().unwrap() as u32)
        .collect();
    assert!(pids.iter().all(|&pid| alive(pid)));
    for machine in &machines {
        assert!(!systemd::cgroups_left(machine).is_empty(), "{machine}");
    }

    down_and_assert_clean(&lab);
    for pid in pids {
        assert!(!alive(pid), "nspawn {pid} survived down");
    }
    for machine in &machines {
        let left = systemd::cgroups_left(machine);
        assert!(left.is_empty(), "cgroups left: {left:?}");
    }
    marker.assert_present("after down");
    let again = String::from_utf8(ok(lab.run("down", &[])).stdout).unwrap();
    assert!(
        again.contains("stopped 0 peer(s), 0 sshd(s), 0 other process(es)\n"),
        "{again}"
    );
}

/// `--real` on systemd hosts: the real 1.0.8 peer and kubo, each a unit of the `ipfs` user
/// (`ipfs-cluster.service` after `ipfs.service`), every pin PINNED. Fails (never skips) when
/// scripts/real-releases has not built them.
#[test]
fn real_binaries_run_as_units_of_the_ipfs_user_on_systemd_hosts() {
    let real = cluster_testbed::lab::real::RealReleases::open(None);
    if let Err(error) = real.require("1.0.8").and(real.require_kubo().map(|_| ())) {
        panic!("{error}");
    }
    let marker = TmpMarker::new();
    let lab = Lab::up(
        3,
        "1.0.8",
        3,
        &["--host-kind", "systemd", "--real", "--consensus", "crdt"],
    );
    for host in lab.status() {
        assert_eq!(host["version"], "1.0.8", "{host}");
        assert_eq!(host["running"], true, "{host}");
        assert_eq!(host["ipfs_running"], true, "{host}");
        assert_eq!(host["peers"], 3, "{host}");
        assert_eq!(host["pins"], 3, "{host}");
    }
    for host in ["h1", "h2", "h3"] {
        assert_eq!(
            on(&lab, host, "systemctl is-active ipfs ipfs-cluster"),
            "active\nactive"
        );
        assert_eq!(on(&lab, host, "systemctl show -p User ipfs"), "User=ipfs");
        assert_eq!(
            on(
                &lab,
                host,
                "ps -o user= -C ipfs,ipfs-cluster-service | sort -u"
            ),
            "ipfs"
        );
    }
    // The real release, verified on the host.
    let sums = fs::read_to_string(real.cluster_dir().join("1.0.8/SHA256SUMS")).unwrap();
    let sum = sums
        .lines()
        .find(|l| l.ends_with(" ipfs-cluster-service"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert_eq!(
        on(
            &lab,
            "h2",
            "sha256sum /usr/local/bin/ipfs-cluster-service | cut -d ' ' -f 1"
        ),
        sum
    );
    down_and_assert_clean(&lab);
    marker.assert_present("after up and down");
}
