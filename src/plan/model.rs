//! The plan: everything `apply` will run, rendered, with the facts it was made from. Saved as
//! JSON; a resumed run executes the saved plan, never a silent re-plan.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choice::Choice;
use crate::facts::HostFacts;
use crate::procedure::{Mode, OnResume, RenderedStep};

/// The version of the plan file format. 2: the facts keep a peerset digest (`peerset`), not
/// the list of peer IDs (`cluster_peers`); a format-1 plan's facts fingerprint no longer matches
/// facts probed now, so it is refused rather than reported as stale. 3: compact JSON; a step's
/// host entries leave out what the step says for all of them and their `null` fields.
pub const PLAN_FORMAT: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    /// The run this plan becomes when applied: names the run directory and the remote backup
    /// folder that the rendered commands use.
    pub run_id: String,
    /// Seconds since the Unix epoch when the plan was made.
    pub created_unix: u64,
    /// The inventory the plan was made from (absolute).
    pub inventory: PathBuf,
    pub cluster: String,
    /// The playbook the steps come from.
    pub playbook: PathBuf,
    pub choice: Choice,
    pub facts: Vec<HostFacts>,
    /// SHA-256 of the facts as JSON: `apply` probes again and compares before it starts.
    pub facts_fingerprint: String,
    pub steps: Vec<PlannedStep>,
    pub expected_downtime: String,
    /// Backups the plan takes, in words (where and what).
    pub backups: Vec<String>,
}

/// One step of the procedure with its rendered command for every host it runs for. Written
/// without repeating on every host what the step's hosts share (see `file.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    pub id: String,
    pub name: String,
    pub mode: Mode,
    /// The executor takes a state backup before the first destructive step.
    pub destructive: bool,
    /// What resume does when this step was in flight when the run died.
    pub on_resume: OnResume,
    /// In host order; for a serial step, the order they run in.
    pub hosts: Vec<RenderedStep>,
}

impl Plan {
    /// SHA-256 over the facts' JSON, to notice that the cluster changed since planning.
    pub fn fingerprint(facts: &[HostFacts]) -> String {
        use sha2::{Digest, Sha256};
        // Streamed into the hash: the facts of a large cluster need no JSON copy in memory.
        struct Hashing(Sha256);
        impl std::io::Write for Hashing {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.update(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut hashing = Hashing(Sha256::new());
        serde_json::to_writer(&mut hashing, facts).expect("facts serialize");
        hashing
            .0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
