//! Playbooks: declarative upgrade procedures (`playbooks/*.yaml`), loaded into step specs with
//! compiled templates, and rendered per host for the planner.
//!
//! ```yaml
//! name: standard                  # required
//! description: …                  # optional
//! defaults: { systemd_unit: ipfs-cluster }   # variables below every inventory variable
//! partials_from: partials.yaml    # optional: a file beside it whose `partials:` come first
//! partials:                       # named snippets, pulled in with {% include "name" %}
//!                                 # (the playbook's own replace shared ones of the same name)
//!   ctl: "{{ bin_dir | quote }}/ipfs-cluster-ctl --host {{ api | quote }}"
//! steps:
//!   - id: stop-peers              # unique, kebab-case; names the step in the journal
//!     name: Stop every peer       # for people
//!     on: all                     # all | anchor | others | {host: NAME}
//!     mode: parallel              # parallel (default) | serial: one host after another
//!     delegate_to: target         # target (default) | anchor: run on the anchor, rendered for the host
//!     upload: {from: …, to: …, mode: 0o755}   # controller file → remote path, before the command
//!     command: "…"                # shell command (template)
//!     check: "…"                  # exit 0 = already done (template)
//!     wait_until: {command: "…", interval: 2s, deadline: 2m, delegate_to: target,
//!                  fail_when: "…"}    # exit 0 = it cannot pass any more (the peer exited):
//!                                     # asked after each failed try, fails the step at once
//!     timeout: 2m                 # default: inventory ssh.command_timeout
//!     retries: 0
//!     on_resume: check            # rerun | check | ask (default): for a step in flight when a run died
//!     when: '{{ … }}'             # renders to true / false; false skips the step for that host
//!     destructive: true           # the executor exports the state before the first one
//!     backup: 'state-{{ host.name }}.json'   # save the command's stdout in the run's backups/
//!     takes_quorum: true          # stops/removes peers: the cluster is re-checked right before
//!     establishes:                # what it leaves on its host, re-checked before a resume
//!       peer: stopped             # stopped | running
//!       installed: target         # the target release is installed
//!     on_demand: resync           # run only on the peers the controller picks after the
//!                                 # regular steps (mode: rolling; after every regular step)
//! ```
//!
//! A step needs a `command`, an `upload` or a `wait_until` (a pure gate). Templates are
//! minijinja with strict undefined; values pasted into commands go through `| quote`; the
//! context is documented in [`TemplateContext`]. `fail("message")` aborts rendering.

mod context;
mod error;
mod load;
mod raw;
mod render;
mod sample;
mod step;
mod template;
mod validate;

use std::path::{Path, PathBuf};

use crate::inventory::Vars;

pub use context::{
    AnchorContext, ClusterContext, ContainerContext, CurrentContext, HostContext, PinsContext,
    ReleaseContext, ReleaseFileContext, ReleaseFilesContext, RestApiContext, RunContext,
    TargetContext, TemplateContext,
};
pub use error::{IncludedBy, ProcedureError, RenderError};
pub use load::PartialsFiles;
pub use render::{Established, PreparedContext, RenderedStep, RenderedUpload, RenderedWait};
pub use step::{
    Delegate, EstablishesSpec, Mode, OnDemand, OnResume, PeerState, StepId, StepIdError, StepSpec,
    Targets, UploadSpec, WaitSpec,
};
pub use template::{quote, systemd_command, TemplateRef};
pub use validate::Coverage;

use template::Templates;

fn read(path: &Path) -> Result<String, ProcedureError> {
    std::fs::read_to_string(path).map_err(|source| ProcedureError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The file `name` in the folder of the playbook at `path`.
fn beside(path: &Path, name: &str) -> PathBuf {
    path.parent().unwrap_or(Path::new("")).join(name)
}

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
    /// Reads, validates and compiles the playbook at `path` (its `partials_from:` file from the
    /// same folder).
    pub fn load(path: &Path) -> Result<Procedure, ProcedureError> {
        let text = read(path)?;
        Procedure::from_text(path, &text)
    }

    /// Reads, validates and compiles the playbook at `path`, with `partials_files` reading the
    /// file its `partials_from:` names.
    pub fn load_with(
        path: &Path,
        partials_files: PartialsFiles<'_>,
    ) -> Result<Procedure, ProcedureError> {
        let text = read(path)?;
        load::load(path, &text, partials_files)
    }

    /// Validates playbook `text` as if read from `path` (its `partials_from:` file from the
    /// folder of `path`).
    pub fn from_text(path: &Path, text: &str) -> Result<Procedure, ProcedureError> {
        load::load(path, text, &|name| {
            let file = beside(path, name);
            let text = std::fs::read_to_string(&file);
            (file, text)
        })
    }

    /// Validates playbook `text` as if read from `path`, with `partials_files` reading the file
    /// its `partials_from:` names.
    pub fn from_text_with(
        path: &Path,
        text: &str,
        partials_files: PartialsFiles<'_>,
    ) -> Result<Procedure, ProcedureError> {
        load::load(path, text, partials_files)
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
