//! Harness for the stand-in tests: release files in a temp dir, peers on loopback with short
//! timeouts, and guards that kill every started daemon by PID.
#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cluster_testbed::release::write_release;

/// A temporary test bed: releases and peer folders.
pub struct Bed {
    pub dir: tempfile::TempDir,
    secret: String,
}

/// One peer: its config folder, loopback IP and ports.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub config: PathBuf,
    pub ip: String,
    pub cluster_port: u16,
    pub api_port: u16,
}

impl Peer {
    /// The REST API multiaddr, for `ipfs-cluster-ctl --host`.
    pub fn api(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.ip, self.api_port)
    }
}

/// A running daemon, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub peer: Peer,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback IP of its own for each peer, so the default ports can be used without racing
/// other tests (or the thousands of ephemeral client ports of 127.0.0.1) for free ports.
fn next_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let second = 2 + std::process::id() % 250;
    format!("127.{second}.{}.{}", n / 250, n % 250 + 1)
}

/// Removes release folders of earlier builds (each holds ten copies of the debug binary),
/// sparing recent ones that a concurrent test run of another build may still use.
fn prune_stale_releases(current: &Path) {
    let Some(parent) = current.parent() else {
        return;
    };
    for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if name.starts_with("standin-releases-") && path != current && old {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// A CID-looking string, distinct per `n`.
pub fn cid(n: usize) -> String {
    const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let base = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb";
    format!(
        "{base}{}{}",
        B58[(n / 58) % 58] as char,
        B58[n % 58] as char
    )
}

impl Bed {
    pub fn new() -> Bed {
        Bed {
            dir: tempfile::tempdir().unwrap(),
            secret: "ab".repeat(32),
        }
    }

    /// The service and ctl executables of a release. They are made once per build of the
    /// stand-in and shared by all tests, because hashing a debug binary is slow.
    pub fn release(&self, version: &str) -> (PathBuf, PathBuf) {
        let standin = Path::new(env!("CARGO_BIN_EXE_cluster-peer"));
        let meta = fs::metadata(standin).unwrap();
        let stamp = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("standin-releases-{stamp}-{}", meta.len()));
        let dir = root.join(version);
        if !root.exists() {
            prune_stale_releases(&root);
        }
        if !dir.join("SHA256SUMS").exists() {
            // Built under a unique name and renamed, so parallel tests never see half a release.
            let tmp = root.join(format!(
                "{version}.tmp.{}.{}",
                std::process::id(),
                free_port()
            ));
            write_release(standin, version, &tmp).unwrap();
            if fs::rename(&tmp, &dir).is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        (
            dir.join("ipfs-cluster-service"),
            dir.join("ipfs-cluster-ctl"),
        )
    }

    /// A peer folder with fresh ports (not initialised).
    pub fn peer(&self, name: &str) -> Peer {
        Peer {
            name: name.to_string(),
            config: self.dir.path().join(name),
            ip: next_ip(),
            cluster_port: 9096,
            api_port: 9094,
        }
    }

    fn env(&self, peer: &Peer, cmd: &mut Command) {
        cmd.env("CLUSTER_PEERNAME", &peer.name)
            .env("CLUSTER_SECRET", &self.secret)
            .env(
                "CLUSTER_LISTENMULTIADDRESS",
                format!("/ip4/{}/tcp/{}", peer.ip, peer.cluster_port),
            )
            .env("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS", peer.api())
            .env("CLUSTER_RAFT_WAITFORLEADERTIMEOUT", "1s")
            .env("CLUSTER_PEERWATCHINTERVAL", "200ms")
            .env_remove("IPFS_CLUSTER_PATH")
            .stdin(Stdio::null());
    }

    /// Runs `ipfs-cluster-service -c <peer> ARGS` to completion.
    pub fn service(&self, version: &str, peer: &Peer, args: &[&str]) -> Output {
        let (svc, _) = self.release(version);
        let mut cmd = Command::new(svc);
        cmd.arg("-c").arg(&peer.config).args(args);
        self.env(peer, &mut cmd);
        cmd.output().unwrap()
    }

    /// `init` (with `--consensus raft` where needed); panics on failure.
    pub fn init(&self, version: &str, peer: &Peer) {
        let modern = !version.starts_with("0.9") && !version.starts_with("0.10");
        let args: &[&str] = if modern {
            &["init", "--consensus", "raft"]
        } else {
            &["init"]
        };
        let out = self.service(version, peer, args);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `init --consensus crdt` (≥ 0.11); panics on failure.
    pub fn init_crdt(&self, version: &str, peer: &Peer) {
        let out = self.service(version, peer, &["init", "--consensus", "crdt"]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `daemon ARGS` in the background, logging to `<peer>.log.N`.
    pub fn daemon(&self, version: &str, peer: &Peer, args: &[&str]) -> Daemon {
        self.daemon_env((version, peer), args, &[])
    }

    /// Like `daemon` (of that release and peer), with extra environment variables.
    pub fn daemon_env(
        &self,
        (version, peer): (&str, &Peer),
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let (svc, _) = self.release(version);
        let mut n = 0;
        let log = loop {
            let candidate = self.dir.path().join(format!("{}.log.{n}", peer.name));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let mut cmd = Command::new(svc);
        cmd.arg("-c").arg(&peer.config).arg("daemon").args(args);
        self.env(peer, &mut cmd);
        cmd.envs(env.iter().copied());
        cmd.stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        Daemon {
            child: cmd.spawn().unwrap(),
            log,
            peer: peer.clone(),
        }
    }

    /// Runs `ipfs-cluster-ctl --host <peer api> ARGS`.
    pub fn ctl(&self, version: &str, peer: &Peer, args: &[&str]) -> Output {
        let (_, ctl) = self.release(version);
        Command::new(ctl)
            .arg("--host")
            .arg(peer.api())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `ipfs-cluster-follow -c <peer folder> ARGS` of a release, with the peer's environment
    /// (the follower named NAME lives in `<peer folder>/NAME`).
    pub fn follow(&self, version: &str, peer: &Peer, args: &[&str]) -> Command {
        let (svc, _) = self.release(version);
        let mut cmd = Command::new(svc.with_file_name("ipfs-cluster-follow"));
        cmd.arg("-c").arg(&peer.config).args(args);
        self.env(peer, &mut cmd);
        cmd
    }

    /// Starts `ipfs-cluster-follow NAME run` in the background and waits for READY.
    pub fn follower(
        &self,
        version: &str,
        (peer, name): (&Peer, &str),
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = self.dir.path().join(format!("{}.follow.log", peer.name));
        let mut cmd = self.follow(version, peer, &[name, "run"]);
        cmd.envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        let daemon = Daemon {
            child: cmd.spawn().unwrap(),
            log,
            peer: peer.clone(),
        };
        daemon.wait_log("** IPFS Cluster is READY **", Duration::from_secs(15));
        daemon
    }

    /// Starts a daemon and waits for READY.
    pub fn ready(&self, version: &str, peer: &Peer, args: &[&str]) -> Daemon {
        let daemon = self.daemon(version, peer, args);
        daemon.wait_log("** IPFS Cluster is READY **", Duration::from_secs(15));
        daemon
    }

    /// A cluster of `n` peers of `version`: the first starts alone, the others bootstrap to it.
    pub fn cluster(&self, version: &str, names: &[&str]) -> (Vec<Peer>, Vec<Daemon>) {
        let peers: Vec<Peer> = names.iter().map(|n| self.peer(n)).collect();
        for p in &peers {
            self.init(version, p);
        }
        let first = self.ready(version, &peers[0], &[]);
        let maddr = first.maddr();
        let mut daemons = vec![first];
        for p in &peers[1..] {
            daemons.push(self.ready(version, p, &["--bootstrap", &maddr]));
        }
        (peers, daemons)
    }
}

impl Daemon {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text`; panics with the log otherwise.
    pub fn wait_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log_text().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: {text:?} not logged within {within:?}:\n{}",
            self.peer.name,
            self.log_text()
        );
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not exit within {within:?}:\n{}",
            self.peer.name,
            self.log_text()
        );
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) and waits for the exit.
    pub fn stop_with(&mut self, signal: &str) -> ExitStatus {
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        self.wait_exit(Duration::from_secs(10))
    }

    /// The cluster multiaddr with peer ID as printed in the "listening on" log lines.
    pub fn maddr(&self) -> String {
        self.wait_log("listening on:", Duration::from_secs(10));
        let text = self.log_text();
        let after = &text[text.find("listening on:").unwrap()..];
        after.lines().nth(1).unwrap().trim().to_string()
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` until it holds or the deadline passes.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Names of the entries of a directory, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
