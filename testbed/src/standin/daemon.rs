//! `ipfs-cluster-service daemon`: startup checks, the optional migration and bootstrap, the
//! running peer, and its shutdown (snapshot, leaving, backups).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::args::{self, switch, value, Flag};
use super::backup;
use super::config::{ConsensusKind, ServiceConfig};
use super::consensus::{Node, NodeSettings};
use super::datastore;
use super::dirty;
use super::error::Error;
use super::identity::{self, Identity};
use super::lock::ExecutionLock;
use super::logging;
use super::multiaddr::Multiaddr;
use super::raftlog;
use super::rpc::{self, Call};
use super::service::{fail, usage_error, Context};
use super::snapshot::{Fit, Snapshot};
use super::state::{ClusterState, Entry, Op};
use super::state_cmd;
use super::{api, auth, http, notify, peerstore, signals};
use crate::release::{Era, Release};

const FLAGS: &[Flag] = &[
    switch(&["upgrade", "u"]),
    value(&["bootstrap", "j"]),
    switch(&["leave", "x"]),
    value(&["alloc", "a"]),
    value(&["pintracker"]),
    switch(&["stats"]),
    switch(&["tracing"]),
    switch(&["no-trust"]),
];

/// The raft readiness grace added to `wait_for_leader_timeout` (reference §2.3).
const READY_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

const OUTDATED_BANNER: &str = "\n\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
Out of date ipfs-cluster state is saved.\n\
To migrate to the new version, run ipfs-cluster-service state upgrade.\n\
To launch a node without this state, rename the consensus data directory.\n\
Hint: the default is .ipfs-cluster/raft.\n\
See ipfs-cluster-service -h for help.\n\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";

const TIMEOUT_TIPS: &str = "***** ipfs-cluster consensus start timed out (tips below) *****\n\
\n\
**************************************************\n\
This peer was not able to become part of the cluster.\n\
This might be due to one or several causes:\n\
  - Check the logs above this message for errors\n\
  - Check that there is connectivity to the \"peers\" multiaddresses\n\
  - Check that all cluster peers are using the same \"secret\"\n\
  - Check that this peer is reachable on its \"listen_multiaddress\" by all peers\n\
  - Check that the current cluster is healthy (has a leader). Otherwise make\n\
    sure to start enough peers so that a leader election can happen.\n\
  - Check that the peer(s) you are trying to connect to is running the\n\
    same version of IPFS-cluster.\n\
**************************************************";

/// Why the daemon stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal,
    TimedOut,
    Removed,
}

/// Runs the daemon; returns the exit code.
pub fn run(ctx: &Context, args: &[String]) -> i32 {
    let parsed = match args::parse(args, FLAGS, false) {
        Ok(p) => p,
        Err(err) => return usage_error(&ctx.release, &err),
    };
    let era = ctx.release.era();
    let bootstrap: Vec<String> = match era {
        Era::Raft010 => parsed.values("bootstrap").to_vec(),
        Era::Modern => parsed
            .value("bootstrap")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    };
    // ≥ 0.11 accepts --upgrade but ignores it.
    let upgrade = parsed.has("upgrade") && era == Era::Raft010;
    let dir = &ctx.config_dir;

    // Quirk kept from ≤ 0.10: the migration runs before the lock is taken.
    if upgrade {
        let migrated = ServiceConfig::load(dir)
            .and_then(|cfg| state_cmd::migrate(&ctx.release, dir, cfg.backups_rotate));
        match migrated {
            Ok(_) | Err(Error::NoSnapshot) => {}
            Err(err) => return fail("upgrading state", &err),
        }
    }
    // From 0.11 the daemon says so first, before the lock and the configuration.
    let initializing = || {
        logging::info(
            "service",
            "Initializing. For verbose output run with \"-l debug\". Please wait...",
        )
    };
    if era == Era::Modern {
        initializing();
    }
    let _lock = match ExecutionLock::acquire(dir, &ctx.release) {
        Ok(lock) => lock,
        Err(err) => return lock_failure(&ctx.release, dir, &err),
    };
    let cfg = match load_config(&ctx.release, dir) {
        Ok(cfg) => cfg,
        Err(err) => return fail(loading_doing(&ctx.release), &err),
    };
    // `cluster-lab fault crash-at-start`: the real 1.x peer's crash as it starts (a nil RPC
    // client), modelled as its outcome.
    if era == Era::Modern && super::crash::take(dir) {
        return super::crash::crash();
    }
    // Where the real daemon loads the TLS key pair, the stand-in refuses: it never serves
    // plain HTTP where HTTPS was configured.
    if cfg.rest_tls {
        return fail(loading_doing(&ctx.release), &Error::TlsNotModelled);
    }
    let identity = match identity::resolve(&ctx.release, dir, cfg.identity_in_config.as_ref()) {
        Ok(identity) => identity,
        Err(err) => return fail("loading identity", &err),
    };
    if era == Era::Raft010 {
        initializing();
    }
    let options = StartOptions {
        release: &ctx.release,
        dir,
        cfg: &cfg,
        identity: &identity,
        bootstrap: &bootstrap,
    };
    match start(&options) {
        Ok(code) => code,
        Err((doing, err)) => fail(doing, &err),
    }
}

/// `checkErr`'s words for a configuration that does not load: "loading configuration" up to
/// 0.10, "loading configurations" from 0.11 (`daemon.go`).
pub fn loading_doing(release: &Release) -> &'static str {
    match release.era() {
        Era::Raft010 => "loading configuration",
        Era::Modern => "loading configurations",
    }
}

/// Loads `service.json` and runs the checks the real config loader runs on it, the
/// datastore's included (pebble's `format_major_version` bounds).
pub fn load_config(release: &Release, dir: &Path) -> super::error::Result<ServiceConfig> {
    let cfg = ServiceConfig::load(dir).inspect_err(|err| match err {
        // The REST API component logs its unmarshalling failure, then the config manager
        // logs the error it returns.
        Error::ApiConfigUnmarshal { .. } => {
            logging::error("restapi", "restapi: error unmarshaling config");
            logging::error("config", &err.to_string());
        }
        Error::ApiConfigInvalid { .. } => logging::error("config", &err.to_string()),
        _ => {}
    })?;
    if cfg.consensus == ConsensusKind::Crdt {
        // The config manager logs a component's validation error before returning it.
        datastore::check_config(release, &cfg)
            .inspect_err(|err| logging::error("config", &err.to_string()))?;
    }
    Ok(cfg)
}

/// Prints the era's lock failure (≤ 0.10 also logs where the lock file is).
pub fn lock_failure(release: &Release, dir: &Path, err: &Error) -> i32 {
    match release.era() {
        Era::Raft010 => {
            logging::error(
                "service",
                &format!(
                    "If no other ipfs-cluster-service process is running, remove {}",
                    dir.join(super::lock::LOCK_FILE).display()
                ),
            );
            fail("acquiring execution lock", err)
        }
        Era::Modern => fail("obtaining execution lock", err),
    }
}

/// Inputs of a daemon start.
struct StartOptions<'a> {
    release: &'a Release,
    dir: &'a Path,
    cfg: &'a ServiceConfig,
    identity: &'a Identity,
    bootstrap: &'a [String],
}

type Failure = (&'static str, Error);

fn start(opts: &StartOptions<'_>) -> std::result::Result<i32, Failure> {
    let (dir, cfg, release) = (opts.dir, opts.cfg, opts.release);
    if cfg.consensus == ConsensusKind::Crdt {
        return start_crdt(opts);
    }
    let legacy = dir.join("ipfs-cluster-data");
    let raft_dir = dir.join("raft");
    if legacy.exists() && !raft_dir.exists() {
        std::fs::rename(&legacy, &raft_dir)
            .map_err(|e| ("creating consensus component", Error::io(&legacy)(e)))?;
    }
    let mut targets = Vec::new();
    for addr in opts.bootstrap {
        let maddr = Multiaddr::parse(addr).map_err(|e| ("parsing bootstrap multiaddress", e))?;
        if maddr.peer_id.is_none() {
            return Err((
                "parsing bootstrap multiaddress",
                Error::MissingPeerId { addr: addr.clone() },
            ));
        }
        targets.push((addr.clone(), maddr));
    }
    let staging = !targets.is_empty();
    if staging {
        // `--bootstrap` always starts from a clean raft folder, keeping a backup.
        backup::rotate(dir, cfg.backups_rotate).map_err(|e| ("cleaning state", e))?;
        // raft opens its (new, empty) data folder at once.
        std::fs::create_dir_all(&raft_dir)
            .map_err(|e| ("creating consensus component", Error::io(&raft_dir)(e)))?;
    }
    let (state, log_dirty) = load_state(release, (dir, cfg), &opts.identity.id, staging)?;

    let cluster_addr = cfg
        .listen
        .socket_addr()
        .map_err(|e| ("creating cluster", e))?;
    let listener = TcpListener::bind(cluster_addr).map_err(|source| {
        (
            "creating cluster",
            Error::Bind {
                addr: cluster_addr.to_string(),
                source,
            },
        )
    })?;
    let rest_addr = cfg
        .rest_listen
        .socket_addr()
        .map_err(|e| ("creating REST API component", e))?;
    let rest = TcpListener::bind(rest_addr).map_err(|source| {
        (
            "creating REST API component",
            Error::Bind {
                addr: rest_addr.to_string(),
                source,
            },
        )
    })?;
    let shutdown = install_signals(release)?;

    let settings = NodeSettings {
        release: release.clone(),
        peer_id: opts.identity.id.clone(),
        peername: cfg.peername.clone(),
        secret: cfg.secret.clone(),
        cluster_addr: cfg.listen.transport.clone(),
        raft_dir: raft_dir.clone(),
        kind: ConsensusKind::Raft,
        datastore_dir: dir.to_path_buf(),
        metric_ttl: cfg.metric_ttl,
        rebroadcast: cfg.rebroadcast,
        follower: false,
    };
    let node = Node::new(settings, state, staging, log_dirty);
    serve(&node, (listener, rest), cfg);
    if staging {
        let (node, targets) = (node.clone(), targets.clone());
        thread::spawn(move || join(&node, &targets));
    }
    let reason = wait(&node, cfg, &shutdown);
    finish(&node, opts, reason);
    linger(release, reason);
    Ok(0)
}

/// From 0.11 a peer whose consensus did not start in time shuts the cluster down, but the
/// process stays, holding the lock: a signal asks for a shutdown that already happened, so
/// only the third signal ends it (exit 1), as with the real 1.x daemon.
fn linger(release: &Release, reason: Stop) {
    if reason != Stop::TimedOut || release.era() != Era::Modern {
        return;
    }
    loop {
        thread::sleep(POLL * 10);
    }
}

/// Binds the cluster and REST API listeners.
fn bind(cfg: &ServiceConfig) -> std::result::Result<(TcpListener, TcpListener), Failure> {
    let listen = |doing: &'static str, addr: &Multiaddr| {
        let socket = addr.socket_addr().map_err(|e| (doing, e))?;
        TcpListener::bind(socket).map_err(|source| {
            (
                doing,
                Error::Bind {
                    addr: socket.to_string(),
                    source,
                },
            )
        })
    };
    Ok((
        listen("creating cluster", &cfg.listen)?,
        listen("creating REST API component", &cfg.rest_listen)?,
    ))
}

/// A CRDT peer: its datastore, the peers of its peerstore and of `--bootstrap`, ready at once.
fn start_crdt(opts: &StartOptions<'_>) -> std::result::Result<i32, Failure> {
    let (dir, cfg, release) = (opts.dir, opts.cfg, opts.release);
    let mut targets = Vec::new();
    for addr in opts.bootstrap {
        let maddr = Multiaddr::parse(addr).map_err(|e| ("parsing bootstrap multiaddress", e))?;
        targets.push((addr.clone(), maddr));
    }
    let (datastore_dir, mut pinset) =
        datastore::open(release, dir, cfg).map_err(|e| ("creating datastore", e))?;
    dirty::open(release, &datastore_dir, &mut pinset)
        .map_err(|e| ("creating consensus component", e))?;
    let (listener, rest) = bind(cfg)?;
    let shutdown = install_signals(release)?;
    let mut known = peerstore::read(dir);
    for (_, maddr) in &targets {
        if let Some(id) = &maddr.peer_id {
            known.insert(id.clone(), maddr.transport.clone());
        }
    }
    let settings = NodeSettings {
        release: release.clone(),
        peer_id: opts.identity.id.clone(),
        peername: cfg.peername.clone(),
        secret: cfg.secret.clone(),
        cluster_addr: cfg.listen.transport.clone(),
        raft_dir: dir.join("raft"),
        kind: ConsensusKind::Crdt,
        datastore_dir,
        metric_ttl: cfg.metric_ttl,
        rebroadcast: cfg.rebroadcast,
        follower: cfg.follower_mode,
    };
    let node = Node::new_crdt(settings, pinset, known);
    serve(&node, (listener, rest), cfg);
    // The real peer bootstraps while it waits for IPFS: a failed bootstrap is logged before
    // READY.
    if !targets.is_empty() {
        join(&node, &targets);
    }
    let reason = wait(&node, cfg, &shutdown);
    finish(&node, opts, reason);
    Ok(0)
}

/// The lab's `interrupted-merge` fault (see `dirty`): this stop happens while the peer
/// merges CRDT updates.
fn interrupt_merge_if_armed(node: &Arc<Node>, opts: &StartOptions<'_>) {
    let Some(count) = dirty::due_on_stop(opts.release, opts.dir) else {
        return;
    };
    match node.interrupt_merge(count) {
        Ok(left_out) => {
            dirty::log_interrupted(opts.release, &left_out);
            dirty::disarm(opts.dir);
        }
        Err(err) => logging::error("crdt", &format!("could not save the datastore: {err}")),
    }
}

/// Reads the last snapshot and replays `raft.db`; a peer with neither starts a new cluster.
fn load_state(
    release: &Release,
    (dir, cfg): (&Path, &ServiceConfig),
    peer_id: &str,
    staging: bool,
) -> std::result::Result<(ClusterState, bool), Failure> {
    let raft_dir = dir.join("raft");
    let consensus = |e| ("creating consensus component", e);
    let mut state = ClusterState::default();
    let snapshot = Snapshot::latest(&raft_dir).map_err(consensus)?;
    if let Some(snapshot) = &snapshot {
        let (restored, fit) = snapshot.decode(release).map_err(consensus)?;
        if fit == Fit::Outdated {
            logging::error("service", OUTDATED_BANNER);
            return Err(("validating version", Error::OutdatedState));
        }
        state = restored;
    }
    let entries = raftlog::entries(&raft_dir).map_err(consensus)?;
    // Entries extend the state in order; a whole state sent by a leader replaces it even at
    // an index already reached (it replaced entries that were never committed).
    let snapshot_index = state.index;
    for entry in &entries {
        let replaces = matches!(entry.op, Op::Replace { .. }) && entry.index >= snapshot_index;
        if entry.index > state.index || replaces {
            state.apply(entry);
        }
    }
    let fresh = snapshot.is_none() && entries.is_empty();
    if fresh && !staging {
        // A new cluster: this peer plus `init_peerset`, addressed through the peerstore.
        let known = peerstore::read(dir);
        let mut peerset: BTreeMap<String, String> = BTreeMap::new();
        for id in &cfg.init_peerset {
            if let Some(addr) = known.get(id) {
                peerset.insert(id.clone(), addr.clone());
            }
        }
        peerset.insert(peer_id.to_string(), cfg.listen.transport.clone());
        let entry = Entry {
            term: 1,
            index: 1,
            op: Op::Bootstrap { peerset },
        };
        raftlog::append(&raft_dir, &entry).map_err(consensus)?;
        state.apply(&entry);
    }
    Ok((state, (fresh && !staging) || !entries.is_empty()))
}

/// Serves the cluster RPC and the REST API, and says where, as the real peer does.
fn serve(node: &Arc<Node>, (listener, rest): (TcpListener, TcpListener), cfg: &ServiceConfig) {
    spawn_servers(node, listener, rest, cfg.basic_auth.clone());
    logging::info(
        "cluster",
        &format!(
            "IPFS Cluster v{} listening on:\n        {}\n",
            node.release().version,
            node.full_addr(&cfg.listen.transport, node.id())
        ),
    );
}

fn install_signals(
    release: &Release,
) -> std::result::Result<Arc<std::sync::atomic::AtomicBool>, Failure> {
    signals::install(release).map_err(|e| {
        (
            "installing signal handlers",
            Error::io(Path::new("signals"))(e),
        )
    })
}

fn spawn_servers(
    node: &Arc<Node>,
    listener: TcpListener,
    rest: TcpListener,
    credentials: Option<auth::Credentials>,
) {
    let stop = node.stop_flag();
    let rpc_node = node.clone();
    let handler: rpc::Handler = Arc::new(move |from: &str, call: Call| rpc_node.handle(from, call));
    let (creds, rpc_stop) = (node.credentials().clone(), stop.clone());
    thread::spawn(move || rpc::serve(listener, creds, handler, rpc_stop));
    let api_node = node.clone();
    // Basic auth comes first, as the real `authHandler` wraps every route.
    let api_handler: http::Handler = Arc::new(move |req: &http::Request| {
        auth::check(credentials.as_ref(), req).unwrap_or_else(|| api::handle(&api_node, req))
    });
    thread::spawn(move || http::serve(rest, api_handler, stop));
    let ticker = node.clone();
    thread::spawn(move || ticker.run_ticker());
}

/// Asks the bootstrap targets in turn to add this peer (`Cluster.Join`).
fn join(node: &Arc<Node>, targets: &[(String, Multiaddr)]) {
    let transport = node.cluster_addr().to_string();
    for (text, maddr) in targets {
        let call = Call::PeerAdd {
            id: node.id().to_string(),
            addr: transport.clone(),
        };
        match node.call(&maddr.transport, call, Duration::from_secs(15)) {
            Ok(_) => {
                logging::info(
                    "cluster",
                    &format!("{}: joined {text}'s cluster", node.id()),
                );
                return;
            }
            Err(err) => logging::error("cluster", &format!("bootstrap to {text} failed: {err}")),
        }
    }
}

/// Waits for readiness, then for a reason to stop.
fn wait(node: &Arc<Node>, cfg: &ServiceConfig, shutdown: &std::sync::atomic::AtomicBool) -> Stop {
    let started = Instant::now();
    let ready_deadline = started + cfg.wait_for_leader_timeout + READY_GRACE;
    let mut ready = false;
    let mut last_watch = Instant::now();
    loop {
        if shutdown.load(Ordering::SeqCst) {
            return Stop::Signal;
        }
        if !ready {
            if node.has_leader() {
                ready = true;
                logging::info("cluster", "** IPFS Cluster is READY **");
                if notify::supported(node.release()) {
                    if let Err(err) = notify::ready() {
                        logging::error("service", &format!("sd_notify: {err}"));
                    }
                }
                last_watch = Instant::now();
            } else if Instant::now() >= ready_deadline {
                logging::error("cluster", TIMEOUT_TIPS);
                return Stop::TimedOut;
            }
        } else if last_watch.elapsed() >= cfg.peer_watch_interval {
            last_watch = Instant::now();
            if node.is_removed() {
                let line = match node.release().era() {
                    Era::Raft010 => {
                        format!("{}: removed from raft. Initiating shutdown", node.id())
                    }
                    Era::Modern => "peer no longer in peerset. Initiating shutdown".to_string(),
                };
                logging::info("cluster", &line);
                return Stop::Removed;
            }
        }
        thread::sleep(POLL);
    }
}

/// Clean shutdown: leave if configured, snapshot, back up a removed peer's state.
fn finish(node: &Arc<Node>, opts: &StartOptions<'_>, reason: Stop) {
    logging::info(
        "cluster",
        match node.release().era() {
            Era::Raft010 => "shutting down IPFS Cluster",
            Era::Modern => "shutting down Cluster",
        },
    );
    if node.kind() == ConsensusKind::Crdt {
        node.stop_flag().store(true, Ordering::SeqCst);
        interrupt_merge_if_armed(node, opts);
        let others: Vec<String> = node
            .known_peers()
            .iter()
            .map(|(id, addr)| node.full_addr(addr, id))
            .collect();
        if let Err(err) = peerstore::write(opts.dir, &others) {
            logging::error("cluster", &format!("could not save peerstore: {err}"));
        }
        thread::sleep(POLL * 2);
        logging::info("cluster", "Shutdown complete");
        return;
    }
    let mut removed = reason == Stop::Removed;
    if reason == Stop::Signal && opts.cfg.leave_on_shutdown && node.has_leader() {
        match node.commit(Op::RemovePeer {
            id: node.id().to_string(),
        }) {
            Ok(()) => removed = true,
            Err(err) => logging::error("cluster", &format!("leaving cluster: {err}")),
        }
    }
    node.stop_flag().store(true, Ordering::SeqCst);
    if let Err(err) = node.snapshot_if_dirty() {
        logging::error(
            "raft",
            &format!("could not take snapshot on shutdown: {err}"),
        );
    }
    if removed {
        if let Err(err) = backup::rotate(opts.dir, opts.cfg.backups_rotate) {
            logging::error("raft", &format!("could not clean raft state: {err}"));
        }
    }
    let state = node.state();
    let others: Vec<String> = state
        .peerset
        .iter()
        .filter(|(id, _)| *id != node.id())
        .map(|(id, addr)| node.full_addr(addr, id))
        .collect();
    if let Err(err) = peerstore::write(opts.dir, &others) {
        logging::error("cluster", &format!("could not save peerstore: {err}"));
    }
    // Give the server threads a moment to notice the stop flag and close their sockets.
    thread::sleep(POLL * 2);
    logging::info("cluster", "Shutdown complete");
}
