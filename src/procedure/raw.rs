//! A playbook file exactly as written. Only `load.rs` reads these; everything else sees
//! [`super::StepSpec`] with compiled templates.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// The whole playbook document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlaybook {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Lowest-precedence variables (below the inventory's global vars).
    #[serde(default)]
    pub defaults: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
    /// A file beside the playbook whose `partials:` come first (the playbook's own win).
    #[serde(default)]
    pub partials_from: Option<Spanned<String>>,
    /// Named template snippets steps pull in with `{% include "name" %}`.
    #[serde(default)]
    pub partials: BTreeMap<String, Spanned<String>>,
    pub steps: Spanned<Vec<Spanned<RawStep>>>,
}

/// A file of shared partials (`partials_from:`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartials {
    pub partials: BTreeMap<String, Spanned<String>>,
}

/// One entry of `steps:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub id: Spanned<String>,
    pub name: String,
    pub on: Spanned<RawOn>,
    #[serde(default)]
    pub mode: Option<RawMode>,
    #[serde(default)]
    pub delegate_to: Option<RawDelegate>,
    #[serde(default)]
    pub command: Option<Spanned<String>>,
    #[serde(default)]
    pub upload: Option<Spanned<RawUpload>>,
    #[serde(default)]
    pub check: Option<Spanned<String>>,
    #[serde(default)]
    pub wait_until: Option<Spanned<RawWait>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub on_resume: Option<RawOnResume>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    #[serde(default)]
    pub destructive: Option<bool>,
    #[serde(default)]
    pub backup: Option<Spanned<String>>,
    #[serde(default)]
    pub takes_quorum: Option<bool>,
    #[serde(default)]
    pub establishes: Option<RawEstablishes>,
    #[serde(default)]
    pub on_demand: Option<RawOnDemand>,
}

/// `on_demand:` — the step runs only on the peers the controller picks after the run's checks.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RawOnDemand {
    Resync,
}

/// `establishes:` — what the step leaves in place on its host.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEstablishes {
    #[serde(default)]
    pub peer: Option<RawPeerState>,
    #[serde(default)]
    pub installed: Option<RawInstalled>,
}

/// `establishes.peer:`
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RawPeerState {
    Stopped,
    Running,
}

/// `establishes.installed:`
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RawInstalled {
    Target,
}

/// `on:` — a keyword or `{ host: NAME }`.
#[derive(Debug)]
pub enum RawOn {
    Keyword(String),
    Host(String),
}

impl<'de> Deserialize<'de> for RawOn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawOn, D::Error> {
        struct OnVisitor;

        impl<'de> Visitor<'de> for OnVisitor {
            type Value = RawOn;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all`, `anchor`, `others` or `{ host: NAME }`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawOn, E> {
                Ok(RawOn::Keyword(text.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawOn, A::Error> {
                let key: String = map
                    .next_key()?
                    .ok_or_else(|| de::Error::missing_field("host"))?;
                if key != "host" {
                    return Err(de::Error::unknown_field(&key, &["host"]));
                }
                let host: String = map.next_value()?;
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::unknown_field(&extra, &["host"]));
                }
                Ok(RawOn::Host(host))
            }
        }

        deserializer.deserialize_any(OnVisitor)
    }
}

/// `mode:`
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RawMode {
    Parallel,
    Serial,
    Rolling,
}

/// `delegate_to:`
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RawDelegate {
    Target,
    Anchor,
}

/// `on_resume:`
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum RawOnResume {
    Rerun,
    Check,
    Ask,
}

/// `upload:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    pub from: Spanned<String>,
    pub to: Spanned<String>,
    #[serde(default)]
    pub mode: Option<Spanned<RawFileMode>>,
}

/// A file mode: `0o755` (an integer) or `"0755"` (octal text).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawFileMode {
    Number(u32),
    Text(String),
}

/// `wait_until:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWait {
    pub command: Spanned<String>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    pub deadline: Spanned<String>,
    #[serde(default)]
    pub fail_when: Option<Spanned<String>>,
    #[serde(default)]
    pub delegate_to: Option<RawDelegate>,
}

/// Parses playbook text. `strict_booleans` keeps `on`/`NO` strings (the `on:` key above relies
/// on it); leading-zero numbers stay text so `mode: 0755` reads as octal, not as 755.
pub fn parse(text: &str) -> Result<RawPlaybook, serde_saphyr::Error> {
    parse_as(text)
}

/// Parses a file of shared partials, with the options of [`parse`].
pub fn parse_partials(text: &str) -> Result<RawPartials, serde_saphyr::Error> {
    parse_as(text)
}

fn parse_as<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
        leading_zero_numbers_as_strings: true,
    };
    serde_saphyr::from_str_with_options(text, options)
}
