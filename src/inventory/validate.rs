//! Raw inventory → validated [`Inventory`]. Collects every problem it can find in one pass so the
//! operator fixes them all at once; each keeps its position in the file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::api_auth::ApiAuth;
use super::duration::HumanDuration;
use super::error::{IdentityProblem, InventoryError};
use super::host::{Address, Host, Identity, Port};
use super::jump::{JumpHost, Resolver};
use super::location::SourcePosition;
use super::names::{GroupName, HostName, NameError, UserName, VarName};
use super::openssh::{self, ConfigSource};
use super::raw::{
    OneOrMore, RawBecome, RawDefaults, RawInventory, RawReleases, RawSourceKind, RawSsh, RawVars,
};
use super::release::{ClusterSettings, ReleaseSource, ReleaseSums, Sha256, UrlTemplate};
use super::ssh::{SshOverrides, SshSettings};
use super::ssh_config::{JumpChain, Resolved, Setting, SshConfig};
use super::vars::{Vars, RESERVED_VAR_NAMES};
use super::version::Version;
use super::{Inventory, Overrides};

/// Validates a parsed inventory read from `file`.
pub(super) fn validate(
    file: &Path,
    raw: RawInventory,
    overrides: &Overrides,
) -> Result<Inventory, InventoryError> {
    let mut checker = Checker {
        file,
        base: base_dir(file),
        errors: Vec::new(),
        readable_identities: Default::default(),
        ssh_config: None,
        resolved: Vec::new(),
        ssh_config_failed: false,
    };
    let cluster = checker.cluster(&raw);
    let ssh = checker.ssh(raw.ssh.as_ref());
    checker.load_ssh_config(raw.ssh.as_ref(), overrides);
    let global = raw
        .vars
        .as_ref()
        .map(|vars| checker.vars(vars, None))
        .unwrap_or_default();
    let groups = checker.groups(&raw);
    let command_line = checker.overrides(&overrides.vars);
    checker.default_port(raw.defaults.as_ref());
    let group_becomes = raw
        .groups
        .iter()
        .filter_map(|g| Some((g.value.name.value.clone(), g.value.r#become.as_ref()?)))
        .collect();
    let group_jumps = raw
        .groups
        .iter()
        .filter_map(|g| Some((g.value.name.value.clone(), g.value.proxy_jump.as_ref()?)))
        .collect();
    let hosts = checker.hosts(
        &raw,
        &HostLayers {
            defaults: raw.defaults.as_ref(),
            global: &global,
            groups: &groups,
            group_jumps: &group_jumps,
            group_becomes: &group_becomes,
            command_line: &command_line,
        },
    );
    checker.shared_addresses(&raw, &hosts);
    let ssh = ssh.map(|ssh| {
        checker
            .with_ssh_config(ssh, raw.ssh.as_ref(), &overrides.ssh)
            .overridden(&overrides.ssh)
    });
    if let Some(error) = InventoryError::from_list(checker.errors) {
        return Err(error);
    }
    let (Some(cluster), Some(ssh)) = (cluster, ssh) else {
        unreachable!("a missing section is always recorded as an error");
    };
    Ok(Inventory {
        path: file.to_path_buf(),
        cluster,
        ssh,
        hosts,
    })
}

/// The inventory's folder, absolute, so resolved paths stay valid if the process changes folder.
fn base_dir(file: &Path) -> PathBuf {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// Variable layers shared by every host.
struct HostLayers<'a> {
    /// The inventory's `defaults:` section.
    defaults: Option<&'a RawDefaults>,
    global: &'a Vars,
    groups: &'a BTreeMap<String, Vars>,
    /// The groups' `proxy_jump`, by group name.
    group_jumps: &'a BTreeMap<String, &'a Spanned<String>>,
    /// The groups' `become`, by group name.
    group_becomes: &'a BTreeMap<String, &'a Spanned<RawBecome>>,
    command_line: &'a Vars,
}

impl HostLayers<'_> {
    /// The `proxy_jump` that applies to a host: its own, else that of the last of its groups
    /// that sets one (as group vars layer), else `defaults:`.
    fn proxy_jump<'r>(&'r self, raw: &'r super::raw::RawHost) -> Option<&'r Spanned<String>> {
        raw.proxy_jump
            .as_ref()
            .or_else(|| {
                raw.groups
                    .iter()
                    .rev()
                    .find_map(|g| self.group_jumps.get(&g.value).copied())
            })
            .or_else(|| self.defaults.and_then(|d| d.proxy_jump.as_ref()))
    }

    /// The `become` that applies to a host, layered as `proxy_jump` is.
    fn r#become<'r>(&'r self, raw: &'r super::raw::RawHost) -> Option<&'r Spanned<RawBecome>> {
        raw.r#become
            .as_ref()
            .or_else(|| {
                raw.groups
                    .iter()
                    .rev()
                    .find_map(|g| self.group_becomes.get(&g.value).copied())
            })
            .or_else(|| self.defaults.and_then(|d| d.r#become.as_ref()))
    }
}

struct Checker<'a> {
    file: &'a Path,
    base: PathBuf,
    errors: Vec<InventoryError>,
    /// Identity files already found readable: thousands of hosts usually share one.
    readable_identities: std::collections::HashSet<PathBuf>,
    /// The ssh_config in use, if any.
    ssh_config: Option<SshConfig>,
    /// Each host's resolution in it, in inventory order.
    resolved: Vec<(HostName, Resolved)>,
    /// The ssh_config could not be read: what it might have given is not reported missing.
    ssh_config_failed: bool,
}

impl Checker<'_> {
    fn at<T>(&self, spanned: &Spanned<T>) -> SourcePosition {
        SourcePosition::of(self.file, spanned)
    }

    /// `~/x` from `$HOME`, absolute paths as they are, anything else against the inventory's folder.
    fn resolve(&self, text: &str) -> PathBuf {
        match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => self.base.join(text),
        }
    }

    /// Parses a spanned string with `FromStr`, recording an `InvalidValue` on failure.
    fn parse<T>(
        &mut self,
        value: &Spanned<String>,
        field: &'static str,
        host: Option<&HostName>,
    ) -> Option<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match value.value.parse() {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.errors.push(InventoryError::InvalidValue {
                    at: self.at(value),
                    host: host.cloned(),
                    field,
                    value: value.value.clone(),
                    reason: reason.to_string(),
                });
                None
            }
        }
    }

    fn cluster(&mut self, raw: &RawInventory) -> Option<ClusterSettings> {
        let cluster = &raw.cluster.value;
        let target_version: Version =
            self.parse(&cluster.target_version, "cluster.target_version", None)?;
        let releases = self.releases(&cluster.releases, target_version)?;
        let name = match &cluster.name {
            Some(name) => name.value.clone(),
            None => self
                .file
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        Some(ClusterSettings {
            name,
            target_version,
            releases,
        })
    }

    fn releases(
        &mut self,
        spanned: &Spanned<RawReleases>,
        target: Version,
    ) -> Option<ReleaseSource> {
        let raw = &spanned.value;
        let declared = self.declared_sums(raw);
        match raw.source.value {
            RawSourceKind::Local => {
                if let Some(url) = &raw.url {
                    self.not_for_source(url, "cluster.releases.url", "local");
                }
                let Some(path) = &raw.path else {
                    self.errors.push(InventoryError::Missing {
                        at: self.at(spanned),
                        host: None,
                        field: "cluster.releases.path",
                        hint: "the local source needs the folder holding <version>/ipfs-cluster-service, ipfs-cluster-ctl and SHA256SUMS",
                    });
                    return None;
                };
                let folder = self.resolve(&path.value);
                let sums = self.local_sums(path, &folder, target)?;
                if let Some(declared) = declared.as_ref().and_then(|sums| sums.get(&target)) {
                    if declared != &sums {
                        self.errors.push(InventoryError::ReleaseFolder {
                            at: self.at(path),
                            folder: folder.clone(),
                            problem: format!(
                                "{target}/SHA256SUMS disagrees with cluster.releases.sha256"
                            ),
                        });
                    }
                }
                Some(ReleaseSource::Local { path: folder, sums })
            }
            RawSourceKind::Url => {
                if let Some(path) = &raw.path {
                    self.not_for_source(path, "cluster.releases.path", "url");
                }
                let Some(url) = &raw.url else {
                    self.errors.push(InventoryError::Missing {
                        at: self.at(spanned),
                        host: None,
                        field: "cluster.releases.url",
                        hint:
                            "the url source needs a URL template with {{ version }} and {{ file }}",
                    });
                    return None;
                };
                let template: Option<UrlTemplate> = self.parse(url, "cluster.releases.url", None);
                let sha256 = declared.unwrap_or_default();
                if !sha256.contains_key(&target) {
                    let at = match &raw.sha256 {
                        Some(map) => self.at(map),
                        None => self.at(spanned),
                    };
                    self.errors.push(InventoryError::MissingSha256 {
                        at,
                        version: target.to_string(),
                    });
                    return None;
                }
                Some(ReleaseSource::Url {
                    template: template?,
                    sha256,
                })
            }
        }
    }

    fn not_for_source(&mut self, value: &Spanned<String>, field: &'static str, source: &str) {
        self.errors.push(InventoryError::InvalidValue {
            at: self.at(value),
            host: None,
            field,
            value: value.value.clone(),
            reason: format!("not used by the {source} source; remove it"),
        });
    }

    /// `cluster.releases.sha256`, validated; `None` when absent.
    fn declared_sums(&mut self, raw: &RawReleases) -> Option<BTreeMap<Version, ReleaseSums>> {
        let map = raw.sha256.as_ref()?;
        let mut sums = BTreeMap::new();
        for (version_text, entry) in &map.value {
            let version = match version_text.parse::<Version>() {
                Ok(version) => Some(version),
                Err(reason) => {
                    self.errors.push(InventoryError::InvalidValue {
                        at: self.at(entry),
                        host: None,
                        field: "cluster.releases.sha256 key",
                        value: version_text.clone(),
                        reason: reason.to_string(),
                    });
                    None
                }
            };
            let service: Option<Sha256> =
                self.parse(&entry.value.service, "cluster.releases.sha256 digest", None);
            let ctl: Option<Sha256> =
                self.parse(&entry.value.ctl, "cluster.releases.sha256 digest", None);
            if let (Some(version), Some(service), Some(ctl)) = (version, service, ctl) {
                sums.insert(version, ReleaseSums { service, ctl });
            }
        }
        Some(sums)
    }

    /// Checks the local folder holds the target's files and reads its `SHA256SUMS`.
    fn local_sums(
        &mut self,
        path: &Spanned<String>,
        folder: &Path,
        target: Version,
    ) -> Option<ReleaseSums> {
        let at = self.at(path);
        let fail = |problem: String| InventoryError::ReleaseFolder {
            at: at.clone(),
            folder: folder.to_path_buf(),
            problem,
        };
        let version_dir = folder.join(target.to_string());
        let missing: Vec<&str> = ["ipfs-cluster-service", "ipfs-cluster-ctl", "SHA256SUMS"]
            .into_iter()
            .filter(|name| !version_dir.join(name).is_file())
            .collect();
        if !missing.is_empty() {
            self.errors
                .push(fail(format!("{target}/ lacks {}", missing.join(", "))));
            return None;
        }
        let text = match fs::read_to_string(version_dir.join("SHA256SUMS")) {
            Ok(text) => text,
            Err(error) => {
                self.errors
                    .push(fail(format!("cannot read {target}/SHA256SUMS: {error}")));
                return None;
            }
        };
        match ReleaseSums::from_sha256sums(&text) {
            Ok(sums) => Some(sums),
            Err(missing) => {
                self.errors.push(fail(format!(
                    "{target}/SHA256SUMS has no valid entry for {}",
                    missing.join(", ")
                )));
                None
            }
        }
    }

    /// The `ssh:` section (the command line's options are applied once the ssh_config's are).
    fn ssh(&mut self, raw: Option<&RawSsh>) -> Option<SshSettings> {
        let mut ssh = SshSettings {
            known_hosts_at: Some(SourcePosition::start(self.file)),
            ..SshSettings::default()
        };
        if let Some(raw) = raw {
            if let Some(paths) = &raw.known_hosts {
                self.known_hosts_files(&mut ssh, paths);
            }
            ssh.accept_new_host_keys = raw.accept_new_host_keys.unwrap_or(false);
            if let Some(text) = &raw.connect_timeout {
                ssh.connect_timeout = self
                    .positive(text, "ssh.connect_timeout")
                    .unwrap_or(ssh.connect_timeout);
            }
            if let Some(text) = &raw.command_timeout {
                ssh.command_timeout = self
                    .positive(text, "ssh.command_timeout")
                    .unwrap_or(ssh.command_timeout);
            }
            // 0 is the documented spelling of "no limit".
            ssh.max_concurrency = raw.max_concurrency.and_then(NonZeroUsize::new);
        }
        Some(ssh)
    }

    /// `ssh.known_hosts`: one file or a non-empty list of them (the first is written to).
    fn known_hosts_files(&mut self, ssh: &mut SshSettings, paths: &Spanned<OneOrMore>) {
        let values = paths.value.values();
        ssh.known_hosts_at = Some(self.at(paths));
        match values.split_first() {
            Some((first, more)) if !values.iter().any(|v| v.trim().is_empty()) => {
                ssh.known_hosts = self.resolve(first);
                ssh.more_known_hosts = more.iter().map(|path| self.resolve(path)).collect();
            }
            _ => self.errors.push(InventoryError::InvalidValue {
                at: self.at(paths),
                host: None,
                field: "ssh.known_hosts",
                value: values.join(", "),
                reason: "give a file, or a non-empty list of files, none of them empty".to_string(),
            }),
        }
    }

    /// Reads the ssh_config: the command line's, else `ssh.config`, else `~/.ssh/config`.
    fn load_ssh_config(&mut self, raw: Option<&RawSsh>, overrides: &Overrides) {
        let context = openssh::context();
        let inventory = raw.and_then(|raw| raw.config.as_ref()).map(|path| {
            let resolved = match path.value.as_str() {
                "none" => PathBuf::from("none"),
                text => self.resolve(text),
            };
            (resolved, self.at(path))
        });
        let command_line = overrides.ssh.ssh_config.as_deref();
        match ConfigSource::choose(command_line, inventory, &context.home).load(context) {
            Ok(config) => self.ssh_config = config,
            Err(error) => {
                self.errors.push(error);
                self.ssh_config_failed = true;
            }
        }
    }

    /// `ssh` with the run-wide settings the ssh_config gives where neither the inventory nor
    /// the command line sets them.
    fn with_ssh_config(
        &mut self,
        mut ssh: SshSettings,
        raw: Option<&RawSsh>,
        overrides: &SshOverrides,
    ) -> SshSettings {
        let known_hosts_fixed =
            !overrides.known_hosts.is_empty() || raw.is_some_and(|raw| raw.known_hosts.is_some());
        let wide = match openssh::run_wide(&self.resolved, known_hosts_fixed) {
            Ok(wide) => wide,
            Err(error) => {
                self.errors.push(error);
                return ssh;
            }
        };
        if let Some((paths, at)) = wide.known_hosts.filter(|_| !known_hosts_fixed) {
            if let Some((first, more)) = paths.split_first() {
                ssh.known_hosts = first.clone();
                ssh.more_known_hosts = more.to_vec();
                ssh.known_hosts_at = Some(at);
            }
        }
        if raw.and_then(|raw| raw.accept_new_host_keys).is_none() {
            ssh.accept_new_host_keys = wide.accept_new_host_keys;
        }
        if raw.and_then(|raw| raw.connect_timeout.as_ref()).is_none() {
            ssh.connect_timeout = wide.connect_timeout.unwrap_or(ssh.connect_timeout);
        }
        ssh
    }

    /// The host's `address` resolved in the ssh_config, when one is in use.
    fn ssh_config_host(&mut self, address: &Spanned<String>, host: &HostName) -> Option<Resolved> {
        let config = self.ssh_config.as_ref()?;
        match config.resolve(&address.value) {
            Ok(resolved) => {
                self.resolved.push((host.clone(), resolved.clone()));
                Some(resolved)
            }
            Err(source) => {
                self.errors.push(InventoryError::SshConfigHost {
                    at: self.at(address),
                    host: host.clone(),
                    source: Box::new(source),
                });
                None
            }
        }
    }

    /// The address to dial: the ssh_config's host name for the inventory's `address`.
    fn address_from_config(
        &mut self,
        address: &Spanned<String>,
        resolved: &Resolved,
        host: &HostName,
    ) -> Option<Address> {
        match resolved.hostname.parse() {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                let from = resolved
                    .hostname_set
                    .as_ref()
                    .map_or_else(String::new, |set| format!(" (HostName at {})", set.at));
                self.errors.push(InventoryError::InvalidValue {
                    at: self.at(address),
                    host: Some(host.clone()),
                    field: "hosts[].address",
                    value: resolved.hostname.clone(),
                    reason: format!("{reason}{from}"),
                });
                None
            }
        }
    }

    /// The ssh_config's `User` for a host whose inventory sets none.
    fn user_from_config(&mut self, set: &Setting<String>, host: &HostName) -> Option<UserName> {
        match set.value.parse() {
            Ok(user) => Some(user),
            Err(reason) => {
                self.errors.push(InventoryError::InvalidValue {
                    at: openssh::position(&set.at),
                    host: Some(host.clone()),
                    field: "User (ssh_config)",
                    value: set.value.clone(),
                    reason: format!("{reason}"),
                });
                None
            }
        }
    }

    /// The first readable `IdentityFile` of the ssh_config, checked like the inventory's;
    /// the agent when the config names none.
    fn identity_from_config(
        &mut self,
        resolved: Option<&Resolved>,
        host: &HostName,
    ) -> Option<Identity> {
        match resolved.and_then(openssh::first_identity) {
            None => Some(Identity::Agent),
            Some(Ok(file)) => {
                let at = openssh::position(&file.at);
                self.identity_path(file.value.clone(), at, host)
            }
            Some(Err((file, source))) => {
                self.errors.push(InventoryError::IdentityFile {
                    at: openssh::position(&file.at),
                    host: host.clone(),
                    path: file.value.clone(),
                    source,
                });
                None
            }
        }
    }

    /// A duration that must be longer than zero (a zero limit fails everything at once).
    fn positive(&mut self, text: &Spanned<String>, field: &'static str) -> Option<HumanDuration> {
        let duration = self.parse::<HumanDuration>(text, field, None)?;
        if duration.get().is_zero() {
            self.errors.push(InventoryError::InvalidValue {
                at: self.at(text),
                host: None,
                field,
                value: text.value.clone(),
                reason: "must be longer than 0 (a zero limit fails at once)".into(),
            });
            return None;
        }
        Some(duration)
    }

    /// `defaults.port`, checked once whether or not a host uses it.
    fn default_port(&mut self, defaults: Option<&RawDefaults>) {
        if let Some(port) = defaults.and_then(|d| d.port.as_ref()) {
            if Port::new(port.value).is_none() {
                self.errors.push(InventoryError::InvalidValue {
                    at: self.at(port),
                    host: None,
                    field: "defaults.port",
                    value: port.value.to_string(),
                    reason: "must be between 1 and 65535".into(),
                });
            }
        }
    }

    /// Two hosts with one address and port are one host listed twice.
    fn shared_addresses(&mut self, raw: &RawInventory, hosts: &[Host]) {
        let mut first: BTreeMap<(String, u16), &HostName> = BTreeMap::new();
        for host in hosts {
            let key = (
                host.address.to_string().to_ascii_lowercase(),
                host.port.get(),
            );
            match first.get(&key) {
                Some(other) => {
                    let at = raw
                        .hosts
                        .value
                        .iter()
                        .find(|h| h.value.name.value == host.name.as_str())
                        .map_or_else(
                            || SourcePosition::start(self.file),
                            |h| self.at(&h.value.address),
                        );
                    self.errors.push(InventoryError::InvalidValue {
                        at,
                        host: Some(host.name.clone()),
                        field: "hosts[].address",
                        value: format!("{}:{}", host.address, host.port),
                        reason: format!(
                            "host `{other}` has the same address and port: one machine listed twice (a copied entry?)"
                        ),
                    });
                }
                None => {
                    first.insert(key, &host.name);
                }
            }
        }
    }

    /// Validates a vars map: identifier names, none of the reserved context names.
    fn vars(&mut self, raw: &Spanned<RawVars>, host: Option<&HostName>) -> Vars {
        let mut vars = Vars::new();
        for (name, value) in &raw.value {
            match checked_var_name(name) {
                Ok(name) => vars.insert(name, value.clone()),
                Err(reason) => self.errors.push(InventoryError::InvalidValue {
                    at: self.at(raw),
                    host: host.cloned(),
                    field: "variable name",
                    value: name.clone(),
                    reason: reason.to_string(),
                }),
            }
        }
        if let Err(reason) = ApiAuth::of(&vars) {
            // The value is not repeated: it may hold what the operator took for a place for
            // the secret.
            self.errors.push(InventoryError::InvalidValue {
                at: self.at(raw),
                host: host.cloned(),
                field: "vars.api_auth",
                value: "…".to_string(),
                reason,
            });
        }
        vars
    }

    fn groups(&mut self, raw: &RawInventory) -> BTreeMap<String, Vars> {
        let mut groups: BTreeMap<String, (SourcePosition, Vars)> = BTreeMap::new();
        for group in &raw.groups {
            let name = &group.value.name;
            let at = self.at(name);
            let _: Option<GroupName> = self.parse(name, "groups[].name", None);
            let vars = group
                .value
                .vars
                .as_ref()
                .map(|vars| self.vars(vars, None))
                .unwrap_or_default();
            if let Some((first, _)) = groups.get(&name.value) {
                self.errors.push(InventoryError::DuplicateGroup {
                    at,
                    group: name.value.clone(),
                    first: first.clone(),
                });
                continue;
            }
            groups.insert(name.value.clone(), (at, vars));
        }
        groups
            .into_iter()
            .map(|(name, (_, vars))| (name, vars))
            .collect()
    }

    fn overrides(&mut self, overrides: &[(String, String)]) -> Vars {
        let mut vars = Vars::new();
        for (key, value) in overrides {
            match checked_var_name(key) {
                Ok(name) => vars.insert(name, serde_json::Value::String(value.clone())),
                Err(reason) => self.errors.push(InventoryError::Override {
                    key: key.clone(),
                    reason,
                }),
            }
        }
        if ApiAuth::of(&vars).is_err() {
            let key = super::api_auth::API_AUTH_VAR;
            self.errors.push(InventoryError::Override {
                key: key.to_string(),
                reason: super::names::NameError::map_only(key),
            });
        }
        vars
    }

    fn hosts(&mut self, raw: &RawInventory, layers: &HostLayers<'_>) -> Vec<Host> {
        if raw.hosts.value.is_empty() {
            self.errors.push(InventoryError::Missing {
                at: self.at(&raw.hosts),
                host: None,
                field: "hosts",
                hint: "list at least one host",
            });
        }
        let mut seen: BTreeMap<String, SourcePosition> = BTreeMap::new();
        let mut hosts = Vec::new();
        for spanned in &raw.hosts.value {
            let raw_host = &spanned.value;
            let Some(name) = self.parse::<HostName>(&raw_host.name, "hosts[].name", None) else {
                continue;
            };
            let at = self.at(&raw_host.name);
            if let Some(first) = seen.get(name.as_str()) {
                self.errors.push(InventoryError::DuplicateHost {
                    at,
                    host: name,
                    first: first.clone(),
                });
                continue;
            }
            seen.insert(name.to_string(), at);
            if let Some(host) = self.host(spanned, name, layers) {
                hosts.push(host);
            }
        }
        hosts
    }

    fn host(
        &mut self,
        spanned: &Spanned<super::raw::RawHost>,
        name: HostName,
        layers: &HostLayers<'_>,
    ) -> Option<Host> {
        let raw = &spanned.value;
        let defaults = layers.defaults;
        let resolved = self.ssh_config_host(&raw.address, &name);
        let proxy_jump = layers.proxy_jump(raw);
        let address: Option<Address> = match &resolved {
            None => self.parse(&raw.address, "hosts[].address", Some(&name)),
            Some(resolved) => {
                // The inventory's chain replaces the config's ProxyJump and ProxyCommand, as
                // `ssh -J` on the command line does.
                if proxy_jump.is_none() {
                    if let Err(error) =
                        openssh::refuse_proxy(resolved, &name, &self.at(&raw.address))
                    {
                        self.errors.push(error);
                    }
                }
                self.address_from_config(&raw.address, resolved, &name)
            }
        };
        let port = match (&raw.port, defaults.and_then(|d| d.port.as_ref())) {
            (None, None) => Some(
                resolved
                    .as_ref()
                    .and_then(|r| r.port.as_ref())
                    .and_then(|p| Port::new(p.value))
                    .unwrap_or_default(),
            ),
            // An invalid default is reported once, by `default_port`.
            (None, Some(default)) => Port::new(default.value),
            (Some(port), _) => {
                let valid = Port::new(port.value);
                if valid.is_none() {
                    self.errors.push(InventoryError::InvalidValue {
                        at: self.at(port),
                        host: Some(name.clone()),
                        field: "port",
                        value: port.value.to_string(),
                        reason: "must be between 1 and 65535".into(),
                    });
                }
                valid
            }
        };
        let user = match raw.user.as_ref().or(defaults.and_then(|d| d.user.as_ref())) {
            Some(user) => self.parse::<UserName>(user, "user", Some(&name)),
            None if resolved.as_ref().is_some_and(|r| r.user.is_some()) => {
                let set = resolved.as_ref().and_then(|r| r.user.clone())?;
                self.user_from_config(&set, &name)
            }
            None if self.ssh_config_failed => None,
            None => {
                self.errors.push(InventoryError::Missing {
                    at: self.at(spanned),
                    host: Some(name.clone()),
                    field: "user",
                    hint: "set it on the host or under `defaults` (or `User` in the ssh_config)",
                });
                None
            }
        };
        let identity = match raw
            .identity_file
            .as_ref()
            .or(defaults.and_then(|d| d.identity_file.as_ref()))
        {
            None => self.identity_from_config(resolved.as_ref(), &name),
            Some(file) => self.identity(file, &name),
        };
        let jumps = match (proxy_jump, resolved.as_ref().and_then(openssh::jump_chain)) {
            (Some(text), _) => self.inventory_jumps(text, &name, identity.as_ref()),
            (None, Some((chain, line))) => {
                let at = openssh::position(line);
                self.resolve_jumps(JumpRequest {
                    chain,
                    at,
                    host: &name,
                    identity: identity.as_ref(),
                })
            }
            (None, None) => Some(Vec::new()),
        };
        let become_user = match layers.r#become(raw) {
            None => Some(None),
            Some(spec) => self.become_user(spec, &name),
        };
        let mut vars = Vars::layered([layers.global]);
        let mut groups = Vec::new();
        for group in &raw.groups {
            match layers.groups.get(&group.value) {
                Some(group_vars) => {
                    vars.overlay(group_vars);
                    groups.extend(group.value.parse::<GroupName>().ok());
                }
                None => self.errors.push(InventoryError::UnknownGroup {
                    at: self.at(group),
                    host: name.clone(),
                    group: group.value.clone(),
                    known: known_groups(layers.groups),
                }),
            }
        }
        if let Some(host_vars) = &raw.vars {
            let host_vars = self.vars(host_vars, Some(&name));
            vars.overlay(&host_vars);
        }
        vars.overlay(layers.command_line);
        Some(Host {
            name,
            address: address?,
            port: port?,
            user: user?,
            identity: identity?,
            jumps: jumps?,
            become_user: become_user?,
            groups,
            vars,
        })
    }

    /// The user a host's `become` runs commands as (`Some(None)`: none, `method: none`).
    fn become_user(
        &mut self,
        spec: &Spanned<RawBecome>,
        host: &HostName,
    ) -> Option<Option<UserName>> {
        let method = spec.value.method.as_ref();
        match method.map(|m| m.value.as_str()) {
            None | Some("sudo") => {}
            Some("none") => return Some(None),
            Some(other) => {
                self.errors.push(InventoryError::InvalidValue {
                    at: self.at(method.expect("a method")),
                    host: Some(host.clone()),
                    field: "become.method",
                    value: other.to_string(),
                    reason: "expected `sudo` or `none` (su, doas and others are not supported)"
                        .into(),
                });
                return None;
            }
        }
        match &spec.value.user {
            None => Some(Some("root".parse().expect("root is a user name"))),
            Some(user) => self
                .parse::<UserName>(user, "become.user", Some(host))
                .map(Some),
        }
    }

    /// The jump hosts of an inventory `proxy_jump` (`none`: none).
    fn inventory_jumps(
        &mut self,
        text: &Spanned<String>,
        host: &HostName,
        identity: Option<&Identity>,
    ) -> Option<Vec<JumpHost>> {
        let at = self.at(text);
        match Resolver::parse(&text.value) {
            Ok(None) => Some(Vec::new()),
            Ok(Some(chain)) => self.resolve_jumps(JumpRequest {
                chain: &chain,
                at,
                host,
                identity,
            }),
            Err(problem) => {
                self.errors.push(InventoryError::Jump {
                    at,
                    host: host.clone(),
                    problem: Box::new(problem),
                });
                None
            }
        }
    }

    /// Every hop of a chain, resolved through the ssh_config in use; a hop's identity is the
    /// config's first IdentityFile for it, else the host's own.
    fn resolve_jumps(&mut self, request: JumpRequest<'_>) -> Option<Vec<JumpHost>> {
        let JumpRequest {
            chain,
            at,
            host,
            identity,
        } = request;
        let local_user = openssh::context().local_user;
        let resolver = Resolver {
            config: self.ssh_config.as_ref(),
            local_user: &local_user,
        };
        let hops = match resolver.resolve(chain) {
            Ok(hops) => hops,
            Err(problem) => {
                self.errors.push(InventoryError::Jump {
                    at,
                    host: host.clone(),
                    problem: Box::new(problem),
                });
                return None;
            }
        };
        let mut jumps = Vec::new();
        for hop in hops {
            let identity = match hop.identity_file {
                Some((path, line)) => self.identity_path(path, openssh::position(&line), host),
                None => identity.cloned(),
            };
            jumps.push(JumpHost {
                name: hop.name,
                address: hop.address,
                port: hop.port,
                user: hop.user,
                identity: identity?,
            });
        }
        Some(jumps)
    }

    /// The identity file must exist, be readable now (not fail mid-upgrade), be a private key,
    /// and be private (OpenSSH refuses a key others can read).
    fn identity(&mut self, file: &Spanned<String>, host: &HostName) -> Option<Identity> {
        let path = self.resolve(&file.value);
        self.identity_path(path, self.at(file), host)
    }

    /// [`Checker::identity`] for a resolved path set at `at`.
    fn identity_path(
        &mut self,
        path: PathBuf,
        at: SourcePosition,
        host: &HostName,
    ) -> Option<Identity> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        if self.readable_identities.contains(&path) {
            return Some(Identity::File(path));
        }
        let mut head = [0u8; 4096];
        let readable = fs::File::open(&path).and_then(|mut f| {
            let metadata = f.metadata()?;
            if !metadata.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                ));
            }
            let read = f.read(&mut head)?;
            Ok((metadata.permissions().mode() & 0o7777, read))
        });
        match readable {
            Ok((mode, read)) => {
                let problem = if !is_private_key(&head[..read]) {
                    Some(IdentityProblem::NotAPrivateKey)
                } else if mode & 0o077 != 0 {
                    Some(IdentityProblem::TooOpen { mode })
                } else {
                    None
                };
                if let Some(problem) = problem {
                    self.errors.push(InventoryError::IdentityNotUsable {
                        at,
                        host: host.clone(),
                        path,
                        problem,
                    });
                    return None;
                }
                self.readable_identities.insert(path.clone());
                Some(Identity::File(path))
            }
            Err(source) => {
                self.errors.push(InventoryError::IdentityFile {
                    at,
                    host: host.clone(),
                    path,
                    source,
                });
                None
            }
        }
    }
}

/// A chain to resolve for a host.
struct JumpRequest<'a> {
    chain: &'a JumpChain,
    /// Where the chain is set (inventory value or ssh_config line).
    at: SourcePosition,
    host: &'a HostName,
    /// The host's own identity, for hops the ssh_config gives none.
    identity: Option<&'a Identity>,
}

/// A PEM or OpenSSH private key: the first line is `-----BEGIN … PRIVATE KEY-----`.
fn is_private_key(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    text.lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| {
            let line = line.trim();
            line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----")
        })
}

fn checked_var_name(name: &str) -> Result<VarName, NameError> {
    if RESERVED_VAR_NAMES.contains(&name) {
        return Err(NameError::reserved(name));
    }
    name.parse()
}

fn known_groups(groups: &BTreeMap<String, Vars>) -> String {
    if groups.is_empty() {
        "none".to_string()
    } else {
        groups
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
