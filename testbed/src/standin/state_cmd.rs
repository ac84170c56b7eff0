//! `ipfs-cluster-service state …`: version, upgrade (≤ 0.10), export, import and cleanup of
//! the raft state of a stopped peer.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::args::{self, switch, value, Flag};
use super::backup;
use super::config::{ConsensusKind, ServiceConfig};
use super::daemon::{load_config, loading_doing, lock_failure};
use super::datastore::{self, CrdtState};
use super::error::{Error, Result};
use super::identity;
use super::lock::ExecutionLock;
use super::logging;
use super::pin::Shape;
use super::service::{confirm, fail, no_help_topic, usage_error, Context};
use super::snapshot::{self, Fit, Snapshot};
use super::state::ClusterState;
use crate::release::{Era, Release};

/// Result of a migration attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    Migrated,
    UpToDate,
}

/// Migrates the last snapshot to `release`'s format in one step: the old raft folder becomes
/// `raft.old.0` and a fresh `raft/` holds only the migrated snapshot.
pub fn migrate(release: &Release, dir: &Path, backups_rotate: usize) -> Result<Migration> {
    let raft_dir = dir.join("raft");
    let snap = Snapshot::latest(&raft_dir)?.ok_or(Error::NoSnapshot)?;
    let (state, fit) = match snap.decode(release) {
        Ok(decoded) => decoded,
        Err(Error::NewerState { .. }) => return Err(Error::MigrationNotSupported),
        Err(err) => return Err(err),
    };
    if fit == Fit::Current {
        return Ok(Migration::UpToDate);
    }
    backup::rotate(dir, backups_rotate)?;
    snapshot::write(&raft_dir, &state, release)?;
    logging::info(
        "service",
        &format!(
            "state migrated to format {}",
            release.state_format().unwrap_or(0)
        ),
    );
    Ok(Migration::Migrated)
}

/// Runs a `state` subcommand; returns the exit code.
pub fn run(ctx: &Context, args: &[String]) -> i32 {
    let Some(sub) = args.first() else {
        print!("{}", help(&ctx.release));
        return 0;
    };
    let modern = ctx.release.era() == Era::Modern;
    match sub.as_str() {
        "upgrade" | "version" if modern => no_help_topic(sub),
        "version" => {
            println!("{}", ctx.release.state_format().unwrap_or(0));
            0
        }
        "upgrade" | "export" | "import" | "cleanup" => with_lock(ctx, sub, &args[1..]),
        "help" | "h" => {
            print!("{}", help(&ctx.release));
            0
        }
        other => no_help_topic(other),
    }
}

fn help(release: &Release) -> String {
    let extra = match release.era() {
        Era::Raft010 => "   version  display the shared state format version\n   upgrade  upgrade the IPFS Cluster state to the current version\n",
        Era::Modern => "",
    };
    format!(
        "NAME:\n   ipfs-cluster-service state - Manages the peer's consensus state.\n\nCOMMANDS:\n{extra}   \
         export   save the state to a JSON file\n   import   load the state from a file produced by 'export'\n   \
         cleanup  remove the current state of the peer\n"
    )
}

const EXPORT_FLAGS: &[Flag] = &[value(&["file", "f"])];
const FORCE_FLAGS: &[Flag] = &[switch(&["force", "f"])];

fn with_lock(ctx: &Context, sub: &str, args: &[String]) -> i32 {
    let doing = match sub {
        "upgrade" => "upgrading state",
        "export" => "exporting state",
        "import" => "importing state",
        _ => "cleaning state",
    };
    let flags = if sub == "export" {
        EXPORT_FLAGS
    } else {
        FORCE_FLAGS
    };
    let parsed = match args::parse(args, flags, false) {
        Ok(p) => p,
        Err(err) => return usage_error(&ctx.release, &err),
    };
    let cfg = match load_config(&ctx.release, &ctx.config_dir) {
        Ok(cfg) => cfg,
        Err(err) => return fail(loading_doing(&ctx.release), &err),
    };
    let _lock = match ExecutionLock::acquire(&ctx.config_dir, &ctx.release) {
        Ok(lock) => lock,
        Err(err) => return lock_failure(&ctx.release, &ctx.config_dir, &err),
    };
    let force = ctx.force || parsed.has("force");
    if cfg.consensus == ConsensusKind::Crdt {
        return finish_crdt(ctx, &cfg, sub, (&parsed, force));
    }
    let result = match sub {
        "upgrade" => upgrade(ctx, &cfg),
        "export" => export(ctx, parsed.value("file")),
        "import" => import(
            ctx,
            &cfg,
            parsed.positionals.first().map(String::as_str),
            force,
        ),
        _ => cleanup(ctx, &cfg, force),
    };
    match result {
        Ok(()) => {
            done(&ctx.release, sub);
            0
        }
        Err(Error::Aborted) => 0,
        Err(err) => fail(doing, &err),
    }
}

/// The log line of a successful `state` command (≥ 0.11).
fn done(release: &Release, sub: &str) {
    if release.era() != Era::Modern {
        return;
    }
    let line = match sub {
        "export" => "state successfully exported",
        "import" => "state successfully imported.  Make sure all peers have consistent states",
        "cleanup" => "data correctly cleaned up",
        _ => return,
    };
    logging::info("service", line);
}

/// The prompts of `state import` and `state cleanup`, per era.
fn question(release: &Release, sub: &str) -> &'static str {
    match (release.era(), sub) {
        (Era::Modern, "import") => "The pinset (state) of this peer will be replaced. Continue?",
        (Era::Modern, _) => "The peer state will be removed.  Existing pins may be lost. Continue?",
        (Era::Raft010, "import") => "The new state will overwrite the current state. Continue?",
        (Era::Raft010, _) => {
            "The peer's state will be removed from the load path. Existing pins may be lost. Continue?"
        }
    }
}

/// `state export|import|cleanup` of a CRDT peer: its datastore folder, opened as the daemon
/// opens it (a pebble store the release cannot open fails the command too).
fn finish_crdt(
    ctx: &Context,
    cfg: &ServiceConfig,
    sub: &str,
    (parsed, force): (&args::Parsed, bool),
) -> i32 {
    let open = || datastore::open(&ctx.release, &ctx.config_dir, cfg);
    let result = match sub {
        "export" => open().and_then(|(_, state)| {
            let pins: Vec<_> = state.pins().into_values().collect();
            write_export(&ctx.release, &pins, parsed.value("file"))
        }),
        "import" => {
            let file = parsed.positionals.first().map(String::as_str);
            crdt_import(ctx, cfg, file, force)
        }
        "cleanup" => {
            if !force && !confirm(question(&ctx.release, sub)) {
                return 0;
            }
            open().and_then(|(folder, _)| CrdtState::clean(&folder))
        }
        _ => return fail("upgrading state", &Error::MigrationNotSupported),
    };
    match result {
        Ok(()) => {
            done(&ctx.release, sub);
            0
        }
        Err(Error::Aborted) => 0,
        Err(err) => fail(
            match sub {
                "export" => "exporting state",
                "import" => "importing state",
                _ => "cleaning state",
            },
            &err,
        ),
    }
}

/// Replaces the CRDT pinset with the file's pins, written by this peer.
fn crdt_import(ctx: &Context, cfg: &ServiceConfig, file: Option<&str>, force: bool) -> Result<()> {
    if !force && !confirm(question(&ctx.release, "import")) {
        return Err(Error::Aborted);
    }
    let text = read_import(file)?;
    let pins = Shape::of(&ctx.release).decode_list(&text)?;
    let id = identity::resolve(
        &ctx.release,
        &ctx.config_dir,
        cfg.identity_in_config.as_ref(),
    )?
    .id;
    let (folder, _) = datastore::open(&ctx.release, &ctx.config_dir, cfg)?;
    CrdtState::clean(&folder)?;
    let mut state = CrdtState::default();
    for pin in pins {
        let cid = pin.cid.clone();
        state.write(&id, &cid, Some(pin));
    }
    state.save(&folder)
}

/// The export text to a file or stdout.
fn write_export(release: &Release, pins: &[super::pin::Pin], file: Option<&str>) -> Result<()> {
    let text = Shape::of(release).encode_list(pins);
    match file {
        Some(path) => fs::write(path, text).map_err(Error::io(path)),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// The file to import, or stdin.
fn read_import(file: Option<&str>) -> Result<String> {
    match file {
        Some(path) => fs::read_to_string(path).map_err(Error::io(path)),
        None => {
            eprintln!("reading from stdin, Ctrl-D to finish");
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(Error::io("stdin"))?;
            Ok(text)
        }
    }
}

fn upgrade(ctx: &Context, cfg: &ServiceConfig) -> Result<()> {
    match migrate(&ctx.release, &ctx.config_dir, cfg.backups_rotate)? {
        Migration::Migrated => Ok(()),
        Migration::UpToDate => {
            logging::warn("service", "Skipping migration of up-to-date state");
            Ok(())
        }
    }
}

fn export(ctx: &Context, file: Option<&str>) -> Result<()> {
    let Some(snap) = Snapshot::latest(&ctx.config_dir.join("raft"))? else {
        // 1.x exports an empty state; older releases refuse.
        return if ctx.release.era() == Era::Modern {
            Ok(())
        } else {
            Err(Error::NoSnapshot)
        };
    };
    let (state, fit) = snap.decode(&ctx.release)?;
    if fit == Fit::Outdated {
        return Err(Error::OutdatedState);
    }
    write_export(&ctx.release, &state.pin_list(), file)
}

fn import(ctx: &Context, cfg: &ServiceConfig, file: Option<&str>, force: bool) -> Result<()> {
    if !force && !confirm(question(&ctx.release, "import")) {
        return Err(Error::Aborted);
    }
    let text = read_import(file)?;
    let pins = Shape::of(&ctx.release).decode_list(&text)?;
    let raft_dir = ctx.config_dir.join("raft");
    let mut state = match Snapshot::latest(&raft_dir)? {
        // The imported pinset keeps the raft position and peerset of the last snapshot.
        Some(snap) => snap
            .decode(&ctx.release)
            .map(|(s, _)| s)
            .unwrap_or_else(|_| ClusterState {
                term: snap.meta.term,
                index: snap.meta.index,
                ..Default::default()
            }),
        None => {
            let id = identity::resolve(
                &ctx.release,
                &ctx.config_dir,
                cfg.identity_in_config.as_ref(),
            )?
            .id;
            let peerset = BTreeMap::from([(id, cfg.listen.transport.clone())]);
            ClusterState {
                peerset,
                term: 1,
                index: 2,
                ..Default::default()
            }
        }
    };
    state.pins = pins.into_iter().map(|p| (p.cid.clone(), p)).collect();
    backup::rotate(&ctx.config_dir, cfg.backups_rotate)?;
    snapshot::write(&raft_dir, &state, &ctx.release)?;
    if ctx.release.era() == Era::Raft010 {
        logging::info(
            "service",
            &format!("state imported: {} pins", state.pins.len()),
        );
    }
    Ok(())
}

fn cleanup(ctx: &Context, cfg: &ServiceConfig, force: bool) -> Result<()> {
    if !force && !confirm(question(&ctx.release, "cleanup")) {
        return Err(Error::Aborted);
    }
    backup::rotate(&ctx.config_dir, cfg.backups_rotate)?;
    Ok(())
}
