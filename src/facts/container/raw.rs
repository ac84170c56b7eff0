//! Serde mirror of what the probe prints for a Docker host: one JSON object per `docker
//! inspect` (container and image) from a Go template of the probe's own (`probe.rs`), so the
//! output never holds the environment's values. Docker and Podman's Docker-compatible CLI print
//! a few fields differently (an entrypoint as a list or a string, ulimits as `nofile` or
//! `RLIMIT_NOFILE`); both are read here.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `docker inspect --type container -f CONTAINER_TEMPLATE`.
#[derive(Debug, Deserialize)]
pub struct RawContainer {
    pub id: String,
    /// `/NAME` with Docker, `NAME` with Podman.
    pub name: String,
    /// The image ID (`sha256:…` with Docker, bare hex with Podman).
    pub image: String,
    /// The image as the container was created from it (`ipfs/ipfs-cluster:v1.1.5`).
    pub image_name: String,
    pub running: bool,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Words>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub mounts: Option<Vec<RawMount>>,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub ports: Option<BTreeMap<String, Option<Vec<RawPortBinding>>>>,
    #[serde(default)]
    pub restart: Option<RawRestart>,
    #[serde(default)]
    pub ulimits: Option<Vec<RawUlimit>>,
    #[serde(default)]
    pub init: Option<bool>,
    #[serde(default)]
    pub extra_hosts: Option<Vec<String>>,
    #[serde(default)]
    pub cap_add: Option<Vec<String>>,
    #[serde(default)]
    pub cap_drop: Option<Vec<String>>,
    #[serde(default)]
    pub memory: Option<i64>,
    #[serde(default)]
    pub nano_cpus: Option<i64>,
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    #[serde(default)]
    pub log: Option<String>,
    // Read only to say that they are set (the recreated container does not get them).
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub devices: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub security_opt: Option<Vec<String>>,
    #[serde(default)]
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub dns: Option<Vec<String>>,
}

/// `docker image inspect -f IMAGE_TEMPLATE`: the image's defaults, which the container's own
/// settings are compared with.
#[derive(Debug, Deserialize)]
pub struct RawImage {
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Words>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A command line as Docker (a list) or Podman 4 (one string, words joined by spaces) prints it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Words {
    List(Vec<String>),
    Text(String),
}

impl Words {
    pub fn into_list(self) -> Vec<String> {
        match self {
            Words::List(words) => words,
            Words::Text(text) => text.split_whitespace().map(String::from).collect(),
        }
    }
}

/// One entry of `.Mounts`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawMount {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source: String,
    pub destination: String,
    #[serde(rename = "RW", default = "read_write")]
    pub read_write: bool,
}

fn read_write() -> bool {
    true
}

/// One host binding of a published port.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawPortBinding {
    #[serde(default)]
    pub host_ip: String,
    #[serde(default)]
    pub host_port: String,
}

/// `.HostConfig.RestartPolicy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawRestart {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub maximum_retry_count: u32,
}

/// One entry of `.HostConfig.Ulimits`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawUlimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}
