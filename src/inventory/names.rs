//! Validated names: hosts, groups, users and template variables.
//!
//! Host and group names end up in journal records and file names, and variable names must be
//! reachable from templates (`{{ name }}`), so each has a narrow alphabet checked once, here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

impl NameError {
    /// A variable name the template context already uses.
    pub fn reserved(name: &str) -> NameError {
        NameError(format!(
            "reserved: the template context already has `{name}`"
        ))
    }

    /// A variable that holds a map, which `--var key=value` cannot give.
    pub fn map_only(name: &str) -> NameError {
        NameError(format!(
            "`{name}` is a map: set it under `vars:` in the inventory"
        ))
    }
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(text: &str) -> Result<Self, NameError> {
                $check(text)?;
                Ok($name(text.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(text: String) -> Result<Self, NameError> {
                $check(&text)?;
                Ok($name(text))
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Unit tests write names as literals; a bad one fails the test.
        #[cfg(test)]
        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                text.parse().expect("a valid name in a test")
            }
        }

        /// A name reads as the text it is (as colmena's `NodeName` does).
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        /// Maps keyed by the name are looked up with a plain `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_name!(
    /// A host's name in the inventory: letters, digits, `.`, `_`, `-`; starts with a letter or digit.
    HostName,
    check_label
);
validated_name!(
    /// A group's name: same alphabet as host names.
    GroupName,
    check_label
);
validated_name!(
    /// The remote login name.
    UserName,
    check_user
);
validated_name!(
    /// A template variable: an identifier, so that `{{ name }}` reaches it.
    VarName,
    check_identifier
);

fn check_label(text: &str) -> Result<(), NameError> {
    if text.is_empty() || text.len() > 64 {
        return Err(NameError("must be 1 to 64 characters long".into()));
    }
    if !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NameError("must start with a letter or a digit".into()));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError(format!(
            "character {bad:?} is not allowed (letters, digits, `.`, `_`, `-`)"
        )));
    }
    Ok(())
}

fn check_user(text: &str) -> Result<(), NameError> {
    if text.is_empty() || text.len() > 32 {
        return Err(NameError("must be 1 to 32 characters long".into()));
    }
    // A leading `-` would read as an option to ssh tooling.
    if text.starts_with('-') {
        return Err(NameError("must not start with `-`".into()));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError(format!("character {bad:?} is not allowed")));
    }
    Ok(())
}

fn check_identifier(text: &str) -> Result<(), NameError> {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return Err(NameError("must start with a letter or `_`".into())),
    }
    if chars.any(|c| !(c.is_ascii_alphanumeric() || c == '_')) {
        return Err(NameError("may hold only letters, digits and `_`".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_have_a_narrow_alphabet() {
        assert!("h1".parse::<HostName>().is_ok());
        assert!("peer-0.eu_west".parse::<HostName>().is_ok());
        assert!("".parse::<HostName>().is_err());
        assert!("-h".parse::<HostName>().is_err());
        assert!("a b".parse::<HostName>().is_err());
        assert!("h/1".parse::<HostName>().is_err());
    }

    #[test]
    fn var_names_are_identifiers() {
        assert!("bin_dir".parse::<VarName>().is_ok());
        assert!("_x1".parse::<VarName>().is_ok());
        assert!("1x".parse::<VarName>().is_err());
        assert!("bin-dir".parse::<VarName>().is_err());
    }

    #[test]
    fn user_names_refuse_option_like_text() {
        assert!("root".parse::<UserName>().is_ok());
        assert!("-oProxyCommand".parse::<UserName>().is_err());
        assert!("a b".parse::<UserName>().is_err());
    }
}
