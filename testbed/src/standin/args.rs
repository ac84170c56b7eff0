//! A minimal urfave/cli-like argument parser: global flags stop at the first positional
//! argument (the subcommand); command flags may appear anywhere, as urfave v1 reorders them.

use std::collections::BTreeMap;

/// One accepted flag: its names (first is canonical, without dashes) and whether it takes a value.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub names: &'static [&'static str],
    pub takes_value: bool,
}

/// A boolean flag.
pub const fn switch(names: &'static [&'static str]) -> Flag {
    Flag {
        names,
        takes_value: false,
    }
}

/// A flag with a value.
pub const fn value(names: &'static [&'static str]) -> Flag {
    Flag {
        names,
        takes_value: true,
    }
}

/// A usage error, printed as urfave does ("Incorrect Usage: …").
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
}

/// Flags and positional arguments of one level.
#[derive(Debug, Default)]
pub struct Parsed {
    values: BTreeMap<&'static str, Vec<String>>,
    pub positionals: Vec<String>,
}

impl Parsed {
    pub fn has(&self, canonical: &str) -> bool {
        self.values.contains_key(canonical)
    }

    /// The last value of a flag.
    pub fn value(&self, canonical: &str) -> Option<&str> {
        self.values
            .get(canonical)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeated flag.
    pub fn values(&self, canonical: &str) -> &[String] {
        self.values.get(canonical).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Parses `args`. With `stop_at_positional`, parsing ends at the first positional argument,
/// which is returned with everything after it in `positionals`.
pub fn parse(
    args: &[String],
    flags: &[Flag],
    stop_at_positional: bool,
) -> Result<Parsed, UsageError> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            parsed.positionals.extend(args[i + 1..].iter().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            if stop_at_positional {
                parsed.positionals.extend(args[i..].iter().cloned());
                break;
            }
            parsed.positionals.push(arg.clone());
            i += 1;
            continue;
        }
        let body = arg.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = flags
            .iter()
            .find(|f| f.names.contains(&name))
            .ok_or_else(|| UsageError::Unknown(name.to_string()))?;
        let value = if flag.takes_value {
            match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| UsageError::MissingValue(name.to_string()))?
                }
            }
        } else {
            inline.unwrap_or_else(|| "true".to_string())
        };
        parsed.values.entry(flag.names[0]).or_default().push(value);
        i += 1;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn globals_stop_and_commands_reorder() {
        let flags = [value(&["config", "c"]), switch(&["force", "f"])];
        let p = parse(&s(&["-c", "/x", "state", "import", "-f"]), &flags, true).unwrap();
        assert_eq!(p.value("config"), Some("/x"));
        assert!(!p.has("force"));
        assert_eq!(p.positionals, s(&["state", "import", "-f"]));
        let p = parse(&s(&["import", "-f", "file", "--config=/y"]), &flags, false).unwrap();
        assert!(p.has("force"));
        assert_eq!(p.positionals, s(&["import", "file"]));
        assert!(parse(&s(&["--nope"]), &flags, false).is_err());
    }
}
