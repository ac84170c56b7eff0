//! One real kubo daemon for the whole suite: offline, loopback only, its API on a free port of
//! 127.0.0.1. Every real cluster peer of the suite uses it as its IPFS daemon (a 1.x peer is
//! not READY without one); it also holds the blocks of the suite's pins, so that real peers
//! report PINNED as the stand-in does.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, run, Out};

/// A running kubo, stopped on drop.
pub struct Kubo {
    child: Child,
    pub api: String,
    /// kubo's peer ID (shown by real peers under `> IPFS:`).
    pub id: String,
    pub cids: Vec<String>,
    _repo: tempfile::TempDir,
}

impl Drop for Kubo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many pins one scenario can use: each scenario has CIDs of its own, so that no
/// scenario unpins a block another one pins in the shared kubo.
pub const PINS: usize = 4;

impl Kubo {
    /// Initialises a repo, starts the daemon and adds `count` blocks (not pinned).
    pub fn start(dir: &Path, count: usize) -> Result<Kubo, String> {
        let ipfs = dir.join("ipfs");
        let repo = tempfile::tempdir().map_err(|e| e.to_string())?;
        let repo_path = repo.path().to_path_buf();
        let port = free_port();
        let api = format!("/ip4/127.0.0.1/tcp/{port}");
        let cmd = |args: &[&str]| -> Result<Out, String> {
            let mut c = Command::new(&ipfs);
            c.args(args).env("IPFS_PATH", &repo_path);
            let out = run(c, Duration::from_secs(60));
            match out.code {
                Some(0) => Ok(out),
                _ => Err(format!("ipfs {args:?}: {}", out.stderr)),
            }
        };
        cmd(&["init", "--profile", "test"])?;
        cmd(&["config", "Addresses.API", &api])?;
        cmd(&["config", "--json", "Addresses.Gateway", "[]"])?;
        cmd(&["config", "--json", "Addresses.Swarm", "[]"])?;
        let child = Command::new(&ipfs)
            .args(["daemon", "--offline"])
            .env("IPFS_PATH", &repo_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", ipfs.display()))?;
        let mut kubo = Kubo {
            child,
            api: api.clone(),
            id: String::new(),
            cids: Vec::new(),
            _repo: repo,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while cmd(&["--api", &api, "id"]).is_err() {
            if Instant::now() > deadline {
                return Err("kubo did not answer its API within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        kubo.id = cmd(&["--api", &api, "id", "-f", "<id>"])?
            .stdout
            .trim()
            .to_string();
        let blocks = tempfile::tempdir().map_err(|e| e.to_string())?;
        let pins = blocks.path().join("pins");
        std::fs::create_dir(&pins).map_err(|e| e.to_string())?;
        for i in 0..count {
            std::fs::write(pins.join(i.to_string()), format!("fidelity pin {i}\n"))
                .map_err(|e| e.to_string())?;
        }
        let out = cmd(&[
            "--api",
            &api,
            "add",
            "-r",
            "--pin=false",
            "--cid-version",
            "0",
            &pins.display().to_string(),
        ])?;
        let mut cids = vec![String::new(); count];
        for line in out.stdout.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["added", cid, path] = words.as_slice() {
                if let Some(i) = path
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|_| path.contains('/'))
                {
                    if let Some(slot) = cids.get_mut(i) {
                        *slot = cid.to_string();
                    }
                }
            }
        }
        if cids.iter().any(String::is_empty) {
            return Err(format!(
                "ipfs add gave no CID for every block: {}",
                out.stdout
            ));
        }
        kubo.cids = cids;
        Ok(kubo)
    }
}
