//! Journal records: one JSON object per line.

use serde::{Deserialize, Serialize};

use crate::inventory::{HostName, Sha256};
use crate::procedure::StepId;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `apply` started (or resumed) the run.
    RunStarted { pid: u32, resumed: bool },
    /// Written and made durable before the step's first remote command on this host.
    StepStarted {
        step: StepId,
        host: HostName,
        attempt: u32,
    },
    /// The step's effect is in place on this host (`by_check`: its check said so, nothing ran).
    StepFinished {
        step: StepId,
        host: HostName,
        by_check: bool,
    },
    /// The step failed on this host; the run stops after the step's other hosts.
    StepFailed {
        step: StepId,
        host: HostName,
        error: String,
        stderr_tail: String,
    },
    /// A state export copied to the controller.
    Backup {
        host: HostName,
        file: String,
        sha256: Sha256,
    },
    /// Every step finished.
    RunFinished,
    /// The run stopped (failure or interruption); a later `apply` resumes it.
    RunStopped { reason: String },
    /// A resumed run runs a step again on a host although the journal says it finished there:
    /// what it left is gone (a state export missing from `backups/`).
    StepReset {
        step: StepId,
        host: HostName,
        reason: String,
    },
    /// `cluster-upgrade runs abandon`: the run will never be resumed; a new plan may be made.
    RunAbandoned { by: String },
    /// The run took over the hosts' lease held by run `from` (`--take-over`, or a run this
    /// state directory knows to be finished or abandoned).
    LeaseTakenOver { from: String, hosts: Vec<HostName> },
    /// After the regular steps, the controller picked these hosts for the plan's on-demand
    /// steps (a resync of peers whose pinset did not converge), in the order they run.
    OnDemandPicked { hosts: Vec<HostName>, why: String },
}

impl Record {
    pub fn now(event: Event) -> Record {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Record { at_ms, event }
    }
}
