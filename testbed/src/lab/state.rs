//! `lab.json`: the record of a lab that `status`, `down` and `fault` work from.
//!
//! It is written as soon as the sshds run (before any peer starts), so that `down` can clean up
//! after an `up` that failed or was killed half-way.

use std::fs;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::sshd::SshdSpec;

use super::error::{LabError, Result};
use super::layout::{sshd_spec, Layout};

/// The ports every host of a lab uses (each host has its own address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub ssh: u16,
    /// The cluster swarm port (peer traffic, `--bootstrap` addresses).
    pub cluster: u16,
    /// The REST API port (`ipfs-cluster-ctl --host`).
    pub api: u16,
}

impl Default for Ports {
    /// The ports a real deployment uses for the cluster, and a non-privileged SSH port.
    fn default() -> Ports {
        Ports {
            ssh: 2222,
            cluster: 9096,
            api: 9094,
        }
    }
}

/// The consensus of a lab's cluster (`ipfs-cluster-service init --consensus`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consensus {
    #[default]
    Raft,
    Crdt,
}

impl Consensus {
    /// The default of `ipfs-cluster-service init` in `version`: crdt from 0.11, raft before
    /// (and for a version that does not parse).
    pub fn default_for(version: &str) -> Consensus {
        match crate::release::Release::parse(version).map(|r| r.era()) {
            Some(crate::release::Era::Modern) => Consensus::Crdt,
            _ => Consensus::Raft,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Consensus::Raft => "raft",
            Consensus::Crdt => "crdt",
        }
    }
}

impl std::str::FromStr for Consensus {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Consensus, String> {
        match text {
            "raft" => Ok(Consensus::Raft),
            "crdt" => Ok(Consensus::Crdt),
            other => Err(format!("{other:?} is not a consensus (raft or crdt)")),
        }
    }
}

#[cfg(test)]
mod consensus_tests {
    use super::Consensus;

    #[test]
    fn the_default_consensus_follows_the_release() {
        assert_eq!(Consensus::default_for("0.10.1"), Consensus::Raft);
        assert_eq!(Consensus::default_for("0.11.0"), Consensus::Crdt);
        assert_eq!(Consensus::default_for("1.1.6"), Consensus::Crdt);
    }
}

/// The ports of a real lab's host besides [`Ports`]: kubo's RPC API and the peer's other
/// listeners, each on the host's own address (several hosts share one machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealPorts {
    /// kubo's RPC API (`ipfs --api`, the peer's `ipfshttp.node_multiaddress`).
    pub ipfs_api: u16,
    /// The peer's IPFS proxy (`api.ipfsproxy.listen_multiaddress`).
    pub proxy: u16,
    /// The peer's pinning service API (`api.pinsvcapi.http_listen_multiaddress`).
    pub pinsvc: u16,
}

impl Default for RealPorts {
    /// The ports of a real deployment.
    fn default() -> RealPorts {
        RealPorts {
            ipfs_api: 5001,
            proxy: 9095,
            pinsvc: 9097,
        }
    }
}

/// What a lab of real binaries (`up --real`) adds to its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealLab {
    pub consensus: Consensus,
    /// The real releases folder (`<cache>/real/ipfs-cluster`), the inventory's release source.
    pub releases: std::path::PathBuf,
    /// kubo's folder (`<cache>/real/kubo/<version>`).
    pub kubo: std::path::PathBuf,
    pub kubo_version: String,
    pub ports: RealPorts,
    /// The CIDs of the lab's pins, by index (kubo's CIDs of the blocks `up` added).
    #[serde(default)]
    pub pins: Vec<String>,
}

/// What a lab host is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// An sshd process of the machine, with a home folder in the lab; the peer runs under the
    /// lab's service wrapper.
    #[default]
    Process,
    /// A container booted with a real systemd (see `lab::systemd`); the peer runs as
    /// `ipfs-cluster.service`.
    Systemd,
    /// An sshd of the machine whose peer runs in a container `ipfs-cluster` of the image
    /// `ipfs/ipfs-cluster:v<version>`, driven by the host's `docker` command (Podman; see
    /// `lab::docker`).
    Docker,
}

impl HostKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Process => "process",
            HostKind::Systemd => "systemd",
            HostKind::Docker => "docker",
        }
    }

    fn is_process(&self) -> bool {
        *self == HostKind::Process
    }
}

impl std::str::FromStr for HostKind {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<HostKind, String> {
        match text {
            "process" => Ok(HostKind::Process),
            "systemd" => Ok(HostKind::Systemd),
            "docker" => Ok(HostKind::Docker),
            other => Err(format!(
                "{other:?} is not a host kind (process, systemd or docker)"
            )),
        }
    }
}

/// One host of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// `h1`, `h2`, …
    pub name: String,
    pub address: Ipv4Addr,
    /// The PID of the host's sshd, `None` while it is stopped (`fault stop-sshd`).
    pub sshd_pid: Option<u32>,
    /// The peer's ID once its daemon ran.
    #[serde(default)]
    pub peer_id: Option<String>,
    /// The host's container (systemd hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<super::systemd::ContainerRecord>,
}

/// Everything known about a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The version installed by `up`.
    pub version: String,
    /// The target version written into the inventory.
    pub target: String,
    /// The login user on every host.
    pub user: String,
    pub ports: Ports,
    /// `cluster.secret`, the same for every peer.
    pub secret: String,
    pub hosts: Vec<HostRecord>,
    /// Set when the hosts run the real releases and kubo (`up --real`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<RealLab>,
    /// The jump hosts in front of the hosts, first to last (`up --bastion`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bastions: Vec<super::bastion::BastionRecord>,
    /// The inventory's login when it is not `user` (`up --login-user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<super::login::Login>,
    /// The delaying relay every tool reaches the hosts through (`up --rtt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<super::latency::LatencyRecord>,
    /// What the hosts are (`up --host-kind`).
    #[serde(default, skip_serializing_if = "HostKind::is_process")]
    pub host_kind: HostKind,
}

impl LabState {
    /// Reads `lab.json` of a lab folder.
    pub fn load(layout: &Layout) -> Result<LabState> {
        let path = layout.lab_json();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LabError::NotALab {
                    dir: layout.dir().to_path_buf(),
                })
            }
            Err(e) => return Err(LabError::io("reading", path)(e)),
        };
        serde_json::from_str(&text).map_err(|source| LabError::State { path, source })
    }

    /// Writes `lab.json` atomically (a reader never sees half a file).
    pub fn save(&self, layout: &Layout) -> Result<()> {
        let path = layout.lab_json();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("lab state serializes");
        fs::write(&tmp, text + "\n").map_err(LabError::io("writing", &tmp))?;
        fs::rename(&tmp, &path).map_err(LabError::io("writing", &path))
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&HostRecord> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| self.unknown_host(name))
    }

    /// The host called `name`, to update it.
    pub fn host_mut(&mut self, name: &str) -> Result<&mut HostRecord> {
        let err = self.unknown_host(name);
        self.hosts.iter_mut().find(|h| h.name == name).ok_or(err)
    }

    fn unknown_host(&self, name: &str) -> LabError {
        let known = self
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        LabError::UnknownHost {
            host: name.to_string(),
            known,
        }
    }

    /// The sshd of a host (behind bastions, it takes logins only from the last one).
    pub fn sshd_spec(&self, layout: &Layout, host: &HostRecord) -> SshdSpec {
        SshdSpec {
            allow_from: self.bastions.last().map(|b| b.address),
            ..sshd_spec(layout, &host.name, host.address, self.ports.ssh)
        }
    }

    /// The port the inventory names: the delaying relay's, else the sshds'.
    pub fn entry_port(&self) -> u16 {
        self.latency.as_ref().map_or(self.ports.ssh, |l| l.port)
    }

    /// How many bastions the hosts are behind.
    pub fn bastion_count(&self) -> usize {
        self.bastions.len()
    }

    /// The REST API multiaddress of a host (`ipfs-cluster-ctl --host`).
    pub fn api(&self, host: &HostRecord) -> String {
        format!("/ip4/{}/tcp/{}", host.address, self.ports.api)
    }

    /// kubo's RPC API multiaddress on a host of a real lab.
    pub fn ipfs_api(&self, host: &HostRecord) -> Option<String> {
        let real = self.real.as_ref()?;
        Some(format!("/ip4/{}/tcp/{}", host.address, real.ports.ipfs_api))
    }

    /// The cluster swarm multiaddress of a host, without the peer ID.
    pub fn cluster_addr(&self, host: &HostRecord) -> String {
        format!("/ip4/{}/tcp/{}", host.address, self.ports.cluster)
    }
}
