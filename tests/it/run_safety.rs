//! Run safety (issue 11), end to end against `cluster-lab`: a run acts only on the cluster it
//! was planned for, a resume re-verifies and asks, the plan is the whole contract, one run per
//! cluster across state directories, and nothing is touched on bad input or an unsafe state
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{
    assert_no_step_finished_twice, assert_success, cluster_upgrade, journals_by_run, journals_in,
    run, start_until, text, Lab,
};

/// The lab's inventory written into `folder` as `NAME.yaml`, its paths made absolute and its
/// cluster named `name`.
fn inventory_in(lab: &Lab, folder: &Path, name: &str) -> PathBuf {
    let lab_dir = lab.path().display().to_string();
    let text = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("  name: lab\n", &format!("  name: {name}\n"))
        .replace("path: releases", &format!("path: {lab_dir}/releases"))
        .replace(
            "known_hosts: known_hosts",
            &format!("known_hosts: {lab_dir}/known_hosts"),
        )
        .replace(
            "identity_file: id_ed25519",
            &format!("identity_file: {lab_dir}/id_ed25519"),
        );
    let path = folder.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn apply(inventory: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["apply", inventory.to_str().unwrap(), "--yes"];
    args.extend(extra);
    run(&args)
}

/// `ipfs-cluster-svc ACTION` of a lab host, run as the operator would on the host.
fn service(lab: &Lab, host: &str, action: &str) {
    let out = Command::new(lab.home(host).join("bin/ipfs-cluster-svc"))
        .arg(action)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{host} {action}: {}",
        text(&out.stderr)
    );
}

/// Connections and logins the hosts' sshd logged.
fn logins(lab: &Lab, hosts: &[&str]) -> usize {
    hosts
        .iter()
        .map(|h| {
            let log = lab.sshd_log(h);
            log.matches("Connection from").count() + log.matches("Accepted").count()
        })
        .sum()
}

#[test]
fn two_clusters_in_one_folder_never_share_a_run() {
    let prod = Lab::up(3, "0.9.0", 20);
    let staging = Lab::up(3, "0.9.0", 10);
    let folder = tempfile::tempdir().unwrap();
    let prod_inventory = inventory_in(&prod, folder.path(), "prod");
    let staging_inventory = inventory_in(&staging, folder.path(), "staging");
    let state = folder.path().join(".cluster-upgrade");
    let prod_args = ["apply", prod_inventory.to_str().unwrap(), "--yes"];

    // Interrupted at a first point: right after every peer was stopped.
    let mut child = start_until(&prod_args, &state, "export-state", 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let prod_journals = journals_by_run(&state);

    // Staging is upgraded, alone; prod's unfinished run is named, neither resumed nor blocking.
    let out = apply(&staging_inventory, &[]);
    assert_success(&out, "apply staging");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not resumed: run") && stderr.contains("cluster `prod`"),
        "{stderr}"
    );
    assert!(!stderr.contains("resuming run"), "{stderr}");
    staging.assert_cluster("0.10.1", 3, 10);
    for host in prod.status() {
        assert_eq!(host.version.as_deref(), Some("0.9.0"), "{host:?}");
        assert!(!host.running, "prod stays as interrupted: {host:?}");
    }
    // (Compared run by run: two runs started in one second may list in either order.)
    let after = journals_by_run(&state);
    for (run, journal) in &prod_journals {
        assert_eq!(
            after.get(run),
            Some(journal),
            "prod's journal of run {run} is untouched"
        );
    }

    // Two more interruptions of prod, each resumed by `apply prod.yaml` only; staging, now on
    // its target, is "nothing to do" in between.
    for step in ["install-release", "start-upgrade"] {
        let mut child = start_until(&prod_args, &state, step, 1);
        child.kill().unwrap();
        child.wait().unwrap();
        let out = apply(&staging_inventory, &[]);
        assert_success(&out, "apply staging again");
        assert!(
            text(&out.stdout).contains("No changes"),
            "{}",
            text(&out.stdout)
        );
    }
    let out = apply(&prod_inventory, &[]);
    assert_success(&out, "resume prod");
    assert!(
        text(&out.stderr).contains("resuming run"),
        "{}",
        text(&out.stderr)
    );
    prod.assert_cluster("0.10.1", 3, 20);
    staging.assert_cluster("0.10.1", 3, 10);

    // Every run keeps to its own cluster: the plan of each names its inventory.
    for run_dir in std::fs::read_dir(state.join("runs")).unwrap().flatten() {
        let plan: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run_dir.path().join("plan.json")).unwrap())
                .unwrap();
        let inventory = plan["inventory"].as_str().unwrap();
        assert!(Path::new(inventory).is_absolute(), "{inventory}");
        assert!(
            inventory.ends_with("prod.yaml") || inventory.ends_with("staging.yaml"),
            "{inventory}"
        );
    }
    assert_no_step_finished_twice(&prod.journal());
}

#[test]
fn a_bare_apply_with_unfinished_runs_of_two_clusters_refuses_and_names_them() {
    let prod = Lab::up(2, "0.9.0", 5);
    let staging = Lab::up(2, "0.9.0", 5);
    let folder = tempfile::tempdir().unwrap();
    let state = folder.path().join(".cluster-upgrade");
    for (lab, name) in [(&prod, "prod"), (&staging, "staging")] {
        let inventory = inventory_in(lab, folder.path(), name);
        let args = ["apply", inventory.to_str().unwrap(), "--yes"];
        let needle = "\"event\":\"step_started\",\"step\":\"keep-previous\"";
        let already = journals_in(&state).matches(needle).count();
        let mut child = start_until(&args, &state, "keep-previous", already + 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let out = Command::new(cluster_upgrade())
        .args(["apply", "--yes"])
        .current_dir(folder.path())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("runs of several clusters are unfinished")
            && stderr.contains("cluster `prod`")
            && stderr.contains("cluster `staging`"),
        "{stderr}"
    );
}

/// Runs `cluster-upgrade ARGS` on a pseudo-terminal (util-linux `script`), typing `answer`.
fn on_terminal(args: &[&str], answer: &str) -> Output {
    let command = std::iter::once(cluster_upgrade().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs a command on a pseudo-terminal");
    // Typed once the question is up: the pty keeps it until the program reads.
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_resume_shows_what_is_left_asks_and_refuses_options_it_cannot_honour() {
    let lab = Lab::up(3, "0.9.0", 15);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    lab.kill_when_started(&["apply", inventory, "--yes"], "install-release", 1);
    let journal = lab.journal_text();

    // Options that would change the plan are refused, not ignored.
    let out = run(&["apply", inventory, "--yes", "--var", "bin_dir=/elsewhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--var cannot be honoured"),
        "{}",
        text(&out.stderr)
    );

    // At a terminal it shows the cluster, the run, what is done and left, and asks.
    let out = on_terminal(&["apply", inventory], "n\n");
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "declined: {shown}");
    assert!(shown.contains("Resuming run"), "{shown}");
    assert!(shown.contains("of cluster `lab`"), "{shown}");
    assert!(shown.contains("Done: 7 of 10 steps"), "{shown}");
    assert!(
        shown.contains(
            "Swap in the new binaries (atomic rename in bin_dir) [destructive] (h1, h2, h3)"
        ),
        "{shown}"
    );
    assert!(shown.contains("[y/N]"), "{shown}");
    assert!(shown.contains("the operator declined"), "{shown}");
    assert_eq!(lab.journal_text(), journal, "nothing ran");

    let out = on_terminal(&["apply", inventory], "y\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    lab.assert_cluster("0.10.1", 3, 15);
    assert_no_step_finished_twice(&lab.journal());
}

#[test]
fn runs_are_listed_and_an_abandoned_run_frees_the_cluster() {
    let lab = Lab::up(3, "0.9.0", 12);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    lab.kill_when_started(&["apply", inventory, "--yes"], "keep-previous", 1);
    let run_id = lab.run_dirs()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    let out = run(&["runs", inventory]);
    assert_success(&out, "runs");
    let listing = text(&out.stdout);
    assert!(listing.starts_with("RUN "), "{listing}");
    let line = listing.lines().find(|l| l.starts_with(&run_id)).unwrap();
    for cell in ["lab (", "standard", "0.9.0 → 0.10.1", "unfinished"] {
        assert!(line.contains(cell), "{cell}: {line}");
    }

    // While it is unfinished, no other plan of the cluster is made.
    let out = run(&["plan", inventory]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("run {run_id} of this cluster is unfinished")),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["runs", "abandon", &run_id, inventory]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "asks first: {}",
        text(&out.stderr)
    );
    let out = run(&["runs", "abandon", &run_id, inventory, "--yes"]);
    assert_success(&out, "abandon");
    assert!(
        text(&out.stdout).contains("h1: done up to `upload-ctl`")
            || text(&out.stdout).contains("h1: done up to `verify-release`"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["runs", "abandon", &run_id, inventory, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "already abandoned");
    assert!(lab.journal_text().contains("\"event\":\"run_abandoned\""));
    assert!(text(&run(&["runs", inventory]).stdout).contains("abandoned"));

    // Now a plan is possible, and the new run takes over the abandoned run's lease.
    assert_success(&run(&["plan", inventory]), "plan after abandon");
    let out = run(&["apply", inventory, "--yes"]);
    assert_success(&out, "apply after abandon");
    assert!(
        text(&out.stderr).contains(&format!("took over the lease of run {run_id}")),
        "{}",
        text(&out.stderr)
    );
    lab.assert_cluster("0.10.1", 3, 12);
    assert!(
        lab.run_dirs()[0].exists(),
        "an abandoned run is never deleted"
    );
}

/// `apply --yes` of the lab's three hosts with the shipped playbooks, `keep-previous` slowed
/// down so that a test can act while it runs; returned once that step has started on every host
/// (with the playbooks' folder, which must outlive the run).
fn apply_during_keep_previous(lab: &Lab) -> (tempfile::TempDir, std::process::Child) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    for name in ["standard.yaml", "bootstrap.yaml"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        let text = text.replacen(
            "    command: |\n      mkdir -p {{ run.remote_backup_dir | quote }} || exit 1\n",
            "    command: |\n      sleep 2\n      mkdir -p {{ run.remote_backup_dir | quote }} || exit 1\n",
            1,
        );
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let inventory = lab.inventory();
    let args = [
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--playbooks",
        dir.path().to_str().unwrap(),
    ];
    let child = start_until(
        &args,
        &lab.path().join(".cluster-upgrade"),
        "keep-previous",
        3,
    );
    (dir, child)
}

/// The stderr of a run that its quorum gate stopped (exit code 3) before `stop-peers`.
fn stopped_before_stop_peers(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "stopped before `stop-peers`, which takes quorum away, with the cluster still up"
        ),
        "{stderr}"
    );
    stderr
}

#[test]
fn a_peer_that_dies_before_the_cluster_is_stopped_stops_the_run_with_the_cluster_up() {
    let lab = Lab::up(3, "0.9.0", 10);
    let inventory = lab.inventory();
    let (_playbooks, child) = apply_during_keep_previous(&lab);
    let killed = lab.lab(&["fault", "kill-peer", "h2"]);
    assert!(killed.status.success(), "{}", text(&killed.stderr));
    let stderr = stopped_before_stop_peers(child);
    assert!(stderr.contains("h2's peer no longer answers"), "{stderr}");
    assert!(
        !lab.journal_text().contains("\"step\":\"stop-peers\""),
        "no peer was stopped"
    );
    for host in lab.status() {
        assert_eq!(host.running, host.host != "h2", "{host:?}");
    }
    // Once the peer is back, the same run goes on.
    service(&lab, "h2", "start");
    lab.wait_for("h2 to answer", std::time::Duration::from_secs(30), |lab| {
        lab.status().iter().all(|h| h.running)
    });
    let out = run(&["apply", inventory.to_str().unwrap(), "--yes"]);
    assert_success(&out, "resume");
    lab.assert_cluster("0.10.1", 3, 10);
}

#[test]
fn a_pin_written_after_planning_stops_a_standard_upgrade_with_the_cluster_up() {
    let lab = Lab::up(3, "0.9.0", 10);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    let (_playbooks, child) = apply_during_keep_previous(&lab);
    let added = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    assert_success(&lab.ctl("h1", &["pin", "add", added]), "pin add");
    let stderr = stopped_before_stop_peers(child);
    assert!(
        stderr.contains("h1 lists 11 pins (")
            && stderr.contains("the cluster held 10 (")
            && stderr.contains("stop writing pins to the cluster"),
        "{stderr}"
    );
    assert!(
        !lab.journal_text().contains("\"step\":\"stop-peers\""),
        "no peer was stopped"
    );
    assert!(lab.status().iter().all(|h| h.running), "the cluster is up");
    // A resume carries the plan's pinset: it stops at the same place, still with the cluster up.
    let out = run(&["apply", inventory, "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(lab.status().iter().all(|h| h.running), "the cluster is up");
    // Abandoned, the run gives way to a plan with the pinset as it is now.
    let run_id = lab.run_dirs()[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_success(
        &run(&["runs", "abandon", &run_id, inventory, "--yes"]),
        "abandon",
    );
    assert_success(&run(&["apply", inventory, "--yes"]), "apply again");
    lab.assert_cluster("0.10.1", 3, 11);
}

#[test]
fn peers_started_by_hand_after_the_stop_are_noticed_by_the_resume() {
    let lab = Lab::up(3, "0.9.0", 10);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    lab.kill_when_started(&["apply", inventory, "--yes"], "export-state", 1);
    for host in ["h1", "h2", "h3"] {
        service(&lab, host, "start");
    }
    lab.wait_for(
        "the peers to answer",
        std::time::Duration::from_secs(30),
        |lab| lab.status().iter().all(|h| h.running),
    );
    let journal = lab.journal_text();
    let out = run(&["apply", inventory, "--yes"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("h1: `stop-peers` stopped its peer, but it is running now"),
        "{stderr}"
    );
    assert_eq!(lab.journal_text(), journal, "nothing ran, not even a check");
    for host in ["h1", "h2", "h3"] {
        service(&lab, host, "stop");
    }
    assert_success(
        &run(&["apply", inventory, "--yes"]),
        "resume once stopped again",
    );
    lab.assert_cluster("0.10.1", 3, 10);
}

/// SHA-256 of `bytes`, hex.
fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A saved plan with `edit` applied to its body and the seal made again, as a forger would.
fn forged(plan: &Path, edit: impl Fn(String) -> String) -> Vec<u8> {
    let text = std::fs::read_to_string(plan).unwrap();
    let cut = text.rfind(",\"digest\":\"").unwrap();
    let body = edit(format!("{}}}", &text[..cut]));
    let digest = sha256(body.as_bytes());
    format!("{},\"digest\":\"{digest}\"}}\n", &body[..body.len() - 1]).into_bytes()
}

#[test]
fn a_saved_plan_is_the_whole_contract_and_cannot_be_edited() {
    let lab = Lab::up(1, "0.9.0", 8);
    // The inventory names a wrong bin_dir; `--var` gives the right one (through another path
    // to it) to `plan`, which records it.
    let inventory = lab.inventory();
    let bin = lab.home("h1").join("bin");
    let aside = lab.path().join("h1-bin");
    std::os::unix::fs::symlink(&bin, &aside).unwrap();
    let text_of = std::fs::read_to_string(&inventory).unwrap().replacen(
        &format!("bin_dir: \"{}\"", bin.display()),
        "bin_dir: \"/nonexistent/bin\"",
        1,
    );
    std::fs::write(&inventory, &text_of).unwrap();
    let plan = lab.path().join("plan.json");
    let out = run(&[
        "plan",
        inventory.to_str().unwrap(),
        "--var",
        &format!("bin_dir={}", aside.display()),
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert_success(&out, "plan with --var");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(
        saved["reach"]["hosts"][0]["probe"]["bin_dir"],
        aside.display().to_string()
    );

    // A forged run id (a path out of the state directory) and an edited command are refused
    // before anything happens.
    let forged_id = lab.path().join("forged-id.json");
    std::fs::write(
        &forged_id,
        forged(&plan, |body| {
            let id = saved["run_id"].as_str().unwrap();
            body.replace(
                &format!("\"run_id\":\"{id}\""),
                "\"run_id\":\"../../../../tmp/x\"",
            )
        }),
    )
    .unwrap();
    let out = run(&["apply", forged_id.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("`../../../../tmp/x` is not a run id"),
        "{}",
        text(&out.stderr)
    );
    let edited = lab.path().join("edited.json");
    let changed = std::fs::read_to_string(&plan).unwrap().replacen(
        "ipfs-cluster-svc stop",
        "ipfs-cluster-svc stop; touch /tmp/cu-pwned",
        1,
    );
    assert!(changed.contains("cu-pwned"));
    std::fs::write(&edited, changed).unwrap();
    let out = run(&["apply", edited.to_str().unwrap(), "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("its digest does not match its contents"),
        "{}",
        text(&out.stderr)
    );
    assert!(lab.run_dirs().is_empty(), "nothing ran");

    // The saved plan runs with what it recorded, although the inventory says otherwise.
    let out = run(&["apply", plan.to_str().unwrap(), "--yes"]);
    assert_success(&out, "apply the saved plan");
    lab.assert_cluster("0.10.1", 1, 8);
    let recorded = std::fs::read_to_string(lab.run_dirs()[0].join("plan.json")).unwrap();
    assert!(recorded.contains(&aside.display().to_string()));
    assert!(!recorded.contains("/nonexistent/bin"));
}

#[test]
fn applying_a_cluster_already_on_its_target_is_success_with_nothing_to_do() {
    let lab = Lab::up(3, "0.9.0", 6);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    assert_success(&run(&["apply", inventory, "--yes"]), "first apply");
    let journal = lab.journal_text();
    let out = run(&["apply", inventory, "--yes"]);
    assert_success(&out, "second apply");
    assert!(
        text(&out.stdout).contains("No changes: every one of the 3 peers runs 0.10.1"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(lab.journal_text(), journal, "no new run");
    assert_eq!(lab.run_dirs().len(), 1);
    let out = run(&["plan", inventory, "--json"]);
    assert_success(&out, "plan --json");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["converged"], true);
    assert_eq!(plan["target_version"], "0.10.1");

    // On its target but unhealthy is not "converged": refused, with the reason, as JSON too.
    let killed = lab.lab(&["fault", "kill-peer", "h3"]);
    assert!(killed.status.success());
    let out = run(&["plan", inventory, "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let error: serde_json::Value =
        serde_json::from_slice(text(&out.stdout).lines().last().unwrap().as_bytes()).unwrap();
    assert_eq!(error["kind"], "refused");
    assert_eq!(error["exit_code"], 3);
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("every peer already runs 0.10.1, but the cluster is not healthy: ")
            && message.contains("h3 is not running"),
        "{error}"
    );
}

#[test]
fn an_inventory_that_misses_a_peer_or_lists_one_twice_is_refused() {
    let lab = Lab::up(4, "0.9.0", 5);
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    // Without h4: the cluster's peerset holds a peer no host of the inventory is.
    let cut = inventory.find("  - name: \"h4\"").unwrap();
    let three = lab.path().join("three.yaml");
    std::fs::write(&three, &inventory[..cut]).unwrap();
    let out = run(&["plan", three.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the inventory does not describe the whole cluster")
            && stderr.contains("1 peer(s) that no host of the inventory is"),
        "{stderr}"
    );
    assert!(stderr.contains(&lab.peer_id("h4")), "{stderr}");

    // h4 copied and pasted as h5: one machine listed twice.
    let h4 = &inventory[cut..];
    let copied = lab.path().join("copied.yaml");
    std::fs::write(
        &copied,
        format!(
            "{inventory}{}",
            h4.replacen("name: \"h4\"", "name: \"h5\"", 1)
        ),
    )
    .unwrap();
    let before = logins(&lab, &["h1", "h2", "h3", "h4"]);
    let out = run(&["plan", copied.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("host `h5`: invalid hosts[].address")
            && stderr.contains("host `h4` has the same address and port"),
        "{stderr}"
    );
    assert_eq!(
        logins(&lab, &["h1", "h2", "h3", "h4"]),
        before,
        "no host contacted"
    );
    lab.assert_cluster("0.9.0", 4, 5);
}

#[test]
fn one_run_per_cluster_across_state_directories_and_a_dead_run_is_taken_over() {
    let lab = Lab::up(3, "0.9.0", 10);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    let first_state = lab.path().join("state-a");
    let second_state = lab.path().join("state-b");
    let first = [
        "apply",
        inventory,
        "--yes",
        "--state-dir",
        first_state.to_str().unwrap(),
    ];
    let child = start_until(&first, &first_state, "upload-service", 1);
    // The first apply is paused mid-run, alive.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let first_id = std::fs::read_dir(first_state.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let second = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            inventory,
            "--yes",
            "--state-dir",
            second_state.to_str().unwrap(),
        ];
        args.extend(extra);
        run(&args)
    };
    let out = second(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("another run holds the cluster: run ") && stderr.contains(&first_id),
        "{stderr}"
    );
    assert!(
        stderr.contains(&first_state.display().to_string()),
        "{stderr}"
    );
    let out = run(&[
        "plan",
        inventory,
        "--state-dir",
        second_state.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "plan too: {}",
        text(&out.stderr)
    );

    // The first dies; its lease is taken over only when asked to.
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    let mut child = child;
    child.wait().unwrap();
    assert_eq!(second(&[]).status.code(), Some(3));
    let out = second(&["--take-over", &first_id]);
    assert_success(&out, "take over");
    assert!(
        journals_in(&second_state).contains(&format!(
            "\"event\":\"lease_taken_over\",\"from\":\"{first_id}\""
        )),
        "journalled"
    );
    lab.assert_cluster("0.10.1", 3, 10);
    // The run gave its lease back at the end.
    for host in ["h1", "h2", "h3"] {
        assert!(!lab
            .home(host)
            .join(".ipfs-cluster/.cluster-upgrade.lease")
            .exists());
    }
}

/// The lease file of a lab host.
fn lease_file(lab: &Lab, host: &str) -> PathBuf {
    lab.home(host).join(".ipfs-cluster/.cluster-upgrade.lease")
}

/// `apply --yes` takes the lease with its planning probe, in the same command (issue 19,
/// docs/adr/0023): what the operator sees is unchanged. Another run's lease on one host refuses
/// the run and nothing of ours is left on the others; a run that has nothing to do gives the
/// lease back; a run that starts holds it on every host and gives it back at the end.
#[test]
fn apply_yes_takes_the_lease_with_its_probe_and_gives_it_back_when_it_does_not_run() {
    let lab = Lab::up(3, "0.9.0", 4);
    let inventory = lab.inventory();
    let foreign = "{\"run_id\":\"20261201T000000Z-dead\",\"controller\":\"ops@elsewhere\",\"state_dir\":\"/srv/state\",\"started_unix\":1796000000}\n";
    std::fs::write(lease_file(&lab, "h2"), foreign).unwrap();

    let out = apply(&inventory, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr
            .contains("another run holds the cluster: run 20261201T000000Z-dead of ops@elsewhere")
            && stderr.contains("on h2"),
        "{stderr}"
    );
    assert!(!lease_file(&lab, "h1").exists() && !lease_file(&lab, "h3").exists());
    assert_eq!(
        std::fs::read_to_string(lease_file(&lab, "h2")).unwrap(),
        foreign,
        "the other run's lease is untouched"
    );
    lab.assert_cluster("0.9.0", 3, 4);

    // Taken over, the run holds every host's lease while it runs, and gives it back.
    let state = lab.path().join("state");
    let state_arg = state.to_str().unwrap();
    let args = [
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--state-dir",
        state_arg,
        "--take-over",
        "20261201T000000Z-dead",
    ];
    let mut child = start_until(&args, &state, "upload-service", 1);
    for host in ["h1", "h2", "h3"] {
        let lease = std::fs::read_to_string(lease_file(&lab, host)).unwrap();
        assert!(!lease.contains("-dead"), "{host}: {lease}");
    }
    assert!(child.wait().unwrap().success());
    assert!(
        journals_in(&state)
            .contains("\"event\":\"lease_taken_over\",\"from\":\"20261201T000000Z-dead\""),
        "journalled"
    );
    lab.assert_cluster("0.10.1", 3, 4);
    for host in ["h1", "h2", "h3"] {
        assert!(!lease_file(&lab, host).exists(), "{host}");
    }

    // Nothing to do: no run, no lease left.
    let out = apply(&inventory, &["--state-dir", state_arg]);
    assert_success(&out, "converged");
    assert!(
        text(&out.stdout).contains("No changes"),
        "{}",
        text(&out.stdout)
    );
    for host in ["h1", "h2", "h3"] {
        assert!(!lease_file(&lab, host).exists(), "{host}");
    }
}

/// A run planted in `state` whose plan is this cluster's own plan, with one command changed to
/// create `marker` and the seal made again (anyone can compute a SHA-256).
fn plant_run(lab: &Lab, state: &Path, marker: &Path) {
    let plan = lab.path().join("for-planting.json");
    let out = run(&[
        "plan",
        lab.inventory().to_str().unwrap(),
        "--state-dir",
        lab.path().join("planning").to_str().unwrap(),
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert_success(&out, "plan");
    let planted = forged(&plan, |body| {
        body.replacen(
            "ipfs-cluster-svc stop",
            &format!("ipfs-cluster-svc stop; touch {}", marker.display()),
            1,
        )
    });
    let saved: serde_json::Value = serde_json::from_slice(&planted).unwrap();
    let run_dir = state.join("runs").join(saved["run_id"].as_str().unwrap());
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("plan.json"), planted).unwrap();
    std::fs::write(
        run_dir.join("journal.jsonl"),
        "{\"at_ms\":1,\"event\":\"run_started\",\"pid\":1,\"resumed\":false}\n",
    )
    .unwrap();
}

#[test]
fn a_run_planted_by_another_user_is_refused_and_nothing_runs() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::up(2, "0.9.0", 4);
    let inventory = lab.inventory();
    let marker = lab.path().join("planted-command-ran");
    let before = logins(&lab, &["h1", "h2"]);

    // A state directory anyone can write to, holding a run.
    let open = lab.path().join("open-state");
    plant_run(&lab, &open, &marker);
    let planning = logins(&lab, &["h1", "h2"]);
    assert!(planning > before);
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(&[
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--state-dir",
        open.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("writable by group or others (mode 0777)"),
        "{stderr}"
    );

    // A private state directory, but the run in it belongs to another user.
    let private = lab.path().join("private-state");
    plant_run(&lab, &private, &marker);
    let planted = std::fs::read_dir(private.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for path in [
        planted.join("plan.json"),
        planted.join("journal.jsonl"),
        planted.clone(),
    ] {
        rustix::fs::chown(&path, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
    }
    let after_planting = logins(&lab, &["h1", "h2"]);
    let out = run(&[
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--state-dir",
        private.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is owned by uid 65534, not by this user"),
        "{stderr}"
    );

    assert!(!marker.exists(), "the planted command never ran");
    assert_eq!(
        logins(&lab, &["h1", "h2"]),
        after_planting,
        "no host was contacted"
    );
    lab.assert_cluster("0.9.0", 2, 4);
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, options: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("{options},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs (as root): {}",
            text(&out.stderr)
        );
        Tmpfs(path)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn a_state_directory_without_room_for_the_exports_is_refused_before_any_host_changes() {
    let lab = Lab::up(3, "0.9.0", 20);
    let small = Tmpfs::mount(lab.path().join("small-state"), "size=60k");
    let out = run(&[
        "apply",
        lab.inventory().to_str().unwrap(),
        "--yes",
        "--state-dir",
        small.0.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not enough room: the state directory")
            && stderr.contains("free, and this run needs about"),
        "{stderr}"
    );
    assert!(
        !small.0.join("runs").read_dir().unwrap().any(|_| true),
        "no run was made"
    );
    lab.assert_cluster("0.9.0", 3, 20);
    for host in ["h1", "h2", "h3"] {
        assert!(!lab
            .home(host)
            .join(".ipfs-cluster/.cluster-upgrade.lease")
            .exists());
    }
}

#[test]
fn a_state_directory_that_is_a_file_or_no_terminal_without_yes_is_refused_before_any_probe() {
    let lab = Lab::up(2, "0.9.0", 2);
    let inventory = lab.inventory();
    let before = logins(&lab, &["h1", "h2"]);
    let file = lab.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = run(&[
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--state-dir",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("a-file: it is not a directory"),
        "{}",
        text(&out.stderr)
    );
    let read_only = Tmpfs::mount(lab.path().join("read-only"), "ro,size=1m");
    let out = run(&[
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--state-dir",
        read_only.0.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(cluster_upgrade())
        .args(["apply", inventory.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no terminal to ask on; pass --yes"));
    assert_eq!(logins(&lab, &["h1", "h2"]), before, "no host was contacted");
}

/// Changes a lab's inventory (at the path) and returns the extra arguments to pass.
type Change = Box<dyn Fn(&Lab, &Path) -> Vec<String>>;

/// One invalid variant of a lab: what to change, and what the error must say.
struct Invalid {
    what: &'static str,
    change: Change,
    says: &'static str,
}

#[test]
fn every_invalid_input_is_refused_with_its_location_before_any_login() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::up(2, "0.9.0", 2);
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    let rewrite = |from: &'static str, to: &'static str| {
        move |lab: &Lab, inventory: &Path| {
            let text = std::fs::read_to_string(lab.inventory()).unwrap();
            assert!(text.contains(from), "{from}");
            std::fs::write(inventory, text.replacen(from, to, 1)).unwrap();
            Vec::new()
        }
    };
    let cases: Vec<Invalid> = vec![
        Invalid {
            what: "connect_timeout 0",
            change: Box::new(rewrite("connect_timeout: 10s", "connect_timeout: 0s")),
            says: "inventory-under-test.yaml:13:20: invalid ssh.connect_timeout `0s`: must be longer than 0",
        },
        Invalid {
            what: "command_timeout 0",
            change: Box::new(rewrite("command_timeout: 120s", "command_timeout: 0ms")),
            says: "inventory-under-test.yaml:14:20: invalid ssh.command_timeout `0ms`: must be longer than 0",
        },
        Invalid {
            what: "defaults.port 0 that no host uses",
            change: Box::new(rewrite("  port: 2222
  identity_file", "  port: 0
  identity_file")),
            says: "inventory-under-test.yaml:18:9: invalid defaults.port `0`: must be between 1 and 65535",
        },
        Invalid {
            what: "a public key as identity",
            change: Box::new(|lab: &Lab, inventory: &Path| {
                let text = std::fs::read_to_string(lab.inventory()).unwrap();
                let text = text.replace("identity_file: id_ed25519\n", "identity_file: id_ed25519.pub\n");
                std::fs::write(inventory, text).unwrap();
                Vec::new()
            }),
            says: "inventory-under-test.yaml:30:20: host `h1`: identity file",
        },
        Invalid {
            what: "a key others can read",
            change: Box::new(|lab: &Lab, inventory: &Path| {
                let key = lab.path().join("open_key");
                std::fs::copy(lab.path().join("id_ed25519"), &key).unwrap();
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
                let text = std::fs::read_to_string(lab.inventory()).unwrap();
                std::fs::write(inventory, text.replace("identity_file: id_ed25519\n", "identity_file: open_key\n")).unwrap();
                Vec::new()
            }),
            says: "permissions 0644 are too open",
        },
        Invalid {
            what: "a known_hosts that does not exist",
            change: Box::new(rewrite("known_hosts: known_hosts", "known_hosts: no_such_known_hosts")),
            says: "inventory-under-test.yaml:11:16: known_hosts file",
        },
        Invalid {
            what: "not UTF-8",
            change: Box::new(|lab: &Lab, inventory: &Path| {
                let mut bytes = std::fs::read(lab.inventory()).unwrap();
                let at = bytes.windows(8).position(|w| w == b"cluster:").unwrap();
                bytes.splice(at..at, b"# caf\xe9\n".iter().copied());
                std::fs::write(inventory, bytes).unwrap();
                Vec::new()
            }),
            says: "inventory-under-test.yaml:3:6: not UTF-8 text (byte 0xe9)",
        },
        Invalid {
            what: "over 16 MB",
            change: Box::new(|lab: &Lab, inventory: &Path| {
                let mut text = std::fs::read_to_string(lab.inventory()).unwrap();
                text.push_str(&format!("# {}\n", "x".repeat(17 << 20)));
                std::fs::write(inventory, text).unwrap();
                Vec::new()
            }),
            says: "inventory-under-test.yaml: the inventory is 17",
        },
        Invalid {
            what: "a step timeout of 0",
            change: Box::new(|lab: &Lab, inventory: &Path| {
                std::fs::copy(lab.inventory(), inventory).unwrap();
                let playbooks = lab.path().join("zero-playbooks");
                std::fs::create_dir_all(&playbooks).unwrap();
                let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
                std::fs::copy(root.join("bootstrap.yaml"), playbooks.join("bootstrap.yaml")).unwrap();
                let standard = std::fs::read_to_string(root.join("standard.yaml")).unwrap();
                std::fs::write(playbooks.join("standard.yaml"), standard.replacen("timeout: 2m", "timeout: 0s", 1)).unwrap();
                vec!["--playbooks".into(), playbooks.display().to_string()]
            }),
            says: "standard.yaml:",
        },
        Invalid {
            what: "a wait deadline of 0",
            change: Box::new(|lab: &Lab, inventory: &Path| {
                std::fs::copy(lab.inventory(), inventory).unwrap();
                let playbooks = lab.path().join("zero-deadline");
                std::fs::create_dir_all(&playbooks).unwrap();
                let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
                std::fs::copy(root.join("bootstrap.yaml"), playbooks.join("bootstrap.yaml")).unwrap();
                let standard = std::fs::read_to_string(root.join("standard.yaml")).unwrap();
                std::fs::write(playbooks.join("standard.yaml"), standard.replacen("deadline: 3m", "deadline: 0s", 1).replacen("interval: 2s", "interval: 0s", 1)).unwrap();
                vec!["--playbooks".into(), playbooks.display().to_string()]
            }),
            says: "must be longer than 0",
        },
    ];
    let before = logins(&lab, &["h1", "h2"]);
    let inventory = lab.path().join("inventory-under-test.yaml");
    for case in cases {
        let extra = (case.change)(&lab, &inventory);
        for command in ["plan", "apply"] {
            let mut args = vec![command.to_string(), inventory.display().to_string()];
            args.extend(extra.iter().cloned());
            if command == "apply" {
                args.push("--yes".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run(&args);
            let stderr = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{}: {command}: {stderr}",
                case.what
            );
            assert!(
                stderr.contains(case.says),
                "{}: {command}: {stderr}",
                case.what
            );
        }
    }
    assert_eq!(logins(&lab, &["h1", "h2"]), before, "no host was contacted");
    assert!(!lab.path().join(".cluster-upgrade/runs").exists() || lab.run_dirs().is_empty());
    let _ = original;
}

/// The shipped playbooks in a folder, with a step that only waits between the state export
/// and the swap of the binaries: a moment with every export taken and nothing destructive yet.
fn pause_after_export() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    std::fs::copy(
        root.join("bootstrap.yaml"),
        dir.path().join("bootstrap.yaml"),
    )
    .unwrap();
    let standard = std::fs::read_to_string(root.join("standard.yaml")).unwrap();
    let standard = standard.replacen(
        "  - id: install-release\n",
        "  - id: pause\n    name: Wait a moment\n    on: all\n    command: sleep 1\n    on_resume: rerun\n\n  - id: install-release\n",
        1,
    );
    std::fs::write(dir.path().join("standard.yaml"), standard).unwrap();
    dir
}

#[test]
fn a_backup_gone_from_the_controller_is_taken_again_before_anything_destructive() {
    let lab = Lab::up(2, "0.9.0", 9);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    let playbooks = pause_after_export();
    let playbooks = playbooks.path().to_str().unwrap();
    lab.kill_when_started(
        &["apply", inventory, "--yes", "--playbooks", playbooks],
        "pause",
        1,
    );
    let run_dir = lab.run_dirs()[0].clone();
    std::fs::remove_dir_all(run_dir.join("backups")).unwrap();
    let out = run(&["apply", inventory, "--yes"]);
    assert_success(&out, "resume");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains("backups folder") && stderr.contains("is gone; made again"),
        "{stderr}"
    );
    assert!(
        stdout.contains(
            "Again: export-state on h1 (its state export state-export-h1-0.9.0.json is missing)"
        ),
        "{stdout}"
    );
    for host in ["h1", "h2"] {
        assert!(run_dir
            .join(format!("backups/state-export-{host}-0.9.0.json"))
            .exists());
    }
    assert!(lab.journal_text().contains("\"event\":\"step_reset\""));
    lab.assert_cluster("0.10.1", 2, 9);
    assert_no_step_finished_twice(&lab.journal());
}

#[test]
fn a_backup_gone_after_a_destructive_step_ran_stops_the_resume() {
    let lab = Lab::up(2, "0.9.0", 9);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    lab.kill_when_started(&["apply", inventory, "--yes"], "install-release", 1);
    let run_dir = lab.run_dirs()[0].clone();
    let export = run_dir.join("backups/state-export-h1-0.9.0.json");
    let kept = std::fs::read(&export).unwrap();
    std::fs::write(&export, b"[]").unwrap();
    let journal = lab.journal_text();
    let out = run(&["apply", inventory, "--yes"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("h1: the run's state export state-export-h1-0.9.0.json is changed since it was saved on the controller, and a destructive step already ran on h1"),
        "{stderr}"
    );
    assert_eq!(lab.journal_text(), journal, "nothing ran");
    std::fs::write(&export, kept).unwrap();
    assert_success(
        &run(&["apply", inventory, "--yes"]),
        "resume with the export back",
    );
    lab.assert_cluster("0.10.1", 2, 9);
}
