//! What `recover` and `migrate-consensus` share around their planning: the state directory
//! locked and the cluster's unfinished run found before any host is probed, then, once they
//! planned, the checks, the plan shown, the question and the run.

use std::path::Path;

use crate::cli::RunSettings;
use crate::error::Error;
use crate::exec::Connected;
use crate::facts::HostFacts;
use crate::inventory::Inventory;
use crate::journal::{Checkpoint, RunDir, RunLock, StateDir};
use crate::plan::{ClusterId, Plan};
use crate::report;

use super::{plan as plan_cmd, preflight, resume, run, state};

/// A command's state directory, locked, and what it holds of the cluster.
pub struct Begun {
    pub state: StateDir,
    /// Held until the command ends.
    pub _lock: RunLock,
    pub cluster_id: ClusterId,
    /// The cluster's unfinished run, to resume (others are noted, not resumed).
    pub unfinished: Option<state::Unfinished>,
}

/// Prepares and locks the state directory beside `inventory_path` (or `--state-dir`), and
/// finds the cluster's unfinished run.
pub fn begin(
    settings: &RunSettings,
    inventory_path: &Path,
    inventory: &Inventory,
) -> Result<Begun, Error> {
    let state = StateDir::resolve(settings.state_dir.as_deref(), Some(inventory_path));
    for note in state.prepare()? {
        report::note(&note);
    }
    run::confirmation_possible(settings.yes)?;
    let lock = state.lock()?;
    report::log_to_file(&state.root.join("apply.log"));
    let cluster_id = plan_cmd::cluster_id(inventory)?;
    let (unfinished, others) = state::unfinished_of(&state, Some(&cluster_id))?;
    for other in &others {
        report::note(&format!(
            "not resumed: run {} is unfinished too",
            other.describe()
        ));
    }
    Ok(Begun {
        state,
        _lock: lock,
        cluster_id,
        unfinished,
    })
}

/// Resumes the cluster's unfinished run with the final check of the command `resumer` names,
/// when there is one; `None`: the command plans a fresh run.
pub fn resume_unfinished(
    begun: &mut Begun,
    run: &RunSettings,
    planning_options: &[&'static str],
    (resumer, after): (resume::Resumer, &resume::FinalCheck),
) -> Option<Result<(), Error>> {
    let unfinished = begun.unfinished.take()?;
    Some(resume::run_again(resume::Again {
        state: &begun.state,
        unfinished,
        planning_options,
        run,
        options: options(run),
        resumer,
        after,
    }))
}

/// The command line's part in a run.
pub fn options(settings: &RunSettings) -> run::RunOptions<'_> {
    run::RunOptions {
        retry_in_flight: settings.retry_in_flight,
        take_over: settings.take_over.as_ref(),
    }
}

/// A fresh plan to check, show, confirm and run over the hosts it was planned from.
pub struct Fresh<'a> {
    pub state: &'a StateDir,
    pub plan: &'a Plan,
    pub facts: &'a [HostFacts],
    pub connected: Connected,
    pub settings: &'a RunSettings,
    /// The confirmation question.
    pub question: String,
    /// An unfinished run to abandon (journalled) once the operator confirmed, before this run
    /// starts; its lease on the hosts may then be replaced.
    pub abandon_first: Option<&'a RunDir>,
}

/// Checks the hosts' leases and the room for backups, shows the plan, asks, runs it.
pub fn run_fresh(fresh: Fresh<'_>, after: run::AfterCheck<'_>) -> Result<(), Error> {
    let Fresh {
        state,
        plan,
        facts,
        connected,
        settings,
        question,
        abandon_first,
    } = fresh;
    let mut replaceable = state::lease_replaceable(state, settings.take_over.as_ref())?;
    replaceable.extend(abandon_first.map(|run| run.id().to_string()));
    plan_cmd::check_leases(facts, None, &replaceable)?;
    preflight::check_room(state, plan, &Checkpoint::default(), facts)?;
    report::print(&report::render_plan(plan));
    run::confirm(settings.yes, &question)?;
    if let Some(run) = abandon_first {
        super::runs::journal_abandoned(run)?;
        report::note(&format!(
            "run {} abandoned; its journal and backups stay in {}",
            run.id(),
            run.path.display()
        ));
    }
    let run_dir = state.run(&plan.run_id);
    let request = run::RunRequest {
        state,
        run: &run_dir,
        plan,
        checkpoint: Checkpoint::default(),
        options: options(settings),
        resumed: false,
        resets: Vec::new(),
        connected,
        lease: run::Leased::ToTake,
    };
    run::run_plan(request, after)
}
