//! The peer's container on a Docker host (`service_manager: docker`), as `docker inspect`
//! shows it: what a recreated container must keep (volumes, network, published ports, restart
//! policy, the names of its environment variables, …) and what its image sets by default, so
//! that only the operator's own settings are carried over to the new image. The environment's
//! values never leave the host (the run keeps them there, `keep-container`).

mod raw;
mod read;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use read::{read_container, ContainerOutput, CONTAINER_TEMPLATE, ENV_SCRIPT, IMAGE_TEMPLATE};

/// The config folder of the official image (`IPFS_CLUSTER_PATH`), when the container names none.
pub const DEFAULT_CONTAINER_CONFIG_PATH: &str = "/data/ipfs-cluster";

/// What the probe learned of a Docker host's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ContainerFacts {
    Found(Box<Container>),
    /// No such container, or `docker inspect` failed: the reason, as printed.
    Unreadable {
        reason: String,
    },
}

impl ContainerFacts {
    pub fn found(&self) -> Option<&Container> {
        match self {
            ContainerFacts::Found(container) => Some(container),
            ContainerFacts::Unreadable { .. } => None,
        }
    }
}

/// A peer's container: its own settings (those its image does not set), the image it runs and
/// where it keeps the peer's config folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// `docker_container` (`--name`).
    pub name: String,
    pub id: String,
    /// The image ID the container runs (what a state export with the old release runs).
    pub image_id: String,
    /// The image as the container was created from it (`ipfs/ipfs-cluster:v1.1.5`).
    pub image_name: String,
    pub running: bool,
    /// The command (`Config.Cmd`) when it differs from the image's: set by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The entrypoint when it differs from the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The user when it differs from the image's (`--user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Labels the image does not set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    /// `HostConfig.NetworkMode` (`host`, `bridge`, a network's name); `None`: the default.
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortBinding>,
    pub restart: RestartPolicy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    #[serde(default)]
    pub init: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `--tmpfs` mounts: destination and options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tmpfs: BTreeMap<String, String>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// CPU limit in billionths of a CPU (`--cpus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<u64>,
    /// Seconds `docker stop` waits before SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// The log driver (its options are not read: they may hold credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    /// The names of the environment variables the container sets beyond its image's (their
    /// values stay on the host).
    pub env: Vec<String>,
    /// The peer's config folder inside the container (`IPFS_CLUSTER_PATH`, or `--config` in
    /// the command).
    pub config_path: String,
    /// Settings the container has that a recreated one would not get (`privileged`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_carried: Vec<String>,
}

impl Container {
    /// The mount at the peer's config folder, if a volume or bind mount is there.
    pub fn config_mount(&self) -> Option<&Mount> {
        let wanted = self.config_path.trim_end_matches('/');
        self.mounts
            .iter()
            .find(|m| m.destination.trim_end_matches('/') == wanted && m.keeps_data())
    }
}

/// One entry of `.Mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, …
    pub kind: String,
    /// The volume's name (volumes: named or anonymous).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The folder on the host (a bind mount's, or where the volume is).
    pub source: String,
    pub destination: String,
    pub read_only: bool,
}

impl Mount {
    /// A bind mount or a volume: its data outlives the container.
    pub fn keeps_data(&self) -> bool {
        matches!(self.kind.as_str(), "bind" | "volume")
    }
}

/// A published port: `HOST_IP:HOST_PORT:CONTAINER_PORT/PROTO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// `9094/tcp`.
    pub container_port: String,
    #[serde(default)]
    pub host_ip: String,
    #[serde(default)]
    pub host_port: String,
}

/// `--restart NAME[:MAX]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    #[serde(default)]
    pub max_retries: u32,
}

impl RestartPolicy {
    /// The `--restart` value (`no` when none is set).
    pub fn flag_value(&self) -> String {
        match (self.name.as_str(), self.max_retries) {
            ("", _) => "no".to_string(),
            ("on-failure", max) if max > 0 => format!("on-failure:{max}"),
            (name, _) => name.to_string(),
        }
    }
}

/// `--ulimit NAME=SOFT:HARD`, the name as Docker spells it (`nofile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}
