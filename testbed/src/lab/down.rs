//! `cluster-lab down`: stop every process of a lab, by PID. Safe to run twice.
//!
//! Peers go first (SIGTERM through their PID files, so they snapshot like a clean shutdown;
//! a Docker host's containers through its engine, run here), then a real lab's kubo daemons,
//! then each sshd, then each systemd host's container (it
//! stops its own peer and sshd as it powers off; its cgroup is removed), then the delaying
//! relay (`up --rtt`); last, any process whose command line still points into the lab's hosts
//! (a daemon started by hand, an ssh session's shell) is stopped too.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::error::{LabError, Result};
use super::layout::Layout;
use super::parallel;
use super::procs;
use super::state::LabState;
use super::systemd;

/// How long a peer may take to snapshot and exit before SIGKILL (as the service wrapper).
const PEER_GRACE: Duration = Duration::from_secs(30);

/// What `down` stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Hosts whose peer was running.
    pub peers: Vec<String>,
    /// Hosts whose sshd was running.
    pub sshds: Vec<String>,
    /// Hosts whose container was running (systemd hosts: peer and sshd stopped with it).
    pub containers: Vec<String>,
    /// Other processes that pointed into the lab, with their command lines.
    pub stragglers: Vec<(u32, String)>,
    /// Whether the delaying relay in front of the hosts was running.
    pub relay: bool,
}

/// Reads the PID in a peer's PID file, if any.
pub fn peer_pid(pid_file: &Path) -> Option<u32> {
    fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// Stops the lab in `dir`. A folder without a lab (or without `lab.json`) is not an error:
/// there is then only the sweep to do.
pub fn down(dir: &Path) -> Result<DownReport> {
    let mut report = DownReport::default();
    let layout = match Layout::open(dir) {
        Ok(layout) => layout,
        Err(LabError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(report)
        }
        Err(e) => return Err(e),
    };
    let state = match LabState::load(&layout) {
        Ok(state) => Some(state),
        Err(LabError::NotALab { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(mut state) = state {
        let stopped = parallel::map(&state.hosts, parallel::HOST_WORKERS, |host| {
            let paths = layout.host(&host.name);
            let marker = paths.home().display().to_string();
            let was_running = peer_pid(&paths.pid_file())
                .is_some_and(|pid| procs::stop_if_ours(pid, &marker, PEER_GRACE))
                | (state.host_kind == super::state::HostKind::Docker
                    && super::docker::remove_containers(&paths, PEER_GRACE.as_secs() as u32));
            let _ = fs::remove_file(paths.pid_file());
            // A real lab's kubo goes after its peer, which talks to it until it stops.
            if let Some(pid) = peer_pid(&paths.kubo_pid_file()) {
                procs::stop_if_ours(pid, &marker, PEER_GRACE);
                let _ = fs::remove_file(paths.kubo_pid_file());
            }
            was_running
        });
        report.peers = names_where(&state, &stopped);
        let stopped = parallel::map(&state.hosts, parallel::HOST_WORKERS, |host| {
            let spec = state.sshd_spec(&layout, host);
            host.sshd_pid.is_some_and(|pid| {
                procs::stop_if_ours(pid, &spec.dir.display().to_string(), Duration::from_secs(2))
            })
        });
        report.sshds = names_where(&state, &stopped);
        let stopped = parallel::map(&state.hosts, parallel::HOST_WORKERS, |host| {
            host.container.as_ref().is_some_and(|container| {
                systemd::stop(container, &layout.host(&host.name).container_dir())
            })
        });
        report.containers = names_where(&state, &stopped);
        for host in &mut state.hosts {
            host.sshd_pid = None;
            if let Some(container) = host.container.as_mut() {
                container.pid = None;
            }
        }
        report
            .sshds
            .extend(super::bastion::stop(&layout, &mut state));
        report.relay = super::latency::stop(&layout, &mut state);
        state.save(&layout)?;
    }
    // A relay whose PID never made it into lab.json (an `up` killed just then) names its rules.
    let relay = layout.delay_relay().display().to_string();
    for marker in [format!("{}/", layout.hosts().display()), relay] {
        for (pid, cmdline) in procs::mentioning(&marker) {
            if procs::stop_if_ours(pid, &marker, Duration::from_secs(5)) {
                // The nspawn of a container `up` had no time to record: its cgroup goes too
                // (the container's init outlives a killed nspawn there).
                if let Some(machine) = systemd::machine_of(&cmdline) {
                    systemd::remove_cgroups(&machine);
                }
                report.stragglers.push((pid, cmdline));
            }
        }
    }
    // A Docker host's storage stays mounted by Podman (or by a process the sweep stopped
    // half-way): the lab's folder could not be removed.
    if let Ok(hosts) = fs::read_dir(layout.hosts()) {
        for host in hosts.flatten() {
            let name = host.file_name();
            super::docker::unmount_host(&layout.host(&name.to_string_lossy()));
        }
    }
    Ok(report)
}

fn names_where(state: &LabState, flags: &[bool]) -> Vec<String> {
    state
        .hosts
        .iter()
        .zip(flags)
        .filter(|(_, &f)| f)
        .map(|(h, _)| h.name.clone())
        .collect()
}
