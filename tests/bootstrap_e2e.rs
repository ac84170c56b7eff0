//! The bootstrap procedure through `apply`, end to end against `cluster-lab`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{cluster_upgrade, run, text, Lab};

fn assert_cluster(lab: &Lab, version: &str, peers: u64, pins: u64) {
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some(version), "{host:?}");
        assert!(host.running, "{host:?}");
        assert_eq!(host.peers, Some(peers), "{host:?}");
        assert_eq!(host.pins, Some(pins), "{host:?}");
    }
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

fn apply_bootstrap(lab: &Lab) -> std::process::Output {
    run(&[
        "apply",
        lab.inventory().to_str().unwrap(),
        "--yes",
        "--procedure",
        "bootstrap",
    ])
}

fn bootstrap_upgrade(peers: usize, pins: usize) {
    let lab = Lab::up(peers, "0.9.0", pins);
    let out = apply_bootstrap(&lab);
    assert!(
        out.status.success(),
        "apply failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("bootstrap procedure, 0.9.0 → 0.10.1, finished"),
        "{}",
        text(&out.stdout)
    );
    assert_cluster(&lab, "0.10.1", peers as u64, pins as u64);
    // Each removed peer kept its old state as a backup.
    for host in 1..peers {
        let backup = lab
            .home(&format!("h{host}"))
            .join(".ipfs-cluster/raft.old.0");
        assert!(backup.is_dir(), "{} is missing", backup.display());
    }
}

#[test]
fn bootstrap_upgrade_of_three_peers_from_0_9_to_0_10() {
    bootstrap_upgrade(3, 40);
}

#[test]
fn bootstrap_upgrade_of_five_peers_from_0_9_to_0_10() {
    bootstrap_upgrade(5, 30);
}

#[test]
fn killed_at_each_stage_of_bootstrap_apply_still_finishes_without_losing_a_pin() {
    let lab = Lab::up(3, "0.9.0", 30);
    // After a `peers rm`, after the anchor's upgrade, during the re-joins.
    for (step, occurrence) in [
        ("stop-others", 1),
        ("install-others", 1),
        ("bootstrap-others", 2),
    ] {
        let mut child = Command::new(cluster_upgrade())
            .args([
                "apply",
                lab.inventory().to_str().unwrap(),
                "--yes",
                "--procedure",
                "bootstrap",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let needle = format!("\"event\":\"step_started\",\"step\":\"{step}\"");
        let start = Instant::now();
        while journal_text(&lab).matches(&needle).count() < occurrence {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("apply ended ({status}) before {step} started");
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
    let out = apply_bootstrap(&lab);
    assert!(
        out.status.success(),
        "final resume failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_cluster(&lab, "0.10.1", 3, 30);
    let journal = journal_text(&lab);
    assert_eq!(journal.matches("\"event\":\"run_started\"").count(), 4);
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
