//! Disaster recovery (`cluster-upgrade recover`): find the state that survives (a live raft
//! snapshot, a `raft.old.N` backup, or an export given on the command line), choose the
//! source, and plan the docs' recovery through `playbooks/recover.yaml`. Pure: no I/O.

mod export;
mod files;
mod gate;
mod plan;
mod source;

pub use export::{check_export_fits, ExportShape};
pub use files::{kept_export, ExportProblem};
pub use gate::recovery_problems;
pub use plan::{
    bootstrap_multiaddr, build_recovery_plan, remote_export_path, ExportFile, RecoveryInputs,
    EXPORT_BACKUP,
};
pub use source::{choose_source, Origin, RecoverRefusal, Source, SourceChoice};

/// Why a recovery cannot be planned or checked.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("recovery refused: {0}")]
    Refused(#[from] RecoverRefusal),
    #[error(transparent)]
    Render(#[from] crate::procedure::RenderError),
    #[error("{}: cannot use it as an export: {problem}", path.display())]
    Export {
        path: std::path::PathBuf,
        #[source]
        problem: ExportProblem,
    },
    #[error("cannot read the exported state of {host} back ({}): {problem}", path.display())]
    ExportCheck {
        host: crate::inventory::HostName,
        path: std::path::PathBuf,
        #[source]
        problem: ExportProblem,
    },
}
