//! `cluster-lab status`: what every host runs, gathered over SSH.

use crate::lab::remote::Job;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::ctl;
use super::error::Result;
use super::latency;
use super::layout::Layout;
use super::parallel;
use super::peer::Peer;
use super::quote;
use super::remote::Input;
use super::state::LabState;
use super::wrapper;

/// One host's state. `None` means unknown: the host (sshd) or the peer's API did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    pub host: String,
    /// The installed `ipfs-cluster-service` release (`--version`).
    pub version: Option<String>,
    /// Whether the service wrapper reports the peer running.
    pub running: Option<bool>,
    /// Peers in this peer's consensus peerset, itself included.
    pub peers: Option<usize>,
    /// Pins this peer lists.
    pub pins: Option<usize>,
    /// Why something is unknown, if it is.
    pub error: Option<String>,
    /// Whether the host's kubo daemon runs (labs of real binaries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipfs_running: Option<bool>,
    /// Whether the host's SSH banner comes through the delaying relay (`up --rtt` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
}

/// Section markers in the probe's output; no tool prints lines starting with them.
const MARK: &str = "@@lab:";

/// Gathers the status of every host of the lab in `dir`, in host order.
pub fn status(dir: &Path) -> Result<Vec<HostStatus>> {
    let layout = Layout::open(dir)?;
    let state = LabState::load(&layout)?;
    let peers: Vec<Peer> = state
        .hosts
        .iter()
        .map(|h| Peer::new(&layout, &state, h))
        .collect();
    let real = state.real.is_some();
    let relay_running = latency::relay_running(&layout, &state);
    Ok(parallel::map(&peers, parallel::HOST_WORKERS, |peer| {
        let mut status = probe(peer, real);
        if let Some(record) = &state.latency {
            let address = state.host(&peer.name).expect("a peer of this lab").address;
            let through = match relay_running {
                true => latency::probe(address, record),
                false => Err("the delaying relay is not running".to_string()),
            };
            status.relay = Some(through.is_ok());
            if let Err(why) = through {
                status.error = Some(match status.error.take() {
                    Some(error) => format!("{error}; {why}"),
                    None => why,
                });
            }
        }
        status
    }))
}

fn probe(peer: &Peer, real: bool) -> HostStatus {
    let service = quote::command(&peer.on_host.tool("ipfs-cluster-service"));
    let svc = peer.on_host.service_script("status", &[]);
    let mut script = format!(
        "echo {MARK}version; {service} --version 2>/dev/null\n\
         echo; echo {MARK}running; {svc} >/dev/null 2>&1; echo $?\n\
         echo {MARK}id; {id} 2>/dev/null\n\
         echo; echo {MARK}pins; {pins} 2>/dev/null\n",
        id = peer.ctl(&["id"]),
        pins = peer.ctl(&["pin", "ls"]),
    );
    if real {
        let kubo = peer.on_host.kubo.script("status", &[], "");
        script.push_str(&format!(
            "echo; echo {MARK}ipfs; {kubo} >/dev/null 2>&1; echo $?\n"
        ));
    }
    let mut status = HostStatus {
        host: peer.name.clone(),
        version: None,
        running: None,
        peers: None,
        pins: None,
        error: None,
        ipfs_running: None,
        relay: None,
    };
    let output = match peer.remote.exec(Job {
        step: "status",
        script: &script,
        input: Input::Nothing,
        timeout: Duration::from_secs(60),
    }) {
        Ok(output) if output.status != Some(255) => output,
        Ok(output) => {
            status.error = Some(peer.remote.failed("status", &output).to_string());
            return status;
        }
        Err(e) => {
            status.error = Some(e.to_string());
            return status;
        }
    };
    let section = |name: &str| section(&output.stdout, name);
    status.version = ctl::parse_version(&section("version"));
    status.running = match section("running").trim() {
        "0" => Some(true),
        code if code == wrapper::STATUS_NOT_RUNNING.to_string() => Some(false),
        _ => None,
    };
    status.peers = ctl::parse_id(&section("id"))
        .ok()
        .map(|id| id.cluster_peers.len());
    let pins = section("pins");
    status.pins = if pins.trim().is_empty() {
        None
    } else {
        ctl::count_pins(&pins).ok()
    };
    if real {
        status.ipfs_running = match section("ipfs").trim() {
            "0" => Some(true),
            code if code == wrapper::STATUS_NOT_RUNNING.to_string() => Some(false),
            _ => None,
        };
    }
    if status.running == Some(true) && status.peers.is_none() {
        status.error = Some("the peer runs but its API does not answer".into());
    }
    status
}

/// The lines after `MARK name` up to the next mark.
fn section(text: &str, name: &str) -> String {
    let header = format!("{MARK}{name}");
    let mut lines = text.lines().skip_while(|l| l.trim() != header);
    lines.next();
    lines
        .take_while(|l| !l.starts_with(MARK))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line per host for people: `h1  0.10.1  running  3 peers  100 pins`.
pub fn render_text(statuses: &[HostStatus]) -> String {
    let show = |v: Option<usize>| v.map_or("?".to_string(), |v| v.to_string());
    statuses
        .iter()
        .map(|s| {
            let running = match s.running {
                Some(true) => "running",
                Some(false) => "stopped",
                None => "unknown",
            };
            let mut line = format!(
                "{:<5} {:<8} {:<8} {:>3} peers {:>6} pins",
                s.host,
                s.version.as_deref().unwrap_or("?"),
                running,
                show(s.peers),
                show(s.pins)
            );
            match s.ipfs_running {
                Some(true) => line.push_str("  kubo running"),
                Some(false) => line.push_str("  kubo stopped"),
                None => {}
            }
            match s.relay {
                Some(true) => line.push_str("  relay ok"),
                Some(false) => line.push_str("  relay DOWN"),
                None => {}
            }
            if let Some(error) = &s.error {
                line.push_str(&format!("  ({error})"));
            }
            line + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_split_the_probe_output() {
        let out = "@@lab:version\nipfs-cluster-service version 0.10.1\n\n@@lab:running\n3\n@@lab:id\n\n@@lab:pins\n";
        assert_eq!(
            ctl::parse_version(&section(out, "version")).as_deref(),
            Some("0.10.1")
        );
        assert_eq!(section(out, "running").trim(), "3");
        assert_eq!(section(out, "pins").trim(), "");
    }
}
