//! What the executor tells the outside world while it works. The executor never prints; the
//! `report` module implements [`Reporter`] for terminals, plain lines and tests.

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
    Failed {
        error: String,
    },
}

/// Receives the executor's events (from several tasks at once).
pub trait Reporter: Send + Sync {
    /// A step begins (`index` counts from 1 of `total`).
    fn step(&self, index: usize, total: usize, id: &str, name: &str);
    fn host_event(&self, step: &str, host: &str, event: &StepEvent);
}
