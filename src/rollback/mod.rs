//! Rollback (`cluster-upgrade rollback INVENTORY [RUN_ID]`): which run to undo, what of it can
//! be undone (the journal says which peers it touched), the plan
//! (`playbooks/rollback.yaml`) and the final check. Pure: no I/O.

mod plan;

pub use plan::{build_rollback_plan, RollbackInputs};

use crate::facts::{Consensus, HostFacts};
use crate::inventory::{HostName, Version};
use crate::journal::{Checkpoint, HostStepState, RunId};
use crate::message::HostNames;
use crate::plan::{mixed_versions_problem, Plan, ProcedureKind};
use crate::procedure::StepId;

/// The steps of the shipped playbooks that stop a peer or change its binaries: a host on which
/// one of them started was touched by the run, and is rolled back.
pub const TOUCHING_STEPS: [&str; 5] = [
    "stop-peer",
    "stop-peers",
    "install-release",
    "start-peer",
    "start-upgrade",
];

/// Why a rollback cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("rollback refused: {0}")]
    Refused(#[from] RollbackRefusal),
    #[error(transparent)]
    Render(#[from] crate::procedure::RenderError),
}

/// Why a run cannot be rolled back now.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RollbackRefusal {
    #[error("this cluster has no run to roll back")]
    NoRun,
    #[error("run {run} is not a run of this cluster (see `cluster-upgrade runs INVENTORY`)")]
    NotFound { run: RunId },
    #[error("run {run} is unfinished: resume it (`cluster-upgrade apply`) or abandon it (`cluster-upgrade runs abandon {run}`) first")]
    Unfinished { run: RunId },
    #[error("run {run} was already rolled back by run {by}")]
    AlreadyRolledBack { run: RunId, by: RunId },
    #[error("run {run} is a rollback itself: to go forward again, plan an upgrade (`cluster-upgrade plan`)")]
    RollbackOfRollback { run: RunId },
    #[error("run {run} ({procedure}, {from} → {to}) changed the state, not only the binaries: {why}; rolling it back means restoring the pre-upgrade state, which `rollback` does not do yet (the run's exports are in its backups/ folder)")]
    StateChanged {
        run: RunId,
        procedure: ProcedureKind,
        from: Version,
        to: Version,
        why: String,
    },
    #[error("run {run} crossed an RPC protocol change ({problem}): going back one peer at a time would mix them, and without a state export of the run (crdt, standard procedure) `rollback` has no state to go back to with every peer stopped")]
    AcrossProtocol { run: RunId, problem: String },
    #[error("run {run} ran on a raft cluster of {peers} peers: one peer down leaves no quorum, so it cannot go back one peer at a time")]
    RaftTooSmall { run: RunId, peers: usize },
    #[error("the backup of run {run} is gone from {} and the release source ({offered_by}) does not offer {version}: put {version} there, or the backups back", HostNames(hosts))]
    BackupGone {
        run: RunId,
        hosts: Vec<HostName>,
        version: Version,
        offered_by: String,
    },
    #[error("the state export {file} of run {run} is {why} on the controller (its run directory's backups/): put it back, or roll back by hand")]
    ExportGone {
        run: RunId,
        file: String,
        why: String,
    },
    #[error("run {run} was pruned (`runs prune`): the backups it needs are gone")]
    Pruned { run: RunId },
    #[error("run {run} touched no peer (it stopped before any peer was stopped or swapped): nothing to roll back")]
    NothingDone { run: RunId },
    #[error("run {run} started from mixed versions ({versions}): `rollback` takes every peer back to one release; finish or repair by hand")]
    MixedStart { run: RunId, versions: String },
    #[error("run {run} has a step `{step}` that changes peers and that rollback does not know (a custom playbook?): refusing to guess what it did")]
    UnknownStep { run: RunId, step: StepId },
    #[error("every peer must answer before a rollback: {}", problems.join("; "))]
    Unreachable { problems: Vec<String> },
    #[error("the cluster moved on since run {run}: {}; refusing to roll back over changes it did not make", problems.join("; "))]
    Drifted { run: RunId, problems: Vec<String> },
}

/// The run a rollback undoes: its id, its plan and its journal replayed.
#[derive(Debug, Clone, Copy)]
pub struct Undone<'a> {
    pub run: &'a RunId,
    pub plan: &'a Plan,
    pub checkpoint: &'a Checkpoint,
}

/// What the rollback does: the hosts it takes back to `to` (those the run touched), from the
/// versions they run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackChoice {
    pub undoes: RunId,
    /// The release every peer ran before the run.
    pub to: Version,
    /// The release the run installed.
    pub from: Version,
    /// In inventory order.
    pub touched: Vec<HostName>,
    pub way: RollbackWay,
    pub reasons: Vec<String>,
}

/// How the peers go back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackWay {
    /// Binaries only, one peer at a time, the others serving (`playbooks/rollback.yaml`).
    OneAtATime,
    /// Every peer stopped; binaries back, and on `hosts` the raft folder the run's
    /// `daemon --upgrade` kept as `raft.old.0`; every peer started; the pinset made what it was
    /// right before (`playbooks/rollback-raft.yaml`).
    RestoreRaft { hosts: Vec<HostName> },
    /// A crdt standard run across an RPC protocol change: every peer stopped, binaries back,
    /// every store cleaned with the previous release, the state `anchor` exported with it
    /// before the upgrade (`file` in the run's `backups/` on the controller, `sha256` as its
    /// journal recorded) imported there, every peer started (the others sync from the
    /// anchor), the pinset made what it was right before.
    RestoreExport {
        anchor: HostName,
        file: String,
        sha256: crate::inventory::Sha256,
    },
}

impl RollbackWay {
    /// The name the playbook reads (`rollback.way`).
    pub fn name(&self) -> &'static str {
        match self {
            RollbackWay::OneAtATime => "one_at_a_time",
            RollbackWay::RestoreRaft { .. } => "restore_raft",
            RollbackWay::RestoreExport { .. } => "restore_export",
        }
    }
}

/// The first state export (in the order of the run's hosts) the undone run's `export-state`
/// step saved on the controller: host, file name in its `backups/`, digest.
fn first_export(undone: Undone<'_>) -> Option<(HostName, String, crate::inventory::Sha256)> {
    undone.plan.facts.iter().find_map(|f| {
        undone
            .checkpoint
            .backups
            .iter()
            .find(|(host, file, _)| *host == f.host && file.starts_with("state-export-"))
            .cloned()
    })
}

/// The hosts `undone` touched, in the order of its plan's facts.
pub fn touched_hosts(undone: Undone<'_>) -> Vec<HostName> {
    let touching = |step: &StepId| TOUCHING_STEPS.contains(&step.as_str());
    undone
        .plan
        .facts
        .iter()
        .map(|f| &f.host)
        .filter(|host| {
            undone.plan.steps.iter().any(|step| {
                touching(&step.id)
                    && !matches!(
                        undone.checkpoint.state(&step.id, host),
                        HostStepState::Pending
                    )
            })
        })
        .cloned()
        .collect()
}

/// Checks that `undone` can be rolled back over the cluster as it is `now` (facts of every
/// inventory host, in the order of the run's plan), and says what the rollback does.
pub fn check_rollback(
    undone: Undone<'_>,
    now: &[HostFacts],
) -> Result<RollbackChoice, RollbackRefusal> {
    let Undone {
        run,
        plan,
        checkpoint,
    } = undone;
    if checkpoint.is_unfinished() {
        return Err(RollbackRefusal::Unfinished { run: run.clone() });
    }
    let (from, to) = (plan.choice.from, plan.choice.to);
    let state_changed = |why: String| RollbackRefusal::StateChanged {
        run: run.clone(),
        procedure: plan.choice.procedure,
        from,
        to,
        why,
    };
    match plan.choice.procedure {
        ProcedureKind::Rollback => {
            return Err(RollbackRefusal::RollbackOfRollback { run: run.clone() })
        }
        ProcedureKind::Migrate => {
            return Err(state_changed(
                "it moved the consensus from raft to crdt".into(),
            ))
        }
        ProcedureKind::Recover => {
            return Err(state_changed(
                "it rebuilt the cluster from a surviving state".into(),
            ))
        }
        ProcedureKind::Bootstrap => return Err(state_changed(
            "it removed peers and upgraded the anchor's state; the others took it from the anchor"
                .into(),
        )),
        ProcedureKind::Standard | ProcedureKind::Rolling => {}
    }
    if !plan.choice.via.is_empty() {
        return Err(state_changed(
            "it went through intermediate releases, each migrating the state".into(),
        ));
    }
    let raft = plan
        .facts
        .iter()
        .any(|f| f.consensus != Some(Consensus::Crdt));
    // A raft run that restarted with `daemon --upgrade` across a state format change: each
    // peer's pre-upgrade raft folder is its raft.old.0 now.
    let migrated_raft = plan.choice.procedure == ProcedureKind::Standard
        && raft
        && matches!((from.state_format(), to.state_format()), (Some(a), Some(b)) if a != b);
    // A crdt standard run across a protocol change: back through the state the run exported
    // with the previous release (stopping every peer), as no peer can go back alone.
    let mut restore_export = None;
    if !migrated_raft {
        if let Some(problem) = mixed_versions_problem(from, to) {
            let export = (!raft && plan.choice.procedure == ProcedureKind::Standard)
                .then(|| first_export(undone))
                .flatten();
            match export {
                Some(export) => restore_export = Some(export),
                None => {
                    return Err(RollbackRefusal::AcrossProtocol {
                        run: run.clone(),
                        problem,
                    })
                }
            }
        }
        if raft && plan.facts.len() < 3 {
            return Err(RollbackRefusal::RaftTooSmall {
                run: run.clone(),
                peers: plan.facts.len(),
            });
        }
    }
    let started: std::collections::BTreeSet<Option<Version>> =
        plan.facts.iter().map(|f| f.service_version).collect();
    if started.len() > 1 {
        let versions = plan
            .facts
            .iter()
            .map(|f| format!("{} {}", f.host, version_text(f.service_version)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(RollbackRefusal::MixedStart {
            run: run.clone(),
            versions,
        });
    }
    if let Some(step) = plan
        .steps
        .iter()
        .find(|step| step.destructive && !TOUCHING_STEPS.contains(&step.id.as_str()))
    {
        return Err(RollbackRefusal::UnknownStep {
            run: run.clone(),
            step: step.id.clone(),
        });
    }
    let touched = touched_hosts(undone);
    if touched.is_empty() {
        return Err(RollbackRefusal::NothingDone { run: run.clone() });
    }
    let unreachable: Vec<String> = now
        .iter()
        .filter_map(|f| Some(format!("{} ({})", f.host, f.unreachable.as_ref()?)))
        .collect();
    if !unreachable.is_empty() {
        return Err(RollbackRefusal::Unreachable {
            problems: unreachable,
        });
    }
    let mut drift = drift(&touched, from, to, now);
    let way = if migrated_raft {
        let (restored, problems) = raft_restores(run, from, to, now);
        drift.extend(problems);
        RollbackWay::RestoreRaft { hosts: restored }
    } else if let Some((anchor, file, sha256)) = restore_export {
        RollbackWay::RestoreExport {
            anchor,
            file,
            sha256,
        }
    } else {
        RollbackWay::OneAtATime
    };
    if !drift.is_empty() {
        return Err(RollbackRefusal::Drifted {
            run: run.clone(),
            problems: drift,
        });
    }
    let mut reasons = vec![format!(
        "its journal shows run {run} ({}, {from} → {to}) touched {} of {} peers: {}",
        plan.choice.procedure,
        touched.len(),
        now.len(),
        HostNames(&touched)
    )];
    match &way {
        RollbackWay::OneAtATime => {
            reasons.push(format!(
                "it changed only binaries ({}): only those peers go back to {from}, one at a time, from the run's backup on each, the others serving",
                match plan.choice.procedure {
                    ProcedureKind::Rolling => "a rolling upgrade within one RPC protocol",
                    _ => "a standard upgrade of a crdt cluster within one RPC protocol",
                }
            ));
            if plan.steps.iter().any(|s| s.id.as_str() == "pebble-format") {
                reasons.push(format!(
                    "pebble stores the run raised stay raised: {from} itself rewrote them, and opens them"
                ));
            }
        }
        RollbackWay::RestoreExport { anchor, file, .. } => {
            reasons.push(format!(
                "{from} and {to} speak different RPC protocols, so no peer can go back alone: every peer stops and gets {from}'s \
                 binaries back from the run's backup; every peer's CRDT store is cleaned with {from}, the state {anchor} exported \
                 with {from} before the upgrade ({file}, kept on the controller) is imported on {anchor}, and every peer starts \
                 (the others fetch the pinset from {anchor})"
            ));
            reasons.push(
                "pins added or removed since the upgrade are not in that export: the pinset is listed right before the stop and \
                 made so again once the cluster is back (missing pins added, others removed)"
                    .to_string(),
            );
        }
        RollbackWay::RestoreRaft { hosts } => {
            reasons.push(format!(
                "its restart with `daemon --upgrade` moved the raft state of {} from format {} to {}: every peer stops, gets \
                 {from}'s binaries back from the run's backup and (where migrated) the raft folder the upgrade kept as raft.old.0 \
                 (the current one stays beside it as raft.before-rollback-<run>), then every peer starts",
                if hosts.is_empty() { "no peer".to_string() } else { HostNames(hosts).to_string() },
                from.state_format().unwrap_or_default(),
                to.state_format().unwrap_or_default(),
            ));
            reasons.push(
                "pins added or removed since the upgrade are not in that state: the pinset is listed right before the stop and \
                 made so again once the cluster is back (missing pins added, others removed)"
                    .to_string(),
            );
        }
    }
    Ok(RollbackChoice {
        undoes: run.clone(),
        to: from,
        from: to,
        touched,
        way,
        reasons,
    })
}

/// Peers on a release the run did not install: a touched one must run the run's release or
/// the previous one, an untouched one the previous one.
fn drift(touched: &[HostName], from: Version, to: Version, now: &[HostFacts]) -> Vec<String> {
    let mut drift = Vec::new();
    for host in now {
        let version = host.service_version;
        let was_touched = touched.contains(&host.host);
        let allowed = version == Some(from) || (was_touched && version == Some(to));
        if !allowed {
            drift.push(format!(
                "{} has {} installed, {}",
                host.host,
                version_text(version),
                if was_touched {
                    format!("neither {from} (before the run) nor {to} (the run's)")
                } else {
                    format!("not {from} (the run did not touch it)")
                }
            ));
        }
    }
    drift
}

/// The hosts whose raft state the run migrated (their live `raft/` in `to`'s format, their
/// `raft.old.0` in `from`'s), and the hosts where it is neither that nor untouched (`raft/`
/// still in `from`'s format), as problems.
fn raft_restores(
    run: &RunId,
    from: Version,
    to: Version,
    now: &[HostFacts],
) -> (Vec<HostName>, Vec<String>) {
    let (old, new) = (from.state_format(), to.state_format());
    let mut restored = Vec::new();
    let mut problems = Vec::new();
    for host in now {
        let folder = |name: &str| host.stored_states.iter().find(|s| s.folder == name);
        let live = folder("raft").and_then(|s| s.first_byte);
        let backup = folder("raft.old.0").and_then(|s| s.first_byte);
        if live == old {
            continue;
        }
        if live == new && backup == old {
            restored.push(host.host.clone());
            continue;
        }
        let format = |f: Option<u8>| f.map_or("none".to_string(), |f| f.to_string());
        problems.push(format!(
            "{}: its raft state is in format {} and raft.old.0 in format {}, not the {} and {} the upgrade of run {run} left \
             (a later cleanup or upgrade rotated the backups?)",
            host.host,
            format(live),
            format(backup),
            format(new),
            format(old),
        ));
    }
    (restored, problems)
}

/// Refuses when a host whose backup is gone (`gone`) cannot get the previous release from the
/// release source either (`release_offered`).
pub fn check_backups(
    choice: &RollbackChoice,
    gone: &[HostName],
    release_offered: bool,
    source: &str,
) -> Result<(), RollbackRefusal> {
    if gone.is_empty() || release_offered {
        return Ok(());
    }
    Err(RollbackRefusal::BackupGone {
        run: choice.undoes.clone(),
        hosts: gone.to_vec(),
        version: choice.to,
        offered_by: source.to_string(),
    })
}

/// One run of the cluster, as `pick_run` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRun {
    pub id: RunId,
    pub procedure: ProcedureKind,
    /// The run it undoes, when it is a rollback.
    pub undoes: Option<RunId>,
    pub finished: bool,
}

/// The run to roll back among the cluster's runs (oldest first): `asked`, or else the newest.
/// Refused when it is a rollback, or when a finished rollback already undid it.
pub fn pick_run(runs: &[PastRun], asked: Option<&RunId>) -> Result<RunId, RollbackRefusal> {
    let index = match asked {
        Some(id) => runs
            .iter()
            .position(|run| &run.id == id)
            .ok_or_else(|| RollbackRefusal::NotFound { run: id.clone() })?,
        None => runs.len().checked_sub(1).ok_or(RollbackRefusal::NoRun)?,
    };
    let run = &runs[index];
    if run.procedure == ProcedureKind::Rollback {
        return Err(match (&run.undoes, asked) {
            (Some(undone), None) if run.finished => RollbackRefusal::AlreadyRolledBack {
                run: undone.clone(),
                by: run.id.clone(),
            },
            _ => RollbackRefusal::RollbackOfRollback {
                run: run.id.clone(),
            },
        });
    }
    if let Some(by) = runs[index + 1..]
        .iter()
        .find(|later| later.finished && later.undoes.as_ref() == Some(&run.id))
    {
        return Err(RollbackRefusal::AlreadyRolledBack {
            run: run.id.clone(),
            by: by.id.clone(),
        });
    }
    Ok(run.id.clone())
}

/// The final check of a rollback: the final gate of a rolling run against the release the
/// peers ran before (pins added meanwhile are welcome; none of the planned ones may go).
pub fn rollback_problems(plan: &Plan, now: &[HostFacts]) -> Vec<String> {
    crate::plan::final_gate_problems(&plan.facts, plan.choice.to, now, ProcedureKind::Rollback)
}

fn version_text(version: Option<Version>) -> String {
    version.map_or_else(|| "no known version".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests;
