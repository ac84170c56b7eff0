//! `cluster-lab fault`: break a host on purpose, for failure and recovery tests.
//!
//! Faults act locally, by PID and path, not over SSH: SSH is often the very thing broken. The
//! one exception is `crash-at-start` on a systemd host, whose peer's config folder is inside its
//! container: the marker is written there over SSH, as root.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::sshd::generate_key;
use crate::standin::{crash, dirty};

use super::down::peer_pid;
use super::error::{LabError, Result};
use super::layout::{HostPaths, Layout};
use super::state::{HostKind, LabState};
use super::{hosts, keys, procs};

/// The datastore folders a CRDT peer (from 0.11) keeps its state in, by backend.
const DATASTORES: &[&str] = &["pebble", "badger3", "badger", "leveldb"];

/// A fault to inject into one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Stop the host's sshd: the host becomes unreachable.
    StopSshd,
    /// Start the host's sshd again, with the same host key.
    StartSshd,
    /// SIGKILL the peer: no clean shutdown, no snapshot.
    KillPeer,
    /// Remove the peer's consensus state: its `raft` folder, or a CRDT peer's datastore folder
    /// (`pebble`, …); with `backups`, its `raft.old.*` backups too.
    RmState { backups: bool },
    /// Give the host a new host key (restarting its sshd if it runs); known_hosts keeps the old
    /// key unless `update_known_hosts`.
    Rekey { update_known_hosts: bool },
    /// The stand-in CRDT peer's next clean stop happens while it merges CRDT updates: the
    /// `pins` it received last are left out of its store but recorded as processed, and the
    /// store is marked dirty (ADR 0015; see `standin::dirty`). Acts through a marker file in
    /// the peer's config folder, which the peer removes at that stop.
    InterruptedMerge { pins: usize },
    /// The stand-in peer's next start (of a 1.x release) crashes: a Go panic, exit status 2,
    /// as the real 1.0.8/1.1.6 peer's nil RPC client race (see `standin::crash`). Acts through
    /// a marker file in the peer's config folder, which that start removes.
    CrashAtStart,
}

impl Fault {
    /// The fault's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::StopSshd => "stop-sshd",
            Fault::StartSshd => "start-sshd",
            Fault::KillPeer => "kill-peer",
            Fault::RmState { .. } => "rm-state",
            Fault::Rekey { .. } => "rekey",
            Fault::InterruptedMerge { .. } => "interrupted-merge",
            Fault::CrashAtStart => "crash-at-start",
        }
    }
}

/// What a fault changed, for the operator.
pub type FaultReport = String;

/// Injects `fault` into `host` of the lab in `dir`.
pub fn inject(dir: &Path, host: &str, fault: &Fault) -> Result<FaultReport> {
    let layout = Layout::open(dir)?;
    let mut state = LabState::load(&layout)?;
    let record = state.host(host)?.clone();
    if *fault == Fault::CrashAtStart && state.host_kind == HostKind::Systemd {
        refuse_crash_on_real(&state, host)?;
        let config = super::service::OnHost::new(HostKind::Systemd, &layout.host(host)).config_dir;
        let marker = config.join(crash::MARKER).display().to_string();
        let marker = super::quote::word(&marker);
        let user = super::quote::word(super::tree::SERVICE_USER);
        super::remote::Remote::new(&layout, &state, &record).run(
            "writing the crash-at-start marker",
            &format!("touch {marker} && chown {user}: {marker}"),
        )?;
        return Ok(crash_report(host, &config.join(crash::MARKER)));
    }
    // A Docker host's config folder is the lab's, bind-mounted into its container.
    let on_the_machine = state.host_kind == HostKind::Process
        || (*fault == Fault::CrashAtStart && state.host_kind == HostKind::Docker);
    if !on_the_machine {
        // Faults act on the lab's own processes and files; a container's are its own.
        return Err(LabError::FaultRefused {
            host: host.to_string(),
            fault: fault.name(),
            reason: format!(
                "the hosts of this lab are {} containers; faults other than crash-at-start act \
                 on process hosts only",
                state.host_kind.as_str()
            ),
        });
    }
    let spec = state.sshd_spec(&layout, &record);
    let sshd_marker = spec.dir.display().to_string();
    let sshd_running = record
        .sshd_pid
        .is_some_and(|pid| procs::is_ours(pid, &sshd_marker));
    let paths = layout.host(host);
    let report = match fault {
        Fault::StopSshd => {
            let stopped = record
                .sshd_pid
                .is_some_and(|pid| procs::stop_if_ours(pid, &sshd_marker, Duration::from_secs(2)));
            state.host_mut(host)?.sshd_pid = None;
            state.save(&layout)?;
            if stopped {
                format!("{host}: sshd stopped")
            } else {
                format!("{host}: sshd was not running")
            }
        }
        Fault::StartSshd => {
            if sshd_running {
                format!(
                    "{host}: sshd already running (pid {})",
                    record.sshd_pid.unwrap_or_default()
                )
            } else {
                let pid = hosts::start_one(host, &spec)?;
                state.host_mut(host)?.sshd_pid = Some(pid);
                state.save(&layout)?;
                format!("{host}: sshd started (pid {pid})")
            }
        }
        Fault::KillPeer => {
            let marker = paths.home().display().to_string();
            match peer_pid(&paths.pid_file()) {
                Some(pid) if procs::kill_if_ours(pid, &marker) => {
                    format!("{host}: peer killed (pid {pid})")
                }
                _ => format!("{host}: peer was not running"),
            }
        }
        Fault::RmState { backups } => {
            let config = paths.config_dir();
            let mut removed = Vec::new();
            let entries = fs::read_dir(&config).map_err(LabError::io("reading", &config))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name == "raft"
                    || DATASTORES.contains(&name.as_str())
                    || (*backups && name.starts_with("raft.old."))
                {
                    let path = entry.path();
                    fs::remove_dir_all(&path).map_err(LabError::io("removing", &path))?;
                    removed.push(name);
                }
            }
            removed.sort();
            if removed.is_empty() {
                format!("{host}: no raft state or datastore to remove")
            } else {
                format!("{host}: removed {}", removed.join(", "))
            }
        }
        Fault::InterruptedMerge { pins } => arm_interrupted_merge(&state, host, &paths, *pins)?,
        Fault::CrashAtStart => arm_crash_at_start(&state, host, &paths)?,
        Fault::Rekey { update_known_hosts } => {
            let key = spec.host_key_path();
            generate_key(&key, "lab-host-key").map_err(LabError::io("generating key", &key))?;
            let mut report = format!("{host}: new host key");
            if sshd_running {
                // sshd re-reads keys for each connection, but a restart makes the change certain.
                if let Some(pid) = record.sshd_pid {
                    procs::stop_if_ours(pid, &sshd_marker, Duration::from_secs(2));
                }
                let pid = hosts::start_one(host, &spec)?;
                state.host_mut(host)?.sshd_pid = Some(pid);
                state.save(&layout)?;
                report.push_str(&format!(", sshd restarted (pid {pid})"));
            }
            if *update_known_hosts {
                let specs: Vec<_> = state
                    .hosts
                    .iter()
                    .map(|h| state.sshd_spec(&layout, h))
                    .collect();
                let relay_port = state.latency.as_ref().map(|l| l.port);
                keys::write_known_hosts(&layout, &specs.iter().collect::<Vec<_>>(), relay_port)?;
                report.push_str(", known_hosts updated");
            }
            report
        }
    };
    Ok(report)
}

/// Writes the `interrupted-merge` marker into a stand-in CRDT peer's config folder. Refused
/// for a lab of real binaries (there the interruption is a race no marker can trigger) and
/// for a raft peer (nothing merges).
fn arm_interrupted_merge(
    state: &LabState,
    host: &str,
    paths: &HostPaths,
    pins: usize,
) -> Result<FaultReport> {
    let refuse = |reason: &str| LabError::FaultRefused {
        host: host.to_string(),
        fault: "interrupted-merge",
        reason: reason.to_string(),
    };
    if state.real.is_some() {
        return Err(refuse(
            "this lab runs the real binaries; only the stand-in models an interrupted merge \
             (with the real ones it is a race of a stop against go-ds-crdt)",
        ));
    }
    if pins == 0 {
        return Err(LabError::InvalidOption {
            option: "--pins",
            detail: "an interrupted merge leaves out at least one pin".into(),
        });
    }
    let config = paths.config_dir();
    if !is_crdt_peer(&config)? {
        return Err(refuse(
            "its peer runs raft consensus; only a CRDT peer merges updates",
        ));
    }
    dirty::arm(&config, pins).map_err(LabError::io("writing", config.join(dirty::MARKER)))?;
    Ok(format!(
        "{host}: the peer's next stop interrupts a merge: on a release with go-ds-crdt \
         v0.3–v0.5 (0.14.5 to 1.1.1) it leaves out the {pins} pin(s) it received last and \
         marks its store dirty ({})",
        config.join(dirty::MARKER).display()
    ))
}

/// Writes the `crash-at-start` marker into a stand-in peer's config folder on this machine (a
/// process host's, or the one a Docker host's container mounts). Refused for a lab of real
/// binaries, where the crash is a race no marker can trigger.
fn arm_crash_at_start(state: &LabState, host: &str, paths: &HostPaths) -> Result<FaultReport> {
    refuse_crash_on_real(state, host)?;
    let config = paths.config_dir();
    let marker = config.join(crash::MARKER);
    crash::arm(&config).map_err(LabError::io("writing", &marker))?;
    Ok(crash_report(host, &marker))
}

fn refuse_crash_on_real(state: &LabState, host: &str) -> Result<()> {
    if state.real.is_some() {
        return Err(LabError::FaultRefused {
            host: host.to_string(),
            fault: "crash-at-start",
            reason: "this lab runs the real binaries; only the stand-in crashes on demand \
                     (with the real ones it is a race of an API request against the start)"
                .to_string(),
        });
    }
    Ok(())
}

fn crash_report(host: &str, marker: &Path) -> FaultReport {
    format!(
        "{host}: the peer's next start on a 1.x release crashes (a Go panic, exit status {}) \
         ({})",
        crash::GO_PANIC_STATUS,
        marker.display()
    )
}

/// Whether the `service.json` in `config` configures CRDT consensus (a `consensus.crdt`
/// section, as the stand-in reads it).
fn is_crdt_peer(config: &Path) -> Result<bool> {
    let path = config.join("service.json");
    let text = fs::read_to_string(&path).map_err(LabError::io("reading", &path))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| LabError::State { path, source })?;
    Ok(json["consensus"]["crdt"].is_object())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::state::{Ports, RealLab, RealPorts};

    fn lab_state(real: bool) -> LabState {
        LabState {
            version: "1.0.8".into(),
            target: "1.1.6".into(),
            user: "root".into(),
            ports: Ports::default(),
            secret: String::new(),
            hosts: Vec::new(),
            real: real.then(|| RealLab {
                consensus: crate::lab::Consensus::Crdt,
                releases: "/real".into(),
                kubo: "/kubo".into(),
                kubo_version: "0.43.0".into(),
                ports: RealPorts::default(),
                pins: Vec::new(),
            }),
            bastions: Vec::new(),
            login: None,
            latency: None,
            host_kind: crate::lab::HostKind::Process,
        }
    }

    /// A host whose `service.json` has the consensus section `consensus`.
    fn host(dir: &Path, consensus: &str) -> HostPaths {
        let paths = Layout::open(dir).unwrap().host("h1");
        fs::create_dir_all(paths.config_dir()).unwrap();
        let config = format!(r#"{{"consensus":{{"{consensus}":{{}}}}}}"#);
        fs::write(paths.config_dir().join("service.json"), config).unwrap();
        paths
    }

    #[test]
    fn interrupted_merge_arms_only_a_stand_in_crdt_peer() {
        let dir = tempfile::tempdir().unwrap();
        let crdt = host(dir.path(), "crdt");
        let report = arm_interrupted_merge(&lab_state(false), "h1", &crdt, 4).unwrap();
        assert!(report.contains("leaves out the 4 pin(s)"), "{report}");
        assert_eq!(dirty::armed(&crdt.config_dir()), Some(4));

        let refused = arm_interrupted_merge(&lab_state(true), "h1", &crdt, 4).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("this lab runs the real binaries"),
            "{refused}"
        );
        let zero = arm_interrupted_merge(&lab_state(false), "h1", &crdt, 0).unwrap_err();
        assert!(matches!(zero, LabError::InvalidOption { .. }), "{zero}");

        let raft = host(dir.path(), "raft");
        fs::remove_file(raft.config_dir().join(dirty::MARKER)).unwrap();
        let refused = arm_interrupted_merge(&lab_state(false), "h1", &raft, 3).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("host h1: fault interrupted-merge does not apply: its peer runs raft"),
            "{refused}"
        );
        assert_eq!(dirty::armed(&raft.config_dir()), None);
    }

    #[test]
    fn crash_at_start_arms_only_a_stand_in_peer() {
        let dir = tempfile::tempdir().unwrap();
        let peer = host(dir.path(), "crdt");
        let report = arm_crash_at_start(&lab_state(false), "h1", &peer).unwrap();
        assert!(
            report.contains("next start on a 1.x release crashes"),
            "{report}"
        );
        assert!(peer.config_dir().join(crash::MARKER).exists());

        let real = tempfile::tempdir().unwrap();
        let other = host(real.path(), "crdt");
        let refused = arm_crash_at_start(&lab_state(true), "h1", &other).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("this lab runs the real binaries"),
            "{refused}"
        );
        assert!(!other.config_dir().join(crash::MARKER).exists());
    }
}
