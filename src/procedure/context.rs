//! The template context: everything a playbook template may use, filled by the planner per host.
//!
//! Top level (besides the names below, which the inventory reserves): the host's merged
//! variables (`bin_dir`, `config_dir`, `api`, `service_manager`, `service_cmd`, …), under the
//! playbook's `defaults:`.
//!
//! | name      | meaning |
//! |-----------|---------|
//! | `host`    | `{name, address, port, user}` of the host the step is for |
//! | `cluster` | `{name, size, pins}`: inventory name, number of peers, the planned pinset `{count, hash}` |
//!
//! (No list of every host here: each host's context would then grow with the cluster, and
//! planning with the square of it.)
//! | `target`  | `{version, state_format, has_state_upgrade, bootstrap_flag_style, rpc_protocol, peer_id_protocol}` |
//! | `current` | facts of this host: `{version, state_format, peer_id, multiaddr, container}` (null when unknown; `container` on Docker hosts: `{name, image, run_args, restart, command, config_path, env}`) |
//! | `anchor`  | `{name, peer_id, multiaddr, vars}`; `multiaddr` ends in `/ipfs/<id>` or `/p2p/<id>` (for `--bootstrap`); `vars` are the anchor host's merged variables |
//! | `release` | `{source, version, staging_dir, files: {service, ctl}}`, each file `{name, local_path, url, sha256}` |
//! | `run`     | `{id, remote_backup_dir}` |
//! | `rest_api` | `{env, docker_env, flags}`: shell text for this host's `ipfs-cluster-ctl` from its `api_auth` variable (also `anchor.rest_api`) |

use serde::{Deserialize, Serialize};

use crate::inventory::{
    ApiAuth, BootstrapFlagStyle, ClusterSettings, Host, Inventory, ReleaseFile, Vars, Version,
};

/// The per-host template context. The planner fills it from the inventory and the facts;
/// [`TemplateContext::placeholder`] fills the facts with stand-ins for `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateContext {
    /// The host's merged variables, at the top level of the context.
    #[serde(flatten)]
    pub vars: Vars,
    pub host: HostContext,
    pub cluster: ClusterContext,
    pub target: TargetContext,
    pub current: CurrentContext,
    pub anchor: AnchorContext,
    pub release: ReleaseContext,
    pub run: RunContext,
    #[serde(default)]
    pub rest_api: RestApiContext,
}

/// `rest_api`: how this host's `ipfs-cluster-ctl` reaches its REST API, as shell text from
/// the host's `api_auth` variable ([`ApiAuth`]): `{{ rest_api.env }}` goes before the command
/// (sets `CLUSTER_CREDENTIALS` from a file or variable on the host), `{{ rest_api.docker_env }}`
/// after `docker exec`, `{{ rest_api.flags }}` after `--host`. Each is empty without `api_auth`;
/// none holds a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestApiContext {
    pub env: String,
    pub docker_env: String,
    pub flags: String,
}

impl RestApiContext {
    /// From the host's merged variables (validated when the inventory loaded).
    pub fn of(vars: &Vars) -> RestApiContext {
        let auth = ApiAuth::of(vars).unwrap_or_else(|_| ApiAuth::plain());
        RestApiContext {
            env: auth.env_prefix(),
            docker_env: auth.docker_env(),
            flags: auth.ctl_flags(),
        }
    }
}

/// `host`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostContext {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl HostContext {
    pub fn new(host: &Host) -> HostContext {
        HostContext {
            name: host.name.to_string(),
            address: host.address.to_string(),
            port: host.port.get(),
            user: host.user.to_string(),
        }
    }
}

/// `cluster`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterContext {
    pub name: String,
    /// Number of peers in the inventory (what a healthy peer's "Sees N other peers" counts + 1).
    pub size: usize,
    /// The pinset the cluster had when planned (what most peers listed), for the health gates
    /// that check that no pin was lost; null when no peer listed its pins.
    pub pins: Option<PinsContext>,
}

/// `cluster.pins`: count and SHA-256 of the sorted, distinct CIDs, one per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinsContext {
    pub count: usize,
    pub hash: String,
}

impl ClusterContext {
    pub fn new(inventory: &Inventory) -> ClusterContext {
        ClusterContext {
            name: inventory.cluster.name.clone(),
            size: inventory.hosts.len(),
            pins: None,
        }
    }
}

/// `target`: the release being installed and what its CLI and state look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetContext {
    pub version: String,
    /// Raft snapshot format; `None` (null) for ≥ 0.11.
    pub state_format: Option<u8>,
    /// `ipfs-cluster-service state upgrade` exists (0.3.1–0.10.x).
    pub has_state_upgrade: bool,
    pub bootstrap_flag_style: BootstrapFlagStyle,
    pub rpc_protocol: String,
    /// `ipfs` before 0.11, `p2p` from 0.11.
    pub peer_id_protocol: String,
    /// The oldest pebble `format_major_version` the target opens, when known.
    #[serde(default)]
    pub pebble_oldest: Option<u32>,
}

impl TargetContext {
    pub fn new(version: Version) -> TargetContext {
        TargetContext {
            version: version.to_string(),
            state_format: version.state_format(),
            has_state_upgrade: version.has_state_upgrade(),
            bootstrap_flag_style: version.bootstrap_flag_style(),
            rpc_protocol: version.rpc_protocol(),
            peer_id_protocol: version.peer_id_protocol().to_string(),
            pebble_oldest: version.pebble_formats().map(|f| f.oldest),
        }
    }
}

/// `current`: what the facts found on this host (null where a probe could not tell).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentContext {
    pub version: Option<String>,
    pub state_format: Option<u8>,
    pub peer_id: Option<String>,
    /// This peer's cluster multiaddr with its `/ipfs/` or `/p2p/` suffix.
    pub multiaddr: Option<String>,
    /// `pebble`, `badger`, `badger3` or `leveldb`; null before 0.14 or when unread.
    #[serde(default)]
    pub datastore: Option<String>,
    /// Pebble's `format_major_version` in `service.json`.
    #[serde(default)]
    pub pebble_format: Option<u32>,
    /// The pebble store's format on disk.
    #[serde(default)]
    pub pebble_store_format: Option<u32>,
    /// The format the `pebble-*` steps raise this peer's store to before the target starts on
    /// it; null when nothing is to be raised (the planner decides, `plan::pebble_raise_to`).
    #[serde(default)]
    pub pebble_raise_to: Option<u32>,
    /// The `User=` of the peer's systemd unit (systemd hosts; null for root or elsewhere):
    /// whom the peer's own commands run as when `service_user` is not set.
    #[serde(default)]
    pub unit_user: Option<String>,
    /// The words of the unit's effective `ExecStart=` (systemd hosts; null elsewhere): what a
    /// start with extra flags (`--upgrade`, `--bootstrap`) runs, those flags appended.
    #[serde(default)]
    pub exec_start: Option<Vec<String>>,
    /// The peer's container on a Docker host, as the planner recreates it on another image;
    /// null on other hosts.
    #[serde(default)]
    pub container: Option<ContainerContext>,
}

/// `current.container`: a Docker host's container and how it is recreated from its own
/// `docker inspect` configuration with only the image changed (`crate::plan` decides).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerContext {
    pub name: String,
    /// The image ID it ran when planned (the steps read the one it runs when they run: a
    /// staged upgrade's second stage starts from the first stage's image).
    pub image: String,
    /// `docker create` options carrying its own settings: network, published ports, volumes,
    /// user, labels, limits. Not its environment (kept on the host by the run, passed with
    /// `--env-file`) nor its restart policy (`restart`).
    pub run_args: Vec<String>,
    /// The `-v` options of its volumes and bind mounts alone (also in `run_args`): what a
    /// one-off container of its image needs to see the peer's data (a state export).
    pub volumes: Vec<String>,
    /// Its `--restart` policy (`no` for a start with one-off daemon arguments).
    pub restart: String,
    /// Its command on the new image, when the operator set one (one-off flags such as
    /// `--bootstrap` left out); null: the image's default command.
    pub command: Option<Vec<String>>,
    /// The peer's config folder inside the container.
    pub config_path: String,
    /// The names of the variables it sets beyond its image's.
    pub env: Vec<String>,
}

impl ContainerContext {
    /// What `check` renders a Docker host's steps with: the container of the official image's
    /// documentation (a bind-mounted config folder, the host's network).
    pub fn placeholder(vars: &Vars) -> ContainerContext {
        ContainerContext {
            name: vars
                .docker_container()
                .unwrap_or(Vars::DEFAULT_DOCKER_CONTAINER)
                .to_string(),
            image: format!("sha256:{}", "0".repeat(64)),
            run_args: vec![
                "--network".into(),
                "host".into(),
                "-v".into(),
                format!("{}:/data/ipfs-cluster", vars.config_dir()),
            ],
            volumes: vec![
                "-v".into(),
                format!("{}:/data/ipfs-cluster", vars.config_dir()),
            ],
            restart: "unless-stopped".into(),
            command: None,
            config_path: "/data/ipfs-cluster".into(),
            env: vec!["CLUSTER_SECRET".into()],
        }
    }
}

/// `anchor`: the peer the others bootstrap to, and where delegated commands run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorContext {
    pub name: String,
    pub peer_id: Option<String>,
    /// For `daemon --bootstrap`: ends in `/ipfs/<id>` or `/p2p/<id>`.
    pub multiaddr: Option<String>,
    /// The anchor host's merged variables (its `bin_dir` and `api` for delegated ctl calls).
    pub vars: Vars,
    /// How the anchor's ctl reaches its REST API.
    #[serde(default)]
    pub rest_api: RestApiContext,
}

/// `release`: the target release's files and where they are staged on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseContext {
    /// `local` (uploaded) or `url` (fetched by the host).
    pub source: String,
    pub version: String,
    /// Remote folder for the staged files; inside `bin_dir` so the final `mv` is a rename on
    /// one filesystem (atomic).
    pub staging_dir: String,
    pub files: ReleaseFilesContext,
}

/// `release.files`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFilesContext {
    pub service: ReleaseFileContext,
    pub ctl: ReleaseFileContext,
}

/// One file of `release.files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFileContext {
    /// `ipfs-cluster-service` or `ipfs-cluster-ctl`.
    pub name: String,
    /// Path on the controller (local source), else null.
    pub local_path: Option<String>,
    /// Download URL (url source), else null.
    pub url: Option<String>,
    pub sha256: String,
}

impl ReleaseContext {
    /// The release context for the inventory's target, staged under `bin_dir`.
    pub fn new(cluster: &ClusterSettings, bin_dir: &str) -> ReleaseContext {
        let file = |which: ReleaseFile| {
            let info = cluster.target_file(which);
            ReleaseFileContext {
                name: which.file_name().to_string(),
                local_path: info.local_path.map(|path| path.display().to_string()),
                url: info.url,
                sha256: info.sha256.to_string(),
            }
        };
        ReleaseContext {
            source: cluster.releases.kind().to_string(),
            version: cluster.target_version.to_string(),
            staging_dir: ReleaseContext::staging_dir_for(bin_dir, cluster.target_version),
            files: ReleaseFilesContext {
                service: file(ReleaseFile::Service),
                ctl: file(ReleaseFile::Ctl),
            },
        }
    }

    /// `<bin_dir>/.cluster-upgrade/<version>`.
    pub fn staging_dir_for(bin_dir: &str, version: Version) -> String {
        format!(
            "{}/.cluster-upgrade/{version}",
            bin_dir.trim_end_matches('/')
        )
    }
}

/// `run`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    pub id: String,
    /// Remote folder for this run's backups (previous binaries).
    pub remote_backup_dir: String,
}

impl RunContext {
    /// The run id a stage of run `run_id` upgrading to `version` renders its steps with (its
    /// remote folders, e.g. the backup its `keep-previous` step makes, are named after it).
    pub fn stage_run_id(run_id: &str, version: crate::inventory::Version) -> String {
        format!("{run_id}-to-{version}")
    }

    /// A run context with the backup folder at `<bin_dir>/.cluster-upgrade/backup/<run id>`.
    pub fn new(run_id: &str, bin_dir: &str) -> RunContext {
        RunContext {
            id: run_id.to_string(),
            remote_backup_dir: format!(
                "{}/.cluster-upgrade/backup/{run_id}",
                bin_dir.trim_end_matches('/')
            ),
        }
    }
}

impl TemplateContext {
    /// The context of `host` from the inventory alone: facts (`current`, the anchor's peer ID
    /// and multiaddr) are null and `run` names no run yet. The planner then sets `current`,
    /// `anchor.peer_id`, `anchor.multiaddr` and `run` (with [`RunContext::new`]).
    pub fn new(inventory: &Inventory, host: &Host, anchor: &Host) -> TemplateContext {
        // Without a `bin_dir`, templates that use it fail on the undefined variable, which is
        // the error the operator needs to see; staging still has a place.
        let bin_dir = host.vars.bin_dir();
        TemplateContext {
            vars: host.vars.clone(),
            host: HostContext::new(host),
            cluster: ClusterContext::new(inventory),
            target: TargetContext::new(inventory.cluster.target_version),
            current: CurrentContext::default(),
            anchor: AnchorContext {
                name: anchor.name.to_string(),
                peer_id: None,
                multiaddr: None,
                vars: anchor.vars.clone(),
                rest_api: RestApiContext::of(&anchor.vars),
            },
            release: ReleaseContext::new(&inventory.cluster, bin_dir),
            run: RunContext::new("unplanned", bin_dir),
            rest_api: RestApiContext::of(&host.vars),
        }
    }

    /// A context for `host` with stand-in facts, as `check` uses to render every step without
    /// connecting. The anchor is `anchor` (the planner's choice; for bootstrap, the last peer).
    pub fn placeholder(inventory: &Inventory, host: &Host, anchor: &Host) -> TemplateContext {
        let target = inventory.cluster.target_version;
        let fake_peer = |h: &Host| {
            format!(
                "QmPlaceholderPeerIdOf{}",
                h.name.as_str().replace(['.', '-', '_'], "")
            )
        };
        let multiaddr = |h: &Host| {
            let network = match h.address.ip() {
                Some(std::net::IpAddr::V4(_)) => "ip4",
                Some(std::net::IpAddr::V6(_)) => "ip6",
                None => "dns4",
            };
            format!(
                "/{network}/{}/tcp/9096/{}/{}",
                h.address,
                target.peer_id_protocol(),
                fake_peer(h)
            )
        };
        let mut context = TemplateContext::new(inventory, host, anchor);
        context.current = CurrentContext {
            version: Some("0.0.0".to_string()),
            state_format: None,
            peer_id: Some(fake_peer(host)),
            multiaddr: Some(multiaddr(host)),
            // Behind the newest target's store format, so that the pebble steps render too.
            datastore: Some("pebble".to_string()),
            pebble_format: Some(1),
            pebble_store_format: Some(1),
            pebble_raise_to: Some(13),
            unit_user: None,
            exec_start: None,
            // On every host: `check` renders the Docker steps too, whatever `when` says.
            container: Some(ContainerContext::placeholder(&host.vars)),
        };
        context.anchor.peer_id = Some(fake_peer(anchor));
        context.anchor.multiaddr = Some(multiaddr(anchor));
        // A stand-in pinset so that `check` renders the pinset gates too.
        context.cluster.pins = Some(PinsContext {
            count: 0,
            hash: "0".repeat(64),
        });
        context.run = RunContext::new("check", host.vars.bin_dir());
        context
    }
}
