//! Shared harness of the end-to-end tests: a `cluster-lab` of real sshd hosts that is always
//! taken down (by PID) when the test ends, and a runner for the `cluster-upgrade` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binaries of the workspace: `cluster-upgrade` is ours; `cluster-lab` is the test bed's,
/// built beside it by `cargo build --workspace --bins` (scripts/test does that first).
pub fn cluster_upgrade() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cluster-upgrade"))
}

pub fn cluster_lab() -> PathBuf {
    let path = cluster_upgrade().with_file_name("cluster-lab");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A running lab; `down` runs when it is dropped, even when the test panics.
pub struct Lab {
    pub dir: tempfile::TempDir,
}

/// What `cluster-lab status --json` says of one host.
#[derive(Debug, serde::Deserialize)]
pub struct HostStatus {
    pub host: String,
    pub version: Option<String>,
    pub running: bool,
    pub peers: Option<u64>,
    pub pins: Option<u64>,
}

impl Lab {
    /// `cluster-lab up` with `peers` hosts on `version` holding `pins` pins.
    pub fn up(peers: usize, version: &str, pins: usize) -> Lab {
        Lab::up_with(peers, version, pins, &[])
    }

    pub fn up_with(peers: usize, version: &str, pins: usize, extra: &[&str]) -> Lab {
        let lab = Lab {
            dir: tempfile::Builder::new()
                .prefix("cu-lab-")
                .tempdir()
                .expect("temp dir"),
        };
        let out = Command::new(cluster_lab())
            .args(["up", "--dir"])
            .arg(lab.path())
            .args([
                "--peers",
                &peers.to_string(),
                "--version",
                version,
                "--pins",
                &pins.to_string(),
            ])
            .args(extra)
            .output()
            .expect("run cluster-lab up");
        assert!(
            out.status.success(),
            "cluster-lab up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn inventory(&self) -> PathBuf {
        self.path().join("inventory.yaml")
    }

    /// Runs `cluster-lab ARGS... --dir DIR` style subcommands (`fault`, `status`).
    pub fn lab(&self, args: &[&str]) -> Output {
        let mut command = Command::new(cluster_lab());
        command
            .arg(args[0])
            .arg("--dir")
            .arg(self.path())
            .args(&args[1..]);
        command.output().expect("run cluster-lab")
    }

    pub fn status(&self) -> Vec<HostStatus> {
        let out = self.lab(&["status", "--json"]);
        assert!(
            out.status.success(),
            "cluster-lab status failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// A host's home folder (binaries in `bin/`, config in `.ipfs-cluster/`).
    pub fn home(&self, host: &str) -> PathBuf {
        self.path().join("hosts").join(host).join("home")
    }

    pub fn sshd_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.path().join("hosts").join(host).join("sshd/sshd.log"))
            .unwrap_or_default()
    }

    /// The host's REST API multiaddr, from the inventory the lab wrote.
    pub fn api(&self, host: &str) -> String {
        let inventory = std::fs::read_to_string(self.inventory()).unwrap();
        let mut in_host = false;
        for line in inventory.lines() {
            if line.trim_start().starts_with("- name:") {
                in_host = line.contains(&format!("\"{host}\""));
            }
            if in_host {
                if let Some(api) = line.trim().strip_prefix("api:") {
                    return api.trim().trim_matches('"').to_string();
                }
            }
        }
        panic!("no api for {host} in the inventory");
    }

    /// Runs this host's `ipfs-cluster-ctl` against its API, locally (test set-up only; the tool
    /// under test goes through SSH).
    pub fn ctl(&self, host: &str, args: &[&str]) -> Output {
        Command::new(self.home(host).join("bin/ipfs-cluster-ctl"))
            .args(["--host", &self.api(host)])
            .args(args)
            .output()
            .expect("run ipfs-cluster-ctl")
    }

    /// The lab's host names, in the order of `lab.json`.
    pub fn host_names(&self) -> Vec<String> {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.path().join("lab.json")).unwrap()).unwrap();
        state["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Starts `host`'s peer by hand over SSH with the lab's wrapper, as an operator would after
    /// reading why it exited, asserting that the start succeeded.
    pub fn start_peer_by_hand(&self, host: &str) {
        let svc = self.home(host).join("bin/ipfs-cluster-svc");
        let started = self.ssh(host, &format!("'{}' start", svc.display()));
        assert_success(&started, &format!("starting {host}'s peer by hand"));
    }

    /// Runs `script` on `host` of `lab` over SSH (OpenSSH's client, the lab's key and known_hosts).
    pub fn ssh(&self, host: &str, script: &str) -> Output {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.path().join("lab.json")).unwrap()).unwrap();
        let entry = state["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == host)
            .unwrap()
            .clone();
        std::process::Command::new("ssh")
            .arg("-i")
            .arg(self.path().join("id_ed25519"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.path().join("known_hosts").display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-p",
            ])
            .arg(state["ports"]["ssh"].to_string())
            .arg(format!(
                "{}@{}",
                state["user"].as_str().unwrap(),
                entry["address"].as_str().unwrap()
            ))
            .arg(script)
            .output()
            .unwrap()
    }

    pub fn peer_id(&self, host: &str) -> String {
        let out = self.ctl(host, &["--enc", "json", "id"]);
        assert!(
            out.status.success(),
            "ctl id on {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        id["id"].as_str().unwrap().to_string()
    }

    /// For a failed test: each peer's last log lines that tell of trouble (errors, warnings, a
    /// dirty CRDT store, a repair), on stderr, which the test harness shows with the failure.
    fn print_peer_troubles(&self) {
        const LAST: usize = 12;
        let Ok(hosts) = std::fs::read_dir(self.path().join("hosts")) else {
            return;
        };
        let mut hosts: Vec<PathBuf> = hosts.flatten().map(|e| e.path()).collect();
        hosts.sort();
        for host in hosts {
            let log = host.join("home").join("ipfs-cluster.log");
            let Ok(text) = std::fs::read_to_string(&log) else {
                continue;
            };
            let name = host.file_name().unwrap_or_default().to_string_lossy();
            let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("failed-labs")
                .join(self.path().file_name().unwrap_or_default());
            if std::fs::create_dir_all(&kept).is_ok()
                && std::fs::write(kept.join(format!("{name}.log")), &text).is_ok()
            {
                eprintln!("{name}: its whole log is kept in {}", kept.display());
            }
            let troubles: Vec<&str> = text
                .lines()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    ["error", "warn", "dirty", "repair", "panic"]
                        .iter()
                        .any(|w| l.contains(w))
                })
                .collect();
            eprintln!(
                "{name}: {} lines of trouble in its log, the last {LAST}:",
                troubles.len()
            );
            for line in &troubles[troubles.len().saturating_sub(LAST)..] {
                eprintln!("  {}", line.chars().take(300).collect::<String>());
            }
        }
    }

    /// Polls `condition` every 100 ms until it holds or `deadline` passes.
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        mut condition: impl FnMut(&Lab) -> bool,
    ) {
        let start = Instant::now();
        while !condition(self) {
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_peer_troubles();
        }
        // No second panic while unwinding: without the binary there is no lab to take down.
        let lab = cluster_upgrade().with_file_name("cluster-lab");
        let _ = Command::new(lab)
            .args(["down", "--dir"])
            .arg(self.path())
            .output();
    }
}

/// One run of `cluster-upgrade`, built up and then checked: the exact exit status always, and
/// stdout or stderr when the test says so (casey/just's `Test` builder).
///
/// ```ignore
/// Test::new().args(["check", "bad.yaml"]).status(2).stderr_contains("bad.yaml:3:5").run();
/// ```
#[must_use]
pub struct Test {
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
    status: i32,
    stdout: Option<String>,
    stderr_contains: Vec<String>,
}

impl Test {
    pub fn new() -> Test {
        Test {
            args: Vec::new(),
            env: vec![("NO_COLOR".into(), "1".into())],
            current_dir: None,
            status: 0,
            stdout: None,
            stderr_contains: Vec::new(),
        }
    }

    pub fn args<I, A>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = A>,
        A: AsRef<std::ffi::OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Test {
        self.current_dir = Some(dir.to_path_buf());
        self
    }

    /// The exit status expected (0 unless said).
    pub fn status(mut self, status: i32) -> Test {
        self.status = status;
        self
    }

    /// The whole of stdout expected.
    pub fn stdout(mut self, stdout: &str) -> Test {
        self.stdout = Some(stdout.into());
        self
    }

    pub fn stderr_contains(mut self, part: &str) -> Test {
        self.stderr_contains.push(part.into());
        self
    }

    /// Runs it and checks what was said; returns the output for more checks or a snapshot.
    pub fn run(self) -> Output {
        let mut command = Command::new(cluster_upgrade());
        command.args(&self.args).stdin(std::process::Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let output = command.output().expect("run cluster-upgrade");
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert_eq!(
            output.status.code(),
            Some(self.status),
            "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.args
        );
        if let Some(expected) = &self.stdout {
            assert_eq!(&stdout, expected, "stdout of {:?}", self.args);
        }
        for part in &self.stderr_contains {
            assert!(
                stderr.contains(part.as_str()),
                "stderr of {:?} lacks {part:?}:\n{stderr}",
                self.args
            );
        }
        output
    }
}

/// Snapshot settings for what users see: temporary paths, ports, peer ids, run ids, times and
/// digests replaced by fixed words, so a snapshot only changes when the output does.
pub fn snapshot_filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    let repo = env!("CARGO_MANIFEST_DIR").replace('.', r"\.");
    settings.add_filter(&repo, "[REPO]");
    for (pattern, replacement) in [
        (r"/tmp/[A-Za-z0-9._/-]+", "[PATH]"),
        (r"127\.\d+\.\d+\.\d+:\d+", "[ADDR]"),
        // The lab logs in as whoever runs the tests.
        (r"[A-Za-z0-9._-]+@\[ADDR\]", "[USER]@[ADDR]"),
        (
            r"\b(Qm[1-9A-HJ-NP-Za-km-z]{44}|12D3Koo[1-9A-HJ-NP-Za-km-z]{45})\b",
            "[PEER]",
        ),
        (
            r"\b(Qm|12D3)[1-9A-HJ-NP-Za-km-z]*…[1-9A-HJ-NP-Za-km-z]+",
            "[PEER]",
        ),
        (r"\b127\.\d+\.\d+\.\d+\b", "[IP]"),
        (r"\b\d{8}T\d{6}Z-[0-9a-f]{4}\b", "[RUN]"),
        (r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\b", "[TIME]"),
        (r"\b[0-9a-f]{64}\b", "[SHA256]"),
        (r"\b\d+(\.\d+)?m?s\b", "[DURATION]"),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings
}

/// Runs `cluster-upgrade ARGS...`.
pub fn run(args: &[&str]) -> Output {
    Command::new(cluster_upgrade())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cluster-upgrade")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Lab {
    /// Every peer on `version`, running, seeing `peers` peers and listing `pins` pins.
    #[track_caller]
    pub fn assert_cluster(&self, version: &str, peers: u64, pins: u64) {
        for host in self.status() {
            assert_eq!(host.version.as_deref(), Some(version), "{host:?}");
            assert!(host.running, "{host:?}");
            assert_eq!(host.peers, Some(peers), "{host:?}");
            assert_eq!(host.pins, Some(pins), "{host:?}");
        }
    }

    /// The run directories in the lab's state directory, oldest first.
    pub fn run_dirs(&self) -> Vec<PathBuf> {
        let runs = self.path().join(".cluster-upgrade/runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs
    }

    /// The journals of every run, concatenated.
    pub fn journal_text(&self) -> String {
        self.run_dirs()
            .iter()
            .map(|run| std::fs::read_to_string(run.join("journal.jsonl")).unwrap_or_default())
            .collect()
    }

    /// The journal records of every run.
    pub fn journal(&self) -> Vec<serde_json::Value> {
        self.journal_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Runs `cluster-upgrade ARGS` and SIGKILLs it once the journal shows `step` started for the
    /// `occurrence`-th time.
    pub fn kill_when_started(&self, args: &[&str], step: &str, occurrence: usize) {
        let state = self.path().join(".cluster-upgrade");
        let mut child = start_until(args, &state, step, occurrence);
        child.kill().expect("kill");
        child.wait().expect("reap");
    }
}

/// A rolling run stopped by a peer that crashed as it started: it failed, its output says the
/// wait gave up because its `fail_when` held (`why`: what `service_exited` printed first), its
/// table shows the Go panic from the peer's log, its only failed step is `peer-ready` on
/// `host`, and `next` was never stopped.
pub fn assert_roll_stopped_by_crash(
    lab: &Lab,
    out: &Output,
    why: &str,
    (host, next): (&str, &str),
) {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "the roll must stop: {stderr}");
    assert!(
        stderr.contains("`wait_until` gave up after")
            && stderr.contains(&format!("its `fail_when` holds ({why})")),
        "{stderr}"
    );
    // The run's table, on stdout, shows each failure with the end of what it printed.
    let table = text(&out.stdout);
    assert!(
        table.contains("panic: runtime error: invalid memory address or nil pointer dereference"),
        "the failure shows the end of the peer's log: {table}"
    );
    let journal = lab.journal_text();
    let records = records(&journal);
    let failed: Vec<&(String, String, String)> = records
        .iter()
        .filter(|(e, _, _)| e == "step_failed")
        .collect();
    assert_eq!(
        failed,
        [&("step_failed".into(), "peer-ready".into(), host.to_string())],
        "{journal}"
    );
    assert!(
        !records
            .iter()
            .any(|(e, s, h)| e == "step_started" && s == "stop-peer" && h == next),
        "{next} was not stopped while {host} was down: {journal}"
    );
}

/// A journal's records in order, as (event, step, host).
pub fn records(journal: &str) -> Vec<(String, String, String)> {
    journal
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (field("event"), field("step"), field("host"))
        })
        .collect()
}

/// The journals of every run of the state directory `state`, concatenated.
pub fn journals_in(state: &Path) -> String {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|run| std::fs::read_to_string(run.join("journal.jsonl")).unwrap_or_default())
        .collect()
}

/// The journal of each run of the state directory `state`, by run id.
pub fn journals_by_run(state: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(state.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let journal =
                std::fs::read_to_string(e.path().join("journal.jsonl")).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), journal)
        })
        .collect()
}

/// Starts `cluster-upgrade ARGS` and returns it, still running, once the journals of `state`
/// show `step` started for the `occurrence`-th time. Its output is kept in pipes (a lab run's
/// output fits in them) for `wait_with_output`.
pub fn start_until(
    args: &[&str],
    state: &Path,
    step: &str,
    occurrence: usize,
) -> std::process::Child {
    let mut child = Command::new(cluster_upgrade())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cluster-upgrade");
    let needle = format!("\"event\":\"step_started\",\"step\":\"{step}\"");
    let start = Instant::now();
    while journals_in(state).matches(&needle).count() < occurrence {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{args:?} ended ({status}) before {step} started");
        }
        assert!(
            // Generous: a loaded 2-core CI machine runs many labs at once.
            start.elapsed() < Duration::from_secs(300),
            "{step} never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

impl Lab {}

/// No (step, host) is recorded finished twice: a finished step never ran again (unless the
/// run reset it on purpose, journalled as `step_reset`).
#[track_caller]
pub fn assert_no_step_finished_twice(records: &[serde_json::Value]) {
    let mut finished = std::collections::BTreeMap::new();
    for record in records {
        let key = (record["step"].to_string(), record["host"].to_string());
        if record["event"] == "step_finished" {
            *finished.entry(key).or_insert(0) += 1;
        } else if record["event"] == "step_reset" {
            finished.remove(&key);
        }
    }
    let twice: Vec<_> = finished.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "finished steps ran again: {twice:?}");
}

/// Fails the test with both outputs unless the command succeeded.
#[track_caller]
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

impl Lab {
    /// `cluster-upgrade plan INVENTORY --out FILE`, asserting it succeeded.
    pub fn save_plan(&self, file: &Path) {
        let out = run(&[
            "plan",
            self.inventory().to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ]);
        assert_success(&out, "plan");
    }
}

/// The inventory fixtures' key (`tests/fixtures/inventory/id_test`) is a private key; git checks
/// it out readable by all (it keeps no mode but the executable bit), and a key others can read
/// is refused, as OpenSSH does. Every test that loads an inventory naming it calls this first.
pub fn private_key_fixture() {
    use std::os::unix::fs::PermissionsExt;
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory/id_test");
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// For each of `steps`: runs cluster-upgrade with `args` (state directory `state`) until that
/// step starts once more than before, then SIGKILLs it.
pub fn kill_as_each_starts(args: &[&str], state: &std::path::Path, steps: &[&str]) {
    for step in steps {
        let needle = format!("\"event\":\"step_started\",\"step\":\"{step}\"");
        let already = journals_in(state).matches(&needle).count();
        let mut child = start_until(args, state, step, already + 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
