//! Raw playbook → [`Procedure`]: checks every step and compiles every template, collecting all
//! problems with their positions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_saphyr::Spanned;

use crate::inventory::{
    describe_yaml_error, HostName, HumanDuration, SourcePosition, VarName, Vars, RESERVED_VAR_NAMES,
};

use super::error::ProcedureError;
use super::raw::{
    self, RawDelegate, RawEstablishes, RawFileMode, RawInstalled, RawMode, RawOn, RawOnDemand,
    RawOnResume, RawPeerState, RawStep, RawUpload, RawWait,
};
use super::step::{
    Deadline, Delegate, EstablishesSpec, Mode, OnDemand, OnResume, PeerState, StepId, StepSpec,
    Targets, UploadSpec, WaitSpec,
};
use super::template::{origin_of, TemplateRef, Templates};
use super::Procedure;

/// Finds the file a playbook's `partials_from:` names (a plain file name): its path, and its
/// text or why it cannot be read.
pub type PartialsFiles<'r> = &'r dyn Fn(&str) -> (PathBuf, std::io::Result<String>);

/// Parses and validates playbook `text` read from `file`; `partials_files` reads the file its
/// `partials_from:` names.
pub(super) fn load(
    file: &Path,
    text: &str,
    partials_files: PartialsFiles<'_>,
) -> Result<Procedure, ProcedureError> {
    let raw = raw::parse(text).map_err(|error| {
        let (at, message) = describe_yaml_error(file, &error);
        ProcedureError::Yaml { at, message }
    })?;
    let mut loader = Loader {
        file,
        text,
        templates: Templates::new(),
        errors: Vec::new(),
    };
    let defaults = raw
        .defaults
        .as_ref()
        .map(|defaults| loader.defaults(defaults))
        .unwrap_or_default();
    if let Some(from) = &raw.partials_from {
        loader.shared_partials(from, partials_files);
    }
    for (name, source) in &raw.partials {
        loader.partial(Source { file, text }, name, source);
    }
    let mut seen: BTreeMap<String, SourcePosition> = BTreeMap::new();
    let mut steps = Vec::new();
    for step in &raw.steps.value {
        let at = SourcePosition::of(file, &step.value.id);
        if let Some(first) = seen.get(&step.value.id.value) {
            loader.errors.push(ProcedureError::DuplicateStep {
                at,
                step: step.value.id.value.clone(),
                first: first.clone(),
            });
            continue;
        }
        seen.insert(step.value.id.value.clone(), at);
        if let Some(step) = loader.step(step) {
            steps.push(step);
        }
    }
    loader.on_demand_last(&steps);
    if raw.steps.value.is_empty() {
        loader.errors.push(ProcedureError::InvalidValue {
            at: SourcePosition::of(file, &raw.steps),
            step: None,
            field: "steps",
            value: "[]".into(),
            reason: "a playbook needs at least one step".into(),
        });
    }
    if let Some(error) = ProcedureError::from_list(loader.errors) {
        return Err(error);
    }
    Ok(Procedure {
        name: raw.name.value,
        description: raw.description,
        path: file.to_path_buf(),
        steps,
        defaults,
        templates: loader.templates,
    })
}

/// Where an invalid value was written: its position, its step and its field.
struct Field<'s> {
    at: SourcePosition,
    step: Option<&'s str>,
    name: &'static str,
}

fn mode(raw: Option<RawMode>) -> Mode {
    match raw {
        Some(RawMode::Serial) => Mode::Serial,
        Some(RawMode::Parallel) => Mode::Parallel,
        Some(RawMode::Rolling) => Mode::Rolling,
        None => Mode::default(),
    }
}

fn on_resume(raw: Option<RawOnResume>) -> OnResume {
    match raw {
        Some(RawOnResume::Rerun) => OnResume::Rerun,
        Some(RawOnResume::Check) => OnResume::Check,
        Some(RawOnResume::Ask) => OnResume::Ask,
        None => OnResume::default(),
    }
}

fn establishes(raw: &RawEstablishes) -> EstablishesSpec {
    EstablishesSpec {
        peer: raw.peer.map(|p| match p {
            RawPeerState::Stopped => PeerState::Stopped,
            RawPeerState::Running => PeerState::Running,
        }),
        installed_target: matches!(raw.installed, Some(RawInstalled::Target)),
    }
}

/// A file templates are read from: the playbook, or the file of partials it names.
#[derive(Clone, Copy)]
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

struct Loader<'a> {
    file: &'a Path,
    text: &'a str,
    templates: Templates,
    errors: Vec<ProcedureError>,
}

impl Loader<'_> {
    fn at<T>(&self, spanned: &Spanned<T>) -> SourcePosition {
        SourcePosition::of(self.file, spanned)
    }

    fn invalid(&mut self, field: Field<'_>, value: String, reason: String) {
        self.errors.push(ProcedureError::InvalidValue {
            at: field.at,
            step: field.step.map(str::to_string),
            field: field.name,
            value,
            reason,
        });
    }

    fn defaults(&mut self, raw: &Spanned<BTreeMap<String, serde_json::Value>>) -> Vars {
        let mut vars = Vars::new();
        for (name, value) in &raw.value {
            let checked = if RESERVED_VAR_NAMES.contains(&name.as_str()) {
                Err("reserved: the template context already has it".to_string())
            } else if name == crate::inventory::API_AUTH_VAR {
                Err("how a host's REST API is reached is the inventory's to say: set api_auth under its vars".to_string())
            } else {
                VarName::from_str(name).map_err(|error| error.to_string())
            };
            match checked {
                Ok(name) => vars.insert(name, value.clone()),
                Err(reason) => self.invalid(
                    Field {
                        at: self.at(raw),
                        step: None,
                        name: "defaults variable name",
                    },
                    name.clone(),
                    reason,
                ),
            }
        }
        vars
    }

    /// Reads the partials of the file `from` names (beside the playbook, found by
    /// `partials_files`); the playbook's own partials, added after them, replace those of the
    /// same name.
    fn shared_partials(&mut self, from: &Spanned<String>, partials_files: PartialsFiles<'_>) {
        let name = from.value.as_str();
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\'])
            && (name.ends_with(".yaml") || name.ends_with(".yml"));
        if !plain {
            self.invalid(
                Field {
                    at: self.at(from),
                    step: None,
                    name: "partials_from",
                },
                name.to_string(),
                "name a `.yaml` file beside the playbook (a file name, no folder)".into(),
            );
            return;
        }
        let (path, text) = partials_files(name);
        let text = match text {
            Ok(text) => text,
            Err(source) => {
                self.errors.push(ProcedureError::PartialsRead {
                    at: self.at(from),
                    path,
                    source,
                });
                return;
            }
        };
        let raw = match raw::parse_partials(&text) {
            Ok(raw) => raw,
            Err(error) => {
                let (at, message) = describe_yaml_error(&path, &error);
                self.errors.push(ProcedureError::Yaml { at, message });
                return;
            }
        };
        for (name, source) in &raw.partials {
            self.partial(
                Source {
                    file: &path,
                    text: &text,
                },
                name,
                source,
            );
        }
    }

    fn partial(&mut self, from: Source<'_>, name: &str, source: &Spanned<String>) {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            let reason = "partial names use lowercase letters, digits and `_`".to_string();
            self.invalid(
                Field {
                    at: SourcePosition::of(from.file, source),
                    step: None,
                    name: "partial name",
                },
                name.to_string(),
                reason,
            );
            return;
        }
        let origin = origin_of(from.file, from.text, source);
        if let Err(failure) = self
            .templates
            .add(name.to_string(), source.value.clone(), origin)
        {
            self.errors.push(ProcedureError::TemplateSyntax {
                at: failure.at,
                step: None,
                field: format!("partial `{name}`"),
                message: failure.message,
            });
        }
    }

    /// Compiles one template field of a step.
    fn template(
        &mut self,
        step: &str,
        field: &'static str,
        source: &Spanned<String>,
    ) -> Option<TemplateRef> {
        let origin = origin_of(self.file, self.text, source);
        match self
            .templates
            .add(format!("{step}.{field}"), source.value.clone(), origin)
        {
            Ok(template) => Some(template),
            Err(failure) => {
                self.errors.push(ProcedureError::TemplateSyntax {
                    at: failure.at,
                    step: Some(step.to_string()),
                    field: field.to_string(),
                    message: failure.message,
                });
                None
            }
        }
    }

    fn duration(
        &mut self,
        step: &str,
        field: &'static str,
        text: &Spanned<String>,
    ) -> Option<HumanDuration> {
        match text.value.parse::<HumanDuration>() {
            Ok(duration) if duration.get().is_zero() => {
                self.invalid(
                    Field {
                        at: self.at(text),
                        step: Some(step),
                        name: field,
                    },
                    text.value.clone(),
                    "must be longer than 0 (a zero limit fails at once)".to_string(),
                );
                None
            }
            Ok(duration) => Some(duration),
            Err(reason) => {
                self.invalid(
                    Field {
                        at: self.at(text),
                        step: Some(step),
                        name: field,
                    },
                    text.value.clone(),
                    format!("{reason}"),
                );
                None
            }
        }
    }

    fn step(&mut self, spanned: &Spanned<RawStep>) -> Option<StepSpec> {
        let raw = &spanned.value;
        let id_text = raw.id.value.as_str();
        let errors_before = self.errors.len();
        let id = self.step_id(&raw.id);
        let on = self.targets(id_text, &raw.on);
        let command = raw
            .command
            .as_ref()
            .and_then(|c| self.template(id_text, "command", c));
        let check = raw
            .check
            .as_ref()
            .and_then(|c| self.template(id_text, "check", c));
        let when = raw
            .when
            .as_ref()
            .and_then(|c| self.template(id_text, "when", c));
        let backup = raw
            .backup
            .as_ref()
            .and_then(|c| self.template(id_text, "backup", c));
        if raw.backup.is_some() && raw.command.is_none() {
            self.errors.push(ProcedureError::InvalidValue {
                at: self.at(spanned),
                step: Some(id_text.to_string()),
                field: "backup",
                value: "(no command)".to_string(),
                reason: "`backup` saves the command's output, so the step needs a `command`"
                    .to_string(),
            });
        }
        let upload = raw
            .upload
            .as_ref()
            .and_then(|upload| self.upload(id_text, &upload.value));
        let wait_until = raw
            .wait_until
            .as_ref()
            .and_then(|wait| self.wait_until(id_text, &wait.value, raw.delegate_to));
        let timeout = raw
            .timeout
            .as_ref()
            .map(|text| self.duration(id_text, "timeout", text));
        if raw.on_demand.is_some() && !matches!(raw.mode, Some(RawMode::Rolling)) {
            self.errors.push(ProcedureError::InvalidValue {
                at: self.at(spanned),
                step: Some(id_text.to_string()),
                field: "on_demand",
                value: "resync".to_string(),
                reason:
                    "an on-demand step runs on one picked peer at a time: it needs `mode: rolling`"
                        .to_string(),
            });
        }
        if raw.command.is_none() && raw.upload.is_none() && raw.wait_until.is_none() {
            self.errors.push(ProcedureError::NothingToDo {
                at: self.at(spanned),
                step: id_text.to_string(),
            });
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(StepSpec {
            id: id?,
            name: raw.name.clone(),
            on: on?,
            mode: mode(raw.mode),
            delegate_to: delegate(raw.delegate_to),
            command,
            upload,
            check,
            wait_until,
            timeout: timeout.flatten(),
            retries: raw.retries.unwrap_or(0),
            on_resume: on_resume(raw.on_resume),
            when,
            destructive: raw.destructive.unwrap_or(false),
            backup,
            takes_quorum: raw.takes_quorum.unwrap_or(false),
            establishes: raw
                .establishes
                .as_ref()
                .map_or_else(EstablishesSpec::default, establishes),
            on_demand: raw.on_demand.map(|RawOnDemand::Resync| OnDemand::Resync),
            position: self.at(spanned),
        })
    }

    /// On-demand steps run after every regular step, so they are written after them.
    fn on_demand_last(&mut self, steps: &[StepSpec]) {
        let first = steps.iter().position(|s| s.on_demand.is_some());
        let Some(first) = first else { return };
        for step in steps[first..].iter().filter(|s| s.on_demand.is_none()) {
            self.errors.push(ProcedureError::InvalidValue {
                at: step.position.clone(),
                step: Some(step.id.to_string()),
                field: "on_demand",
                value: "(none)".to_string(),
                reason: format!(
                    "a regular step cannot follow the on-demand step `{}`: on-demand steps run \
                     after every regular step, so write them last",
                    steps[first].id
                ),
            });
        }
    }

    fn step_id(&mut self, raw: &Spanned<String>) -> Option<StepId> {
        match StepId::from_str(&raw.value) {
            Ok(id) => Some(id),
            Err(reason) => {
                self.invalid(
                    Field {
                        at: self.at(raw),
                        step: None,
                        name: "step id",
                    },
                    raw.value.clone(),
                    reason.to_string(),
                );
                None
            }
        }
    }

    fn upload(&mut self, step: &str, upload: &RawUpload) -> Option<UploadSpec> {
        let from = self.template(step, "upload.from", &upload.from);
        let to = self.template(step, "upload.to", &upload.to);
        let mode = match &upload.mode {
            None => Some(0o644),
            Some(mode) => self.file_mode(step, mode),
        };
        Some(UploadSpec {
            from: from?,
            to: to?,
            mode: mode?,
        })
    }

    fn wait_until(
        &mut self,
        step: &str,
        wait: &RawWait,
        step_delegate: Option<RawDelegate>,
    ) -> Option<WaitSpec> {
        let command = self.template(step, "wait_until.command", &wait.command);
        let interval = match &wait.interval {
            None => Some(WaitSpec::DEFAULT_INTERVAL),
            Some(text) => self.duration(step, "wait_until.interval", text),
        };
        let deadline = if wait.deadline.value.contains("{{") {
            self.template(step, "wait_until.deadline", &wait.deadline)
                .map(Deadline::Template)
        } else {
            self.duration(step, "wait_until.deadline", &wait.deadline)
                .map(Deadline::Fixed)
        };
        let fail_when = match &wait.fail_when {
            None => Some(None),
            Some(text) => self.template(step, "wait_until.fail_when", text).map(Some),
        };
        Some(WaitSpec {
            command: command?,
            interval: interval?,
            deadline: deadline?,
            fail_when: fail_when?,
            delegate_to: delegate(wait.delegate_to.or(step_delegate)),
        })
    }

    fn targets(&mut self, step: &str, on: &Spanned<RawOn>) -> Option<Targets> {
        let targets = match &on.value {
            RawOn::Keyword(word) if word == "all" => Ok(Targets::All),
            RawOn::Keyword(word) if word == "anchor" => Ok(Targets::Anchor),
            RawOn::Keyword(word) if word == "others" => Ok(Targets::Others),
            RawOn::Keyword(word) => Err((
                word.clone(),
                "expected `all`, `anchor`, `others` or `{ host: NAME }`".to_string(),
            )),
            RawOn::Host(name) => HostName::from_str(name)
                .map(Targets::Host)
                .map_err(|e| (name.clone(), e.to_string())),
        };
        match targets {
            Ok(targets) => Some(targets),
            Err((value, reason)) => {
                self.invalid(
                    Field {
                        at: self.at(on),
                        step: Some(step),
                        name: "on",
                    },
                    value,
                    reason,
                );
                None
            }
        }
    }

    fn file_mode(&mut self, step: &str, mode: &Spanned<RawFileMode>) -> Option<u32> {
        let (text, parsed) = match &mode.value {
            RawFileMode::Number(number) => (format!("{number:#o}"), Some(*number)),
            RawFileMode::Text(text) => {
                let digits = text.strip_prefix("0o").unwrap_or(text);
                (text.clone(), u32::from_str_radix(digits, 8).ok())
            }
        };
        match parsed.filter(|mode| *mode <= 0o7777) {
            Some(mode) => Some(mode),
            None => {
                let reason = "expected permission bits such as 0o755 or \"0755\"".to_string();
                self.invalid(
                    Field {
                        at: self.at(mode),
                        step: Some(step),
                        name: "upload.mode",
                    },
                    text,
                    reason,
                );
                None
            }
        }
    }
}

fn delegate(raw: Option<RawDelegate>) -> Delegate {
    match raw {
        Some(RawDelegate::Anchor) => Delegate::Anchor,
        Some(RawDelegate::Target) | None => Delegate::Target,
    }
}
