//! The bootstrap procedure through `apply`, end to end against `cluster-lab`.

use crate::support::{assert_no_step_finished_twice, assert_success, run, text, Lab};

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
    assert_success(&out, "apply");
    assert!(
        text(&out.stdout).contains("bootstrap procedure, 0.9.0 → 0.10.1, finished"),
        "{}",
        text(&out.stdout)
    );
    lab.assert_cluster("0.10.1", peers as u64, pins as u64);
    // The pinset was copied to the controller before any peer was removed, and the anchor's
    // state export before its state was upgraded.
    let anchor = format!("h{peers}");
    let backups: Vec<String> = lab
        .journal()
        .iter()
        .filter(|r| r["event"] == "backup")
        .map(|r| {
            format!(
                "{} {}",
                r["host"].as_str().unwrap(),
                r["file"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        backups,
        [
            format!("{anchor} pinset-{anchor}-0.9.0.json"),
            format!("{anchor} state-export-{anchor}-0.9.0.json")
        ]
    );
    let journal = lab.journal_text();
    let position = |needle: &str| {
        journal
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in the journal"))
    };
    assert!(position("\"event\":\"backup\"") < position("\"step\":\"remove-peers\""));
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
    // After a `peers rm`, after the anchor's upgrade, during the re-joins. The first run
    // chooses the procedure; a resume runs the saved plan, so it takes no `--procedure`.
    let inventory = lab.inventory();
    let first = [
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--procedure",
        "bootstrap",
    ];
    let resume = ["apply", inventory.to_str().unwrap(), "--yes"];
    lab.kill_when_started(&first, "stop-others", 1);
    let refused = apply_bootstrap(&lab);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("--procedure cannot be honoured"),
        "{}",
        text(&refused.stderr)
    );
    for (step, occurrence) in [("install-others", 1), ("bootstrap-others", 2)] {
        lab.kill_when_started(&resume, step, occurrence);
    }
    let out = run(&resume);
    assert_success(&out, "final resume");
    lab.assert_cluster("0.10.1", 3, 30);
    assert_eq!(
        lab.journal_text()
            .matches("\"event\":\"run_started\"")
            .count(),
        4
    );
    assert_no_step_finished_twice(&lab.journal());
}
