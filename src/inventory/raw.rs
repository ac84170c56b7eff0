//! The inventory file exactly as written: a serde mirror of `docs/inventory-schema.md`.
//!
//! Nothing outside this module sees these types; `validate.rs` turns them into the domain types.
//! Every value a later check may reject is `Spanned`, so its error can name line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A variables map as written (`vars:` at global, group and host level).
pub type RawVars = BTreeMap<String, serde_json::Value>;

/// The whole inventory document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub cluster: Spanned<RawCluster>,
    #[serde(default)]
    pub ssh: Option<RawSsh>,
    #[serde(default)]
    pub defaults: Option<RawDefaults>,
    #[serde(default)]
    pub vars: Option<Spanned<RawVars>>,
    #[serde(default)]
    pub groups: Vec<Spanned<RawGroup>>,
    pub hosts: Spanned<Vec<Spanned<RawHost>>>,
}

/// `cluster:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    pub target_version: Spanned<String>,
    pub releases: Spanned<RawReleases>,
}

/// `cluster.releases:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReleases {
    pub source: Spanned<RawSourceKind>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub sha256: Option<Spanned<BTreeMap<String, Spanned<RawSums>>>>,
}

/// `cluster.releases.source:`
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawSourceKind {
    Local,
    Url,
}

/// One entry of `cluster.releases.sha256:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSums {
    #[serde(rename = "ipfs-cluster-service")]
    pub service: Spanned<String>,
    #[serde(rename = "ipfs-cluster-ctl")]
    pub ctl: Spanned<String>,
}

/// `ssh:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// An ssh_config file, or `none`.
    #[serde(default)]
    pub config: Option<Spanned<String>>,
    /// One known_hosts file or a list of them.
    #[serde(default)]
    pub known_hosts: Option<Spanned<OneOrMore>>,
    #[serde(default)]
    pub accept_new_host_keys: Option<bool>,
    #[serde(default)]
    pub connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub command_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub max_concurrency: Option<usize>,
}

/// `defaults:`, the per-host settings a host may leave out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub identity_file: Option<Spanned<String>>,
    /// A jump chain (`[user@]host[:port],…`) or `none`.
    #[serde(default)]
    pub proxy_jump: Option<Spanned<String>>,
    #[serde(default)]
    pub r#become: Option<Spanned<RawBecome>>,
}

/// `become:` (Ansible's word): what the login becomes to run commands.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBecome {
    /// `sudo` (the default), or `none` to log in and run commands as the login.
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// The user to become (default `root`).
    #[serde(default)]
    pub user: Option<Spanned<String>>,
}

/// One entry of `groups:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Spanned<String>,
    #[serde(default)]
    pub proxy_jump: Option<Spanned<String>>,
    #[serde(default)]
    pub r#become: Option<Spanned<RawBecome>>,
    #[serde(default)]
    pub vars: Option<Spanned<RawVars>>,
}

/// One entry of `hosts:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub identity_file: Option<Spanned<String>>,
    #[serde(default)]
    pub proxy_jump: Option<Spanned<String>>,
    #[serde(default)]
    pub r#become: Option<Spanned<RawBecome>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub vars: Option<Spanned<RawVars>>,
}

/// Parses inventory text. `strict_booleans` keeps `NO`, `on`, `yes` as strings.
pub fn parse(text: &str) -> Result<RawInventory, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options)
}

/// A value written as one string or as a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMore {
    One(String),
    More(Vec<String>),
}

impl OneOrMore {
    pub fn values(&self) -> &[String] {
        match self {
            OneOrMore::One(one) => std::slice::from_ref(one),
            OneOrMore::More(more) => more,
        }
    }
}
