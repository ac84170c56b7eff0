//! `cluster-lab`: a local lab of real SSH hosts running stand-in IPFS Cluster peers.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use cluster_testbed::delay::{Delay, Rules};
use cluster_testbed::lab::{self, Fault, LabError, Ports, Progress};
use cluster_testbed::release::{write_release, RELEASES};

/// A local lab of real OpenSSH hosts on loopback, each running a stand-in IPFS Cluster peer
/// under a small service wrapper, and an inventory describing them for cluster-upgrade.
#[derive(Debug, Parser)]
#[command(name = "cluster-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start N hosts, install a release over SSH, form a raft cluster, add pins, and write
    /// DIR/inventory.yaml, DIR/known_hosts, DIR/id_ed25519 and DIR/lab.json.
    Up(Box<UpArgs>),
    /// Build the Debian tree of the systemd hosts (`up --host-kind systemd`) in the cache if it
    /// is missing, and print its folder.
    SystemdTree,
    /// Print, per host, the installed version, whether the peer runs, the peers it sees and the
    /// pins it lists (gathered over SSH).
    Status(StatusArgs),
    /// Stop every process the lab started (peers, then sshds), by PID. Safe to run twice.
    Down(DirArg),
    /// Inject a fault into one host, for failure and recovery tests.
    Fault(FaultArgs),
    /// Write one release's ipfs-cluster-service, ipfs-cluster-ctl and SHA256SUMS into a folder.
    Release(ReleaseArgs),
    /// List the modelled IPFS Cluster releases (with --real: the real ones built), oldest
    /// first, one per line.
    Releases(ReleasesArgs),
    /// The TCP relay between a bastion's network namespace and the others (started by `up
    /// --bastion`; stopped by `down`).
    #[command(hide = true)]
    Relay(RelayArgs),
    /// The delaying TCP relay in front of every host (started by `up --rtt`; stopped by
    /// `down`).
    #[command(hide = true)]
    DelayRelay(RelayArgs),
}

#[derive(Debug, Args)]
struct RelayArgs {
    /// The rules, as JSON (a list of listen/dial pairs).
    #[arg(long, value_name = "FILE")]
    rules: PathBuf,
}

#[derive(Debug, Args)]
struct ReleasesArgs {
    /// List the real releases built by scripts/real-releases instead (fails when none is).
    #[arg(long)]
    real: bool,
    /// The folder of the real releases (default: `scripts/real-releases --print-dir`).
    #[arg(long, value_name = "DIR", requires = "real")]
    real_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DirArg {
    /// The lab folder (as given to `up`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// The lab folder; created if missing. A stopped lab in it is replaced; a running one is refused.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Number of hosts, named h1..hN, on 127.A.B.2, 127.A.B.3, … (a random /24 per lab).
    #[arg(long, value_name = "N", default_value_t = 3)]
    peers: usize,
    /// The IPFS Cluster release installed on every host (see `cluster-lab releases`).
    #[arg(long, visible_alias = "release", value_name = "V")]
    version: String,
    /// Number of fake pins (deterministic CIDv0s) added once the cluster has formed.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pins: usize,
    /// The inventory's target_version; default: the next modelled release after V (V itself if
    /// V is the newest).
    #[arg(long, value_name = "T")]
    target: Option<String>,
    /// The stand-in peer executable the releases are made from; default: `cluster-peer` in the
    /// folder of this program.
    #[arg(long, value_name = "PATH")]
    standin: Option<PathBuf>,
    /// raft.wait_for_leader_timeout of every peer (a Go duration: 500ms, 3s, 1m). A peer gives up
    /// this long plus 5 s after start without a leader.
    #[arg(long, value_name = "DURATION", default_value = "3s")]
    wait_for_leader_timeout: String,
    /// cluster.peer_watch_interval of every peer (how soon a removed peer notices and shuts down).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    peer_watch_interval: String,
    /// Preferred SSH port of every host (another is chosen if it is taken).
    #[arg(long, value_name = "PORT", default_value_t = Ports::default().ssh)]
    ssh_port: u16,
    /// Preferred cluster swarm port of every host (peer traffic, --bootstrap addresses).
    #[arg(long, value_name = "PORT", default_value_t = Ports::default().cluster)]
    cluster_port: u16,
    /// Preferred REST API port of every host (ipfs-cluster-ctl --host).
    #[arg(long, value_name = "PORT", default_value_t = Ports::default().api)]
    api_port: u16,
    /// If `up` fails, leave what it started running (to inspect it) instead of stopping it;
    /// clean up later with `cluster-lab down`.
    #[arg(long)]
    keep_on_failure: bool,
    /// The consensus of the cluster (`init --consensus`, from 0.11). Default: as the release's
    /// own `init`: crdt from 0.11, raft before.
    #[arg(long, value_name = "raft|crdt")]
    consensus: Option<lab::Consensus>,
    /// The CRDT peers' datastore (`init --datastore`): badger or leveldb from 0.14, also
    /// badger3 or pebble from 1.0.5. Default: as the release's own `init` (badger before 1.0.6,
    /// pebble from 1.0.6 on linux/amd64).
    #[arg(long, value_name = "NAME")]
    datastore: Option<String>,
    /// Run the real IPFS Cluster releases and a real kubo daemon per host, as built by
    /// scripts/real-releases (never the stand-in: fails when they are missing). The inventory's
    /// release source is then that folder. Prints each host's start times and memory.
    #[arg(long)]
    real: bool,
    /// The folder of the real releases (default: `scripts/real-releases --print-dir`).
    #[arg(long, value_name = "DIR", requires = "real")]
    real_dir: Option<PathBuf>,
    /// Put the hosts behind a bastion sshd: they take SSH logins only through it (each in its
    /// own network namespace; needs root). The inventory says `proxy_jump`.
    #[arg(long, conflicts_with = "bastions")]
    bastion: bool,
    /// Put the hosts behind a chain of N bastions (bastion → bastion2 → hosts), N ≤ 2.
    #[arg(long, value_name = "N", default_value_t = 0)]
    bastions: usize,
    /// Log in as NAME, a non-root user (created when missing; needs root), peers running as the
    /// `ipfs` user: the inventory says `become: {method: sudo, user: root}` and `service_user`.
    #[arg(long, value_name = "NAME")]
    login_user: Option<String>,
    /// Let the --login-user sudo without a password (NOPASSWD in /etc/sudoers.d); without it,
    /// its sudo wants a password, which cluster-upgrade must refuse.
    #[arg(long, requires = "login_user")]
    sudo: bool,
    /// Reach every host through a delaying TCP relay with this round-trip time (50ms, 0.1s):
    /// the inventory and known_hosts name the relay's port (the SSH port + 100), so every tool
    /// crosses the same simulated network. The delay is per chunk, with no bandwidth limit or
    /// loss (docs/benchmarks.md).
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["bastion", "bastions"])]
    rtt: Option<String>,
    /// Spread each one-way delay uniformly over ± half of this (at most the RTT); chunks still
    /// arrive in order.
    #[arg(long, value_name = "DURATION", requires = "rtt")]
    jitter: Option<String>,
    /// What a host is: `process` (an sshd of this machine, the peer under the lab's service
    /// wrapper), `systemd` (a container booted with a real systemd by systemd-nspawn from a
    /// cached Debian tree, the peer as ipfs-cluster.service with User=ipfs; needs root, builds
    /// the tree on first use) or `docker` (an sshd of this machine whose peer runs in a Podman
    /// container `ipfs-cluster` of a local image ipfs/ipfs-cluster:v<version>, driven by the
    /// host's `docker` command; needs root, podman and runc).
    #[arg(long, value_name = "process|systemd|docker", default_value = "process")]
    host_kind: lab::HostKind,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The lab folder (as given to `up`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Print a JSON array of {host, version, running, peers, pins, error} objects; unknown values
    /// (host or API unreachable) are null.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct FaultArgs {
    /// The lab folder (as given to `up`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    #[command(subcommand)]
    fault: FaultCommand,
}

#[derive(Debug, Subcommand)]
enum FaultCommand {
    /// Stop the host's sshd: SSH to it fails until `start-sshd`.
    StopSshd {
        /// The host (h1..hN).
        host: String,
    },
    /// Start the host's sshd again, with the same host key.
    StartSshd {
        /// The host (h1..hN).
        host: String,
    },
    /// SIGKILL the host's peer: no clean shutdown, so no snapshot of recent pins.
    KillPeer {
        /// The host (h1..hN).
        host: String,
    },
    /// Remove the peer's consensus state: its raft folder, or a CRDT peer's datastore folder.
    RmState {
        /// The host (h1..hN).
        host: String,
        /// Also remove the raft.old.N backups, so there is nothing to recover from.
        #[arg(long)]
        backups: bool,
    },
    /// Make the next stop of a stand-in CRDT peer happen while it merges CRDT updates.
    ///
    /// ADR 0015: on a release with go-ds-crdt v0.3–v0.5 (0.14.5 to 1.1.1) that stop leaves the N
    /// pins it received last out of its store, recorded as processed, and marks the store
    /// dirty. A restart on such a release repairs it; 1.1.2 and later read it as clean and
    /// lack those pins for good, until `state cleanup`.
    InterruptedMerge {
        /// The host (h1..hN).
        host: String,
        /// How many of the pins it received last the interrupted merge leaves out.
        #[arg(long, value_name = "N", default_value_t = cluster_testbed::standin::dirty::DEFAULT_PINS)]
        pins: usize,
    },
    /// Make the next start of a stand-in peer on a 1.x release crash (a Go panic, exit 2).
    ///
    /// Real 1.0.8 and 1.1.6 peers crash so when their REST API is asked before consensus has
    /// its RPC client (a race); the stand-in crashes on demand, once. The one fault that also
    /// acts on systemd hosts (the marker is written into the unit's config folder over SSH)
    /// and Docker hosts (into the config folder the container mounts); the others act on
    /// process hosts only.
    CrashAtStart {
        /// The host (h1..hN).
        host: String,
    },
    /// Give the host a new SSH host key (sshd is restarted if it runs), so that known_hosts no
    /// longer matches.
    Rekey {
        /// The host (h1..hN).
        host: String,
        /// Also write the new key into DIR/known_hosts.
        #[arg(long)]
        update_known_hosts: bool,
    },
}

#[derive(Debug, Args)]
struct ReleaseArgs {
    /// The release (see `cluster-lab releases`).
    version: String,
    /// The folder to write ipfs-cluster-service, ipfs-cluster-ctl and SHA256SUMS into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The stand-in peer executable; default: `cluster-peer` in the folder of this program.
    #[arg(long, value_name = "PATH")]
    standin: Option<PathBuf>,
}

/// Progress lines on stderr, with the time since start.
struct Stderr(Instant);

impl Progress for Stderr {
    fn step(&self, text: &str) {
        eprintln!(
            "cluster-lab [{:>6.2}s] {text}",
            self.0.elapsed().as_secs_f64()
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-lab: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), LabError> {
    let mut stdout = std::io::stdout().lock();
    match command {
        Command::Up(args) => {
            let args = *args;
            let consensus = args
                .consensus
                .unwrap_or_else(|| lab::Consensus::default_for(&args.version));
            let delay = args
                .rtt
                .as_deref()
                .map(|rtt| Delay::parse(rtt, args.jitter.as_deref()))
                .transpose()
                .map_err(|source| LabError::InvalidDelay { source })?;
            let options = lab::UpOptions {
                dir: args.dir,
                peers: args.peers,
                version: args.version,
                pins: args.pins,
                target: args.target,
                standin: args.standin,
                wait_for_leader_timeout: args.wait_for_leader_timeout,
                peer_watch_interval: args.peer_watch_interval,
                ports: Ports {
                    ssh: args.ssh_port,
                    cluster: args.cluster_port,
                    api: args.api_port,
                },
                keep_on_failure: args.keep_on_failure,
                consensus,
                datastore: args.datastore,
                real: args.real,
                real_dir: args.real_dir,
                bastions: if args.bastion { 1 } else { args.bastions },
                login: args.login_user.map(|user| lab::login::Login {
                    user,
                    sudo: args.sudo,
                }),
                delay,
                host_kind: args.host_kind,
            };
            let report = lab::up(&options, &Stderr(Instant::now()))?;
            for (phase, took) in &report.phases {
                eprintln!("cluster-lab   {:>6.2}s  {phase}", took.as_secs_f64());
            }
            let first = &report.state.hosts[0];
            let what = match &report.state.real {
                Some(real) => format!(
                    "real IPFS Cluster {} ({}) and kubo {}",
                    report.state.version,
                    real.consensus.as_str(),
                    real.kubo_version
                ),
                None => format!("IPFS Cluster {}", report.state.version),
            };
            let _ = writeln!(
                stdout,
                "lab up in {:.1}s: {} hosts on {} (ssh port {}), {what}, target {}\ninventory: {}",
                report.elapsed.as_secs_f64(),
                report.state.hosts.len(),
                first.address,
                report.state.ports.ssh,
                report.state.target,
                report.layout.inventory().display()
            );
            if let Some(latency) = &report.state.latency {
                let _ = writeln!(
                    stdout,
                    "every host reached through the delaying relay ({}) on port {}",
                    latency.delay, latency.port
                );
            }
            if report.state.real.is_some() {
                for measure in &report.measures {
                    let _ = writeln!(stdout, "{}", measure.line());
                }
            }
        }
        Command::Status(args) => {
            let statuses = lab::status(&args.dir)?;
            if args.json {
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&statuses).expect("status serializes")
                );
            } else {
                let _ = write!(stdout, "{}", lab::status::render_text(&statuses));
            }
        }
        Command::Down(args) => {
            let report = lab::down(&args.dir)?;
            let containers = match report.containers.len() {
                0 => String::new(),
                n => format!(", {n} systemd container(s)"),
            };
            let _ = writeln!(
                stdout,
                "stopped {} peer(s), {} sshd(s), {} other process(es){containers}{}",
                report.peers.len(),
                report.sshds.len(),
                report.stragglers.len(),
                if report.relay {
                    " and the delaying relay"
                } else {
                    ""
                }
            );
            for (pid, cmdline) in &report.stragglers {
                eprintln!("cluster-lab: also stopped pid {pid}: {cmdline}");
            }
        }
        Command::Fault(args) => {
            let (host, fault) = match args.fault {
                FaultCommand::StopSshd { host } => (host, Fault::StopSshd),
                FaultCommand::StartSshd { host } => (host, Fault::StartSshd),
                FaultCommand::KillPeer { host } => (host, Fault::KillPeer),
                FaultCommand::CrashAtStart { host } => (host, Fault::CrashAtStart),
                FaultCommand::RmState { host, backups } => (host, Fault::RmState { backups }),
                FaultCommand::InterruptedMerge { host, pins } => {
                    (host, Fault::InterruptedMerge { pins })
                }
                FaultCommand::Rekey {
                    host,
                    update_known_hosts,
                } => (host, Fault::Rekey { update_known_hosts }),
            };
            let report = lab::inject(&args.dir, &host, &fault)?;
            let _ = writeln!(stdout, "{report}");
        }
        Command::Release(args) => {
            let standin = lab::stage::standin_path(args.standin.as_deref())?;
            let (service, ctl) =
                write_release(&standin, &args.version, &args.out).map_err(|source| match source
                    .kind()
                {
                    std::io::ErrorKind::InvalidInput => LabError::UnknownRelease {
                        version: args.version.clone(),
                        known: RELEASES.join(", "),
                    },
                    _ => LabError::Io {
                        what: "writing release",
                        path: args.out.clone(),
                        source,
                    },
                })?;
            let _ = writeln!(
                stdout,
                "{}\n{}\n{}",
                service.display(),
                ctl.display(),
                args.out.join("SHA256SUMS").display()
            );
        }
        Command::Releases(args) if args.real => {
            let real = lab::real::RealReleases::open(args.real_dir.as_deref());
            let versions = real.versions();
            if versions.is_empty() {
                return Err(LabError::RealReleaseMissing {
                    what: "no IPFS Cluster release".into(),
                    dir: real.dir().to_path_buf(),
                    built: "none".into(),
                });
            }
            for release in versions {
                let _ = writeln!(stdout, "{release}");
            }
        }
        Command::SystemdTree => {
            let tree = lab::tree::ensure(&lab::tree::default_cache(), &Stderr(Instant::now()))?;
            let _ = writeln!(stdout, "{}", tree.dir().display());
        }
        Command::Releases(_) => {
            for release in RELEASES {
                let _ = writeln!(stdout, "{release}");
            }
        }
        Command::Relay(args) => {
            let rules = std::fs::read_to_string(&args.rules)
                .map_err(LabError::io("reading", &args.rules))?;
            let rules = serde_json::from_str(&rules).map_err(|source| LabError::State {
                path: args.rules.clone(),
                source,
            })?;
            cluster_testbed::relay::serve(rules)
                .map_err(LabError::io("relaying with rules", &args.rules))?;
        }
        Command::DelayRelay(args) => {
            let rules = std::fs::read_to_string(&args.rules)
                .map_err(LabError::io("reading", &args.rules))?;
            let rules: Rules = serde_json::from_str(&rules).map_err(|source| LabError::State {
                path: args.rules.clone(),
                source,
            })?;
            cluster_testbed::delay::serve(&rules)
                .map_err(LabError::io("relaying with rules", &args.rules))?;
        }
    }
    Ok(())
}
