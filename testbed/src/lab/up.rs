//! `cluster-lab up`: start the hosts, install a release over SSH, form the cluster, add pins,
//! and write the inventory.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::release::{Release, RELEASES};
use crate::sshd::{current_user, require_sshd, SshdSpec};

use super::error::{LabError, Result};
use super::layout::{sshd_spec, Layout};
use super::network::{self, MAX_HOSTS};
use super::peer::{bootstrap_addr, InitSettings, Peer};
use super::progress::Progress;
use super::real::{self, RealReleases};
use super::real_up::{self, HostMeasure, RealSetup};
use super::remote::Master;
use super::state::Consensus;
use super::state::{HostKind, HostRecord, LabState, Ports};
use super::systemd::{self, ContainerRecord, ContainerSpec};
use super::tree;
use super::{bastion, down, hosts, inventory, keys, latency, parallel, pins, stage, wait};

/// How many times `up` picks another network when the sshds cannot bind.
const NETWORK_ATTEMPTS: u32 = 6;

/// How many SSH streams add pins at once, through different peers. Raft serialises the writes
/// at the leader; several streams keep it busy while each `ipfs-cluster-ctl` process starts.
const PIN_STREAMS: usize = 8;

/// What `cluster-lab up` was asked for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    /// Number of hosts (h1..hN).
    pub peers: usize,
    /// The release installed on every host.
    pub version: String,
    /// Number of fake pins to add.
    pub pins: usize,
    /// The inventory's target; by default the next modelled release after `version`.
    pub target: Option<String>,
    /// The stand-in executable; by default `cluster-peer` beside the running program.
    pub standin: Option<PathBuf>,
    /// `raft.wait_for_leader_timeout` of every peer (Go duration, e.g. `3s`).
    pub wait_for_leader_timeout: String,
    /// `cluster.peer_watch_interval` of every peer (Go duration, e.g. `1s`).
    pub peer_watch_interval: String,
    /// Preferred ports (others are chosen on a clash).
    pub ports: Ports,
    /// Leave the processes of a failed `up` running, to inspect them.
    pub keep_on_failure: bool,
    /// The cluster's consensus.
    pub consensus: Consensus,
    /// `init --datastore` (0.14 on); `None`: what the release's `init` writes.
    pub datastore: Option<String>,
    /// Run the real releases and kubo (built by `scripts/real-releases`), never the stand-in.
    pub real: bool,
    /// Where the real releases are; by default `real::default_dir()`.
    pub real_dir: Option<PathBuf>,
    /// How many bastions the hosts are reachable through, and only through (0: directly).
    pub bastions: usize,
    /// Log in as this non-root user (who becomes root with sudo), peers running as `ipfs`.
    pub login: Option<super::login::Login>,
    /// Reach every host through a delaying relay with this round-trip time (`--rtt`).
    pub delay: Option<crate::delay::Delay>,
    /// What the hosts are: sshd processes of the machine, or containers booted with systemd.
    pub host_kind: HostKind,
}

/// What `up` built.
#[derive(Debug, Clone)]
pub struct UpReport {
    pub layout: Layout,
    pub state: LabState,
    /// Wall time of each phase, in order.
    pub phases: Vec<(String, Duration)>,
    pub elapsed: Duration,
    /// Start times and memory of every host's daemons (labs of real binaries).
    pub measures: Vec<HostMeasure>,
}

/// The default target: the modelled release after `version`, or `version` itself when it is
/// the newest.
pub fn default_target(version: &str) -> Option<String> {
    let position = RELEASES.iter().position(|r| *r == version)?;
    Some(
        RELEASES
            .get(position + 1)
            .unwrap_or(&RELEASES[position])
            .to_string(),
    )
}

fn modelled(version: &str) -> Result<Release> {
    Release::modelled(version).ok_or_else(|| LabError::UnknownRelease {
        version: version.to_string(),
        known: RELEASES.join(", "),
    })
}

/// Starts a lab as described by `options`. On failure, every process it started is stopped
/// again (unless `keep_on_failure`).
pub fn up(options: &UpOptions, progress: &dyn Progress) -> Result<UpReport> {
    require_sshd().map_err(LabError::SshdMissing)?;
    let (release, target, real) = if options.real {
        real_releases(options)?
    } else {
        let release = modelled(&options.version)?;
        let target = match &options.target {
            Some(target) => modelled(target)?.version,
            None => {
                default_target(&release.version).expect("a modelled release has a default target")
            }
        };
        (release, target, None)
    };
    real_up::check_consensus(&release, options.consensus)?;
    check_datastore(&release, options.datastore.as_deref())?;
    if options.bastions > bastion::MAX_BASTIONS {
        return Err(LabError::InvalidOption {
            option: "--bastions",
            detail: format!("at most {}", bastion::MAX_BASTIONS),
        });
    }
    if options.delay.is_some() && options.bastions > 0 {
        return Err(LabError::InvalidOption {
            option: "--rtt",
            detail: "a lab behind bastions is not delayed (the relay fronts the hosts' sshds)"
                .into(),
        });
    }
    if options.peers == 0 || options.peers > MAX_HOSTS {
        return Err(LabError::InvalidOption {
            option: "--peers",
            detail: format!("must be 1..={MAX_HOSTS}"),
        });
    }
    for (option, value) in [
        (
            "--wait-for-leader-timeout",
            &options.wait_for_leader_timeout,
        ),
        ("--peer-watch-interval", &options.peer_watch_interval),
    ] {
        if wait::parse_duration(value).is_none() {
            return Err(LabError::InvalidOption {
                option,
                detail: format!("{value:?} is not a duration like 500ms, 3s or 1m"),
            });
        }
    }
    match options.host_kind {
        HostKind::Systemd => check_systemd_options(options)?,
        HostKind::Docker => check_docker_options(options)?,
        HostKind::Process => {}
    }
    // A lab of real binaries never needs (or falls back to) the stand-in.
    let standin = match real {
        Some(_) => None,
        None => Some(stage::standin_path(options.standin.as_deref())?),
    };
    let layout = Layout::create(&options.dir)?;
    clear_previous(&layout)?;

    let mut builder = Builder {
        layout: layout.clone(),
        options,
        release,
        progress,
        phases: Vec::new(),
        start: Instant::now(),
        real,
        measures: Vec::new(),
        tree: None,
    };
    let result = builder.build(standin.as_deref(), target);
    match result {
        Ok(state) => Ok(UpReport {
            layout,
            state,
            phases: builder.phases,
            elapsed: builder.start.elapsed(),
            measures: builder.measures,
        }),
        Err(error) => {
            if !options.keep_on_failure {
                progress.step("up failed: stopping what was started");
                let _ = down::down(layout.dir());
            }
            Err(error)
        }
    }
}

/// What a lab of systemd hosts needs and does not (yet) combine with.
fn check_systemd_options(options: &UpOptions) -> Result<()> {
    let unsupported = [
        (options.bastions > 0, "--bastion/--bastions"),
        (options.login.is_some(), "--login-user"),
    ];
    if let Some((_, option)) = unsupported.iter().find(|(set, _)| *set) {
        return Err(LabError::InvalidOption {
            option: "--host-kind systemd",
            detail: format!("not combined with {option} yet"),
        });
    }
    systemd::require()
}

/// What a lab of Docker hosts needs and does not (yet) combine with.
fn check_docker_options(options: &UpOptions) -> Result<()> {
    let unsupported = [
        (options.bastions > 0, "--bastion/--bastions"),
        (options.login.is_some(), "--login-user"),
        (options.real, "--real"),
    ];
    if let Some((_, option)) = unsupported.iter().find(|(set, _)| *set) {
        return Err(LabError::InvalidOption {
            option: "--host-kind docker",
            detail: format!("not combined with {option} yet"),
        });
    }
    super::docker::require()
}

/// The modelled releases from `version` to `target`, both included: the images a lab of Docker
/// hosts builds (a staged upgrade passes through the ones between).
fn releases_between(version: &str, target: &str) -> Vec<Release> {
    let position = |v: &str| RELEASES.iter().position(|r| *r == v);
    match (position(version), position(target)) {
        (Some(from), Some(to)) if from <= to => RELEASES[from..=to]
            .iter()
            .filter_map(|v| Release::parse(v))
            .collect(),
        _ => [version, target]
            .iter()
            .filter_map(|v| Release::parse(v))
            .collect(),
    }
}

/// `--datastore` must be one the release's `init` offers (none before 0.14).
fn check_datastore(release: &Release, datastore: Option<&str>) -> Result<()> {
    let Some(name) = datastore else {
        return Ok(());
    };
    let offered = release.datastores();
    if offered.iter().any(|b| b.key() == name) {
        return Ok(());
    }
    let detail = if offered.is_empty() {
        format!(
            "IPFS Cluster {} has no init --datastore (from 0.14)",
            release.version
        )
    } else {
        let names: Vec<&str> = offered.iter().map(|b| b.key()).collect();
        format!(
            "IPFS Cluster {} offers {}",
            release.version,
            names.join(", ")
        )
    };
    Err(LabError::InvalidOption {
        option: "--datastore",
        detail,
    })
}

/// The release, target and real folders of `up --real`: only what `scripts/real-releases` built.
fn real_releases(options: &UpOptions) -> Result<(Release, String, Option<RealSetup>)> {
    let releases = RealReleases::open(options.real_dir.as_deref());
    let version_dir = releases.require(&options.version)?;
    let release = Release::parse(&options.version).expect("a built release has a version name");
    let target = match &options.target {
        Some(target) => {
            releases.require(target)?;
            target.clone()
        }
        None => real::default_target(&releases.versions(), &release.version),
    };
    let (kubo_version, kubo_dir) = releases.require_kubo()?;
    let setup = RealSetup {
        releases,
        version_dir,
        kubo_version,
        kubo_dir,
        consensus: options.consensus,
    };
    Ok((release, target, Some(setup)))
}

/// Refuses a folder whose lab still runs, and removes what an old lab left.
fn clear_previous(layout: &Layout) -> Result<()> {
    if let Ok(state) = LabState::load(layout) {
        for host in &state.hosts {
            let spec = state.sshd_spec(layout, host);
            let paths = layout.host(&host.name);
            // A peer whose sshd was stopped by a fault still makes the lab a running one.
            let running = [
                host.sshd_pid
                    .map(|pid| (pid, spec.dir.display().to_string())),
                down::peer_pid(&paths.pid_file())
                    .map(|pid| (pid, paths.home().display().to_string())),
                down::peer_pid(&paths.kubo_pid_file())
                    .map(|pid| (pid, paths.home().display().to_string())),
            ];
            for (pid, marker) in running.into_iter().flatten() {
                if super::procs::is_ours(pid, &marker) {
                    return Err(LabError::AlreadyUp {
                        dir: layout.dir().to_path_buf(),
                        pid,
                    });
                }
            }
            if let Some(container) = &host.container {
                if systemd::is_running(container, &paths.container_dir()) {
                    return Err(LabError::AlreadyUp {
                        dir: layout.dir().to_path_buf(),
                        pid: container.pid.unwrap_or_default(),
                    });
                }
            }
        }
        // Nothing of it runs any more; sweep stragglers before its files go.
        down::down(layout.dir())?;
    }
    for dir in [
        layout.hosts(),
        layout.releases(),
        layout.assets(),
        layout.bastions(),
        super::images::lab_engine(layout).dir,
    ] {
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(LabError::io("removing", &dir))?;
        }
    }
    for file in [
        layout.lab_json(),
        layout.delay_relay(),
        layout.inventory(),
        layout.ssh_config(),
        layout.known_hosts(),
        layout.authorized_keys(),
        layout.identity(),
        layout.identity().with_extension("pub"),
    ] {
        if file.exists() {
            fs::remove_file(&file).map_err(LabError::io("removing", &file))?;
        }
    }
    Ok(())
}

struct Builder<'a> {
    layout: Layout,
    options: &'a UpOptions,
    release: Release,
    progress: &'a dyn Progress,
    phases: Vec<(String, Duration)>,
    start: Instant,
    /// Set for a lab of real binaries.
    real: Option<RealSetup>,
    measures: Vec<HostMeasure>,
    /// The Debian tree the systemd hosts boot.
    tree: Option<tree::Tree>,
}

impl Builder<'_> {
    fn phase<T>(&mut self, name: &str, work: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.progress.step(name);
        let start = Instant::now();
        let value = work(self)?;
        self.phases.push((name.to_string(), start.elapsed()));
        Ok(value)
    }

    fn build(&mut self, standin: Option<&std::path::Path>, target: String) -> Result<LabState> {
        let n = self.options.peers;
        match standin {
            Some(standin) => {
                self.phase("staging releases", |b| stage::stage(&b.layout, standin))?
            }
            None => self.phase("staging the service wrapper", |b| {
                stage::stage_wrapper(&b.layout)
            })?,
        }
        self.phase("generating the user key", |b| {
            keys::make_user_key(&b.layout)
        })?;
        if self.options.host_kind == HostKind::Systemd {
            let tree = self.phase("finding the systemd hosts' Debian tree", |b| {
                tree::ensure(&tree::default_cache(), b.progress)
            })?;
            self.tree = Some(tree);
        }
        let images = match self.options.host_kind {
            HostKind::Docker => Some(self.build_images(&target)?),
            HostKind::Process | HostKind::Systemd => None,
        };
        if let Some(login) = &self.options.login {
            self.phase(&format!("preparing the login user {}", login.user), |b| {
                super::login::prepare(login, b.layout.dir())
            })?;
        }
        let what = match self.options.host_kind {
            HostKind::Process => "sshd hosts",
            HostKind::Systemd => "systemd containers, booted until sshd listens",
            HostKind::Docker => "sshd hosts",
        };
        let mut state = self.phase(&format!("starting {n} {what}"), |b| b.start_hosts(target))?;
        if let Some(images) = &images {
            self.phase(
                "giving every host its container engine and `docker` command",
                |b| {
                    let stores: Vec<&std::path::Path> =
                        images.iter().map(|p| p.as_path()).collect();
                    parallel::try_map(&state.hosts, parallel::HOST_WORKERS, |host| {
                        super::docker::prepare_host(&b.layout.host(&host.name), &stores)
                    })
                    .map(|_| ())
                },
            )?;
        }
        let plain: Vec<Peer> = state
            .hosts
            .iter()
            .map(|h| Peer::new(&self.layout, &state, h))
            .collect();
        let masters = self.phase("opening one SSH connection per host", |_| {
            open_masters(&plain)
        })?;
        let peers: Vec<Peer> = plain
            .into_iter()
            .zip(&masters)
            .map(|(mut peer, master)| {
                if let Some(master) = master {
                    peer.remote = peer.remote.through(master.socket().to_path_buf());
                }
                peer
            })
            .collect();
        let version = self.release.version.clone();
        self.phase(
            &format!("installing {version} and running init over SSH"),
            |b| b.install_all(&state, &peers),
        )?;
        if self.options.login.is_some() {
            self.phase(
                &format!(
                    "handing every peer to the {} user",
                    super::login::SERVICE_USER
                ),
                |_| {
                    parallel::try_map(&peers, parallel::HOST_WORKERS, |peer| {
                        let script = super::login::hand_over_script(
                            &peer.paths.config_dir(),
                            &peer.paths.unit(),
                        );
                        peer.remote.run("hand over to the service user", &script)
                    })
                    .map(|_| ())
                },
            )?;
        }
        self.measures = state
            .hosts
            .iter()
            .map(|h| HostMeasure {
                host: h.name.clone(),
                ..HostMeasure::default()
            })
            .collect();
        if self.real.is_some() {
            self.phase(
                "writing every peer's address into every peer's config",
                |_| real_up::write_peer_addresses(&state, &peers).map(|_| ()),
            )?;
            self.phase("starting kubo on every host", |b| {
                b.start_kubos(&state, &peers)
            })?;
        }
        let how = match self.options.consensus {
            Consensus::Raft => "joining the others one by one",
            Consensus::Crdt => "the others bootstrapping to it",
        };
        self.phase(&format!("starting h1 and {how}"), |b| {
            b.form_cluster(&mut state, &peers)
        })?;
        self.phase(&format!("waiting until every peer sees {n} peers"), |_| {
            wait_all_see(
                &peers,
                n,
                Duration::from_secs(60) + JOIN_TIME_PER_PEER * n as u32,
            )
        })?;
        if self.options.host_kind == HostKind::Docker && n > 1 {
            self.phase(
                "recreating the bootstrapped containers as an operator's (no --bootstrap, a restart policy), one at a time",
                |_| settle_containers(&peers[1..], n),
            )?;
        }
        let pins = self.options.pins;
        if pins > 0 {
            let pinset = match &self.real {
                Some(_) => self.phase(
                    &format!("adding the blocks of {pins} pins to every kubo"),
                    |_| real_up::add_blocks(&state, &peers, pins),
                )?,
                None => (0..pins).map(pins::cid).collect(),
            };
            self.phase(&format!("adding {pins} pins"), |_| {
                add_pins(&peers, &pinset)
            })?;
            self.phase(
                &format!("waiting until every peer lists {pins} pins"),
                |b| wait_all_pins(&peers, &pinset, b.real.is_none(), Duration::from_secs(120)),
            )?;
            if let Some(real) = state.real.as_mut() {
                self.phase(
                    &format!("waiting until every peer has {pins} pins PINNED"),
                    |_| {
                        parallel::try_map(&peers, parallel::HOST_WORKERS, |peer| {
                            real_up::wait_pinned(peer, &pinset, Duration::from_secs(120))
                        })
                        .map(|_| ())
                    },
                )?;
                real.pins = pinset;
            }
        }
        if self.real.is_some() {
            self.phase("measuring the daemons' memory", |b| {
                real_up::measure_memory(&peers, &mut b.measures)
            })?;
        }
        state.save(&self.layout)?;
        inventory::write(&self.layout, &state)?;
        Ok(state)
    }

    /// Picks a network, starts every sshd, and records the lab (so `down` can clean up).
    fn start_hosts(&mut self, target: String) -> Result<LabState> {
        let n = self.options.peers;
        let mut last = String::new();
        for attempt in 0..NETWORK_ATTEMPTS {
            let network = network::candidate(n, self.options.ports, attempt);
            if let Err(clash) = network::check_free(&network) {
                last = clash;
                continue;
            }
            let real_ports = real_up::ports_for(attempt, network.ports.ssh);
            if self.real.is_some() {
                if let Err(clash) = real_up::check_free(&network.addresses, real_ports) {
                    last = clash;
                    continue;
                }
            }
            let relay_port = match self.options.delay {
                Some(_) => match relay_port_for(&network) {
                    Ok(port) => Some(port),
                    Err(clash) => {
                        last = clash;
                        continue;
                    }
                },
                None => None,
            };
            let bastions = self.options.bastions;
            let allow_from = bastions
                .checked_sub(1)
                .map(|last| bastion::address(network.addresses[0], last));
            let specs: Vec<(String, SshdSpec)> = network
                .addresses
                .iter()
                .enumerate()
                .map(|(i, &address)| {
                    let name = format!("h{}", i + 1);
                    let spec = SshdSpec {
                        allow_from,
                        ..sshd_spec(&self.layout, &name, address, network.ports.ssh)
                    };
                    (name, spec)
                })
                .collect();
            let (pids, containers) = match &self.tree {
                None => match hosts::start_all(&specs) {
                    Ok(pids) => (pids.into_iter().map(Some).collect(), vec![None; n]),
                    // Someone took an address or port between the check and the start: try again.
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                },
                Some(tree) => {
                    let containers = self.boot_containers(tree, &specs)?;
                    (vec![None; n], containers.into_iter().map(Some).collect())
                }
            };
            let user = match self.options.host_kind {
                HostKind::Process | HostKind::Docker => current_user(),
                HostKind::Systemd => "root".to_string(),
            };
            let mut state = LabState {
                version: self.release.version.clone(),
                target,
                user,
                ports: network.ports,
                secret: secret(),
                hosts: specs
                    .iter()
                    .zip(pids)
                    .zip(containers)
                    .map(|(((name, spec), sshd_pid), container)| HostRecord {
                        name: name.clone(),
                        address: spec.address,
                        sshd_pid,
                        peer_id: None,
                        container,
                    })
                    .collect(),
                real: self.real.as_ref().map(|setup| setup.record(real_ports)),
                bastions: Vec::new(),
                login: self.options.login.clone(),
                latency: None,
                host_kind: self.options.host_kind,
            };
            state.save(&self.layout)?;
            if bastions > 0 {
                bastion::start(&self.layout, &mut state, bastions)?;
            }
            if let (Some(delay), Some(port)) = (self.options.delay, relay_port) {
                latency::start(&self.layout, &mut state, delay, port)?;
            }
            let bastion_specs: Vec<SshdSpec> = state
                .bastions
                .iter()
                .map(|b| bastion::sshd_spec(&self.layout, b, state.ports.ssh))
                .collect();
            keys::write_known_hosts(
                &self.layout,
                &specs
                    .iter()
                    .map(|(_, s)| s)
                    .chain(&bastion_specs)
                    .collect::<Vec<_>>(),
                relay_port,
            )?;
            return Ok(state);
        }
        Err(LabError::NoFreeNetwork {
            attempts: NETWORK_ATTEMPTS,
            last,
        })
    }

    /// The Docker hosts' images: the base (imported once into the cache) and the lab's releases
    /// from its version to `target` built on it; returns the image stores every host reads.
    fn build_images(&mut self, target: &str) -> Result<Vec<std::path::PathBuf>> {
        let base = self.phase("finding the Docker hosts' base image", |b| {
            let tree = tree::ensure(&tree::default_cache(), b.progress)?;
            let base =
                super::images::ensure_base(&super::images::default_cache(), &tree, b.progress)?;
            Ok((tree, base))
        })?;
        let releases = releases_between(&self.release.version, target);
        let names: Vec<&str> = releases.iter().map(|r| r.version.as_str()).collect();
        let lab = self.phase(
            &format!(
                "building the images ipfs/ipfs-cluster:v{{{}}}",
                names.join(",")
            ),
            |b| super::images::build(&b.layout, &base.1, &base.0, &releases),
        )?;
        Ok(vec![lab.root(), base.1.root()])
    }

    /// Boots a container per host, each with the host key of its sshd spec (so known_hosts is
    /// written as for process hosts); returns their records.
    fn boot_containers(
        &self,
        tree: &tree::Tree,
        specs: &[(String, SshdSpec)],
    ) -> Result<Vec<ContainerRecord>> {
        let authorized_keys = fs::read_to_string(self.layout.authorized_keys())
            .map_err(LabError::io("reading", self.layout.authorized_keys()))?;
        let mut containers = Vec::new();
        for (name, sshd) in specs {
            fs::create_dir_all(&sshd.dir).map_err(LabError::io("creating", &sshd.dir))?;
            crate::sshd::generate_key(&sshd.host_key_path(), "lab-host-key")
                .map_err(LabError::io("generating key", sshd.host_key_path()))?;
            let spec = ContainerSpec {
                host: name.clone(),
                machine: systemd::machine_name(sshd.address),
                address: sshd.address,
                ssh_port: sshd.port,
                tree: tree.dir().to_path_buf(),
                dir: self.layout.host(name).container_dir(),
            };
            let keys = systemd::Keys {
                host_key: sshd.host_key_path(),
                authorized_keys: authorized_keys.clone(),
            };
            containers.push((spec, keys));
        }
        let pids = systemd::boot_all(&containers)?;
        Ok(containers
            .into_iter()
            .zip(pids)
            .map(|((spec, _), pid)| ContainerRecord {
                machine: spec.machine,
                pid: Some(pid),
            })
            .collect())
    }

    fn install_all(&self, state: &LabState, peers: &[Peer]) -> Result<()> {
        let settings_for = |peer: &Peer| {
            let host = state.host(&peer.name).expect("peer of this lab");
            InitSettings {
                release: self.release.clone(),
                secret: state.secret.clone(),
                listen: state.cluster_addr(host),
                wait_for_leader_timeout: self.options.wait_for_leader_timeout.clone(),
                peer_watch_interval: self.options.peer_watch_interval.clone(),
                consensus: self.options.consensus,
                datastore: self.options.datastore.clone(),
                extra_env: real_up::init_env(state, host),
            }
        };
        parallel::try_map(peers, parallel::HOST_WORKERS, |peer| {
            match &self.real {
                Some(setup) => {
                    peer.install_release(&self.layout, &setup.version_dir)?;
                    let host = state.host(&peer.name)?;
                    let api = state.ipfs_api(host).expect("a real lab");
                    real_up::install_kubo(&self.layout, setup, peer, &api)?;
                }
                None => peer.install(&self.layout, &self.release.version)?,
            }
            peer.init(&settings_for(peer))
        })
        .map(|_| ())
    }

    /// Starts kubo on every host and waits until each answers its API.
    fn start_kubos(&mut self, state: &LabState, peers: &[Peer]) -> Result<()> {
        let took = parallel::try_map(peers, parallel::HOST_WORKERS, |peer| {
            let host = state.host(&peer.name)?;
            super::kubo::start(peer, &state.ipfs_api(host).expect("a real lab"))
        })?;
        for (measure, took) in self.measures.iter_mut().zip(took) {
            measure.kubo_start = Some(took);
        }
        Ok(())
    }

    /// Starts h1 alone, then every other peer with `--bootstrap <h1>`: with raft one at a time
    /// (raft adds one voter per configuration change), with crdt all at once. A real peer is
    /// ready once it also reaches its IPFS daemon.
    fn form_cluster(&mut self, state: &mut LabState, peers: &[Peer]) -> Result<()> {
        // Each raft join changes the configuration of every voter so far: a large lab (issue
        // 19 starts 200 hosts) gets more time per peer than a small one.
        let join_limit = wait::parse_duration(&self.options.wait_for_leader_timeout)
            .expect("validated")
            + Duration::from_secs(20)
            + JOIN_TIME_PER_PEER * peers.len() as u32
            + if self.real.is_some() {
                REAL_START_ALLOWANCE
            } else {
                Duration::ZERO
            };
        let real = self.real.is_some();
        let first = &peers[0];
        let started = Instant::now();
        let ready = real_up::ready_before(first, real)?;
        first.service_ok("start", &[])?;
        let id = wait_sees(first, 1, ready, join_limit)?;
        self.measures[0].peer_start = Some(started.elapsed());
        let bootstrap = bootstrap_addr(&state.cluster_addr(&state.hosts[0]), &id, &self.release);
        state.hosts[0].peer_id = Some(id);
        let join = |peer: &Peer, sees: usize| -> Result<(String, Duration)> {
            let started = Instant::now();
            let ready = real_up::ready_before(peer, real)?;
            peer.service_ok("start", &["--bootstrap".to_string(), bootstrap.clone()])?;
            let id = wait_sees(peer, sees, ready, join_limit)?;
            Ok((id, started.elapsed()))
        };
        let joined = match self.options.consensus {
            Consensus::Raft => {
                let mut joined = Vec::new();
                for (i, peer) in peers.iter().enumerate().skip(1) {
                    joined.push(join(peer, i + 1)?);
                }
                joined
            }
            // A CRDT peer counts the peers whose ping it received: the first one at least.
            Consensus::Crdt => {
                parallel::try_map(&peers[1..], parallel::HOST_WORKERS, |peer| join(peer, 1))?
            }
        };
        for (i, (id, took)) in joined.into_iter().enumerate() {
            state.hosts[i + 1].peer_id = Some(id);
            self.measures[i + 1].peer_start = Some(took);
        }
        state.save(&self.layout)
    }
}

/// The delaying relay's port for `network`: the SSH port + 100, free on every address and
/// unlike the cluster's ports; otherwise says why not (another network is then tried).
fn relay_port_for(network: &network::Network) -> std::result::Result<u16, String> {
    let ports = network.ports;
    let port = latency::relay_port(ports.ssh)
        .ok_or_else(|| format!("no relay port above ssh port {}", ports.ssh))?;
    if port == ports.cluster || port == ports.api {
        return Err(format!("relay port {port} is a cluster port"));
    }
    network::check_port_free(&network.addresses, port)?;
    Ok(port)
}

/// Opens a master SSH connection to every host, where the socket path is short enough for a
/// Unix socket (a very long lab folder just goes without).
fn open_masters(peers: &[Peer]) -> Result<Vec<Option<Master>>> {
    parallel::try_map(peers, parallel::HOST_WORKERS, |peer| {
        let socket = peer.paths.control_socket();
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Ok(None);
        }
        peer.remote.open_master(socket).map(Some)
    })
}

/// How much longer a peer may take to join, and every peer to see every other, per peer of
/// the lab: 200 stand-in raft peers on 2 shared cores took over 23 s for the 180th join.
const JOIN_TIME_PER_PEER: Duration = Duration::from_millis(250);

/// How much longer real peers may take to form the cluster: a real 1.0.8 peer opens its pebble
/// store and reaches its kubo before it is ready, and 5 of them with their kubo daemons on 2
/// loaded cores missed the join limit in a clean-clone run ("starting h1 and the others
/// bootstrapping to it" failed after 24 s).
const REAL_START_ALLOWANCE: Duration = Duration::from_secs(60);

/// `sun_path` holds 108 bytes; ssh appends a temporary suffix while it sets the socket up.
const MAX_SOCKET_PATH: usize = 80;

/// Waits until `peer` answers and sees at least `count` peers; returns its peer ID. A real peer
/// (`ready`: how many times its log said READY before this start) must also reach its IPFS
/// daemon and say READY once more: its API answers well before (during the raft election and
/// while it waits for IPFS).
///
/// A real peer's API is asked only once its log said READY: real 1.0.8 and 1.1.6 serve their
/// REST API as soon as it has its RPC client, before consensus has its own (`NewCluster` hands
/// the client to the APIs first), and an `/id` in between crashes the peer (`panic: runtime
/// error: invalid memory address or nil pointer dereference` in go-libp2p-gorpc's
/// `(*Client).makeCall`, seen on a loaded machine when this wait asked every 100 ms).
fn wait_sees(peer: &Peer, count: usize, ready: Option<usize>, limit: Duration) -> Result<String> {
    let what = format!("{} to see {count} peer(s)", peer.name);
    let what = match ready {
        Some(_) => format!("{what}, reach its IPFS daemon and be READY"),
        None => what,
    };
    let mut last = "its API never answered";
    let waited = wait::until(&what, limit, Duration::from_millis(100), || {
        if let Some(before) = ready {
            if real_up::ready_count(peer)? <= before {
                last = "its log had not said READY since the start";
                return Ok(None);
            }
        }
        let Some(id) = peer.id()? else {
            last = "its API did not answer";
            return Ok(None);
        };
        if id.cluster_peers.len() < count {
            last = "its API answered, seeing fewer peers";
            return Ok(None);
        }
        if ready.is_some() && !id.reaches_ipfs() {
            last = "it did not reach its IPFS daemon";
            return Ok(None);
        }
        Ok(Some(id.id))
    });
    match waited {
        Err(LabError::WaitTimeout { what, seconds }) => Err(LabError::WaitTimeout {
            what: format!("{what} (when last asked, {last}){}", log_tail(peer)),
            seconds,
        }),
        other => other,
    }
}

/// The last lines of `peer`'s log, for an error (empty when it cannot be read).
fn log_tail(peer: &Peer) -> String {
    let script = format!("{} | tail -n 12", peer.on_host.service.log_script());
    match peer.remote.run("read the peer log", &script) {
        Ok(output) if !output.stdout.trim().is_empty() => format!(
            "; its log ends:\n{}",
            output
                .stdout
                .trim_end()
                .lines()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        _ => String::new(),
    }
}

fn wait_all_see(peers: &[Peer], count: usize, limit: Duration) -> Result<()> {
    parallel::try_map(peers, parallel::HOST_WORKERS, |peer| {
        let what = format!("{} to see {count} peers", peer.name);
        wait::until(&what, limit, Duration::from_millis(200), || {
            Ok(peer.id()?.filter(|id| id.cluster_peers.len() == count))
        })
    })
    .map(|_| ())
}

/// Recreates each of `peers`' containers (started with `--bootstrap`) as an operator's, one at a
/// time, each seeing all `count` peers again before the next.
fn settle_containers(peers: &[Peer], count: usize) -> Result<()> {
    for peer in peers {
        let script = peer
            .on_host
            .service
            .settle_script()
            .expect("a Docker host's service");
        peer.remote.run("recreate the container", &script)?;
        let what = format!(
            "{} to see {count} peers after its container was recreated",
            peer.name
        );
        wait::until(
            &what,
            Duration::from_secs(60),
            Duration::from_millis(200),
            || Ok(peer.id()?.filter(|id| id.cluster_peers.len() == count)),
        )?;
    }
    Ok(())
}

/// Adds pins `0..count` (whose CIDs are `cids`), split into a few SSH streams on different
/// peers.
fn add_pins(peers: &[Peer], cids: &[String]) -> Result<()> {
    let count = cids.len();
    let streams = PIN_STREAMS.min(count).max(1);
    let chunk = count.div_ceil(streams);
    let jobs: Vec<(usize, std::ops::Range<usize>)> = (0..streams)
        .map(|s| (s, s * chunk..((s + 1) * chunk).min(count)))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    parallel::try_map(&jobs, streams, |(s, range)| {
        peers[*s % peers.len()].add_pins(range.clone().map(|i| (cids[i].as_str(), i)))
    })
    .map(|_| ())
}

/// Waits until every peer lists exactly the lab's `count` pins. Every one of them was
/// acknowledged (`add_pins` fails otherwise), so once a stand-in's list stops moving short of
/// them (`standin`) the stand-in lost acknowledged writes: that is a stand-in bug, reported as
/// such and never papered over. Real CRDT peers may lag for a rebroadcast interval (a head
/// broadcast that a peer missed is sent again then): they get the whole `limit`.
fn wait_all_pins(peers: &[Peer], cids: &[String], standin: bool, limit: Duration) -> Result<()> {
    const STALL: Duration = Duration::from_secs(5);
    let count = cids.len();
    let expected: std::collections::HashSet<&str> = cids.iter().map(String::as_str).collect();
    parallel::try_map(peers, parallel::HOST_WORKERS, |peer| {
        let mut last = (None, Instant::now());
        let what = format!("{} to list {count} pins", peer.name);
        wait::until(&what, limit, Duration::from_millis(300), || {
            let seen = peer.pins()?;
            let exact = |cids: &Vec<String>| {
                cids.len() == count && cids.iter().all(|cid| expected.contains(cid.as_str()))
            };
            if seen.as_ref().is_some_and(exact) {
                return Ok(Some(()));
            }
            let size = seen.as_ref().map(Vec::len);
            if size != last.0 {
                last = (size, Instant::now());
            } else if standin && last.1.elapsed() > STALL {
                return Err(match seen {
                    Some(listed) => lost_pins(&peer.name, cids, &listed),
                    None => LabError::WaitTimeout {
                        what: format!("{what} (its API does not answer)"),
                        seconds: STALL.as_secs(),
                    },
                });
            }
            Ok(None)
        })
    })
    .map(|_| ())
}

/// The error for a peer whose list of pins settled without all the acknowledged ones.
fn lost_pins(host: &str, cids: &[String], listed: &[String]) -> LabError {
    let count = cids.len();
    let listed: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
    let missing: Vec<String> = cids
        .iter()
        .filter(|cid| !listed.contains(cid.as_str()))
        .cloned()
        .collect();
    let extra = listed.len() + missing.len() - count;
    LabError::PinsLost {
        host: host.to_string(),
        missing: missing.len(),
        count,
        examples: missing
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        extra,
    }
}

/// A fresh `cluster.secret`: 32 random bytes as 64 hex characters.
fn secret() -> String {
    let mut bytes = [0u8; 32];
    let random = fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(network::random_u64() ^ i as u64).to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_target_is_the_next_release() {
        assert_eq!(default_target("0.10.1").as_deref(), Some("0.11.0"));
        assert_eq!(default_target("0.9.0").as_deref(), Some("0.10.1"));
        assert_eq!(default_target("1.1.6").as_deref(), Some("1.1.6"));
        assert_eq!(default_target("0.12.0"), None);
        assert_eq!(secret().len(), 64);
        assert_ne!(secret(), secret());
    }

    #[test]
    fn lost_pins_are_named_as_a_stand_in_bug() {
        let mut listed: Vec<String> = (0..10)
            .filter(|&i| i != 3 && i != 7)
            .map(pins::cid)
            .collect();
        listed.push("QmNotALabPin".into());
        let all: Vec<String> = (0..10).map(pins::cid).collect();
        let error = lost_pins("h2", &all, &listed);
        let LabError::PinsLost {
            missing,
            extra,
            ref examples,
            ..
        } = error
        else {
            panic!("{error:?}")
        };
        assert_eq!((missing, extra), (2, 1));
        assert_eq!(examples, &format!("{}, {}", pins::cid(3), pins::cid(7)));
        let text = error.to_string();
        assert!(
            text.contains("h2: 2 of the 10 acknowledged pins are missing"),
            "{text}"
        );
        assert!(text.contains("bug of the stand-in"), "{text}");
    }
}
