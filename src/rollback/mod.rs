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

/// The steps of the shipped playbooks that stop a peer or change its binaries or its state: a
/// host on which one of them started was touched by the run, and is rolled back. A staged
/// run's steps carry their stage's prefix (`stage1-stop-peers`), see [`unstaged`].
pub const TOUCHING_STEPS: [&str; 13] = [
    "stop-peer",
    "stop-peers",
    "install-release",
    "start-peer",
    "start-upgrade",
    // bootstrap.yaml
    "remove-peers",
    "stop-others",
    "stop-anchor",
    "install-anchor",
    "state-upgrade",
    "start-anchor",
    "install-others",
    "bootstrap-others",
];

/// A step's id without the `stageN-` prefix of a staged run.
fn unstaged(step: &StepId) -> &str {
    let id = step.as_str();
    match id
        .strip_prefix("stage")
        .and_then(|rest| rest.split_once('-'))
    {
        Some((number, rest))
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest
        }
        _ => id,
    }
}

fn touching(step: &StepId) -> bool {
    TOUCHING_STEPS.contains(&unstaged(step))
}

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
    #[error("run {run} ({procedure}, {from} → {to}) changed the state, not only the binaries: {why}; `rollback` cannot restore the state from before it (the run's exports, if any, are in its backups/ folder)")]
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
    #[error("the pinset cannot be listed on {host} now ({why}): restoring the state from before run {run} would lose the pins added since and bring back those removed since; start the peer so that `rollback` lists them and makes them so again, or pass --allow-pin-loss")]
    PinsUnlisted {
        run: RunId,
        host: HostName,
        why: String,
    },
    #[error("the cluster moved on since run {run}: {}; refusing to roll back over changes it did not make", problems.join("; "))]
    Drifted { run: RunId, problems: Vec<String> },
    #[error("run {run} can only be undone by restoring the state ({way}), which runs `ipfs-cluster-service state …` with the binaries on the host, but {} run the peer in a Docker container: roll back by hand (the run's exports are in its backups/ folder)", HostNames(hosts))]
    Docker {
        run: RunId,
        way: &'static str,
        hosts: Vec<HostName>,
    },
}

/// The run a rollback undoes: its id, its plan and its journal replayed.
#[derive(Debug, Clone, Copy)]
pub struct Undone<'a> {
    pub run: &'a RunId,
    pub plan: &'a Plan,
    pub checkpoint: &'a Checkpoint,
}

impl Undone<'_> {
    /// The run id under which the run's `keep-previous` step kept the binaries of the release
    /// before it (`<bin_dir>/.cluster-upgrade/backup/<id>/`): a staged run's first stage's.
    pub fn backup_run(&self) -> String {
        match self.plan.choice.via.first() {
            Some(hop) => crate::procedure::RunContext::stage_run_id(self.run.as_str(), *hop),
            None => self.run.to_string(),
        }
    }
}

/// Whether pins changed since the upgrade may be lost (`--allow-pin-loss`) when the state
/// from before it is restored and the pinset cannot be listed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinLoss {
    #[default]
    Refused,
    Allowed,
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
    /// The run id the undone run's backups on the hosts are named after (see
    /// [`Undone::backup_run`]).
    pub backup_run: String,
    pub way: RollbackWay,
    /// The peer whose pinset is listed right before the stop and made so again at the end
    /// (the ways that restore an older state); `None`: nothing to keep (binaries only) or the
    /// operator let those pins go (`--allow-pin-loss`).
    pub lister: Option<HostName>,
    pub reasons: Vec<String>,
}

/// A state export an undone run saved on the controller before it changed the state: the
/// host it was taken on (which imports it), its file in the run's `backups/` and the digest
/// the journal recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateExport {
    pub anchor: HostName,
    pub file: String,
    pub sha256: crate::inventory::Sha256,
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
    RestoreExport(StateExport),
    /// A raft run whose state cannot be restored folder by folder (it went through
    /// intermediate releases, bootstrapped the peers again, or a peer's `raft.old.0` is gone):
    /// every peer stopped, binaries back, every raft folder cleaned with the previous release
    /// (kept as `raft.old.0`), the export imported on its host, which starts alone; the others
    /// start with `daemon --bootstrap` to it, as `recover` does; the pinset made what it was.
    RebuildRaft(StateExport),
}

impl RollbackWay {
    /// The name the playbook reads (`rollback.way`).
    pub fn name(&self) -> &'static str {
        match self {
            RollbackWay::OneAtATime => "one_at_a_time",
            RollbackWay::RestoreRaft { .. } => "restore_raft",
            RollbackWay::RestoreExport(_) => "restore_export",
            RollbackWay::RebuildRaft(_) => "rebuild_raft",
        }
    }

    /// The export the way imports, if it imports one.
    pub fn export(&self) -> Option<&StateExport> {
        match self {
            RollbackWay::RestoreExport(export) | RollbackWay::RebuildRaft(export) => Some(export),
            RollbackWay::OneAtATime | RollbackWay::RestoreRaft { .. } => None,
        }
    }
}

/// The state export the undone run's `export-state` step saved on the controller with the
/// release before it (`state-export-<host>-<from>.json`): the first in the order of the run's
/// hosts among those whose peer lists its pinset `now`, else the first.
fn first_export(undone: Undone<'_>, now: &[HostFacts]) -> Option<StateExport> {
    let suffix = format!("-{}.json", undone.plan.choice.from);
    let exports: Vec<StateExport> = undone
        .plan
        .facts
        .iter()
        .filter_map(|f| {
            undone
                .checkpoint
                .backups
                .iter()
                .find(|(host, file, _)| {
                    *host == f.host && file.starts_with("state-export-") && file.ends_with(&suffix)
                })
                .map(|(anchor, file, sha256)| StateExport {
                    anchor: anchor.clone(),
                    file: file.clone(),
                    sha256: sha256.clone(),
                })
        })
        .collect();
    let lists = |export: &&StateExport| {
        now.iter()
            .any(|f| f.host == export.anchor && f.pins.is_some())
    };
    exports.iter().find(lists).or(exports.first()).cloned()
}

/// The hosts `undone` touched, in the order of its plan's facts.
pub fn touched_hosts(undone: Undone<'_>) -> Vec<HostName> {
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
    pin_loss: PinLoss,
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
    let raft = plan
        .facts
        .iter()
        .any(|f| f.consensus != Some(Consensus::Crdt));
    let via = &plan.choice.via;
    // Why the state can only be restored by rebuilding the cluster from the run's export.
    let mut rebuild: Option<String> = match plan.choice.procedure {
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
        ProcedureKind::Bootstrap => Some(
            "it removed peers and upgraded the anchor's state; the others took it from the anchor"
                .into(),
        ),
        ProcedureKind::Standard | ProcedureKind::Rolling if !via.is_empty() => Some(format!(
            "it went through intermediate releases ({}), each migrating the state",
            via.iter()
                .map(Version::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        ProcedureKind::Standard | ProcedureKind::Rolling => None,
    };
    if let Some(why) = &rebuild {
        if !raft {
            return Err(state_changed(format!("{why} (a crdt cluster)")));
        }
    }
    // A raft run that restarted with `daemon --upgrade` across a state format change: each
    // peer's pre-upgrade raft folder is its raft.old.0 now.
    let migrated_raft = rebuild.is_none()
        && plan.choice.procedure == ProcedureKind::Standard
        && raft
        && matches!((from.state_format(), to.state_format()), (Some(a), Some(b)) if a != b);
    let mut export = None;
    let mut raft_restored = Vec::new();
    if migrated_raft {
        let (restored, problems) = raft_restores(run, from, to, now);
        raft_restored = restored;
        if !problems.is_empty() {
            match first_export(undone, now) {
                // Folder by folder is not possible: back through the run's export.
                Some(found) => {
                    rebuild = Some(format!(
                        "the raft.old.0 its `daemon --upgrade` left is not there any more ({})",
                        problems.join("; ")
                    ));
                    export = Some(found);
                }
                None => {
                    return Err(RollbackRefusal::Drifted {
                        run: run.clone(),
                        problems,
                    })
                }
            }
        }
    } else if let Some(why) = &rebuild {
        export = Some(first_export(undone, now).ok_or_else(|| {
            state_changed(format!(
                "{why}, and its journal records no state export taken with {from} to rebuild it from"
            ))
        })?);
    } else if let Some(problem) = mixed_versions_problem(from, to) {
        // A crdt standard run across a protocol change: back through the state the run
        // exported with the previous release (stopping every peer), as no peer can go back
        // alone.
        export = (!raft && plan.choice.procedure == ProcedureKind::Standard)
            .then(|| first_export(undone, now))
            .flatten();
        if export.is_none() {
            return Err(RollbackRefusal::AcrossProtocol {
                run: run.clone(),
                problem,
            });
        }
    } else if raft && plan.facts.len() < 3 {
        return Err(RollbackRefusal::RaftTooSmall {
            run: run.clone(),
            peers: plan.facts.len(),
        });
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
        .find(|step| step.destructive && !touching(&step.id))
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
    let drift = drift(&touched, (from, via, to), now);
    if !drift.is_empty() {
        return Err(RollbackRefusal::Drifted {
            run: run.clone(),
            problems: drift,
        });
    }
    let way = match (export, &rebuild) {
        (Some(export), Some(_)) => RollbackWay::RebuildRaft(export),
        (Some(export), None) => RollbackWay::RestoreExport(export),
        (None, _) if migrated_raft => RollbackWay::RestoreRaft {
            hosts: raft_restored,
        },
        (None, _) => RollbackWay::OneAtATime,
    };
    // Docker hosts go back one container at a time (recreated on the previous image); the
    // ways that restore a state run the state commands on the host.
    let docker: Vec<HostName> = now
        .iter()
        .filter(|f| f.container.is_some())
        .map(|f| f.host.clone())
        .collect();
    if way != RollbackWay::OneAtATime && !docker.is_empty() {
        return Err(RollbackRefusal::Docker {
            run: run.clone(),
            way: way.name(),
            hosts: docker,
        });
    }
    let mut reasons = vec![format!(
        "its journal shows run {run} ({}, {from} → {to}) touched {} of {} peers: {}",
        plan.choice.procedure,
        touched.len(),
        now.len(),
        HostNames(&touched)
    )];
    reasons.push(way_reason(&way, plan, rebuild.as_deref()));
    if way == RollbackWay::OneAtATime
        && plan
            .steps
            .iter()
            .any(|s| unstaged(&s.id) == "pebble-format")
    {
        reasons.push(format!(
            "pebble stores the run raised stay raised: {from} itself rewrote them, and opens them"
        ));
    }
    let lister = match pinset_keeping(&way, undone, now, pin_loss)? {
        Some((lister, reason)) => {
            reasons.push(reason);
            lister
        }
        None => None,
    };
    Ok(RollbackChoice {
        undoes: run.clone(),
        to: from,
        from: to,
        touched,
        backup_run: undone.backup_run(),
        way,
        lister,
        reasons,
    })
}

/// What the way does, in words.
fn way_reason(way: &RollbackWay, plan: &Plan, rebuild: Option<&str>) -> String {
    let (from, to) = (plan.choice.from, plan.choice.to);
    match way {
        RollbackWay::OneAtATime => format!(
            "it changed only binaries ({}): only those peers go back to {from}, one at a time, from the run's backup on each, the others serving",
            match plan.choice.procedure {
                ProcedureKind::Rolling => "a rolling upgrade within one RPC protocol",
                _ => "a standard upgrade of a crdt cluster within one RPC protocol",
            }
        ),
        RollbackWay::RestoreExport(StateExport { anchor, file, .. }) => format!(
            "{from} and {to} speak different RPC protocols, so no peer can go back alone: every peer stops and gets {from}'s \
             binaries back from the run's backup; every peer's CRDT store is cleaned with {from}, the state {anchor} exported \
             with {from} before the upgrade ({file}, kept on the controller) is imported on {anchor}, and every peer starts \
             (the others fetch the pinset from {anchor})"
        ),
        RollbackWay::RebuildRaft(StateExport { anchor, file, .. }) => format!(
            "{}: its raft state cannot be put back folder by folder, so the cluster is rebuilt from the state {anchor} \
             exported with {from} before the upgrade ({file}, kept on the controller): every peer stops and gets {from}'s \
             binaries back from the run's backup; every raft folder is cleaned with {from} (kept as raft.old.0); {anchor} \
             imports the export and starts alone; every other peer starts with `daemon --bootstrap` to {anchor}",
            rebuild.unwrap_or("its state changed")
        ),
        RollbackWay::RestoreRaft { hosts } => format!(
            "its restart with `daemon --upgrade` moved the raft state of {} from format {} to {}: every peer stops, gets \
             {from}'s binaries back from the run's backup and (where migrated) the raft folder the upgrade kept as raft.old.0 \
             (the current one stays beside it as raft.before-rollback-<run>), then every peer starts",
            if hosts.is_empty() { "no peer".to_string() } else { HostNames(hosts).to_string() },
            from.state_format().unwrap_or_default(),
            to.state_format().unwrap_or_default(),
        ),
    }
}

/// For a way that restores the state from before the upgrade: the peer whose pinset is listed
/// right before the stop and made so again at the end (the export's host, or the last peer
/// that lists its pins for a raft restore), with what the plan says of it. When that peer
/// cannot list its pins now, the pins changed since the upgrade would be lost: refused, unless
/// `pin_loss` allows it (then no peer is listed). `None` for a way that keeps the state.
fn pinset_keeping(
    way: &RollbackWay,
    undone: Undone<'_>,
    now: &[HostFacts],
    pin_loss: PinLoss,
) -> Result<Option<(Option<HostName>, String)>, RollbackRefusal> {
    let Undone { run, plan, .. } = undone;
    let lister = match way {
        RollbackWay::OneAtATime => return Ok(None),
        RollbackWay::RestoreExport(export) | RollbackWay::RebuildRaft(export) => {
            now.iter().find(|f| f.host == export.anchor)
        }
        RollbackWay::RestoreRaft { .. } => {
            now.iter().rev().find(|f| f.pins.is_some()).or(now.last())
        }
    };
    let Some(lister) = lister else {
        return Ok(None);
    };
    let before = match crate::facts::Pinset::expected(&plan.facts) {
        Some(pins) => format!("{} pins when run {run} was planned", pins.count),
        None => format!("the pins of when run {run} was planned"),
    };
    match &lister.pins {
        Some(pins) => Ok(Some((
            Some(lister.host.clone()),
            format!(
                "the state restored holds the pinset of before the upgrade ({before}; {} lists {} now): pins added since \
                 would be lost and pins removed since would come back by restoring it alone, so the pinset is listed on {} \
                 right before the stop and made so again once the cluster is back (missing pins added, others removed)",
                lister.host, pins.count, lister.host
            ),
        ))),
        None => {
            let why = if lister.running {
                "it did not list its pins".to_string()
            } else {
                lister.not_running()
            };
            match pin_loss {
                PinLoss::Refused => Err(RollbackRefusal::PinsUnlisted {
                    run: run.clone(),
                    host: lister.host.clone(),
                    why,
                }),
                PinLoss::Allowed => Ok(Some((
                    None,
                    format!(
                        "the pinset cannot be listed on {} now ({why}): the state restored holds the pinset of before the \
                         upgrade ({before}); pins added or removed since are lost, as --allow-pin-loss allows",
                        lister.host
                    ),
                ))),
            }
        }
    }
}

/// Peers on a release the run did not install: a touched one must run the run's release or
/// the previous one, an untouched one the previous one.
/// A touched peer of a staged run may also run an intermediate release (`via`).
fn drift(
    touched: &[HostName],
    (from, via, to): (Version, &[Version], Version),
    now: &[HostFacts],
) -> Vec<String> {
    let mut drift = Vec::new();
    for host in now {
        let version = host.service_version;
        let was_touched = touched.contains(&host.host);
        let allowed = version == Some(from)
            || (was_touched && (version == Some(to) || version.is_some_and(|v| via.contains(&v))));
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
/// A rollback that restores an older state without listing the pinset first
/// (`--allow-pin-loss`: its plan stops every peer but has no `list-pins` step) checks no pins:
/// the peers list the older state's.
pub fn rollback_problems(plan: &Plan, now: &[HostFacts]) -> Vec<String> {
    let has = |id: &str| plan.steps.iter().any(|step| step.id.as_str() == id);
    let pins_let_go = has("stop-peers") && !has("list-pins");
    let planned: Vec<HostFacts>;
    let planned = if pins_let_go {
        planned = plan
            .facts
            .iter()
            .map(|f| HostFacts {
                pins: None,
                ..f.clone()
            })
            .collect();
        &planned
    } else {
        &plan.facts
    };
    crate::plan::final_gate_problems(planned, plan.choice.to, now, ProcedureKind::Rollback)
}

fn version_text(version: Option<Version>) -> String {
    version.map_or_else(|| "no known version".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests;
