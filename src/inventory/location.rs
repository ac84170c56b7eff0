//! Where something is in a YAML file: `file:line:column`, shared by inventory and playbook errors.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A position in a source file, 1-based, as editors and compilers print it. Kept small (the
/// file is shared) because every error variant carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub file: Arc<Path>,
    pub line: u32,
    pub column: u32,
}

impl SourcePosition {
    /// A position in `file` taken from a serde-saphyr location. serde-saphyr reports 0:0 when it
    /// lost the location (e.g. through `flatten`); 1:1 is still a useful place to look.
    pub fn new(file: &Path, location: serde_saphyr::Location) -> SourcePosition {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX).max(1);
        SourcePosition {
            file: Arc::from(file),
            line: clamp(location.line()),
            column: clamp(location.column()),
        }
    }

    /// The position of a spanned value (where it is used, not where an alias defined it).
    pub fn of<T>(file: &Path, spanned: &serde_saphyr::Spanned<T>) -> SourcePosition {
        SourcePosition::new(file, spanned.referenced)
    }

    /// Where byte `offset` of `bytes` (the content of `file`) is: line and column in characters.
    pub fn of_byte(file: &Path, bytes: &[u8], offset: usize) -> SourcePosition {
        position_of_byte(file, bytes, offset)
    }

    /// The start of `file`, for problems that belong to the whole document.
    pub fn start(file: &Path) -> SourcePosition {
        SourcePosition {
            file: Arc::from(file),
            line: 1,
            column: 1,
        }
    }
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Line and column (counting characters of the valid text before it) of byte `offset`.
pub fn position_of_byte(file: &Path, bytes: &[u8], offset: usize) -> SourcePosition {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    SourcePosition {
        file: Arc::from(file),
        line: clamp(line),
        column: clamp(column),
    }
}

/// The message and position of a YAML syntax or shape error, without serde-saphyr's own
/// "at line X, column Y" suffix (we print the position first, compiler style).
pub fn describe_yaml_error(file: &Path, error: &serde_saphyr::Error) -> (SourcePosition, String) {
    use serde_saphyr::MessageFormatter;
    let inner = error.without_snippet();
    let at = match inner.location() {
        Some(location) => SourcePosition::new(file, location),
        None => SourcePosition::start(file),
    };
    let message = serde_saphyr::DefaultMessageFormatter
        .format_message(inner)
        .into_owned();
    (at, message)
}
