//! The stand-in's command lines without a running cluster: versions, help, init per era,
//! state commands on fresh peers and ctl errors.

use std::fs;
use std::process::Command;

use crate::common::{stderr, stdout, Bed};

#[test]
fn the_bare_binary_refuses_to_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_cluster-peer"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cluster-lab release"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn versions_help_and_unknown_commands() {
    let bed = Bed::new();
    let p = bed.peer("a");
    let out = bed.service("0.10.1", &p, &["--version"]);
    assert_eq!(stdout(&out).trim(), "ipfs-cluster-service version 0.10.1");
    let (_, ctl) = bed.release("1.1.6");
    let out = Command::new(ctl).arg("--version").output().unwrap();
    assert_eq!(stdout(&out).trim(), "ipfs-cluster-ctl version 1.1.6");
    // No subcommand shows help and exits 1 (≥ 0.4).
    let out = bed.service("0.9.0", &p, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("USAGE"));
    let out = bed.service("0.9.0", &p, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("No help topic for 'frobnicate'"));
    // state upgrade/version are gone from 0.11.
    for version in ["0.11.0", "1.1.6"] {
        let out = bed.service(version, &p, &["state", "upgrade"]);
        assert_eq!(out.status.code(), Some(3), "{version}");
        assert!(stderr(&out).contains("No help topic for 'upgrade'"));
    }
    assert_eq!(
        stdout(&bed.service("0.9.0", &p, &["state", "version"])).trim(),
        "5"
    );
    assert_eq!(
        stdout(&bed.service("0.10.1", &p, &["state", "version"])).trim(),
        "6"
    );
    // Usage errors are returned errors that urfave's main ignores: exit 0.
    let out = bed.service("0.10.1", &p, &["--bogus"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Incorrect Usage: flag provided but not defined: -bogus"));
}

#[test]
fn init_follows_the_era() {
    let bed = Bed::new();
    let old = bed.peer("old");
    bed.init("0.10.1", &old);
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(old.config.join("service.json")).unwrap())
            .unwrap();
    assert!(cfg["cluster"]["id"].as_str().unwrap().starts_with("Qm"));
    assert_eq!(cfg["cluster"]["peername"], "old");
    assert_eq!(cfg["consensus"]["raft"]["wait_for_leader_timeout"], "1s");
    assert_eq!(cfg["api"]["restapi"]["http_listen_multiaddress"], old.api());
    assert!(!old.config.join("identity.json").exists());
    // Existing config without -f and nothing on stdin: "no", nothing changes.
    let before = fs::read_to_string(old.config.join("service.json")).unwrap();
    let out = bed.service("0.10.1", &old, &["init"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        fs::read_to_string(old.config.join("service.json")).unwrap(),
        before
    );
    let out = bed.service("0.10.1", &old, &["-f", "init"]);
    assert!(out.status.success());
    assert_ne!(
        fs::read_to_string(old.config.join("service.json")).unwrap(),
        before
    );

    // From 0.11 crdt is the default: its section and the pebble datastore, no raft section.
    let crdt = bed.peer("crdt");
    let out = bed.service("1.1.6", &crdt, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(crdt.config.join("service.json")).unwrap())
            .unwrap();
    assert!(cfg["consensus"]["crdt"].is_object());
    assert!(cfg["consensus"].get("raft").is_none());
    assert!(cfg["datastore"]["pebble"].is_object());
    assert!(stderr(&out).contains("new empty peerstore written to"));
    let out = bed.service(
        "1.1.6",
        &bed.peer("other"),
        &["init", "--consensus", "paxos"],
    );
    assert_eq!(out.status.code(), Some(1));

    let new = bed.peer("new");
    bed.init("1.1.6", &new);
    let identity: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(new.config.join("identity.json")).unwrap())
            .unwrap();
    assert!(identity["id"].as_str().unwrap().starts_with("12D3KooW"));
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(new.config.join("service.json")).unwrap())
            .unwrap();
    assert!(cfg["cluster"].get("id").is_none());
    assert!(cfg["consensus"]["raft"].is_object());
    assert!(cfg.get("datastore").is_none());
}

#[test]
fn state_commands_without_a_snapshot() {
    let bed = Bed::new();
    let p = bed.peer("a");
    bed.init("0.10.1", &p);
    let out = bed.service("0.10.1", &p, &["state", "export"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error exporting state: no snapshot found"
    );
    let out = bed.service("0.10.1", &p, &["state", "upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error upgrading state: no snapshot found"));
    let q = bed.peer("b");
    bed.init("1.1.6", &q);
    let out = bed.service("1.1.6", &q, &["state", "export"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
    let out = bed.service("1.1.6", &q, &["state", "cleanup", "-f"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn ctl_errors_and_exit_codes() {
    let bed = Bed::new();
    let p = bed.peer("nobody");
    let out = bed.ctl("0.10.1", &p, &["id"]);
    assert_eq!(out.status.code(), Some(1));
    // `textFormatPrintError` prints on stdout; the client logs its give-up on stderr.
    assert!(
        stdout(&out).contains("An error occurred:\n  Code: 0\n  Message: "),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("reached maximum number of retries without success"));
    let out = bed.ctl("0.10.1", &p, &["--enc", "yaml", "id"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error : unsupported encoding\n");
    // The docs' singular `peer rm` is not a command.
    let out = bed.ctl("0.9.0", &p, &["peer", "rm", "QmX"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("No help topic for 'peer'"));
}
