//! The command line of `ipfs-cluster-service`: global flags, subcommand dispatch, `init`,
//! `version`, and the urfave/cli behaviours an orchestrator can trip over (help and exit 1
//! without a subcommand, "No help topic" and exit 3 for unknown ones, usage errors exit 0).

use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::args::{self, switch, value, Flag};
use super::backup;
use super::config::{self, ConsensusKind, Datastore, RawService, IDENTITY_JSON, SERVICE_JSON};
use super::daemon;
use super::error::{Error, Result};
use super::identity::{self, Identity};
use super::lock::ExecutionLock;
use super::logging;
use super::state_cmd;
use crate::release::{Backend, Era, Release};

const GLOBAL_FLAGS: &[Flag] = &[
    value(&["config", "c"]),
    switch(&["force", "f"]),
    switch(&["debug", "d"]),
    value(&["loglevel", "l"]),
    switch(&["version", "v"]),
    switch(&["help", "h"]),
];

/// What every subcommand gets from the global level.
#[derive(Debug, Clone)]
pub struct Context {
    pub release: Release,
    pub config_dir: PathBuf,
    /// The global `-f`.
    pub force: bool,
}

/// Runs `ipfs-cluster-service` with `args`; returns the exit code.
pub fn run(release: &Release, args: Vec<String>) -> i32 {
    let global = match args::parse(&args, GLOBAL_FLAGS, true) {
        Ok(parsed) => parsed,
        Err(err) => return usage_error(release, &err),
    };
    if global.has("version") {
        println!("ipfs-cluster-service version {}", release.version);
        return 0;
    }
    if global.has("debug")
        || global
            .value("loglevel")
            .is_some_and(|l| l.contains("debug"))
    {
        super::logging::enable_debug();
    }
    let ctx = Context {
        release: release.clone(),
        config_dir: config::config_dir(global.value("config")),
        force: global.has("force"),
    };
    let mut positionals = global.positionals.clone();
    if positionals.is_empty() {
        print!("{}", help(release));
        return if global.has("help") { 0 } else { 1 };
    }
    let command = positionals.remove(0);
    match command.as_str() {
        "init" => init(&ctx, &positionals),
        "daemon" => daemon::run(&ctx, &positionals),
        "state" => state_cmd::run(&ctx, &positionals),
        "version" => {
            println!("{}", release.version);
            0
        }
        "help" | "h" if positionals.is_empty() => {
            print!("{}", help(release));
            0
        }
        "help" | "h" => no_help_topic(&positionals[0]),
        other => no_help_topic(other),
    }
}

/// urfave's fallback for an unknown command: the help action fails with exit code 3.
pub fn no_help_topic(topic: &str) -> i32 {
    eprintln!("No help topic for '{topic}'");
    3
}

/// urfave prints usage errors with the help and `main` ignores the error: exit 0 (reference §2.1).
pub fn usage_error(release: &Release, err: &args::UsageError) -> i32 {
    eprintln!("Incorrect Usage: {err}\n");
    eprint!("{}", help(release));
    0
}

/// `checkErr`: `error <doing>: <err>` on stderr, exit 1.
pub fn fail(doing: &str, err: &Error) -> i32 {
    eprintln!("error {doing}: {err}");
    1
}

fn help(release: &Release) -> String {
    let (bootstrap, state) = match release.era() {
        Era::Raft010 => (
            "--bootstrap value, -j value  join a cluster providing an existing peers multiaddress(es) (repeat the flag)",
            "version, upgrade, export, import, cleanup",
        ),
        Era::Modern => (
            "--bootstrap value, -j value  join a cluster providing a comma-separated list of existing peers multiaddress(es)",
            "export, import, cleanup",
        ),
    };
    format!(
        "NAME:\n   ipfs-cluster-service - IPFS Cluster peer (stand-in)\n\n\
         USAGE:\n   ipfs-cluster-service [global options] command [command options] [arguments...]\n\n\
         VERSION:\n   {}\n\n\
         COMMANDS:\n   init     Creates a configuration and generates an identity\n   \
         daemon   Runs the IPFS Cluster peer (default)\n     --upgrade, -u  run state migrations before starting\n     {bootstrap}\n   \
         state    Manages the peer's consensus state ({state})\n   \
         version  Prints the ipfs-cluster version\n   help, h  Shows a list of commands or help for one command\n\n\
         GLOBAL OPTIONS:\n   --config value, -c value    path to the configuration and data folder [$IPFS_CLUSTER_PATH]\n   \
         --force, -f                 forcefully proceed with some actions\n   --debug, -d                 enable full debug logging\n   \
         --loglevel value, -l value  set the loglevel\n   --help, -h                  show help\n   --version, -v               print the version\n",
        release.version
    )
}

/// Asks a yes/no question on stdin. Without an answer (no terminal, EOF) it is "no".
pub fn confirm(question: &str) -> bool {
    print!("{question} [y/n]: ");
    let _ = std::io::stdout().flush();
    // Piped answers are honoured; a closed or empty stdin (no terminal, nothing fed) is "no".
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
        println!();
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

const INIT_FLAGS_OLD: &[Flag] = &[switch(&["custom-secret", "s"])];
/// 0.11 – 0.13: no `--datastore` (CRDT peers use badger).
const INIT_FLAGS_CRDT: &[Flag] = &[
    value(&["consensus"]),
    switch(&["force", "f"]),
    switch(&["custom-secret", "s"]),
    value(&["peers"]),
    switch(&["randomports"]),
];
/// From 0.14: `--datastore`.
const INIT_FLAGS_DATASTORE: &[Flag] = &[
    value(&["consensus"]),
    value(&["datastore"]),
    switch(&["force", "f"]),
    switch(&["custom-secret", "s"]),
    value(&["peers"]),
    switch(&["randomports"]),
];

/// What `init` writes besides the identity.
struct InitChoice<'a> {
    force: bool,
    peers: Option<&'a str>,
    consensus: ConsensusKind,
    datastore: Datastore,
}

fn init(ctx: &Context, args: &[String]) -> i32 {
    let release = &ctx.release;
    let flags = match release.era() {
        Era::Raft010 => INIT_FLAGS_OLD,
        Era::Modern if release.datastores().is_empty() => INIT_FLAGS_CRDT,
        Era::Modern => INIT_FLAGS_DATASTORE,
    };
    let parsed = match args::parse(args, flags, false) {
        Ok(p) => p,
        Err(err) => return usage_error(release, &err),
    };
    let consensus = match release.era() {
        Era::Raft010 => ConsensusKind::Raft,
        // From 0.11 crdt is the default.
        Era::Modern => match parsed.value("consensus").unwrap_or("crdt") {
            "raft" => ConsensusKind::Raft,
            "crdt" => ConsensusKind::Crdt,
            _ => {
                return fail(
                    "choosing consensus",
                    &Error::FlagChoice("flag value must be set to 'raft' or 'crdt'"),
                )
            }
        },
    };
    // The flag is checked whatever the consensus; only CRDT peers get the section.
    let backend = match parsed.value("datastore") {
        None => release.default_datastore(),
        Some(value) => match Backend::parse(value).filter(|b| release.datastores().contains(b)) {
            Some(backend) => backend,
            None => {
                return fail(
                    "choosing datastore",
                    &Error::FlagChoice(release.datastore_refusal()),
                )
            }
        },
    };
    let choice = InitChoice {
        force: ctx.force || parsed.has("force"),
        peers: parsed.value("peers"),
        consensus,
        datastore: Datastore::fresh(release, backend),
    };
    match write_config(ctx, &choice) {
        Ok(()) => 0,
        Err(Error::Aborted) => 0,
        Err(err) => fail("initializing configuration", &err),
    }
}

/// Where `init` reports what it wrote: stdout up to 0.10, stderr (with the config loader's
/// log lines) from 0.11.
fn said(release: &Release, line: &str) {
    match release.era() {
        Era::Raft010 => println!("{line}"),
        Era::Modern => eprintln!("{line}"),
    }
}

fn write_config(ctx: &Context, choice: &InitChoice<'_>) -> Result<()> {
    let (force, peers) = (choice.force, choice.peers);
    let dir = &ctx.config_dir;
    let service_json = dir.join(SERVICE_JSON);
    let _lock;
    if service_json.exists() {
        _lock = ExecutionLock::acquire(dir, &ctx.release)?;
        let question = format!("{} already exists. Overwrite?", service_json.display());
        if !force && !confirm(&question) {
            return Err(Error::Aborted);
        }
        // 0.7–0.10 also cleaned the raft state when re-initialising (removed in 0.11).
        if ctx.release.era() == Era::Raft010 {
            let keep = config::ServiceConfig::load(dir)
                .map(|c| c.backups_rotate)
                .unwrap_or(6);
            backup::rotate(dir, keep)?;
        }
    }
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let identity = Identity::generate(&ctx.release);
    let secret = identity::random_secret();
    let mut raw = match ctx.release.era() {
        Era::Raft010 => RawService::fresh(secret, Some(&identity)),
        Era::Modern => RawService::fresh_modern(secret, choice.consensus, &choice.datastore),
    };
    raw.apply_env();
    let modern = ctx.release.era() == Era::Modern;
    if modern {
        logging::info("config", "Saving configuration");
    }
    raw.save(&service_json)?;
    let written = format!("configuration written to {}", service_json.display());
    said(&ctx.release, &if modern { written + "." } else { written });
    if modern {
        // ≥ 0.11 keeps an existing identity: re-initialising the config keeps the peer ID.
        let identity_json = dir.join(IDENTITY_JSON);
        if !identity_json.exists() {
            logging::info("config", "Saving identity");
            identity.save(&identity_json)?;
            said(
                &ctx.release,
                &format!("new identity written to {}", identity_json.display()),
            );
        }
        let peerstore = write_peerstore(dir, peers)?;
        if peers.is_none_or(str::is_empty) {
            said(
                &ctx.release,
                &format!("new empty peerstore written to {}.", peerstore.display()),
            );
        }
    }
    Ok(())
}

fn write_peerstore(dir: &Path, peers: Option<&str>) -> Result<PathBuf> {
    let path = dir.join("peerstore");
    let lines: String = peers
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}\n"))
        .collect();
    fs::write(&path, lines).map_err(Error::io(&path))?;
    Ok(path)
}
