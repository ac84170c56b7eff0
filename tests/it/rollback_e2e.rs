//! `cluster-upgrade rollback` end to end against `cluster-lab` (stand-in peers on real sshd):
//! a rolling 1.0.8 → 1.1.6 undone under writes with N−1 peers answering throughout; a run
//! killed after `install-release` on h1 abandoned and undone on h1 alone; a raft 0.9 → 0.10 whose
//! `daemon --upgrade` migrated the state undone with raft.old.0, pins changed since kept; a
//! staged 0.9 → 0.10 → 1.0.8 undone by rebuilding the raft cluster from its first export; SIGKILL of the rollback as each of its steps starts, then `rollback`
//! again.

use crate::apply_e2e::events;
use crate::rolling_e2e::assert_one_peer_at_a_time_in;
use crate::support::{
    assert_no_step_finished_twice, assert_success, journals_by_run, kill_as_each_starts, run,
    start_until, text, Lab,
};
use crate::traffic::{lab_apis, under_traffic};

const FROM: &str = "1.0.8";
const TO: &str = "1.1.6";

fn rollback(lab: &Lab, extra: &[&str]) -> std::process::Output {
    let inventory = lab.inventory();
    let mut args = vec!["rollback", inventory.to_str().unwrap(), "--yes"];
    args.extend_from_slice(extra);
    run(&args)
}

fn apply(lab: &Lab) -> std::process::Output {
    run(&["apply", lab.inventory().to_str().unwrap(), "--yes"])
}

/// The run ids of the lab's state directory, oldest first, with their journals.
fn runs(lab: &Lab) -> Vec<(String, String)> {
    journals_by_run(&lab.path().join(".cluster-upgrade"))
        .into_iter()
        .collect()
}

/// The hosts on which `step` started in `journal`.
fn started_on(journal: &str, step: &str) -> Vec<String> {
    let needle = format!("\"event\":\"step_started\",\"step\":\"{step}\"");
    let mut hosts: Vec<String> = journal
        .lines()
        .filter(|line| line.contains(&needle))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|r| r["host"].as_str().unwrap_or_default().to_string())
        .collect();
    hosts.dedup();
    hosts
}

#[test]
fn a_rolling_upgrade_is_rolled_back_one_peer_at_a_time_under_writes_keeping_every_pin() {
    let lab = Lab::up_with(3, FROM, 10, &["--target", TO]);
    assert_success(&apply(&lab), "the rolling upgrade");
    lab.assert_cluster(TO, 3, 10);
    let upgrade = runs(&lab)[0].0.clone();

    let apis = lab_apis(lab.path());
    let out = under_traffic("rollback 1.1.6 → 1.0.8 of 3 peers", &apis, || {
        rollback(&lab, &[])
    });
    assert_success(&out, "rollback under traffic");
    let shown = text(&out.stdout);
    assert!(shown.contains("Procedure: rollback"), "{shown}");
    assert!(
        shown.contains("touched 3 of 3 peers: h1, h2, h3"),
        "{shown}"
    );
    assert!(shown.contains("Expected downtime: none"), "{shown}");
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some(FROM), "{host:?}");
        assert!(host.running, "{host:?}");
        assert_eq!(host.peers, Some(3), "{host:?}");
    }
    let all = runs(&lab);
    assert_eq!(all.len(), 2, "the rollback is a run of its own");
    assert_one_peer_at_a_time_in(&all[1].1, &["h1", "h2", "h3"]);

    // `runs` links it to the run it undid; a second rollback is refused and changes nothing.
    let listed = run(&["runs", lab.inventory().to_str().unwrap(), "--json"]);
    assert_success(&listed, "runs");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed["runs"][1]["procedure"],
        format!("rollback of {upgrade}"),
        "{listed}"
    );
    let again = rollback(&lab, &[]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains(&format!(
            "run {upgrade} was already rolled back by run {}",
            all[1].0
        )),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(runs(&lab).len(), 2, "no run was started");
    // As JSON: the refusal is the one line on stdout.
    let again = rollback(&lab, &["--json"]);
    assert_eq!(again.status.code(), Some(3));
    let lines = events(&text(&again.stdout));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "refused");
}

#[test]
fn rollback_json_streams_the_run_as_events_naming_the_run_it_undoes() {
    let lab = Lab::up_with(3, FROM, 5, &["--target", TO]);
    assert_success(&apply(&lab), "the rolling upgrade");
    let upgrade = runs(&lab)[0].0.clone();
    let out = rollback(&lab, &["--json"]);
    assert_success(&out, "rollback --json");
    let lines = events(&text(&out.stdout));
    assert_eq!(lines[0]["event"], "run_started");
    assert_eq!(lines[0]["procedure"], "rollback");
    assert_eq!(lines[0]["undoes"], upgrade.as_str());
    assert_eq!(
        (lines[0]["from"].as_str(), lines[0]["to"].as_str()),
        (Some(TO), Some(FROM))
    );
    assert_eq!(lines.last().unwrap()["event"], "run_finished");
    assert!(
        text(&out.stderr).contains("Procedure: rollback"),
        "the views for people go to stderr"
    );
    lab.assert_cluster(FROM, 3, 5);
}

#[test]
fn a_run_killed_after_install_release_on_h1_is_abandoned_and_undone_on_h1_alone() {
    let lab = Lab::up_with(3, FROM, 10, &["--target", TO]);
    let state = lab.path().join(".cluster-upgrade");
    let inventory = lab.inventory();
    let args = ["apply", inventory.to_str().unwrap(), "--yes"];
    // Killed as h1's `start-peer` starts: h1 is stopped with the new binaries installed.
    let mut child = start_until(&args, &state, "start-peer", 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let upgrade = runs(&lab)[0].0.clone();

    // Unfinished: rollback of another run is refused, naming the unfinished one.
    let refused = rollback(&lab, &["20260101T000000Z-0000"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains(&format!("run {upgrade} of this cluster is unfinished")),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(runs(&lab).len(), 1, "no run was started");

    // Rolled back without more ado: the run is abandoned (journalled) once confirmed.
    let out = rollback(&lab, &[]);
    assert_success(&out, "rollback of the unfinished run");
    let upgrade_journal = &runs(&lab)[0].1;
    assert!(
        upgrade_journal
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"event\":\"run_abandoned\"")),
        "{upgrade_journal}"
    );
    assert!(
        text(&out.stdout).contains("touched 1 of 3 peers: h1\n"),
        "{}",
        text(&out.stdout)
    );
    let all = runs(&lab);
    let journal = &all.last().unwrap().1;
    for step in ["stop-peer", "restore-binaries", "start-peer", "peer-ready"] {
        assert_eq!(started_on(journal, step), ["h1"], "{step}");
    }
    lab.assert_cluster(FROM, 3, 10);
}

/// `runs prune INVENTORY --keep KEEP --yes`.
fn prune(lab: &Lab, keep: &str) -> std::process::Output {
    let inventory = lab.inventory();
    run(&[
        "runs",
        "prune",
        inventory.to_str().unwrap(),
        "--keep",
        keep,
        "--yes",
    ])
}

/// The CIDs `host` lists, sorted.
fn listed(lab: &Lab, host: &str) -> Vec<String> {
    let out = lab.ctl(host, &["pin", "ls"]);
    assert_success(&out, "pin ls");
    let mut cids: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    cids.sort();
    cids.dedup();
    cids
}

/// Adds a pin (the identity CID of `content`) on h1 and removes h1's first on h2, then waits
/// (up to `secs`) until every peer lists the result: the sorted CIDs returned.
fn change_pins(lab: &Lab, content: &[u8], secs: u64) -> Vec<String> {
    let before = listed(lab, "h1");
    let added = crate::traffic::identity_cid(content);
    assert_success(&lab.ctl("h1", &["pin", "add", &added]), "pin add");
    assert_success(&lab.ctl("h2", &["pin", "rm", &before[0]]), "pin rm");
    let mut expected: Vec<String> = before[1..].to_vec();
    expected.push(added);
    expected.sort();
    wait_until_listed(lab, "the pin changes", &expected, secs);
    expected
}

/// Waits (up to `secs`) until h1, h2 and h3 each list exactly `expected`.
fn wait_until_listed(lab: &Lab, what: &str, expected: &[String], secs: u64) {
    lab.wait_for(
        &format!("{what} on every peer"),
        std::time::Duration::from_secs(secs),
        |lab| {
            ["h1", "h2", "h3"]
                .iter()
                .all(|h| listed(lab, h) == expected)
        },
    );
}

#[test]
fn a_raft_upgrade_that_migrated_the_state_is_undone_with_its_raft_old_0_keeping_pins_added_since() {
    let lab = Lab::up(3, "0.9.0", 5);
    assert_success(&apply(&lab), "the standard 0.9 → 0.10 upgrade");
    let target = lab.status()[0].version.clone().unwrap();
    assert_ne!(target, "0.9.0");
    // After the upgrade: one pin added, one of the first five removed.
    let expected = change_pins(&lab, b"added after the upgrade", 30);

    let out = rollback(&lab, &[]);
    assert_success(&out, "rollback of the raft upgrade");
    let shown = text(&out.stdout);
    assert!(
        shown.contains("moved the raft state of h1, h2, h3 from format 5 to 6"),
        "{shown}"
    );
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some("0.9.0"), "{host:?}");
        assert!(host.running, "{host:?}");
        assert_eq!(host.peers, Some(3), "{host:?}");
    }
    for host in ["h1", "h2", "h3"] {
        assert_eq!(
            listed(&lab, host),
            expected,
            "{host} lists the pinset of before the rollback"
        );
        let kept: Vec<String> = std::fs::read_dir(lab.home(host).join(".ipfs-cluster"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("raft.before-rollback-"))
            .collect();
        assert_eq!(
            kept.len(),
            1,
            "{host} keeps the migrated state beside: {kept:?}"
        );
    }
    // A second rollback is refused; the run is undone.
    let again = rollback(&lab, &[]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already rolled back"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn a_crdt_upgrade_across_a_protocol_change_is_undone_through_its_export_keeping_pins_changed_since()
{
    let lab = Lab::up_with(3, "0.14.5", 5, &["--target", "1.0.8"]);
    assert_success(
        &apply(&lab),
        "the standard 0.14.5 → 1.0.8 upgrade of crdt peers",
    );
    lab.assert_cluster("1.0.8", 3, 5);
    // After the upgrade: one pin added, one of the first five removed.
    let expected = change_pins(&lab, b"added after the crdt upgrade", 60);

    let out = rollback(&lab, &[]);
    assert_success(&out, "rollback across the protocol change");
    let shown = text(&out.stdout);
    assert!(
        shown.contains(
            "0.14.5 and 1.0.8 speak different RPC protocols, so no peer can go back alone"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("the state h1 exported with 0.14.5"),
        "{shown}"
    );
    let all = runs(&lab);
    let journal = &all.last().unwrap().1;
    assert_eq!(started_on(journal, "import-export"), ["h1"]);
    let mut cleaned = started_on(journal, "clean-states");
    cleaned.sort();
    assert_eq!(cleaned, ["h1", "h2", "h3"]);
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some("0.14.5"), "{host:?}");
        assert!(host.running, "{host:?}");
        assert_eq!(host.peers, Some(3), "{host:?}");
    }
    wait_until_listed(&lab, "the pinset of before the rollback", &expected, 60);
}

#[test]
fn a_staged_upgrade_is_undone_by_rebuilding_the_raft_cluster_from_its_first_export_keeping_pins_changed_since(
) {
    let lab = Lab::up_with(3, "0.9.0", 5, &["--target", "1.0.8"]);
    assert_success(&apply(&lab), "the staged 0.9 → 0.10 → 1.0.8 upgrade");
    lab.assert_cluster("1.0.8", 3, 5);
    // After the upgrade: one pin added, one of the first five removed.
    let expected = change_pins(&lab, b"added after the staged upgrade", 30);

    let out = rollback(&lab, &[]);
    assert_success(&out, "rollback of the staged upgrade");
    let shown = text(&out.stdout);
    assert!(
        shown.contains("it went through intermediate releases (0.10"),
        "{shown}"
    );
    assert!(
        shown.contains("the cluster is rebuilt from the state h1 exported with 0.9.0"),
        "{shown}"
    );
    let all = runs(&lab);
    let journal = &all.last().unwrap().1;
    assert_eq!(started_on(journal, "import-raft-export"), ["h1"]);
    assert_eq!(started_on(journal, "bootstrap-others"), ["h2", "h3"]);
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some("0.9.0"), "{host:?}");
        assert!(host.running, "{host:?}");
        assert_eq!(host.peers, Some(3), "{host:?}");
    }
    wait_until_listed(&lab, "the pinset of before the rollback", &expected, 60);
}

#[test]
fn killed_as_each_rollback_step_starts_rollback_again_finishes_with_every_pin() {
    let lab = Lab::up_with(3, FROM, 10, &["--target", TO]);
    assert_success(&apply(&lab), "the rolling upgrade");
    let state = lab.path().join(".cluster-upgrade");
    let inventory = lab.inventory();
    let args = ["rollback", inventory.to_str().unwrap(), "--yes"];
    kill_as_each_starts(
        &args,
        &state,
        &[
            "verify-backup",
            "cluster-whole",
            "stop-peer",
            "restore-binaries",
            "start-peer",
            "peer-ready",
        ],
    );
    let out = rollback(&lab, &[]);
    assert_success(&out, "rollback after the kills");
    lab.assert_cluster(FROM, 3, 10);
    let all = runs(&lab);
    assert_eq!(all.len(), 2, "one rollback run, resumed");
    let records: Vec<serde_json::Value> = all[1]
        .1
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_no_step_finished_twice(&records);
    assert_one_peer_at_a_time_in(&all[1].1, &["h1", "h2", "h3"]);
}

#[test]
fn killed_as_each_step_of_a_raft_rebuild_starts_rollback_again_finishes_with_every_pin() {
    let lab = Lab::up_with(3, "0.9.0", 5, &["--target", "1.0.8"]);
    assert_success(&apply(&lab), "the staged 0.9 → 0.10 → 1.0.8 upgrade");
    let expected = change_pins(&lab, b"added before a killed rollback", 30);
    let state = lab.path().join(".cluster-upgrade");
    let inventory = lab.inventory();
    let args = ["rollback", inventory.to_str().unwrap(), "--yes"];
    kill_as_each_starts(
        &args,
        &state,
        &[
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
            "pins-back",
        ],
    );
    let out = rollback(&lab, &[]);
    assert_success(&out, "rollback after the kills");
    for host in lab.status() {
        assert_eq!(host.version.as_deref(), Some("0.9.0"), "{host:?}");
        assert_eq!(host.peers, Some(3), "{host:?}");
    }
    wait_until_listed(&lab, "the pinset of before the rollback", &expected, 60);
    let all = runs(&lab);
    assert_eq!(all.len(), 2, "one rollback run, resumed");
    let records: Vec<serde_json::Value> = all[1]
        .1
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_no_step_finished_twice(&records);
}

#[test]
fn runs_prune_removes_what_runs_beyond_the_newest_n_left_and_keeps_their_history() {
    let lab = Lab::up_with(3, FROM, 5, &["--target", TO]);
    assert_success(&apply(&lab), "the rolling upgrade");
    assert_success(&rollback(&lab, &[]), "the rollback");
    let all = runs(&lab);
    let (upgrade, undo) = (all[0].0.clone(), all[1].0.clone());
    let bin = |host: &str| lab.home(host).join("bin");
    let backup_of = |host: &str, run: &str| bin(host).join(".cluster-upgrade/backup").join(run);
    assert!(
        backup_of("h1", &upgrade).is_dir(),
        "the upgrade kept the binaries"
    );
    let controller = lab.path().join(".cluster-upgrade/runs");
    assert!(controller.join(&upgrade).join("backups").is_dir());

    let inventory = lab.inventory();
    let out = prune(&lab, "1");
    assert_success(&out, "runs prune --keep 1");
    let shown = text(&out.stdout);
    assert!(shown.contains(&format!("  {upgrade}\n")), "{shown}");
    assert!(shown.contains(&format!("Kept: {undo}")), "{shown}");
    for host in ["h1", "h2", "h3"] {
        assert!(!backup_of(host, &upgrade).exists(), "{host}");
        assert!(
            bin(host).join("ipfs-cluster-service.prev").exists(),
            "{host}"
        );
    }
    assert!(!controller.join(&upgrade).join("backups").exists());
    assert!(
        controller.join(&upgrade).join("journal.jsonl").is_file(),
        "the history stays"
    );
    let listed = run(&["runs", inventory.to_str().unwrap()]);
    assert!(
        text(&listed.stdout).contains(&upgrade),
        "{}",
        text(&listed.stdout)
    );

    // Nothing more to prune with --keep 1; --keep 0 also takes the *.prev binaries.
    let again = prune(&lab, "1");
    assert_success(&again, "runs prune again");
    assert!(
        text(&again.stdout).starts_with("Nothing to prune"),
        "{}",
        text(&again.stdout)
    );
    let all_gone = prune(&lab, "0");
    assert_success(&all_gone, "runs prune --keep 0");
    for host in ["h1", "h2", "h3"] {
        assert!(
            !bin(host).join("ipfs-cluster-service.prev").exists(),
            "{host}"
        );
        assert!(
            bin(host).join("ipfs-cluster-service").is_file(),
            "{host}: the binary stays"
        );
    }
    lab.assert_cluster(FROM, 3, 5);
}

#[test]
fn a_host_whose_backup_is_gone_gets_the_previous_release_from_the_release_source() {
    let lab = Lab::up_with(3, FROM, 5, &["--target", TO]);
    assert_success(&apply(&lab), "the rolling upgrade");
    let upgrade = runs(&lab)[0].0.clone();
    let backup = lab
        .home("h2")
        .join("bin/.cluster-upgrade/backup")
        .join(&upgrade);
    std::fs::remove_dir_all(&backup).unwrap();

    // Without the release in the source either: refused, nothing changes.
    let sums = lab.path().join("releases").join(FROM).join("SHA256SUMS");
    let kept = std::fs::read(&sums).unwrap();
    std::fs::remove_file(&sums).unwrap();
    let refused = rollback(&lab, &[]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains(&format!(
            "the backup of run {upgrade} is gone from h2 and the release source"
        )),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(runs(&lab).len(), 1, "no run was started");
    lab.assert_cluster(TO, 3, 5);

    // With it: h2 gets 1.0.8 from the source, checked against its sums; the others their backup.
    std::fs::write(&sums, kept).unwrap();
    let out = rollback(&lab, &[]);
    assert_success(&out, "rollback with h2's backup gone");
    assert!(
        text(&out.stdout).contains("that backup is gone from h2"),
        "{}",
        text(&out.stdout)
    );
    let all = runs(&lab);
    let journal = &all.last().unwrap().1;
    assert_eq!(started_on(journal, "upload-service"), ["h2"]);
    assert_eq!(started_on(journal, "restore-binaries"), ["h1", "h2", "h3"]);
    lab.assert_cluster(FROM, 3, 5);
}

/// `keep-previous` records the SHA-256 sums of the binaries it backs up; a rollback reads them
/// when it is planned (and shows that it will check them) and refuses, before any peer stops,
/// a backup that differs from them, although the altered binary still runs and reports the
/// previous release.
#[test]
fn a_backup_that_differs_from_the_sums_its_run_recorded_is_refused_before_any_peer_stops() {
    let lab = Lab::up_with(3, FROM, 5, &["--target", TO]);
    assert_success(&apply(&lab), "the rolling upgrade");
    let upgrade = runs(&lab)[0].0.clone();
    let backup = |host: &str| {
        lab.home(host)
            .join("bin/.cluster-upgrade/backup")
            .join(&upgrade)
    };
    let recorded = std::fs::read_to_string(backup("h2").join("SHA256SUMS")).unwrap();
    assert_eq!(recorded.lines().count(), 2, "{recorded}");
    assert!(recorded.contains("  ipfs-cluster-service\n"), "{recorded}");

    // Other bytes, same release: the stand-in's release trailer (JSON, then its length as a
    // little-endian u32 and a 16-byte magic, at the end of the executable) written again,
    // pretty-printed. The binary still runs and reports 1.0.8.
    let service = backup("h2").join("ipfs-cluster-service");
    let bytes = std::fs::read(&service).unwrap();
    let (rest, magic) = bytes.split_at(bytes.len() - 16);
    let (rest, length) = rest.split_at(rest.len() - 4);
    let length = u32::from_le_bytes(length.try_into().unwrap()) as usize;
    let (program, body) = rest.split_at(rest.len() - length);
    let trailer: serde_json::Value = serde_json::from_slice(body).unwrap();
    let body = serde_json::to_vec_pretty(&trailer).unwrap();
    assert_ne!(body.len(), length, "the trailer is written differently");
    let mut altered = program.to_vec();
    altered.extend_from_slice(&body);
    altered.extend_from_slice(&(body.len() as u32).to_le_bytes());
    altered.extend_from_slice(magic);
    std::fs::write(&service, altered).unwrap();
    let version = std::process::Command::new(&service)
        .arg("--version")
        .output()
        .unwrap();
    assert!(text(&version.stdout).contains(FROM), "{version:?}");

    let out = rollback(&lab, &[]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&format!(
            "on h1, h2, h3: against the SHA-256 sums run {upgrade} recorded with its backup"
        )),
        "{}",
        text(&out.stdout)
    );
    // The run's table names the failure with the command's stderr.
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!(
            "the backup of run {upgrade} differs from the SHA-256 sums its keep-previous step recorded"
        )),
        "{shown}"
    );
    assert!(
        text(&out.stderr).contains("step `verify-backup` failed on h2"),
        "{}",
        text(&out.stderr)
    );
    let all = runs(&lab);
    let journal = &all.last().unwrap().1;
    let mut verified = started_on(journal, "verify-backup");
    verified.sort();
    assert_eq!(verified, ["h1", "h2", "h3"], "a parallel step");
    assert!(started_on(journal, "stop-peer").is_empty(), "{journal}");
    lab.assert_cluster(TO, 3, 5);
}
