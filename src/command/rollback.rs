//! `cluster-upgrade rollback INVENTORY [RUN_ID]`: choose the run to undo (the cluster's newest
//! by default), read its plan and journal, probe, plan the way back
//! (`playbooks/rollback.yaml`), then run it like `apply` (same run directory, journal,
//! executor and resume), and check at the end that every peer runs the previous release with
//! no planned pin lost.

use crate::cli::RollbackSettings;
use crate::error::Error;
use crate::exec::Connected;
use crate::facts::{HostFacts, ProbeScope};
use std::collections::BTreeMap;

use crate::inventory::{HostName, Inventory, ReleaseSums};
use crate::journal::{RunDir, RunId, StateDir};
use crate::plan::{ClusterId, Plan, ProcedureKind, Reach};
use crate::procedure::RunContext;
use crate::report;
use crate::rollback::{
    build_rollback_plan, check_backups, check_rollback, pick_run, rollback_problems, PastRun,
    PinLoss, RollbackChoice, RollbackError, RollbackInputs, RollbackRefusal, RollbackWay,
    StateExport, Undone,
};

use super::begin::{begin, resume_unfinished, run_fresh, Fresh};
use super::plan_file::read_plan;
use super::{inputs, plan as plan_cmd, resume, state};

pub fn rollback(settings: &RollbackSettings) -> Result<(), Error> {
    // The inputs first: an invalid inventory or playbook is refused before any host is touched.
    let (inventory, playbook) = inputs::load_rollback(&settings.input)?;
    let mut begun = begin(&settings.run, &settings.input.inventory, &inventory)?;
    // An unfinished upgrade is what to roll back (abandoned once the operator confirmed); an
    // unfinished rollback is resumed.
    let unfinished_upgrade = match &begun.unfinished {
        Some(run) if run.plan.choice.procedure != ProcedureKind::Rollback => {
            begun.unfinished.take()
        }
        _ => None,
    };
    if let Some(resumed) = resume_unfinished(
        &mut begun,
        &settings.run,
        &settings.planning_options,
        (resume::Resumer::Rollback, &verify),
    ) {
        return resumed;
    }
    let (undone_id, undone_plan, checkpoint) = match &unfinished_upgrade {
        Some(run) => {
            let id = run.dir.id().clone();
            if settings.run_id.as_ref().is_some_and(|asked| *asked != id) {
                return Err(Error::unfinished(
                    run.plan.choice.procedure,
                    id.to_string(),
                    run.plan.inventory.clone(),
                ));
            }
            // Checked as what it will be: abandoned, with what its journal says it did.
            let mut checkpoint = run.checkpoint.clone();
            checkpoint.abandoned = true;
            (id, run.plan.clone(), checkpoint)
        }
        None => {
            let id = chosen_run(&begun.state, &begun.cluster_id, settings.run_id.as_ref())?;
            let dir = begun.state.run(&id);
            dir.check_private()?;
            if dir.path.join(crate::prune::PRUNED_MARKER).exists() {
                return Err(RollbackError::from(RollbackRefusal::Pruned { run: id }).into());
            }
            let plan = read_plan(&dir.plan_path())?;
            let checkpoint = crate::journal::Checkpoint::replay(&dir.records()?);
            (id, plan, checkpoint)
        }
    };

    // The run reuses these connections: one per host for the whole rollback.
    let reach = Reach::of(&inventory);
    let (connected, facts) = Connected::open_and_probe(&reach, ProbeScope::FULL)?;
    let undone = Undone {
        run: &undone_id,
        plan: &undone_plan,
        checkpoint: &checkpoint,
    };
    let pin_loss = if settings.allow_pin_loss {
        PinLoss::Allowed
    } else {
        PinLoss::Refused
    };
    let choice = check_rollback(undone, &facts, pin_loss)
        .map_err(RollbackError::from)
        .inspect_err(|_| report::print(&report::render_facts(&facts)))?;
    let undone_backups = begun.state.run(&undone_id).backups_dir();
    if let Some(export) = choice.way.export() {
        check_export(&undone_backups, &undone_id, export)?;
    }
    let (backup_gone, backup_sums) = read_backups(&connected, &inventory, &choice);
    let previous = inventory.with_target(choice.to);
    check_backups(
        &choice,
        &backup_gone,
        previous.is_some(),
        &inventory.cluster.releases.describe(),
    )
    .map_err(RollbackError::from)?;
    let origin = plan_cmd::origin(begun.cluster_id, reach);
    let plan = build_rollback_plan(RollbackInputs {
        inventory: &inventory,
        playbook: &playbook,
        facts: &facts,
        choice: &choice,
        backup_gone: &backup_gone,
        backup_sums: &backup_sums,
        undone_backups: &undone_backups,
        previous: previous.as_ref(),
        origin: &origin,
    })
    .map_err(RollbackError::from)?;
    let question = match &choice.way {
        RollbackWay::OneAtATime => format!(
            "Roll back run {undone_id}: take {} back from {} to {}, one peer at a time?",
            crate::message::HostNames(&choice.touched),
            choice.from,
            choice.to,
        ),
        RollbackWay::RestoreExport(StateExport { anchor, .. }) => format!(
            "Roll back run {undone_id}: stop every peer of `{}`, clean every peer's state and bring back {} with the state {anchor} exported before the upgrade?",
            plan.cluster, choice.to,
        ),
        RollbackWay::RebuildRaft(StateExport { anchor, .. }) => format!(
            "Roll back run {undone_id}: stop every peer of `{}`, clean every peer's raft state and rebuild the cluster on {} around the state {anchor} exported before the upgrade?",
            plan.cluster, choice.to,
        ),
        RollbackWay::RestoreRaft { .. } => format!(
            "Roll back run {undone_id}: stop every peer of `{}` and bring back {} with the raft state from before the upgrade?",
            plan.cluster, choice.to,
        ),
    };
    let question = match &unfinished_upgrade {
        Some(_) => format!(
            "Run {undone_id} is unfinished: abandon it (journalled) and roll back what it did. {question}"
        ),
        None => question,
    };
    let fresh = Fresh {
        state: &begun.state,
        plan: &plan,
        facts: &facts,
        connected,
        settings: &settings.run,
        question,
        abandon_first: unfinished_upgrade.as_ref().map(|run| &run.dir),
    };
    run_fresh(fresh, &|now: &[HostFacts]| {
        Ok(rollback_problems(&plan, now))
    })
}

/// The undone run's backup folder on each touched host (not run by docker, which keeps no
/// binaries), looked at read-only over the run's connections: the hosts where it lacks a
/// binary or cannot be looked at ("gone"), and the SHA-256 sums its `keep-previous` step
/// recorded (`SHA256SUMS`) where there are any. A sums file that cannot be read counts as gone:
/// the release source, checked by its own sums, stands in for it.
fn read_backups(
    connected: &Connected,
    inventory: &Inventory,
    choice: &RollbackChoice,
) -> (Vec<HostName>, BTreeMap<HostName, ReleaseSums>) {
    let commands: Vec<(HostName, String)> = inventory
        .hosts
        .iter()
        .filter(|host| choice.touched.contains(&host.name))
        .filter(|host| host.vars.str("service_manager") != Some("docker"))
        .filter_map(|host| {
            let dir = RunContext::new(&choice.backup_run, host.vars.bin_dir()).remote_backup_dir;
            let path = |file: &str| format!("{dir}/{file}");
            let test =
                |file: &str| crate::transport::quote::join(&["test", "-f", &path(file)]).ok();
            let sums = path("SHA256SUMS");
            let read = crate::transport::quote::join(&["cat", "--", &sums]).ok()?;
            let exists = crate::transport::quote::join(&["test", "-e", &sums]).ok()?;
            Some((
                host.name.clone(),
                format!(
                    "{} && {} && if {exists}; then {read}; fi",
                    test("ipfs-cluster-service")?,
                    test("ipfs-cluster-ctl")?
                ),
            ))
        })
        .collect();
    let mut gone = Vec::new();
    let mut sums = BTreeMap::new();
    for (host, result) in connected.read_each(commands, std::time::Duration::from_secs(60)) {
        match result {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => match ReleaseSums::from_sha256sums(&text) {
                Ok(read) => {
                    sums.insert(host, read);
                }
                Err(_) => gone.push(host),
            },
            Err(_) => gone.push(host),
        }
    }
    gone.sort_by_key(|name| inventory.hosts.iter().position(|h| &h.name == name));
    (gone, sums)
}

/// Refuses, before anything is planned, when the state export a `RestoreExport` rollback
/// imports is gone from the undone run's `backups/` or differs from the digest its journal
/// recorded.
fn check_export(backups: &std::path::Path, run: &RunId, export: &StateExport) -> Result<(), Error> {
    let StateExport { file, sha256, .. } = export;
    let refused = |why: String| -> Error {
        RollbackError::from(RollbackRefusal::ExportGone {
            run: run.clone(),
            file: file.to_string(),
            why,
        })
        .into()
    };
    let found = crate::inventory::Sha256::of_file(&backups.join(file))
        .map_err(|error| refused(format!("unreadable ({error})")))?;
    if &found != sha256 {
        return Err(refused(format!(
            "changed (SHA-256 {found}, the journal recorded {sha256})"
        )));
    }
    Ok(())
}

/// The run to undo: the one asked for, or the cluster's newest (see `rollback::pick_run`).
fn chosen_run(
    state: &StateDir,
    cluster: &ClusterId,
    asked: Option<&RunId>,
) -> Result<RunId, Error> {
    let runs: Vec<PastRun> = state::runs(state)?
        .into_iter()
        .filter(|run| run.summary.cluster_id.key == cluster.key)
        .map(|run| PastRun {
            id: run.dir.id().clone(),
            procedure: run.summary.choice.procedure,
            undoes: run.summary.choice.undoes.clone(),
            finished: run.checkpoint.finished,
        })
        .collect();
    Ok(pick_run(&runs, asked).map_err(RollbackError::from)?)
}

/// The final check: every peer healthy on the previous release, no planned pin lost.
fn verify(_run: &RunDir, plan: &Plan, now: &[HostFacts]) -> Result<Vec<String>, Error> {
    Ok(rollback_problems(plan, now))
}
