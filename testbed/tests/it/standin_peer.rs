//! One stand-in peer at a time: lifecycle, lock, snapshots, state formats and upgrades.

use std::fs;
use std::time::Duration;

use crate::common::{cid, listing, stderr, stdout, Bed};

#[test]
fn single_peer_lifecycle_lock_and_snapshot() {
    let bed = Bed::new();
    let p = bed.peer("solo");
    bed.init("0.10.1", &p);
    let mut daemon = bed.ready("0.10.1", &p, &[]);
    let log = daemon.log_text();
    assert!(log.contains("Initializing. For verbose output run with \"-l debug\". Please wait..."));
    assert!(daemon
        .maddr()
        .starts_with(&format!("/ip4/{}/tcp/9096/ipfs/Qm", p.ip)));

    // The lock keeps out a second daemon and the state commands.
    let out = bed.service("0.10.1", &p, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("error acquiring execution lock: could not obtain execution lock")
    );
    let out = bed.service("0.10.1", &p, &["state", "export"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("could not obtain execution lock"));

    for n in 0..3 {
        let out = bed.ctl(
            "0.10.1",
            &p,
            &["pin", "add", &cid(n), "--name", &format!("pin{n}")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = bed.ctl("0.10.1", &p, &["pin", "ls"]);
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!(
        "{} | pin0 | PIN | Repl. Factor: -1 | Allocations: [everywhere]",
        cid(0)
    )));
    let out = bed.ctl("0.10.1", &p, &["id"]);
    assert!(
        stdout(&out).contains("| solo | Sees 0 other peers"),
        "{}",
        stdout(&out)
    );
    let out = bed.ctl("0.10.1", &p, &["--enc", "json", "id"]);
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["rpc_protocol_version"], "/ipfscluster/0.10/rpc");
    assert_eq!(id["peername"], "solo");
    let out = bed.ctl("0.10.1", &p, &["--enc", "json", "version"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["version"],
        "0.10.1"
    );
    let out = bed.ctl("0.10.1", &p, &["status", &cid(1)]);
    assert!(
        stdout(&out).contains("> solo             : PINNED"),
        "{}",
        stdout(&out)
    );

    // The only peer cannot be removed.
    let me = id["id"].as_str().unwrap().to_string();
    let out = bed.ctl("0.10.1", &p, &["peers", "rm", &me]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out)
        .contains("Code: 500\n  Message: cannot remove ourselves from a 1-peer cluster"));
    // An unknown peer is a no-op.
    let out = bed.ctl("0.10.1", &p, &["peers", "rm", "QmUnknownPeer"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    assert!(daemon.stop().success());
    let snaps = listing(&p.config.join("raft/snapshots"));
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let bin = fs::read(
        p.config
            .join("raft/snapshots")
            .join(&snaps[0])
            .join("state.bin"),
    )
    .unwrap();
    assert_eq!(bin[0], 6, "0.10 snapshots start with format byte 6");

    let out = bed.service("0.10.1", &p, &["state", "export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported.as_array().unwrap().len(), 3);
    assert_eq!(exported[0]["cid"]["/"], cid(0));

    let out = bed.service("0.10.1", &p, &["state", "upgrade"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Skipping migration of up-to-date state"));
    assert!(!p.config.join("raft.old.0").exists());
}

#[test]
fn a_killed_peer_keeps_its_log_but_export_sees_only_the_snapshot() {
    let bed = Bed::new();
    let p = bed.peer("k");
    bed.init("1.1.6", &p);
    let mut daemon = bed.ready("1.1.6", &p, &[]);
    assert!(bed
        .ctl("1.1.6", &p, &["pin", "add", &cid(1)])
        .status
        .success());
    assert!(daemon.stop().success());
    let mut daemon = bed.ready("1.1.6", &p, &[]);
    let out = bed.service("1.1.6", &p, &["state", "export"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error obtaining execution lock: "),
        "{}",
        stderr(&out)
    );
    assert!(bed
        .ctl("1.1.6", &p, &["pin", "add", &cid(2)])
        .status
        .success());
    daemon.child.kill().unwrap();
    daemon.wait_exit(Duration::from_secs(5));

    let out = bed.service("1.1.6", &p, &["state", "export"]);
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "NDJSON with only the snapshotted pin: {text}"
    );
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["cid"], cid(1));
    assert_eq!(line["type"], "pin");

    let _daemon = bed.ready("1.1.6", &p, &[]);
    let out = bed.ctl("1.1.6", &p, &["--enc", "json", "pin", "ls"]);
    let text = stdout(&out);
    let pins: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pins.len(), 2, "the log was replayed: {text}");
    assert!(
        !text.trim_start().starts_with('['),
        "1.x prints a stream of objects"
    );
}

#[test]
fn the_0_10_binary_refuses_a_0_9_state_without_upgrade_and_migrates_with_it() {
    let bed = Bed::new();
    let p = bed.peer("m");
    bed.init("0.9.0", &p);
    let mut daemon = bed.ready("0.9.0", &p, &[]);
    assert!(daemon.maddr().contains("/ipfs/Qm"));
    assert!(bed
        .ctl("0.9.0", &p, &["pin", "add", &cid(7)])
        .status
        .success());
    let out = bed.ctl("0.9.0", &p, &["--enc", "json", "version"]);
    assert!(
        stdout(&out).contains("\"Version\""),
        "0.9 ctl uses the old key: {}",
        stdout(&out)
    );
    assert!(daemon.stop().success());
    let out = bed.service("0.9.0", &p, &["state", "export"]);
    let export: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(export[0]["cid"], cid(7), "0.9 exports string CIDs");
    assert!(stdout(&out).contains("\n    {"), "4-space indent");

    let before = listing(&p.config.join("raft/snapshots"));
    let mut wrong = bed.daemon("0.10.1", &p, &[]);
    let status = wrong.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    let log = wrong.log_text();
    assert!(
        log.contains("Out of date ipfs-cluster state is saved."),
        "{log}"
    );
    assert!(log.contains("error validating version: outdated state version stored"));
    assert_eq!(
        listing(&p.config.join("raft/snapshots")),
        before,
        "no file touched"
    );
    assert!(!p.config.join("raft.old.0").exists());

    let _right = bed.ready("0.10.1", &p, &["--upgrade"]);
    assert!(
        p.config.join("raft.old.0/snapshots").exists(),
        "backup of the 0.9 state"
    );
    let out = bed.ctl("0.10.1", &p, &["pin", "ls"]);
    assert!(stdout(&out).contains(&cid(7)));
}

#[test]
fn state_upgrade_migrates_offline_with_a_backup() {
    let bed = Bed::new();
    let p = bed.peer("u");
    bed.init("0.9.0", &p);
    let mut daemon = bed.ready("0.9.0", &p, &[]);
    assert!(bed
        .ctl("0.9.0", &p, &["pin", "add", &cid(3)])
        .status
        .success());
    assert!(daemon.stop().success());
    let out = bed.service("0.10.1", &p, &["state", "upgrade"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(p.config.join("raft.old.0").exists());
    let snaps = listing(&p.config.join("raft/snapshots"));
    assert_eq!(snaps.len(), 1);
    assert!(
        !p.config.join("raft/raft.db").exists()
            || fs::read(p.config.join("raft/raft.db")).unwrap().is_empty()
    );
    let out = bed.service("0.10.1", &p, &["state", "export"]);
    assert!(stdout(&out).contains(&cid(3)));
    // A downgrade cannot be migrated.
    let out = bed.service("0.9.0", &p, &["state", "upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("version migration not supported"));
}

#[test]
fn a_direct_jump_from_0_9_to_1_1_fails_while_0_10_to_1_1_works() {
    let bed = Bed::new();
    let old = bed.peer("old");
    bed.init("0.9.0", &old);
    let mut d = bed.ready("0.9.0", &old, &[]);
    assert!(bed
        .ctl("0.9.0", &old, &["pin", "add", &cid(1)])
        .status
        .success());
    assert!(d.stop().success());
    let mut jump = bed.daemon("1.1.6", &old, &[]);
    assert_eq!(jump.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(
        jump.log_text()
            .contains("error creating consensus component: error restoring snapshot"),
        "{}",
        jump.log_text()
    );

    let mid = bed.peer("mid");
    bed.init("0.10.1", &mid);
    let mut d = bed.ready("0.10.1", &mid, &[]);
    assert!(bed
        .ctl("0.10.1", &mid, &["pin", "add", &cid(2)])
        .status
        .success());
    let old_id = d.maddr().rsplit('/').next().unwrap().to_string();
    assert!(d.stop().success());
    let modern = bed.ready("1.1.6", &mid, &["--upgrade"]);
    assert!(
        modern.maddr().ends_with(&format!("/p2p/{old_id}")),
        "same Qm peer ID after the upgrade"
    );
    let identity = fs::read_to_string(mid.config.join("identity.json")).unwrap();
    assert!(identity.contains(&old_id));
    let out = bed.ctl("1.1.6", &mid, &["pin", "ls"]);
    assert!(stdout(&out).contains(&cid(2)));
    assert!(stdout(&out).contains("| Exp: ∞"));
}

#[test]
fn imports_accept_only_their_own_era() {
    let bed = Bed::new();
    let src = bed.peer("src");
    bed.init("0.10.1", &src);
    let mut d = bed.ready("0.10.1", &src, &[]);
    for n in 0..2 {
        assert!(bed
            .ctl("0.10.1", &src, &["pin", "add", &cid(n)])
            .status
            .success());
    }
    assert!(d.stop().success());
    let file = bed.dir.path().join("export-0.10.json");
    let out = bed.service(
        "0.10.1",
        &src,
        &["state", "export", "-f", file.to_str().unwrap()],
    );
    assert!(out.status.success());

    let modern = bed.peer("modern");
    bed.init("1.1.6", &modern);
    let out = bed.service(
        "1.1.6",
        &modern,
        &["state", "import", "-f", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error importing state: "),
        "{}",
        stderr(&out)
    );
    assert!(!modern.config.join("raft").exists());

    let same = bed.peer("same");
    bed.init("0.10.1", &same);
    // Without -f and without an answer on stdin the import is declined.
    let out = bed.service(
        "0.10.1",
        &same,
        &["state", "import", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(!same.config.join("raft").exists());
    let out = bed.service(
        "0.10.1",
        &same,
        &["state", "import", "-f", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = bed.service("0.10.1", &same, &["state", "export"]);
    assert_eq!(stdout(&out), fs::read_to_string(&file).unwrap());
    let _d = bed.ready("0.10.1", &same, &[]);
    assert_eq!(
        stdout(&bed.ctl("0.10.1", &same, &["pin", "ls"]))
            .lines()
            .count(),
        2
    );
}

#[test]
fn cleanup_rotates_backups() {
    let bed = Bed::new();
    let p = bed.peer("c");
    bed.init("0.10.1", &p);
    for (n, signal) in ["TERM", "INT", "HUP"].iter().enumerate() {
        let mut d = bed.ready("0.10.1", &p, &[]);
        assert!(bed
            .ctl("0.10.1", &p, &["pin", "add", &cid(n)])
            .status
            .success());
        assert!(d.stop_with(signal).success());
        assert_eq!(
            listing(&p.config.join("raft/snapshots")).len(),
            1,
            "SIG{signal} snapshots"
        );
        let out = bed.service("0.10.1", &p, &["state", "cleanup", "-f"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(
        listing(&p.config)
            .iter()
            .filter(|n| n.starts_with("raft.old."))
            .count(),
        3
    );
    assert!(!p.config.join("raft").exists());
}

#[test]
fn deprecated_keys_legacy_folder_and_systemd_notify() {
    let bed = Bed::new();
    let p = bed.peer("cfg");
    bed.init("0.10.1", &p);
    let path = p.config.join("service.json");
    let original = fs::read_to_string(&path).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&original).unwrap();
    cfg["cluster"]["peers"] = serde_json::json!([]);
    fs::write(&path, cfg.to_string()).unwrap();
    let deprecated = "cluster.Peers and cluster.Bootstrap keys have been deprecated";
    let out = bed.service("0.10.1", &p, &["daemon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("error loading configuration: {deprecated}")),
        "{}",
        stderr(&out)
    );
    let out = bed.service("0.10.1", &p, &["daemon", "--upgrade"]);
    assert!(
        stderr(&out).contains(&format!("error upgrading state: {deprecated}")),
        "{}",
        stderr(&out)
    );
    fs::write(&path, original).unwrap();

    // A 0.3-era data folder is renamed to raft/ on start.
    let mut d = bed.ready("0.10.1", &p, &[]);
    assert!(bed
        .ctl("0.10.1", &p, &["pin", "add", &cid(4)])
        .status
        .success());
    assert!(d.stop().success());
    fs::rename(p.config.join("raft"), p.config.join("ipfs-cluster-data")).unwrap();
    let mut d = bed.ready("0.10.1", &p, &[]);
    assert!(stdout(&bed.ctl("0.10.1", &p, &["pin", "ls"])).contains(&cid(4)));
    assert!(p.config.join("raft").exists() && !p.config.join("ipfs-cluster-data").exists());
    assert!(d.stop().success());
    assert!(fs::read_to_string(p.config.join("peerstore")).is_ok());

    let q = bed.peer("notify");
    bed.init("1.1.6", &q);
    let socket_path = bed.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let d = bed.daemon_env(
        ("1.1.6", &q),
        &[],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 64];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification ({e}):\n{}", d.log_text()));
    assert_eq!(&buf[..n], b"READY=1");
}

#[test]
fn the_third_signal_forces_an_exit() {
    let bed = Bed::new();
    for (version, code) in [("0.10.1", 255), ("1.1.6", 1)] {
        let p = bed.peer(&format!("sig-{version}"));
        bed.init(version, &p);
        let mut d = bed.ready(version, &p, &[]);
        let pid = d.child.id().to_string();
        // Distinct signals, because repeats of one signal may be merged before they are read;
        // sent by the shell's builtin so they arrive within microseconds of each other.
        let script = format!("kill -TERM {pid}; kill -INT {pid}; kill -HUP {pid}");
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap();
        assert_eq!(
            d.wait_exit(Duration::from_secs(10)).code(),
            Some(code),
            "{version}"
        );
        assert!(d.log_text().contains("Shutdown is taking too long!"));
    }
}

#[test]
fn reinit_rotates_raft_up_to_0_10_and_keeps_state_and_identity_from_0_11() {
    let bed = Bed::new();
    let old = bed.peer("old");
    bed.init("0.10.1", &old);
    let mut d = bed.ready("0.10.1", &old, &[]);
    assert!(bed
        .ctl("0.10.1", &old, &["pin", "add", &cid(1)])
        .status
        .success());
    assert!(d.stop().success());
    assert!(bed
        .service("0.10.1", &old, &["-f", "init"])
        .status
        .success());
    assert!(old.config.join("raft.old.0/snapshots").exists());
    assert!(!old.config.join("raft").exists());

    let new = bed.peer("new");
    bed.init("1.1.6", &new);
    let identity = fs::read_to_string(new.config.join("identity.json")).unwrap();
    let mut d = bed.ready("1.1.6", &new, &[]);
    assert!(bed
        .ctl("1.1.6", &new, &["pin", "add", &cid(2)])
        .status
        .success());
    assert!(d.stop().success());
    let out = bed.service("1.1.6", &new, &["init", "--consensus", "raft", "-f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(new.config.join("identity.json")).unwrap(),
        identity
    );
    let _d = bed.ready("1.1.6", &new, &[]);
    assert!(stdout(&bed.ctl("1.1.6", &new, &["pin", "ls"])).contains(&cid(2)));
}
