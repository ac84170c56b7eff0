//! `cluster-upgrade apply` end to end against `cluster-lab`: real sshd hosts, stand-in peers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    assert_no_step_finished_twice, assert_success, cluster_upgrade, run, text, Lab,
};

/// The host cells of a step's row in the `status` table (without its name and its time).
fn row(status: &str, step: &str) -> Vec<String> {
    let line = status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(step))
        .unwrap_or_else(|| panic!("no row {step}: {status}"));
    let mut cells: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    cells.pop();
    cells
}

/// The state export the run copied to the controller is recorded with its SHA-256, is private,
/// and imports into a fresh peer of the release that made it, with every pin.
fn assert_export_imports_into_a_fresh_peer(
    lab: &Lab,
    records: &[serde_json::Value],
    release: &str,
    pins: usize,
) {
    let backup = records
        .iter()
        .find(|r| r["event"] == "backup" && r["host"] == "h1")
        .expect("a backup record for h1");
    let file = backup["file"].as_str().unwrap();
    assert_eq!(file, format!("state-export-h1-{release}.json"));
    let runs = lab.path().join(".cluster-upgrade/runs");
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let export = run_dir.join("backups").join(file);
    let bytes = std::fs::read(&export).unwrap();
    let sha: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(backup["sha256"], sha.as_str());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&export).unwrap().permissions())
            & 0o777;
    assert_eq!(mode, 0o600);

    let fresh = tempfile::tempdir().unwrap();
    let service = lab
        .path()
        .join("releases")
        .join(release)
        .join("ipfs-cluster-service");
    let config = fresh.path().join("peer");
    let sh = |args: &[&str]| {
        let out = Command::new(&service)
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        out
    };
    sh(&["init"]);
    sh(&["state", "import", "-f", export.to_str().unwrap()]);
    let exported = sh(&["state", "export"]);
    let reimported: serde_json::Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(
        reimported
            .as_array()
            .expect("0.9 exports a JSON array")
            .len(),
        pins
    );
}

fn apply_inventory(lab: &Lab) -> std::process::Output {
    run(&["apply", lab.inventory().to_str().unwrap(), "--yes"])
}

#[test]
fn standard_upgrade_of_three_peers_from_0_9_to_0_10_keeps_every_pin() {
    let lab = Lab::up(3, "0.9.0", 60);
    let out = run(&["plan", lab.inventory().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Without a terminal and without --yes, nothing is applied.
    let refused = Command::new(cluster_upgrade())
        .arg("apply")
        .current_dir(lab.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("no terminal to ask on; pass --yes"));
    lab.assert_cluster("0.9.0", 3, 60);

    // A bare `apply` in the inventory's folder applies the plan `plan` saved.
    let out = Command::new(cluster_upgrade())
        .args(["apply", "--yes"])
        .current_dir(lab.path())
        .output()
        .unwrap();
    assert_success(&out, "apply");
    lab.assert_cluster("0.10.1", 3, 60);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("standard procedure, 0.9.0 → 0.10.1, finished"),
        "{stdout}"
    );

    let records = lab.journal();
    assert_no_step_finished_twice(&records);
    assert_eq!(records.last().unwrap()["event"], "run_finished");
    // Every remote step was journalled as started before it finished.
    for record in records.iter().filter(|r| r["event"] == "step_finished") {
        let started = records.iter().position(|r| {
            r["event"] == "step_started"
                && r["step"] == record["step"]
                && r["host"] == record["host"]
        });
        assert!(started.is_some(), "{record} without a start");
    }

    assert_export_imports_into_a_fresh_peer(&lab, &records, "0.9.0", 60);

    let status = run(&["status", lab.inventory().to_str().unwrap()]);
    assert!(status.status.success());
    assert_eq!(
        row(&text(&status.stdout), "start-upgrade"),
        ["done", "done", "done"],
        "{}",
        text(&status.stdout)
    );

    // The run directory is private; applying the same plan again is refused.
    let runs = lab.path().join(".cluster-upgrade/runs");
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(mode(&run_dir), 0o700);
    assert_eq!(mode(&run_dir.join("journal.jsonl")), 0o600);
    let again = Command::new(cluster_upgrade())
        .args(["apply", "--yes"])
        .current_dir(lab.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("was already applied"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn standard_upgrade_of_five_peers_from_0_9_to_0_10() {
    let lab = Lab::up(5, "0.9.0", 40);
    let logins = |host: &str| lab.sshd_log(host).matches("Accepted publickey").count();
    let before: Vec<usize> = (1..=5).map(|i| logins(&format!("h{i}"))).collect();
    let out = apply_inventory(&lab);
    assert_success(&out, "apply");
    // Planning, every step and the final gate share one connection per host.
    for (i, before) in before.into_iter().enumerate() {
        let host = format!("h{}", i + 1);
        assert_eq!(logins(&host), before + 1, "{host}: {}", lab.sshd_log(&host));
    }
    lab.assert_cluster("0.10.1", 5, 40);
    assert_no_step_finished_twice(&lab.journal());
}

#[test]
fn upgrade_of_three_peers_from_1_0_to_1_1_and_stale_plans_are_refused() {
    let lab = Lab::up_with(3, "1.0.8", 30, &["--target", "1.1.6"]);
    let plan = lab.path().join("plan.json");
    lab.save_plan(&plan);

    // The cluster changes after planning: the saved plan is stale.
    let added = lab.ctl(
        "h1",
        &[
            "pin",
            "add",
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        ],
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    lab.wait_for(
        "the new pin on every peer",
        Duration::from_secs(20),
        |lab| lab.status().iter().all(|h| h.pins == Some(31)),
    );
    let out = run(&["apply", plan.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the plan is stale"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("h1: pins 30 → 31"),
        "{}",
        text(&out.stderr)
    );
    lab.assert_cluster("1.0.8", 3, 31);

    let out = apply_inventory(&lab);
    assert_success(&out, "apply");
    lab.assert_cluster("1.1.6", 3, 31);
}

/// Saves a plan, then corrupts the target's `ipfs-cluster-service` on the controller (after
/// planning, so only the upload's checksum check can notice): (plan, release file, its bytes).
fn plan_then_corrupt_the_release(lab: &Lab) -> (PathBuf, PathBuf, Vec<u8>) {
    let plan = lab.path().join("plan.json");
    lab.save_plan(&plan);
    let release = lab.path().join("releases/0.10.1/ipfs-cluster-service");
    let good = std::fs::read(&release).unwrap();
    let mut bad = good.clone();
    bad.extend_from_slice(b"corruption");
    std::fs::write(&release, &bad).unwrap();
    (plan, release, good)
}

#[test]
fn a_failed_step_stops_the_run_and_apply_resumes_after_the_fix() {
    let lab = Lab::up(3, "0.9.0", 25);
    let (plan, release, good) = plan_then_corrupt_the_release(&lab);

    let out = run(&["apply", plan.to_str().unwrap(), "--yes"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("step `upload-service` failed on h1, h2, h3"),
        "{stderr}"
    );
    assert!(
        stdout.contains("upload-service failed on h2: the command exited with status 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("does not match the release checksum"),
        "the stderr tail is shown: {stdout}"
    );
    // Nothing destructive ran: every peer still serves 0.9.0 with all its pins.
    lab.assert_cluster("0.9.0", 3, 25);
    let status = text(&run(&["status", lab.inventory().to_str().unwrap()]).stdout);
    assert_eq!(
        row(&status, "upload-service"),
        ["FAILED", "FAILED", "FAILED"],
        "{status}"
    );
    assert_eq!(
        row(&status, "stop-peers"),
        ["pending", "pending", "pending"],
        "{status}"
    );

    std::fs::write(&release, &good).unwrap();
    let out = apply_inventory(&lab);
    assert_success(&out, "resume");
    assert!(
        text(&out.stderr).contains("resuming run"),
        "{}",
        text(&out.stderr)
    );
    lab.assert_cluster("0.10.1", 3, 25);
    let records = lab.journal();
    assert_no_step_finished_twice(&records);
    let prepare_starts = records
        .iter()
        .filter(|r| r["event"] == "step_started" && r["step"] == "prepare-staging")
        .count();
    assert_eq!(
        prepare_starts, 3,
        "steps finished before the failure were not run again"
    );
}

#[test]
fn killed_at_several_points_apply_still_finishes_without_losing_a_pin() {
    let lab = Lab::up(3, "0.9.0", 40);
    for step in [
        "keep-previous",
        "stop-peers",
        "start-upgrade",
        "cluster-healthy",
    ] {
        lab.kill_when_started(
            &["apply", lab.inventory().to_str().unwrap(), "--yes"],
            step,
            1,
        );
    }
    let out = apply_inventory(&lab);
    assert_success(&out, "final resume");
    lab.assert_cluster("0.10.1", 3, 40);
    let records = lab.journal();
    assert_no_step_finished_twice(&records);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["event"] == "run_started")
            .count(),
        5
    );
    assert_eq!(records.last().unwrap()["event"], "run_finished");
}

#[test]
fn a_second_apply_is_refused_while_one_runs() {
    let lab = Lab::up(3, "0.9.0", 5);
    // A copy of the playbooks whose first step takes a while, so the first apply is surely running.
    let playbooks = lab.path().join("slow-playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    for name in ["standard.yaml", "bootstrap.yaml"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("playbooks")
                .join(name),
        )
        .unwrap();
        let slow = text.replacen(
            "command: mkdir -p {{ release.staging_dir | quote }}",
            "command: sleep 3; mkdir -p {{ release.staging_dir | quote }}",
            1,
        );
        assert_ne!(slow, text);
        std::fs::write(playbooks.join(name), slow).unwrap();
    }
    let inventory = lab.inventory();
    let args = [
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--playbooks",
        playbooks.to_str().unwrap(),
    ];
    let mut first = Command::new(cluster_upgrade())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runs = lab.path().join(".cluster-upgrade/runs");
    lab.wait_for("the first apply to start", Duration::from_secs(30), |_| {
        std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|r| r.path().join("journal.jsonl").exists())
    });
    let second = run(&args);
    assert_eq!(second.status.code(), Some(3), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("another `cluster-upgrade apply` holds"),
        "{}",
        text(&second.stderr)
    );
    assert!(
        first.wait().unwrap().success(),
        "the first apply is not disturbed"
    );
    lab.assert_cluster("0.10.1", 3, 5);
}

#[test]
fn an_upgrade_from_0_9_to_1_1_goes_through_0_10_and_keeps_every_pin() {
    let lab = Lab::up_with(3, "0.9.0", 25, &["--target", "1.1.6"]);
    let out = run(&["plan", lab.inventory().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["choice"]["via"], serde_json::json!(["0.10.1"]));
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let position = |id: &str| {
        ids.iter()
            .position(|s| *s == id)
            .unwrap_or_else(|| panic!("no {id} in {ids:?}"))
    };
    assert!(
        position("stage1-cluster-healthy") < position("stage2-stop-peers"),
        "stage 1 is verified before stage 2"
    );
    // Each host's copy of a staged step carries the step's prefixed name (format 3 writes a
    // host's name only where it differs from the step's).
    for step in plan["steps"].as_array().unwrap() {
        assert!(step["name"].as_str().unwrap().starts_with('['), "{step}");
        for host in step["hosts"].as_array().unwrap() {
            assert!(
                host.get("name").is_none_or(|name| *name == step["name"]),
                "{host}"
            );
        }
    }

    let out = apply_inventory(&lab);
    assert_success(&out, "apply");
    lab.assert_cluster("1.1.6", 3, 25);
    assert_no_step_finished_twice(&lab.journal());
}

#[test]
fn a_large_cluster_gets_counts_per_step_and_one_line_per_failure() {
    let lab = Lab::up(12, "0.9.0", 5);
    let (plan, _, _) = plan_then_corrupt_the_release(&lab);

    let out = run(&["apply", plan.to_str().unwrap(), "--yes"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let row = |step: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(step))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .map(|mut cells| {
                cells.pop(); // its time
                cells
            })
            .unwrap_or_else(|| panic!("no row for {step}:\n{stdout}"))
    };
    assert!(
        stdout.contains("STEP             HOSTS  DONE  IN FLIGHT  PENDING  FAILED  TIME"),
        "{stdout}"
    );
    assert_eq!(
        row("prepare-staging"),
        ["prepare-staging", "12", "12", "0", "0", "0"]
    );
    assert_eq!(
        row("upload-service"),
        ["upload-service", "12", "0", "0", "0", "12"]
    );
    assert_eq!(row("stop-peers"), ["stop-peers", "12", "0", "0", "12", "0"]);
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" failed on "))
        .collect();
    assert_eq!(
        failed,
        [
            "upload-service failed on 12 hosts (h1, h2, h3, …): the command exited with status 1 (stderr of h1:)",
            "Last stop: step `upload-service` failed on 12 hosts (h1, h2, h3, …); fix the cause, then run `cluster-upgrade apply` again to resume"
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("does not match the release checksum"),
        "{stdout}"
    );
    lab.assert_cluster("0.9.0", 12, 5);
}

#[test]
fn ctrl_c_stops_after_the_running_commands_exits_130_and_the_run_resumes() {
    let lab = Lab::up(3, "0.9.0", 5);
    let state = lab.path().join(".cluster-upgrade");
    let inventory = lab.inventory();
    let args = ["apply", inventory.to_str().unwrap(), "--yes"];
    let child = crate::support::start_until(&args, &state, "verify-release", 1);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("interrupt: stopping after the commands"),
        "{stderr}"
    );
    assert!(stderr.contains("the journal is consistent"), "{stderr}");
    // Every command that started also finished (none was cut), and the run stopped well before
    // the peers were touched.
    let journal = crate::support::journals_in(&state);
    assert_eq!(
        journal.matches("\"event\":\"step_started\"").count(),
        journal.matches("\"event\":\"step_finished\"").count(),
        "{journal}"
    );
    assert!(!journal.contains("\"step\":\"stop-peers\""), "{journal}");
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some("0.9.0"));
        assert!(host.running);
    }

    let out = Command::new(cluster_upgrade())
        .args(["apply", inventory.to_str().unwrap(), "--yes"])
        .output()
        .unwrap();
    assert_success(&out, "resume");
    lab.assert_cluster("0.10.1", 3, 5);
}

#[test]
fn status_and_runs_print_json_and_their_errors_too() {
    let lab = Lab::up(3, "0.9.0", 3);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    // Before any run: a JSON error, exit 2.
    let out = run(&["status", inventory, "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["kind"], "no_run", "{error}");
    assert_eq!(error["exit_code"], 2);

    assert_success(&run(&["apply", inventory, "--yes"]), "apply");
    let out = run(&["status", inventory, "--json"]);
    assert_success(&out, "status --json");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["schema"], 1);
    assert_eq!(status["state"], "finished");
    assert_eq!(status["procedure"], "standard");
    assert_eq!(
        (status["from"].as_str(), status["to"].as_str()),
        (Some("0.9.0"), Some("0.10.1"))
    );
    let steps = status["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["id"], "cluster-healthy");
    for step in steps {
        for host in step["hosts"].as_array().unwrap() {
            assert!(
                matches!(host["state"].as_str(), Some("done" | "done_by_check")),
                "{host}"
            );
        }
    }

    let out = run(&["runs", inventory, "--json"]);
    assert_success(&out, "runs --json");
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs["schema"], 1);
    assert_eq!(runs["runs"][0]["id"], status["run_id"]);
    assert_eq!(runs["runs"][0]["state"], "finished");
}

/// The JSON lines of `apply --json`'s stdout, each checked against docs/events.md: schema 1,
/// a known event with its fields; the last line may be the command's error object.
pub(crate) fn events(stdout: &str) -> Vec<serde_json::Value> {
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        if line.get("event").is_none() && line.get("error").is_some() {
            assert!(
                line["kind"].is_string() && line["exit_code"].is_u64(),
                "{line}"
            );
            continue;
        }
        assert_eq!(line["schema"], 1, "{line}");
        let has = |fields: &[&str]| fields.iter().all(|f| line.get(*f).is_some());
        let known = match line["event"].as_str() {
            Some("run_started") => has(&[
                "run_id",
                "cluster",
                "procedure",
                "from",
                "to",
                "resumed",
                "hosts",
                "steps",
            ]),
            Some("step") => has(&["index", "total", "step", "name"]),
            Some("host_step") => {
                let state = line["state"].as_str().unwrap_or_default();
                has(&["step", "host", "state"])
                    && [
                        "started",
                        "already_done",
                        "done_by_check",
                        "waiting",
                        "finished",
                        "failed",
                    ]
                    .contains(&state)
                    && (state != "started" || has(&["attempt"]))
                    && (!matches!(state, "finished" | "failed") || has(&["elapsed_ms"]))
                    && (state != "failed" || has(&["error", "stderr_tail"]))
            }
            Some("run_finished") => has(&["elapsed_ms"]),
            Some("run_stopped") => has(&["elapsed_ms", "error", "kind", "exit_code"]),
            _ => false,
        };
        assert!(known, "not an event of docs/events.md: {line}");
    }
    lines
}

#[test]
fn apply_json_streams_every_event_as_a_json_line_and_ends_with_the_outcome() {
    let lab = Lab::up(3, "0.9.0", 4);
    let inventory = lab.inventory();
    let out = run(&["apply", inventory.to_str().unwrap(), "--yes", "--json"]);
    assert_success(&out, "apply --json");
    let lines = events(&text(&out.stdout));
    assert_eq!(lines[0]["event"], "run_started");
    assert_eq!(lines[0]["procedure"], "standard");
    assert_eq!(lines.last().unwrap()["event"], "run_finished");
    let finished = lines
        .iter()
        .filter(|l| l["event"] == "host_step" && l["state"] == "finished")
        .count();
    assert_eq!(finished, 3 * 10, "every step on every host");
    // The views for people went to stderr.
    assert!(text(&out.stderr).contains("Procedure: standard"));
    assert!(text(&out.stderr).contains("finished (ran "));

    // A failing run: its stream ends with the stop, then the error; exit 1.
    let lab = Lab::up(3, "0.9.0", 4);
    let (plan, _, _) = plan_then_corrupt_the_release(&lab);
    let out = run(&["apply", plan.to_str().unwrap(), "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines = events(&text(&out.stdout));
    let stopped = &lines[lines.len() - 2];
    assert_eq!(stopped["event"], "run_stopped", "{stopped}");
    assert_eq!(stopped["kind"], "step_failed");
    assert!(lines
        .iter()
        .any(|l| l["state"] == "failed" && l["step"] == "upload-service"));
    assert_eq!(lines.last().unwrap()["exit_code"], 1);

    // Invalid input: one JSON error, exit 2, nothing else on stdout.
    let out = run(&["apply", "/nonexistent/inventory.yaml", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let lines = events(&text(&out.stdout));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "invalid_inventory");
}
