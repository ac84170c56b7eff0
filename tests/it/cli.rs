//! The command line without any host: `check` of the shipped example, and `--help`.

use crate::support::{cluster_upgrade, run, text};

#[test]
fn the_example_inventory_passes_check() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory.example.yaml");
    let home = tempfile::tempdir().unwrap();
    let check = || {
        std::process::Command::new(cluster_upgrade())
            .args(["check", example])
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    // Its known_hosts is ~/.ssh/known_hosts: without one, every host would be refused.
    let out = check();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("inventory.example.yaml:27:16: known_hosts file"),
        "{}",
        text(&out.stderr)
    );
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/known_hosts"), "").unwrap();
    let out = check();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("valid (3 hosts, target"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("playbooks/rollback.yaml render for every host"),
        "every shipped playbook is checked: {}",
        text(&out.stdout)
    );
}

/// Issue 18: a Docker inventory passes `check`: the recover and migrate-consensus playbooks,
/// which have no Docker procedure, refuse Docker hosts when planned, not when rendered.
#[test]
fn the_docker_example_inventory_passes_check() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/inventory.docker.yaml"
    );
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/known_hosts"), "").unwrap();
    let out = std::process::Command::new(cluster_upgrade())
        .args(["check", example])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("valid (3 hosts, target 1.1.6); playbooks")
            && text(&out.stdout).contains("playbooks/recover.yaml, playbooks/migrate-crdt.yaml"),
        "{}",
        text(&out.stdout)
    );
}

/// Issue 18: a line break in a value bound for a systemd unit file (it would start a directive
/// of its own) is refused by `check`, naming the playbook, the step and the host.
#[test]
fn a_line_break_in_systemd_exec_start_is_refused_by_check() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/inventory.example.yaml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.yaml");
    std::fs::write(dir.path().join("known_hosts"), "").unwrap();
    std::fs::write(
        &inventory,
        example
            .replace("known_hosts: ~/.ssh/known_hosts", "known_hosts: known_hosts")
            .replacen(
                "  systemd_unit: ipfs-cluster\n",
                "  systemd_unit: ipfs-cluster\n  systemd_exec_start: \"/usr/local/bin/ipfs-cluster-service daemon\\nExecStartPre=/bin/touch /tmp/pwned\"\n",
                1,
            ),
    )
    .unwrap();
    let out = std::process::Command::new(cluster_upgrade())
        .arg("check")
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("playbooks/bootstrap.yaml:")
            && text(&out.stderr).contains("step `bootstrap-others` for host `peer0`")
            && text(&out.stderr).contains("holds a line break or another control character"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 15: `~/.ssh/config` is read by default; a host it sends through a jump host is
/// refused (never reached directly), `-F none` reads none, and a config others can write is
/// refused as ssh refuses it.
#[test]
fn check_reads_the_default_ssh_config_unless_told_none() {
    use std::os::unix::fs::PermissionsExt;
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory.example.yaml");
    let home = tempfile::tempdir().unwrap();
    let ssh_dir = home.path().join(".ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    std::fs::write(ssh_dir.join("known_hosts"), "").unwrap();
    let config = ssh_dir.join("config");
    std::fs::write(&config, "Host peer2.example.org\n  ProxyCommand nc %h %p\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = |extra: &[&str]| {
        std::process::Command::new(cluster_upgrade())
            .args(["check", example])
            .args(extra)
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("host `peer2`: the ssh_config says to connect through `nc %h %p`")
            && stderr.contains("ProxyCommand is not supported"),
        "{stderr}"
    );
    let out = check(&["-F", "none"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(&config, "Host *\n  Port 22\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o620)).unwrap();
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bad owner or permissions on"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn every_subcommand_documents_its_options_and_the_exit_codes() {
    for (command, options) in [
        ("check", &["--playbooks", "--var", "--ssh-config"][..]),
        (
            "plan",
            &[
                "--procedure",
                "--out",
                "--json",
                "--facts",
                "--state-dir",
                "--ssh-config",
                "--known-hosts",
                "--accept-new-host-keys",
                "--concurrency",
            ][..],
        ),
        (
            "apply",
            &[
                "--yes",
                "--state-dir",
                "--retry-in-flight",
                "--procedure",
                "--playbooks",
                "--var",
            ][..],
        ),
        ("status", &["--state-dir", "--run"][..]),
        ("recover", &["--yes"][..]),
    ] {
        let out = run(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        let help = text(&out.stdout);
        for option in options {
            assert!(
                help.contains(option),
                "`{command} --help` lacks {option}:\n{help}"
            );
        }
        assert!(
            help.contains("Exit codes:"),
            "`{command} --help` lacks the exit codes"
        );
    }
}

#[test]
fn a_missing_inventory_is_invalid_input_with_its_path() {
    let out = run(&["check", "/nonexistent/inventory.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/inventory.yaml"),
        "{}",
        text(&out.stderr)
    );
}

/// A 3-host inventory whose hosts differ only in their own paths, its standard playbook, a
/// bootstrap playbook with an undefined variable, and facts that choose the standard procedure.
fn unchosen_playbook_broken(dir: &std::path::Path) -> (String, String, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut inventory = format!(
        "cluster:\n  name: t\n  target_version: \"0.10.1\"\n  releases:\n    source: local\n    \
         path: {root}/tests/fixtures/inventory/releases\n\
         ssh:\n  known_hosts: known_hosts\ndefaults:\n  user: u\n  identity_file: {root}/tests/fixtures/inventory/id_test\n\
         vars:\n  service_manager: lab\n  api: /ip4/127.0.0.1/tcp/9094\nhosts:\n"
    );
    // Git checks the fixture key out readable by all; a key others can read is refused.
    std::fs::set_permissions(
        format!("{root}/tests/fixtures/inventory/id_test"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut facts = Vec::new();
    for (n, host) in ["h1", "h2", "h3"].iter().enumerate() {
        inventory.push_str(&format!(
            "  - name: {host}\n    address: 127.0.0.{}\n    vars:\n      bin_dir: /{host}/bin\n      \
             service_cmd: /{host}/svc\n      config_dir: /{host}/config\n",
            n + 1
        ));
        facts.push(serde_json::json!({
            "host": host, "unreachable": null, "service_version": "0.9.0",
            "running": true, "peer_id": null, "peername": host, "multiaddr": null,
            "peerset": {"count": 0, "hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
            "peer_errors": [], "rpc_protocol": null, "state_format": null, "has_snapshot": false,
            "state_backups": [], "pins": null, "leave_on_shutdown": false, "wait_for_leader_timeout": null
        }));
    }
    let playbooks = dir.join("playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    std::fs::copy(
        format!("{root}/playbooks/standard.yaml"),
        playbooks.join("standard.yaml"),
    )
    .unwrap();
    std::fs::write(
        playbooks.join("bootstrap.yaml"),
        "name: bootstrap\nsteps:\n  - id: broken\n    name: Uses a variable no host has\n    on: all\n    \
         command: echo {{ no_such_variable | quote }}\n",
    )
    .unwrap();
    std::fs::write(dir.join("known_hosts"), "").unwrap();
    std::fs::write(dir.join("inventory.yaml"), inventory).unwrap();
    std::fs::write(dir.join("facts.json"), serde_json::to_vec(&facts).unwrap()).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    (
        path("inventory.yaml"),
        path("facts.json"),
        path("playbooks"),
    )
}

#[test]
fn plan_rejects_a_template_error_in_the_playbook_it_does_not_choose() {
    let dir = tempfile::tempdir().unwrap();
    let (inventory, facts, playbooks) = unchosen_playbook_broken(dir.path());
    let error = |host: &str| {
        format!("bootstrap.yaml:6:22: step `broken` for host `{host}`: command: undefined variable `no_such_variable`")
    };

    // plan renders the unchosen playbook for one host per variable set: h1 stands for h2, and
    // h3 is the anchor.
    let out = run(&[
        "plan",
        &inventory,
        "--facts",
        &facts,
        "--playbooks",
        &playbooks,
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&error("h1")), "{stderr}");
    assert!(stderr.contains(&error("h3")), "{stderr}");
    assert!(!stderr.contains(&error("h2")), "{stderr}");

    // check renders it for every host.
    let out = run(&["check", &inventory, "--playbooks", &playbooks]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for host in ["h1", "h2", "h3"] {
        assert!(stderr.contains(&error(host)), "{stderr}");
    }

    // With a valid bootstrap playbook the same facts plan the standard procedure.
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/bootstrap.yaml"),
        dir.path().join("playbooks/bootstrap.yaml"),
    )
    .unwrap();
    let out = run(&[
        "plan",
        &inventory,
        "--facts",
        &facts,
        "--playbooks",
        &playbooks,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["choice"]["procedure"], "standard");
    assert_eq!(plan["format"], 4);
    let saved = std::fs::read(dir.path().join(".cluster-upgrade/latest-plan.json")).unwrap();
    assert_eq!(
        saved, out.stdout,
        "stdout and the saved plan are the same bytes"
    );
}

#[test]
fn the_partials_file_of_a_playbook_folder_also_serves_the_built_in_playbooks_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let (inventory, _, playbooks) = unchosen_playbook_broken(dir.path());
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::copy(
        format!("{root}/playbooks/bootstrap.yaml"),
        dir.path().join("playbooks/bootstrap.yaml"),
    )
    .unwrap();
    // The folder has only the standard and bootstrap playbooks, and no partials file: every
    // playbook, built-in or not, takes the built-in partials, and `check` passes.
    let out = run(&["check", &inventory, "--playbooks", &playbooks]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The folder's partials file, with an adapted `pins_kept` (a partial of the rolling and
    // rollback playbooks only) that does not compile: the built-in rolling playbook includes
    // it, and is refused with the partial's place and its own step's.
    let built_in = std::fs::read_to_string(format!("{root}/playbooks/partials.yaml")).unwrap();
    let adapted = built_in.replacen(
        "  pins_kept: |-\n",
        "  pins_kept: |-\n    {{ no_such_check }}\n",
        1,
    );
    assert_ne!(adapted, built_in);
    std::fs::write(dir.path().join("playbooks/partials.yaml"), adapted).unwrap();
    let out = run(&["check", &inventory, "--playbooks", &playbooks]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("undefined variable `no_such_check`"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let partials = format!("{playbooks}/partials.yaml:");
    assert!(line.contains(&partials), "{line}");
    assert!(
        line.contains("step `peer-ready` of (built-in) playbooks/rolling.yaml:"),
        "the step that included it: {line}"
    );
}

#[test]
fn completions_for_every_shell_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = crate::support::Test::new()
            .args(["completions", shell])
            .run();
        let script = text(&out.stdout);
        for command in ["check", "plan", "apply", "status", "recover", "runs"] {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    // A bash script that bash itself accepts.
    let out = crate::support::Test::new()
        .args(["completions", "bash"])
        .run();
    let checked = std::process::Command::new("bash")
        .args(["-n", "-c", &text(&out.stdout)])
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
}

#[test]
fn man_pages_are_written_for_the_command_and_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::Test::new()
        .args([std::ffi::OsStr::new("man"), dir.path().as_os_str()])
        .run();
    assert!(
        text(&out.stderr).contains("wrote 11 man pages"),
        "{}",
        text(&out.stderr)
    );
    for page in [
        "cluster-upgrade",
        "cluster-upgrade-plan",
        "cluster-upgrade-apply",
        "cluster-upgrade-runs",
        "cluster-upgrade-migrate-consensus",
        "cluster-upgrade-rollback",
    ] {
        let roff = std::fs::read_to_string(dir.path().join(format!("{page}.1"))).unwrap();
        assert!(
            roff.starts_with(".ie") || roff.contains(".TH"),
            "{page}: not roff"
        );
        assert!(roff.contains(".SH NAME"), "{page}: no NAME section");
    }
    let apply = std::fs::read_to_string(dir.path().join("cluster-upgrade-apply.1")).unwrap();
    assert!(
        apply.contains("write\\-ahead journal"),
        "the long help is in the page"
    );
}
