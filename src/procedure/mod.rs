//! Playbooks: declarative upgrade procedures (`playbooks/*.yaml`), loaded into step specs with
//! compiled templates, and rendered per host for the planner.
//!
//! A playbook is a list of steps; each says where it runs (`on`), how (`mode`), what
//! (`command`, `upload`), how to tell it is already done (`check`), what to wait for
//! (`wait_until`) and what a resumed run does with it (`on_resume`). Templates are minijinja
//! with strict undefined; values pasted into commands go through `| quote`.

mod context;
mod error;
mod load;
mod raw;
mod render;
mod step;
mod template;
mod validate;

use std::path::{Path, PathBuf};

use crate::inventory::Vars;

pub use context::{
    AnchorContext, ClusterContext, CurrentContext, HostContext, ReleaseContext, ReleaseFileContext,
    ReleaseFilesContext, RunContext, TargetContext, TemplateContext,
};
pub use error::{ProcedureError, RenderError};
pub use render::{RenderedStep, RenderedUpload, RenderedWait};
pub use step::{Delegate, Mode, OnResume, StepId, StepIdError, StepSpec, Targets, UploadSpec, WaitSpec};
pub use template::{quote, TemplateRef};

use template::Templates;

/// A loaded playbook: its steps in order, with compiled templates.
#[derive(Debug, Clone)]
pub struct Procedure {
    pub name: String,
    pub description: Option<String>,
    /// The file it was loaded from.
    pub path: PathBuf,
    pub steps: Vec<StepSpec>,
    /// The playbook's `defaults:` (below every inventory variable).
    defaults: Vars,
    templates: Templates,
}

impl Procedure {
    /// Reads, validates and compiles the playbook at `path`.
    pub fn load(path: &Path) -> Result<Procedure, ProcedureError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProcedureError::Read { path: path.to_path_buf(), source })?;
        Procedure::from_text(path, &text)
    }

    /// Validates playbook `text` as if read from `path`.
    pub fn from_text(path: &Path, text: &str) -> Result<Procedure, ProcedureError> {
        load::load(path, text)
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|step| step.id.as_str() == id)
    }

    /// The playbook's default variables.
    pub fn defaults(&self) -> &Vars {
        &self.defaults
    }
}
