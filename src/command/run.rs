//! Running a plan, shared by `apply` and `recover`, over connections opened (and probed) by the
//! command: take the hosts' lease, run the steps with progress and the journal (checking the
//! cluster again right before a step that takes quorum away), take the final gate, give the
//! lease back, print the run's table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{chain, Error};
use crate::exec::{
    claim_all, release_all, BackupsDir, Claim, ExecOptions, Executor, LeaseHost, LeaseRequest,
    QuorumGate, Reporter, RunOutcome, RunRecords,
};
use crate::facts::{HostFacts, Lease, ProbeScope};
use crate::inventory::HostName;
use crate::journal::{Checkpoint, Event, RunDir, StateDir, StepTimes};
use crate::plan::{drift_problems, pinset_drift_problems, Plan, ProcedureKind, Reset};
use crate::report::{self, PlainProgress, TerminalProgress};

use crate::exec::Connected;

/// A run to start or resume, over hosts already connected.
pub struct RunRequest<'a> {
    pub state: &'a StateDir,
    pub run: &'a RunDir,
    pub plan: &'a Plan,
    pub checkpoint: Checkpoint,
    pub options: RunOptions<'a>,
    pub resumed: bool,
    /// Steps the journal says finished that this run takes again (already applied to
    /// `checkpoint`; journalled when the run starts).
    pub resets: Vec<Reset>,
    pub connected: Connected,
    /// Whether the hosts' lease is to be taken, or was taken already.
    pub lease: Leased,
}

/// The hosts' lease, when a run starts.
pub enum Leased {
    /// To take on every host before the first step.
    ToTake,
    /// Taken by the planning probe (`apply --yes`, docs/adr/0023), with the runs whose
    /// lease it replaced and on which hosts.
    Taken(Vec<(String, Vec<HostName>)>),
}

/// The command line's part in a run.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    pub retry_in_flight: bool,
    /// `--take-over RUN_ID`.
    pub take_over: Option<&'a crate::journal::RunId>,
}

/// Checks fresh facts after the last step: the problems found (none means the run finished).
pub type AfterCheck<'a> = &'a dyn Fn(&[HostFacts]) -> Result<Vec<String>, Error>;

/// What the operator runs to go on after a stop.
pub fn resume_command(plan: &Plan) -> &'static str {
    match plan.choice.procedure {
        ProcedureKind::Recover => "cluster-upgrade recover INVENTORY",
        ProcedureKind::Migrate => "cluster-upgrade migrate-consensus INVENTORY --to crdt",
        ProcedureKind::Rollback => "cluster-upgrade rollback INVENTORY",
        _ => "cluster-upgrade apply",
    }
}

pub fn run_plan(request: RunRequest<'_>, after: AfterCheck<'_>) -> Result<(), Error> {
    let RunRequest {
        state,
        run,
        plan,
        checkpoint,
        options,
        resumed,
        resets,
        mut connected,
        lease,
    } = request;
    let resume = resume_command(plan);
    let resynced = checkpoint.on_demand.clone();
    let replaceable = super::state::lease_replaceable(state, options.take_over)?;
    let runtime = connected.runtime().handle().clone();
    let sessions = match runtime.block_on(connected.sessions()) {
        Ok(sessions) => sessions,
        Err(hosts) => {
            // A lease the planning probe took is given back where it can be: the run does
            // not start.
            if let Leased::Taken(_) = lease {
                let all: Vec<HostName> = plan.reach.hosts.iter().map(|h| h.name.clone()).collect();
                connected.release_lease(plan.run_id.as_str(), &all);
            }
            return Err(Error::Unreachable { hosts });
        }
    };
    // Shared with the quorum gate; the runtime inside is dropped out here, after the run.
    let connected = Arc::new(connected);
    let lease_hosts: Vec<LeaseHost<_>> = plan
        .reach
        .hosts
        .iter()
        .map(|host| {
            let session = Arc::clone(&sessions[&host.name]);
            (host.name.clone(), session, host.probe.clone())
        })
        .collect();
    // Everything but this handle moves into the run: the sessions end inside the runtime,
    // which itself is dropped out here, after the run.
    let keep = Arc::clone(&connected);
    let result = runtime.block_on(async move {
        // The lease first: a run refused here leaves nothing behind, on the hosts or here.
        let taken_over = match lease {
            Leased::Taken(taken_over) => taken_over,
            Leased::ToTake => {
                let request = LeaseRequest {
                    lease: lease_of(&plan.run_id, state),
                    replaceable,
                };
                take_lease(&lease_hosts, &request).await?
            }
        };
        tracing::debug!("the lease is ours on every host");
        if !resumed {
            run.create()?;
            super::plan_file::write_plan(&run.plan_path(), plan)?;
        }
        report::log_to_file(&run.log_path());

        let progress = Progress::for_plan(plan);
        progress.run_started(plan, resumed);
        let records = RunRecords {
            journal: run.journal()?,
            checkpoint,
            backups: BackupsDir(run.backups_dir()),
        };
        let executor = Executor::new(
            sessions.clone(),
            records,
            progress.reporter(),
            ExecOptions {
                concurrency: crate::exec::concurrency(&plan.reach),
                retry_in_flight: options.retry_in_flight,
            },
        )
        .with_quorum_gate(quorum_gate(&connected, plan));
        record_start(&executor, resumed, resets, taken_over).await?;
        let interrupt = stop_on_interrupt(executor.stop_flag());
        let outcome = executor.run(plan).await?;
        let result = match outcome {
            RunOutcome::Finished => {
                let checks = Checks {
                    after,
                    connected: &connected,
                    plan,
                    resume,
                };
                match verify(&executor, &checks, resynced).await {
                    Ok(()) => executor
                        .record(Event::RunFinished)
                        .await
                        .map_err(Error::from),
                    Err(error) => Err(error),
                }
            }
            stopped => Err(stopped_error(stopped, resume)),
        };
        interrupt.abort();
        progress.finish();
        match &result {
            Ok(()) => release_all(&lease_hosts, plan.run_id.as_str()).await,
            Err(error) => {
                executor
                    .record(Event::RunStopped {
                        reason: chain(error),
                    })
                    .await?
            }
        }
        connected.close().await;
        let records = run.records()?;
        let (checkpoint, times) = (
            Checkpoint::replay(&records),
            StepTimes::from_records(&records),
        );
        let journal = report::Journalled {
            checkpoint: &checkpoint,
            times: &times,
        };
        report::print(&report::render_run(run.id().as_str(), plan, journal));
        progress.run_ended(&result);
        result
    });
    drop(keep);
    result
}

/// Journals the start of the run: the steps it takes again and the leases it took over.
async fn record_start<S: crate::transport::Session + 'static>(
    executor: &Executor<S>,
    resumed: bool,
    resets: Vec<Reset>,
    taken_over: Vec<(String, Vec<HostName>)>,
) -> Result<(), Error> {
    executor
        .record(Event::RunStarted {
            pid: std::process::id(),
            resumed,
        })
        .await?;
    for Reset { step, host, reason } in resets {
        report::note(&format!("{step} runs again on {host}: {reason}"));
        executor
            .record(Event::StepReset { step, host, reason })
            .await?;
    }
    for (from, hosts) in taken_over {
        report::note(&format!(
            "took over the lease of run {from} on {}",
            crate::message::HostNames(&hosts)
        ));
        executor
            .record(Event::LeaseTakenOver { from, hosts })
            .await?;
    }
    Ok(())
}

/// Ctrl-C sets `stop`: the executor stops after the commands running now (exit 130).
fn stop_on_interrupt(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            report::note("interrupt: stopping after the commands that are running now");
            stop.store(true, Ordering::SeqCst);
        }
    })
}

/// The error of a run that did not finish, saying how to resume it.
fn stopped_error(outcome: RunOutcome, resume: &'static str) -> Error {
    match outcome {
        RunOutcome::Failed(failures) => Error::StepFailed {
            step: failures[0].step.clone(),
            hosts: failures.iter().map(|f| f.host.clone()).collect(),
            resume,
        },
        RunOutcome::NeedsOperator { step, host } => Error::NeedsOperator { step, host, resume },
        RunOutcome::ClusterChanged { step, problems } => Error::ClusterChanged {
            step,
            problems,
            resume,
        },
        RunOutcome::Interrupted | RunOutcome::Finished => Error::Interrupted { resume },
    }
}

/// The lease the run `run_id` writes on its hosts.
pub fn lease_of(run_id: &crate::journal::RunId, state: &StateDir) -> Lease {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".to_string());
    let machine = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Lease {
        run_id: run_id.to_string(),
        controller: format!("{user}@{machine}"),
        state_dir: std::path::absolute(&state.root)
            .unwrap_or_else(|_| state.root.clone())
            .display()
            .to_string(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// Takes the lease on every host: the runs whose lease was replaced, with their hosts; or why
/// another run keeps the hosts (nothing of ours is left on them then).
async fn take_lease<S: crate::transport::Session + 'static>(
    hosts: &[LeaseHost<S>],
    request: &LeaseRequest,
) -> Result<Vec<(String, Vec<HostName>)>, Error> {
    let claims = claim_all(hosts, request).await;
    let names: Vec<&HostName> = hosts.iter().map(|(name, _, _)| name).collect();
    claimed(&names, &claims)
}

/// What the claims of `hosts` (in this order) mean for the run: the runs whose lease was
/// replaced, with their hosts; or why another run keeps the hosts, or which hosts could not be
/// claimed.
pub fn claimed(
    hosts: &[&HostName],
    claims: &std::collections::HashMap<HostName, Claim>,
) -> Result<Vec<(String, Vec<HostName>)>, Error> {
    let mut held = Vec::new();
    let mut failed = Vec::new();
    let mut taken_over: Vec<(String, Vec<HostName>)> = Vec::new();
    for &name in hosts {
        match claims.get(name) {
            Some(Claim::Taken | Claim::Ours) => {}
            None => failed.push((name.clone(), "no lease was taken".to_string())),
            Some(Claim::Replaced(lease)) => {
                match taken_over
                    .iter_mut()
                    .find(|(from, _)| *from == lease.run_id)
                {
                    Some((_, hosts)) => hosts.push(name.clone()),
                    None => taken_over.push((lease.run_id.clone(), vec![name.clone()])),
                }
            }
            Some(Claim::HeldBy(lease)) => held.push(format!("{lease} on {name}")),
            Some(Claim::Failed(error)) => {
                failed.push((name.clone(), format!("cannot write the lease: {error}")))
            }
        }
    }
    if !held.is_empty() {
        return Err(Error::LeaseHeld { holders: held });
    }
    if !failed.is_empty() {
        return Err(Error::Unreachable { hosts: failed });
    }
    Ok(taken_over)
}

/// Before a step that takes quorum away: probes the cluster and compares it with the plan.
fn quorum_gate(connected: &Arc<Connected>, plan: &Plan) -> QuorumGate {
    let connected = Arc::clone(connected);
    let planned = Arc::new(plan.facts.clone());
    let versions: Arc<Vec<_>> = Arc::new(plan.versions());
    // A procedure that takes the cluster down carries the planned pinset through its state
    // export, exactly: pins written since must stop it here, with the cluster still up.
    let exact_pinset = !plan.choice.procedure.keeps_serving();
    Arc::new(move || {
        let connected = Arc::clone(&connected);
        let planned = Arc::clone(&planned);
        let versions = Arc::clone(&versions);
        Box::pin(async move {
            let now = connected.probe_async(ProbeScope::HEALTH.with_peers()).await;
            let mut problems = drift_problems(&planned, &versions, &now);
            if exact_pinset {
                problems.extend(pinset_drift_problems(&planned, &now));
            }
            problems
        })
    })
}

/// Spinners on a terminal, plain lines otherwise.
enum Progress {
    Bars(Arc<TerminalProgress>),
    Lines(Arc<PlainProgress>),
    Json(Arc<report::JsonProgress>),
}

impl Progress {
    /// Bars or lines, as the printer decides, for the hosts of `plan`.
    fn for_plan(plan: &Plan) -> Progress {
        let hosts: Vec<HostName> = plan.facts.iter().map(|f| f.host.clone()).collect();
        match report::Printer::current().progress() {
            report::ProgressKind::Bars => Progress::Bars(Arc::new(TerminalProgress::new(&hosts))),
            report::ProgressKind::Lines => {
                Progress::Lines(Arc::new(PlainProgress::new(std::io::stderr())))
            }
            report::ProgressKind::Json => Progress::Json(Arc::default()),
        }
    }

    /// `run_started` (JSON events only; the other views show the plan or the resume first).
    fn run_started(&self, plan: &Plan, resumed: bool) {
        if let Progress::Json(_) = self {
            let hosts: Vec<&str> = plan.facts.iter().map(|f| f.host.as_str()).collect();
            report::emit(
                "run_started",
                serde_json::json!({
                    "run_id": plan.run_id.as_str(), "cluster": plan.cluster,
                    "procedure": plan.choice.procedure.name(),
                    "undoes": plan.choice.undoes.as_ref().map(|run| run.as_str()),
                    "from": plan.choice.from.to_string(), "to": plan.choice.to.to_string(),
                    "resumed": resumed, "hosts": hosts, "steps": plan.steps.len(),
                }),
            );
        }
    }

    /// `run_finished` or `run_stopped`, with the run's time (JSON events only).
    fn run_ended(&self, result: &Result<(), Error>) {
        if let Progress::Json(events) = self {
            let elapsed_ms = events.run_ms();
            match result {
                Ok(()) => report::emit(
                    "run_finished",
                    serde_json::json!({"elapsed_ms": elapsed_ms}),
                ),
                Err(error) => report::emit(
                    "run_stopped",
                    serde_json::json!({
                        "elapsed_ms": elapsed_ms, "error": chain(error),
                        "kind": error.kind(), "exit_code": error.exit_code(),
                    }),
                ),
            }
        }
    }

    fn reporter(&self) -> Arc<dyn Reporter> {
        match self {
            Progress::Bars(bars) => bars.clone(),
            Progress::Lines(lines) => lines.clone(),
            Progress::Json(events) => events.clone(),
        }
    }

    fn finish(&self) {
        match self {
            Progress::Bars(bars) => bars.finish(),
            Progress::Lines(lines) => lines.finish(),
            Progress::Json(_) => {}
        }
    }
}

/// How long the final gate keeps probing a cluster that is not healthy yet (a peer still
/// settling after the last step), before it reports the problems. A crdt peer lists another
/// only once it has that peer's ping metric: sent every `monitor_ping_interval` (15 s by
/// default), so a peer restarted last can take that long, and a lost first ping twice, to be
/// seen by all (seen with the real 1.0.8 → 1.1.6).
const FINAL_GATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// What the checks after the last step work with.
struct Checks<'a> {
    after: AfterCheck<'a>,
    connected: &'a Connected,
    plan: &'a Plan,
    resume: &'static str,
}

/// The checks after the last step. When peers of a rolling run did not converge on the pinset
/// and may be resynced (`plan::resync_choice`), resyncs one of them with the plan's on-demand
/// steps and checks again, until none lags or none may be resynced; `resynced`: the peers this
/// run resynced before (from the journal).
async fn verify<S: crate::transport::Session + 'static>(
    executor: &Executor<S>,
    checks: &Checks<'_>,
    mut resynced: Vec<HostName>,
) -> Result<(), Error> {
    let plan = checks.plan;
    let resyncable: std::collections::BTreeSet<HostName> = plan
        .on_demand
        .iter()
        .flat_map(|step| step.hosts.iter().map(|h| h.host.clone()))
        .collect();
    loop {
        let Diverged {
            gaps,
            now,
            before,
            waited,
        } = match gates(checks).await? {
            Verdict::Passed => return Ok(()),
            Verdict::Problems(problems) => return Err(Error::Verification { problems }),
            Verdict::Diverged(diverged) => diverged,
        };
        let mut problems = crate::plan::gap_problems(&gaps, waited);
        let choice = crate::plan::resync_choice(&crate::plan::ResyncInputs {
            gaps: &gaps,
            planned: &plan.facts,
            now: &now,
            before: &before,
            resyncable: &resyncable,
            resynced: &resynced,
        });
        let crate::plan::Resync { host, later } = match choice {
            Ok(resync) => resync,
            Err(refused) => {
                let lagging: Vec<HostName> = gaps.keys().cloned().collect();
                problems.push(refused.advice(&lagging));
                return Err(Error::Verification { problems });
            }
        };
        let waiting = if later.is_empty() {
            String::new()
        } else {
            format!(" (not yet: {})", later.join("; "))
        };
        report::note(&format!(
            "resyncing {host}, then checking again{waiting}: {}",
            problems.join("; ")
        ));
        resynced.push(host.clone());
        let outcome = executor
            .run_on_demand(plan, vec![host], problems.join("; "))
            .await?;
        if outcome != RunOutcome::Finished {
            return Err(stopped_error(outcome, checks.resume));
        }
    }
}

/// How the checks after the last step ended.
enum Verdict {
    Passed,
    Problems(Vec<String>),
    /// The cluster is healthy but some running peers still lack pins the others list.
    Diverged(Diverged),
}

/// Running peers that lack pins the others list, when the convergence check gave up.
struct Diverged {
    gaps: std::collections::BTreeMap<HostName, Option<Vec<String>>>,
    /// The last probe, the one `gaps` came from.
    now: Vec<HostFacts>,
    /// The last probe that ended at least `plan::IN_FLIGHT` before `now` began (the first when
    /// none did).
    before: Vec<HostFacts>,
    waited: std::time::Duration,
}

/// The final gate, then (rolling runs, whose cluster kept taking writes) the pinset
/// convergence check.
async fn gates(checks: &Checks<'_>) -> Result<Verdict, Error> {
    let problems = final_gate(checks.after, checks.connected, checks.plan).await?;
    if !problems.is_empty() {
        return Ok(Verdict::Problems(problems));
    }
    if !checks.plan.choice.procedure.keeps_serving() {
        return Ok(Verdict::Passed);
    }
    let patience = crate::plan::convergence_patience(&checks.plan.facts);
    Ok(match pins_converged(checks.connected, patience).await {
        None => Verdict::Passed,
        Some(diverged) => Verdict::Diverged(diverged),
    })
}

/// Waits until every pin any peer listed when the check began is listed by every running peer
/// (or by none: unpinned meanwhile); the peers that still lack some once they made no progress
/// for `patience` (`plan::convergence_patience`; see `plan::converge`). A peer that is catching
/// up (a resynced one fetches the whole pinset again: minutes for a large one) is waited for as
/// long as it gets closer to the others (`plan::CatchUp`).
async fn pins_converged(connected: &Connected, patience: std::time::Duration) -> Option<Diverged> {
    let scope = ProbeScope::HEALTH.with_cids();
    let started = std::time::Instant::now();
    let mut probe_began = started;
    let mut facts = connected.probe_async(scope).await;
    let settled = crate::plan::settled_pins(&facts);
    let mut catch_up = crate::plan::CatchUp::default();
    let mut progress_at = started;
    // Earlier probes, by when they ended, oldest first: the latest that ended at least
    // `plan::IN_FLIGHT` before the last one began, and those after it.
    let mut recent: std::collections::VecDeque<(std::time::Instant, Vec<HostFacts>)> =
        std::collections::VecDeque::new();
    loop {
        let probe_ended = std::time::Instant::now();
        let gaps = crate::plan::pinset_gaps(&settled, &facts);
        if gaps.is_empty() {
            return None;
        }
        if catch_up.closer(crate::plan::lag(&gaps, &facts)) {
            progress_at = probe_ended;
        }
        while recent.get(1).is_some_and(|(ended, _)| {
            probe_began.saturating_duration_since(*ended) >= crate::plan::IN_FLIGHT
        }) {
            recent.pop_front();
        }
        if progress_at.elapsed() >= patience {
            let before = recent.pop_front().map_or_else(|| facts.clone(), |(_, f)| f);
            return Some(Diverged {
                gaps,
                now: facts,
                before,
                waited: started.elapsed(),
            });
        }
        recent.push_back((probe_ended, facts));
        tracing::debug!(peers = gaps.len(), "pinsets not converged yet");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        probe_began = std::time::Instant::now();
        facts = connected.probe_async(scope).await;
    }
}

/// Probes the cluster and checks it, again every 2 s while a peer is still settling, for a
/// short while.
async fn final_gate(
    after: AfterCheck<'_>,
    connected: &Connected,
    plan: &Plan,
) -> Result<Vec<String>, Error> {
    let deadline = std::time::Instant::now() + FINAL_GATE_PATIENCE;
    let mut views = crate::plan::WholeViews::default();
    // A migration's check reads each peer's consensus from its service.json.
    let scope = match plan.choice.procedure {
        ProcedureKind::Migrate => ProbeScope::FULL,
        _ => ProbeScope::HEALTH,
    };
    loop {
        let probed = connected.probe_async(scope).await;
        let facts = views.merge(probed);
        let problems = after(&facts)?;
        // Only a peer that is still settling is worth waiting for; a wrong version or pinset
        // will not fix itself.
        let settling = crate::plan::settling(&facts);
        if problems.is_empty() || !settling || std::time::Instant::now() >= deadline {
            return Ok(problems);
        }
        tracing::debug!(?problems, "final gate not passed yet");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Asks `question` on the terminal unless `yes`; without a terminal to ask on, refuses.
pub fn confirm(yes: bool, question: &str) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    match report::Printer::current().ask(question) {
        report::Answer::Yes => Ok(()),
        report::Answer::No => Err(Error::Declined),
        report::Answer::NoTerminal => Err(Error::NoConfirmation),
    }
}

/// Refuses at once, before anything is probed, when a confirmation will be needed and there
/// is no terminal to ask it on.
pub fn confirmation_possible(yes: bool) -> Result<(), Error> {
    if yes || report::Printer::current().stdin_terminal {
        Ok(())
    } else {
        Err(Error::NoConfirmation)
    }
}
