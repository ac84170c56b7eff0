//! Plan files: written sealed (see `plan::SealingWriter`) and private, read back only when the
//! seal holds, the format is this tool's, and the run id is one it makes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::journal::{open_private, write_private_with};
use crate::plan::{unseal, Choice, ClusterId, Plan, PlanFileError, SealingWriter, PLAN_FORMAT};

/// Saves `plan`, streamed and sealed: a large cluster's plan is never one string. Compact: plan
/// files are read by `apply` and by tools (`jq` shows them indented); people read `plan`'s text
/// view. Indenting the deeply nested steps made a third of a large plan's bytes.
pub fn write_plan(path: &Path, plan: &Plan) -> Result<(), Error> {
    write_private_with(path, |out| {
        let mut sealing = SealingWriter::new(&mut *out);
        serde_json::to_writer(&mut sealing, plan)?;
        sealing.finish()?.flush()
    })?;
    Ok(())
}

/// Reads a saved plan: sealed, of this format, with a run id this tool makes.
pub fn read_plan(path: &Path) -> Result<Plan, Error> {
    read(path).map_err(|source| Error::PlanFile {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<Plan, PlanFileError> {
    let mut bytes = Vec::new();
    open_private(path)
        .map_err(|e| match e {
            crate::journal::JournalError::Io { source, .. } => PlanFileError::Read(source),
            other => PlanFileError::Read(std::io::Error::other(other.to_string())),
        })?
        .read_to_end(&mut bytes)
        .map_err(PlanFileError::Read)?;
    // The format first: a plan of an older cluster-upgrade has no seal and should say so.
    #[derive(Deserialize)]
    struct Format {
        format: u64,
    }
    if let Ok(Format { format }) = serde_json::from_slice::<Format>(&bytes) {
        if format != u64::from(PLAN_FORMAT) {
            return Err(PlanFileError::Format { found: format });
        }
    }
    unseal(&mut bytes)?;
    serde_json::from_slice(&bytes).map_err(PlanFileError::Json)
}

/// What `runs` shows of a run's plan, read without checking the rest of it.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanSummary {
    pub cluster_id: ClusterId,
    pub choice: Choice,
    pub inventory: PathBuf,
}

/// The summary of the plan at `path`.
pub fn read_summary(path: &Path) -> Result<PlanSummary, Error> {
    let failed = |source| Error::PlanFile {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    open_private(path)
        .map_err(|e| failed(PlanFileError::Read(std::io::Error::other(e.to_string()))))?
        .read_to_end(&mut bytes)
        .map_err(|e| failed(PlanFileError::Read(e)))?;
    serde_json::from_slice(&bytes).map_err(|e| failed(PlanFileError::Json(e)))
}
