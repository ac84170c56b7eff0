//! Shared harness of the lab tests: a lab in its own temporary folder, driven through the
//! `cluster-lab` binary, and always torn down (`down` runs in `Drop`, even when a test fails).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const LAB: &str = env!("CARGO_BIN_EXE_cluster-lab");

/// Runs `cluster-lab ARGS`.
pub fn cluster_lab(args: &[&str]) -> Output {
    Command::new(LAB)
        .args(args)
        .output()
        .expect("cluster-lab runs")
}

/// Fails with the command's output unless it succeeded.
pub fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "cluster-lab failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A lab folder; `down` is run when it is dropped.
pub struct Lab {
    pub dir: tempfile::TempDir,
    /// How long `up` took.
    pub up_time: Duration,
    /// What `up` printed on stdout (a real lab's start times and memory).
    pub up_stdout: String,
}

impl Lab {
    /// `cluster-lab up --dir <temp> --peers N --version V --pins K` plus `extra`.
    pub fn up(peers: usize, version: &str, pins: usize, extra: &[&str]) -> Lab {
        let mut lab = Lab {
            dir: tempfile::Builder::new()
                .prefix("lab-test-")
                .tempdir()
                .unwrap(),
            up_time: Duration::ZERO,
            up_stdout: String::new(),
        };
        let (n, k) = (peers.to_string(), pins.to_string());
        let mut args = vec![
            "up",
            "--dir",
            lab.path_str(),
            "--peers",
            &n,
            "--version",
            version,
            "--pins",
            &k,
        ];
        args.extend_from_slice(extra);
        let start = Instant::now();
        let output = cluster_lab(&args);
        lab.up_time = start.elapsed();
        if !output.status.success() {
            let logs = lab.logs();
            panic!(
                "cluster-lab up failed ({}):\n{}\n{}\nhost logs:\n{logs}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        lab.up_stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        eprintln!(
            "up of {peers} hosts ({pins} pins) took {:.1}s\n{}{}",
            lab.up_time.as_secs_f64(),
            String::from_utf8_lossy(&output.stderr),
            lab.up_stdout
        );
        lab
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("temp paths are UTF-8")
    }

    /// `cluster-lab <command> --dir <lab> ARGS`.
    pub fn run(&self, command: &str, args: &[&str]) -> Output {
        let mut all = vec![command, "--dir", self.path_str()];
        all.extend_from_slice(args);
        cluster_lab(&all)
    }

    /// `cluster-lab fault --dir <lab> ARGS`, required to succeed; returns its stdout.
    pub fn fault(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&ok(self.run("fault", args)).stdout).into_owned()
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> Vec<Value> {
        let output = ok(self.run("status", &["--json"]));
        serde_json::from_slice::<Value>(&output.stdout)
            .expect("status --json is JSON")
            .as_array()
            .expect("an array")
            .clone()
    }

    /// The status of one host.
    pub fn host_status(&self, host: &str) -> Value {
        self.status()
            .into_iter()
            .find(|s| s["host"] == host)
            .expect("host in status")
    }

    pub fn lab_json(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.path().join("lab.json")).unwrap()).unwrap()
    }

    /// The PIDs of every recorded sshd and every peer PID file, right now.
    pub fn recorded_pids(&self) -> Vec<u32> {
        let state = self.lab_json();
        // A systemd host's sshd and peer run in its container, which nspawn's PID stands for.
        let mut pids: Vec<u32> = state["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|h| [h["sshd_pid"].as_u64(), h["container"]["pid"].as_u64()])
            .flatten()
            .map(|p| p as u32)
            .collect();
        for host in state["hosts"].as_array().unwrap() {
            let pid_file = self
                .home(host["name"].as_str().unwrap())
                .join("ipfs-cluster.pid");
            if let Some(pid) = fs::read_to_string(pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                pids.push(pid);
            }
        }
        pids
    }

    pub fn home(&self, host: &str) -> PathBuf {
        self.path().join("hosts").join(host).join("home")
    }

    /// SSH to a host of the lab with the lab's key and known_hosts.
    pub fn ssh(&self, host: &str, command: &str) -> Output {
        let state = self.lab_json();
        let record = state["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == host)
            .unwrap();
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=5",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.path().join("known_hosts").display()
            ))
            .arg("-i")
            .arg(self.path().join("id_ed25519"))
            .arg("-p")
            .arg(state["ports"]["ssh"].to_string())
            .arg(format!(
                "{}@{}",
                state["user"].as_str().unwrap(),
                record["address"].as_str().unwrap()
            ))
            .arg(command)
            .output()
            .unwrap()
    }

    /// The tail of every host's peer log (a systemd host's console), for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let Ok(hosts) = fs::read_dir(self.path().join("hosts")) else {
            return text;
        };
        for host in hosts.flatten() {
            // A systemd host's peer logs to its journal; its container's console is ours.
            let log = fs::read_to_string(host.path().join("home/ipfs-cluster.log"))
                .or_else(|_| fs::read_to_string(host.path().join("container/console.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            text.push_str(&format!(
                "== {}\n{}\n",
                host.file_name().to_string_lossy(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        text
    }

    /// Waits until `check` holds for the status, or fails with the last status seen.
    pub fn wait_status(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; last status: {status:#?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(LAB)
            .args(["down", "--dir", self.path_str()])
            .output();
    }
}

/// Every live process whose command line mentions `dir` (zombies excluded).
pub fn processes_mentioning(dir: &Path) -> Vec<(u32, String)> {
    let marker = dir.to_str().unwrap();
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    cluster_testbed::sshd::pid_alive(pid)
}

/// Asserts the status of a healthy lab: every host on `version`, running, seeing `peers` peers
/// and listing `pins` pins.
pub fn assert_healthy(status: &[Value], hosts: usize, version: &str, pins: usize) {
    assert_eq!(status.len(), hosts, "{status:#?}");
    for (i, host) in status.iter().enumerate() {
        assert_eq!(host["host"], format!("h{}", i + 1));
        assert_eq!(host["version"], version, "{host}");
        assert_eq!(host["running"], true, "{host}");
        assert_eq!(host["peers"], hosts, "{host}");
        assert_eq!(host["pins"], pins, "{host}");
    }
}

/// Runs `down` and asserts that nothing of the lab is left: neither a recorded PID nor any
/// process whose command line mentions the lab folder.
pub fn down_and_assert_clean(lab: &Lab) {
    let pids = lab.recorded_pids();
    assert!(!pids.is_empty());
    ok(lab.run("down", &[]));
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived down");
    }
    let left = processes_mentioning(lab.path());
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

/// Runs `command` on `host` over SSH and returns its trimmed stdout, requiring success.
pub fn on(lab: &Lab, host: &str, command: &str) -> String {
    let out = lab.ssh(host, command);
    assert!(
        out.status.success(),
        "{host}: `{command}` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
