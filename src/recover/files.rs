//! The files a recovery reads on the controller: the export given with `--from-export`, and
//! the export the source peer imported (kept in the run's `backups/` by `keep-export`).

use std::path::Path;

use super::export::ExportShape;
use super::plan::{ExportFile, EXPORT_BACKUP};
use super::RecoverError;
use crate::facts::{pinset_of_listing, Pinset};
use crate::inventory::{HostName, Sha256};

/// Why an export file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExportProblem {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("no pins found (expected the JSON written by `ipfs-cluster-service state export`)")]
    NoPins,
    #[error("it is {shape}, but {host} runs {version}, which imports {expected}; import it with the release that exported it")]
    WrongShape {
        shape: ExportShape,
        host: HostName,
        version: crate::inventory::Version,
        expected: ExportShape,
    },
}

impl ExportFile {
    /// Reads `--from-export FILE`: it must be a readable export holding at least one pin.
    pub fn read(path: &Path) -> Result<ExportFile, RecoverError> {
        let bad = |problem| RecoverError::Export {
            path: path.to_path_buf(),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(ExportProblem::Read(e)))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad(ExportProblem::NotText))?;
        let pins = pinset_of_listing(text).count;
        let shape = ExportShape::of(text)
            .filter(|_| pins > 0)
            .ok_or_else(|| bad(ExportProblem::NoPins))?;
        Ok(ExportFile {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            sha256: Sha256::of(&bytes),
            pins,
            shape,
        })
    }
}

/// The export the source peer imported, as the `keep-export` step saved it in the run's
/// `backups_dir`: the pinset every peer must list at the end of the recovery.
pub fn kept_export(backups_dir: &Path, source: &HostName) -> Result<Pinset, RecoverError> {
    let path = backups_dir.join(EXPORT_BACKUP);
    let failed = |problem| RecoverError::ExportCheck {
        host: source.clone(),
        path: path.clone(),
        problem,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| failed(ExportProblem::Read(e)))?;
    let pins = pinset_of_listing(&text);
    if pins.count == 0 {
        return Err(failed(ExportProblem::NoPins));
    }
    Ok(pins)
}
