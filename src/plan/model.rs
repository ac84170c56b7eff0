//! The plan: everything `apply` will run, rendered, with the facts it was made from. Saved as
//! JSON; a resumed run executes the saved plan, never a silent re-plan.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choice::Choice;
use crate::facts::HostFacts;

/// The version of the plan file format.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    /// Seconds since the Unix epoch when the plan was made.
    pub created_unix: u64,
    /// The inventory the plan was made from (absolute).
    pub inventory: PathBuf,
    pub cluster: String,
    pub choice: Choice,
    pub facts: Vec<HostFacts>,
    /// SHA-256 of the facts as JSON: `apply` probes again and compares before it starts.
    pub facts_fingerprint: String,
    pub steps: Vec<PlannedStep>,
    pub expected_downtime: String,
    /// Backups the plan takes, in words (where and what).
    pub backups: Vec<String>,
}

/// One step of the procedure with its rendered command for every host it runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub id: String,
    pub name: String,
    pub mode: StepMode,
    /// The executor takes a state backup before the first destructive step.
    pub destructive: bool,
    /// What resume does when this step was in flight when the run died.
    pub on_resume: OnResume,
    pub hosts: Vec<HostStep>,
}

/// Whether a step runs on its hosts at once or one after another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepMode {
    Parallel,
    Serial,
}

/// What resume does with a step that was started but not recorded as finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnResume {
    /// Run it again (idempotent steps).
    Rerun,
    /// Run its `check` first; run the step only if the check says it is not done.
    Check,
    /// Stop and ask the operator to check the host.
    Ask,
}

/// A step as rendered for one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStep {
    pub host: String,
    /// Files copied from the controller before the command.
    pub upload: Option<Upload>,
    pub command: Option<String>,
    /// Exit 0 means the step's effect is already there.
    pub check: Option<String>,
    pub wait_until: Option<WaitUntil>,
    pub timeout_ms: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub from: PathBuf,
    pub to: String,
    pub mode: u32,
}

/// A probe repeated every `interval_ms` until it exits 0 or `deadline_ms` passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitUntil {
    pub command: String,
    pub interval_ms: u64,
    pub deadline_ms: u64,
}

impl Plan {
    /// SHA-256 over the facts' JSON, to notice that the cluster changed since planning.
    pub fn fingerprint(facts: &[HostFacts]) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(facts).expect("facts serialize");
        Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect()
    }
}
