//! The service wrapper `ipfs-cluster-svc`, driven directly and over SSH, around a fake daemon
//! that records its arguments and "snapshots" on SIGTERM.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cluster_testbed::lab::{network, wrapper, Ports};
use cluster_testbed::sshd::{self, SshdSpec};

/// A fake `ipfs-cluster-service`: logs its arguments, writes `snapshot` on SIGTERM, then exits.
const FAKE_DAEMON: &str = r#"#!/bin/sh
echo "daemon args: $*"
cfg=$2
trap 'echo taken >"$cfg/snapshot"; echo "snapshot written"; exit 0' TERM
echo "** IPFS Cluster is READY **"
while :; do sleep 0.05; done
"#;

/// The same, deaf to SIGTERM (to prove `stop` falls back to SIGKILL).
const DEAF_DAEMON: &str = r#"#!/bin/sh
trap '' TERM
while :; do sleep 0.05; done
"#;

/// A host home with the wrapper, a fake daemon and a unit; stops the daemon when dropped.
struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
}

impl Home {
    fn new(daemon: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let bin = home.join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(home.join(".ipfs-cluster")).unwrap();
        for (name, text) in [
            (wrapper::FILE_NAME, wrapper::SCRIPT),
            ("ipfs-cluster-service", daemon),
        ] {
            fs::write(bin.join(name), text).unwrap();
            fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(
            home.join("ipfs-cluster.unit"),
            wrapper::unit_file(&bin, &home.join(".ipfs-cluster")),
        )
        .unwrap();
        Home { _dir: dir, home }
    }

    fn svc(&self, args: &[&str]) -> Output {
        self.svc_env(args, &[])
    }

    fn svc_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(self.home.join("bin").join(wrapper::FILE_NAME))
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn pid(&self) -> u32 {
        fs::read_to_string(self.home.join("ipfs-cluster.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.home.join("ipfs-cluster.log")).unwrap_or_default()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(self.home.join("ipfs-cluster.pid")) {
            if let Ok(pid) = pid.trim().parse() {
                sshd::stop_pid(pid, Duration::from_secs(1));
            }
        }
    }
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_is_3_when_stopped_and_0_when_running() {
    let home = Home::new(FAKE_DAEMON);
    assert_eq!(code(&home.svc(&["status"])), Some(3));
    let start = home.svc(&["start"]);
    assert_eq!(code(&start), Some(0), "{start:?}");
    assert!(sshd::pid_alive(home.pid()));
    let status = home.svc(&["status"]);
    assert_eq!(code(&status), Some(0));
    assert!(String::from_utf8_lossy(&status.stdout).contains("active (running)"));
    assert_eq!(code(&home.svc(&["stop"])), Some(0));
    assert_eq!(code(&home.svc(&["status"])), Some(3));
    assert!(!home.home.join("ipfs-cluster.pid").exists());
}

#[test]
fn start_of_a_running_service_is_a_no_op() {
    let home = Home::new(FAKE_DAEMON);
    assert_eq!(code(&home.svc(&["start"])), Some(0));
    let pid = home.pid();
    let again = home.svc(&["start", "--bootstrap", "/ip4/127.0.0.1/tcp/1/ipfs/QmX"]);
    assert_eq!(code(&again), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already running"));
    assert_eq!(home.pid(), pid);
    assert!(
        !home.log().contains("--bootstrap"),
        "no second daemon was started"
    );
}

#[test]
fn restart_appends_extra_args_for_that_start_only() {
    let home = Home::new(FAKE_DAEMON);
    assert_eq!(code(&home.svc(&["start"])), Some(0));
    let first = home.pid();
    let restart = home.svc(&["restart", "--upgrade"]);
    assert_eq!(code(&restart), Some(0), "{restart:?}");
    assert_ne!(home.pid(), first);
    wait_for("the restarted daemon's output", || {
        home.log().contains("daemon args: -c")
    });
    let log = home.log();
    assert!(
        log.contains(&format!(
            "daemon args: -c {} daemon --upgrade",
            home.home.join(".ipfs-cluster").display()
        )),
        "{log}"
    );
    // The unit is unchanged: a plain start runs without the extra argument.
    home.svc(&["stop"]);
    home.svc(&["start"]);
    wait_for("the third start's output", || {
        home.log().matches("daemon args:").count() == 3
    });
    assert!(home
        .log()
        .trim_end()
        .lines()
        .rev()
        .find(|l| l.starts_with("daemon args:"))
        .unwrap()
        .ends_with(" daemon"));
    let unit = fs::read_to_string(home.home.join("ipfs-cluster.unit")).unwrap();
    assert!(!unit.contains("--upgrade"));
}

#[test]
fn stop_sends_sigterm_so_the_peer_snapshots() {
    let home = Home::new(FAKE_DAEMON);
    home.svc(&["start"]);
    let pid = home.pid();
    wait_for("the daemon to trap SIGTERM", || {
        home.log().contains("READY")
    });
    let stop = home.svc(&["stop"]);
    assert_eq!(code(&stop), Some(0));
    assert!(
        String::from_utf8_lossy(&stop.stdout).contains("stopped"),
        "{stop:?}"
    );
    assert!(
        !sshd::pid_alive(pid),
        "stop returns only once the daemon is gone"
    );
    assert_eq!(
        fs::read_to_string(home.home.join(".ipfs-cluster/snapshot"))
            .unwrap()
            .trim(),
        "taken"
    );
    // Stopping a stopped service succeeds.
    assert_eq!(code(&home.svc(&["stop"])), Some(0));
}

#[test]
fn stop_kills_a_daemon_that_ignores_sigterm_after_the_timeout() {
    let home = Home::new(DEAF_DAEMON);
    home.svc(&["start"]);
    let pid = home.pid();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let stop = home.svc_env(&["stop"], &[("IPFS_CLUSTER_SVC_STOP_TIMEOUT", "1")]);
    assert_eq!(code(&stop), Some(0));
    assert!(
        String::from_utf8_lossy(&stop.stdout).contains("killed"),
        "{stop:?}"
    );
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(!sshd::pid_alive(pid));
}

/// The wrapper notes in the log how the daemon ended, as systemd's journal does for a unit: a
/// crash leaves its status, a SIGKILL (nothing of the daemon's own) its signal.
#[test]
fn the_log_says_how_the_daemon_ended() {
    let ended = |home: &Home| {
        let mut line = String::new();
        wait_for("the note of the end", || {
            line = home
                .log()
                .lines()
                .rfind(|l| {
                    l.starts_with("-- ipfs-cluster-svc ") && l.contains(": the daemon (pid ")
                })
                .unwrap_or_default()
                .to_string();
            !line.is_empty()
        });
        line
    };
    // It exits by itself, with a status.
    let home = Home::new("#!/bin/sh\necho giving up >&2\nexit 3\n");
    home.svc(&["start"]);
    let pid = home.pid();
    assert!(
        ended(&home).ends_with(&format!(": the daemon (pid {pid}) exited with status 3")),
        "{}",
        home.log()
    );
    assert_eq!(code(&home.svc(&["status"])), Some(3));
    // Stopped with SIGTERM, which it handles: status 0.
    let home = Home::new(FAKE_DAEMON);
    home.svc(&["start"]);
    wait_for("the daemon to trap SIGTERM", || {
        home.log().contains("READY")
    });
    home.svc(&["stop"]);
    assert!(
        ended(&home).ends_with("exited with status 0"),
        "{}",
        home.log()
    );
    // Killed.
    let home = Home::new(DEAF_DAEMON);
    home.svc(&["start"]);
    let pid = home.pid();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        ended(&home).ends_with(&format!(
            ": the daemon (pid {pid}) was killed by signal 9 (KILL)"
        )),
        "{}",
        home.log()
    );
}

#[test]
fn a_unit_without_exec_start_fails_and_unknown_verbs_are_refused() {
    let home = Home::new(FAKE_DAEMON);
    fs::write(home.home.join("ipfs-cluster.unit"), "[Service]\n").unwrap();
    let start = home.svc(&["start"]);
    assert_eq!(code(&start), Some(1));
    assert!(String::from_utf8_lossy(&start.stderr).contains("no ExecStart="));
    assert_eq!(code(&home.svc(&["reload"])), Some(2));
    assert_eq!(code(&home.svc(&[])), Some(2));
}

/// `start` over SSH returns at once: the daemon is detached from the session.
#[test]
fn start_over_ssh_returns_while_the_daemon_keeps_running() {
    if sshd::require_sshd().is_err() {
        eprintln!("skipped: no sshd");
        return;
    }
    let home = Home::new(FAKE_DAEMON);
    let dir = home.home.parent().unwrap().to_path_buf();
    let key = dir.join("id_ed25519");
    sshd::generate_key(&key, "test").unwrap();
    fs::copy(key.with_extension("pub"), dir.join("authorized_keys")).unwrap();
    // A random lab-style address, so parallel runs do not meet.
    let address = network::candidate(1, Ports::default(), 5).addresses[0];
    let spec = SshdSpec {
        dir: dir.join("sshd"),
        address,
        port: sshd::free_port(address, 30_000 + (std::process::id() % 20_000) as u16).unwrap(),
        home: home.home.clone(),
        authorized_keys: dir.join("authorized_keys"),
        netns: None,
        allow_from: None,
    };
    spec.prepare().unwrap();
    let server = spec.start().unwrap();
    fs::write(
        dir.join("known_hosts"),
        spec.known_hosts_line().unwrap() + "\n",
    )
    .unwrap();
    let ssh = |command: &str| ssh(&dir, &spec, command);
    let started = Instant::now();
    let out = ssh("ipfs-cluster-svc start --bootstrap /ip4/127.0.0.1/tcp/9096/ipfs/QmPeer");
    assert!(out.status.success(), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the SSH command waited for the daemon"
    );
    let pid = home.pid();
    std::thread::sleep(Duration::from_millis(300));
    assert!(sshd::pid_alive(pid), "the daemon outlived the SSH session");
    assert_eq!(ssh("ipfs-cluster-svc status").status.code(), Some(0));
    assert!(ssh("ipfs-cluster-svc stop").status.success());
    assert_eq!(ssh("ipfs-cluster-svc status").status.code(), Some(3));
    drop(server);
}

fn ssh(dir: &Path, spec: &SshdSpec, command: &str) -> Output {
    Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .arg("-i")
        .arg(dir.join("id_ed25519"))
        .arg("-p")
        .arg(spec.port.to_string())
        .arg(format!("{}@{}", sshd::current_user(), spec.address))
        .arg(command)
        .output()
        .unwrap()
}
