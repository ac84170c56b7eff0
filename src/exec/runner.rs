//! Runs a plan step by step: a parallel step on all its hosts at once (bounded), a serial step
//! one host after another; the run stops after a step that failed anywhere.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::events::{Reporter, StepEvent, StepHeader};
use super::host_step::{check_passes, run_step, HostFailure, SavedBackup, Sessions};
use crate::inventory::HostName;
use crate::journal::{
    Checkpoint, Event, GroupJournal, HostStepState, JournalError, JournalWriter, Record,
};
use crate::plan::{Plan, PlannedStep};
use crate::procedure::{Mode, OnResume, RenderedStep, StepId};
use crate::transport::Session;

/// How the executor behaves.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Hosts worked on at once within a parallel step.
    pub concurrency: usize,
    /// Treat steps whose playbook says `on_resume: ask` as `check` (the operator looked).
    pub retry_in_flight: bool,
}

/// Where state exports (steps with `backup`) are saved on the controller.
#[derive(Debug, Clone)]
pub struct BackupsDir(pub std::path::PathBuf);

/// A step that failed on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: StepId,
    pub host: HostName,
    pub error: String,
    pub stderr_tail: String,
}

/// Asked right before a step that takes quorum away (`takes_quorum`) starts: the problems it
/// returns (a peer that died since the plan was made…) stop the run before the step, with the
/// cluster still up.
pub type QuorumGate =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<String>> + Send>> + Send + Sync>;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Finished,
    Failed(Vec<StepFailure>),
    /// The cluster is no longer as the plan saw it, right before a step that takes quorum away:
    /// nothing of that step ran.
    ClusterChanged {
        step: StepId,
        problems: Vec<String>,
    },
    /// A step was in flight when the last run died and its playbook says to ask.
    NeedsOperator {
        step: StepId,
        host: HostName,
    },
    Interrupted,
}

/// What a run writes on the controller: its journal, the checkpoint read from it, and the folder
/// its backups are copied to.
pub struct RunRecords {
    pub journal: JournalWriter,
    pub checkpoint: Checkpoint,
    pub backups: BackupsDir,
}

/// Runs plans over open sessions, journalling as it goes.
pub struct Executor<S: Session + 'static> {
    sessions: Arc<Sessions<S>>,
    journal: Arc<GroupJournal>,
    checkpoint: Arc<Checkpoint>,
    reporter: Arc<dyn Reporter>,
    options: ExecOptions,
    backups: Arc<BackupsDir>,
    stop: Arc<AtomicBool>,
    quorum_gate: Option<QuorumGate>,
}

enum HostResult {
    Done,
    Failed(StepFailure),
    Ask,
}

impl<S: Session + 'static> Executor<S> {
    pub fn new(
        sessions: Sessions<S>,
        records: RunRecords,
        reporter: Arc<dyn Reporter>,
        options: ExecOptions,
    ) -> Executor<S> {
        let RunRecords {
            journal,
            checkpoint,
            backups,
        } = records;
        Executor {
            sessions: Arc::new(sessions),
            journal: Arc::new(GroupJournal::new(journal)),
            checkpoint: Arc::new(checkpoint),
            reporter,
            options,
            backups: Arc::new(backups),
            stop: Arc::new(AtomicBool::new(false)),
            quorum_gate: None,
        }
    }

    /// Checks the cluster with `gate` before every step that takes quorum away and has not
    /// started on any host yet.
    pub fn with_quorum_gate(mut self, gate: QuorumGate) -> Executor<S> {
        self.quorum_gate = Some(gate);
        self
    }

    /// Set it to stop before the next step or serial host (in-flight commands finish).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Appends a record durably.
    pub async fn record(&self, event: Event) -> Result<(), JournalError> {
        self.journal.append(Record::now(event)).await
    }

    /// Runs every step of `plan` that the journal does not list as done: the regular steps,
    /// then the on-demand steps of the hosts the journal says were picked for them.
    pub async fn run(&self, plan: &Plan) -> Result<RunOutcome, JournalError> {
        match self.run_steps(&plan.steps).await? {
            RunOutcome::Finished => {
                let picked = self.checkpoint.on_demand.clone();
                self.run_steps(&plan.on_demand_for(&picked)).await
            }
            stopped => Ok(stopped),
        }
    }

    /// Journals that `hosts` were picked for the plan's on-demand steps (and why), then runs
    /// those steps on them, one host after another.
    pub async fn run_on_demand(
        &self,
        plan: &Plan,
        hosts: Vec<HostName>,
        why: String,
    ) -> Result<RunOutcome, JournalError> {
        let steps = plan.on_demand_for(&hosts);
        self.record(Event::OnDemandPicked { hosts, why }).await?;
        self.run_steps(&steps).await
    }

    /// Runs `steps` in order, each on its hosts, skipping what the journal lists as done.
    async fn run_steps(&self, steps: &[PlannedStep]) -> Result<RunOutcome, JournalError> {
        let total = steps.len();
        for (index, step) in steps.iter().enumerate() {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(RunOutcome::Interrupted);
            }
            if let Some(problems) = self.quorum_problems(step).await {
                return Ok(RunOutcome::ClusterChanged {
                    step: step.id.clone(),
                    problems,
                });
            }
            self.reporter.step(StepHeader {
                index: index + 1,
                total,
                id: &step.id,
                name: &step.name,
            });
            let results = match step.mode {
                Mode::Parallel => self.run_parallel(step).await?,
                // A rolling step was expanded by the planner into one step per host.
                Mode::Serial | Mode::Rolling => self.run_serial(step).await?,
            };
            let mut failures = Vec::new();
            for result in results {
                match result {
                    HostResult::Done => {}
                    HostResult::Failed(failure) => failures.push(failure),
                    HostResult::Ask => {
                        let host = step
                            .hosts
                            .iter()
                            .find(|h| {
                                matches!(
                                    self.checkpoint.state(&step.id, &h.host),
                                    HostStepState::InFlight { .. }
                                )
                            })
                            .map_or_else(|| step.hosts[0].host.clone(), |h| h.host.clone());
                        return Ok(RunOutcome::NeedsOperator {
                            step: step.id.clone(),
                            host,
                        });
                    }
                }
            }
            if !failures.is_empty() {
                // Report in host order, not in the order the hosts happened to finish.
                let position = |host: &HostName| step.hosts.iter().position(|h| h.host == *host);
                failures.sort_by_key(|f| position(&f.host));
                return Ok(RunOutcome::Failed(failures));
            }
            if self.stop.load(Ordering::SeqCst) && index + 1 < total {
                return Ok(RunOutcome::Interrupted);
            }
        }
        Ok(RunOutcome::Finished)
    }

    /// The gate's problems before `step`, when it takes quorum away and nothing of it ran yet
    /// (a resumed step already took quorum away: there is nothing left to protect).
    async fn quorum_problems(&self, step: &PlannedStep) -> Option<Vec<String>> {
        let gate = self.quorum_gate.as_ref().filter(|_| step.takes_quorum)?;
        let untouched = step
            .hosts
            .iter()
            .all(|host| self.checkpoint.state(&step.id, &host.host) == HostStepState::Pending);
        if !untouched {
            return None;
        }
        let problems = gate().await;
        (!problems.is_empty()).then_some(problems)
    }

    async fn run_parallel(&self, step: &PlannedStep) -> Result<Vec<HostResult>, JournalError> {
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for host_step in &step.hosts {
            let task = self.host_task(step, host_step);
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                task.await
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            results.push(joined.expect("host task panicked")?);
        }
        Ok(results)
    }

    async fn run_serial(&self, step: &PlannedStep) -> Result<Vec<HostResult>, JournalError> {
        let mut results = Vec::new();
        for host_step in &step.hosts {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let result = self.host_task(step, host_step).await?;
            let stop = !matches!(result, HostResult::Done);
            results.push(result);
            if stop {
                break;
            }
        }
        Ok(results)
    }

    /// The work of one step on one host, as a `'static` future.
    fn host_task(
        &self,
        step: &PlannedStep,
        host_step: &RenderedStep,
    ) -> impl std::future::Future<Output = Result<HostResult, JournalError>> + Send + 'static {
        let on_resume = match step.on_resume {
            OnResume::Ask if self.options.retry_in_flight => OnResume::Check,
            other => other,
        };
        let decision = resume_decision(
            self.checkpoint.state(&step.id, &host_step.host),
            on_resume,
            host_step.check.is_some(),
        );
        let task = HostTask {
            sessions: Arc::clone(&self.sessions),
            journal: Arc::clone(&self.journal),
            reporter: Arc::clone(&self.reporter),
            backups: Arc::clone(&self.backups),
            step: host_step.clone(),
        };
        async move { task.run(decision).await }
    }
}

/// What to do with one step on one host, from the journal's state of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Finished before: not run again.
    AlreadyDone,
    /// In flight when the last run died, and its playbook says to ask the operator.
    Ask,
    /// Run it as attempt `attempt`; first its `check`, which may show it done.
    Run { attempt: u32, check_first: bool },
}

/// A step in flight or failed is checked first when it has a check and either its playbook
/// says `check` or it failed (a failed step may have had its effect before failing).
fn resume_decision(state: HostStepState, on_resume: OnResume, has_check: bool) -> Decision {
    match state {
        HostStepState::Finished { .. } => Decision::AlreadyDone,
        HostStepState::Pending => Decision::Run {
            attempt: 1,
            check_first: false,
        },
        HostStepState::InFlight { .. } if on_resume == OnResume::Ask => Decision::Ask,
        HostStepState::InFlight { attempt } => Decision::Run {
            attempt: attempt + 1,
            check_first: has_check && on_resume == OnResume::Check,
        },
        HostStepState::Failed { attempt, .. } => Decision::Run {
            attempt: attempt + 1,
            check_first: has_check,
        },
    }
}

/// One step on one host, with what it needs from the executor.
struct HostTask<S: Session + 'static> {
    sessions: Arc<Sessions<S>>,
    journal: Arc<GroupJournal>,
    reporter: Arc<dyn Reporter>,
    backups: Arc<BackupsDir>,
    step: RenderedStep,
}

impl<S: Session + 'static> HostTask<S> {
    fn event(&self, event: StepEvent) {
        self.reporter
            .host_event(&self.step.id, &self.step.host, &event);
    }

    async fn run(self, decision: Decision) -> Result<HostResult, JournalError> {
        let attempt = match decision {
            Decision::AlreadyDone => {
                self.event(StepEvent::AlreadyDone);
                return Ok(HostResult::Done);
            }
            Decision::Ask => return Ok(HostResult::Ask),
            Decision::Run {
                attempt,
                check_first,
            } => {
                if check_first && self.done_by_check().await? {
                    return Ok(HostResult::Done);
                }
                attempt
            }
        };
        self.start(attempt).await?;
        match run_step(&self.sessions, &self.step, &self.backups.0).await {
            Ok(saved) => self.succeeded(saved).await,
            Err(failure) => self.failed(failure).await,
        }
    }

    /// Resume: a step whose check says "done" is not run again.
    async fn done_by_check(&self) -> Result<bool, JournalError> {
        match check_passes(&self.sessions, &self.step).await {
            Ok(true) => {
                finished(&self.journal, &self.step.id, &self.step.host, true)?;
                self.event(StepEvent::DoneByCheck);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(failure) => {
                tracing::warn!(host = %self.step.host, step = %self.step.id, error = %failure.error, "check failed to run");
                Ok(false)
            }
        }
    }

    async fn start(&self, attempt: u32) -> Result<(), JournalError> {
        append(
            &self.journal,
            Event::StepStarted {
                step: self.step.id.clone(),
                host: self.step.host.clone(),
                attempt,
            },
        )
        .await?;
        self.event(StepEvent::Started { attempt });
        let only_waits = self.step.command.is_none() && self.step.upload.is_none();
        if self.step.wait_until.is_some() && only_waits {
            self.event(StepEvent::Waiting);
        }
        Ok(())
    }

    async fn succeeded(&self, saved: Option<SavedBackup>) -> Result<HostResult, JournalError> {
        if let Some(SavedBackup { file, sha256 }) = saved {
            let host = self.step.host.clone();
            append(&self.journal, Event::Backup { host, file, sha256 }).await?;
        }
        finished(&self.journal, &self.step.id, &self.step.host, false)?;
        self.event(StepEvent::Finished);
        Ok(HostResult::Done)
    }

    async fn failed(&self, failure: HostFailure) -> Result<HostResult, JournalError> {
        let HostFailure { error, stderr_tail } = failure;
        append(
            &self.journal,
            Event::StepFailed {
                step: self.step.id.clone(),
                host: self.step.host.clone(),
                error: error.clone(),
                stderr_tail: stderr_tail.clone(),
            },
        )
        .await?;
        self.event(StepEvent::Failed {
            error: error.clone(),
            stderr_tail: stderr_tail.clone(),
        });
        Ok(HostResult::Failed(StepFailure {
            step: self.step.id.clone(),
            host: self.step.host.clone(),
            error,
            stderr_tail,
        }))
    }
}

/// Appends a record and waits until it is durable (group commit with the other hosts).
async fn append(journal: &GroupJournal, event: Event) -> Result<(), JournalError> {
    journal.append(Record::now(event)).await
}

/// Records that a step finished on a host without waiting for the fsync: the journal writer
/// makes it durable at once, and before any later record (the host's next "started" above all).
/// A crash in between leaves the step in flight, which resume handles per `on_resume`.
fn finished(
    journal: &GroupJournal,
    step: &StepId,
    host: &HostName,
    by_check: bool,
) -> Result<(), JournalError> {
    journal.queue(Record::now(Event::StepFinished {
        step: step.clone(),
        host: host.clone(),
        by_check,
    }))
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
