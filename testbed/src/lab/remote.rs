//! Running commands on a lab host with the system `ssh` client.
//!
//! Host keys are checked strictly against the lab's own known_hosts and only the lab's key is
//! offered, so a lab never depends on (or changes) the user's SSH setup. `-F /dev/null` keeps a
//! user's `~/.ssh/config` (ControlMaster, ProxyJump, …) out of the picture.

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
        }
    }

    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg("/dev/null");
        for option in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "GlobalKnownHostsFile=/dev/null",
            "IdentitiesOnly=yes",
            "ConnectTimeout=10",
            "LogLevel=ERROR",
            // Loopback needs no compression, and the default cipher is the cheapest here.
            "Compression=no",
        ] {
            cmd.arg("-o").arg(option);
        }
        cmd.arg("-o").arg(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        cmd.arg("-i").arg(&self.identity);
        cmd.arg("-p").arg(self.port.to_string());
        cmd.arg(format!("{}@{}", self.user, self.address));
        // `--` would be passed to the remote shell; the script is the only remaining argument.
        cmd.arg(script);
        cmd
    }

    /// Runs `script` through the remote shell and returns its output whatever the exit status.
    /// Fails only when ssh cannot be run or the command outlives `timeout` (it is then killed).
    pub fn exec(&self, step: &str, script: &str, input: Input, timeout: Duration) -> Result<Output> {
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
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).stderr(Stdio::null()).status();
                return Err(LabError::RemoteTimeout {
                    host: self.host.clone(),
                    step: step.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
        };
        let status = status.map_err(|source| LabError::Spawn { host: self.host.clone(), program: "ssh".into(), source })?;
        let err = err_reader.join().unwrap_or_default();
        Ok(Output {
            status: status.code(),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    /// Runs `script` and requires exit status 0.
    pub fn run(&self, step: &str, script: &str) -> Result<Output> {
        self.run_with(step, script, Input::Nothing, DEFAULT_TIMEOUT)
    }

    /// Runs `script` with an input and a timeout, and requires exit status 0.
    pub fn run_with(&self, step: &str, script: &str, input: Input, timeout: Duration) -> Result<Output> {
        let output = self.exec(step, script, input, timeout)?;
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
        LabError::Remote { host: self.host.clone(), step: step.to_string(), status, stderr }
    }
}
