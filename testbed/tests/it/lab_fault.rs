//! `cluster-lab fault`: every verb, against a running lab.

use std::fs;

use crate::lab_support::{alive, down_and_assert_clean, Lab};
use std::time::Duration;

#[test]
fn sshd_faults_cut_and_restore_ssh_and_rekey_breaks_known_hosts() {
    let lab = Lab::up(2, "0.10.1", 0, &[]);
    let key_before =
        fs::read_to_string(lab.path().join("hosts/h2/sshd/ssh_host_ed25519_key.pub")).unwrap();

    assert!(lab.fault(&["stop-sshd", "h2"]).contains("sshd stopped"));
    assert!(!lab.ssh("h2", "true").status.success());
    let h2 = lab.host_status("h2");
    assert!(
        h2["version"].is_null() && h2["running"].is_null() && !h2["error"].is_null(),
        "{h2}"
    );
    assert_eq!(lab.host_status("h1")["running"], true);
    // Its peer is untouched: only SSH is down.
    assert!(lab.fault(&["stop-sshd", "h2"]).contains("was not running"));

    assert!(lab.fault(&["start-sshd", "h2"]).contains("sshd started"));
    assert!(
        lab.ssh("h2", "true").status.success(),
        "the same host key still matches known_hosts"
    );
    assert_eq!(lab.host_status("h2")["running"], true);
    assert!(lab.fault(&["start-sshd", "h2"]).contains("already running"));
    assert_eq!(
        fs::read_to_string(lab.path().join("hosts/h2/sshd/ssh_host_ed25519_key.pub")).unwrap(),
        key_before
    );

    assert!(lab.fault(&["rekey", "h2"]).contains("new host key"));
    let refused = lab.ssh("h2", "true");
    assert_eq!(refused.status.code(), Some(255));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("IDENTIFICATION HAS CHANGED")
            || stderr.contains("Host key verification failed"),
        "{stderr}"
    );
    assert!(lab
        .fault(&["rekey", "h2", "--update-known-hosts"])
        .contains("known_hosts updated"));
    assert!(lab.ssh("h2", "true").status.success());

    down_and_assert_clean(&lab);
}

#[test]
fn peer_faults_kill_the_peer_and_remove_its_state() {
    let lab = Lab::up(3, "0.10.1", 5, &[]);
    let pid: u32 = fs::read_to_string(lab.home("h3").join("ipfs-cluster.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    assert!(lab.fault(&["kill-peer", "h3"]).contains("peer killed"));
    assert!(!alive(pid));
    let h3 = lab.host_status("h3");
    assert_eq!(h3["running"], false, "{h3}");
    assert!(h3["peers"].is_null());
    assert!(lab.fault(&["kill-peer", "h3"]).contains("not running"));
    // The others keep a majority.
    lab.wait_status("h1 and h2 to stay up", Duration::from_secs(10), |s| {
        s[0]["running"] == true && s[1]["pins"] == 5
    });

    let config = lab.home("h3").join(".ipfs-cluster");
    assert!(config.join("raft").is_dir());
    fs::create_dir_all(config.join("raft.old.0")).unwrap();
    assert!(lab.fault(&["rm-state", "h3"]).contains("removed raft"));
    assert!(!config.join("raft").exists());
    assert!(
        config.join("raft.old.0").exists(),
        "backups stay without --backups"
    );
    let out = lab.fault(&["rm-state", "h3", "--backups"]);
    assert!(out.contains("raft.old.0"), "{out}");
    assert!(!config.join("raft.old.0").exists());
    assert!(lab.fault(&["rm-state", "h3"]).contains("no raft state"));
    assert!(config.join("service.json").is_file(), "only the state goes");

    down_and_assert_clean(&lab);
}

#[test]
fn an_unknown_host_is_an_error() {
    let lab = Lab::up(1, "0.10.1", 0, &[]);
    let out = lab.run("fault", &["kill-peer", "h9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no host named h9 in this lab (hosts: h1)")
    );
    down_and_assert_clean(&lab);
}
