//! The top-level error: wraps every layer's error and decides the exit code.

use std::path::PathBuf;

use crate::exec::ConnectError;
use crate::inventory::{HostName, InventoryError};
use crate::journal::JournalError;
use crate::message::HostNames;
use crate::migrate::{MigrateError, MigrateRefusal};
use crate::plan::{PlanError, Refusal};
use crate::procedure::ProcedureError;
use crate::procedure::StepId;
use crate::recover::RecoverError;
use crate::rollback::{RollbackError, RollbackRefusal};

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const HOST_FAILED: u8 = 1;
    pub const INVALID_INPUT: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Procedure(#[from] ProcedureError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Recover(#[from] RecoverError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    #[error("{}: cannot read recorded facts: {source}", path.display())]
    FactsFile {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{}: not a plan `cluster-upgrade plan` saved: {source}", path.display())]
    PlanFile {
        path: PathBuf,
        #[source]
        source: crate::plan::PlanFileError,
    },
    #[error("no plan to apply: {} does not exist; run `cluster-upgrade plan INVENTORY` first, or give a plan or an inventory", path.display())]
    NoPlan { path: PathBuf },
    #[error("cannot reach {}", unreachable_text(hosts))]
    Unreachable { hosts: Vec<(HostName, String)> },
    #[error(
        "pruning failed on {} (the controller's backups were kept; run it again)",
        unreachable_text(hosts)
    )]
    PruneFailed { hosts: Vec<(HostName, String)> },
    #[error("the plan is stale: the cluster changed since it was made ({}); run `cluster-upgrade plan` again", changes.join("; "))]
    StalePlan { changes: Vec<String> },
    #[error("plan {run_id} was already applied (see `cluster-upgrade status --run {run_id}`); make a new plan")]
    AlreadyApplied { run_id: String },
    #[error("run {run_id} of this cluster is unfinished: run `cluster-upgrade apply {}` to resume it, or `cluster-upgrade runs abandon {run_id}` to drop it, before making or applying another plan", inventory.display())]
    UnfinishedRun { run_id: String, inventory: PathBuf },
    #[error("run {run_id} is an unfinished recovery: run `cluster-upgrade recover {}` to resume it (its final check is recover's), or `cluster-upgrade runs abandon {run_id}`", inventory.display())]
    UnfinishedRecovery { run_id: String, inventory: PathBuf },
    #[error("run {run_id} is an unfinished raft → crdt migration: run `cluster-upgrade migrate-consensus {} --to crdt` to resume it (its final check is the migration's), or `cluster-upgrade runs abandon {run_id}`", inventory.display())]
    UnfinishedMigration { run_id: String, inventory: PathBuf },
    #[error("run {run_id} is an unfinished rollback: run `cluster-upgrade rollback {}` to resume it (its final check is the rollback's), or `cluster-upgrade runs abandon {run_id}`", inventory.display())]
    UnfinishedRollback { run_id: String, inventory: PathBuf },
    #[error("runs of several clusters are unfinished in this state directory; name the one to resume (`cluster-upgrade apply INVENTORY`): {}", runs.join("; "))]
    SeveralUnfinished { runs: Vec<String> },
    #[error("a resumed run executes its saved plan: {} cannot be honoured (run {run_id} was planned without it); resume without it, or `cluster-upgrade runs abandon {run_id}` and plan again", options.join(", "))]
    ResumeOptions {
        options: Vec<&'static str>,
        run_id: String,
    },
    #[error("the cluster no longer matches the plan, so resuming is unsafe: {}", problems.join("; "))]
    UnsafeResume { problems: Vec<String> },
    #[error("another run holds the cluster: {}; wait for it to finish, or if it is dead (its controller crashed or was killed), take its lease over with `--take-over RUN_ID`", holders.join("; "))]
    LeaseHeld { holders: Vec<String> },
    #[error("stopped before `{step}`, which takes quorum away, with the cluster still up: it is no longer as the plan saw it ({}); put it back as planned (start a peer that stopped), then run `{resume}` again", problems.join("; "))]
    ClusterChanged {
        step: StepId,
        problems: Vec<String>,
        resume: &'static str,
    },
    #[error("not enough room: {}", problems.join("; "))]
    NoRoom {
        problems: Vec<String>,
        /// On the controller (invalid local set-up, exit 2) or on a host (refused, exit 3).
        on_controller: bool,
    },
    #[error("no run {run_id} in {}", dir.display())]
    UnknownRun { run_id: String, dir: PathBuf },
    #[error("run {run_id} is already {state}; only an unfinished run can be abandoned")]
    NotAbandonable { run_id: String, state: &'static str },
    #[error("refusing to apply without confirmation: there is no terminal to ask on; pass --yes")]
    NoConfirmation,
    #[error("not applied: the operator declined")]
    Declined,
    #[error(
        "step `{step}` failed on {}; fix the cause, then run `{resume}` again to resume",
        HostNames(hosts)
    )]
    StepFailed {
        step: StepId,
        hosts: Vec<HostName>,
        /// The command that resumes the run (`cluster-upgrade apply` or `… recover INVENTORY`).
        resume: &'static str,
    },
    #[error("step `{step}` was in flight on {host} when the last run stopped, and its playbook says to ask: check the host, then resume with `{resume} --retry-in-flight`")]
    NeedsOperator {
        step: StepId,
        host: HostName,
        resume: &'static str,
    },
    #[error("interrupted; the journal is consistent: run `{resume}` to resume")]
    Interrupted { resume: &'static str },
    #[error("the upgrade ran, but the cluster is not healthy: {}", problems.join("; "))]
    Verification { problems: Vec<String> },
    #[error("no run in {}", dir.display())]
    NoRun { dir: PathBuf },
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// `h1 (why), h2 (why)`, or, for hosts that failed alike, `12 hosts (h1, h2, h3, …) (why)`.
fn unreachable_text(hosts: &[(HostName, String)]) -> String {
    let mut by_reason: Vec<(&str, Vec<&HostName>)> = Vec::new();
    for (host, reason) in hosts {
        match by_reason.iter_mut().find(|(r, _)| *r == reason.as_str()) {
            Some((_, names)) => names.push(host),
            None => by_reason.push((reason, vec![host])),
        }
    }
    by_reason
        .iter()
        .map(|(reason, names)| format!("{} ({reason})", HostNames(names)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub use crate::message::chain;

impl Error {
    /// An unfinished run that another command resumes (each has its own final check): names
    /// the command that does.
    pub fn unfinished(
        procedure: crate::plan::ProcedureKind,
        run_id: String,
        inventory: PathBuf,
    ) -> Error {
        use crate::plan::ProcedureKind;
        match procedure {
            ProcedureKind::Recover => Error::UnfinishedRecovery { run_id, inventory },
            ProcedureKind::Migrate => Error::UnfinishedMigration { run_id, inventory },
            ProcedureKind::Rollback => Error::UnfinishedRollback { run_id, inventory },
            ProcedureKind::Standard | ProcedureKind::Rolling | ProcedureKind::Bootstrap => {
                Error::UnfinishedRun { run_id, inventory }
            }
        }
    }

    /// A stable, machine-readable name of the error, for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Inventory(_) => "invalid_inventory",
            Error::Procedure(_) => "invalid_playbook",
            Error::Plan(PlanError::Refused(_)) => "refused",
            Error::Plan(_) => "invalid_plan",
            Error::Journal(JournalError::Locked { .. }) => "locked",
            Error::Journal(JournalError::Unusable { .. }) => "unusable_state_directory",
            Error::Journal(_) => "journal",
            Error::Recover(_) => "recover",
            Error::Migrate(MigrateError::Refused(_)) => "refused",
            Error::Migrate(MigrateError::Render(_)) => "invalid_playbook",
            Error::Rollback(RollbackError::Refused(_)) => "refused",
            Error::Rollback(RollbackError::Render(_)) => "invalid_playbook",
            Error::FactsFile { .. } => "invalid_facts_file",
            Error::PlanFile { .. } => "invalid_plan_file",
            Error::NoPlan { .. } => "no_plan",
            Error::Unreachable { .. } => "unreachable",
            Error::PruneFailed { .. } => "prune_failed",
            Error::StalePlan { .. } => "stale_plan",
            Error::AlreadyApplied { .. } => "already_applied",
            Error::UnfinishedRun { .. } => "unfinished_run",
            Error::UnfinishedRecovery { .. } => "unfinished_recovery",
            Error::UnfinishedMigration { .. } => "unfinished_migration",
            Error::UnfinishedRollback { .. } => "unfinished_rollback",
            Error::SeveralUnfinished { .. } => "several_unfinished_runs",
            Error::ResumeOptions { .. } => "resume_options",
            Error::UnsafeResume { .. } => "unsafe_resume",
            Error::LeaseHeld { .. } => "lease_held",
            Error::ClusterChanged { .. } => "cluster_changed",
            Error::NoRoom { .. } => "no_room",
            Error::UnknownRun { .. } => "unknown_run",
            Error::NotAbandonable { .. } => "not_abandonable",
            Error::NoConfirmation => "no_confirmation",
            Error::Declined => "declined",
            Error::StepFailed { .. } => "step_failed",
            Error::NeedsOperator { .. } => "needs_operator",
            Error::Interrupted { .. } => "interrupted",
            Error::Verification { .. } => "unhealthy_after_run",
            Error::NoRun { .. } => "no_run",
            Error::Connect(ConnectError::OpenFiles { .. }) => "open_files",
            Error::Connect(ConnectError::Runtime(_)) => "runtime",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Inventory(_)
            | Error::Procedure(_)
            | Error::FactsFile { .. }
            | Error::PlanFile { .. }
            | Error::NoPlan { .. }
            | Error::NoConfirmation
            | Error::NoRun { .. }
            | Error::ResumeOptions { .. }
            | Error::UnknownRun { .. }
            | Error::NotAbandonable { .. }
            | Error::NoRoom {
                on_controller: true,
                ..
            }
            | Error::Journal(JournalError::Unusable { .. }) => exit::INVALID_INPUT,
            Error::Plan(PlanError::Refused(Refusal::Unreachable { .. })) => exit::HOST_FAILED,
            Error::Journal(JournalError::Locked { .. }) => exit::REFUSED,
            Error::Plan(PlanError::Refused(_)) => exit::REFUSED,
            Error::Plan(_) => exit::INVALID_INPUT,
            Error::Recover(RecoverError::Refused(
                crate::recover::RecoverRefusal::Unreachable { .. },
            )) => exit::HOST_FAILED,
            Error::Recover(RecoverError::Refused(_)) => exit::REFUSED,
            Error::Recover(RecoverError::Render(_) | RecoverError::Export { .. }) => {
                exit::INVALID_INPUT
            }
            Error::Recover(RecoverError::ExportCheck { .. }) => exit::HOST_FAILED,
            Error::Migrate(MigrateError::Refused(MigrateRefusal::Unreachable { .. })) => {
                exit::HOST_FAILED
            }
            Error::Migrate(MigrateError::Refused(_)) => exit::REFUSED,
            Error::Migrate(MigrateError::Render(_)) => exit::INVALID_INPUT,
            Error::Rollback(RollbackError::Refused(RollbackRefusal::Unreachable { .. })) => {
                exit::HOST_FAILED
            }
            Error::Rollback(RollbackError::Refused(RollbackRefusal::NotFound { .. })) => {
                exit::INVALID_INPUT
            }
            Error::Rollback(RollbackError::Refused(_)) => exit::REFUSED,
            Error::Rollback(RollbackError::Render(_)) => exit::INVALID_INPUT,
            Error::StalePlan { .. }
            | Error::AlreadyApplied { .. }
            | Error::UnfinishedRun { .. }
            | Error::UnfinishedRecovery { .. }
            | Error::UnfinishedMigration { .. }
            | Error::UnfinishedRollback { .. }
            | Error::UnsafeResume { .. }
            | Error::SeveralUnfinished { .. }
            | Error::LeaseHeld { .. }
            | Error::ClusterChanged { .. }
            | Error::NoRoom { .. }
            | Error::Connect(ConnectError::OpenFiles { .. })
            | Error::Declined => exit::REFUSED,
            Error::Interrupted { .. } => exit::INTERRUPTED,
            Error::Journal(_)
            | Error::Connect(ConnectError::Runtime(_))
            | Error::Unreachable { .. }
            | Error::PruneFailed { .. }
            | Error::StepFailed { .. }
            | Error::NeedsOperator { .. }
            | Error::Verification { .. } => exit::HOST_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: Error) -> u8 {
        error.exit_code()
    }

    #[test]
    fn exit_codes_follow_the_documented_classes() {
        let host: HostName = "h1".parse().unwrap();
        let step: StepId = "stop-peers".parse().unwrap();
        // 2: invalid input; nothing was touched.
        assert_eq!(code(Error::NoConfirmation), exit::INVALID_INPUT);
        assert_eq!(
            code(Error::NoPlan { path: "p".into() }),
            exit::INVALID_INPUT
        );
        let room = |on_controller| Error::NoRoom {
            problems: vec![],
            on_controller,
        };
        assert_eq!(code(room(true)), exit::INVALID_INPUT);
        // 3: refused as unsafe.
        assert_eq!(code(room(false)), exit::REFUSED);
        assert_eq!(code(Error::Declined), exit::REFUSED);
        assert_eq!(code(Error::LeaseHeld { holders: vec![] }), exit::REFUSED);
        assert_eq!(code(Error::StalePlan { changes: vec![] }), exit::REFUSED);
        assert_eq!(
            code(Error::UnsafeResume { problems: vec![] }),
            exit::REFUSED
        );
        let changed = Error::ClusterChanged {
            step: step.clone(),
            problems: vec![],
            resume: "r",
        };
        assert_eq!(code(changed), exit::REFUSED);
        // 1: a host or a step failed.
        let failed = Error::StepFailed {
            step: step.clone(),
            hosts: vec![host.clone()],
            resume: "r",
        };
        assert_eq!(code(failed), exit::HOST_FAILED);
        let unreachable = Error::Unreachable {
            hosts: vec![(host.clone(), "refused".into())],
        };
        assert_eq!(code(unreachable), exit::HOST_FAILED);
        let operator = Error::NeedsOperator {
            step,
            host,
            resume: "r",
        };
        assert_eq!(code(operator), exit::HOST_FAILED);
        assert_eq!(
            code(Error::Verification { problems: vec![] }),
            exit::HOST_FAILED
        );
        // 130: interrupted (Ctrl-C), as shells report SIGINT.
        assert_eq!(code(Error::Interrupted { resume: "r" }), exit::INTERRUPTED);
        assert_eq!(exit::INTERRUPTED, 128 + 2);
    }

    #[test]
    fn every_kind_names_its_error_for_json_output() {
        assert_eq!(Error::Interrupted { resume: "r" }.kind(), "interrupted");
        assert_eq!(Error::Declined.kind(), "declined");
        assert_eq!(Error::NoConfirmation.kind(), "no_confirmation");
    }
}
