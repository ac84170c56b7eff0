//! The one minijinja environment: strict undefined, a `quote` filter for shell values, and a
//! mapping from template errors back to `file:line:column` in the playbook.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::inventory::SourcePosition;
use crate::transport::quote::is_plain_word;

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
        Templates {
            env: environment(),
            sources: HashMap::new(),
        }
    }

    /// Compiles `source` under `name`; syntax errors come back with their playbook position.
    pub fn add(
        &mut self,
        name: String,
        source: String,
        origin: TemplateOrigin,
    ) -> Result<TemplateRef, TemplateFailure> {
        if let Err(error) = self.env.add_template_owned(name.clone(), source.clone()) {
            let at = locate(&origin, &source, error.line(), error.range());
            return Err(TemplateFailure {
                at,
                message: describe(&error),
                variable: None,
            });
        }
        self.sources.insert(name.clone(), (origin, source));
        Ok(TemplateRef { name })
    }

    /// Renders a template; leading and trailing whitespace is dropped (block scalars end in a
    /// newline, and a command's surrounding blanks mean nothing).
    pub fn render(
        &self,
        template: &TemplateRef,
        context: &Value,
    ) -> Result<String, TemplateFailure> {
        let rendered = self
            .env
            .get_template(&template.name)
            .and_then(|compiled| compiled.render(context))
            .map_err(|error| self.failure(template, &error, context))?;
        // Most rendered fields have nothing to trim: keep the string rather than copy it, but
        // give back the slack the renderer's buffer grew (the plan keeps 300,000 of them).
        let trimmed = rendered.trim();
        if trimmed.len() == rendered.len() {
            let mut rendered = rendered;
            rendered.shrink_to_fit();
            return Ok(rendered);
        }
        Ok(trimmed.to_string())
    }

    /// Maps a render error to the template it happened in (possibly an included partial).
    fn failure(
        &self,
        template: &TemplateRef,
        error: &minijinja::Error,
        context: &Value,
    ) -> TemplateFailure {
        // An error inside an included partial arrives wrapped ("error in \"partial\""); the
        // innermost one says what and where.
        let error = innermost(error);
        let name = error
            .name()
            .filter(|name| self.sources.contains_key(*name))
            .unwrap_or(&template.name);
        let (origin, source) = &self.sources[name];
        let mut range = error.range();
        let variable = if error.kind() == ErrorKind::UndefinedError {
            let line = line_text(source, error.line(), range.clone());
            let used_at = range.as_ref().map(|range| range.start);
            let found = closest_before(self.undefined_variables(name, context), line, used_at);
            // Point at the variable itself: minijinja's range may cover the filter it went into.
            if let Some((_, Some(offset))) = &found {
                range = Some(*offset..*offset + found.as_ref().map_or(0, |(v, _)| v.len()));
            }
            found.map(|(variable, _)| variable)
        } else {
            None
        };
        let at = locate(origin, source, error.line(), range);
        let message = match &variable {
            Some(variable) => format!("undefined variable `{variable}`"),
            None => describe(error),
        };
        TemplateFailure {
            at,
            message,
            variable,
        }
    }

    /// The variables of template `name` that `context` cannot resolve, sorted.
    fn undefined_variables(&self, name: &str, context: &Value) -> Vec<String> {
        let Ok(template) = self.env.get_template(name) else {
            return Vec::new();
        };
        let globals: Vec<&str> = self.env.globals().map(|(global, _)| global).collect();
        let mut missing: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| !globals.contains(&path.split('.').next().unwrap_or_default()))
            .filter(|path| !resolves(context, path))
            .collect();
        missing.sort();
        missing
    }
}

/// minijinja does not say which variable was undefined. Of the `missing` ones, take the one
/// written closest before where the failing expression starts (`used_at`) on the failing `line`
/// (its start offset and text): the undefined value is used there, e.g. piped into `quote`.
/// Returns the variable and its offset in the template when found on the line.
fn closest_before(
    missing: Vec<String>,
    line: Option<(usize, &str)>,
    used_at: Option<usize>,
) -> Option<(String, Option<usize>)> {
    let Some((line_start, text)) = line else {
        return missing.into_iter().next().map(|v| (v, None));
    };
    let used_at = used_at.unwrap_or(line_start + text.len());
    let best = missing
        .iter()
        .flat_map(|path| {
            text.match_indices(path.as_str())
                .map(move |(index, _)| (path, line_start + index))
        })
        .filter(|(_, offset)| *offset <= used_at)
        .max_by_key(|(_, offset)| *offset);
    match best {
        Some((path, offset)) => Some((path.clone(), Some(offset))),
        None => missing.into_iter().next().map(|v| (v, None)),
    }
}

fn innermost(error: &minijinja::Error) -> &minijinja::Error {
    let mut current = error;
    while let Some(inner) =
        std::error::Error::source(current).and_then(|s| s.downcast_ref::<minijinja::Error>())
    {
        current = inner;
    }
    current
}

/// Whether a dotted path (`anchor.vars.bin_dir`) leads to a defined value.
fn resolves(context: &Value, path: &str) -> bool {
    let mut value = context.clone();
    for segment in path.split('.') {
        match value.get_attr(segment) {
            Ok(next) if !next.is_undefined() => value = next,
            _ => return false,
        }
    }
    true
}

/// The failing line of a template: its start offset and text.
fn line_text(
    source: &str,
    line: Option<usize>,
    range: Option<Range<usize>>,
) -> Option<(usize, &str)> {
    let start = match (range, line) {
        (Some(range), _) => source[..range.start.min(source.len())]
            .rfind('\n')
            .map_or(0, |n| n + 1),
        (None, Some(line)) => source
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum(),
        (None, None) => return None,
    };
    let end = source[start..]
        .find('\n')
        .map_or(source.len(), |n| start + n);
    Some((start, &source[start..end]))
}

/// The configured environment. Every template of the tool is rendered through one of these.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // An undefined variable in a shell command is a bug, never an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("quote", quote);
    env.add_filter("systemd_command", systemd_command);
    env.add_filter("words", words);
    env.add_function("fail", fail);
    env
}

/// `{{ words | systemd_command }}`: a command line for a systemd unit file (`ExecStart=`),
/// each word double-quoted with systemd's escapes: `\` and `"` backslashed, `%` (specifiers)
/// doubled, `$` (environment substitution) doubled. A control character (a newline would end
/// the directive and start another) is an error, never written.
pub fn systemd_command(words: Value) -> Result<String, minijinja::Error> {
    let invalid = |detail: String| minijinja::Error::new(ErrorKind::InvalidOperation, detail);
    let items = words
        .try_iter()
        .map_err(|_| invalid("systemd_command: expects a list of words".into()))?;
    let mut line = String::new();
    for word in items {
        let text = match word.as_str() {
            Some(text) => text.to_string(),
            None if word.is_number() => word.to_string(),
            None => {
                return Err(invalid(format!(
                    "systemd_command: `{word}` is not a string"
                )))
            }
        };
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(invalid(format!(
                "systemd_command: the word {text:?} holds the control character {c:?}, which a unit file cannot carry"
            )));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push('"');
        for c in text.chars() {
            match c {
                '\\' => line.push_str("\\\\"),
                '"' => line.push_str("\\\""),
                '%' => line.push_str("%%"),
                '$' => line.push_str("$$"),
                c => line.push(c),
            }
        }
        line.push('"');
    }
    if line.is_empty() {
        return Err(invalid("systemd_command: no words".into()));
    }
    Ok(line)
}

/// `{{ value | words }}`: a list as it is, or a string split on spaces and tabs (no quoting).
/// A line break or another control character is an error: a command line has none, and one in
/// a value bound for a unit file is a mistake or an attack.
pub fn words(value: Value) -> Result<Value, minijinja::Error> {
    match value.as_str() {
        Some(text) if text.chars().any(|c| c.is_control() && c != '\t') => {
            Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("words: {text:?} holds a line break or another control character"),
            ))
        }
        Some(text) => Ok(Value::from(
            text.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )),
        None if value.try_iter().is_ok() => Ok(value),
        None => Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("words: `{value}` is neither a string nor a list"),
        )),
    }
}

/// `{{ value | quote }}`: one shell word, POSIX-quoted, for any string, number or boolean.
/// NUL cannot be passed to a shell at all, so it is an error rather than silently cut.
pub fn quote(value: Value) -> Result<Value, minijinja::Error> {
    use minijinja::value::ValueKind;
    let text = match value.kind() {
        // Most values are paths and names that need no quoting: handed back as they are, no
        // copy (the planner renders this filter for every host of every step).
        ValueKind::String if value.as_str().is_some_and(is_plain_word) => return Ok(value),
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
    shlex::try_quote(&text)
        .map(|quoted| Value::from(quoted.into_owned()))
        .map_err(|_| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "quote: the value contains a NUL byte, which no shell word can hold",
            )
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
fn locate(
    origin: &TemplateOrigin,
    source: &str,
    line: Option<usize>,
    range: Option<Range<usize>>,
) -> SourcePosition {
    let mut at = origin.position.clone();
    let Some(start) = range.map(|range| range.start.min(source.len())) else {
        if let Some(line) = line {
            at.line = at
                .line
                .saturating_add(u32::try_from(line.saturating_sub(1)).unwrap_or(u32::MAX));
        }
        return at;
    };
    let line_start = source[..start].rfind('\n').map_or(0, |newline| newline + 1);
    let line_index = u32::try_from(source[..line_start].matches('\n').count()).unwrap_or(u32::MAX);
    let column_in_line =
        u32::try_from(source[line_start..start].chars().count()).unwrap_or(u32::MAX);
    at.line = at.line.saturating_add(line_index);
    // Block scalars keep their indentation column on every line; on the first line a quoted
    // scalar's text starts after the quote.
    at.column = at
        .column
        .saturating_add(column_in_line)
        .saturating_add(u32::from(line_index == 0 && origin.quoted));
    at
}

/// Where a spanned YAML scalar's text starts, and whether it is quoted.
pub fn origin_of(
    file: &Path,
    text: &str,
    spanned: &serde_saphyr::Spanned<String>,
) -> TemplateOrigin {
    let location = spanned.referenced;
    let quoted = location
        .span()
        .byte_offset()
        .and_then(|offset| text.as_bytes().get(offset as usize))
        .is_some_and(|byte| matches!(byte, b'"' | b'\''));
    TemplateOrigin {
        position: SourcePosition::new(file, location),
        quoted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_command_quotes_each_word_and_escapes_specifiers_and_variables() {
        let hostile = Value::from_serialize(["/opt/my bin/x", "100%", "$HOME", "a\"b\\c"]);
        assert_eq!(
            systemd_command(hostile).unwrap(),
            r#""/opt/my bin/x" "100%%" "$$HOME" "a\"b\\c""#
        );
        let newline = Value::from_serialize(["/bin/x", "a\nExecStartPre=/bin/touch /tmp/p"]);
        assert!(systemd_command(newline).is_err());
        assert!(systemd_command(Value::from_serialize(Vec::<String>::new())).is_err());
        assert_eq!(
            words(Value::from("/usr/bin/x  daemon --stats")).unwrap(),
            Value::from_serialize(["/usr/bin/x", "daemon", "--stats"])
        );
        assert!(words(Value::from(
            "/usr/bin/x daemon\nExecStartPre=/bin/touch /tmp/p"
        ))
        .is_err());
    }

    #[test]
    fn quote_makes_one_shell_word() {
        let q = |v: Value| quote(v).unwrap().to_string();
        assert_eq!(q(Value::from("plain")), "plain");
        assert_eq!(q(Value::from("/srv/h1/bin")), "/srv/h1/bin");
        assert_eq!(q(Value::from("a=b")), "'a=b'");
        assert_eq!(q(Value::from(-1.5)), "-1.5");
        assert_eq!(q(Value::from("two words")), "'two words'");
        assert_eq!(q(Value::from("it's")), "\"it's\"");
        assert_eq!(q(Value::from("$HOME")), "'$HOME'");
        assert_eq!(q(Value::from("")), "''");
        assert_eq!(q(Value::from(42)), "42");
        assert!(quote(Value::from("a\0b"))
            .unwrap_err()
            .to_string()
            .contains("NUL"));
        assert!(quote(Value::from(vec![1, 2])).is_err());
        assert!(quote(Value::from(())).is_err());
    }

    #[test]
    fn positions_map_into_block_and_quoted_scalars() {
        let origin = |quoted| TemplateOrigin {
            position: SourcePosition {
                file: std::path::Path::new("p.yaml").into(),
                line: 10,
                column: 7,
            },
            quoted,
        };
        let source = "echo a\necho {{ x }}";
        let at = locate(&origin(false), source, Some(2), Some(13..14));
        assert_eq!((at.line, at.column), (11, 13));
        let at = locate(&origin(true), "echo {{ x }}", Some(1), Some(8..9));
        assert_eq!((at.line, at.column), (10, 16));
    }
}
