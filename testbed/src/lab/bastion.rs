//! `up --bastion` (`--bastions N`): the hosts can be reached only through a bastion sshd (or a
//! chain of them: bastion → bastion2 → hosts), as behind a real jump host.
//!
//! How (docs/adr/0013-proxyjump.md): bastion `i` runs its sshd in a network namespace of its
//! own, `N_i`, whose loopback nothing else listens on. A relay per bastion stands for the
//! network: it listens on the bastion's address in the namespace before it (this one's for the
//! first) and dials its sshd in `N_i`; the last bastion's relay also listens, in `N_last`, on
//! every host's SSH address and dials it from the last bastion's address. Each host's sshd
//! allows logins only from that address (`AllowUsers *@ADDRESS`): a direct connection, which
//! comes from 127.0.0.1, is refused at login; one through the bastions gets in.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::netns;
use crate::relay::{self, Rule};
use crate::sshd::SshdSpec;

use super::error::{LabError, Result};
use super::layout::Layout;
use super::state::LabState;

/// The most bastions in a chain.
pub const MAX_BASTIONS: usize = 2;

/// One bastion of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BastionRecord {
    /// `bastion`, `bastion2`, …
    pub name: String,
    pub address: Ipv4Addr,
    /// The network namespace its sshd runs in.
    pub netns: String,
    pub sshd_pid: Option<u32>,
    /// The relay that reaches it (and, for the last one, the hosts behind it).
    pub relay_pid: Option<u32>,
}

/// The name of bastion `index` (0-based) of a chain.
pub fn name(index: usize) -> String {
    match index {
        0 => "bastion".to_string(),
        i => format!("bastion{}", i + 1),
    }
}

/// The address of bastion `index`: the top of the hosts' /24 (hosts start at .2).
pub fn address(host: Ipv4Addr, index: usize) -> Ipv4Addr {
    let [n, a, b, _] = host.octets();
    Ipv4Addr::new(n, a, b, 254 - index as u8)
}

/// The sshd of a bastion, in its namespace.
pub fn sshd_spec(layout: &Layout, bastion: &BastionRecord, port: u16) -> SshdSpec {
    let root = layout.bastions().join(&bastion.name);
    SshdSpec {
        dir: root.join("sshd"),
        address: bastion.address,
        port,
        home: root.join("home"),
        authorized_keys: layout.authorized_keys(),
        netns: Some(bastion.netns.clone()),
        allow_from: None,
    }
}

fn relay_rules_file(layout: &Layout, bastion: &BastionRecord) -> PathBuf {
    layout.bastions().join(&bastion.name).join("relay.json")
}

/// Starts `count` bastions in front of the lab's hosts, recording each in `lab.json` as soon
/// as it runs (so that `down` stops it if a later one fails), and writes the lab's ssh_config.
pub fn start(layout: &Layout, state: &mut LabState, count: usize) -> Result<()> {
    let first_host = state.hosts[0].address;
    // The namespaces are named after the lab's /24, which no other running lab holds.
    let [_, a, b, _] = first_host.octets();
    let program = relay::program().map_err(LabError::io("locating", "the running executable"))?;
    for index in 0..count {
        let bastion = BastionRecord {
            name: name(index),
            address: address(first_host, index),
            netns: format!("cul-{a}-{b}-{}", index + 1),
            sshd_pid: None,
            relay_pid: None,
        };
        let ns_path = netns::path(&bastion.netns);
        netns::create(&bastion.netns)
            .map_err(LabError::io("creating network namespace", &ns_path))?;
        state.bastions.push(bastion.clone());
        state.save(layout)?;
        let spec = sshd_spec(layout, &bastion, state.ports.ssh);
        let pid = super::hosts::start_one(&bastion.name, &spec)?;
        state.bastions[index].sshd_pid = Some(pid);
        state.save(layout)?;
        let rules = relay_rules(state, index);
        let file = relay_rules_file(layout, &bastion);
        let pid = relay::spawn(&program, "relay", &file, &rules).map_err(|source| {
            LabError::SshdStart {
                host: format!("{} (relay)", bastion.name),
                source,
            }
        })?;
        state.bastions[index].relay_pid = Some(pid);
        state.save(layout)?;
    }
    write_ssh_config(layout, state)
}

/// What bastion `index`'s relay forwards: its own SSH address from the namespace before it,
/// and, for the last bastion, every host's SSH address from its namespace.
fn relay_rules(state: &LabState, index: usize) -> Vec<Rule> {
    let port = state.ports.ssh;
    let bastion = &state.bastions[index];
    let before = index
        .checked_sub(1)
        .map(|i| state.bastions[i].netns.clone());
    let mut rules = vec![Rule {
        listen_netns: before,
        listen: SocketAddrV4::new(bastion.address, port),
        dial_netns: Some(bastion.netns.clone()),
        dial: SocketAddrV4::new(bastion.address, port),
        source: None,
    }];
    if index + 1 == state.bastion_count() {
        rules.extend(state.hosts.iter().map(|host| Rule {
            listen_netns: Some(bastion.netns.clone()),
            listen: SocketAddrV4::new(host.address, port),
            dial_netns: None,
            dial: SocketAddrV4::new(host.address, port),
            source: Some(bastion.address),
        }));
    }
    rules
}

/// The lab's ssh_config: each bastion as a `Host` with the lab's key, known_hosts and strict
/// checking (ssh passes only `-F` on to the ssh it runs for a jump host, not `-o` options),
/// each after the one before it.
pub fn write_ssh_config(layout: &Layout, state: &LabState) -> Result<()> {
    let mut text = String::from("# Written by cluster-lab up: the lab's bastions.\n");
    for (index, bastion) in state.bastions.iter().enumerate() {
        let _ = writeln!(text, "Host {}", bastion.name);
        let _ = writeln!(text, "  HostName {}", bastion.address);
        let _ = writeln!(text, "  Port {}", state.ports.ssh);
        let _ = writeln!(text, "  User {}", state.user);
        let _ = writeln!(text, "  IdentityFile \"{}\"", layout.identity().display());
        let _ = writeln!(text, "  IdentitiesOnly yes");
        let _ = writeln!(
            text,
            "  UserKnownHostsFile \"{}\"",
            layout.known_hosts().display()
        );
        let _ = writeln!(text, "  GlobalKnownHostsFile /dev/null");
        let _ = writeln!(text, "  StrictHostKeyChecking yes");
        let _ = writeln!(text, "  BatchMode yes");
        let _ = writeln!(text, "  LogLevel ERROR");
        if let Some(before) = index.checked_sub(1) {
            let _ = writeln!(text, "  ProxyJump {}", state.bastions[before].name);
        }
    }
    let path = layout.ssh_config();
    fs::write(&path, text).map_err(LabError::io("writing", &path))
}

/// The inventory's `proxy_jump`: `user@address:port` of every bastion, first to last.
pub fn proxy_jump(state: &LabState) -> Option<String> {
    let hops: Vec<String> = state
        .bastions
        .iter()
        .map(|b| format!("{}@{}:{}", state.user, b.address, state.ports.ssh))
        .collect();
    (!hops.is_empty()).then(|| hops.join(","))
}

/// Stops every bastion's relay and sshd (by PID) and deletes its namespace; says which ran.
pub fn stop(layout: &Layout, state: &mut LabState) -> Vec<String> {
    let mut stopped = Vec::new();
    for bastion in state.bastions.iter_mut().rev() {
        let file = relay_rules_file(layout, bastion).display().to_string();
        if let Some(pid) = bastion.relay_pid.take() {
            super::procs::stop_if_ours(pid, &file, Duration::from_secs(2));
        }
        let spec = sshd_spec(layout, bastion, state.ports.ssh);
        if let Some(pid) = bastion.sshd_pid.take() {
            if super::procs::stop_if_ours(
                pid,
                &spec.dir.display().to_string(),
                Duration::from_secs(2),
            ) {
                stopped.push(bastion.name.clone());
            }
        }
        let _ = netns::delete(&bastion.netns);
    }
    stopped
}
