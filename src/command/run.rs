//! Running a plan, shared by `apply` and `recover`: connect to every host, optionally check the
//! cluster against the plan, run the steps with progress and the journal, take the final gate,
//! print the run's table.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::cli::SshArgs;
use crate::error::{chain, Error};
use crate::exec::{BackupsDir, ExecOptions, Executor, Reporter, RunOutcome};
use crate::facts::{HostFacts, ProbeScope};
use crate::inventory::Inventory;
use crate::inventory::Version;
use crate::journal::{Checkpoint, Event, RunDir, StateDir};
use crate::plan::{resume_problems, Plan, ProcedureKind, PLAN_FORMAT};
use crate::report::{self, PlainProgress, TerminalProgress};

use super::hosts::{self, Connected};

/// A run to start or resume.
pub struct RunRequest<'a> {
    pub inventory: &'a Inventory,
    pub run: &'a RunDir,
    pub plan: &'a Plan,
    pub checkpoint: Checkpoint,
    pub ssh: &'a SshArgs,
    pub retry_in_flight: bool,
    pub resumed: bool,
    /// Sessions opened for planning a moment ago, reused by the run (else it connects).
    pub connected: Option<Connected>,
}

/// Checks fresh facts: before the first step (`Err` stops the run before anything runs), and
/// after the last one (the problems found; none means the run finished).
pub type BeforeCheck<'a> = &'a dyn Fn(&[HostFacts]) -> Result<(), Error>;
pub type AfterCheck<'a> = &'a dyn Fn(&[HostFacts]) -> Result<Vec<String>, Error>;

pub fn run_plan(
    request: RunRequest<'_>,
    before: Option<BeforeCheck<'_>>,
    after: AfterCheck<'_>,
) -> Result<(), Error> {
    let RunRequest {
        inventory,
        run,
        plan,
        checkpoint,
        ssh,
        retry_in_flight,
        resumed,
        connected,
    } = request;
    report::log_to_file(&run.log_path());
    // A resumed run (apply or recover) goes on only on hosts as it left them.
    let resumable = |now: &[HostFacts]| check_resumable(plan, now);
    let before = before.or(resumed.then_some(&resumable as BeforeCheck<'_>));
    // A saved plan or a resumed run is checked against the cluster as it is now, probed as
    // each host connects.
    let (mut connected, now) = match (connected, before.is_some()) {
        (Some(connected), _) => (connected, None),
        (None, true) => {
            let (connected, facts) = Connected::open_and_probe(inventory, ssh, ProbeScope::FULL)?;
            (connected, Some(facts))
        }
        (None, false) => (Connected::open(inventory, ssh)?, None),
    };
    // What the operator runs to go on after a stop.
    let resume = match plan.choice.procedure {
        ProcedureKind::Recover => "cluster-upgrade recover INVENTORY",
        _ => "cluster-upgrade apply",
    };
    let runtime = connected.runtime().handle().clone();
    runtime.block_on(async {
        let sessions = connected
            .sessions()
            .await
            .map_err(|hosts| Error::Unreachable { hosts })?;
        if let Some(before) = before {
            let now = match now {
                Some(facts) => facts,
                None => connected.probe_async(ProbeScope::FULL).await,
            };
            before(&now)?;
        }

        let host_names: Vec<String> = plan.facts.iter().map(|f| f.host.clone()).collect();
        let terminal = std::io::stderr().is_terminal() && !report::verbose();
        let progress = if terminal {
            Progress::Bars(Arc::new(TerminalProgress::new(&host_names)))
        } else {
            Progress::Lines(Arc::new(PlainProgress::new(std::io::stderr())))
        };
        let reporter = progress.reporter();
        let options = ExecOptions {
            concurrency: hosts::concurrency(inventory, ssh),
            retry_in_flight,
        };
        let backups = BackupsDir(run.backups_dir());
        let executor = Executor::new(
            sessions.clone(),
            run.journal()?,
            checkpoint,
            reporter,
            options,
            backups,
        );
        executor
            .record(Event::RunStarted {
                pid: std::process::id(),
                resumed,
            })
            .await?;
        let stop = executor.stop_flag();
        let interrupt = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                report::note("interrupt: stopping after the commands that are running now");
                stop.store(true, Ordering::SeqCst);
            }
        });
        let outcome = executor.run(plan).await?;
        interrupt.abort();
        progress.finish();
        let result = match outcome {
            RunOutcome::Finished => match final_gate(after, &connected).await {
                Ok(problems) if problems.is_empty() => executor
                    .record(Event::RunFinished)
                    .await
                    .map_err(Error::from),
                Ok(problems) => Err(Error::Verification { problems }),
                Err(error) => Err(error),
            },
            RunOutcome::Failed(failures) => Err(Error::StepFailed {
                step: failures[0].step.clone(),
                hosts: failures.iter().map(|f| f.host.clone()).collect(),
                resume,
            }),
            RunOutcome::NeedsOperator { step, host } => {
                Err(Error::NeedsOperator { step, host, resume })
            }
            RunOutcome::Interrupted => Err(Error::Interrupted { resume }),
        };
        if let Err(error) = &result {
            executor
                .record(Event::RunStopped {
                    reason: chain(error),
                })
                .await?;
        }
        connected.close().await;
        report::print(&report::render_run(
            &run.id(),
            plan,
            &Checkpoint::replay(&run.records()?),
        ));
        result
    })
}

/// Spinners on a terminal, plain lines otherwise.
enum Progress {
    Bars(Arc<TerminalProgress>),
    Lines(Arc<PlainProgress>),
}

impl Progress {
    fn reporter(&self) -> Arc<dyn Reporter> {
        match self {
            Progress::Bars(bars) => bars.clone(),
            Progress::Lines(lines) => lines.clone(),
        }
    }

    fn finish(&self) {
        match self {
            Progress::Bars(bars) => bars.finish(),
            Progress::Lines(lines) => lines.finish(),
        }
    }
}

/// How long the final gate keeps probing a cluster that is not healthy yet (a peer still
/// settling after the last step), before it reports the problems.
const FINAL_GATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Probes the cluster and checks it, again every 2 s while a peer is still settling, for a
/// short while.
async fn final_gate(after: AfterCheck<'_>, connected: &Connected) -> Result<Vec<String>, Error> {
    let deadline = std::time::Instant::now() + FINAL_GATE_PATIENCE;
    loop {
        let facts = connected.probe_async(ProbeScope::HEALTH).await;
        let problems = after(&facts)?;
        // Only a peer that is still settling (not answering, or reporting a peer it cannot
        // reach yet) is worth waiting for; a wrong version or pinset will not fix itself.
        let settling = facts
            .iter()
            .any(|h| !h.is_reachable() || !h.running || !h.peer_errors.is_empty());
        if problems.is_empty() || !settling || std::time::Instant::now() >= deadline {
            return Ok(problems);
        }
        tracing::debug!(?problems, "final gate not passed yet");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// The last run that has a journal and did not finish, with its plan and checkpoint.
pub fn unfinished_run(state: &StateDir) -> Result<Option<(RunDir, Plan, Checkpoint)>, Error> {
    let Some(run) = state
        .runs()?
        .into_iter()
        .rev()
        .find(|run| run.journal_path().exists())
    else {
        return Ok(None);
    };
    let checkpoint = Checkpoint::replay(&run.records()?);
    if checkpoint.finished {
        return Ok(None);
    }
    let plan = read_plan(&run.plan_path())?;
    Ok(Some((run, plan, checkpoint)))
}

pub fn read_plan(path: &Path) -> Result<Plan, Error> {
    let bad = |message: String| Error::PlanFile {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if plan.format != PLAN_FORMAT {
        return Err(bad(format!(
            "plan format {} (this cluster-upgrade reads {PLAN_FORMAT})",
            plan.format
        )));
    }
    Ok(plan)
}

/// Asks `question` on the terminal unless `yes`; without a terminal to ask on, refuses.
pub fn confirm(yes: bool, question: &str) -> Result<(), Error> {
    use std::io::{BufRead, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::NoConfirmation);
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Error::Declined)
    }
}

/// Before a run goes on from its journal: the hosts must still be as the run left them
/// (installed versions: each host's own from the plan, or one the run installs).
fn check_resumable(plan: &Plan, now: &[HostFacts]) -> Result<(), Error> {
    let mut versions: Vec<Version> = vec![plan.choice.from, plan.choice.to];
    versions.extend(plan.choice.via.iter().copied());
    let problems = resume_problems(&plan.facts, &versions, now);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::UnsafeResume { problems })
    }
}
