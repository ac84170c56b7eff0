//! The health gates of the shipped playbooks, run for real by `sh` against a scripted
//! `ipfs-cluster-ctl`: they pass on a healthy peer and fail when a pin is lost or added.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use cluster_upgrade::inventory::Inventory;
use cluster_upgrade::procedure::{PinsContext, Procedure, RenderedStep, TemplateContext};
use sha2::{Digest, Sha256};

/// A fake ctl: `version`, `id` (the first line, as the real text output) and `pin ls` from files.
const FAKE_CTL: &str = r#"#!/bin/sh
dir=$(dirname "$0")
shift 2
case "$1" in
  version) cat "$dir/version" ;;
  id) echo "QmSelf | h1 | Sees 2 other peers" ;;
  pin) cat "$dir/pins" ;;
  *) exit 2 ;;
esac
"#;

fn pin_line(cid: &str) -> String {
    format!("{cid} | pin | PIN | Repl. Factor: -1 | Allocations: [everywhere] | Recursive | Metadata: no\n")
}

/// Renders `step` for h1 of the lab fixture with the variables in `overrides` (`bin_dir` and
/// the like), the planned pinset being `planned` (none when `None`).
fn render_for_h1(
    playbook: &str,
    step: &str,
    overrides: &[(&str, String)],
    planned: Option<&[&str]>,
) -> RenderedStep {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let inventory = Inventory::load(
        &root.join("tests/fixtures/playbooks/lab_inventory.yaml"),
        &overrides,
    )
    .unwrap();
    let procedure = Procedure::load(&root.join("playbooks").join(playbook)).unwrap();
    let host = inventory.host("h1").unwrap();
    let mut context =
        TemplateContext::placeholder(&inventory, host, inventory.hosts.last().unwrap());
    if let Some(planned) = planned {
        let mut sorted: Vec<&str> = planned.to_vec();
        sorted.sort();
        let listing: String = sorted.iter().map(|cid| format!("{cid}\n")).collect();
        context.cluster.pins = Some(PinsContext {
            count: planned.len(),
            hash: Sha256::digest(listing.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        });
    }
    procedure
        .render_step(procedure.step(step).unwrap(), &context)
        .unwrap()
        .unwrap()
}

/// Renders `step`'s wait for h1 of the lab fixture, with `bin_dir` pointing at `bin` and the
/// planned pinset being `planned`.
fn gate(playbook: &str, step: &str, bin: &Path, planned: &[&str]) -> String {
    let overrides = [("bin_dir", bin.display().to_string())];
    render_for_h1(playbook, step, &overrides, Some(planned))
        .wait_until
        .expect("a health gate")
        .command
}

fn run_gate(script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a step's `script` that must succeed (else fails with `what` and its stderr); returns
/// what it printed, trimmed.
fn step_stdout(script: &str, what: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes the executable `name` into `bin` with the shell `script`; returns its path.
fn fake_binary(bin: &Path, name: &str, script: &str) -> std::path::PathBuf {
    let path = bin.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The start of a fake binary that counts its runs in `calls` beside it: `$n` is the number of
/// runs before this one.
const COUNTS_CALLS: &str = "#!/bin/sh\ndir=$(dirname \"$0\")\nn=$(cat \"$dir/calls\" 2>/dev/null || echo 0)\necho $((n + 1)) >\"$dir/calls\"\n";

/// How many times the fake binaries of `bin` counting their runs ran.
fn calls(bin: &Path) -> String {
    std::fs::read_to_string(bin.join("calls"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_health_gates_fail_when_a_pin_is_lost_or_added() {
    let bin = tempfile::tempdir().unwrap();
    fake_binary(bin.path(), "ipfs-cluster-ctl", FAKE_CTL);
    std::fs::write(bin.path().join("version"), "0.10.1\n").unwrap();
    let planned = ["QmAAAA", "QmBBBB", "QmCCCC"];
    let set_pins = |cids: &[&str]| {
        std::fs::write(
            bin.path().join("pins"),
            cids.iter().map(|c| pin_line(c)).collect::<String>(),
        )
        .unwrap()
    };

    for (playbook, step) in [
        ("standard.yaml", "cluster-healthy"),
        ("bootstrap.yaml", "cluster-healthy"),
    ] {
        let script = gate(playbook, step, bin.path(), &planned);
        set_pins(&["QmCCCC", "QmAAAA", "QmBBBB"]);
        let (ok, stderr) = run_gate(&script);
        assert!(
            ok,
            "{playbook}: a healthy peer with every pin passes: {stderr}"
        );

        set_pins(&["QmAAAA", "QmCCCC"]);
        let (ok, stderr) = run_gate(&script);
        assert!(!ok, "{playbook}: a lost pin fails the gate");
        assert!(
            stderr.contains("the pinset differs from the 3 pins planned"),
            "{stderr}"
        );

        set_pins(&["QmAAAA", "QmBBBB", "QmCCCC", "QmDDDD"]);
        assert!(
            !run_gate(&script).0,
            "{playbook}: an unexpected pin fails the gate"
        );

        set_pins(&planned);
        std::fs::write(bin.path().join("version"), "0.9.0\n").unwrap();
        assert!(
            !run_gate(&script).0,
            "{playbook}: the old version fails the gate"
        );
        std::fs::write(bin.path().join("version"), "0.10.1\n").unwrap();
    }
}

/// A fake ctl whose `id` prints the file `id` (the real 1.x text output, first lines).
const FAKE_CTL_ID: &str = r#"#!/bin/sh
dir=$(dirname "$0")
shift 2
case "$1" in
  version) cat "$dir/version" ;;
  id) cat "$dir/id" ;;
  pin) cat "$dir/pins" ;;
  *) exit 2 ;;
esac
"#;

/// A real 1.x peer answers `id` (version, peers, pins) while it cannot reach its IPFS daemon,
/// and is not ready then: it pins nothing and sends no metrics. The gates wait for it.
#[test]
fn the_health_gates_fail_while_a_peer_cannot_reach_its_ipfs_daemon() {
    let bin = tempfile::tempdir().unwrap();
    fake_binary(bin.path(), "ipfs-cluster-ctl", FAKE_CTL_ID);
    std::fs::write(bin.path().join("version"), "0.10.1\n").unwrap();
    let planned = ["QmAAAA", "QmBBBB"];
    std::fs::write(
        bin.path().join("pins"),
        planned.iter().map(|c| pin_line(c)).collect::<String>(),
    )
    .unwrap();
    let head = "12D3KooWSelf | h1 | Sees 2 other peers\n  > Addresses:\n    - /ip4/127.1.1.2/tcp/9096/p2p/12D3KooWSelf\n";
    let reached = format!("{head}  > IPFS: 12D3KooWKubo\n    - /ip4/127.1.1.2/tcp/4001\n");
    let waiting = format!(
        "{head}  > IPFS ERROR: Post \"http://127.1.1.2:5001/api/v0/id\": dial tcp 127.1.1.2:5001: connect: connection refused\n"
    );
    for (playbook, step) in [
        ("standard.yaml", "cluster-healthy"),
        ("bootstrap.yaml", "cluster-healthy"),
        ("bootstrap.yaml", "bootstrap-others"),
        ("recover.yaml", "cluster-healthy"),
    ] {
        let script = gate(playbook, step, bin.path(), &planned);
        std::fs::write(bin.path().join("id"), &reached).unwrap();
        let (ok, stderr) = run_gate(&script);
        assert!(
            ok,
            "{playbook} {step}: a peer that reaches IPFS passes: {stderr}"
        );
        std::fs::write(bin.path().join("id"), &waiting).unwrap();
        let (ok, stderr) = run_gate(&script);
        assert!(!ok, "{playbook} {step}: a peer without IPFS fails the gate");
        assert!(stderr.contains("> IPFS ERROR: Post"), "{stderr}");
    }
}

/// Renders `step`'s command for h1 of the lab fixture, as `gate` renders its wait.
fn step_command(playbook: &str, step: &str, bin: &Path, planned: &[&str]) -> String {
    let overrides = [("bin_dir", bin.display().to_string())];
    render_for_h1(playbook, step, &overrides, Some(planned))
        .command
        .expect("a command")
}

/// A real raft peer exports only its last snapshot: one that could not snapshot when it
/// stopped exports an old pinset (or nothing) although its log holds every pin. The export
/// steps keep the export as the backup only when it holds the planned pinset, in each era's
/// format (0.9 arrays, 0.10 `{"/": cid}`, 1.x NDJSON).
#[test]
fn the_state_export_steps_refuse_an_export_without_the_planned_pinset() {
    let bin = tempfile::tempdir().unwrap();
    fake_binary(
        bin.path(),
        "ipfs-cluster-service",
        "#!/bin/sh\ncat \"$(dirname \"$0\")/export\"\n",
    );
    let planned = ["QmAAAA", "QmBBBB"];
    let complete = [
        "[\n  {\n    \"cid\": \"QmBBBB\",\n    \"name\": \"b\"\n  },\n  {\n    \"cid\": \"QmAAAA\"\n  }\n]\n",
        "[{\"cid\": {\"/\": \"QmAAAA\"}, \"name\": \"a\"}, {\"cid\": {\"/\": \"QmBBBB\"}}]\n",
        "{\"cid\":\"QmAAAA\",\"name\":\"a b\",\"reference\":null}\n{\"cid\":\"QmBBBB\",\"reference\":null}\n",
    ];
    for (playbook, step) in [
        ("standard.yaml", "export-state"),
        ("bootstrap.yaml", "export-state"),
    ] {
        let script = step_command(playbook, step, bin.path(), &planned);
        for export in complete {
            std::fs::write(bin.path().join("export"), export).unwrap();
            assert_eq!(
                step_stdout(&script, &format!("{playbook}: {export}")),
                export.trim(),
                "the export itself is the backup"
            );
        }
        for stale in ["{\"cid\":\"QmAAAA\"}\n", ""] {
            std::fs::write(bin.path().join("export"), stale).unwrap();
            let (ok, stderr) = run_gate(&script);
            assert!(!ok, "{playbook}: a stale export {stale:?} is refused");
            assert!(
                stderr.contains("does not hold the 2 pins planned"),
                "{stderr}"
            );
        }
    }
}

/// An export of an interrupted run may still hold the peer's lock when a resumed run exports:
/// the export step waits for the lock instead of failing the run.
#[test]
fn the_state_export_steps_wait_for_a_lock_held_for_a_moment() {
    let bin = tempfile::tempdir().unwrap();
    // Refuses twice with the real error, then exports.
    let service = fake_binary(
        bin.path(),
        "ipfs-cluster-service",
        &format!(
            "{COUNTS_CALLS}if [ \"$n\" -lt 2 ]; then echo 'error obtaining execution lock: lock /c/cluster.lock: someone else has the lock.' >&2; exit 1; fi\n\
             echo '{{\"cid\":\"QmAAAA\"}}'\n"
        ),
    );
    let script = step_command("standard.yaml", "export-state", bin.path(), &["QmAAAA"]);
    assert_eq!(step_stdout(&script, "export-state"), "{\"cid\":\"QmAAAA\"}");
    assert_eq!(calls(bin.path()), "3");
    // Any other failure fails at once, with the command's error.
    std::fs::write(
        &service,
        "#!/bin/sh\necho 'error loading configurations' >&2\nexit 1\n",
    )
    .unwrap();
    let (ok, stderr) = run_gate(&script);
    assert!(
        !ok && stderr.contains("error loading configurations"),
        "{stderr}"
    );
}

/// A real 1.x export crashes now and then after its work (a goroutine of go-ds-crdt reading
/// the pebble store the export closes; one export in three on a dirty store of 1.0.8): the
/// export steps run it again, ten times in all, and fail with the crash after that.
#[test]
fn the_state_export_steps_run_again_an_export_that_crashed() {
    let bin = tempfile::tempdir().unwrap();
    // Crashes as the real one does `crashes` times, then exports.
    let crashing = |crashes: usize| {
        fake_binary(
            bin.path(),
            "ipfs-cluster-service",
            &format!(
                "{COUNTS_CALLS}if [ \"$n\" -lt {crashes} ]; then echo '{{\"cid\":\"QmAA' ; printf 'INFO\\tservice\\tstate successfully exported\\npanic: assignment to entry in nil map\\n\\ngoroutine 97 [running]:\\ngithub.com/ipfs/go-ds-crdt.(*Datastore).repairDAG(0x3c2b)\\n' >&2; exit 2; fi\n\
                 echo '{{\"cid\":\"QmAAAA\"}}'\n"
            ),
        );
        let _ = std::fs::remove_file(bin.path().join("calls"));
    };
    for playbook in ["standard.yaml", "rolling.yaml", "bootstrap.yaml"] {
        // The retries' one-second pauses are not what this shows: `sleep` returns at once.
        let script = format!(
            "sleep() {{ :; }}\n{}",
            step_command(playbook, "export-state", bin.path(), &["QmAAAA"])
        );
        crashing(2);
        // Only the whole export of the run that did not crash is kept.
        assert_eq!(
            step_stdout(&script, playbook),
            "{\"cid\":\"QmAAAA\"}",
            "{playbook}"
        );
        assert_eq!(calls(bin.path()), "3", "{playbook}");
        crashing(10);
        let (ok, stderr) = run_gate(&script);
        assert!(
            !ok && stderr.contains("panic: assignment to entry in nil map"),
            "{playbook}: {stderr}"
        );
        assert_eq!(calls(bin.path()), "10", "{playbook}: ten runs in all");
    }
}

/// Renders the `fail_when` of `step`'s wait for h1 of the lab fixture, with the variables in
/// `overrides` (the service manager and its paths).
fn fail_when(playbook: &str, step: &str, overrides: &[(&str, String)]) -> String {
    render_for_h1(playbook, step, overrides, None)
        .wait_until
        .expect("a wait")
        .fail_when
        .unwrap_or_else(|| panic!("{playbook} {step}: no fail_when"))
}

/// Runs `script` with `bin` first on PATH; (exit 0, stderr).
fn run_with_path(script: &str, bin: &Path) -> (bool, String) {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The waits for a started peer give up (exit 0, saying why, then the log's last errors and its
/// last lines) only when its service manager says it exited and will not start it again: the
/// lab wrapper's `status` says "not running" (3), the systemd unit is inactive or failed, the
/// container is dead, or exited without a restart policy. Running, being restarted by its
/// manager (systemd's `activating`, a container with a restart policy), or a status that cannot
/// be read (the wrapper failing otherwise, no container), the wait goes on.
#[test]
fn the_waits_for_a_started_peer_give_up_only_when_its_service_manager_says_it_exited() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path();
    let state = bin.join("state");
    // A crash: the panic's first line, then more of its trace than the last lines shown.
    let mut log = String::from("INFO\tservice\tstarting\npanic: runtime error: invalid memory address or nil pointer dereference\n");
    for frame in 1..=12 {
        log.push_str(&format!("frame {frame}\n"));
    }
    std::fs::write(bin.join("log"), &log).unwrap();
    fake_binary(
        bin,
        "svc",
        "#!/bin/sh\ndir=$(dirname \"$0\")\ncase \"$1\" in\n  status) case \"$(cat \"$dir/state\")\" in running) exit 0 ;; stopped) exit 3 ;; *) exit 1 ;; esac ;;\n  log) tail -n \"$2\" \"$dir/log\" ;;\n  *) exit 2 ;;\nesac\n",
    );
    fake_binary(
        bin,
        "systemctl",
        "#!/bin/sh\ndir=$(dirname \"$0\")\n[ \"$1 $2\" = \"is-active ipfs-cluster\" ] || exit 2\ns=$(cat \"$dir/state\")\necho \"$s\"\n[ \"$s\" = active ]\n",
    );
    fake_binary(
        bin,
        "journalctl",
        "#!/bin/sh\ndir=$(dirname \"$0\")\n[ \"$1 $2 $3 $5 $6 $7\" = \"--unit ipfs-cluster --lines --no-pager --output cat\" ] || exit 2\ntail -n \"$4\" \"$dir/log\"\n",
    );
    fake_binary(
        bin,
        "docker",
        "#!/bin/sh\ndir=$(dirname \"$0\")\ncase \"$1\" in\n  inspect) [ \"$5 $6\" = \"{{.State.Status}} {{.HostConfig.RestartPolicy.Name}} ipfs-cluster\" ] || exit 2; s=$(cat \"$dir/state\"); [ -n \"$s\" ] || exit 1; echo \"$s\" ;;\n  logs) [ \"$2 $4\" = \"--tail ipfs-cluster\" ] || exit 2; tail -n \"$3\" \"$dir/log\" ;;\n  *) exit 2 ;;\nesac\n",
    );
    let shown = "panic: runtime error: invalid memory address or nil pointer dereference\nframe 3\nframe 4\nframe 5\nframe 6\nframe 7\nframe 8\nframe 9\nframe 10\nframe 11\nframe 12";
    type Manager<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let managers: [Manager<'_>; 3] = [
        (
            "lab",
            &[("stopped", "the peer is not running: it exited; from its log:")],
            &["running", "broken"],
        ),
        (
            "systemd",
            &[
                ("inactive", "the unit ipfs-cluster is inactive: the peer exited; from its journal:"),
                ("failed", "the unit ipfs-cluster is failed: the peer exited; from its journal:"),
            ],
            &["active", "activating", "deactivating", ""],
        ),
        (
            "docker",
            &[
                ("exited no", "the container ipfs-cluster is exited (restart policy: no): the peer exited; from its log:"),
                ("exited ", "the container ipfs-cluster is exited (restart policy: no): the peer exited; from its log:"),
                ("dead always", "the container ipfs-cluster is dead (restart policy: always): the peer exited; from its log:"),
            ],
            &["running no", "restarting always", "exited always", "exited unless-stopped", "exited on-failure", "created no", ""],
        ),
    ];
    let waits = [
        ("rolling.yaml", "peer-ready"),
        ("standard.yaml", "cluster-healthy"),
        ("bootstrap.yaml", "cluster-healthy"),
        ("recover.yaml", "cluster-healthy"),
        ("migrate-crdt.yaml", "cluster-healthy"),
    ];
    for (manager, exited, alive) in managers {
        let overrides = [
            ("service_manager", manager.to_string()),
            ("service_cmd", bin.join("svc").display().to_string()),
        ];
        for (playbook, step) in waits {
            let script = fail_when(playbook, step, &overrides);
            for (state_now, why) in exited {
                std::fs::write(&state, state_now).unwrap();
                let (gives_up, stderr) = run_with_path(&script, bin);
                assert!(
                    gives_up,
                    "{playbook} {step} ({manager}, {state_now}): {stderr}"
                );
                assert_eq!(
                    stderr.trim_end(),
                    format!("{why}\n{shown}"),
                    "{playbook} {step} ({manager}, {state_now})"
                );
            }
            for state_now in alive {
                std::fs::write(&state, state_now).unwrap();
                let (gives_up, stderr) = run_with_path(&script, bin);
                assert!(
                    !gives_up,
                    "{playbook} {step} ({manager}, {state_now}): the wait goes on: {stderr}"
                );
                assert_eq!(stderr, "", "{playbook} {step} ({manager}, {state_now})");
            }
        }
    }

    // The lab wrapper notes how its daemon ended; the first line says it, when the note is of
    // the last start (an earlier run's end says nothing of this one).
    let overrides = [
        ("service_manager", "lab".to_string()),
        ("service_cmd", bin.join("svc").display().to_string()),
    ];
    let script = fail_when("rolling.yaml", "peer-ready", &overrides);
    std::fs::write(&state, "stopped").unwrap();
    let start =
        "-- ipfs-cluster-svc 2026-12-07T18:00:00Z: start: /h/bin/ipfs-cluster-service daemon";
    let killed = "-- ipfs-cluster-svc 2026-12-07T18:00:02Z: the daemon (pid 42) was killed by signal 9 (KILL)";
    let exited =
        "-- ipfs-cluster-svc 2026-12-07T18:00:02Z: the daemon (pid 42) exited with status 1";
    for (lines, why) in [
        (
            [start, "INFO\tservice\tstarting", killed],
            "it was killed by signal 9 (KILL)",
        ),
        (
            [start, "ERROR\tservice\tno", exited],
            "it exited with status 1",
        ),
        ([killed, start, "INFO\tservice\tstarting"], "it exited"),
    ] {
        std::fs::write(bin.join("log"), lines.join("\n") + "\n").unwrap();
        let (gives_up, stderr) = run_with_path(&script, bin);
        assert!(gives_up, "{stderr}");
        assert_eq!(
            stderr.lines().next(),
            Some(format!("the peer is not running: {why}; from its log:").as_str()),
            "{stderr}"
        );
    }
}
