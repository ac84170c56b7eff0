//! Which runs are rolled back, what of them, and the plan: on plans the upgrade planner makes
//! from the shipped playbooks, with journals written as the executor writes them.

use super::*;
use crate::facts::Pinset;
use crate::inventory::Inventory;
use crate::journal::Event;
use crate::plan::{build_plan, PlanInputs, PlanOrigin, Playbooks};
use crate::procedure::Procedure;

const FROM: Version = Version::new(1, 0, 8);
const TO: Version = Version::new(1, 1, 6);

fn inventory() -> Inventory {
    let mut text = String::from(
        "cluster:\n  name: lab\n  target_version: \"1.1.6\"\n  releases:\n    source: url\n    \
         url: \"https://dist.example.org/{{ version }}/{{ file }}\"\n    sha256:\n      \"1.1.6\":\n        \
         ipfs-cluster-service: 1111111111111111111111111111111111111111111111111111111111111111\n        \
         ipfs-cluster-ctl: 2222222222222222222222222222222222222222222222222222222222222222\n\
         vars:\n  service_manager: lab\n  bin_dir: /lab/bin\n  config_dir: /lab/cfg\n  service_cmd: /lab/bin/svc\n  \
         api: /ip4/127.0.0.1/tcp/9094\nssh:\n  known_hosts: /dev/null\nhosts:\n",
    );
    for n in 1..=3 {
        text.push_str(&format!(
            "  - name: h{n}\n    address: \"127.9.9.{}\"\n    user: root\n",
            n + 1
        ));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inventory/rollback.yaml");
    Inventory::from_text(&path, &text, &[]).unwrap_or_else(|error| panic!("{error}"))
}

fn playbook(name: &str) -> Procedure {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name);
    Procedure::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

fn facts(version: Version, consensus: Consensus) -> Vec<HostFacts> {
    let ids: Vec<String> = (1..=3).map(|n| format!("Qm{n}")).collect();
    (1..=3)
        .map(|n| HostFacts {
            host: format!("h{n}").parse().unwrap(),
            service_version: Some(version),
            running: true,
            peer_id: Some(format!("Qm{n}")),
            multiaddr: Some(format!("/ip4/127.9.9.{}/tcp/9096/p2p/Qm{n}", n + 1)),
            peerset: Some(crate::facts::Peerset::from_ids(&ids)),
            pins: Some(Pinset::from_cids(["Qma", "Qmb"].map(String::from))),
            consensus: Some(consensus),
            ..HostFacts::default()
        })
        .collect()
}

/// The upgrade plan the planner makes for a healthy 1.0.8 cluster of `consensus`.
fn upgrade(consensus: Consensus) -> Plan {
    upgrade_with(consensus, None)
}

/// As [`upgrade`], with `--procedure`.
fn upgrade_with(consensus: Consensus, requested: Option<ProcedureKind>) -> Plan {
    let inventory = inventory();
    let playbooks = Playbooks {
        standard: playbook("standard.yaml"),
        bootstrap: playbook("bootstrap.yaml"),
        rolling: playbook("rolling.yaml"),
    };
    build_plan(PlanInputs {
        inventory: &inventory,
        playbooks: &playbooks,
        facts: &facts(FROM, consensus),
        requested,
        origin: &PlanOrigin::example(&inventory),
    })
    .unwrap_or_else(|error| panic!("{error}"))
}

/// A journal in which `plan` ran up to (and including) the start of `last` on `host`, then
/// stopped (`finished`: every step finished and the run too).
fn journal(plan: &Plan, last: Option<(&str, &str)>, abandoned: bool) -> Checkpoint {
    let mut checkpoint = Checkpoint::default();
    'steps: for step in &plan.steps {
        for rendered in &step.hosts {
            let host = rendered.host.clone();
            checkpoint.apply(&Event::StepStarted {
                step: step.id.clone(),
                host: host.clone(),
                attempt: 1,
            });
            if last == Some((step.id.as_str(), host.as_str())) {
                break 'steps;
            }
            checkpoint.apply(&Event::StepFinished {
                step: step.id.clone(),
                host,
                by_check: false,
            });
        }
    }
    match last {
        None => checkpoint.apply(&Event::RunFinished),
        Some(_) => checkpoint.apply(&Event::RunStopped {
            reason: "killed".into(),
        }),
    }
    if abandoned {
        checkpoint.apply(&Event::RunAbandoned { by: "test".into() });
    }
    checkpoint
}

fn run_id() -> RunId {
    "20261204T000000Z-0001".parse().unwrap()
}

fn undone_of<'a>(run: &'a RunId, plan: &'a Plan, checkpoint: &'a Checkpoint) -> Undone<'a> {
    Undone {
        run,
        plan,
        checkpoint,
    }
}

#[test]
fn a_finished_rolling_run_goes_back_on_every_peer() {
    let plan = upgrade(Consensus::Crdt);
    assert_eq!(plan.choice.procedure, ProcedureKind::Rolling);
    let checkpoint = journal(&plan, None, false);
    let run = run_id();
    let undone = undone_of(&run, &plan, &checkpoint);
    let choice = check_rollback(undone, &facts(TO, Consensus::Crdt), PinLoss::Refused).unwrap();
    assert_eq!((choice.from, choice.to), (TO, FROM));
    let names: Vec<&str> = choice.touched.iter().map(HostName::as_str).collect();
    assert_eq!(names, ["h1", "h2", "h3"]);
}

#[test]
fn an_abandoned_run_goes_back_only_where_its_journal_says_it_went() {
    let plan = upgrade(Consensus::Crdt);
    let checkpoint = journal(&plan, Some(("install-release", "h2")), true);
    let run = run_id();
    let undone = undone_of(&run, &plan, &checkpoint);
    let mut now = facts(FROM, Consensus::Crdt);
    now[0].service_version = Some(TO);
    now[1].running = false;
    let choice = check_rollback(undone, &now, PinLoss::Refused).unwrap();
    let names: Vec<&str> = choice.touched.iter().map(HostName::as_str).collect();
    assert_eq!(names, ["h1", "h2"], "h3 was never stopped");

    // Planned: the steps run on h1 and h2 only, from the undone run's backup folder.
    let inventory = inventory();
    let origin = PlanOrigin {
        run_id: "20261204T010000Z-0002".parse().unwrap(),
        ..PlanOrigin::example(&inventory)
    };
    // h1's backup came with the sums keep-previous recorded; h2's (an older run's) without.
    let sums = std::collections::BTreeMap::from([(
        HostName::from("h1"),
        crate::inventory::ReleaseSums {
            service: "a".repeat(64).parse().unwrap(),
            ctl: "b".repeat(64).parse().unwrap(),
        },
    )]);
    let rollback = build_rollback_plan(RollbackInputs {
        inventory: &inventory,
        playbook: &playbook("rollback.yaml"),
        facts: &now,
        choice: &choice,
        backup_gone: &[],
        backup_sums: &sums,
        undone_backups: std::path::Path::new("/state/runs/r/backups"),
        previous: None,
        origin: &origin,
    })
    .unwrap();
    assert_eq!(rollback.choice.undoes, Some(run_id()));
    let hosts: std::collections::BTreeSet<&str> = rollback
        .steps
        .iter()
        .flat_map(|s| s.hosts.iter().map(|h| h.host.as_str()))
        .collect();
    assert_eq!(hosts.into_iter().collect::<Vec<_>>(), ["h1", "h2"]);
    let restore = rollback
        .steps
        .iter()
        .find(|s| s.id.as_str() == "restore-binaries")
        .unwrap();
    let command = restore.hosts[0].command.clone().unwrap();
    assert!(
        command.contains("/lab/bin/.cluster-upgrade/backup/20261204T000000Z-0001/"),
        "{command}"
    );
    let verify = &rollback.steps[0];
    assert_eq!(verify.id.as_str(), "verify-backup");
    let command = |host: usize| verify.hosts[host].command.clone().unwrap();
    assert!(command(0).contains("1.0.8"), "{}", command(0));
    assert!(
        command(0).contains(&format!("{} ipfs-cluster-service", "a".repeat(64)))
            && command(0).contains("sha256sum -c"),
        "h1's copies are checked against the sums: {}",
        command(0)
    );
    assert!(!command(1).contains("sha256sum -c"), "{}", command(1));
    let backups = rollback.backups.join("\n");
    assert!(
        backups.contains("on h1: against the SHA-256 sums run 20261204T000000Z-0001 recorded"),
        "{backups}"
    );
    assert!(
        backups.contains("on h2: run 20261204T000000Z-0001 recorded no SHA-256 sums"),
        "{backups}"
    );
}

#[test]
fn a_run_that_stopped_before_touching_a_peer_has_nothing_to_roll_back() {
    let plan = upgrade(Consensus::Crdt);
    let checkpoint = journal(&plan, Some(("keep-previous", "h1")), true);
    let run = run_id();
    let undone = undone_of(&run, &plan, &checkpoint);
    assert_eq!(
        check_rollback(undone, &facts(FROM, Consensus::Crdt), PinLoss::Refused),
        Err(RollbackRefusal::NothingDone { run: run_id() })
    );
}

#[test]
fn an_unfinished_run_is_resumed_or_abandoned_first() {
    let plan = upgrade(Consensus::Crdt);
    let checkpoint = journal(&plan, Some(("install-release", "h1")), false);
    let run = run_id();
    let undone = undone_of(&run, &plan, &checkpoint);
    assert_eq!(
        check_rollback(undone, &facts(FROM, Consensus::Crdt), PinLoss::Refused),
        Err(RollbackRefusal::Unfinished { run: run_id() })
    );
}

const V09: Version = Version::new(0, 9, 0);
const V010: Version = Version::new(0, 10, 1);

/// The standard plan of a raft cluster for 0.9.0 → 0.10.1, whose `daemon --upgrade` moves the
/// raft state from format 5 to 6.
fn raft_state_migration() -> Plan {
    let mut plan = upgrade_with(Consensus::Raft, Some(ProcedureKind::Standard));
    plan.choice.from = V09;
    plan.choice.to = V010;
    for host in &mut plan.facts {
        host.service_version = Some(V09);
    }
    plan
}

#[test]
fn a_raft_run_that_migrated_the_state_restores_raft_old_0_and_a_rolling_one_only_binaries() {
    use crate::facts::StoredState;
    let plan = raft_state_migration();
    let checkpoint = journal(&plan, None, false);
    let run = run_id();
    let undone = undone_of(&run, &plan, &checkpoint);
    let stored = |live: u8, old: u8| {
        vec![
            StoredState {
                folder: "raft".into(),
                snapshot: Some("2-10-1".into()),
                first_byte: Some(live),
            },
            StoredState {
                folder: "raft.old.0".into(),
                snapshot: Some("2-9-1".into()),
                first_byte: Some(old),
            },
        ]
    };
    let mut now = facts(V010, Consensus::Raft);
    for host in &mut now {
        host.stored_states = stored(6, 5);
    }
    let choice = check_rollback(undone, &now, PinLoss::Refused).unwrap();
    assert_eq!(
        choice.way,
        RollbackWay::RestoreRaft {
            hosts: ["h1", "h2", "h3"].map(|h| h.parse().unwrap()).to_vec()
        }
    );
    // In Docker containers, the raft folders cannot be put back with the host's binaries.
    let mut in_docker = now.clone();
    in_docker[0].container = Some(crate::facts::ContainerFacts::Unreadable {
        reason: "stopped".into(),
    });
    assert_eq!(
        check_rollback(undone, &in_docker, PinLoss::Refused).unwrap_err(),
        RollbackRefusal::Docker {
            run: run.clone(),
            way: "restore_raft",
            hosts: vec!["h1".parse().unwrap()]
        }
    );
    // A backup rotated since (raft.old.0 in the new format) is not the upgrade's: refused.
    now[1].stored_states = stored(6, 6);
    let refused = check_rollback(undone, &now, PinLoss::Refused).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("h2: its raft state is in format 6 and raft.old.0 in format 6"),
        "{refused}"
    );

    // 3 raft peers of 1.0.8 roll: their state stays as it was, only binaries changed.
    let plan = upgrade(Consensus::Raft);
    assert_eq!(plan.choice.procedure, ProcedureKind::Rolling);
    let checkpoint = journal(&plan, None, false);
    let run = run_id();
    let undone = undone_of(&run, &plan, &checkpoint);
    let choice = check_rollback(undone, &facts(TO, Consensus::Raft), PinLoss::Refused).unwrap();
    assert_eq!(choice.way, RollbackWay::OneAtATime);
}

#[test]
fn a_crdt_standard_run_across_a_protocol_change_goes_back_through_its_first_export() {
    const V014: Version = Version::new(0, 14, 5);
    let mut plan = upgrade_with(Consensus::Crdt, Some(ProcedureKind::Standard));
    // The same plan for 0.14.5 → 1.1.6: /ipfscluster/0.12/rpc → /ipfscluster/1.0/rpc.
    plan.choice.from = V014;
    for host in &mut plan.facts {
        host.service_version = Some(V014);
    }
    let mut checkpoint = journal(&plan, None, false);
    let run = run_id();
    let now = facts(TO, Consensus::Crdt);
    // Without an export of the run: no state to go back to with every peer stopped.
    let refused =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap_err();
    assert!(
        matches!(refused, RollbackRefusal::AcrossProtocol { .. }),
        "{refused}"
    );
    let sha = |c: &str| -> crate::inventory::Sha256 { c.repeat(64).parse().unwrap() };
    for (host, c) in [("h2", "2"), ("h1", "1")] {
        checkpoint.apply(&Event::Backup {
            host: host.parse().unwrap(),
            file: format!("state-export-{host}-0.14.5.json"),
            sha256: sha(c),
        });
    }
    let choice =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap();
    // The first host's, in the run's order, whatever the order the exports were saved in.
    assert_eq!(
        choice.way,
        RollbackWay::RestoreExport(StateExport {
            anchor: "h1".parse().unwrap(),
            file: "state-export-h1-0.14.5.json".into(),
            sha256: sha("1"),
        })
    );
    assert!(
        choice.reasons[1].contains("the state h1 exported with 0.14.5 before the upgrade"),
        "{:?}",
        choice.reasons
    );

    // Planned: every peer stops, is cleaned, h1 imports its export, every peer starts.
    let inventory = inventory();
    let origin = PlanOrigin {
        run_id: "20261204T010000Z-0002".parse().unwrap(),
        ..PlanOrigin::example(&inventory)
    };
    let rollback = build_rollback_plan(RollbackInputs {
        inventory: &inventory,
        playbook: &playbook("rollback.yaml"),
        facts: &now,
        choice: &choice,
        backup_gone: &[],
        backup_sums: &std::collections::BTreeMap::new(),
        undone_backups: std::path::Path::new("/state/runs/r/backups"),
        previous: None,
        origin: &origin,
    })
    .unwrap();
    let ids: Vec<&str> = rollback.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "verify-backup",
            "list-pins",
            "stop-peers",
            "restore-binaries-all",
            "upload-export",
            "clean-states",
            "import-export",
            "start-peers",
            "cluster-back",
            "reconcile-pins",
            "pins-back"
        ]
    );
    let step = |id: &str| rollback.steps.iter().find(|s| s.id.as_str() == id).unwrap();
    let upload = &step("upload-export").hosts;
    assert_eq!(upload.len(), 1);
    assert_eq!(upload[0].host.as_str(), "h1");
    assert_eq!(
        upload[0].upload.as_ref().unwrap().from,
        std::path::Path::new("/state/runs/r/backups/state-export-h1-0.14.5.json")
    );
    let import = step("import-export").hosts[0].command.clone().unwrap();
    assert!(
        import.contains("state import -f /lab/bin/.cluster-upgrade/backup/20261204T010000Z-0002/state-export.json"),
        "{import}"
    );
    assert_eq!(step("clean-states").hosts.len(), 3);
    assert!(rollback
        .steps
        .iter()
        .all(|s| s.id.as_str() != "restore-raft"));
}

#[test]
fn a_peer_on_a_release_the_run_did_not_install_is_drift() {
    let plan = upgrade(Consensus::Crdt);
    let checkpoint = journal(&plan, None, false);
    let run = run_id();
    let undone = undone_of(&run, &plan, &checkpoint);
    let mut now = facts(TO, Consensus::Crdt);
    now[2].service_version = Some(Version::new(1, 1, 5));
    let refused = check_rollback(undone, &now, PinLoss::Refused).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the cluster moved on since run 20261204T000000Z-0001: h3 has 1.1.5 installed, neither 1.0.8 \
         (before the run) nor 1.1.6 (the run's); refusing to roll back over changes it did not make"
    );
}

#[test]
fn the_newest_run_is_the_default_and_a_rolled_back_run_is_not_rolled_back_twice() {
    let id = |n: u32| -> RunId { format!("20261204T00000{n}Z-0001").parse().unwrap() };
    let upgrade = |n| PastRun {
        id: id(n),
        procedure: ProcedureKind::Rolling,
        undoes: None,
        finished: true,
    };
    let rollback_of = |n, of| PastRun {
        id: id(n),
        procedure: ProcedureKind::Rollback,
        undoes: Some(id(of)),
        finished: true,
    };
    assert_eq!(pick_run(&[], None), Err(RollbackRefusal::NoRun));
    assert_eq!(pick_run(&[upgrade(1), upgrade(2)], None), Ok(id(2)));
    assert_eq!(pick_run(&[upgrade(1), upgrade(2)], Some(&id(1))), Ok(id(1)));
    let runs = [upgrade(1), rollback_of(2, 1)];
    assert_eq!(
        pick_run(&runs, None),
        Err(RollbackRefusal::AlreadyRolledBack {
            run: id(1),
            by: id(2)
        })
    );
    assert_eq!(
        pick_run(&runs, Some(&id(1))),
        Err(RollbackRefusal::AlreadyRolledBack {
            run: id(1),
            by: id(2)
        })
    );
    assert_eq!(
        pick_run(&runs, Some(&id(2))),
        Err(RollbackRefusal::RollbackOfRollback { run: id(2) })
    );
    assert_eq!(
        pick_run(&runs, Some(&id(3))),
        Err(RollbackRefusal::NotFound { run: id(3) })
    );
}

/// The rollback plan of `choice`, planned over `now`.
fn rollback_plan(choice: &RollbackChoice, now: &[HostFacts]) -> Plan {
    let inventory = inventory();
    let origin = PlanOrigin {
        run_id: "20261204T010000Z-0002".parse().unwrap(),
        ..PlanOrigin::example(&inventory)
    };
    build_rollback_plan(RollbackInputs {
        inventory: &inventory,
        playbook: &playbook("rollback.yaml"),
        facts: now,
        choice,
        backup_gone: &[],
        backup_sums: &std::collections::BTreeMap::new(),
        undone_backups: std::path::Path::new("/state/runs/r/backups"),
        previous: None,
        origin: &origin,
    })
    .unwrap()
}

fn step_ids(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.id.as_str()).collect()
}

fn sha(c: &str) -> crate::inventory::Sha256 {
    c.repeat(64).parse().unwrap()
}

fn export_saved(checkpoint: &mut Checkpoint, host: &str, version: &str, c: &str) {
    checkpoint.apply(&Event::Backup {
        host: host.parse().unwrap(),
        file: format!("state-export-{host}-{version}.json"),
        sha256: sha(c),
    });
}

#[test]
fn a_raft_run_whose_raft_old_0_is_gone_is_rebuilt_from_its_export_around_the_exporting_peer() {
    use crate::facts::StoredState;
    let plan = raft_state_migration();
    let mut checkpoint = journal(&plan, None, false);
    let run = run_id();
    let mut now = facts(V010, Consensus::Raft);
    for host in &mut now {
        host.stored_states = vec![StoredState {
            folder: "raft".into(),
            snapshot: Some("2-10-1".into()),
            first_byte: Some(6),
        }];
    }
    // No raft.old.0 and no export: nothing to go back to.
    let refused =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("h1: its raft state is in format 6 and raft.old.0 in format none"),
        "{refused}"
    );
    // An export of the run's own release (0.10.1, a later stage's) is not the one.
    export_saved(&mut checkpoint, "h1", "0.10.1", "9");
    assert!(check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).is_err());
    export_saved(&mut checkpoint, "h2", "0.9.0", "2");
    let choice =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap();
    assert_eq!(
        choice.way,
        RollbackWay::RebuildRaft(StateExport {
            anchor: "h2".parse().unwrap(),
            file: "state-export-h2-0.9.0.json".into(),
            sha256: sha("2"),
        })
    );
    assert_eq!(choice.lister, Some("h2".parse().unwrap()));
    assert!(
        choice.reasons[1]
            .contains("the raft.old.0 its `daemon --upgrade` left is not there any more"),
        "{:?}",
        choice.reasons
    );
    assert!(
        choice.reasons[2]
            .contains("2 pins when run 20261204T000000Z-0001 was planned; h2 lists 2 now"),
        "{:?}",
        choice.reasons
    );

    // Planned: every peer stopped and cleaned, h2 imports and starts alone, the others
    // bootstrap to it one at a time, the pinset made what it was.
    let rollback = rollback_plan(&choice, &now);
    assert_eq!(
        step_ids(&rollback),
        [
            "verify-backup",
            "list-pins",
            "stop-peers",
            "restore-binaries-all",
            "upload-export",
            "clean-rafts",
            "import-raft-export",
            "start-anchor",
            "bootstrap-others",
            "cluster-back",
            "reconcile-pins",
            "pins-back"
        ]
    );
    let step = |id: &str| rollback.steps.iter().find(|s| s.id.as_str() == id).unwrap();
    let on = |id: &str| -> Vec<&str> { step(id).hosts.iter().map(|h| h.host.as_str()).collect() };
    assert_eq!(on("list-pins"), ["h2"]);
    assert_eq!(on("import-raft-export"), ["h2"]);
    assert_eq!(on("start-anchor"), ["h2"]);
    assert_eq!(on("bootstrap-others"), ["h1", "h3"]);
    assert_eq!(on("clean-rafts"), ["h1", "h2", "h3"]);
    let bootstrap = step("bootstrap-others").hosts[0].command.clone().unwrap();
    assert!(
        bootstrap.contains("--bootstrap /ip4/127.9.9.3/tcp/9096/ipfs/Qm2"),
        "{bootstrap}"
    );
    let clean = step("clean-rafts").hosts[0].command.clone().unwrap();
    // 0.9 has no local `-f` (only the global `--force`).
    assert!(
        clean.contains("--force --config /lab/cfg state cleanup ||"),
        "{clean}"
    );
    assert!(rollback
        .backups
        .iter()
        .any(|b| b.contains("state-export-h2-0.9.0.json")));
}

#[test]
fn a_bootstrap_run_is_rebuilt_from_the_export_taken_with_the_release_before_it() {
    let plan = upgrade_with(Consensus::Raft, Some(ProcedureKind::Bootstrap));
    assert_eq!(plan.choice.procedure, ProcedureKind::Bootstrap);
    let mut checkpoint = journal(&plan, None, false);
    let run = run_id();
    let now = facts(TO, Consensus::Raft);
    let refused =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("records no state export taken with 1.0.8"),
        "{refused}"
    );
    export_saved(&mut checkpoint, "h3", "1.0.8", "3");
    let choice =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap();
    assert!(
        matches!(&choice.way, RollbackWay::RebuildRaft(export) if export.anchor.as_str() == "h3"),
        "{:?}",
        choice.way
    );
    let names: Vec<&str> = choice.touched.iter().map(HostName::as_str).collect();
    assert_eq!(names, ["h1", "h2", "h3"]);
    // The same run over crdt peers (never planned: no raft state to rebuild) is refused.
    let mut plan = plan;
    for host in &mut plan.facts {
        host.consensus = Some(Consensus::Crdt);
    }
    let refused = check_rollback(
        undone_of(&run, &plan, &checkpoint),
        &facts(TO, Consensus::Crdt),
        PinLoss::Refused,
    )
    .unwrap_err();
    assert!(
        matches!(refused, RollbackRefusal::StateChanged { .. }),
        "{refused}"
    );
}

#[test]
fn pins_changed_since_the_upgrade_are_never_lost_silently() {
    const V014: Version = Version::new(0, 14, 5);
    let mut plan = upgrade_with(Consensus::Crdt, Some(ProcedureKind::Standard));
    plan.choice.from = V014;
    for host in &mut plan.facts {
        host.service_version = Some(V014);
    }
    let mut checkpoint = journal(&plan, None, false);
    export_saved(&mut checkpoint, "h1", "0.14.5", "1");
    let run = run_id();
    // h1, whose export is the only one, is down: its pinset cannot be listed before the stop.
    let mut now = facts(TO, Consensus::Crdt);
    now[0].running = false;
    now[0].pins = None;
    let refused =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap_err();
    assert_eq!(
        refused,
        RollbackRefusal::PinsUnlisted {
            run: run.clone(),
            host: "h1".parse().unwrap(),
            why: "h1 is not running".into(),
        }
    );
    assert!(
        refused.to_string().contains("--allow-pin-loss"),
        "{refused}"
    );

    // With --allow-pin-loss: the plan says so, lists nothing and re-adds nothing, and its final
    // check asks for no pins.
    let choice =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Allowed).unwrap();
    assert_eq!(choice.lister, None);
    assert!(
        choice.reasons[2]
            .contains("pins added or removed since are lost, as --allow-pin-loss allows"),
        "{:?}",
        choice.reasons
    );
    let rollback = rollback_plan(&choice, &now);
    let ids = step_ids(&rollback);
    assert!(
        !ids.contains(&"list-pins") && !ids.contains(&"reconcile-pins"),
        "{ids:?}"
    );
    let mut after = facts(FROM, Consensus::Crdt);
    for host in &mut after {
        host.service_version = Some(V014);
        host.pins = Some(Pinset::from_cids(["Qma".to_string()]));
    }
    assert_eq!(rollback_problems(&rollback, &after), Vec::<String>::new());

    // Refused, the same state would be checked against the pins planned.
    now[0] = facts(TO, Consensus::Crdt)[0].clone();
    let choice =
        check_rollback(undone_of(&run, &plan, &checkpoint), &now, PinLoss::Refused).unwrap();
    let rollback = rollback_plan(&choice, &now);
    assert!(step_ids(&rollback).contains(&"list-pins"));
    assert!(!rollback_problems(&rollback, &after).is_empty());
}
