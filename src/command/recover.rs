//! `cluster-upgrade recover`: plan the disaster recovery from the state that survives, then run
//! it like `apply` (same run directory, journal, executor and resume), and check at the end
//! that every peer lists exactly the exported pinset.

use crate::cli::RecoverSettings;
use crate::error::Error;
use crate::exec::Connected;
use crate::facts::{HostFacts, ProbeScope};
use crate::journal::{Checkpoint, RunDir, StateDir};
use crate::plan::{Plan, Reach};
use crate::recover::{
    build_recovery_plan, check_export_fits, choose_source, kept_export, recovery_problems,
    ExportFile, RecoverError, RecoveryInputs,
};
use crate::report::{self};

use super::{inputs, plan as plan_cmd, preflight, resume, run, state};

pub fn recover(settings: &RecoverSettings) -> Result<(), Error> {
    // The inputs first: an invalid inventory, playbook or export is refused before anything.
    let (inventory, playbook) = inputs::load_recover(&settings.input)?;
    let export = (settings.from_export.as_deref())
        .map(ExportFile::read)
        .transpose()?;
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
            resumer: resume::Resumer::Recover,
            after: &verify,
        });
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
    let origin = plan_cmd::origin(cluster_id, reach);
    let plan = build_recovery_plan(RecoveryInputs {
        inventory: &inventory,
        playbook: &playbook,
        facts: &facts,
        choice: &choice,
        export: export.as_ref(),
        origin: &origin,
    })
    .map_err(RecoverError::from)?;
    let replaceable = state::lease_replaceable(&state, settings.run.take_over.as_ref())?;
    plan_cmd::check_leases(&facts, None, &replaceable)?;
    preflight::check_room(&state, &plan, &Checkpoint::default(), &facts)?;
    report::print(&report::render_plan(&plan));
    run::confirm(
        settings.run.yes,
        &format!(
            "Recover the cluster from {} and bootstrap {} hosts to it?",
            plan.choice.anchor.as_deref().unwrap_or("?"),
            plan.facts.len() - 1
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
    run::run_plan(request, &|now: &[HostFacts]| verify(&run_dir, &plan, now))
}

/// The final check: every peer healthy on the target, listing the export the source imported.
fn verify(run: &RunDir, plan: &Plan, now: &[HostFacts]) -> Result<Vec<String>, Error> {
    let source = (plan.choice.anchor.clone()).unwrap_or_else(|| plan.facts[0].host.clone());
    let expected = kept_export(&run.backups_dir(), &source)?;
    Ok(recovery_problems(plan, now, &expected))
}
