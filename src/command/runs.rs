//! `cluster-upgrade runs`: the runs of a state directory, and `runs abandon RUN_ID`.

use std::fmt::Write;

use crate::cli::{AbandonSettings, PruneSettings, RunsSettings, StateSettings};
use crate::error::Error;
use crate::exec::Connected;
use crate::facts::ProbeScope;
use crate::inventory::HostName;
use crate::inventory::Inventory;
use crate::journal::{Checkpoint, Event, HostStepState, Record, RunDir, StateDir};
use crate::plan::Reach;
use crate::plan::{ClusterId, Plan};
use crate::procedure::PeerState;
use crate::prune::{plan_prune, RunFiles, PRUNED_MARKER};
use crate::report::{self, RunLine};

use super::{plan as plan_cmd, plan_file, run, state};

/// The state directory of `place`, and the cluster to keep to when an inventory is named.
fn place(place: &StateSettings) -> Result<(StateDir, Option<ClusterId>), Error> {
    let state = StateDir::resolve(place.state_dir.as_deref(), place.inventory.as_deref());
    let cluster = match &place.inventory {
        Some(path) => Some(plan_cmd::cluster_id(&Inventory::load(path, &[])?)?),
        None => None,
    };
    Ok((state, cluster))
}

/// `cluster-upgrade runs`: every run of the state directory (of the inventory's cluster).
pub fn list(settings: &RunsSettings) -> Result<(), Error> {
    let (state, cluster) = place(&settings.place)?;
    let lines: Vec<RunLine> = state::runs(&state)?
        .into_iter()
        .filter(|run| {
            cluster
                .as_ref()
                .is_none_or(|c| c.key == run.summary.cluster_id.key)
        })
        .map(|run| RunLine {
            id: run.dir.id().to_string(),
            cluster: format!(
                "{} ({})",
                run.summary.cluster_id.name,
                run.summary.cluster_id.inventory.display()
            ),
            procedure: match &run.summary.choice.undoes {
                Some(undone) => format!("rollback of {undone}"),
                None => run.summary.choice.procedure.to_string(),
            },
            versions: format!("{} → {}", run.summary.choice.from, run.summary.choice.to),
            state: run.state().to_string(),
            started: plan_cmd::time_text(run.started_unix),
        })
        .collect();
    if settings.json {
        report::json(&report::runs_json(&lines));
    } else {
        report::print(&report::render_runs(&lines));
    }
    Ok(())
}

/// `cluster-upgrade runs abandon RUN_ID`.
pub fn abandon(args: &AbandonSettings) -> Result<(), Error> {
    let (state, _) = place(&args.place)?;
    state.prepare()?;
    let _lock = state.lock()?;
    let run = state
        .runs()?
        .into_iter()
        .find(|run| run.id() == &args.run_id)
        .filter(|run| run.journal_path().exists())
        .ok_or_else(|| Error::UnknownRun {
            run_id: args.run_id.to_string(),
            dir: state.root.join("runs"),
        })?;
    run.check_private()?;
    let checkpoint = Checkpoint::replay(&run.records()?);
    if !checkpoint.is_unfinished() {
        return Err(Error::NotAbandonable {
            run_id: args.run_id.to_string(),
            state: if checkpoint.finished {
                "finished"
            } else {
                "abandoned"
            },
        });
    }
    let plan = plan_file::read_plan(&run.plan_path())?;
    let where_hosts_are = hosts_state(&plan, &checkpoint);
    report::print(&where_hosts_are);
    run::confirm(
        args.yes,
        &format!(
            "Abandon run {} of cluster `{}`? It will never be resumed.",
            args.run_id, plan.cluster
        ),
    )?;
    journal_abandoned(&run)?;
    report::note(&format!(
        "run {} abandoned; its journal and backups stay in {}. A new plan of the cluster can be made now (check it first: `cluster-upgrade plan {}`).",
        args.run_id,
        run.path.display(),
        plan.inventory.display()
    ));
    Ok(())
}

/// Journals that `run` is abandoned, by this user on this machine.
pub fn journal_abandoned(run: &RunDir) -> Result<(), Error> {
    let by = format!(
        "{}@{} (pid {})",
        std::env::var("USER").unwrap_or_else(|_| "?".into()),
        rustix::system::uname().nodename().to_string_lossy(),
        std::process::id()
    );
    run.journal()?
        .append(&Record::now(Event::RunAbandoned { by }))?;
    Ok(())
}

/// Where each host may stand: the last step done there, what was in flight or failed, and
/// what the finished steps left (peer stopped or running, release installed).
fn hosts_state(plan: &Plan, checkpoint: &Checkpoint) -> String {
    let mut out = format!(
        "Run {} of cluster `{}` ({} procedure, {} → {}); where its hosts may be:\n",
        plan.run_id, plan.cluster, plan.choice.procedure, plan.choice.from, plan.choice.to
    );
    let steps = plan.steps_run(&checkpoint.on_demand);
    for host in &plan.facts {
        let name = &host.host;
        let mut last_done = None;
        let mut unsure = Vec::new();
        let mut peer = None;
        let mut installed = None;
        for step in &steps {
            let Some(rendered) = step.hosts.iter().find(|h| h.host == *name) else {
                continue;
            };
            match checkpoint.state(&step.id, name) {
                HostStepState::Finished { .. } => {
                    last_done = Some(step.id.as_str());
                    if let Some(established) = rendered.establishes {
                        peer = established.peer.or(peer);
                        installed = established.installed.or(installed);
                    }
                }
                HostStepState::InFlight { .. } => {
                    unsure.push(format!("`{}` was in flight", step.id))
                }
                HostStepState::Failed { .. } => unsure.push(format!("`{}` failed", step.id)),
                HostStepState::Pending => {}
            }
        }
        let mut line = match last_done {
            Some(step) => format!("  {name}: done up to `{step}`"),
            None => format!("  {name}: nothing done"),
        };
        if let Some(state) = peer {
            let _ = write!(
                line,
                "; peer {}",
                match state {
                    PeerState::Stopped => "stopped",
                    PeerState::Running => "started",
                }
            );
        }
        if let Some(version) = installed {
            let _ = write!(line, "; {version} installed");
        }
        if !unsure.is_empty() {
            let _ = write!(line, "; {} (its effect is unknown)", unsure.join(", "));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("The previous binaries are kept beside bin_dir (*.prev, and .cluster-upgrade/backup/<run id>/); the state exports in the run's backups/ folder.\n");
    out
}

/// `cluster-upgrade runs prune INVENTORY --keep N`: shows what goes, asks, then removes it on
/// every host (all reachable first: nothing is removed when one is not) and on the controller.
pub fn prune(settings: &PruneSettings) -> Result<(), Error> {
    let inventory = Inventory::load_with(&settings.input.inventory, &settings.input.overrides)?;
    inventory.ssh.check_known_hosts()?;
    let state = StateDir::resolve(
        settings.state_dir.as_deref(),
        Some(&settings.input.inventory),
    );
    state.prepare()?;
    run::confirmation_possible(settings.yes)?;
    let _lock = state.lock()?;
    let cluster = plan_cmd::cluster_id(&inventory)?;
    let mut runs = Vec::new();
    for info in state::runs(&state)?
        .into_iter()
        .filter(|run| run.summary.cluster_id.key == cluster.key)
    {
        let plan = plan_file::read_plan(&info.dir.plan_path())?;
        runs.push(RunFiles {
            id: info.dir.id().clone(),
            unfinished: info.checkpoint.is_unfinished(),
            versions: plan.versions(),
            pruned: info.dir.path.join(PRUNED_MARKER).exists(),
            staged: !plan.choice.via.is_empty(),
        });
    }
    let hosts: Vec<(HostName, String)> = inventory
        .hosts
        .iter()
        .map(|host| (host.name.clone(), host.vars.bin_dir().to_string()))
        .collect();
    let planned = plan_prune(&runs, settings.keep, &hosts, &state.root.join("runs"));
    report::print(&report::render_prune(&planned));
    if planned.is_empty() {
        return Ok(());
    }
    run::confirm(
        settings.yes,
        &format!(
            "Remove the files of {} run(s) of cluster `{}`?",
            planned.pruned.len(),
            inventory.cluster.name
        ),
    )?;
    let reach = Reach::of(&inventory);
    let (connected, facts) = Connected::open_and_probe(&reach, ProbeScope::HEALTH)?;
    let unreachable: Vec<(HostName, String)> = facts
        .iter()
        .filter_map(|f| Some((f.host.clone(), f.unreachable.clone()?)))
        .collect();
    if !unreachable.is_empty() {
        return Err(Error::Unreachable { hosts: unreachable });
    }
    let mut commands = Vec::new();
    for (host, paths) in &planned.hosts {
        let words: Vec<&str> = ["rm", "-rf", "--"]
            .into_iter()
            .chain(paths.iter().map(String::as_str))
            .collect();
        let command = crate::transport::quote::join(&words).map_err(|e| Error::PruneFailed {
            hosts: vec![(host.clone(), e.to_string())],
        })?;
        commands.push((host.clone(), command));
    }
    let failed = connected.run_each(commands, std::time::Duration::from_secs(300));
    connected.runtime().block_on(connected.close());
    if !failed.is_empty() {
        return Err(Error::PruneFailed { hosts: failed });
    }
    for run in &planned.pruned {
        let marker = state.run(run).path.join(PRUNED_MARKER);
        crate::journal::write_private(&marker, b"")?;
    }
    for dir in &planned.controller {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(crate::journal::JournalError::Io {
                    path: dir.clone(),
                    source,
                }
                .into())
            }
        }
    }
    report::note(&format!(
        "pruned {} run(s) on {} host(s) and on the controller",
        planned.pruned.len(),
        planned.hosts.len()
    ));
    Ok(())
}
