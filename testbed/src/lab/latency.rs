//! `up --rtt` (issue 19): every host is reached through a delaying relay (`crate::delay`), so
//! every tool that reads the lab's inventory crosses the same simulated network.
//!
//! One relay process per lab, started by `up` once the sshds run and stopped by `down`, by
//! PID. It listens on each host's own address, on the lab's relay port (the SSH port + 100
//! unless taken), and dials that host's sshd. The inventory names the relay's port, and
//! known_hosts has each host key under both ports: `[address]:relay-port` for the tools,
//! `[address]:ssh-port` for the lab's own commands, which go straight to the sshds so that
//! `up`, `status` and `fault` do not pay the round trips.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::delay::{Delay, Route, Rules};
use crate::relay;

use super::error::{LabError, Result};
use super::layout::Layout;
use super::procs;
use super::state::LabState;

/// The relay port is the SSH port plus this (when both are free on every address).
pub const PORT_OFFSET: u16 = 100;

/// How long `status` waits for a host's SSH banner through the relay, beyond two round trips.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The delaying relay in front of a lab's hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyRecord {
    pub delay: Delay,
    /// The port the relay listens on, on every host's address (the inventory's port).
    pub port: u16,
    /// The relay process, `None` before it started and after `down`.
    pub relay_pid: Option<u32>,
}

/// The relay port preferred for a lab whose sshds listen on `ssh`.
pub fn relay_port(ssh: u16) -> Option<u16> {
    ssh.checked_add(PORT_OFFSET)
}

/// The relay's routes: each host's address on `port` to its sshd.
pub fn rules(state: &LabState, delay: Delay, port: u16) -> Rules {
    Rules {
        delay,
        routes: state
            .hosts
            .iter()
            .map(|host| Route {
                listen: SocketAddrV4::new(host.address, port),
                dial: SocketAddrV4::new(host.address, state.ports.ssh),
            })
            .collect(),
    }
}

/// Starts the lab's relay on `port`, recording it in `lab.json` before (so that `down` finds its
/// rules file) and after (its PID).
pub fn start(layout: &Layout, state: &mut LabState, delay: Delay, port: u16) -> Result<()> {
    state.latency = Some(LatencyRecord {
        delay,
        port,
        relay_pid: None,
    });
    state.save(layout)?;
    let program = relay::program().map_err(LabError::io("locating", "the running executable"))?;
    let rules = rules(state, delay, port);
    let file = layout.delay_relay();
    let pid = relay::spawn(&program, "delay-relay", &file, &rules)
        .map_err(|source| LabError::RelayStart { source })?;
    if let Some(latency) = state.latency.as_mut() {
        latency.relay_pid = Some(pid);
    }
    state.save(layout)
}

/// Whether the lab's relay runs (its PID alive and its command line naming the lab's rules).
pub fn relay_running(layout: &Layout, state: &LabState) -> bool {
    let marker = layout.delay_relay().display().to_string();
    state
        .latency
        .as_ref()
        .and_then(|l| l.relay_pid)
        .is_some_and(|pid| procs::is_ours(pid, &marker))
}

/// Stops the lab's relay by PID; says whether it ran.
pub fn stop(layout: &Layout, state: &mut LabState) -> bool {
    let marker = layout.delay_relay().display().to_string();
    let Some(pid) = state.latency.as_mut().and_then(|l| l.relay_pid.take()) else {
        return false;
    };
    procs::stop_if_ours(pid, &marker, Duration::from_secs(2))
}

/// Reads a host's SSH banner through the relay: the path every tool takes works.
pub fn probe(address: Ipv4Addr, latency: &LatencyRecord) -> std::result::Result<(), String> {
    let target = SocketAddrV4::new(address, latency.port);
    let limit = PROBE_TIMEOUT + latency.delay.rtt * 4;
    let fail = |e: std::io::Error| format!("the delaying relay on {target}: {e}");
    let stream = TcpStream::connect_timeout(&target.into(), limit).map_err(fail)?;
    stream.set_read_timeout(Some(limit)).map_err(fail)?;
    let mut banner = String::new();
    BufReader::new(stream)
        .read_line(&mut banner)
        .map_err(fail)?;
    if banner.starts_with("SSH-") {
        Ok(())
    } else {
        Err(format!(
            "the delaying relay on {target}: no SSH banner from the host (got {:?})",
            banner.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::state::{HostRecord, Ports};

    #[test]
    fn every_host_is_routed_from_the_relay_port_to_its_sshd() {
        let state = LabState {
            version: "0.10.1".into(),
            target: "0.11.0".into(),
            user: "root".into(),
            ports: Ports::default(),
            secret: String::new(),
            hosts: ["127.9.8.2", "127.9.8.3"]
                .iter()
                .enumerate()
                .map(|(i, a)| HostRecord {
                    name: format!("h{}", i + 1),
                    address: a.parse().unwrap(),
                    sshd_pid: None,
                    peer_id: None,
                    container: None,
                })
                .collect(),
            real: None,
            bastions: Vec::new(),
            login: None,
            latency: None,
            host_kind: crate::lab::HostKind::Process,
        };
        let delay = Delay::parse("40ms", None).unwrap();
        let port = relay_port(state.ports.ssh).unwrap();
        assert_eq!(port, 2322);
        let rules = rules(&state, delay, port);
        assert_eq!(rules.delay, delay);
        assert_eq!(
            rules.routes,
            vec![
                Route {
                    listen: "127.9.8.2:2322".parse().unwrap(),
                    dial: "127.9.8.2:2222".parse().unwrap(),
                },
                Route {
                    listen: "127.9.8.3:2322".parse().unwrap(),
                    dial: "127.9.8.3:2222".parse().unwrap(),
                },
            ]
        );
        assert_eq!(relay_port(u16::MAX - 5), None);
    }
}
