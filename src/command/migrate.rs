//! `cluster-upgrade migrate-consensus INVENTORY --to crdt`: check that the cluster can move
//! from raft to CRDT, plan it (`playbooks/migrate-crdt.yaml`), then run it like `apply` (same
//! run directory, journal, executor and resume), and check at the end that every peer runs CRDT
//! and lists the planned pinset.

use crate::cli::MigrateSettings;
use crate::error::Error;
use crate::exec::Connected;
use crate::facts::{HostFacts, ProbeScope};
use crate::journal::{Checkpoint, RunDir, StateDir};
use crate::migrate::{
    build_migration_plan, check_migration, migration_problems, MigrateError, MigrationInputs,
    TargetConsensus,
};
use crate::plan::{Plan, Reach};
use crate::report;

use super::{inputs, plan as plan_cmd, preflight, resume, run, state};

pub fn migrate(settings: &MigrateSettings) -> Result<(), Error> {
    let TargetConsensus::Crdt = settings.to;
    // The inputs first: an invalid inventory or playbook is refused before any host is touched.
    let (inventory, playbook) = inputs::load_migrate(&settings.input)?;
    let state = StateDir::resolve(
        settings.run.state_dir.as_deref(),
        Some(&settings.input.inventory),
    );
    for note in state.prepare()? {
        report::note(&note);
    }
    run::confirmation_possible(settings.run.yes)?;
    let _lock = state.lock()?;
    report::log_to_file(&state.root.join("apply.log"));

    let cluster_id = plan_cmd::cluster_id(&inventory)?;
    let (unfinished, others) = state::unfinished_of(&state, Some(&cluster_id))?;
    for other in &others {
        report::note(&format!(
            "not resumed: run {} is unfinished too",
            other.describe()
        ));
    }
    let options = run::RunOptions {
        retry_in_flight: settings.run.retry_in_flight,
        take_over: settings.run.take_over.as_ref(),
    };
    if let Some(unfinished) = unfinished {
        return resume::run_again(resume::Again {
            state: &state,
            unfinished,
            planning_options: &settings.planning_options,
            run: &settings.run,
            options,
            resumer: resume::Resumer::Migrate,
            after: &verify,
        });
    }

    // The run reuses these connections: one per host for the whole migration.
    let reach = Reach::of(&inventory);
    let (connected, facts) = Connected::open_and_probe(&reach, ProbeScope::FULL)?;
    let version = check_migration(&facts)
        .map_err(MigrateError::from)
        .inspect_err(|_| report::print(&report::render_facts(&facts)))?;
    let origin = plan_cmd::origin(cluster_id, reach);
    let plan = build_migration_plan(MigrationInputs {
        inventory: &inventory,
        playbook: &playbook,
        facts: &facts,
        version,
        origin: &origin,
    })
    .map_err(MigrateError::from)?;
    let replaceable = state::lease_replaceable(&state, settings.run.take_over.as_ref())?;
    plan_cmd::check_leases(&facts, None, &replaceable)?;
    preflight::check_room(&state, &plan, &Checkpoint::default(), &facts)?;
    report::print(&report::render_plan(&plan));
    run::confirm(
        settings.run.yes,
        &format!(
            "Stop every peer of `{}` and move it from raft to CRDT (the state is imported on {})?",
            plan.cluster,
            plan.choice.anchor.as_deref().unwrap_or("?"),
        ),
    )?;
    let run_dir = state.run(&plan.run_id);
    let request = run::RunRequest {
        state: &state,
        run: &run_dir,
        plan: &plan,
        checkpoint: Checkpoint::default(),
        options,
        resumed: false,
        resets: Vec::new(),
        connected,
    };
    run::run_plan(request, &|now: &[HostFacts]| {
        Ok(migration_problems(&plan, now))
    })
}

/// The final check: every peer healthy with CRDT, listing the planned pinset.
fn verify(_run: &RunDir, plan: &Plan, now: &[HostFacts]) -> Result<Vec<String>, Error> {
    Ok(migration_problems(plan, now))
}
