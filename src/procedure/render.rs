//! Rendering a step for one host: the planner's view of a step, every template filled in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use minijinja::Value;
use serde::{Deserialize, Serialize};

use crate::inventory::{HostName, HumanDuration, Vars, Version};

use super::context::TemplateContext;
use super::error::{IncludedBy, RenderError};
use super::step::{Deadline, Delegate, Mode, OnResume, PeerState, StepId, StepSpec};
use super::template::TemplateRef;
use super::Procedure;

/// A step rendered for one host: plain strings, ready for the plan and the executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedStep {
    pub id: StepId,
    pub name: String,
    /// The host the step is for.
    pub host: HostName,
    /// Where `command`, `upload` and `check` run: `host`, or the anchor when delegated.
    pub run_on: HostName,
    pub mode: Mode,
    pub command: Option<String>,
    /// Done before `command`.
    pub upload: Option<RenderedUpload>,
    /// Exit 0: the step's effect is already there.
    pub check: Option<String>,
    pub wait_until: Option<RenderedWait>,
    /// `None`: the inventory's `ssh.command_timeout`.
    pub timeout: Option<HumanDuration>,
    pub retries: u32,
    pub on_resume: OnResume,
    pub destructive: bool,
    /// File name in the run's `backups/` for the command's stdout.
    #[serde(default)]
    pub backup: Option<String>,
    /// What the step leaves on `host` once finished (see `EstablishesSpec`).
    #[serde(default)]
    pub establishes: Option<Established>,
}

/// A step's `establishes:`, rendered for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Established {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerState>,
    /// The release the host has installed once the step finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Version>,
}

/// A rendered `upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedUpload {
    /// Path on the controller.
    pub from: PathBuf,
    /// Path on `run_on`.
    pub to: String,
    pub mode: u32,
}

/// A rendered `wait_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedWait {
    pub command: String,
    pub interval: HumanDuration,
    pub deadline: HumanDuration,
    /// Exit 0 means the wait cannot pass any more: the step fails at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_when: Option<String>,
    /// Where the wait runs (it may differ from the command's host: `peers rm` runs on the
    /// anchor, the wait for the removed peer to stop runs on that peer).
    pub run_on: HostName,
}

/// Whether a `false` `when` skips the step (planning) or is ignored so every template of the
/// step is still rendered (checking).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WhenPolicy {
    Honour,
    RenderEverything,
}

/// A host's template context converted for minijinja once, to render each of its steps.
#[derive(Debug, Clone)]
pub struct PreparedContext {
    host: String,
    anchor: String,
    /// The target release, for `establishes: {installed: target}`.
    target: Option<Version>,
    value: Value,
}

impl Procedure {
    /// Renders `step` for the host described by `context`. `Ok(None)` when the step's `when`
    /// renders to `false` for this host.
    pub fn render_step(
        &self,
        step: &StepSpec,
        context: &TemplateContext,
    ) -> Result<Option<RenderedStep>, RenderError> {
        self.render_prepared(step, &self.prepare(context))
    }

    /// [`Procedure::render_step`] with a context converted by [`Procedure::prepare`].
    pub fn render_prepared(
        &self,
        step: &StepSpec,
        context: &PreparedContext,
    ) -> Result<Option<RenderedStep>, RenderError> {
        self.render_with(step, context, WhenPolicy::Honour)
    }

    /// Converts `context` for the templates, to render many steps with.
    pub fn prepare(&self, context: &TemplateContext) -> PreparedContext {
        PreparedContext {
            host: context.host.name.clone(),
            anchor: context.anchor.name.clone(),
            target: context.target.version.parse().ok(),
            value: self.context_value(context),
        }
    }

    /// The context as templates see it: the playbook's `defaults` under the host's variables
    /// (and under the anchor's, in `anchor.vars`). Built straight into minijinja values, without
    /// a JSON copy in between: the planner converts one context per host.
    fn context_value(&self, context: &TemplateContext) -> Value {
        let mut top = layered_vars(&self.defaults, &context.vars);
        let anchor = &context.anchor;
        let anchor_value = Value::from_iter([
            ("name", Value::from(anchor.name.as_str())),
            ("peer_id", Value::from(anchor.peer_id.clone())),
            ("multiaddr", Value::from(anchor.multiaddr.clone())),
            (
                "vars",
                Value::from_iter(layered_vars(&self.defaults, &anchor.vars)),
            ),
            ("rest_api", Value::from_serialize(&anchor.rest_api)),
        ]);
        top.extend([
            ("host", Value::from_serialize(&context.host)),
            ("cluster", Value::from_serialize(&context.cluster)),
            ("target", Value::from_serialize(&context.target)),
            ("current", Value::from_serialize(&context.current)),
            ("anchor", anchor_value),
            ("release", Value::from_serialize(&context.release)),
            ("run", Value::from_serialize(&context.run)),
            ("rest_api", Value::from_serialize(&context.rest_api)),
        ]);
        Value::from_iter(top)
    }

    pub(super) fn render_with(
        &self,
        step: &StepSpec,
        context: &PreparedContext,
        policy: WhenPolicy,
    ) -> Result<Option<RenderedStep>, RenderError> {
        let renderer = StepRenderer {
            procedure: self,
            step,
            host: &context.host,
            context: &context.value,
        };
        let host = host_name(step, "host", &context.host)?;
        let anchor = host_name(step, "anchor", &context.anchor)?;
        let run_on = |delegate: Delegate| match delegate {
            Delegate::Target => host.clone(),
            Delegate::Anchor => anchor.clone(),
        };
        let enabled = match &step.when {
            None => true,
            Some(when) => renderer.when(when)?,
        };
        if !enabled && policy == WhenPolicy::Honour {
            return Ok(None);
        }
        let parts = renderer.parts(&run_on);
        let (command, upload, check, wait_until, backup) = match parts {
            Ok(parts) => parts,
            // A skipped step may legitimately meet nulls (a url-only step with a local source):
            // while checking, only its undefined variables are mistakes.
            Err(error) if !enabled && !error.is_undefined_variable() => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(Some(RenderedStep {
            id: step.id.clone(),
            name: step.name.clone(),
            run_on: run_on(step.delegate_to),
            host,
            mode: step.mode,
            command,
            upload,
            check,
            wait_until,
            timeout: step.timeout,
            retries: step.retries,
            on_resume: step.on_resume,
            destructive: step.destructive,
            backup,
            establishes: established(step, context.target),
        }))
    }
}

/// What `step` leaves on its host, with `target` resolved; `None` for a step that says nothing
/// (or runs elsewhere: a delegated step's effect is on the anchor).
fn established(step: &StepSpec, target: Option<Version>) -> Option<Established> {
    let spec = step.establishes;
    let established = Established {
        peer: spec.peer,
        installed: target.filter(|_| spec.installed_target),
    };
    let says_something = established.peer.is_some() || established.installed.is_some();
    (says_something && step.delegate_to == Delegate::Target).then_some(established)
}

/// `defaults` with `vars` on top, as template values.
fn layered_vars<'a>(defaults: &'a Vars, vars: &'a Vars) -> BTreeMap<&'a str, Value> {
    defaults
        .iter()
        .chain(vars.iter())
        .map(|(name, value)| (name.as_str(), Value::from_serialize(value)))
        .collect()
}

fn host_name(step: &StepSpec, role: &'static str, name: &str) -> Result<HostName, RenderError> {
    name.parse().map_err(|_| RenderError::BadHostName {
        step: step.id.clone(),
        role,
        name: name.to_string(),
    })
}

struct StepRenderer<'a> {
    procedure: &'a Procedure,
    step: &'a StepSpec,
    host: &'a str,
    context: &'a Value,
}

type Parts = (
    Option<String>,
    Option<RenderedUpload>,
    Option<String>,
    Option<RenderedWait>,
    Option<String>,
);

impl StepRenderer<'_> {
    /// Every template of the step but `when`.
    fn parts(&self, run_on: &dyn Fn(Delegate) -> HostName) -> Result<Parts, RenderError> {
        let step = self.step;
        let command = step
            .command
            .as_ref()
            .map(|t| self.required(t, "command"))
            .transpose()?;
        let upload = match &step.upload {
            None => None,
            Some(upload) => Some(RenderedUpload {
                from: PathBuf::from(self.required(&upload.from, "upload.from")?),
                to: self.required(&upload.to, "upload.to")?,
                mode: upload.mode,
            }),
        };
        let check = step
            .check
            .as_ref()
            .map(|t| self.required(t, "check"))
            .transpose()?;
        let wait_until = match &step.wait_until {
            None => None,
            Some(wait) => Some(RenderedWait {
                command: self.required(&wait.command, "wait_until.command")?,
                interval: wait.interval,
                deadline: self.deadline(&wait.deadline)?,
                fail_when: wait
                    .fail_when
                    .as_ref()
                    .map(|t| self.required(t, "wait_until.fail_when"))
                    .transpose()?,
                run_on: run_on(wait.delegate_to),
            }),
        };
        let backup = step
            .backup
            .as_ref()
            .map(|t| self.required(t, "backup"))
            .transpose()?;
        Ok((command, upload, check, wait_until, backup))
    }

    fn render(&self, template: &TemplateRef, field: &'static str) -> Result<String, RenderError> {
        self.procedure
            .templates
            .render(template, self.context)
            .map_err(|failure| RenderError::Template {
                included: IncludedBy(
                    (failure.at.file != self.step.position.file)
                        .then(|| Box::new(self.step.position.clone())),
                ),
                at: failure.at,
                step: self.step.id.clone(),
                host: self.host.into(),
                field,
                message: failure.message.into(),
                variable: failure.variable.map(Into::into),
            })
    }

    /// A field that must not render empty (an empty command would "succeed" doing nothing).
    /// A templated deadline renders to a positive duration (`30m`, `2h`).
    fn deadline(&self, deadline: &Deadline) -> Result<HumanDuration, RenderError> {
        let template = match deadline {
            Deadline::Fixed(duration) => return Ok(*duration),
            Deadline::Template(template) => template,
        };
        let field = "wait_until.deadline";
        let text = self.required(template, field)?;
        match text.trim().parse::<HumanDuration>() {
            Ok(duration) if !duration.get().is_zero() => Ok(duration),
            Ok(_) => Err(self.invalid(field, format!("`{text}` must be longer than 0"))),
            Err(reason) => Err(self.invalid(field, format!("`{text}`: {reason}"))),
        }
    }

    fn invalid(&self, field: &'static str, message: String) -> RenderError {
        RenderError::Template {
            at: self.step.position.clone(),
            step: self.step.id.clone(),
            included: IncludedBy::default(),
            host: self.host.into(),
            field,
            message: message.into(),
            variable: None,
        }
    }

    fn required(&self, template: &TemplateRef, field: &'static str) -> Result<String, RenderError> {
        let text = self.render(template, field)?;
        if text.is_empty() {
            return Err(RenderError::Empty {
                at: self.step.position.clone(),
                step: self.step.id.clone(),
                host: self.host.to_string(),
                field,
            });
        }
        Ok(text)
    }

    fn when(&self, template: &TemplateRef) -> Result<bool, RenderError> {
        let text = self.render(template, "when")?;
        // Compared in place: a lowercased copy per host and step is not needed to read a bool.
        if text.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if text.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(RenderError::WhenNotBoolean {
                at: self.step.position.clone(),
                step: self.step.id.clone(),
                host: self.host.to_string(),
                rendered: text,
            })
        }
    }
}
