//! The one minijinja environment: strict undefined, a `quote` filter for shell values, and a
//! mapping from template errors back to `file:line:column` in the playbook.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::inventory::SourcePosition;

/// A compiled template, by its name in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    name: String,
}

impl TemplateRef {
    /// Its name in the environment (`<step id>.<field>` or `partial:<name>`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where a template's text starts in the playbook, and how it was written (a quoted scalar's
/// text starts one column after its opening quote).
#[derive(Debug, Clone)]
pub struct TemplateOrigin {
    pub position: SourcePosition,
    pub quoted: bool,
}

/// A template problem with its place in the playbook.
#[derive(Debug, Clone)]
pub struct TemplateFailure {
    pub at: SourcePosition,
    pub message: String,
    /// The undefined variable as written (`anchor.peer_id`), when that is the problem.
    pub variable: Option<String>,
}

/// All of a playbook's templates in one environment.
#[derive(Debug, Clone)]
pub struct Templates {
    env: Environment<'static>,
    sources: HashMap<String, (TemplateOrigin, String)>,
}

impl Default for Templates {
    fn default() -> Templates {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        Templates { env: environment(), sources: HashMap::new() }
    }

    /// Compiles `source` under `name`; syntax errors come back with their playbook position.
    pub fn add(&mut self, name: String, source: String, origin: TemplateOrigin) -> Result<TemplateRef, TemplateFailure> {
        if let Err(error) = self.env.add_template_owned(name.clone(), source.clone()) {
            let at = locate(&origin, &source, error.line(), error.range());
            return Err(TemplateFailure { at, message: describe(&error), variable: None });
        }
        self.sources.insert(name.clone(), (origin, source));
        Ok(TemplateRef { name })
    }

    /// Renders a template; leading and trailing whitespace is dropped (block scalars end in a
    /// newline, and a command's surrounding blanks mean nothing).
    pub fn render(&self, template: &TemplateRef, context: &Value) -> Result<String, TemplateFailure> {
        let rendered = self
            .env
            .get_template(&template.name)
            .and_then(|compiled| compiled.render(context))
            .map_err(|error| self.failure(template, &error))?;
        Ok(rendered.trim().to_string())
    }

    /// Maps a render error to the template it happened in (possibly an included partial).
    fn failure(&self, template: &TemplateRef, error: &minijinja::Error) -> TemplateFailure {
        let name = error.name().filter(|name| self.sources.contains_key(*name)).unwrap_or(&template.name);
        let (origin, source) = &self.sources[name];
        let at = locate(origin, source, error.line(), error.range());
        let variable = (error.kind() == ErrorKind::UndefinedError)
            .then(|| error.range().and_then(|range| source.get(range)).map(|text| text.trim().to_string()))
            .flatten()
            .filter(|text| !text.is_empty());
        let message = match &variable {
            Some(variable) => format!("undefined variable `{variable}`"),
            None => describe(error),
        };
        TemplateFailure { at, message, variable }
    }
}

/// The configured environment. Every template of the tool is rendered through one of these.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // An undefined variable in a shell command is a bug, never an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("quote", quote);
    env.add_function("fail", fail);
    env
}

/// `{{ value | quote }}`: one shell word, POSIX-quoted, for any string, number or boolean.
/// NUL cannot be passed to a shell at all, so it is an error rather than silently cut.
pub fn quote(value: Value) -> Result<String, minijinja::Error> {
    use minijinja::value::ValueKind;
    let text = match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Number | ValueKind::Bool => value.to_string(),
        ValueKind::Undefined => return Err(minijinja::Error::from(ErrorKind::UndefinedError)),
        kind => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("quote: cannot shell-quote a {kind} (only strings, numbers and booleans)"),
            ))
        }
    };
    shlex::try_quote(&text).map(|quoted| quoted.into_owned()).map_err(|_| {
        minijinja::Error::new(ErrorKind::InvalidOperation, "quote: the value contains a NUL byte, which no shell word can hold")
    })
}

/// `{{ fail("message") }}`: stops rendering with the playbook's own message (e.g. an unknown
/// `service_manager`), so `check` reports it before anything runs.
fn fail(message: String) -> Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => match error.kind() {
            ErrorKind::SyntaxError => format!("template syntax error: {detail}"),
            _ => detail.to_string(),
        },
        None => error.kind().to_string(),
    }
}

/// The playbook position of `line`/`range` inside a template that starts at `origin`.
fn locate(origin: &TemplateOrigin, source: &str, line: Option<usize>, range: Option<Range<usize>>) -> SourcePosition {
    let mut at = origin.position.clone();
    let Some(start) = range.map(|range| range.start.min(source.len())) else {
        if let Some(line) = line {
            at.line += line.saturating_sub(1) as u64;
        }
        return at;
    };
    let line_start = source[..start].rfind('\n').map_or(0, |newline| newline + 1);
    let line_index = source[..line_start].matches('\n').count() as u64;
    let column_in_line = source[line_start..start].chars().count() as u64;
    at.line += line_index;
    // Block scalars keep their indentation column on every line; on the first line a quoted
    // scalar's text starts after the quote.
    at.column += column_in_line + u64::from(line_index == 0 && origin.quoted);
    at
}

/// Where a spanned YAML scalar's text starts, and whether it is quoted.
pub fn origin_of(file: &Path, text: &str, spanned: &serde_saphyr::Spanned<String>) -> TemplateOrigin {
    let location = spanned.referenced;
    let quoted = location
        .span()
        .byte_offset()
        .and_then(|offset| text.as_bytes().get(offset as usize))
        .is_some_and(|byte| matches!(byte, b'"' | b'\''));
    TemplateOrigin { position: SourcePosition::new(file, location), quoted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_makes_one_shell_word() {
        let q = |v: Value| quote(v).unwrap();
        assert_eq!(q(Value::from("plain")), "plain");
        assert_eq!(q(Value::from("two words")), "'two words'");
        assert_eq!(q(Value::from("it's")), "\"it's\"");
        assert_eq!(q(Value::from("$HOME")), "'$HOME'");
        assert_eq!(q(Value::from("")), "''");
        assert_eq!(q(Value::from(42)), "42");
        assert!(quote(Value::from("a\0b")).unwrap_err().to_string().contains("NUL"));
        assert!(quote(Value::from(vec![1, 2])).is_err());
        assert!(quote(Value::from(())).is_err());
    }

    #[test]
    fn positions_map_into_block_and_quoted_scalars() {
        let origin = |quoted| TemplateOrigin {
            position: SourcePosition { file: "p.yaml".into(), line: 10, column: 7 },
            quoted,
        };
        let source = "echo a\necho {{ x }}";
        let at = locate(&origin(false), source, Some(2), Some(13..14));
        assert_eq!((at.line, at.column), (11, 13));
        let at = locate(&origin(true), "echo {{ x }}", Some(1), Some(8..9));
        assert_eq!((at.line, at.column), (10, 16));
    }
}
