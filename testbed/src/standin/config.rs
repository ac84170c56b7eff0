//! `service.json`: a serde mirror of the keys the stand-in uses (unknown keys are kept so a
//! rewritten file loses nothing), the real `CLUSTER_*` environment overrides, and the validated
//! settings the daemon runs with.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::{self, Credentials};
use super::duration;
use super::error::{Error, Result};
use super::identity::Identity;
use super::multiaddr::Multiaddr;
use crate::release::{Backend, Release};

/// Name of the main configuration file inside the config folder.
pub const SERVICE_JSON: &str = "service.json";
/// Name of the identity file (≥ 0.11).
pub const IDENTITY_JSON: &str = "identity.json";

/// The raw `service.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawService {
    pub cluster: RawCluster,
    #[serde(default)]
    pub consensus: RawConsensus,
    #[serde(default)]
    pub api: RawApi,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawCluster {
    /// Peer ID; only in ≤ 0.10 files (≥ 0.11 keeps it in `identity.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default)]
    pub peername: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub leave_on_shutdown: bool,
    /// One address (≤ 0.10, the stand-in's labs) or a list (what 1.x writes).
    #[serde(default = "default_listen")]
    pub listen_multiaddress: Listen,
    #[serde(default = "default_watch")]
    pub peer_watch_interval: String,
    /// Deprecated since 0.4: its presence is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Value>,
    /// Deprecated since 0.4: its presence is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawConsensus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RawRaft>,
    /// The CRDT section (≥ 0.11); its keys are kept as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crdt: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawRaft {
    #[serde(default)]
    pub init_peerset: Vec<String>,
    #[serde(default = "default_wait")]
    pub wait_for_leader_timeout: String,
    #[serde(default = "default_rotate")]
    pub backups_rotate: usize,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawApi {
    #[serde(default)]
    pub restapi: RawRestApi,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawRestApi {
    #[serde(default = "default_rest")]
    pub http_listen_multiaddress: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `cluster.listen_multiaddress`: a string, or a list whose first TCP address is the one the
/// stand-in listens on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Listen {
    One(String),
    Many(Vec<String>),
}

impl Listen {
    /// The TCP address peers dial.
    pub fn tcp(&self) -> &str {
        match self {
            Listen::One(addr) => addr,
            Listen::Many(addrs) => addrs
                .iter()
                .find(|a| a.contains("/tcp/"))
                .or(addrs.first())
                .map_or("", String::as_str),
        }
    }
}

fn default_listen() -> Listen {
    Listen::One("/ip4/0.0.0.0/tcp/9096".into())
}
fn default_rest() -> String {
    "/ip4/127.0.0.1/tcp/9094".into()
}
fn default_watch() -> String {
    "5s".into()
}
fn default_wait() -> String {
    "15s".into()
}
fn default_rotate() -> usize {
    6
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            restapi: RawRestApi::default(),
            other: Map::new(),
        }
    }
}

impl Default for RawRestApi {
    fn default() -> Self {
        RawRestApi {
            http_listen_multiaddress: default_rest(),
            other: Map::new(),
        }
    }
}

impl Default for RawRaft {
    fn default() -> Self {
        RawRaft {
            init_peerset: Vec::new(),
            wait_for_leader_timeout: default_wait(),
            backups_rotate: default_rotate(),
            other: Map::new(),
        }
    }
}

impl RawService {
    /// The configuration `init` writes before environment overrides.
    pub fn fresh(secret: String, identity_in_config: Option<&Identity>) -> RawService {
        RawService {
            cluster: RawCluster {
                id: identity_in_config.map(|i| i.id.clone()),
                private_key: identity_in_config.map(|i| i.private_key.clone()),
                peername: hostname(),
                secret,
                leave_on_shutdown: false,
                listen_multiaddress: default_listen(),
                peer_watch_interval: default_watch(),
                peers: None,
                bootstrap: None,
                other: Map::new(),
            },
            consensus: RawConsensus {
                raft: Some(RawRaft::default()),
                crdt: None,
                other: Map::new(),
            },
            api: RawApi::default(),
            other: Map::new(),
        }
    }

    /// The configuration a ≥ 0.11 `init --consensus KIND` writes (the keys the stand-in
    /// uses, with the real defaults): a list of listen addresses, the consensus section of
    /// `kind` only, and for CRDT the section of `datastore` (a raft peer has none, as the
    /// real config helper registers datastores for CRDT only).
    pub fn fresh_modern(secret: String, kind: ConsensusKind, datastore: &Datastore) -> RawService {
        let mut raw = RawService::fresh(secret, None);
        raw.cluster.listen_multiaddress = Listen::Many(vec![
            "/ip4/0.0.0.0/tcp/9096".into(),
            "/ip4/0.0.0.0/udp/9096/quic".into(),
        ]);
        raw.cluster
            .other
            .insert("monitor_ping_interval".into(), Value::from("15s"));
        if kind == ConsensusKind::Crdt {
            raw.consensus.raft = None;
            raw.consensus.crdt = Some(serde_json::json!({
                "cluster_name": "ipfs-cluster",
                "trusted_peers": ["*"],
                "batching": {"max_batch_size": 0, "max_batch_age": "0s"},
                "repair_interval": "1h0m0s",
            }));
            raw.other.insert("datastore".into(), datastore.section());
        }
        raw
    }

    pub fn load(path: &Path) -> Result<RawService> {
        let bytes = fs::read(path).map_err(Error::io(path))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseJson {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("config serializes");
        fs::write(path, text + "\n").map_err(Error::io(path))
    }

    /// Applies the `CLUSTER_*` environment variables the real config loader honours.
    pub fn apply_env(&mut self) {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("CLUSTER_PEERNAME") {
            self.cluster.peername = v;
        }
        if let Some(v) = env("CLUSTER_SECRET") {
            self.cluster.secret = v;
        }
        if let Some(v) = env("CLUSTER_LISTENMULTIADDRESS") {
            // Several addresses are saved as a list, one as a string (as the real config does).
            self.cluster.listen_multiaddress = if v.contains(',') {
                Listen::Many(v.split(',').map(|a| a.trim().to_string()).collect())
            } else {
                Listen::One(v)
            };
        }
        if let Some(v) = env("CLUSTER_MONITORPINGINTERVAL") {
            if self.cluster.other.contains_key("monitor_ping_interval") {
                self.cluster
                    .other
                    .insert("monitor_ping_interval".into(), Value::from(v));
            }
        }
        if let Some(v) = env("CLUSTER_PEERWATCHINTERVAL") {
            self.cluster.peer_watch_interval = v;
        }
        if let Some(v) = env("CLUSTER_LEAVEONSHUTDOWN") {
            self.cluster.leave_on_shutdown = v == "true";
        }
        if let Some(v) = env("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS") {
            self.api.restapi.http_listen_multiaddress = v;
        }
        if let Some(v) = env("CLUSTER_CRDT_REBROADCASTINTERVAL") {
            if let Some(Value::Object(crdt)) = self.consensus.crdt.as_mut() {
                crdt.insert("rebroadcast_interval".into(), Value::from(v));
            }
        }
        if let Some(v) = env("CLUSTER_RAFT_WAITFORLEADERTIMEOUT") {
            // Only a raft configuration has the key (a CRDT one gains no raft section).
            if let Some(raft) = self.consensus.raft.as_mut() {
                raft.wait_for_leader_timeout = v;
            }
        }
    }
}

/// The datastore of a CRDT peer: the key of `service.json`'s `datastore` section, and for
/// pebble its `pebble_options.format_major_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datastore {
    pub backend: Backend,
    pub pebble_format: Option<u32>,
}

impl Datastore {
    /// What `init` writes for `backend` in `release`.
    pub fn fresh(release: &Release, backend: Backend) -> Datastore {
        Datastore {
            backend,
            pebble_format: (backend == Backend::Pebble)
                .then(|| release.pebble_init_format())
                .flatten(),
        }
    }

    /// The `datastore` section (only the keys the stand-in reads, under the real names).
    fn section(&self) -> Value {
        let body = match (self.backend, self.pebble_format) {
            (Backend::Pebble, Some(format)) => {
                serde_json::json!({"pebble_options": {"format_major_version": format}})
            }
            (Backend::Pebble, None) => serde_json::json!({"pebble_options": {}}),
            (Backend::LevelDb, _) => serde_json::json!({"leveldb_options": {}}),
            (Backend::Badger | Backend::Badger3, _) => serde_json::json!({"badger_options": {}}),
        };
        serde_json::json!({ self.backend.key(): body })
    }

    /// The configured datastore: the first key of the `datastore` section that names one.
    fn from_raw(raw: &RawService) -> Option<Datastore> {
        let section = raw.other.get("datastore")?.as_object()?;
        let (backend, body) = section
            .iter()
            .find_map(|(key, body)| Some((Backend::parse(key)?, body)))?;
        let pebble_format = body
            .get("pebble_options")
            .and_then(|o| o.get("format_major_version"))
            .and_then(Value::as_u64)
            .map(|f| f as u32);
        Some(Datastore {
            backend,
            pebble_format,
        })
    }

    /// The datastore folder next to `service.json`.
    pub fn folder(&self, config_dir: &Path) -> PathBuf {
        config_dir.join(self.backend.key())
    }
}

/// The validated settings of a daemon or a `state` command.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub peername: String,
    pub secret: String,
    pub leave_on_shutdown: bool,
    pub listen: Multiaddr,
    pub peer_watch_interval: Duration,
    pub wait_for_leader_timeout: Duration,
    pub backups_rotate: usize,
    pub init_peerset: Vec<String>,
    pub rest_listen: Multiaddr,
    /// `cluster.id`/`cluster.private_key` of a ≤ 0.10 file.
    pub identity_in_config: Option<Identity>,
    /// Which consensus the `consensus` section configures.
    pub consensus: ConsensusKind,
    /// How long a CRDT peer's ping metric stays valid (twice `cluster.monitor_ping_interval`).
    pub metric_ttl: Duration,
    /// How often a CRDT peer sends its pinset to peers that hold another one
    /// (`consensus.crdt.rebroadcast_interval`, default 1 minute).
    pub rebroadcast: Duration,
    /// The `datastore` section, when there is one.
    pub datastore: Option<Datastore>,
    /// `cluster.follower_mode`: a follower (`ipfs-cluster-follow`) never writes.
    pub follower_mode: bool,
    /// `api.restapi.basic_auth_credentials`: who may use the REST API (`None`: anyone).
    pub basic_auth: Option<Credentials>,
    /// Whether `api.restapi.ssl_cert_file` or `ssl_key_file` is set (HTTPS, which the
    /// stand-in does not serve).
    pub rest_tls: bool,
}

/// The consensus component a peer runs (the key inside `consensus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsensusKind {
    Raft,
    Crdt,
}

impl ServiceConfig {
    /// Loads `service.json`, applies the environment and validates it.
    pub fn load(config_dir: &Path) -> Result<ServiceConfig> {
        let mut raw = RawService::load(&config_dir.join(SERVICE_JSON))?;
        raw.apply_env();
        ServiceConfig::validate(raw)
    }

    fn validate(raw: RawService) -> Result<ServiceConfig> {
        if raw.cluster.peers.is_some() || raw.cluster.bootstrap.is_some() {
            return Err(Error::DeprecatedKeys);
        }
        let consensus = match (&raw.consensus.raft, &raw.consensus.crdt) {
            (None, Some(_)) => ConsensusKind::Crdt,
            _ => ConsensusKind::Raft,
        };
        let ping = raw
            .cluster
            .other
            .get("monitor_ping_interval")
            .and_then(Value::as_str)
            .unwrap_or("15s")
            .to_string();
        let ping = std::env::var("CLUSTER_MONITORPINGINTERVAL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or(ping);
        let rebroadcast = std::env::var("CLUSTER_CRDT_REBROADCASTINTERVAL")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                raw.consensus.crdt.as_ref().and_then(|c| {
                    c.get("rebroadcast_interval")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
            })
            .unwrap_or_else(|| "1m".to_string());
        let datastore = Datastore::from_raw(&raw);
        let follower_mode = raw
            .cluster
            .other
            .get("follower_mode")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Kept among the unknown keys, so that the file round-trips as it was written.
        let rest = &raw.api.restapi.other;
        let basic_auth = auth::credentials_from(rest.get("basic_auth_credentials"))?;
        let rest_tls = ["ssl_cert_file", "ssl_key_file"].iter().any(|key| {
            rest.get(*key)
                .and_then(Value::as_str)
                .is_some_and(|f| !f.is_empty())
        });
        let raft = raw.consensus.raft.unwrap_or_default();
        let dur = |key: &'static str, value: &str| {
            duration::parse(value).ok_or_else(|| Error::InvalidDuration {
                key,
                value: value.to_string(),
            })
        };
        let identity_in_config = match (raw.cluster.id, raw.cluster.private_key) {
            (Some(id), Some(private_key)) if !id.is_empty() => Some(Identity { id, private_key }),
            _ => None,
        };
        Ok(ServiceConfig {
            peername: raw.cluster.peername,
            secret: raw.cluster.secret,
            leave_on_shutdown: raw.cluster.leave_on_shutdown,
            listen: Multiaddr::parse(raw.cluster.listen_multiaddress.tcp())?,
            peer_watch_interval: dur(
                "cluster.peer_watch_interval",
                &raw.cluster.peer_watch_interval,
            )?,
            wait_for_leader_timeout: dur(
                "consensus.raft.wait_for_leader_timeout",
                &raft.wait_for_leader_timeout,
            )?,
            backups_rotate: raft.backups_rotate,
            init_peerset: raft.init_peerset,
            rest_listen: Multiaddr::parse(&raw.api.restapi.http_listen_multiaddress)?,
            identity_in_config,
            consensus,
            metric_ttl: dur("cluster.monitor_ping_interval", &ping)? * 2,
            rebroadcast: dur("consensus.crdt.rebroadcast_interval", &rebroadcast)?,
            datastore,
            follower_mode,
            basic_auth,
            rest_tls,
        })
    }
}

/// The config folder: `-c`, else `IPFS_CLUSTER_PATH`, else `$HOME/.ipfs-cluster`.
pub fn config_dir(flag: Option<&str>) -> PathBuf {
    if let Some(dir) = flag {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("IPFS_CLUSTER_PATH").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".ipfs-cluster")
}

fn hostname() -> String {
    fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_keys_are_refused() {
        let mut raw = RawService::fresh("s".into(), None);
        raw.cluster.peers = Some(Value::Array(vec![]));
        assert!(matches!(
            ServiceConfig::validate(raw),
            Err(Error::DeprecatedKeys)
        ));
    }

    fn with_restapi(keys: Value) -> RawService {
        let mut raw = RawService::fresh("s".into(), None);
        raw.api.restapi.other = keys.as_object().expect("an object").clone();
        raw
    }

    #[test]
    fn basic_auth_credentials_are_read_and_round_trip_untouched() {
        let raw = with_restapi(serde_json::json!({"basic_auth_credentials": {"admin": "s3cret"}}));
        let back = serde_json::to_value(&raw).unwrap();
        assert_eq!(
            back["api"]["restapi"]["basic_auth_credentials"],
            serde_json::json!({"admin": "s3cret"})
        );
        let cfg = ServiceConfig::validate(raw).unwrap();
        let credentials = cfg.basic_auth.expect("credentials");
        assert_eq!(credentials["admin"], "s3cret");
        assert!(!cfg.rest_tls);
    }

    #[test]
    fn null_basic_auth_credentials_mean_an_open_api_and_stay_null() {
        let raw = with_restapi(serde_json::json!({"basic_auth_credentials": null}));
        let back = serde_json::to_value(&raw).unwrap();
        assert!(back["api"]["restapi"]
            .as_object()
            .unwrap()
            .contains_key("basic_auth_credentials"));
        assert!(ServiceConfig::validate(raw).unwrap().basic_auth.is_none());
    }

    #[test]
    fn an_empty_credentials_map_fails_validation_as_the_real_config_does() {
        let raw = with_restapi(serde_json::json!({"basic_auth_credentials": {}}));
        let err = ServiceConfig::validate(raw).unwrap_err();
        assert!(matches!(err, Error::ApiConfigInvalid { .. }));
        assert_eq!(
            err.to_string(),
            "restapi.basic_auth_creds should be null or have at least one entry"
        );
    }

    #[test]
    fn ssl_files_are_noticed_so_that_the_daemon_can_refuse_them() {
        let raw =
            with_restapi(serde_json::json!({"ssl_cert_file": "cert.pem", "ssl_key_file": ""}));
        assert!(ServiceConfig::validate(raw).unwrap().rest_tls);
        let raw = with_restapi(serde_json::json!({"ssl_cert_file": "", "ssl_key_file": ""}));
        assert!(!ServiceConfig::validate(raw).unwrap().rest_tls);
    }

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        let text = r#"{"cluster":{"secret":"x","foo":1},"consensus":{"raft":{"bar":2}},"ipfs_connector":{}}"#;
        let raw: RawService = serde_json::from_str(text).unwrap();
        let back = serde_json::to_value(&raw).unwrap();
        assert_eq!(back["cluster"]["foo"], 1);
        assert_eq!(back["consensus"]["raft"]["bar"], 2);
        assert!(back.get("ipfs_connector").is_some());
        let cfg = ServiceConfig::validate(raw).unwrap();
        assert_eq!(cfg.wait_for_leader_timeout, Duration::from_secs(15));
        assert_eq!(cfg.backups_rotate, 6);
    }
}
