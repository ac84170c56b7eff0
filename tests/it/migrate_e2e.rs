//! `cluster-upgrade migrate-consensus --to crdt` end to end against `cluster-lab`: a raft
//! cluster moves to CRDT on the version it runs, keeping every pin, its identities and secret.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::{assert_no_step_finished_twice, assert_success, run, text, Lab};

fn migrate(lab: &Lab) -> std::process::Output {
    run(&[
        "migrate-consensus",
        lab.inventory().to_str().unwrap(),
        "--to",
        "crdt",
        "--yes",
    ])
}

fn service_json(lab: &Lab, host: &str) -> serde_json::Value {
    let path = lab.home(host).join(".ipfs-cluster/service.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The consensus sections of a host's service.json (`["raft"]`, `["crdt"]`).
fn consensus_of(lab: &Lab, host: &str) -> Vec<String> {
    let config = service_json(lab, host);
    config["consensus"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn identity(lab: &Lab, host: &str) -> Vec<u8> {
    std::fs::read(lab.home(host).join(".ipfs-cluster/identity.json")).unwrap()
}

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

#[test]
fn migrate_consensus_moves_a_three_peer_raft_cluster_to_crdt_keeping_every_pin() {
    let lab = Lab::up_with(3, "1.1.6", 40, &["--consensus", "raft"]);
    let before: Vec<(serde_json::Value, Vec<u8>)> = HOSTS
        .iter()
        .map(|h| (service_json(&lab, h), identity(&lab, h)))
        .collect();
    assert!(HOSTS.iter().all(|h| consensus_of(&lab, h) == ["raft"]));

    let out = migrate(&lab);
    assert_success(&out, "migrate-consensus");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Procedure: migrate-consensus"), "{stdout}");
    assert!(
        stdout.contains("every peer runs 1.1.6 with raft and is healthy"),
        "{stdout}"
    );
    assert!(
        stdout.contains("The export is imported on h3, which starts first"),
        "{stdout}"
    );
    lab.assert_cluster("1.1.6", 3, 40);

    for (host, (config, id)) in HOSTS.iter().zip(&before) {
        assert_eq!(consensus_of(&lab, host), ["crdt"], "{host}");
        let now = service_json(&lab, host);
        assert!(now["datastore"].is_object(), "{host}: {now}");
        // Everything but the consensus and datastore sections is the peer's own.
        for section in config.as_object().unwrap().keys() {
            if section != "consensus" && section != "datastore" {
                assert_eq!(now[section], config[section], "{host}: {section}");
            }
        }
        assert_eq!(&identity(&lab, host), id, "{host}: identity");
        // The raft folder stays, with the old config kept in the run's backup folder.
        assert!(lab.home(host).join(".ipfs-cluster/raft").is_dir(), "{host}");
        let runs = lab.home(host).join("bin/.cluster-upgrade/backup");
        let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
        let kept: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.path().join("service.json")).unwrap())
                .unwrap();
        assert_eq!(&kept, config, "{host}: the kept service.json");
    }

    // Every peer's export is on the controller; no secret is.
    let run = lab.run_dirs().pop().unwrap();
    let mut exports: Vec<String> = std::fs::read_dir(run.join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    exports.sort();
    assert_eq!(
        exports,
        [
            "state-export-h1-1.1.6.json",
            "state-export-h2-1.1.6.json",
            "state-export-h3-1.1.6.json"
        ]
    );
    let secret = before[0].0["cluster"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    for file in walk(&lab.path().join(".cluster-upgrade")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "the cluster secret is in {}",
            file.display()
        );
    }

    // The cluster works under CRDT: a pin added on one peer reaches the others.
    let cid = "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR";
    assert_success(&lab.ctl("h1", &["pin", "add", cid]), "pin add");
    lab.wait_for(
        "the new pin on every peer",
        Duration::from_secs(30),
        |lab| lab.status().iter().all(|h| h.pins == Some(41)),
    );

    // Nothing left to migrate: a second run is refused, changing nothing.
    let again = migrate(&lab);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("h1, h2, h3 already use CRDT: nothing to migrate"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(lab.run_dirs().len(), 1);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn killed_at_several_points_the_migration_resumes_and_keeps_every_pin() {
    let lab = Lab::up_with(3, "1.1.6", 30, &["--consensus", "raft"]);
    let inventory = lab.inventory();
    let args = [
        "migrate-consensus",
        inventory.to_str().unwrap(),
        "--to",
        "crdt",
        "--yes",
    ];
    for step in [
        "export-state",
        "write-crdt-config",
        "import-state",
        "start-others",
    ] {
        lab.kill_when_started(&args, step, 1);
    }
    // An unfinished migration is resumed by migrate-consensus only: apply names it.
    let apply = run(&["apply", lab.inventory().to_str().unwrap(), "--yes"]);
    assert_eq!(apply.status.code(), Some(3), "{}", text(&apply.stderr));
    assert!(
        text(&apply.stderr).contains(
            "is an unfinished raft → crdt migration: run `cluster-upgrade migrate-consensus"
        ),
        "{}",
        text(&apply.stderr)
    );

    let out = migrate(&lab);
    assert_success(&out, "the resumed migration");
    assert!(
        text(&out.stderr).contains("resuming migration run"),
        "{}",
        text(&out.stderr)
    );
    lab.assert_cluster("1.1.6", 3, 30);
    assert!(HOSTS.iter().all(|h| consensus_of(&lab, h) == ["crdt"]));
    let records = lab.journal();
    assert_no_step_finished_twice(&records);
    assert_eq!(lab.run_dirs().len(), 1, "one run, resumed four times");
    assert_eq!(records.last().unwrap()["event"], "run_finished");
}

#[test]
fn a_crdt_cluster_and_a_raft_cluster_before_0_11_are_refused_untouched() {
    let crdt = Lab::up(3, "1.0.8", 5);
    let out = migrate(&crdt);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already use CRDT: nothing to migrate"),
        "{}",
        text(&out.stderr)
    );
    assert!(crdt.run_dirs().is_empty());

    let old = Lab::up(3, "0.10.1", 5);
    let before: Vec<_> = HOSTS.iter().map(|h| service_json(&old, h)).collect();
    let out = migrate(&old);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("the peers run 0.10.1: the raft → crdt migration needs 0.11.0 or later"),
        "{}",
        text(&out.stderr)
    );
    assert!(old.run_dirs().is_empty());
    let after: Vec<_> = HOSTS.iter().map(|h| service_json(&old, h)).collect();
    assert_eq!(before, after);
    old.assert_cluster("0.10.1", 3, 5);
}
