//! The rolling procedure end to end against `cluster-lab` (stand-in peers on real sshd): chosen
//! inside one RPC protocol (1.0.8 → 1.1.6), one peer at a time, the others serving while a
//! writer adds a pin every 50 ms and a poller asks every peer every 50 ms; SIGKILL of
//! cluster-upgrade as each rolling step starts, then `apply` again.

use crate::support::{
    assert_no_step_finished_twice, assert_roll_stopped_by_crash, assert_success,
    kill_as_each_starts, records, run, text, Lab,
};
use crate::traffic::{lab_apis, under_traffic};

const FROM: &str = "1.0.8";
const TO: &str = "1.1.6";
const ROLLING_STEPS: [&str; 6] = [
    "cluster-whole",
    "stop-peer",
    "export-state",
    "install-release",
    "start-peer",
    "peer-ready",
];

fn lab(peers: usize, pins: usize) -> Lab {
    Lab::up_with(peers, FROM, pins, &["--target", TO])
}

fn apply(lab: &Lab) -> std::process::Output {
    let inventory = lab.inventory();
    run(&["apply", inventory.to_str().unwrap(), "--yes"])
}

/// Each peer is stopped only once the previous one is back (ready) on the target.
fn assert_one_peer_at_a_time(lab: &Lab, hosts: &[&str]) {
    assert_one_peer_at_a_time_in(&lab.journal_text(), hosts);
}

/// As [`assert_one_peer_at_a_time`], in one run's `journal`.
pub(crate) fn assert_one_peer_at_a_time_in(journal: &str, hosts: &[&str]) {
    let records = records(journal);
    let at = |event: &str, step: &str, host: &str| {
        records
            .iter()
            .position(|(e, s, h)| e == event && s == step && h == host)
            .unwrap_or_else(|| panic!("no {event} of {step} on {host}"))
    };
    for pair in hosts.windows(2) {
        assert!(
            at("step_finished", "peer-ready", pair[0]) < at("step_started", "stop-peer", pair[1]),
            "{} was stopped before {} was ready again",
            pair[1],
            pair[0]
        );
    }
}

#[test]
fn inside_one_rpc_protocol_the_rolling_procedure_is_chosen_with_no_downtime() {
    let lab = lab(3, 10);
    let inventory = lab.inventory();
    let out = run(&["plan", inventory.to_str().unwrap()]);
    assert_success(&out, "plan");
    let shown = text(&out.stdout);
    assert!(shown.contains("Procedure: rolling"), "{shown}");
    assert!(shown.contains("speak /ipfscluster/1.0/rpc"), "{shown}");
    assert!(shown.contains("Expected downtime: none"), "{shown}");
    assert!(
        shown.contains("(rolling, each peer in turn: h1, h2, h3)"),
        "{shown}"
    );

    let out = apply(&lab);
    assert_success(&out, "apply");
    assert!(
        text(&out.stdout).contains("rolling procedure, 1.0.8 → 1.1.6, finished"),
        "{}",
        text(&out.stdout)
    );
    lab.assert_cluster(TO, 3, 10);
    assert_one_peer_at_a_time(&lab, &["h1", "h2", "h3"]);
}

fn rolled_under_traffic(peers: usize) {
    let lab = lab(peers, 10);
    let apis = lab_apis(lab.path());
    let label = format!("rolling {FROM} → {TO} of {peers} peers");
    let out = under_traffic(&label, &apis, || apply(&lab));
    assert_success(&out, "apply under traffic");
    let hosts: Vec<String> = (1..=peers).map(|i| format!("h{i}")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    assert_one_peer_at_a_time(&lab, &hosts);
}

#[test]
fn a_rolling_upgrade_of_3_peers_under_writes_keeps_n_minus_1_answering_and_every_pin() {
    rolled_under_traffic(3);
}

#[test]
fn a_rolling_upgrade_of_5_peers_under_writes_keeps_n_minus_1_answering_and_every_pin() {
    rolled_under_traffic(5);
}

#[test]
fn killed_as_each_rolling_step_starts_apply_finishes_with_every_pin() {
    let lab = lab(3, 10);
    let state = lab.path().join(".cluster-upgrade");
    let inventory = lab.inventory();
    let args = ["apply", inventory.to_str().unwrap(), "--yes"];
    kill_as_each_starts(&args, &state, &ROLLING_STEPS);
    let out = apply(&lab);
    assert_success(&out, "apply after the kills");
    lab.assert_cluster(TO, 3, 10);
    let records: Vec<serde_json::Value> = lab
        .journal_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_no_step_finished_twice(&records);
    assert_one_peer_at_a_time(&lab, &["h1", "h2", "h3"]);
}

#[test]
fn rolling_is_refused_across_a_protocol_change_with_the_reason() {
    let lab = Lab::up(3, "0.9.0", 2);
    let inventory = lab.inventory();
    let out = run(&[
        "plan",
        inventory.to_str().unwrap(),
        "--procedure",
        "rolling",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rolling procedure (one peer at a time) is unsafe"),
        "{stderr}"
    );
    assert!(stderr.contains("the RPC protocol changes"), "{stderr}");
    let out = run(&["plan", inventory.to_str().unwrap()]);
    assert_success(&out, "plan");
    assert!(text(&out.stdout).contains("Procedure: standard"));
    assert!(text(&out.stdout).contains("not rolled: the RPC protocol changes"));
}

/// Peers whose CRDT merge was cut short by the roll's stop (the stand-in models what real
/// 1.0.8 → 1.1.6 peers did, ADR 0015: started on 1.1.6 they lack the pins they were merging,
/// for good) are resynced by the run itself, one peer at a time, and the run succeeds with every
/// acknowledged pin on every peer (ADR 0019). Two of the three lose pins: one peer that lacks
/// none is enough to resync them from (seen with 5 real peers, three of which lost pins).
#[test]
fn peers_that_lost_pins_in_the_roll_are_resynced_by_the_run_and_every_pin_kept() {
    let lab = lab(3, 10);
    for (host, pins) in [("h2", "3"), ("h3", "4")] {
        let fault = lab.lab(&["fault", "interrupted-merge", host, "--pins", pins]);
        assert_success(&fault, "cluster-lab fault interrupted-merge");
    }
    let apis = lab_apis(lab.path());
    let out = under_traffic("rolling with diverging peers", &apis, || apply(&lab));
    assert_success(&out, "apply with diverging peers");
    let stderr = text(&out.stderr);
    // One peer per round, each judged on a check made after the previous resync.
    assert!(
        stderr.contains("resyncing h2, then checking again: h2 still lacks 3 pin(s)")
            && stderr.contains("; h3 still lacks 4 pin(s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("resyncing h3, then checking again: h3 still lacks 4 pin(s)"),
        "{stderr}"
    );
    let journal = lab.journal_text();
    let records = records(&journal);
    let picked: Vec<&(String, String, String)> = records
        .iter()
        .filter(|(event, _, _)| event == "on_demand_picked")
        .collect();
    assert_eq!(picked.len(), 2, "{journal}");
    for step in [
        "resync-stop",
        "resync-cleanup",
        "resync-start",
        "resync-ready",
    ] {
        let on: Vec<&str> = records
            .iter()
            .filter(|(e, s, _)| e == "step_finished" && s == step)
            .map(|(_, _, h)| h.as_str())
            .collect();
        assert_eq!(on, ["h2", "h3"], "{step} ran on h2 and h3");
    }
    assert_one_peer_at_a_time(&lab, &["h1", "h2", "h3"]);
    // The resync came after the roll, which had put h3 back before it stopped h2 again.
    let at = |event: &str, step: &str, host: &str| {
        records
            .iter()
            .position(|(e, s, h)| e == event && s == step && h == host)
            .unwrap()
    };
    assert!(at("step_finished", "peer-ready", "h3") < at("step_started", "resync-stop", "h2"));
    let status = run(&["status", lab.inventory().to_str().unwrap()]);
    assert_success(&status, "status");
    assert!(
        text(&status.stdout).contains("resync-cleanup"),
        "the run's table shows the resync: {}",
        text(&status.stdout)
    );
}

/// SIGKILL of cluster-upgrade as each step of a resync starts, then `apply` again: the resumed
/// run finishes the resync of the peer its journal picked, and every pin is kept.
#[test]
fn killed_as_each_resync_step_starts_apply_finishes_the_resync_with_every_pin() {
    let lab = lab(3, 10);
    let fault = lab.lab(&["fault", "interrupted-merge", "h2", "--pins", "3"]);
    assert_success(&fault, "cluster-lab fault interrupted-merge");
    let state = lab.path().join(".cluster-upgrade");
    let inventory = lab.inventory();
    let args = ["apply", inventory.to_str().unwrap(), "--yes"];
    let apis = lab_apis(lab.path());
    let out = under_traffic("killed during a resync", &apis, || {
        kill_as_each_starts(
            &args,
            &state,
            &[
                "resync-cluster-whole",
                "resync-stop",
                "resync-cleanup",
                "resync-start",
                "resync-ready",
            ],
        );
        apply(&lab)
    });
    assert_success(&out, "apply after the kills");
    let records: Vec<serde_json::Value> = lab
        .journal_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_no_step_finished_twice(&records);
    let picked = records
        .iter()
        .filter(|r| r["event"] == "on_demand_picked")
        .count();
    assert_eq!(picked, 1, "the resync was picked once, then resumed");
    let status = lab.status();
    assert!(status
        .iter()
        .all(|h| h.version.as_deref() == Some(TO) && h.running));
}

/// A peer that crashes as it starts on the new release (real 1.0.8/1.1.6 peers do, now and
/// then: a nil RPC client when the API is asked too early; the stand-in crashes on demand) is
/// not waited for until `peer-ready`'s 5-minute deadline: its `fail_when` sees that the peer
/// exited, and the run stops at once with the peer's panic, before any other peer is stopped.
/// Started again by hand, `apply` resumes and finishes with every pin.
#[test]
fn a_peer_that_crashes_as_it_starts_stops_the_roll_at_once_with_its_log_and_a_resume_finishes() {
    let lab = lab(3, 10);
    let fault = lab.lab(&["fault", "crash-at-start", "h2"]);
    assert_success(&fault, "cluster-lab fault crash-at-start");

    let out = apply(&lab);
    assert_roll_stopped_by_crash(
        &lab,
        &out,
        "the peer is not running: it exited with status 2; from its log:",
        ("h2", "h3"),
    );
    assert!(
        text(&out.stderr).contains("before its deadline of 5m"),
        "{}",
        text(&out.stderr)
    );

    lab.start_peer_by_hand("h2");
    let resumed = apply(&lab);
    assert_success(&resumed, "apply, resumed");
    lab.assert_cluster(TO, 3, 10);
    assert_one_peer_at_a_time(&lab, &["h1", "h2", "h3"]);
}
