//! ssh_config files → a tree of [`Entry`]s: `Host` and `Match` lines, the settings we resolve
//! (their values checked on every line, active or not, as OpenSSH does) and `Include`d files.
//! Keywords we do not resolve are skipped.

use std::path::{Path, PathBuf};

use super::error::{ConfigLine, SshConfigError};
use super::jump::{self, Jump};
use super::lexer::{arguments, split_line, Line};
use super::{include, Context};

/// OpenSSH's limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

/// One file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// One meaningful line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `Host pattern…`
    Host { patterns: Vec<String> },
    /// `Match …`; `all` is an empty list.
    Match { criteria: Vec<Criterion> },
    /// `Include`: the files its patterns found, in order.
    Include { files: Vec<ConfigFile> },
    /// A setting we resolve.
    Set { at: ConfigLine, value: Value },
}

/// One `Match` criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub negated: bool,
    pub kind: CriterionKind,
    /// A comma-separated pattern list.
    pub patterns: String,
}

/// The `Match` criteria we evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriterionKind {
    Host,
    OriginalHost,
    User,
}

/// `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    Yes,
    No,
    Ask,
    AcceptNew,
}

/// A checked setting value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    HostName(String),
    Port(u16),
    User(String),
    IdentityFile(String),
    IdentitiesOnly(bool),
    IdentityAgent(String),
    ProxyJump(Jump),
    ProxyCommand(String),
    UserKnownHostsFile(Vec<String>),
    StrictHostKeyChecking(StrictHostKeyChecking),
    /// Seconds; `None` for `none`.
    ConnectTimeout(Option<u64>),
    /// `yes` or `always` (ssh then looks the name up in DNS and reads the config again, which
    /// we do not do: refused when it applies); `false` for `no`/`none`.
    CanonicalizeHostname(bool),
}

/// Reads and parses `path` and everything it includes. `checked`: refuse the file, as ssh
/// does for `~/.ssh/config` and every included file, when someone else could have written it.
pub fn read(
    path: &Path,
    context: &Context,
    depth: usize,
    checked: bool,
) -> Result<ConfigFile, SshConfigError> {
    if checked {
        owned_safely(path)?;
    }
    let text = std::fs::read_to_string(path).map_err(|source| SshConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut entries = Vec::new();
    for (index, text) in text.lines().enumerate() {
        let at = ConfigLine::new(path, index + 1);
        if let Some(line) = split_line(text) {
            entries.extend(entry(&line, at, context, depth)?);
        }
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        entries,
    })
}

/// OpenSSH's `secure_permissions`: owned by this user or root, writable by the owner only.
fn owned_safely(path: &Path) -> Result<(), SshConfigError> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).map_err(|source| SshConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let uid = rustix::process::getuid().as_raw();
    if (metadata.uid() != 0 && metadata.uid() != uid) || metadata.mode() & 0o022 != 0 {
        return Err(SshConfigError::Permissions {
            path: path.to_path_buf(),
            mode: metadata.mode() & 0o7777,
            owner: metadata.uid(),
        });
    }
    Ok(())
}

fn entry(
    line: &Line,
    at: ConfigLine,
    context: &Context,
    depth: usize,
) -> Result<Option<Entry>, SshConfigError> {
    let syntax = |message: String| SshConfigError::Syntax {
        at: at.clone(),
        message,
    };
    if line.rest.is_empty() {
        return Err(syntax(format!(
            "no argument after keyword `{}`",
            line.keyword
        )));
    }
    let args = arguments(&line.rest).map_err(|m| syntax(m.to_string()))?;
    Ok(Some(match line.keyword.as_str() {
        "host" => Entry::Host { patterns: args },
        "match" => Entry::Match {
            criteria: criteria(&args, &at)?,
        },
        "include" => {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(syntax(format!(
                    "more than {MAX_INCLUDE_DEPTH} nested Include levels"
                )));
            }
            let mut files = Vec::new();
            for pattern in &args {
                for path in include::expand(pattern, context).map_err(syntax)? {
                    files.push(read(&path, context, depth + 1, true)?);
                }
            }
            Entry::Include { files }
        }
        keyword => match value(keyword, line, &args).map_err(syntax)? {
            Some(value) => Entry::Set { at, value },
            None => return Ok(None),
        },
    }))
}

/// The value of a setting we resolve, `None` for other keywords.
fn value(keyword: &str, line: &Line, args: &[String]) -> Result<Option<Value>, String> {
    let one = || match args {
        [single] => Ok(single.clone()),
        _ => Err(format!("`{keyword}` takes one value, found {}", args.len())),
    };
    Ok(Some(match keyword {
        "hostname" => Value::HostName(one()?),
        "port" => Value::Port(port(&one()?)?),
        "user" => Value::User(one()?),
        "identityfile" => Value::IdentityFile(one()?),
        "identitiesonly" => Value::IdentitiesOnly(yes_no(&one()?)?),
        "identityagent" => Value::IdentityAgent(one()?),
        "proxyjump" => Value::ProxyJump(jump::parse(&line.rest)?),
        "proxycommand" => Value::ProxyCommand(line.rest.clone()),
        "userknownhostsfile" => Value::UserKnownHostsFile(args.to_vec()),
        "stricthostkeychecking" => Value::StrictHostKeyChecking(strict(&one()?)?),
        "connecttimeout" => Value::ConnectTimeout(seconds(&one()?)?),
        "canonicalizehostname" => Value::CanonicalizeHostname(canonicalize(&one()?)?),
        _ => return Ok(None),
    }))
}

fn port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port number `{text}`"))
}

fn yes_no(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, found `{text}`")),
    }
}

fn canonicalize(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "always" => Ok(true),
        "no" | "false" | "none" => Ok(false),
        _ => Err(format!("expected yes, no or always, found `{text}`")),
    }
}

fn strict(text: &str) -> Result<StrictHostKeyChecking, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(StrictHostKeyChecking::Yes),
        "no" | "false" | "off" => Ok(StrictHostKeyChecking::No),
        "ask" => Ok(StrictHostKeyChecking::Ask),
        "accept-new" => Ok(StrictHostKeyChecking::AcceptNew),
        _ => Err(format!(
            "expected yes, no, ask or accept-new, found `{text}`"
        )),
    }
}

/// OpenSSH's time format: `none`, or numbers with optional s/m/h/d/w units (`1m30s`).
fn seconds(text: &str) -> Result<Option<u64>, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || format!("bad time value `{text}`");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        total = total
            .checked_add(digits.parse::<u64>().map_err(|_| bad())?)
            .ok_or_else(bad)?;
    }
    Ok(Some(total))
}

/// `Match` arguments: `all` alone, or `[!]host|originalhost|user PATTERNS` pairs. Other criteria
/// (`exec`, `canonical`, `final`, `localuser`, `localnetwork`, `tagged`…) are refused: we cannot
/// evaluate them as ssh would, and guessing could connect where ssh would not.
fn criteria(args: &[String], at: &ConfigLine) -> Result<Vec<Criterion>, SshConfigError> {
    let unsupported = |criterion: &str| SshConfigError::UnsupportedMatch {
        at: at.clone(),
        criterion: criterion.to_string(),
    };
    if args.len() == 1 && args[0].eq_ignore_ascii_case("all") {
        return Ok(Vec::new());
    }
    let mut criteria = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let (negated, name) = match word.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, word.as_str()),
        };
        let kind = match name.to_ascii_lowercase().as_str() {
            "host" => CriterionKind::Host,
            "originalhost" => CriterionKind::OriginalHost,
            "user" => CriterionKind::User,
            _ => return Err(unsupported(word)),
        };
        let patterns = words.next().ok_or_else(|| SshConfigError::Syntax {
            at: at.clone(),
            message: format!("Match `{word}` needs a pattern list"),
        })?;
        criteria.push(Criterion {
            negated,
            kind,
            patterns: patterns.clone(),
        });
    }
    Ok(criteria)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_openssh() {
        assert_eq!(seconds("10"), Ok(Some(10)));
        assert_eq!(seconds("1m30s"), Ok(Some(90)));
        assert_eq!(seconds("none"), Ok(None));
        assert!(seconds("10x").is_err());
    }

    #[test]
    fn unsupported_match_criteria_are_refused_with_their_line() {
        let at = ConfigLine::new(Path::new("/c"), 7);
        let args = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let error = criteria(&args(&["host", "a", "exec", "true"]), &at).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/c:7: `Match exec` is not supported (only host, originalhost, user and all); refusing to guess"
        );
        assert!(criteria(&args(&["all", "host", "x"]), &at).is_err());
        assert_eq!(criteria(&args(&["ALL"]), &at).unwrap(), Vec::new());
        let negated = criteria(&args(&["!user", "bob"]), &at).unwrap();
        assert!(negated[0].negated);
    }
}
