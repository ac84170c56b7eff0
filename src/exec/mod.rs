//! The executor: runs a plan's steps over the hosts' SSH sessions, in order, parallel or serial
//! as each step says, recording every start and end in the journal before and after the remote
//! command, and skipping what the journal says is done.

mod connected;
mod events;
mod host_step;
mod lease;
mod open_files;
mod runner;

pub use connected::{concurrency, gather_facts, ConnectError, Connected, PROBE_TIMEOUT};
pub use events::{Reporter, StepEvent, StepHeader};
pub use lease::{claim_all, release_all, Claim, Claims, LeaseHost, LeaseRequest};
pub use runner::{
    BackupsDir, ExecOptions, Executor, QuorumGate, RunOutcome, RunRecords, StepFailure,
};
