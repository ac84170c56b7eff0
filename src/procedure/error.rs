//! Playbook errors: loading (syntax, shape, templates) and rendering (per step and host).

use std::io;
use std::path::PathBuf;

use crate::inventory::SourcePosition;

use super::step::StepId;
use crate::message::{Lines, Prefix};

/// A playbook that could not be loaded or does not fit an inventory.
#[derive(Debug, thiserror::Error)]
pub enum ProcedureError {
    #[error("{}: cannot read the playbook: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file of partials a playbook names (`partials_from:`) cannot be read.
    #[error("{at}: partials_from: cannot read {}: {source}", path.display())]
    PartialsRead {
        at: SourcePosition,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// YAML syntax, unknown key, wrong type or missing key.
    #[error("{at}: {message}")]
    Yaml { at: SourcePosition, message: String },

    /// Two steps with one id.
    #[error("{at}: duplicate step id `{step}` (first defined at {first})")]
    DuplicateStep {
        at: SourcePosition,
        step: String,
        first: SourcePosition,
    },

    /// A value of the right type that is not acceptable.
    #[error("{at}: {}invalid {field} `{value}`: {reason}", Prefix("step", step))]
    InvalidValue {
        at: SourcePosition,
        step: Option<String>,
        field: &'static str,
        value: String,
        reason: String,
    },

    /// A step with nothing to do.
    #[error("{at}: step `{step}`: needs a `command`, an `upload` or a `wait_until`")]
    NothingToDo { at: SourcePosition, step: String },

    /// A template that does not compile.
    #[error("{at}: {}{field}: {message}", Prefix("step", step))]
    TemplateSyntax {
        at: SourcePosition,
        step: Option<String>,
        field: String,
        message: String,
    },

    /// `on: { host: NAME }` names a host the inventory lacks.
    #[error("{at}: step `{step}`: unknown host `{host}` (not in the inventory)")]
    UnknownHost {
        at: SourcePosition,
        step: StepId,
        host: String,
    },

    /// A template that fails for some host of the inventory.
    #[error(transparent)]
    Render(Box<RenderError>),

    /// Several of the above, one per line.
    #[error("{}", Lines(errors))]
    Several { errors: Vec<ProcedureError> },
}

impl ProcedureError {
    /// The individual errors (one, or each of `Several`).
    pub fn errors(&self) -> Vec<&ProcedureError> {
        match self {
            ProcedureError::Several { errors } => errors.iter().collect(),
            single => vec![single],
        }
    }

    pub(crate) fn from_list(mut errors: Vec<ProcedureError>) -> Option<ProcedureError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ProcedureError::Several { errors }),
        }
    }
}

/// A step that cannot be rendered for a host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// A template failed: undefined variable, `quote` refusing a value, `fail(...)`, …
    #[error("{at}: step `{step}`{included} for host `{host}`: {field}: {message}")]
    Template {
        at: SourcePosition,
        step: StepId,
        /// Where the step is, when the failing template is a partial of another file.
        included: IncludedBy,
        host: Box<str>,
        /// `command`, `check`, `when`, `upload.from`, `wait_until.command`, …
        field: &'static str,
        message: Box<str>,
        /// The undefined variable as written in the template, when that is the problem.
        variable: Option<Box<str>>,
    },

    /// `when` rendered to something other than `true` or `false`.
    #[error("{at}: step `{step}` for host `{host}`: `when` must render to true or false, got `{rendered}`")]
    WhenNotBoolean {
        at: SourcePosition,
        step: StepId,
        host: String,
        rendered: String,
    },

    /// A command template rendered to nothing.
    #[error("{at}: step `{step}` for host `{host}`: {field} rendered empty")]
    Empty {
        at: SourcePosition,
        step: StepId,
        host: String,
        field: &'static str,
    },

    /// The context names a host that is not a valid host name.
    #[error("step `{step}`: the context's {role} `{name}` is not a valid host name")]
    BadHostName {
        step: StepId,
        role: &'static str,
        name: String,
    },
}

/// The step that included a partial from another file (a shared `partials.yaml` serves
/// several playbooks: its line alone does not say which one failed); nothing when the failing
/// template is the step's own or a partial of its own file.
#[derive(Debug, Clone, Default)]
pub struct IncludedBy(pub Option<Box<SourcePosition>>);

impl std::fmt::Display for IncludedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(step) => write!(f, " of {step}"),
            None => Ok(()),
        }
    }
}

impl From<RenderError> for ProcedureError {
    fn from(error: RenderError) -> ProcedureError {
        ProcedureError::Render(Box::new(error))
    }
}

impl RenderError {
    /// Whether the problem is a variable the context lacks (as opposed to a refused value).
    pub fn is_undefined_variable(&self) -> bool {
        matches!(
            self,
            RenderError::Template {
                variable: Some(_),
                ..
            }
        )
    }
}
