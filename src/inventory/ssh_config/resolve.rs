//! One host's settings from a parsed config, as `ssh -G` resolves them: lines apply while the
//! last `Host`/`Match` above them matches, the first value of a key wins, `IdentityFile`
//! accumulates, and an `Include` inside a block that does not match never matches.

use super::error::{ConfigLine, SshConfigError};
use super::expand::{self, Tokens};
use super::jump::Jump;
use super::parse::{ConfigFile, Criterion, CriterionKind, Entry, Value};
use super::pattern::{host_line_matches, list_matches};
use super::{Context, Resolved, Setting};

/// The walk over the files: the host asked for and what is resolved so far.
struct Walk<'a> {
    original: &'a str,
    context: &'a Context,
    found: Resolved,
}

/// Resolves `original` (the host as given) in `config`.
pub fn resolve(
    config: &ConfigFile,
    original: &str,
    context: &Context,
) -> Result<Resolved, SshConfigError> {
    let mut walk = Walk {
        original,
        context,
        found: Resolved::empty(original),
    };
    walk.entries(&config.entries, Scope::Open)?;
    walk.finish()
}

/// Whether `Host`/`Match` lines in a file can match (not inside an `Include` of a block that
/// does not apply).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Open,
    NeverMatch,
}

impl Walk<'_> {
    fn entries(&mut self, entries: &[Entry], scope: Scope) -> Result<(), SshConfigError> {
        // Lines before the first `Host` or `Match` apply to every host.
        let mut active = scope == Scope::Open;
        for entry in entries {
            match entry {
                Entry::Host { patterns } => {
                    active = scope == Scope::Open && host_line_matches(self.original, patterns);
                }
                Entry::Match { criteria } => {
                    active = scope == Scope::Open && self.all_match(criteria)?;
                }
                // An included file starts in the including line's state.
                Entry::Include { files } => {
                    let inner = if active { scope } else { Scope::NeverMatch };
                    for file in files {
                        self.entries(&file.entries, inner)?;
                    }
                }
                Entry::Set { at, value } if active => self.apply(at, value),
                Entry::Set { .. } => {}
            }
        }
        Ok(())
    }

    fn all_match(&self, criteria: &[Criterion]) -> Result<bool, SshConfigError> {
        let host = self
            .match_host()
            .map_err(|(at, value, reason)| SshConfigError::Expand { at, value, reason })?;
        let user = self.remote_user();
        Ok(criteria.iter().all(|criterion| {
            let hit = match criterion.kind {
                CriterionKind::Host => list_matches(&host, &criterion.patterns, true),
                CriterionKind::OriginalHost => {
                    list_matches(self.original, &criterion.patterns, true)
                }
                CriterionKind::User => list_matches(&user, &criterion.patterns, false),
            };
            hit != criterion.negated
        }))
    }

    /// The host name `Match host` sees: `HostName` so far (with `%h`), else the host as given.
    fn match_host(&self) -> Result<String, (ConfigLine, String, String)> {
        match &self.found.hostname_set {
            Some(set) => expand::hostname(&set.value, self.original)
                .map_err(|reason| (set.at.clone(), set.value.clone(), reason)),
            None => Ok(self.original.to_string()),
        }
    }

    fn remote_user(&self) -> String {
        self.found
            .user
            .as_ref()
            .map_or_else(|| self.context.local_user.clone(), |s| s.value.clone())
    }

    fn apply(&mut self, at: &ConfigLine, value: &Value) {
        let found = &mut self.found;
        match value {
            Value::HostName(v) => first(&mut found.hostname_set, v.clone(), at),
            Value::Port(v) => first(&mut found.port, *v, at),
            Value::User(v) => first(&mut found.user, v.clone(), at),
            Value::IdentityFile(v) => {
                if !found.identity_files.iter().any(|f| &f.value == v) {
                    found.identity_files.push(Setting {
                        value: v.clone(),
                        at: at.clone(),
                    });
                }
            }
            Value::IdentitiesOnly(v) => first(&mut found.identities_only, *v, at),
            Value::IdentityAgent(v) => first(&mut found.identity_agent, v.clone(), at),
            // ProxyJump and ProxyCommand exclude each other: the first of them wins, and
            // `ProxyJump none` still lets a later ProxyCommand in (as ssh 9.2 does).
            Value::ProxyJump(v) => {
                if found.proxy_jump.is_none() && found.proxy_command.is_none() {
                    if matches!(v, Jump::Via(_)) {
                        first(&mut found.proxy_command, "none".to_string(), at);
                    }
                    first(&mut found.proxy_jump, v.clone(), at);
                }
            }
            Value::ProxyCommand(v) => first(&mut found.proxy_command, v.clone(), at),
            Value::UserKnownHostsFile(v) => first(&mut found.user_known_hosts_files, v.clone(), at),
            Value::StrictHostKeyChecking(v) => first(&mut found.strict_host_key_checking, *v, at),
            Value::ConnectTimeout(v) => first(&mut found.connect_timeout, *v, at),
            Value::CanonicalizeHostname(v) => first(&mut found.canonicalize_hostname, *v, at),
        }
    }

    /// Expands what ssh expands once the configuration is read.
    fn finish(mut self) -> Result<Resolved, SshConfigError> {
        if let Some(set) = self
            .found
            .canonicalize_hostname
            .as_ref()
            .filter(|s| s.value)
        {
            return Err(SshConfigError::Unsupported {
                at: set.at.clone(),
                what: "CanonicalizeHostname (ssh would look the name up and read the config again)",
            });
        }
        let expand_error = |set: &Setting<String>, reason| SshConfigError::Expand {
            at: set.at.clone(),
            value: set.value.clone(),
            reason,
        };
        if let Some(set) = &self.found.hostname_set {
            let name =
                expand::hostname(&set.value, self.original).map_err(|r| expand_error(set, r))?;
            self.found.hostname = name.to_ascii_lowercase();
        }
        let remote_user = self.remote_user();
        let tokens = Tokens {
            context: self.context,
            hostname: &self.found.hostname,
            original: self.original,
            port: self.found.port.as_ref().map_or(22, |p| p.value),
            remote_user: &remote_user,
        };
        let mut paths = Vec::new();
        for file in &self.found.identity_files {
            let path = expand::expand(&file.value, &tokens).map_err(|r| expand_error(file, r))?;
            paths.push(Setting {
                value: path.into(),
                at: file.at.clone(),
            });
        }
        if let Some(set) = &mut self.found.user_known_hosts_files {
            if set.value != ["none"] {
                let joined = Setting {
                    value: set.value.join(" "),
                    at: set.at.clone(),
                };
                let mut expanded = Vec::new();
                for file in &set.value {
                    expanded
                        .push(expand::expand(file, &tokens).map_err(|r| expand_error(&joined, r))?);
                }
                set.value = expanded;
            }
        }
        if let Some(set) = &mut self.found.identity_agent {
            if !is_agent_keyword(&set.value) {
                let original = set.clone();
                set.value =
                    expand::expand(&set.value, &tokens).map_err(|r| expand_error(&original, r))?;
            }
        }
        self.found.identity_paths = paths;
        Ok(self.found)
    }
}

/// `IdentityAgent` values ssh does not expand: `none`, `SSH_AUTH_SOCK`, `$NAME`.
fn is_agent_keyword(value: &str) -> bool {
    value == "none"
        || value == "SSH_AUTH_SOCK"
        || (value.starts_with('$') && !value.starts_with("${"))
}

/// Sets `slot` unless an earlier line did.
fn first<T>(slot: &mut Option<Setting<T>>, value: T, at: &ConfigLine) {
    if slot.is_none() {
        *slot = Some(Setting {
            value,
            at: at.clone(),
        });
    }
}
