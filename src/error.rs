//! The top-level error: wraps every layer's error and decides the exit code.

use std::path::PathBuf;

use crate::inventory::InventoryError;
use crate::journal::JournalError;
use crate::message::HostNames;
use crate::plan::{PlanError, Refusal};
use crate::procedure::ProcedureError;
use crate::recover::RecoverError;

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
    #[error("{}: cannot read recorded facts: {source}", path.display())]
    FactsFile {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{}: not a plan saved by `cluster-upgrade plan --out`: {message}", path.display())]
    PlanFile { path: PathBuf, message: String },
    #[error("no plan to apply: {} does not exist; run `cluster-upgrade plan INVENTORY` first, or give a plan or an inventory", path.display())]
    NoPlan { path: PathBuf },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot reach {}", unreachable_text(hosts))]
    Unreachable { hosts: Vec<(String, String)> },
    #[error("the plan is stale: the cluster changed since it was made ({}); run `cluster-upgrade plan` again", changes.join("; "))]
    StalePlan { changes: Vec<String> },
    #[error("plan {run_id} was already applied (see `cluster-upgrade status --run {run_id}`); make a new plan")]
    AlreadyApplied { run_id: String },
    #[error("run {run_id} is unfinished: run `cluster-upgrade apply` (without a plan) to resume it before applying another plan")]
    UnfinishedRun { run_id: String },
    #[error("run {run_id} is an unfinished recovery: run `cluster-upgrade recover INVENTORY` to resume it (its final check is recover's)")]
    UnfinishedRecovery { run_id: String },
    #[error("the cluster no longer matches the plan, so resuming is unsafe: {}", problems.join("; "))]
    UnsafeResume { problems: Vec<String> },
    #[error("refusing to apply without confirmation: there is no terminal to ask on; pass --yes")]
    NoConfirmation,
    #[error("not applied: the operator declined")]
    Declined,
    #[error(
        "step `{step}` failed on {}; fix the cause, then run `{resume}` again to resume",
        HostNames(hosts)
    )]
    StepFailed {
        step: String,
        hosts: Vec<String>,
        /// The command that resumes the run (`cluster-upgrade apply` or `… recover INVENTORY`).
        resume: &'static str,
    },
    #[error("step `{step}` was in flight on {host} when the last run stopped, and its playbook says to ask: check the host, then resume with `{resume} --retry-in-flight`")]
    NeedsOperator {
        step: String,
        host: String,
        resume: &'static str,
    },
    #[error("interrupted; the journal is consistent: run `{resume}` to resume")]
    Interrupted { resume: &'static str },
    #[error("the upgrade ran, but the cluster is not healthy: {}", problems.join("; "))]
    Verification { problems: Vec<String> },
    #[error("no run in {}", dir.display())]
    NoRun { dir: PathBuf },
    #[error("{hosts} hosts need about {needed} open files (one SSH connection each, kept for the whole run), but this process may open {limit} ({why}); raise it (`ulimit -n {needed}`, or `nofile` in /etc/security/limits.conf or the unit's LimitNOFILE), or run on fewer hosts at a time")]
    OpenFiles {
        hosts: usize,
        needed: u64,
        limit: u64,
        why: String,
    },
}

/// `h1 (why), h2 (why)`, or, for hosts that failed alike, `12 hosts (h1, h2, h3, …) (why)`.
fn unreachable_text(hosts: &[(String, String)]) -> String {
    let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
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

/// An error and its causes on one line: `a: b: c` (library errors keep causes in `source()`).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Inventory(_)
            | Error::Procedure(_)
            | Error::FactsFile { .. }
            | Error::PlanFile { .. }
            | Error::NoPlan { .. }
            | Error::NoConfirmation
            | Error::NoRun { .. } => exit::INVALID_INPUT,
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
            Error::StalePlan { .. }
            | Error::AlreadyApplied { .. }
            | Error::UnfinishedRun { .. }
            | Error::UnfinishedRecovery { .. }
            | Error::UnsafeResume { .. }
            | Error::OpenFiles { .. }
            | Error::Declined => exit::REFUSED,
            Error::Interrupted { .. } => exit::INTERRUPTED,
            Error::Journal(_)
            | Error::Runtime(_)
            | Error::Unreachable { .. }
            | Error::StepFailed { .. }
            | Error::NeedsOperator { .. }
            | Error::Verification { .. } => exit::HOST_FAILED,
        }
    }
}
