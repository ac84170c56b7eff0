//! `cluster-upgrade plan` end to end: real sshd hosts of `cluster-lab` running stand-in peers.

use std::time::Duration;

use crate::support::{run, text, Lab};

#[test]
fn three_peers_on_one_version_get_the_standard_procedure() {
    let lab = Lab::up(3, "0.9.0", 20);
    let plan_file = lab.path().join("plan.json");
    let out = run(&[
        "plan",
        lab.inventory().to_str().unwrap(),
        "--out",
        plan_file.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "plan failed: {}\n{stdout}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Cluster lab: 0.9.0 → 0.10.1"), "{stdout}");
    assert!(stdout.contains("Procedure: standard"), "{stdout}");
    assert!(
        stdout.contains("every peer is reachable and runs 0.9.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Start every peer at once (with daemon --upgrade up to 0.10)"),
        "{stdout}"
    );

    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(plan["choice"]["procedure"], "standard");
    assert_eq!(plan["facts"].as_array().unwrap().len(), 3);
    for facts in plan["facts"].as_array().unwrap() {
        assert_eq!(facts["service_version"], "0.9.0");
        assert_eq!(facts["pins"]["count"], 20);
        assert_eq!(facts["peerset"]["count"], 3);
        assert_eq!(facts["peerset"]["hash"].as_str().unwrap().len(), 64);
    }
    assert_eq!(plan["facts_fingerprint"].as_str().unwrap().len(), 64);
    let start = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "start-upgrade")
        .expect("start step");
    assert_eq!(start["mode"], "parallel");
    assert_eq!(start["hosts"].as_array().unwrap().len(), 3);
    assert!(start["hosts"][0]["command"]
        .as_str()
        .unwrap()
        .ends_with("ipfs-cluster-svc start --upgrade"));
    let mode = std::fs::metadata(&plan_file)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap();
    assert_eq!(mode & 0o777, 0o600, "the saved plan is private");

    // Read-only: nothing changed on the hosts.
    assert!(lab
        .status()
        .iter()
        .all(|h| h.running && h.version.as_deref() == Some("0.9.0")));
}

#[test]
fn a_peer_removed_from_the_peerset_leads_to_bootstrap_with_the_reason() {
    let lab = Lab::up(3, "0.9.0", 5);
    let removed = lab.peer_id("h2");
    let out = lab.ctl("h1", &["peers", "rm", &removed]);
    assert!(out.status.success(), "peers rm: {}", text(&out.stderr));
    lab.wait_for(
        "h2 to shut down after its removal",
        Duration::from_secs(20),
        |lab| lab.status().iter().any(|h| h.host == "h2" && !h.running),
    );

    let out = run(&["plan", lab.inventory().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "plan failed: {}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["choice"]["procedure"], "bootstrap");
    let reasons: Vec<&str> = plan["choice"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    // Peersets are compared as digests: the counts say how h1's view differs.
    assert!(
        reasons.iter().any(|r| r.starts_with(
            "peerset mismatch: h1 does not see every peer: it sees 2 of the inventory's 3 (peerset hash "
        )),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"h2 is not running, so its membership of the peerset cannot be checked"),
        "{reasons:?}"
    );
    assert_eq!(
        plan["choice"]["anchor"], "h3",
        "the last running peer keeps the state"
    );
}

#[test]
fn a_peer_on_another_version_leads_to_bootstrap_with_the_reason() {
    let lab = Lab::up(3, "0.9.0", 5);
    // The operator swapped h3's binaries to 0.10.1 by hand (not restarted yet).
    for file in ["ipfs-cluster-service", "ipfs-cluster-ctl"] {
        let staged = lab.path().join("releases/0.10.1").join(file);
        let installed = lab.home("h3").join("bin").join(file);
        let tmp = installed.with_extension("new");
        std::fs::copy(&staged, &tmp).unwrap();
        std::fs::rename(&tmp, &installed).unwrap();
    }
    let out = run(&["plan", lab.inventory().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "plan failed: {}\n{stdout}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Procedure: bootstrap"), "{stdout}");
    assert!(
        stdout.contains("peers run different versions (h1 0.9.0, h2 0.9.0, h3 0.10.1)"),
        "{stdout}"
    );
}

#[test]
fn a_changed_host_key_stops_that_host_before_any_command() {
    let lab = Lab::up(3, "0.9.0", 0);
    let out = lab.lab(&["fault", "rekey", "h2"]);
    assert!(out.status.success(), "rekey: {}", text(&out.stderr));
    let accepted_before = lab.sshd_log("h2").matches("Accepted publickey").count();

    let out = run(&["plan", lab.inventory().to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unreachable host fails the plan\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("host h2 is unreachable"), "{stderr}");
    assert!(
        stderr.contains("SHA256:"),
        "the error shows the offered key's fingerprint: {stderr}"
    );
    assert!(
        stdout.contains("h2") && stdout.contains("unreachable"),
        "the facts table shows it: {stdout}"
    );
    assert_eq!(
        lab.sshd_log("h2").matches("Accepted publickey").count(),
        accepted_before,
        "no login (so no command) on the host with the changed key"
    );
}

#[test]
fn an_invalid_inventory_is_rejected_before_any_connection() {
    let lab = Lab::up(1, "0.9.0", 0);
    let broken = lab.path().join("broken.yaml");
    let text_in = std::fs::read_to_string(lab.inventory())
        .unwrap()
        .replace("  target_version:", "  target_versoin:");
    std::fs::write(&broken, text_in).unwrap();
    let before = lab.sshd_log("h1").matches("Connection from").count()
        + lab.sshd_log("h1").matches("Accepted").count();
    let out = run(&["plan", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("broken.yaml:5:3"),
        "names file, line and column: {stderr}"
    );
    assert!(stderr.contains("target_versoin"), "{stderr}");
    let after = lab.sshd_log("h1").matches("Connection from").count()
        + lab.sshd_log("h1").matches("Accepted").count();
    assert_eq!(before, after, "no host was contacted");
}

#[test]
fn plan_from_recorded_facts_needs_no_connection() {
    let lab = Lab::up(3, "0.9.0", 3);
    let out = run(&["plan", lab.inventory().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let facts_file = lab.path().join("facts.json");
    std::fs::write(&facts_file, serde_json::to_vec(&plan["facts"]).unwrap()).unwrap();

    lab.lab(&["down"]);
    let out = run(&[
        "plan",
        lab.inventory().to_str().unwrap(),
        "--facts",
        facts_file.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["choice"]["procedure"], "standard");
    assert_eq!(again["facts_fingerprint"], plan["facts_fingerprint"]);
}

#[test]
fn a_jump_from_0_9_to_1_1_without_a_0_10_release_is_refused() {
    let lab = Lab::up_with(3, "0.9.0", 5, &["--target", "1.1.6"]);
    std::fs::remove_dir_all(lab.path().join("releases/0.10.1")).unwrap();
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();
    for args in [vec!["plan", inventory], vec!["apply", inventory, "--yes"]] {
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("0.9.0 → 1.1.6 must pass through a 0.10.x release"),
            "{stderr}"
        );
        assert!(stderr.contains("but none is available in"), "{stderr}");
    }
    // Nothing ran: no 1.1 binary ever met the format-5 state.
    assert!(lab
        .status()
        .iter()
        .all(|h| h.running && h.version.as_deref() == Some("0.9.0") && h.pins == Some(5)));
}

/// `cluster-upgrade` with its open-files limits set by the shell first (`ulimit` flags).
fn run_with_open_files_limit(ulimit: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {ulimit} || exit 99; exec \"$0\" \"$@\""))
        .arg(crate::support::cluster_upgrade())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_hard_open_files_limit_too_low_for_the_hosts_refuses_before_any_connection() {
    let lab = Lab::up(2, "0.9.0", 0);
    let contacts = |lab: &Lab| {
        ["h1", "h2"]
            .iter()
            .map(|h| lab.sshd_log(h).matches("Connection from").count())
            .sum::<usize>()
    };
    let before = contacts(&lab);
    let out = run_with_open_files_limit("-n 40", &["plan", lab.inventory().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("2 hosts need about 66 open files")
            && stderr.contains("this process may open 40 (that is the hard limit)")
            && stderr.contains("ulimit -n 66"),
        "{stderr}"
    );
    assert_eq!(contacts(&lab), before, "no host was contacted");

    // Only the soft limit low: it is raised, and the plan is made.
    let out = run_with_open_files_limit(
        "-S -n 40",
        &["-v", "plan", lab.inventory().to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("raised the open files limit"), "{stderr}");
}

#[test]
fn known_hosts_is_read_once_for_all_the_hosts_of_a_run() {
    let lab = Lab::up(3, "0.9.0", 0);
    let out = run(&["-v", "plan", lab.inventory().to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("read known_hosts for the run").count(),
        1,
        "{stderr}"
    );
}

/// Issue 15: hosts named by `Host` aliases of an ssh_config (`-F`) that gives their address,
/// port, user, key and known_hosts; the inventory sets none of them.
#[test]
fn hosts_named_by_ssh_config_aliases_are_reached_through_it() {
    let lab = Lab::up(3, "0.9.0", 0);
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut ssh_config = String::new();
    let mut inventory = String::new();
    for line in original.lines() {
        let key = line.trim_start().split(':').next().unwrap_or_default();
        if let Some(address) = line.strip_prefix("    address: ") {
            let host = inventory.lines().last().unwrap().split('"').nth(1).unwrap();
            let alias = format!("peer-{host}");
            ssh_config.push_str(&format!(
                "Host {alias}\n  HostName {}\n",
                address.trim_matches('"')
            ));
            inventory.push_str(&format!("    address: {alias}\n"));
        } else if !matches!(
            key,
            "defaults" | "user" | "port" | "identity_file" | "known_hosts"
        ) {
            inventory.push_str(line);
            inventory.push('\n');
        }
    }
    let lab_dir = lab.path().display();
    ssh_config.push_str(&format!(
        "Host peer-*\n  Port 2222\n  User root\n  IdentityFile {lab_dir}/id_ed25519\n  UserKnownHostsFile {lab_dir}/known_hosts\n"
    ));
    let config_file = lab.path().join("ssh_config");
    std::fs::write(&config_file, ssh_config).unwrap();
    let aliased = lab.path().join("aliased.yaml");
    std::fs::write(&aliased, &inventory).unwrap();
    assert!(
        inventory
            .lines()
            .all(|l| !l.contains("address: 127.") && !l.contains("port:")),
        "the inventory names no address or port: {inventory}"
    );

    let out = run(&[
        "plan",
        aliased.to_str().unwrap(),
        "-F",
        config_file.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let facts = plan["facts"].as_array().unwrap();
    assert_eq!(facts.len(), 3);
    for facts in facts {
        assert_eq!(facts["service_version"], "0.9.0", "{facts}");
    }
    for host in ["h1", "h2", "h3"] {
        assert!(
            lab.sshd_log(host).contains("Accepted publickey for root"),
            "{host}"
        );
    }
}
