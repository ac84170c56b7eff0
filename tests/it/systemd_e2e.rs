//! The playbooks' systemd branch on hosts with a real systemd (`cluster-lab up --host-kind
//! systemd`: containers booted by systemd-nspawn, the peer as `ipfs-cluster.service` with
//! `User=ipfs`): standard, bootstrap and rolling upgrades end to end with every pin kept, the
//! unit active, no drop-in left and an administrator's `override.conf` with its own
//! `ExecStart=` honoured; state commands run as the unit's `User=` when `service_user` is not
//! set; a later drop-in that would drop `--upgrade` is refused, not ignored; every value written
//! into a unit file is escaped (checked with `systemd-analyze verify` and read back by systemd).

use crate::support::{assert_roll_stopped_by_crash, assert_success, run, text, Lab};

const UNIT: &str = "ipfs-cluster";
const DROP_IN: &str = "/run/systemd/system/ipfs-cluster.service.d/zz-cluster-upgrade.conf";
const CONFIG: &str = "/home/ipfs/.ipfs-cluster";

/// Runs `command` on `host` over SSH and returns its trimmed stdout, requiring success.
fn on(lab: &Lab, host: &str, command: &str) -> String {
    let out = lab.ssh(host, command);
    assert_success(&out, &format!("{host}: {command}"));
    text(&out.stdout).trim().to_string()
}

/// A systemd lab of 3 peers on `version`, without `service_user` in its inventory (the unit's
/// `User=` must be found by the probe), each unit with an administrator's `override.conf` that
/// replaces `ExecStart=` (the same daemon, its config folder named).
fn systemd_lab(version: &str, extra: &[&str]) -> Lab {
    let mut args = vec!["--host-kind", "systemd"];
    args.extend_from_slice(extra);
    let lab = Lab::up_with(3, version, 5, &args);
    let inventory = lab.inventory();
    let kept: String = std::fs::read_to_string(&inventory)
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with("service_user:"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&inventory, kept).unwrap();
    for host in lab.host_names() {
        on(
            &lab,
            &host,
            &format!(
                "mkdir -p /etc/systemd/system/{UNIT}.service.d && printf '[Service]\\nExecStart=\\nExecStart=/usr/local/bin/ipfs-cluster-service --config {CONFIG} daemon\\n' \
                 > /etc/systemd/system/{UNIT}.service.d/override.conf && systemctl daemon-reload && systemctl restart {UNIT}"
            ),
        );
    }
    lab.wait_for(
        "every peer back after the override",
        std::time::Duration::from_secs(60),
        |lab| lab.status().iter().all(|h| h.running && h.peers == Some(3)),
    );
    lab
}

fn apply(lab: &Lab, extra: &[&str]) -> std::process::Output {
    let inventory = lab.inventory();
    let mut args = vec!["apply", inventory.to_str().unwrap(), "--yes"];
    args.extend_from_slice(extra);
    run(&args)
}

/// The command line of the unit's running daemon.
fn running_command(lab: &Lab, host: &str) -> String {
    on(
        lab,
        host,
        &format!(
            "tr '\\0' ' ' < /proc/$(systemctl show --property=MainPID --value {UNIT})/cmdline"
        ),
    )
}

/// After a run: every unit active, no drop-in of ours left, the unit's `ExecStart=` the
/// override's again, no file of the peer's folder owned by root.
fn assert_units_clean(lab: &Lab) {
    for host in lab.host_names() {
        assert_eq!(
            on(lab, &host, &format!("systemctl is-active {UNIT}")),
            "active",
            "{host}"
        );
        on(lab, &host, &format!("test ! -e {DROP_IN}"));
        let exec = on(
            lab,
            &host,
            &format!("systemctl show --property=ExecStart --value {UNIT}"),
        );
        assert!(
            exec.contains(&format!(
                "argv[]=/usr/local/bin/ipfs-cluster-service --config {CONFIG} daemon ;"
            )),
            "{host}: {exec}"
        );
        assert_eq!(
            on(lab, &host, &format!("find {CONFIG} -user root")),
            "",
            "{host}: files of the peer's folder owned by root (state commands ran as root)"
        );
    }
}

#[test]
fn a_standard_upgrade_of_systemd_units_starts_them_with_the_overrides_command_and_upgrade_once() {
    let lab = systemd_lab("0.9.0", &[]);
    let out = apply(&lab, &[]);
    assert_success(&out, "the standard upgrade of systemd peers");
    // The plan says what it read of the units.
    assert!(
        text(&out.stdout).contains(&format!(
            "systemd units as loaded: h1, h2, h3: `/usr/local/bin/ipfs-cluster-service --config {CONFIG} daemon` as ipfs (drop-ins: override.conf)"
        )),
        "{}",
        text(&out.stdout)
    );
    let target = lab.status()[0].version.clone().unwrap();
    assert_ne!(target, "0.9.0");
    lab.assert_cluster(&target, 3, 5);
    assert_units_clean(&lab);
    // The state export ran as the unit's `User=`, which the inventory does not name.
    let runs = lab.path().join(".cluster-upgrade/runs");
    let run = std::fs::read_dir(&runs).unwrap().flatten().next().unwrap();
    let plan = std::fs::read_to_string(run.path().join("plan.json")).unwrap();
    assert!(
        plan.contains("runuser -u ipfs -- /usr/local/bin/ipfs-cluster-service --config"),
        "the plan's state commands run as ipfs"
    );
    for host in lab.host_names() {
        // The daemon that runs now was started by the run: the override's command line with
        // `--upgrade` appended (the drop-in is gone, so a restart would not repeat it).
        assert!(
            running_command(&lab, &host).contains(&format!(
                "/usr/local/bin/ipfs-cluster-service --config {CONFIG} daemon --upgrade"
            )),
            "{host}: {}",
            running_command(&lab, &host)
        );
    }
}

#[test]
fn a_bootstrap_upgrade_of_systemd_units_bootstraps_the_others_once() {
    let lab = systemd_lab("0.9.0", &[]);
    let out = apply(&lab, &["--procedure", "bootstrap"]);
    assert_success(&out, "the bootstrap upgrade of systemd peers");
    let target = lab.status()[0].version.clone().unwrap();
    lab.assert_cluster(&target, 3, 5);
    assert_units_clean(&lab);
    let bootstrapped = lab
        .host_names()
        .iter()
        .filter(|h| running_command(&lab, h).contains("daemon --bootstrap /ip4/"))
        .count();
    assert_eq!(
        bootstrapped, 2,
        "the two peers other than the anchor joined it with --bootstrap"
    );
}

#[test]
fn a_rolling_upgrade_of_systemd_units_keeps_every_pin() {
    let lab = systemd_lab("1.1.2", &["--target", "1.1.3"]);
    let out = apply(&lab, &[]);
    assert_success(&out, "the rolling upgrade of systemd peers");
    assert!(
        text(&out.stdout).contains("rolling"),
        "{}",
        text(&out.stdout)
    );
    lab.assert_cluster("1.1.3", 3, 5);
    assert_units_clean(&lab);
}

/// A unit whose peer crashes as it starts (the stand-in's `crash-at-start`: a Go panic, exit
/// status 2; the lab's unit has no `Restart=`, so systemd leaves it `failed`) stops the roll at
/// its `peer-ready` at once, with the panic from the unit's journal, before the next peer is
/// stopped; once an operator starts the unit, `apply` resumes and finishes.
#[test]
fn a_unit_that_crashes_as_it_starts_stops_the_roll_with_its_journal_and_a_resume_finishes() {
    let lab = systemd_lab("1.1.2", &["--target", "1.1.3"]);
    let fault = lab.lab(&["fault", "crash-at-start", "h2"]);
    assert_success(&fault, "cluster-lab fault crash-at-start on a systemd host");
    let out = apply(&lab, &[]);
    assert_roll_stopped_by_crash(
        &lab,
        &out,
        &format!("the unit {UNIT} is failed: the peer exited; from its journal:"),
        ("h2", "h3"),
    );
    on(&lab, "h2", &format!("systemctl start {UNIT}"));
    let resumed = apply(&lab, &[]);
    assert_success(&resumed, "apply, resumed");
    lab.assert_cluster("1.1.3", 3, 5);
    assert_units_clean(&lab);
}

#[test]
fn a_later_drop_in_that_resets_exec_start_is_refused_rather_than_starting_without_the_flags() {
    let lab = systemd_lab("0.9.0", &[]);
    for host in lab.host_names() {
        on(
            &lab,
            &host,
            &format!(
                "printf '[Service]\\nExecStart=\\nExecStart=/usr/local/bin/ipfs-cluster-service daemon\\n' \
                 > /etc/systemd/system/{UNIT}.service.d/zzz-late.conf && systemctl daemon-reload"
            ),
        );
    }
    let out = apply(&lab, &[]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("sorts after zz-cluster-upgrade.conf sets ExecStart= again: the unit would start without --upgrade"),
        "{said}"
    );
    for host in lab.host_names() {
        on(&lab, &host, &format!("test ! -e {DROP_IN}"));
    }
}

#[test]
fn a_host_whose_unit_systemd_does_not_know_is_refused_at_plan_time() {
    let lab = Lab::up_with(
        3,
        "1.1.2",
        5,
        &["--host-kind", "systemd", "--target", "1.1.3"],
    );
    let inventory = lab.inventory();
    let text_of = std::fs::read_to_string(&inventory).unwrap();
    std::fs::write(
        &inventory,
        text_of.replace(
            "systemd_unit: \"ipfs-cluster\"",
            "systemd_unit: \"ipfs-cluster-typo\"",
        ),
    )
    .unwrap();
    let out = run(&["plan", inventory.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("its peer's systemd unit cannot be driven: systemd reports its LoadState as `not-found`"),
        "{said}"
    );
}

/// Words no unit file may carry raw: a space, a specifier, environment substitution, quotes, a
/// backslash.
const HOSTILE: [&str; 7] = [
    "/bin/echo",
    "a b",
    "100%z",
    "%h",
    "$HOME",
    "\"quoted\"",
    "back\\slash",
];

fn command_line(words: &[&str]) -> String {
    cluster_upgrade::procedure::systemd_command(minijinja::Value::from_serialize(words))
        .unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn hostile_words_are_escaped_for_a_unit_file_and_systemd_reads_them_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let verify = |name: &str, exec: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("[Unit]\nDescription=t\n[Service]\nExecStart={exec}\n"),
        )
        .unwrap();
        std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .expect("systemd-analyze")
    };
    let escaped = command_line(&HOSTILE);
    let out = verify("escaped.service", &escaped);
    assert_success(&out, "systemd-analyze verify of the escaped command line");
    // The same words written raw are refused (`%z` is no specifier): the check can fail.
    let raw = verify("raw.service", &HOSTILE.join(" "));
    assert!(!raw.status.success(), "{}", text(&raw.stderr));

    // A newline would end the directive and start another: refused, never written.
    let refused = cluster_upgrade::procedure::systemd_command(minijinja::Value::from_serialize([
        "/bin/echo",
        "x\nExecStartPre=/bin/touch /tmp/pwned",
    ]))
    .unwrap_err();
    assert!(
        refused.to_string().contains("control character"),
        "{refused}"
    );

    // Run by a real systemd, the command gets exactly the words: `sh -c` writes each argument it
    // is given on a line of its own.
    let lab = Lab::up_with(1, "1.1.2", 0, &["--host-kind", "systemd"]);
    let mut words = vec![
        "/bin/sh",
        "-c",
        "printf '%s\\n' \"$@\" > /run/hostile-words.out",
        "sh",
    ];
    words.extend_from_slice(&HOSTILE[1..]);
    on(
        &lab,
        "h1",
        &format!(
            "printf '[Service]\\nType=oneshot\\nExecStart=%s\\n' {} > /run/systemd/system/hostile-words.service && systemctl daemon-reload && systemctl start hostile-words",
            shlex::try_quote(&command_line(&words)).unwrap()
        ),
    );
    let written = on(&lab, "h1", "cat /run/hostile-words.out");
    assert_eq!(written.lines().collect::<Vec<_>>(), HOSTILE[1..]);
}
