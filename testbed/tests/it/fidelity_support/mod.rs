//! Harness of the differential suite (`tests/it/fidelity.rs`): the same scenario run against the
//! stand-in and against the real binaries of the same versions, each in a bed of its own
//! (temporary folders, a loopback address per peer, every process stopped by PID on drop),
//! observed as named facts that the suite pairs up and compares.
#![allow(dead_code)]

pub mod kubo;
pub mod normalise;
pub mod table;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cluster_testbed::lab::real::RealReleases;
use cluster_testbed::release::write_release;

use kubo::Kubo;
use normalise::Names;

/// Which implementation a bed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Standin,
    Real,
}

/// How long any one command may take before it is killed (and observed as a timeout).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(40);
/// How long a peer may take to say READY.
pub const READY_LIMIT: Duration = Duration::from_secs(40);
pub const READY_LINE: &str = "** IPFS Cluster is READY **";

/// What a finished command did.
#[derive(Debug, Clone, Default)]
pub struct Out {
    /// `None`: killed by a signal or after [`COMMAND_LIMIT`].
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn code_text(&self) -> String {
        self.code
            .map_or_else(|| "killed/timeout".to_string(), |c| c.to_string())
    }
}

/// Runs a command to its end (stdin closed), killing it after `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> Out {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => {
            return Out {
                code: Some(127),
                stderr: err.to_string(),
                ..Out::default()
            }
        }
    };
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: status.and_then(|s| s.code()),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("bound")
        .port()
}

/// A loopback address of its own for every peer of the suite (127.0.0.0/8 only).
fn next_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let second = 100 + std::process::id() % 120;
    format!("127.{second}.{}.{}", n / 250, n % 250 + 1)
}

/// The folder of a stand-in release, made once per build of the stand-in.
fn standin_release(version: &str) -> PathBuf {
    let standin = Path::new(env!("CARGO_BIN_EXE_cluster-peer"));
    let meta = fs::metadata(standin).expect("the stand-in binary");
    let stamp = meta
        .modified()
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fidelity-releases-{stamp}-{}", meta.len()));
    let dir = root.join(version);
    if !dir.join("SHA256SUMS").exists() {
        let tmp = root.join(format!(
            "{version}.tmp.{}.{}",
            std::process::id(),
            free_port()
        ));
        write_release(standin, version, &tmp).expect("stand-in release");
        if fs::rename(&tmp, &dir).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
    }
    dir
}

/// The real releases and kubo, or the error that says how to build them.
pub fn real_releases(versions: &[&str]) -> Result<(PathBuf, PathBuf), String> {
    let real = RealReleases::open(None);
    for version in versions {
        real.require(version).map_err(|e| e.to_string())?;
    }
    let (_, kubo) = real.require_kubo().map_err(|e| e.to_string())?;
    Ok((real.cluster_dir(), kubo))
}

/// One peer of a bed.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub ip: String,
    pub dir: PathBuf,
}

impl Peer {
    pub fn api(&self) -> String {
        format!("/ip4/{}/tcp/9094", self.ip)
    }

    pub fn cluster(&self) -> String {
        format!("/ip4/{}/tcp/9096", self.ip)
    }

    /// The peer ID `init` wrote.
    pub fn id(&self) -> String {
        let text = fs::read_to_string(self.dir.join("identity.json")).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["id"].as_str().map(String::from))
            .unwrap_or_default()
    }

    /// The `--bootstrap` address.
    pub fn maddr(&self) -> String {
        format!("{}/p2p/{}", self.cluster(), self.id())
    }

    /// The entries of the config folder: `name` or `name/`, sorted.
    pub fn files(&self) -> String {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if e.path().is_dir() {
                            format!("{name}/")
                        } else {
                            name
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if names.is_empty() {
            "(none)".into()
        } else {
            names.join(" ")
        }
    }

    pub fn service_json(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.dir.join("service.json")).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    pub peer: Peer,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the READY line; whether it came.
    pub fn ready(&self) -> bool {
        self.wait_log(READY_LINE, READY_LIMIT)
    }

    pub fn wait_log(&self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.log_text().contains(text) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself: `Some(code)`, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends one SIGTERM.
    pub fn signal(&self) {
        // kill(1) by PID: only the process this bed started.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Sends SIGTERM and waits for the exit: its code, or `None` (killed after 30 s).
    pub fn term(&mut self) -> Option<i32> {
        self.term_within(Duration::from_secs(30))
    }

    /// Sends SIGTERM and waits up to `limit` for the exit: its code, or `None` (then killed).
    pub fn term_within(&mut self, limit: Duration) -> Option<i32> {
        // kill(1) by PID: only the process this bed started.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One observed fact of a scenario.
#[derive(Debug, Clone)]
pub struct Fact {
    pub name: String,
    /// Whether cluster-upgrade relies on it (its probes parse it): a difference fails.
    pub relied: bool,
    pub value: String,
}

/// A scenario run against one flavor.
pub struct Bed {
    pub flavor: Flavor,
    pub dir: tempfile::TempDir,
    secret: String,
    kubo_api: Option<String>,
    pub cids: Vec<String>,
    releases: Option<PathBuf>,
    names: Mutex<Names>,
    facts: Mutex<Vec<Fact>>,
}

impl Bed {
    /// A bed for scenario number `slot`; a real one uses the suite's kubo and the real
    /// releases in `releases`.
    pub fn new(flavor: Flavor, kubo: &Kubo, releases: Option<PathBuf>, slot: usize) -> Bed {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut names = Names::default();
        names.add(&dir.path().display().to_string(), "bed");
        names.add(&kubo.api, "kubo-api");
        names.add(&kubo.id, "kubo-id");
        Bed {
            flavor,
            dir,
            secret: "cd".repeat(32),
            kubo_api: (flavor == Flavor::Real).then(|| kubo.api.clone()),
            cids: kubo.cids[slot * kubo::PINS..(slot + 1) * kubo::PINS].to_vec(),
            releases,
            names: Mutex::new(names),
            facts: Mutex::new(Vec::new()),
        }
    }

    fn bin(&self, version: &str, name: &str) -> PathBuf {
        match self.flavor {
            Flavor::Standin => standin_release(version).join(name),
            Flavor::Real => self
                .releases
                .as_ref()
                .expect("a real bed has its releases")
                .join(version)
                .join(name),
        }
    }

    /// A new peer folder (not initialised).
    pub fn peer(&self, name: &str) -> Peer {
        let peer = Peer {
            name: name.to_string(),
            ip: next_ip(),
            dir: self.dir.path().join(name),
        };
        let mut names = self.names.lock().expect("names");
        names.add(&peer.dir.display().to_string(), &format!("dir:{name}"));
        names.add(&peer.ip, &format!("ip:{name}"));
        peer
    }

    /// Learns a peer's ID once `init` wrote it.
    fn learn_id(&self, peer: &Peer) {
        let id = peer.id();
        self.names
            .lock()
            .expect("names")
            .add(&id, &format!("id:{}", peer.name));
    }

    fn env(&self, peer: &Peer, cmd: &mut Command) {
        let at = |port: u16| format!("/ip4/{}/tcp/{port}", peer.ip);
        cmd.env_remove("IPFS_CLUSTER_PATH")
            .env("CLUSTER_PEERNAME", &peer.name)
            .env("CLUSTER_SECRET", &self.secret)
            .env("CLUSTER_LISTENMULTIADDRESS", peer.cluster())
            .env("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS", peer.api())
            .env("CLUSTER_RAFT_WAITFORLEADERTIMEOUT", "5s")
            .env("CLUSTER_MONITORPINGINTERVAL", "1s")
            .env("CLUSTER_MDNSINTERVAL", "0s")
            .env("CLUSTER_IPFSPROXY_LISTENMULTIADDRESS", at(9095))
            .env("CLUSTER_PINSVCAPI_HTTPLISTENMULTIADDRESS", at(9097));
        if let Some(api) = &self.kubo_api {
            cmd.env("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", api)
                .env("CLUSTER_IPFSPROXY_NODEMULTIADDRESS", api);
        }
    }

    /// `ipfs-cluster-service -c DIR ARGS` of `version`.
    pub fn service(&self, version: &str, peer: &Peer, args: &[&str]) -> Out {
        let mut cmd = Command::new(self.bin(version, "ipfs-cluster-service"));
        cmd.arg("-c").arg(&peer.dir).args(args);
        self.env(peer, &mut cmd);
        let out = run(cmd, COMMAND_LIMIT);
        if args.first() == Some(&"init") {
            self.learn_id(peer);
        }
        out
    }

    /// `ipfs-cluster-service --version` (no config).
    pub fn service_version(&self, version: &str) -> Out {
        let mut cmd = Command::new(self.bin(version, "ipfs-cluster-service"));
        cmd.arg("--version");
        run(cmd, COMMAND_LIMIT)
    }

    /// `ipfs-cluster-ctl --version`.
    pub fn ctl_version(&self, version: &str) -> Out {
        let mut cmd = Command::new(self.bin(version, "ipfs-cluster-ctl"));
        cmd.arg("--version");
        run(cmd, COMMAND_LIMIT)
    }

    /// `init --consensus KIND`, which must succeed.
    pub fn init(&self, version: &str, peer: &Peer, consensus: &str) {
        let out = self.service(version, peer, &["init", "--consensus", consensus]);
        assert_eq!(
            out.code,
            Some(0),
            "{:?} init of {} failed: {}",
            self.flavor,
            peer.name,
            out.stderr
        );
    }

    /// `ipfs-cluster-ctl --host API ARGS` of `version`.
    pub fn ctl(&self, version: &str, peer: &Peer, args: &[&str]) -> Out {
        self.ctl_env(version, peer, (&[], args))
    }

    /// `ipfs-cluster-ctl --host API ARGS` of `version` with `ENV` set (and the ctl's own
    /// variables, `CLUSTER_CREDENTIALS` and `GOLOG_LOG_LEVEL`, only as `ENV` sets them).
    pub fn ctl_env(
        &self,
        version: &str,
        peer: &Peer,
        (env, args): (&[(&str, &str)], &[&str]),
    ) -> Out {
        let mut cmd = Command::new(self.bin(version, "ipfs-cluster-ctl"));
        cmd.env_remove("CLUSTER_CREDENTIALS")
            .env_remove("GOLOG_LOG_LEVEL")
            .envs(env.iter().copied())
            .arg("--host")
            .arg(peer.api())
            .args(args);
        run(cmd, COMMAND_LIMIT)
    }

    /// Starts `daemon ARGS`, logging to a file of its own.
    pub fn start(&self, version: &str, peer: &Peer, args: &[&str]) -> Daemon {
        let mut n = 0;
        let log = loop {
            let candidate = self.dir.path().join(format!("{}.log.{n}", peer.name));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let mut cmd = Command::new(self.bin(version, "ipfs-cluster-service"));
        cmd.arg("-c").arg(&peer.dir).arg("daemon").args(args);
        self.env(peer, &mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log file"));
        Daemon {
            child: cmd.spawn().expect("daemon starts"),
            log,
            peer: peer.clone(),
        }
    }

    /// Starts a daemon and waits for READY (panics without it: every later fact would be
    /// meaningless).
    pub fn ready(&self, version: &str, peer: &Peer, args: &[&str]) -> Daemon {
        let daemon = self.start(version, peer, args);
        assert!(
            daemon.ready(),
            "{:?} {} {version} not READY:\n{}",
            self.flavor,
            peer.name,
            daemon.log_text()
        );
        daemon
    }

    /// Waits until `check` holds (polling), for at most `limit`; whether it did.
    pub fn eventually(&self, limit: Duration, mut check: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if check() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Normalises a text with the bed's names.
    pub fn norm(&self, text: &str) -> String {
        self.names.lock().expect("names").apply(text)
    }

    /// Records a fact (normalised).
    pub fn fact(&self, name: &str, relied: bool, value: impl AsRef<str>) {
        let value = self.norm(value.as_ref());
        self.facts.lock().expect("facts").push(Fact {
            name: name.to_string(),
            relied,
            value,
        });
    }

    pub fn facts(&self) -> Vec<Fact> {
        self.facts.lock().expect("facts").clone()
    }
}

/// One HTTP/1.1 request to a peer's REST API (`Connection: close`, extra `headers`): the
/// status line, the headers named in `show` (as sent, in order) and the body, one per line.
pub fn http_exchange(peer: &Peer, request: &str, headers: &[&str], show: &[&str]) -> String {
    use std::io::Write;
    use std::net::TcpStream;
    let attempt = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect((peer.ip.as_str(), 9094))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        write!(
            stream,
            "{request} HTTP/1.1\r\nHost: {}:9094\r\n{extra}Connection: close\r\n\r\n",
            peer.ip
        )?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw)?;
        Ok(raw)
    };
    let raw = match attempt() {
        Ok(raw) => raw,
        Err(err) => return format!("no answer: {err}"),
    };
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let mut lines = head.lines();
    let mut out = vec![lines.next().unwrap_or("").to_string()];
    out.extend(
        lines
            .filter(|line| {
                line.split_once(':')
                    .is_some_and(|(name, _)| show.iter().any(|s| s.eq_ignore_ascii_case(name)))
            })
            .map(String::from),
    );
    out.push(body.to_string());
    out.join("\n")
}

/// The lines of a log that contain one of `markers`, as the markers (in order, deduplicated
/// when repeated in a row).
pub fn markers(log: &str, markers: &[&str]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for line in log.lines() {
        if let Some(m) = markers.iter().find(|m| line.contains(*m)) {
            if seen.last() != Some(m) {
                seen.push(m);
            }
        }
    }
    seen.join(" → ")
}

/// The log messages of a command's stderr without time, level column and caller: `LEVEL
/// component: message` per line; other lines as they are.
pub fn log_messages(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            match cols.len() {
                // time, level, component, caller, message (real)
                5 => format!("{} {}: {}", cols[1], cols[2], cols[4]),
                // time, level, component, message (stand-in)
                4 => format!("{} {}: {}", cols[1], cols[2], cols[3]),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
