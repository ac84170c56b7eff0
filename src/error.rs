//! The top-level error: wraps every layer's error and decides the exit code.

use std::path::PathBuf;

use crate::inventory::InventoryError;
use crate::plan::{PlanError, Refusal};
use crate::procedure::ProcedureError;

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const HOST_FAILED: u8 = 1;
    pub const INVALID_INPUT: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Procedure(#[from] ProcedureError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{}: cannot read recorded facts: {source}", path.display())]
    FactsFile {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// An error and its causes on one line: `a: b: c` (library errors keep causes in `source()`).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Inventory(_) | Error::Procedure(_) | Error::FactsFile { .. } => exit::INVALID_INPUT,
            Error::Plan(PlanError::Refused(Refusal::Unreachable { .. })) => exit::HOST_FAILED,
            Error::Plan(PlanError::Refused(_)) => exit::REFUSED,
            Error::Plan(_) => exit::INVALID_INPUT,
            Error::Write { .. } | Error::Runtime(_) => exit::HOST_FAILED,
        }
    }
}
