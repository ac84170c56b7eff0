//! Running commands on a lab host with the system `ssh` client.
//!
//! Host keys are checked strictly against the lab's own known_hosts and only the lab's key is
//! offered, so a lab never depends on (or changes) the user's SSH setup. `-F /dev/null` keeps a
//! user's `~/.ssh/config` (ControlMaster, ProxyJump, …) out of the picture; a lab behind
//! bastions uses its own `ssh_config`, which describes them.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::error::{LabError, Result};
use super::layout::Layout;
use super::state::{HostRecord, LabState};

/// How long one remote command may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// An SSH destination of the lab.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The host's lab name (for messages).
    pub host: String,
    address: Ipv4Addr,
    port: u16,
    user: String,
    identity: PathBuf,
    known_hosts: PathBuf,
    /// The socket of a [`Master`] connection to reuse, if one is open.
    control: Option<PathBuf>,
    /// Behind bastions: the lab's ssh_config, which describes them, and the last one's name.
    jump: Option<(PathBuf, String)>,
}

/// A master SSH connection (`ssh -M -N`), closed when dropped.
#[derive(Debug)]
pub struct Master {
    child: std::process::Child,
    socket: PathBuf,
}

impl Master {
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// What a finished remote command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status, `None` when the command died by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// What the remote command reads on its standard input.
pub enum Input {
    Nothing,
    Bytes(Vec<u8>),
    /// The output of a local process, e.g. `tar c`.
    Pipe(Stdio),
}

/// One remote command: what it is for (named in errors), the script, its stdin and how long
/// it may take.
pub struct Job<'a> {
    pub step: &'a str,
    pub script: &'a str,
    pub input: Input,
    pub timeout: Duration,
}

impl Remote {
    /// The SSH destination of `host`.
    pub fn new(layout: &Layout, state: &LabState, host: &HostRecord) -> Remote {
        Remote {
            host: host.name.clone(),
            address: host.address,
            port: state.ports.ssh,
            user: state.user.clone(),
            identity: layout.identity(),
            known_hosts: layout.known_hosts(),
            control: None,
            jump: state
                .bastions
                .last()
                .map(|last| (layout.ssh_config(), last.name.clone())),
        }
    }

    /// The same destination, reusing the master connection listening on `socket`.
    pub fn through(mut self, socket: PathBuf) -> Remote {
        self.control = Some(socket);
        self
    }

    fn command(&self, script: &str) -> Command {
        let mut cmd = self.ssh();
        if let Some(socket) = &self.control {
            cmd.arg("-o")
                .arg("ControlMaster=no")
                .arg("-o")
                .arg(format!("ControlPath={}", socket.display()));
        }
        cmd.arg(format!("{}@{}", self.user, self.address));
        // The script is the last argument: ssh hands it to the remote user's shell.
        cmd.arg(script);
        cmd
    }

    /// `ssh` with the lab's options, up to the destination.
    fn ssh(&self) -> Command {
        let mut cmd = Command::new("ssh");
        match &self.jump {
            // ssh hands `-F` (not `-o` options) on to the ssh it runs for each jump host.
            Some((config, last)) => {
                cmd.arg("-F").arg(config);
                cmd.arg("-o").arg(format!("ProxyJump={last}"));
            }
            None => {
                cmd.arg("-F").arg("/dev/null");
            }
        }
        for option in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "GlobalKnownHostsFile=/dev/null",
            "IdentitiesOnly=yes",
            "ConnectTimeout=10",
            "LogLevel=ERROR",
            // Loopback needs no compression, and the default cipher is the cheapest here.
            "Compression=no",
            // The post-quantum hybrid default costs ~70 ms of CPU per connection here, which
            // adds up over a lab's hundreds of connections; curve25519 is still offered by sshd.
            "KexAlgorithms=curve25519-sha256,sntrup761x25519-sha512@openssh.com",
            // Releases are megabytes per host; AES-GCM runs on the CPU's AES instructions.
            "Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com",
        ] {
            cmd.arg("-o").arg(option);
        }
        cmd.arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        cmd.arg("-i").arg(&self.identity);
        cmd.arg("-p").arg(self.port.to_string());
        cmd
    }

    /// Opens a master connection on `socket` that later commands reuse (ControlMaster): one
    /// login per host instead of one per command (~120 ms each here).
    pub fn open_master(&self, socket: PathBuf) -> Result<Master> {
        let _ = std::fs::remove_file(&socket);
        let mut cmd = self.ssh();
        cmd.args(["-M", "-N", "-o", "ControlPersist=no"]);
        cmd.arg("-o")
            .arg(format!("ControlPath={}", socket.display()));
        cmd.arg(format!("{}@{}", self.user, self.address));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
            host: self.host.clone(),
            program: "ssh".into(),
            source,
        })?;
        let start = std::time::Instant::now();
        while !socket.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(LabError::Remote {
                    host: self.host.clone(),
                    step: "ssh master connection".into(),
                    status: status.to_string(),
                    stderr: stderr.trim().to_string(),
                });
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::RemoteTimeout {
                    host: self.host.clone(),
                    step: "ssh master connection".into(),
                    seconds: 15,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Master { child, socket })
    }

    /// Runs `script` through the remote shell and returns its output whatever the exit status.
    /// Fails only when ssh cannot be run or the command outlives `timeout` (it is then killed).
    pub fn exec(&self, job: Job<'_>) -> Result<Output> {
        let Job {
            step,
            script,
            input,
            timeout,
        } = job;
        let mut cmd = self.command(script);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let bytes = match input {
            Input::Nothing => {
                cmd.stdin(Stdio::null());
                None
            }
            Input::Bytes(bytes) => {
                cmd.stdin(Stdio::piped());
                Some(bytes)
            }
            Input::Pipe(stdio) => {
                cmd.stdin(stdio);
                None
            }
        };
        let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
            host: self.host.clone(),
            program: "ssh".into(),
            source,
        })?;
        let pid = child.id();
        if let (Some(bytes), Some(mut stdin)) = (bytes, child.stdin.take()) {
            // A writer thread, so a remote command that prints a lot before reading cannot
            // deadlock against us.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let err_reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stdout.read_to_end(&mut text);
            let status = child.wait();
            let _ = tx.send((text, status));
        });
        let (out, status) = match rx.recv_timeout(timeout) {
            Ok(done) => done,
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status();
                return Err(LabError::RemoteTimeout {
                    host: self.host.clone(),
                    step: step.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
        };
        let status = status.map_err(|source| LabError::Spawn {
            host: self.host.clone(),
            program: "ssh".into(),
            source,
        })?;
        let err = err_reader.join().unwrap_or_default();
        Ok(Output {
            status: status.code(),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    /// Runs `script` and requires exit status 0.
    pub fn run(&self, step: &str, script: &str) -> Result<Output> {
        self.run_with(Job {
            step,
            script,
            input: Input::Nothing,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Runs `script` with an input and a timeout, and requires exit status 0.
    pub fn run_with(&self, job: Job<'_>) -> Result<Output> {
        let step = job.step;
        let output = self.exec(job)?;
        if output.success() {
            Ok(output)
        } else {
            Err(self.failed(step, &output))
        }
    }

    /// The error for a remote command that exited badly (ssh itself exits 255).
    pub fn failed(&self, step: &str, output: &Output) -> LabError {
        let status = match output.status {
            Some(255) => "ssh error 255".to_string(),
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".to_string(),
        };
        let mut stderr = output.stderr.trim().to_string();
        if stderr.is_empty() {
            stderr = output.stdout.trim().to_string();
        }
        LabError::Remote {
            host: self.host.clone(),
            step: step.to_string(),
            status,
            stderr,
        }
    }
}
