//! The executor: runs a plan's steps over the hosts' SSH sessions, in order, parallel or serial
//! as each step says, recording every start and end in the journal before and after the remote
//! command, and skipping what the journal says is done.

mod events;
mod host_step;
mod runner;

pub use events::{Reporter, StepEvent};
pub use runner::{BackupsDir, ExecOptions, Executor, RunOutcome, StepFailure};
