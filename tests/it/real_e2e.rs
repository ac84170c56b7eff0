//! cluster-upgrade against the REAL IPFS Cluster 1.0.8 and 1.1.6 and real kubo daemons, through
//! real sshd: `cluster-lab up --real` (3 peers, 100 pins whose blocks are in every kubo).
//!
//! These tests need the releases `scripts/real-releases` builds (`scripts/setup` and
//! `scripts/test` run it); without them they fail, naming that script.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use crate::support::{assert_no_step_finished_twice, assert_success, run, text, Lab};

const FROM: &str = "1.0.8";
const TO: &str = "1.1.6";
const PINS: usize = 100;

/// A lab of 3 real peers on 1.0.8 with 100 pins, in `consensus` (raft or crdt).
fn real_lab(consensus: &str) -> Lab {
    real_lab_of(3, consensus)
}

/// A lab of `peers` real peers on 1.0.8 with 100 pins, in `consensus` (raft or crdt).
fn real_lab_of(peers: usize, consensus: &str) -> Lab {
    let start = Instant::now();
    let lab = Lab::up_with(
        peers,
        FROM,
        PINS,
        &["--real", "--consensus", consensus, "--target", TO],
    );
    eprintln!(
        "real {consensus} lab of {peers} up in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    lab
}

/// The CIDs the lab pinned (kubo's CIDs of the blocks it added), from `lab.json`.
fn lab_pins(lab: &Lab) -> BTreeSet<String> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.path().join("lab.json")).unwrap())
            .unwrap();
    state["real"]["pins"]
        .as_array()
        .expect("a real lab records its pins")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// The CIDs of a stream of JSON pins (`pin ls --enc json`, `state export`).
fn cids(json: &[u8]) -> BTreeSet<String> {
    serde_json::Deserializer::from_slice(json)
        .into_iter::<serde_json::Value>()
        .map(|pin| pin.expect("JSON pins")["cid"].as_str().unwrap().to_string())
        .collect()
}

/// Every peer runs `version`, sees the 3 peers, lists exactly the lab's pins, and its IPFS
/// daemon holds every one of them (`status --local`: PINNED).
fn assert_every_pin_kept(lab: &Lab, version: &str) {
    lab.assert_cluster(version, 3, PINS as u64);
    let expected = lab_pins(lab);
    assert_eq!(expected.len(), PINS);
    for host in ["h1", "h2", "h3"] {
        let listed = lab.ctl(host, &["--enc", "json", "pin", "ls"]);
        assert_success(&listed, "pin ls");
        assert_eq!(cids(&listed.stdout), expected, "{host} lists other pins");
        let status = lab.ctl(host, &["--enc", "json", "status", "--local"]);
        assert_success(&status, "status --local");
        let not_pinned: Vec<serde_json::Value> =
            serde_json::Deserializer::from_slice(&status.stdout)
                .into_iter::<serde_json::Value>()
                .map(Result::unwrap)
                .filter(|pin| {
                    pin["peer_map"]
                        .as_object()
                        .unwrap()
                        .values()
                        .any(|p| p["status"] != "pinned")
                })
                .collect();
        assert!(not_pinned.is_empty(), "{host}: not PINNED: {not_pinned:#?}");
    }
}

fn apply(lab: &Lab, extra: &[&str]) -> Output {
    let inventory = lab.inventory();
    let mut args = vec!["apply", inventory.to_str().unwrap(), "--yes"];
    args.extend_from_slice(extra);
    let start = Instant::now();
    let out = run(&args);
    eprintln!("apply {extra:?} took {:.1}s", start.elapsed().as_secs_f64());
    out
}

fn plan(lab: &Lab, extra: &[&str]) -> String {
    let inventory = lab.inventory();
    let mut args = vec!["plan", inventory.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_success(&out, "plan");
    text(&out.stdout)
}

/// The state export of `host` that `apply` copied to the controller.
fn copied_export(lab: &Lab, host: &str) -> std::path::PathBuf {
    let run = lab.run_dirs().pop().expect("a run");
    let file = run
        .join("backups")
        .join(format!("state-export-{host}-{FROM}.json"));
    assert!(file.is_file(), "{} is missing", file.display());
    file
}

/// A fresh real peer on `version` (`init --consensus raft` in an empty folder), into which
/// `export` is imported; returns what it then exports.
fn import_into_fresh_peer(lab: &Lab, version: &str, export: &Path) -> BTreeSet<String> {
    let release = lab_release_dir(lab).join(version);
    let config = tempfile::tempdir().unwrap();
    let service = |args: &[&str]| {
        let out = Command::new(release.join("ipfs-cluster-service"))
            .arg("--config")
            .arg(config.path())
            .args(args)
            .env("CLUSTER_MDNSINTERVAL", "0s")
            .output()
            .unwrap();
        assert_success(&out, &format!("ipfs-cluster-service {args:?}"));
        out
    };
    service(&["init", "--consensus", "raft"]);
    service(&["state", "import", "-f", export.to_str().unwrap()]);
    cids(&service(&["state", "export"]).stdout)
}

/// The real releases folder the lab's inventory names.
fn lab_release_dir(lab: &Lab) -> std::path::PathBuf {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.path().join("lab.json")).unwrap())
            .unwrap();
    state["real"]["releases"].as_str().unwrap().into()
}

#[test]
fn standard_upgrade_of_a_real_raft_cluster_keeps_every_pin_and_its_export_imports_into_a_fresh_peer(
) {
    let lab = real_lab("raft");
    // Inside 1.x the planner rolls; the standard procedure is asked for.
    let shown = plan(&lab, &["--procedure", "standard"]);
    assert!(shown.contains("Procedure: standard"), "{shown}");
    assert!(shown.contains("raft"), "{shown}");

    let out = apply(&lab, &["--procedure", "standard"]);
    assert_success(&out, "apply");
    assert!(
        text(&out.stdout).contains(&format!("standard procedure, {FROM} → {TO}, finished")),
        "{}",
        text(&out.stdout)
    );
    assert_every_pin_kept(&lab, TO);

    // 1.x has no state migration: no peer was started with the deprecated `--upgrade`.
    let log = std::fs::read_to_string(lab.home("h1").join("ipfs-cluster.log")).unwrap();
    let starts: Vec<&str> = log.lines().filter(|l| l.contains(": start: ")).collect();
    assert!(
        starts.last().is_some_and(|l| !l.contains("--upgrade")),
        "{starts:?}"
    );

    // The export copied to the controller before the binaries were swapped holds every pin,
    // and a fresh real peer of the release that made it imports it whole.
    let export = copied_export(&lab, "h2");
    assert_eq!(
        cids(&std::fs::read(&export).unwrap()),
        lab_pins(&lab),
        "the copied export"
    );
    assert_eq!(
        import_into_fresh_peer(&lab, FROM, &export),
        lab_pins(&lab),
        "a fresh {FROM} peer imported another pinset"
    );
}

#[test]
fn standard_upgrade_of_a_real_crdt_cluster_keeps_every_pin_without_raft_steps() {
    let lab = real_lab("crdt");
    let shown = plan(&lab, &["--procedure", "standard"]);
    assert!(shown.contains("Procedure: standard"), "{shown}");
    assert!(shown.contains("crdt"), "{shown}");
    assert!(
        !shown.contains("wait_for_leader_timeout") && !shown.contains("svc start --upgrade"),
        "raft-only reasons or steps in a CRDT plan:\n{shown}"
    );

    // The bootstrap procedure (peers rm, raft folders) is refused for a CRDT cluster, before
    // any change.
    let out = apply(&lab, &["--procedure", "bootstrap"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("crdt consensus"),
        "{}",
        text(&out.stderr)
    );

    let out = apply(&lab, &["--procedure", "standard"]);
    assert_success(&out, "apply");
    assert_every_pin_kept(&lab, TO);
    let export = copied_export(&lab, "h1");
    assert_eq!(cids(&std::fs::read(&export).unwrap()), lab_pins(&lab));
}

#[test]
fn bootstrap_procedure_on_a_real_raft_cluster_keeps_every_pin() {
    let lab = real_lab("raft");
    let out = apply(&lab, &["--procedure", "bootstrap"]);
    assert_success(&out, "apply --procedure bootstrap");
    assert!(
        text(&out.stdout).contains(&format!("bootstrap procedure, {FROM} → {TO}, finished")),
        "{}",
        text(&out.stdout)
    );
    assert_every_pin_kept(&lab, TO);
}

#[test]
fn recover_from_export_rebuilds_a_real_raft_cluster_that_lost_every_state() {
    let lab = real_lab("raft");
    let svc = |host: &str, verb: &str| {
        let out = Command::new(lab.home(host).join("bin/ipfs-cluster-svc"))
            .arg(verb)
            .output()
            .unwrap();
        assert_success(&out, &format!("ipfs-cluster-svc {verb} on {host}"));
    };
    for host in ["h1", "h2", "h3"] {
        svc(host, "stop");
    }
    // The operator's export, made earlier with the running release.
    let export = lab.path().join("pins-1.0.8.json");
    let out = Command::new(lab.home("h2").join("bin/ipfs-cluster-service"))
        .arg("--config")
        .arg(lab.home("h2").join(".ipfs-cluster"))
        .args(["state", "export", "-f", export.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out, "state export");
    for host in ["h1", "h2", "h3"] {
        let out = lab.lab(&["fault", "rm-state", host, "--backups"]);
        assert_success(&out, "fault rm-state");
    }

    let out = run(&[
        "recover",
        lab.inventory().to_str().unwrap(),
        "--yes",
        "--from-export",
        export.to_str().unwrap(),
    ]);
    assert_success(&out, "recover --from-export");
    assert_every_pin_kept(&lab, TO);
}

#[test]
fn killed_at_three_points_apply_finishes_a_real_raft_upgrade_without_losing_a_pin() {
    let lab = real_lab("raft");
    let inventory = lab.inventory();
    let fresh = [
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--procedure",
        "standard",
    ];
    lab.kill_when_started(&fresh, "export-state", 1);
    // A resume runs the saved plan: no planning option.
    for step in ["start-upgrade", "cluster-healthy"] {
        lab.kill_when_started(&fresh[..3], step, 1);
    }
    let out = apply(&lab, &[]);
    assert_success(&out, "apply after three kills");
    assert_every_pin_kept(&lab, TO);
    let records = lab.journal();
    assert_no_step_finished_twice(&records);
    assert_eq!(records.last().unwrap()["event"], "run_finished");
}

#[test]
fn rolling_upgrade_of_a_real_crdt_cluster_and_its_rollback_under_writes_keep_n_minus_1_answering_and_every_pin(
) {
    let lab = real_lab("crdt");
    let shown = plan(&lab, &[]);
    assert!(shown.contains("Procedure: rolling"), "{shown}");
    assert!(
        shown.contains("crdt pebble/"),
        "the facts name the datastore: {shown}"
    );
    // The probes read the real config and ctl: consensus, datastore, pebble format, ctl version.
    let json: serde_json::Value = serde_json::from_str(&plan(&lab, &["--json"])).unwrap();
    for host in json["facts"].as_array().unwrap() {
        assert_eq!(host["consensus"], "crdt", "{host}");
        assert_eq!(host["datastore"], "pebble", "{host}");
        assert!(
            host["pebble_format"].as_u64().is_some_and(|f| f > 1),
            "{host}"
        );
        assert_eq!(host["ctl_version"], FROM, "{host}");
        assert_eq!(host["rpc_protocol"], "/ipfscluster/1.0/rpc", "{host}");
    }
    roll_under_writes(&lab, 3);

    // And back: the real 1.0.8 opens the stores 1.1.6 wrote, one peer at a time, under writes.
    let inventory = lab.inventory();
    let rollback = || {
        let start = Instant::now();
        let out = run(&["rollback", inventory.to_str().unwrap(), "--yes"]);
        eprintln!("rollback took {:.1}s", start.elapsed().as_secs_f64());
        out
    };
    let label = format!("real rollback {TO} → {FROM} of 3 crdt peers");
    under_writes(&lab, &label, rollback, FROM);
}

#[test]
fn rolling_upgrade_of_5_real_crdt_peers_under_writes_keeps_n_minus_1_answering_and_every_pin() {
    let lab = real_lab_of(5, "crdt");
    let shown = plan(&lab, &[]);
    assert!(shown.contains("Procedure: rolling"), "{shown}");
    roll_under_writes(&lab, 5);
}

/// Applies the rolling upgrade of `lab` while a writer adds pins and a poller asks every peer
/// (`under_traffic_acked` checks N−1 answering at every sample), then checks that every pin
/// whose add was acknowledged, and the lab's own, is on every peer, every peer on the target.
///
/// Real peers can end a roll diverged: a 1.0.8 peer stopped while it merged CRDT updates comes
/// back on 1.1.6 without them, for good (docs/adr/0015-pinset-convergence.md). The run then
/// resyncs that peer by itself (ADR 0019), one peer at a time, and still succeeds.
fn roll_under_writes(lab: &Lab, peers: usize) {
    let label = format!("real rolling {FROM} → {TO} of {peers} crdt peers");
    assert_eq!(crate::traffic::lab_apis(lab.path()).len(), peers);
    under_writes(lab, &label, || apply(lab, &[]), TO);
}

/// Runs `command` (a run that takes the peers of `lab` to `version` one at a time) under writes,
/// with the checks of [`roll_under_writes`].
///
/// The real 1.0.8 and 1.1.6 crash now and then as they start: a `/id` served before consensus
/// has its RPC client panics on a nil `*rpc.Client` (ADR 0024; about 1 start in 60 under a
/// poller as busy as this test's, which asks every peer every 50 ms). The run then stops at
/// once at the peer's `peer-ready`, with that peer down and the others serving; ADR 0024 has
/// the operator start the peer and run again. The test does the same, twice at most, and only
/// for that crash (its panic in the peer's log since its last start): any other failure fails.
/// The poller and the writer run across both runs, so every check covers the whole.
fn under_writes(lab: &Lab, label: &str, command: impl Fn() -> Output, version: &str) {
    use crate::traffic::{lab_apis, missing_anywhere_within, under_traffic_acked};
    let apis = lab_apis(lab.path());
    let peers = apis.len();
    let command = || {
        let mut out = command();
        for _ in 0..2 {
            let Some(host) = crashed_as_it_started(lab, &out) else {
                break;
            };
            eprintln!(
                "{label}: the real peer on {host} crashed as it started (the upstream start-up \
                 race of ADR 0024); starting it by hand and running again, as an operator would"
            );
            lab.start_peer_by_hand(&host);
            out = command();
        }
        out
    };
    let (out, acked) = under_traffic_acked(label, &apis, command);
    assert_success(&out, label);
    let resynced: Vec<String> = lab
        .host_names()
        .into_iter()
        .filter(|h| {
            lab.journal_text().lines().any(|l| {
                l.contains("\"event\":\"step_finished\"")
                    && l.contains("\"step\":\"resync-ready\"")
                    && l.contains(&format!("\"host\":\"{h}\""))
            })
        })
        .collect();
    eprintln!("{label}: peers resynced by the run: {resynced:?}");
    let mut expected = acked;
    expected.extend(lab_pins(lab));
    let listed_everywhere =
        missing_anywhere_within(&apis, &expected, std::time::Duration::from_secs(60));
    assert!(
        listed_everywhere.is_empty(),
        "{} pins missing, e.g. {:?}",
        listed_everywhere.len(),
        listed_everywhere.iter().take(5).collect::<Vec<_>>()
    );
    // A crdt peer lists the peers whose metrics it holds: right after the run (whose final gate
    // saw every peer), one that just restarted may miss from another's view for a heartbeat.
    let whole = |lab: &Lab| {
        lab.status()
            .iter()
            .all(|h| h.running && h.peers == Some(peers as u64))
    };
    if !whole(lab) {
        let _ = (0..30).find(|_| {
            std::thread::sleep(std::time::Duration::from_secs(2));
            whole(lab)
        });
    }
    let status = lab.status();
    assert_eq!(status.len(), peers);
    for host in status {
        assert_eq!(host.version.as_deref(), Some(version), "{host:?}");
        assert!(host.running, "{host:?}");
        assert_eq!(host.peers, Some(peers as u64), "{host:?}");
    }
}

/// The host whose peer the failed run `out` stopped at, when its wait gave up because the peer
/// exited with the real 1.x start-up crash: a nil `*rpc.Client` in go-libp2p-gorpc's
/// `makeCall`, in the peer's log since its last start.
fn crashed_as_it_started(lab: &Lab, out: &Output) -> Option<String> {
    if out.status.success() {
        return None;
    }
    let stderr = text(&out.stderr);
    let host = stderr
        .lines()
        .find_map(|l| {
            l.split_once("step `peer-ready` failed on ")?
                .1
                .split_once(';')
        })?
        .0
        .to_string();
    let log = std::fs::read_to_string(lab.home(&host).join("ipfs-cluster.log")).ok()?;
    let since_start = log.rsplit_once(": start: ")?.1;
    (since_start
        .contains("panic: runtime error: invalid memory address or nil pointer dereference")
        && since_start.contains("go-libp2p-gorpc.(*Client).makeCall(0x0"))
    .then_some(host)
}

/// Runs `script` on `host` of `lab` over SSH.
fn ssh(lab: &Lab, host: &str, script: &str) -> Output {
    lab.ssh(host, script)
}

#[test]
fn pebble_stores_in_format_1_are_raised_before_1_1_6_which_refuses_them_otherwise() {
    use crate::traffic::{http, identity_cid, lab_apis, missing_anywhere};
    let lab = Lab::up_with(
        3,
        FROM,
        0,
        &["--real", "--consensus", "crdt", "--target", TO],
    );
    let hosts = ["h1", "h2", "h3"];
    // Stores as releases before 1.0.8 made them: format 1 (empty: the lab has no pins yet).
    for host in hosts {
        let cfg = lab.home(host).join(".ipfs-cluster");
        let svc = lab.home(host).join("bin/ipfs-cluster-svc");
        let script = format!(
            "{svc} stop && rm -rf {cfg}/pebble && sed -i -E 's/(\"format_major_version\": *)[0-9]+/\\11/' {cfg}/service.json",
            svc = svc.display(),
            cfg = cfg.display()
        );
        assert_success(&ssh(&lab, host, &script), "recreate the store in format 1");
    }
    for host in hosts {
        let svc = lab.home(host).join("bin/ipfs-cluster-svc");
        assert_success(
            &ssh(&lab, host, &format!("{} start", svc.display())),
            "start",
        );
    }
    let apis = lab_apis(lab.path());
    let cids: Vec<String> = (0..20)
        .map(|n| identity_cid(format!("pebble pin {n}").as_bytes()))
        .collect();
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    for cid in &cids {
        while !matches!(
            http(apis[0], "POST", &format!("/pins/{cid}")),
            Some((200, _))
        ) {
            assert!(Instant::now() < deadline, "h1 never took pin {cid}");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    assert!(
        missing_anywhere(&apis, &cids).is_empty(),
        "the pins reached every peer"
    );
    // Restarted crdt peers list each other once their ping metrics arrived.
    let deadline = Instant::now() + std::time::Duration::from_secs(90);
    while !lab.status().iter().all(|h| h.peers == Some(3)) {
        assert!(
            Instant::now() < deadline,
            "the peers never saw each other again"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }

    // Without the pre-step, the real 1.1.6 refuses such a peer (on a copy of h1's config).
    let copy = tempfile::tempdir().unwrap();
    let cfg = lab.home("h1").join(".ipfs-cluster");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&cfg)
        .arg(copy.path().join("c"))
        .status()
        .unwrap();
    assert!(copied.success());
    let _ = std::fs::remove_file(copy.path().join("c/pebble/LOCK"));
    let refused =
        std::process::Command::new(lab_release_dir(&lab).join(TO).join("ipfs-cluster-service"))
            .args(["--config"])
            .arg(copy.path().join("c"))
            .args(["daemon"])
            .output()
            .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("FormatMajorVersion (1) must be between 13 and"),
        "{}",
        text(&refused.stderr)
    );

    // Through cluster-upgrade: the stores are raised first, then the upgrade rolls.
    let shown = plan(&lab, &[]);
    assert!(
        shown.contains("pebble stores older than 1.1.6 opens: h1 (format 1)"),
        "{shown}"
    );
    assert!(
        shown.contains("Raise pebble's format_major_version"),
        "{shown}"
    );
    let out = apply(&lab, &[]);
    assert_success(&out, "apply with the pebble pre-step");
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some(TO), "{host:?}");
        assert!(host.running, "{host:?}");
    }
    assert!(missing_anywhere(&apis, &cids).is_empty(), "every pin kept");
    let out = run(&["plan", lab.inventory().to_str().unwrap(), "--json"]);
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts["converged"], true, "{facts}");
}

#[test]
fn migrate_consensus_moves_a_real_1_1_6_raft_cluster_to_crdt_keeping_every_pin() {
    let lab = Lab::up_with(
        3,
        TO,
        PINS,
        &["--real", "--consensus", "raft", "--target", TO],
    );
    let out = run(&[
        "migrate-consensus",
        lab.inventory().to_str().unwrap(),
        "--to",
        "crdt",
        "--yes",
    ]);
    assert_success(&out, "migrate-consensus on the real 1.1.6");
    assert_every_pin_kept(&lab, TO);
    for host in ["h1", "h2", "h3"] {
        let path = lab.home(host).join(".ipfs-cluster/service.json");
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let consensus: Vec<&String> = config["consensus"].as_object().unwrap().keys().collect();
        assert_eq!(consensus, ["crdt"], "{host}");
        assert!(
            config["datastore"]["pebble"].is_object(),
            "{host}: {config}"
        );
    }
    let records = lab.journal();
    assert_no_step_finished_twice(&records);
    assert_eq!(records.last().unwrap()["event"], "run_finished");
}

#[test]
fn a_real_rest_api_behind_basic_auth_and_https_is_probed_and_upgraded_through_api_auth() {
    use crate::api_auth_e2e::{
        ctl_with_credentials, files_holding, protect_apis, set_api_auth, Tls, PASSWORD,
    };
    let lab = real_lab("crdt");
    let tls = Tls::make(lab.path());
    let credentials = protect_apis(&lab, Some(&tls));
    let refused = lab.ctl("h1", &["--https", "--no-check-certificate", "id"]);
    assert!(
        !refused.status.success() && text(&refused.stdout).contains("unauthorized"),
        "the real API wants the credentials: {}",
        text(&refused.stdout)
    );
    set_api_auth(
        &lab,
        &format!(
            "credentials_file: {}\ncheck_certificate: false",
            credentials.display()
        ),
    );
    let plan = plan(&lab, &[]);
    assert!(plan.contains("rolling"), "{plan}");
    let out = apply(&lab, &[]);
    assert_success(&out, "apply through api_auth");
    let https = ["--https", "--no-check-certificate"];
    let expected = lab_pins(&lab);
    for host in lab.host_names() {
        let id = ctl_with_credentials(&lab, &host, &https, &["--enc", "json", "id"]);
        assert_success(&id, "ctl id");
        let id: serde_json::Value = serde_json::from_slice(&id.stdout).unwrap();
        assert_eq!(
            id["version"].as_str().unwrap().split('+').next(),
            Some(TO),
            "{host}"
        );
        let pins = ctl_with_credentials(&lab, &host, &https, &["--enc", "json", "pin", "ls"]);
        assert_success(&pins, "ctl pin ls");
        assert_eq!(cids(&pins.stdout), expected, "{host} lists every pin");
    }
    let state = lab.path().join(".cluster-upgrade");
    assert_eq!(
        files_holding(&state, PASSWORD),
        Vec::<std::path::PathBuf>::new()
    );
}
