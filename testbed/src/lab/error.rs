//! The lab's one error type: every failure names the host, path or command it concerns.

use std::io;
use std::path::PathBuf;

/// What can go wrong while building, inspecting or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    SshdMissing(#[source] io::Error),
    #[error("host {host}: sshd did not start: {source}")]
    SshdStart {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("host {host}: could not run `{program}`: {source}")]
    Spawn {
        host: String,
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("host {host}: `{step}` failed ({status}): {stderr}")]
    Remote {
        host: String,
        step: String,
        status: String,
        stderr: String,
    },
    #[error("host {host}: `{step}` did not finish within {seconds} s")]
    RemoteTimeout {
        host: String,
        step: String,
        seconds: u64,
    },
    #[error("timed out after {seconds} s waiting for {what}")]
    WaitTimeout { what: String, seconds: u64 },
    #[error(
        "host {host}: {missing} of the {count} acknowledged pins are missing (e.g. {examples}) \
         and {extra} unknown ones are listed: the stand-in lost acknowledged writes, which is a \
         bug of the stand-in"
    )]
    PinsLost {
        host: String,
        missing: usize,
        count: usize,
        examples: String,
        extra: usize,
    },
    #[error("host {host}: unexpected output of `{step}`: {detail}")]
    Parse {
        host: String,
        step: String,
        detail: String,
    },
    #[error("release {version} is not modelled (known: {known})")]
    UnknownRelease { version: String, known: String },
    #[error("no host named {host} in this lab (hosts: {known})")]
    UnknownHost { host: String, known: String },
    #[error("no free loopback /24 and ports after {attempts} attempts: {last}")]
    NoFreeNetwork { attempts: u32, last: String },
    #[error("{} is not a lab (no lab.json): run `cluster-lab up --dir {}` first", dir.display(), dir.display())]
    NotALab { dir: PathBuf },
    #[error("{} holds a running lab (pid {pid}): run `cluster-lab down --dir {}` first", dir.display(), dir.display())]
    AlreadyUp { dir: PathBuf, pid: u32 },
    #[error("{} is corrupt: {source}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the stand-in peer {} does not exist: build it (cargo build -p cluster-testbed --bin cluster-peer) or pass --standin PATH", path.display())]
    StandinMissing { path: PathBuf },
    #[error("{what} is not built in {} (real releases built: {built}): run {} (scripts/setup runs it); a lab never puts the stand-in in place of a real binary", dir.display(), super::real::BUILD_SCRIPT)]
    RealReleaseMissing {
        what: String,
        dir: PathBuf,
        built: String,
    },
    #[error("host {host}: fault {fault} does not apply: {reason}")]
    FaultRefused {
        host: String,
        fault: &'static str,
        reason: String,
    },
    #[error("{source}")]
    InvalidDelay {
        #[source]
        source: crate::delay::DelayError,
    },
    #[error("the delaying relay did not start: {source}")]
    RelayStart {
        #[source]
        source: io::Error,
    },
    #[error("building the Debian tree {} of the systemd hosts: `{step}` failed ({status}); its output is in {}", tree.display(), log.display())]
    TreeBuild {
        tree: PathBuf,
        step: String,
        status: String,
        log: PathBuf,
    },
    #[error("host {host}: the systemd container did not {what} ({detail}); its console log: {}", console.display())]
    Container {
        host: String,
        what: &'static str,
        detail: String,
        console: PathBuf,
    },
    #[error("the container engine (podman) could not {what} ({status}): {stderr}")]
    Engine {
        what: String,
        status: String,
        stderr: String,
    },
    #[error("{program} is missing: {hint}")]
    ToolMissing {
        program: &'static str,
        hint: &'static str,
    },
    #[error("invalid option {option}: {detail}")]
    InvalidOption {
        option: &'static str,
        detail: String,
    },
}

impl LabError {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LabError {
        let path = path.into();
        move |source| LabError::Io { what, path, source }
    }
}

/// The lab's result type.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
