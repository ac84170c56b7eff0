//! The run directory and its write-ahead journal: a record is appended and fsynced before each
//! remote command and after it; replaying the records gives the checkpoint a resumed run starts
//! from. A lock file keeps two `apply` processes from interleaving.

mod checkpoint;
mod group;
mod record;
mod run_dir;
mod run_id;
mod times;

pub use checkpoint::{Checkpoint, HostStepState};
pub use group::GroupJournal;
pub use record::{Event, Record};
pub use run_dir::{
    open_private, private_dir, write_private, write_private_with, JournalError, JournalWriter,
    RunDir, RunLock, StateDir, StateDirProblem,
};
pub use run_id::{utc_text, RunId, RunIdError};
pub use times::StepTimes;
