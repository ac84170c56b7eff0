//! Resuming an unfinished run (`apply` or `recover`): refuse what a resume cannot honour,
//! connect as the plan recorded, re-verify the hosts against the journal, and show what is
//! left before asking.

use std::time::{Duration, Instant};

use crate::cli::RunSettings;
use crate::error::Error;
use crate::facts::{HostFacts, ProbeScope};
use crate::inventory::{HostName, Sha256};
use crate::journal::{private_dir, Checkpoint, RunDir, StateDir};
use crate::plan::{
    resume_problems, review_resume, MissingBackup, Plan, ProcedureKind, Reset, ResumeReview,
};
use crate::report;

use super::preflight;
use super::run::{self as run_mod, RunOptions, RunRequest};
use super::state::Unfinished;
use crate::exec::Connected;

/// How long a resume waits for peers that a finished step started and that do not answer yet.
const SETTLE_PATIENCE: Duration = Duration::from_secs(30);

/// A resume, checked and ready to run.
pub struct Ready {
    pub connected: Connected,
    /// The hosts as probed for the review.
    pub facts: Vec<HostFacts>,
    pub checkpoint: Checkpoint,
    /// Finished steps to run again.
    pub resets: Vec<Reset>,
}

/// A resume to run, and what the command knows of it.
pub struct Again<'a> {
    pub state: &'a StateDir,
    pub unfinished: Unfinished,
    /// Options given that only planning uses (`--var`, …): refused.
    pub planning_options: &'a [&'static str],
    pub run: &'a RunSettings,
    pub options: RunOptions<'a>,
    /// The command resuming: `recover` resumes recoveries only, `migrate-consensus`
    /// migrations only, `apply` the upgrades (their final checks differ).
    pub resumer: Resumer,
    /// The final check of the run (the command's).
    pub after: &'a FinalCheck,
}

/// The command that resumes a run of a kind: each has its own final check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumer {
    Apply,
    Recover,
    Migrate,
    Rollback,
}

impl Resumer {
    pub fn of(procedure: ProcedureKind) -> Resumer {
        match procedure {
            ProcedureKind::Recover => Resumer::Recover,
            ProcedureKind::Migrate => Resumer::Migrate,
            ProcedureKind::Rollback => Resumer::Rollback,
            ProcedureKind::Standard | ProcedureKind::Rolling | ProcedureKind::Bootstrap => {
                Resumer::Apply
            }
        }
    }

    fn run_name(self) -> &'static str {
        match self {
            Resumer::Apply => "run",
            Resumer::Recover => "recovery run",
            Resumer::Migrate => "migration run",
            Resumer::Rollback => "rollback run",
        }
    }
}

/// A command's final check of a run: the problems it finds with the cluster as it ends.
pub type FinalCheck = dyn Fn(&RunDir, &Plan, &[HostFacts]) -> Result<Vec<String>, Error>;

/// Resumes an unfinished run: refuses what a resume cannot honour, checks the hosts against
/// the journal, shows what is left, asks, runs.
pub fn run_again(again: Again<'_>) -> Result<(), Error> {
    let Again {
        state,
        mut unfinished,
        planning_options,
        run,
        options,
        resumer,
        after,
    } = again;
    // Connected as the plan recorded, under the command line's SSH options.
    unfinished.plan.reach = unfinished.plan.reach.overridden(&run.ssh);
    let unfinished = &unfinished;
    let plan = &unfinished.plan;
    let (run_id, inventory) = (unfinished.dir.id().to_string(), plan.inventory.clone());
    if Resumer::of(plan.choice.procedure) != resumer {
        return Err(Error::unfinished(plan.choice.procedure, run_id, inventory));
    }
    if !planning_options.is_empty() {
        return Err(Error::ResumeOptions {
            options: planning_options.to_vec(),
            run_id,
        });
    }
    let ready = reconnect_and_review(state, unfinished, run.take_over.as_ref())?;
    preflight::check_room(state, plan, &ready.checkpoint, &ready.facts)?;
    report::print(&report::render_resume(
        plan,
        &ready.checkpoint,
        &ready.resets,
    ));
    let what = resumer.run_name();
    run_mod::confirm(
        run.yes,
        &format!(
            "Resume {what} {} of cluster `{}`?",
            plan.run_id, plan.cluster
        ),
    )?;
    let dir = &unfinished.dir;
    let request = RunRequest {
        state,
        run: dir,
        plan,
        checkpoint: ready.checkpoint,
        options,
        resumed: true,
        resets: ready.resets,
        connected: ready.connected,
        lease: run_mod::Leased::ToTake,
    };
    run_mod::run_plan(request, &|now: &[HostFacts]| after(dir, plan, now))
}

/// Connects to the run's hosts as its plan recorded, and checks that they are as the journal
/// left them: installed versions, peers stopped or running, the backups on the controller.
fn reconnect_and_review(
    state: &StateDir,
    run: &Unfinished,
    take_over: Option<&crate::journal::RunId>,
) -> Result<Ready, Error> {
    let plan = &run.plan;
    let (id, from, to) = (run.dir.id(), plan.choice.from, plan.choice.to);
    report::note(&match plan.choice.procedure {
        crate::plan::ProcedureKind::Recover => format!(
            "resuming recovery run {id} (source {}, {from} → {to})",
            plan.choice.anchor.as_deref().unwrap_or("?")
        ),
        crate::plan::ProcedureKind::Migrate => format!(
            "resuming migration run {id} (raft → crdt on {to}, anchor {})",
            plan.choice.anchor.as_deref().unwrap_or("?")
        ),
        crate::plan::ProcedureKind::Rollback => format!(
            "resuming rollback run {id} ({from} → {to}, undoing run {})",
            plan.choice.undoes.as_ref().map_or("?", |run| run.as_str())
        ),
        procedure => format!("resuming run {id} ({procedure} procedure, {from} → {to})"),
    });
    let (connected, mut facts) = Connected::open_and_probe(&plan.reach, ProbeScope::FULL)?;
    let unreachable: Vec<(HostName, String)> = facts
        .iter()
        .filter_map(|f| Some((f.host.clone(), f.unreachable.clone()?)))
        .collect();
    if !unreachable.is_empty() {
        return Err(Error::Unreachable { hosts: unreachable });
    }
    let missing = missing_backups(&run.dir, &run.checkpoint)?;
    let mut review = review(plan, &run.checkpoint, &facts, &missing);
    let deadline = Instant::now() + SETTLE_PATIENCE;
    while !review.settling.is_empty() && review.problems.is_empty() && Instant::now() < deadline {
        report::note(&format!(
            "waiting for {} to answer (a peer the run started)",
            crate::message::HostNames(&review.settling)
        ));
        std::thread::sleep(Duration::from_secs(2));
        facts = connected
            .runtime()
            .block_on(connected.probe_async(ProbeScope::FULL));
        review = review_resume(plan, &run.checkpoint, &facts, &missing);
        review.problems.extend(version_problems(plan, &facts));
    }
    review.problems.extend(review.settling.iter().map(|host| {
        format!("{host}: the run started its peer, but it does not answer (for {SETTLE_PATIENCE:?}); start it, then resume")
    }));
    if !review.problems.is_empty() {
        return Err(Error::UnsafeResume {
            problems: review.problems,
        });
    }
    let replaceable = super::state::lease_replaceable(state, take_over)?;
    super::plan::check_leases(&facts, Some(&plan.run_id), &replaceable)?;
    let mut checkpoint = run.checkpoint.clone();
    for reset in &review.resets {
        checkpoint.reset(&reset.step, &reset.host);
    }
    Ok(Ready {
        connected,
        facts,
        checkpoint,
        resets: review.resets,
    })
}

fn review(
    plan: &Plan,
    checkpoint: &Checkpoint,
    facts: &[HostFacts],
    missing: &[MissingBackup],
) -> ResumeReview {
    let mut review = review_resume(plan, checkpoint, facts, missing);
    review.problems.extend(version_problems(plan, facts));
    review
}

/// Installed versions: each host's own from the plan, or one the run installs.
fn version_problems(plan: &Plan, now: &[HostFacts]) -> Vec<String> {
    resume_problems(&plan.facts, &plan.versions(), now)
}

/// The state exports the journal says the run saved, that are no longer in its `backups/`
/// as saved (the last record of each file counts: an export taken again on a resume replaces
/// the first). A missing folder is made again (private), so the exports can be taken again.
fn missing_backups(run: &RunDir, checkpoint: &Checkpoint) -> Result<Vec<MissingBackup>, Error> {
    let folder = run.backups_dir();
    if !folder.is_dir() {
        report::note(&format!(
            "the run's backups folder {} is gone; made again",
            folder.display()
        ));
        private_dir(&folder)?;
    }
    let mut saved: Vec<(&HostName, &str, &Sha256)> = Vec::new();
    for (host, file, sha256) in &checkpoint.backups {
        saved.retain(|(h, f, _)| !(*h == host && *f == file));
        saved.push((host, file, sha256));
    }
    let mut missing = Vec::new();
    for (host, file, sha256) in saved {
        let why = match std::fs::read(folder.join(file)) {
            Err(_) => Some("missing"),
            Ok(bytes) => (Sha256::of(&bytes) != *sha256).then_some("changed since it was saved"),
        };
        if let Some(why) = why {
            missing.push(MissingBackup {
                host: host.clone(),
                file: file.to_string(),
                why: why.to_string(),
            });
        }
    }
    Ok(missing)
}
