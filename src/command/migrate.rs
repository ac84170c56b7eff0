//! `cluster-upgrade migrate-consensus INVENTORY --to crdt`: check that the cluster can move
//! from raft to CRDT, plan it (`playbooks/migrate-crdt.yaml`), then run it like `apply` (same
//! run directory, journal, executor and resume), and check at the end that every peer runs CRDT
//! and lists the planned pinset.

use crate::cli::MigrateSettings;
use crate::error::Error;
use crate::exec::Connected;
use crate::facts::{HostFacts, ProbeScope};
use crate::journal::RunDir;
use crate::migrate::{
    build_migration_plan, check_migration, migration_problems, MigrateError, MigrationInputs,
    TargetConsensus,
};
use crate::plan::{Plan, Reach};
use crate::report;

use super::begin::{begin, resume_unfinished, run_fresh, Fresh};
use super::{inputs, plan as plan_cmd, resume};

pub fn migrate(settings: &MigrateSettings) -> Result<(), Error> {
    let TargetConsensus::Crdt = settings.to;
    // The inputs first: an invalid inventory or playbook is refused before any host is touched.
    let (inventory, playbook) = inputs::load_migrate(&settings.input)?;
    let mut begun = begin(&settings.run, &settings.input.inventory, &inventory)?;
    if let Some(resumed) = resume_unfinished(
        &mut begun,
        &settings.run,
        &settings.planning_options,
        (resume::Resumer::Migrate, &verify),
    ) {
        return resumed;
    }

    // The run reuses these connections: one per host for the whole migration.
    let reach = Reach::of(&inventory);
    let (connected, facts) = Connected::open_and_probe(&reach, ProbeScope::FULL)?;
    let version = check_migration(&facts)
        .map_err(MigrateError::from)
        .inspect_err(|_| report::print(&report::render_facts(&facts)))?;
    let origin = plan_cmd::origin(begun.cluster_id, reach);
    let plan = build_migration_plan(MigrationInputs {
        inventory: &inventory,
        playbook: &playbook,
        facts: &facts,
        version,
        origin: &origin,
    })
    .map_err(MigrateError::from)?;
    let question = format!(
        "Stop every peer of `{}` and move it from raft to CRDT (the state is imported on {})?",
        plan.cluster,
        plan.choice.anchor.as_deref().unwrap_or("?"),
    );
    let fresh = Fresh {
        state: &begun.state,
        plan: &plan,
        facts: &facts,
        connected,
        settings: &settings.run,
        question,
        abandon_first: None,
    };
    run_fresh(fresh, &|now: &[HostFacts]| {
        Ok(migration_problems(&plan, now))
    })
}

/// The final check: every peer healthy with CRDT, listing the planned pinset.
fn verify(_run: &RunDir, plan: &Plan, now: &[HostFacts]) -> Result<Vec<String>, Error> {
    Ok(migration_problems(plan, now))
}
