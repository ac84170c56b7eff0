//! `cluster-upgrade recover`: plan the disaster recovery from the state that survives, then run
//! it like `apply` (same run directory, journal, executor and resume), and check at the end
//! that every peer lists exactly the exported pinset.

use crate::cli::RecoverSettings;
use crate::error::Error;
use crate::exec::Connected;
use crate::facts::{HostFacts, ProbeScope};
use crate::journal::RunDir;
use crate::plan::{Plan, Reach};
use crate::recover::{
    build_recovery_plan, check_export_fits, choose_source, kept_export, recovery_problems,
    ExportFile, RecoverError, RecoveryInputs,
};
use crate::report::{self};

use super::begin::{begin, resume_unfinished, run_fresh, Fresh};
use super::{inputs, plan as plan_cmd, resume};

pub fn recover(settings: &RecoverSettings) -> Result<(), Error> {
    // The inputs first: an invalid inventory, playbook or export is refused before anything.
    let (inventory, playbook) = inputs::load_recover(&settings.input)?;
    let export = (settings.from_export.as_deref())
        .map(ExportFile::read)
        .transpose()?;
    let mut begun = begin(&settings.run, &settings.input.inventory, &inventory)?;
    if let Some(resumed) = resume_unfinished(
        &mut begun,
        &settings.run,
        &settings.planning_options,
        (resume::Resumer::Recover, &verify),
    ) {
        return resumed;
    }

    // The run reuses these connections: one per host for the whole recovery.
    let reach = Reach::of(&inventory);
    let (connected, facts) = Connected::open_and_probe(&reach, ProbeScope::FULL)?;
    let choice = choose_source(
        &facts,
        inventory.cluster.target_version,
        export.as_ref().map(|e| &e.path),
    )
    .map_err(RecoverError::from)
    .inspect_err(|_| report::print(&report::render_facts(&facts)))?;
    if let Some(export) = &export {
        check_export_fits(export, &choice)?;
    }
    let origin = plan_cmd::origin(begun.cluster_id, reach);
    let plan = build_recovery_plan(RecoveryInputs {
        inventory: &inventory,
        playbook: &playbook,
        facts: &facts,
        choice: &choice,
        export: export.as_ref(),
        origin: &origin,
    })
    .map_err(RecoverError::from)?;
    let question = format!(
        "Recover the cluster from {} and bootstrap {} hosts to it?",
        plan.choice.anchor.as_deref().unwrap_or("?"),
        plan.facts.len() - 1
    );
    let run_dir = begun.state.run(&plan.run_id);
    let fresh = Fresh {
        state: &begun.state,
        plan: &plan,
        facts: &facts,
        connected,
        settings: &settings.run,
        question,
        abandon_first: None,
    };
    run_fresh(fresh, &|now: &[HostFacts]| verify(&run_dir, &plan, now))
}

/// The final check: every peer healthy on the target, listing the export the source imported.
fn verify(run: &RunDir, plan: &Plan, now: &[HostFacts]) -> Result<Vec<String>, Error> {
    let source = (plan.choice.anchor.clone()).unwrap_or_else(|| plan.facts[0].host.clone());
    let expected = kept_export(&run.backups_dir(), &source)?;
    Ok(recovery_problems(plan, now, &expected))
}
