//! `cluster-upgrade recover` end to end against `cluster-lab`: the peers are down, their raft
//! state is gone but for one copy, and recover rebuilds the cluster on the target version.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{cluster_upgrade, run, text, Lab};

/// Every peer on `version`, running, seeing `peers` peers and listing `pins` pins.
fn assert_cluster(lab: &Lab, version: &str, peers: u64, pins: u64) {
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some(version), "{host:?}");
        assert!(host.running, "{host:?}");
        assert_eq!(host.peers, Some(peers), "{host:?}");
        assert_eq!(host.pins, Some(pins), "{host:?}");
    }
}

fn svc(lab: &Lab, host: &str, verb: &str) -> Output {
    Command::new(lab.home(host).join("bin/ipfs-cluster-svc"))
        .arg(verb)
        .output()
        .expect("run ipfs-cluster-svc")
}

fn config_dir(lab: &Lab, host: &str) -> PathBuf {
    lab.home(host).join(".ipfs-cluster")
}

fn fault(lab: &Lab, args: &[&str]) {
    let mut all = vec!["fault"];
    all.extend_from_slice(args);
    let out = lab.lab(&all);
    assert!(
        out.status.success(),
        "cluster-lab fault {args:?}: {}",
        text(&out.stderr)
    );
}

/// The disaster: h1 is removed from the cluster (it moves its state to raft.old.0 itself, as
/// real peers do), then every peer is stopped and the raft folders of h2 and h3 are deleted
/// with their backups, so h1's backup is the only copy of the pinset.
fn lose_every_state_but_one_backup(lab: &Lab) {
    let h1 = lab.peer_id("h1");
    let out = lab.ctl("h3", &["peers", "rm", &h1]);
    assert!(out.status.success(), "peers rm: {}", text(&out.stderr));
    lab.wait_for(
        "h1 to shut down after its removal",
        Duration::from_secs(30),
        |lab| {
            svc(lab, "h1", "status").status.code() == Some(3)
                && config_dir(lab, "h1").join("raft.old.0").is_dir()
        },
    );
    for host in ["h2", "h3"] {
        assert!(svc(lab, host, "stop").status.success());
    }
    fault(lab, &["rm-state", "h1"]);
    fault(lab, &["rm-state", "h2", "--backups"]);
    fault(lab, &["rm-state", "h3", "--backups"]);
    for host in ["h2", "h3"] {
        let left: Vec<_> = std::fs::read_dir(config_dir(lab, host))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            !left
                .iter()
                .any(|name| name.to_string_lossy().starts_with("raft")),
            "{host} still has {left:?}"
        );
    }
    assert!(!config_dir(lab, "h1").join("raft").exists());
}

fn recover(lab: &Lab, extra: &[&str]) -> Output {
    let inventory = lab.inventory();
    let mut args = vec!["recover", inventory.to_str().unwrap(), "--yes"];
    args.extend_from_slice(extra);
    run(&args)
}

fn run_dirs(lab: &Lab) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(lab.path().join(".cluster-upgrade/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs
}

fn journal_text(lab: &Lab) -> String {
    let runs = lab.path().join(".cluster-upgrade/runs");
    std::fs::read_dir(&runs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|run| std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap_or_default())
        .collect()
}

fn assert_no_step_finished_twice(journal: &str) {
    let mut finished = std::collections::BTreeMap::new();
    for line in journal
        .lines()
        .filter(|l| l.contains("\"event\":\"step_finished\""))
    {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        *finished
            .entry((record["step"].to_string(), record["host"].to_string()))
            .or_insert(0) += 1;
    }
    assert!(
        finished.values().all(|n| *n == 1),
        "a finished step ran again: {finished:?}"
    );
}

#[test]
fn recover_rebuilds_a_three_peer_cluster_on_0_10_from_the_only_raft_backup() {
    let lab = Lab::up(3, "0.9.0", 40);
    lose_every_state_but_one_backup(&lab);

    let out = recover(&lab, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "recover failed:\n{stdout}\n{stderr}");
    // What was found on every host, and why the source was picked.
    assert!(stdout.contains("Procedure: recover"), "{stdout}");
    assert!(
        stdout.contains("h1 (0.9.0, stopped): raft/ missing; raft.old.0 snapshot "),
        "{stdout}"
    );
    assert!(
        stdout.contains("h2 (0.9.0, stopped): raft/ missing\n"),
        "{stdout}"
    );
    assert!(stdout.contains("source: no host has a live raft/ snapshot; raft.old.0 on h1 is the newest backup holding a snapshot"), "{stdout}");
    assert!(
        stdout.contains("recover procedure, 0.9.0 → 0.10.1, finished"),
        "{stdout}"
    );
    assert_cluster(&lab, "0.10.1", 3, 40);

    // The export that was imported is kept on the controller, private, and journalled.
    let runs = run_dirs(&lab);
    assert_eq!(runs.len(), 1);
    let export = runs[0].join("backups/state-export.json");
    assert_eq!(
        text(&std::fs::read(&export).unwrap())
            .matches("\"cid\"")
            .count(),
        40
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&export).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);
    let journal = journal_text(&lab);
    assert!(
        journal.contains("\"event\":\"backup\",\"host\":\"h1\",\"file\":\"state-export.json\""),
        "{journal}"
    );
    assert!(
        journal.trim_end().ends_with("{\"event\":\"run_finished\"}")
            || journal.contains("\"event\":\"run_finished\"")
    );
    assert_no_step_finished_twice(&journal);
    // The chosen backup became the state again, and what cleanup set aside is still there.
    assert!(config_dir(&lab, "h1").join("raft.old.0").is_dir());

    // A healthy cluster is not "recovered" again.
    let again = recover(&lab, &[]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("nothing to recover"),
        "{}",
        text(&again.stderr)
    );
}

/// Starts `recover`, SIGKILLs it as soon as the journal shows `step` started `occurrence` times.
fn kill_recover_when_started(lab: &Lab, step: &str, occurrence: usize) {
    let mut child = Command::new(cluster_upgrade())
        .args(["recover", lab.inventory().to_str().unwrap(), "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let needle = format!("\"event\":\"step_started\",\"step\":\"{step}\"");
    let start = Instant::now();
    while journal_text(lab).matches(&needle).count() < occurrence {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("recover ended ({status}) before {step} started");
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{step} never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn recover_killed_at_each_stage_resumes_without_losing_a_pin() {
    let lab = Lab::up(3, "0.9.0", 30);
    lose_every_state_but_one_backup(&lab);
    // While the backup is restored, before the import, while the source starts alone, during the re-joins.
    for (step, occurrence) in [
        ("restore-backup", 1),
        ("import-state", 1),
        ("start-source", 1),
        ("bootstrap-others", 2),
    ] {
        kill_recover_when_started(&lab, step, occurrence);
    }
    let out = recover(&lab, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "final resume failed:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("resuming recovery run"), "{stderr}");
    assert_cluster(&lab, "0.10.1", 3, 30);
    assert_eq!(
        run_dirs(&lab).len(),
        1,
        "every resume continued the same run"
    );
    let journal = journal_text(&lab);
    assert_eq!(journal.matches("\"event\":\"run_started\"").count(), 5);
    assert_no_step_finished_twice(&journal);
}

/// Exports the stopped peer's state with its own (old) release, as an operator would have.
fn export_with_old_release(lab: &Lab, host: &str, file: &Path) {
    let out = Command::new(lab.home(host).join("bin/ipfs-cluster-service"))
        .arg("--config")
        .arg(config_dir(lab, host))
        .args(["state", "export", "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "state export: {}", text(&out.stderr));
}

#[test]
fn recover_from_an_export_when_no_state_survives_anywhere() {
    let lab = Lab::up(3, "0.9.0", 25);
    for host in ["h1", "h2", "h3"] {
        assert!(svc(&lab, host, "stop").status.success());
    }
    let export = lab.path().join("pins-0.9.0.json");
    export_with_old_release(&lab, "h2", &export);
    for host in ["h1", "h2", "h3"] {
        fault(&lab, &["rm-state", host, "--backups"]);
    }

    // Nothing survives: refused, with the way out named.
    let out = recover(&lab, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("give an export made earlier with --from-export FILE"),
        "{}",
        text(&out.stderr)
    );

    // An export of another era is refused before any peer is touched.
    let newer = lab.path().join("pins-1.1.json");
    std::fs::write(
        &newer,
        "{\"cid\":\"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG\",\"type\":\"pin\"}\n",
    )
    .unwrap();
    let out = recover(&lab, &["--from-export", newer.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("but h3 runs 0.9.0"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !lab.path()
            .join(".cluster-upgrade/runs")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "no run was started"
    );

    let out = recover(&lab, &["--from-export", export.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "recover failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("is imported on h3 (the last peer)"),
        "{stdout}"
    );
    assert_cluster(&lab, "0.10.1", 3, 25);
}

#[test]
fn a_recovery_resumes_only_on_hosts_as_it_left_them() {
    let lab = Lab::up(3, "0.9.0", 10);
    lose_every_state_but_one_backup(&lab);
    kill_recover_when_started(&lab, "import-state", 1);
    // Meanwhile someone installs another release on h3 by hand.
    let service = lab.home("h3").join("bin/ipfs-cluster-service");
    let kept = lab.path().join("h3-ipfs-cluster-service");
    std::fs::copy(&service, &kept).unwrap();
    std::fs::copy(
        lab.path().join("releases/1.1.6/ipfs-cluster-service"),
        &service,
    )
    .unwrap();
    let journal = journal_text(&lab);

    let refused = recover(&lab, &[]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("resuming recovery run"), "{stderr}");
    assert!(
        stderr.contains(
            "the cluster no longer matches the plan, so resuming is unsafe: h3 runs 1.1.6"
        ),
        "{stderr}"
    );
    assert_eq!(journal_text(&lab), journal, "nothing was run or journalled");
    // `apply` does not take over a recovery: its final check would be the wrong one.
    let inventory = lab.inventory();
    let apply = run(&["apply", inventory.to_str().unwrap(), "--yes"]);
    let stderr = text(&apply.stderr);
    assert_eq!(apply.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is an unfinished recovery: run `cluster-upgrade recover {}` to resume it",
            std::fs::canonicalize(&inventory).unwrap().display()
        )),
        "{stderr}"
    );
    assert_eq!(journal_text(&lab), journal, "nothing was run or journalled");

    // With the binary put back, the same run goes on and ends well.
    std::fs::copy(&kept, &service).unwrap();
    let out = recover(&lab, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_cluster(&lab, "0.10.1", 3, 10);
    assert_eq!(run_dirs(&lab).len(), 1, "the resume continued the same run");
}
