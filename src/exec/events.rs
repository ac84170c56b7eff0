//! What the executor tells the outside world while it works. The executor never prints; the
//! `report` module implements [`Reporter`] for terminals, plain lines and tests.

use crate::inventory::HostName;
use crate::procedure::StepId;

/// One thing that happened to one step on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEvent {
    /// The journal says it is done: nothing runs.
    AlreadyDone,
    Started {
        attempt: u32,
    },
    /// The step's `check` said its effect is already there.
    DoneByCheck,
    /// Waiting for `wait_until` to pass.
    Waiting,
    Finished,
    /// The step failed: why, and the last lines the failing command printed (its stderr, or
    /// its stdout when stderr was empty; empty when it printed nothing).
    Failed {
        error: String,
        stderr_tail: String,
    },
}

/// A step as the reporter is told of it: `index` counts from 1 of `total`.
#[derive(Debug, Clone, Copy)]
pub struct StepHeader<'a> {
    pub index: usize,
    pub total: usize,
    pub id: &'a StepId,
    pub name: &'a str,
}

/// Receives the executor's events (from several tasks at once).
pub trait Reporter: Send + Sync {
    /// A step begins.
    fn step(&self, header: StepHeader<'_>);
    fn host_event(&self, step: &StepId, host: &HostName, event: &StepEvent);
}
