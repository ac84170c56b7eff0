//! The parts of `cluster-lab up --real` that a lab of stand-ins does not have: kubo on every
//! host, the peers' IPFS and listener addresses, the peers' addresses of each other, blocks for
//! the pins, and the measurements. Everything else (hosts, install, init, the service wrapper,
//! forming the cluster, adding pins) is `up`'s own path.

use crate::lab::remote::Job;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::error::{LabError, Result};
use super::kubo;
use super::layout::Layout;
use super::parallel;
use super::peer::Peer;
use super::quote;
use super::real::{RealReleases, KUBO_FILE};
use super::state::{Consensus, HostRecord, LabState, RealLab, RealPorts};

/// How often a real peer sends its ping metric. A CRDT peerset is the peers whose ping is
/// recent, so this bounds how soon a (re)started peer is seen; real deployments use 15 s.
pub const MONITOR_PING_INTERVAL: &str = "2s";

/// How often a real CRDT peer broadcasts its heads again. A peer that missed a broadcast
/// (right after start, while the pubsub mesh forms) gets the pins behind it only then; real
/// deployments use 1 min.
pub const CRDT_REBROADCAST_INTERVAL: &str = "5s";

/// What `up --real` installs: the real release folders and kubo.
#[derive(Debug, Clone)]
pub struct RealSetup {
    pub releases: RealReleases,
    /// The folder of the release installed on every host.
    pub version_dir: PathBuf,
    pub kubo_version: String,
    pub kubo_dir: PathBuf,
    pub consensus: Consensus,
}

impl RealSetup {
    /// The record kept in `lab.json` (the pins are filled in once added).
    pub fn record(&self, ports: RealPorts) -> RealLab {
        RealLab {
            consensus: self.consensus,
            releases: self.releases.cluster_dir(),
            kubo: self.kubo_dir.clone(),
            kubo_version: self.kubo_version.clone(),
            ports,
            pins: Vec::new(),
        }
    }
}

/// The real ports for network attempt `attempt`: a real deployment's first, then the three
/// ports after the random base `ssh` port `network::candidate` chose (ssh, api, cluster).
pub fn ports_for(attempt: u32, ssh: u16) -> RealPorts {
    if attempt < 2 {
        RealPorts::default()
    } else {
        RealPorts {
            ipfs_api: ssh + 3,
            proxy: ssh + 4,
            pinsvc: ssh + 5,
        }
    }
}

/// Checks that every real port can be bound on every address; says which cannot.
pub fn check_free(addresses: &[Ipv4Addr], ports: RealPorts) -> std::result::Result<(), String> {
    for address in addresses {
        for port in [ports.ipfs_api, ports.proxy, ports.pinsvc] {
            TcpListener::bind((*address, port)).map_err(|e| format!("{address}:{port}: {e}"))?;
        }
    }
    Ok(())
}

/// The `CLUSTER_*` overrides `init` gets on a real host: every listener and the IPFS daemon on
/// the host's own address, no mDNS (it would multicast beyond loopback), a short ping interval.
pub fn init_env(state: &LabState, host: &HostRecord) -> Vec<(String, String)> {
    let Some(real) = &state.real else {
        // The stand-in reads the same timers (a CRDT peer's metrics and rebroadcasts).
        return [
            ("CLUSTER_MONITORPINGINTERVAL", MONITOR_PING_INTERVAL),
            (
                "CLUSTER_CRDT_REBROADCASTINTERVAL",
                CRDT_REBROADCAST_INTERVAL,
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    };
    let at = |port: u16| format!("/ip4/{}/tcp/{port}", host.address);
    let ipfs = at(real.ports.ipfs_api);
    [
        ("CLUSTER_MDNSINTERVAL", "0s".to_string()),
        (
            "CLUSTER_MONITORPINGINTERVAL",
            MONITOR_PING_INTERVAL.to_string(),
        ),
        (
            "CLUSTER_CRDT_REBROADCASTINTERVAL",
            CRDT_REBROADCAST_INTERVAL.to_string(),
        ),
        ("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", ipfs.clone()),
        ("CLUSTER_IPFSPROXY_NODEMULTIADDRESS", ipfs),
        ("CLUSTER_IPFSPROXY_LISTENMULTIADDRESS", at(real.ports.proxy)),
        (
            "CLUSTER_PINSVCAPI_HTTPLISTENMULTIADDRESS",
            at(real.ports.pinsvc),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// Installs kubo on a host, writes its unit, and runs `ipfs init`.
pub fn install_kubo(layout: &Layout, setup: &RealSetup, peer: &Peer, api: &str) -> Result<()> {
    peer.install_files(layout, &setup.kubo_dir, &[KUBO_FILE])?;
    kubo::write_unit(peer)?;
    kubo::init(peer, api)
}

/// The peer ID `init` wrote into a host's `identity.json`.
fn peer_id(peer: &Peer) -> Result<String> {
    let identity = peer.on_host.config_dir.join("identity.json");
    let output = peer.remote.run(
        "read identity",
        &format!(
            "sed -n 's/.*\"id\": *\"\\([^\"]*\\)\".*/\\1/p' {}",
            quote::word(&identity.display().to_string())
        ),
    )?;
    let id = output.stdout.trim().to_string();
    if id.is_empty() {
        return Err(LabError::Parse {
            host: peer.name.clone(),
            step: "read identity".into(),
            detail: "identity.json has no id".into(),
        });
    }
    Ok(id)
}

/// Writes every peer's cluster address into every peer's `cluster.peer_addresses`, as
/// operators of a fixed cluster do. Real peers find each other's addresses through the DHT,
/// which leaves out loopback addresses: without this, two peers that joined through a third
/// never learn how to reach each other (`peers ls`: "routing: not found"), and a raft cluster
/// restarted all at once cannot elect a leader. Returns the peer IDs in host order.
pub fn write_peer_addresses(state: &LabState, peers: &[Peer]) -> Result<Vec<String>> {
    let ids = parallel::try_map(peers, parallel::HOST_WORKERS, peer_id)?;
    let addresses: Vec<String> = state
        .hosts
        .iter()
        .zip(&ids)
        .map(|(host, id)| format!("\"{}/p2p/{id}\"", state.cluster_addr(host)))
        .collect();
    let list = format!("[{}]", addresses.join(", "));
    parallel::try_map(peers, parallel::HOST_WORKERS, |peer| {
        let config = quote::word(
            &peer
                .on_host
                .config_dir
                .join("service.json")
                .display()
                .to_string(),
        );
        let script = format!(
            "grep -q '\"peer_addresses\": \\[\\]' {config} || {{ echo 'service.json has no empty peer_addresses list' >&2; exit 1; }}\n\
             sed -i {} {config}",
            quote::word(&format!("s|\"peer_addresses\": \\[\\]|\"peer_addresses\": {list}|"))
        );
        peer.remote.run("write peer_addresses", &script).map(|_| ())
    })?;
    Ok(ids)
}

/// Adds the blocks of pins `0..count` to every host's kubo (an offline daemon cannot fetch
/// them from the others) and returns their CIDs, which every host must agree on.
pub fn add_blocks(state: &LabState, peers: &[Peer], count: usize) -> Result<Vec<String>> {
    let lists = parallel::try_map(peers, parallel::HOST_WORKERS, |peer| {
        let host = state.host(&peer.name)?;
        kubo::add_blocks(peer, &state.ipfs_api(host).expect("a real lab"), count)
    })?;
    let first = lists[0].clone();
    for (peer, list) in peers.iter().zip(&lists) {
        if *list != first {
            return Err(LabError::Parse {
                host: peer.name.clone(),
                step: "ipfs add".into(),
                detail: "kubo gave other CIDs for the same blocks than on the first host".into(),
            });
        }
    }
    Ok(first)
}

/// The line a real peer logs once it is ready (consensus up and IPFS reached).
const READY_LINE: &str = "** IPFS Cluster is READY **";

/// How many times the host's peer log (its file, or its unit's journal) says READY.
pub fn ready_count(peer: &Peer) -> Result<usize> {
    let script = format!(
        "{} | grep -cF {} || true",
        peer.on_host.service.log_script(),
        quote::word(READY_LINE),
    );
    let output = peer.remote.run("read the peer log", &script)?;
    Ok(output.stdout.trim().parse().unwrap_or(0))
}

/// For a real peer, how many times its log said READY before a start; `None` otherwise.
pub fn ready_before(peer: &Peer, real: bool) -> Result<Option<usize>> {
    real.then(|| ready_count(peer)).transpose()
}

/// Start time and memory of one host's daemons.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostMeasure {
    pub host: String,
    /// From `ipfs-svc start` to kubo answering its API (measured on the host).
    pub kubo_start: Option<Duration>,
    /// From `ipfs-cluster-svc start` to the peer answering, reaching kubo and seeing the peers
    /// it should see at that point (measured by `up`, through SSH).
    pub peer_start: Option<Duration>,
    pub kubo_rss_kb: Option<u64>,
    pub peer_rss_kb: Option<u64>,
}

impl HostMeasure {
    /// `h1: kubo ready in 0.12 s (RSS 69.0 MB), peer ready in 1.60 s (RSS 49.6 MB)`.
    pub fn line(&self) -> String {
        let secs =
            |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64()));
        let mb =
            |kb: Option<u64>| kb.map_or("?".into(), |kb| format!("{:.1} MB", kb as f64 / 1024.0));
        format!(
            "{}: kubo ready in {} (RSS {}), ipfs-cluster-service ready in {} (RSS {})",
            self.host,
            secs(self.kubo_start),
            mb(self.kubo_rss_kb),
            secs(self.peer_start),
            mb(self.peer_rss_kb)
        )
    }
}

/// Reads the resident memory of every host's peer and kubo into `measures`.
pub fn measure_memory(peers: &[Peer], measures: &mut [HostMeasure]) -> Result<()> {
    let memory = parallel::try_map(peers, parallel::HOST_WORKERS, kubo::rss_kb)?;
    for (measure, (peer, kubo)) in measures.iter_mut().zip(memory) {
        measure.peer_rss_kb = peer;
        measure.kubo_rss_kb = kubo;
    }
    Ok(())
}

/// Waits on one peer until its `status --local` reports every one of `cids` PINNED; a pin that
/// stays in error is reported as such.
pub fn wait_pinned(peer: &Peer, cids: &[String], limit: Duration) -> Result<()> {
    let step = "ipfs-cluster-ctl status --local";
    let what = format!("{} to report {} pins PINNED", peer.name, cids.len());
    super::wait::until(&what, limit, Duration::from_millis(300), || {
        let output = peer.remote.exec(Job {
            step,
            script: &peer.ctl(&["status", "--local"]),
            input: super::remote::Input::Nothing,
            timeout: Duration::from_secs(60),
        })?;
        if !output.success() {
            return Ok(None);
        }
        let pinned = super::ctl::pinned_cids(&output.stdout).map_err(|detail| LabError::Parse {
            host: peer.name.clone(),
            step: step.into(),
            detail,
        })?;
        let pinned: std::collections::HashSet<&str> = pinned.iter().map(String::as_str).collect();
        Ok(cids
            .iter()
            .all(|c| pinned.contains(c.as_str()))
            .then_some(()))
    })
}

/// The real lab's consensus must be one the release has (crdt from 0.11).
pub fn check_consensus(release: &crate::release::Release, consensus: Consensus) -> Result<()> {
    if consensus == Consensus::Crdt && release.era() != crate::release::Era::Modern {
        return Err(LabError::InvalidOption {
            option: "--consensus",
            detail: format!(
                "IPFS Cluster {} has no crdt consensus (from 0.11)",
                release.version
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_ports_follow_the_network_attempt() {
        assert_eq!(ports_for(0, 2222), RealPorts::default());
        assert_eq!(
            ports_for(3, 30000),
            RealPorts {
                ipfs_api: 30003,
                proxy: 30004,
                pinsvc: 30005
            }
        );
    }

    #[test]
    fn a_measure_reads_as_one_line() {
        let m = HostMeasure {
            host: "h1".into(),
            kubo_start: Some(Duration::from_millis(120)),
            peer_start: Some(Duration::from_millis(1600)),
            kubo_rss_kb: Some(70656),
            peer_rss_kb: None,
        };
        assert_eq!(
            m.line(),
            "h1: kubo ready in 0.12 s (RSS 69.0 MB), ipfs-cluster-service ready in 1.60 s (RSS ?)"
        );
    }
}
