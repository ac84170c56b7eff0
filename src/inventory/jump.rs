//! Jump hosts: the chain a host is reached through (`proxy_jump` in the inventory, `ProxyJump`
//! in the ssh_config), every hop resolved as `ssh -J` resolves it.
//!
//! `ssh -J a,b host` connects to `b` with `ssh -J a b` and to `a` with `ssh a`: each hop's
//! `HostName`, `Port`, `User` and `IdentityFile` come from the ssh_config (the port and user
//! written in the chain win), and only the first hop's own `ProxyJump` is followed (the later
//! hops get theirs from the chain). A hop the config sends through a `ProxyCommand` is refused.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::host::{Address, Identity, Port};
use super::names::{HostName, UserName};
use super::ssh_config::{ConfigLine, Hop, Jump, JumpChain, SshConfig, SshConfigError};

/// How deep first hops may send each other through their own `ProxyJump` before it counts as a
/// loop (ssh itself would recurse until it runs out of processes).
const MAX_DEPTH: usize = 8;

/// One jump host, resolved: how to reach it and log in to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JumpHost {
    /// The hop as the chain names it (an alias, a name or an address), used in messages.
    pub name: String,
    pub address: Address,
    pub port: Port,
    pub user: UserName,
    pub identity: Identity,
}

impl JumpHost {
    /// `user@address:port`, as the plan shows it.
    pub fn login(&self) -> String {
        format!("{}@{}", self.user, self.endpoint())
    }

    /// `address:port` (IPv6 addresses in brackets).
    pub fn endpoint(&self) -> String {
        if self.address.as_str().contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// Why a jump chain cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JumpProblem {
    #[error("{0}")]
    Syntax(String),
    #[error("jump host `{hop}`: ssh_config: {source}")]
    Config {
        hop: String,
        #[source]
        source: Box<SshConfigError>,
    },
    #[error("jump host `{hop}`: the ssh_config says to reach it through ProxyCommand `{command}` ({config_at}), which is not supported")]
    ProxyCommand {
        hop: String,
        command: String,
        config_at: ConfigLine,
    },
    #[error("jump host `{hop}`: its ssh_config ProxyJump chains go {MAX_DEPTH} levels deep (a loop? `Host * !{hop}` keeps a bastion from jumping through itself)")]
    Loop { hop: String },
    #[error("jump host `{hop}`: address `{value}`: {reason}")]
    Address {
        hop: String,
        value: String,
        reason: String,
    },
    #[error("jump host `{hop}`: user `{value}`: {reason}")]
    User {
        hop: String,
        value: String,
        reason: String,
    },
}

/// A hop resolved but for its identity, which the inventory checks like a host's.
#[derive(Debug, Clone)]
pub(super) struct ResolvedHop {
    pub name: String,
    pub address: Address,
    pub port: Port,
    pub user: UserName,
    /// The first `IdentityFile` of the ssh_config for it, and where it is set; `None` when the
    /// config names none (the host's own identity is used).
    pub identity_file: Option<(PathBuf, ConfigLine)>,
}

/// Resolves jump chains against the ssh_config in use (if any).
pub(super) struct Resolver<'a> {
    pub config: Option<&'a SshConfig>,
    /// The login for hops neither the chain nor the config give a user (as ssh does).
    pub local_user: &'a str,
}

impl Resolver<'_> {
    /// Parses an inventory `proxy_jump` value: `None` for `none`.
    pub fn parse(text: &str) -> Result<Option<JumpChain>, JumpProblem> {
        if text.contains('#') {
            return Err(JumpProblem::Syntax(format!(
                "`{text}` is not a chain of [user@]host[:port]"
            )));
        }
        match Jump::parse(text).map_err(JumpProblem::Syntax)? {
            Jump::Direct => Ok(None),
            Jump::Via(chain) => Ok(Some(chain)),
        }
    }

    /// Every hop of `chain`, first to last, with the first hop's own chain before it.
    pub fn resolve(&self, chain: &JumpChain) -> Result<Vec<ResolvedHop>, JumpProblem> {
        self.resolve_at(chain, 0)
    }

    fn resolve_at(&self, chain: &JumpChain, depth: usize) -> Result<Vec<ResolvedHop>, JumpProblem> {
        let hops = chain.hops().map_err(JumpProblem::Syntax)?;
        let mut resolved = Vec::new();
        for (i, hop) in hops.iter().enumerate() {
            let (one, own_chain) = self.hop(hop)?;
            if i == 0 {
                if let Some(own) = own_chain {
                    if depth + 1 >= MAX_DEPTH {
                        return Err(JumpProblem::Loop {
                            hop: hop.host.clone(),
                        });
                    }
                    resolved.extend(self.resolve_at(&own, depth + 1)?);
                }
            }
            resolved.push(one);
        }
        Ok(resolved)
    }

    /// One hop, and the chain its own ssh_config entry sends it through.
    fn hop(&self, hop: &Hop) -> Result<(ResolvedHop, Option<JumpChain>), JumpProblem> {
        let name = hop.host.clone();
        let found = match self.config {
            Some(config) => {
                Some(
                    config
                        .resolve(&hop.host)
                        .map_err(|source| JumpProblem::Config {
                            hop: name.clone(),
                            source: Box::new(source),
                        })?,
                )
            }
            None => None,
        };
        let hostname = found
            .as_ref()
            .map_or_else(|| hop.host.clone(), |f| f.hostname.clone());
        let address = hostname
            .parse::<Address>()
            .map_err(|reason| JumpProblem::Address {
                hop: name.clone(),
                value: hostname.clone(),
                reason: reason.to_string(),
            })?;
        let port = hop
            .port
            .or_else(|| {
                found
                    .as_ref()
                    .and_then(|f| f.port.as_ref())
                    .map(|p| p.value)
            })
            .and_then(Port::new)
            .unwrap_or_default();
        let user_text = hop
            .user
            .clone()
            .or_else(|| {
                found
                    .as_ref()
                    .and_then(|f| f.user.as_ref())
                    .map(|u| u.value.clone())
            })
            .unwrap_or_else(|| self.local_user.to_string());
        let user = user_text
            .parse::<UserName>()
            .map_err(|reason| JumpProblem::User {
                hop: name.clone(),
                value: user_text.clone(),
                reason: reason.to_string(),
            })?;
        let mut own_chain = None;
        if let Some(found) = &found {
            if let Some(command) = found.proxy_command() {
                return Err(JumpProblem::ProxyCommand {
                    hop: name,
                    command: command.value.clone(),
                    config_at: command.at.clone(),
                });
            }
            if let Some(set) = found.jump() {
                if let Jump::Via(chain) = &set.value {
                    own_chain = Some(chain.clone());
                }
            }
        }
        let identity_file = found.as_ref().and_then(|f| {
            let readable = super::openssh::first_identity(f)?;
            Some(match readable {
                Ok(file) => (file.value.clone(), file.at.clone()),
                Err((file, _)) => (file.value.clone(), file.at.clone()),
            })
        });
        Ok((
            ResolvedHop {
                name,
                address,
                port,
                user,
                identity_file,
            },
            own_chain,
        ))
    }
}

/// A host's chain as the plan shows it: `user@address:port` of each hop, ` → ` between.
pub fn describe(jumps: &[JumpHost]) -> String {
    jumps
        .iter()
        .map(|hop| match hop.name == hop.address.as_str() {
            true => hop.login(),
            false => format!("{} ({})", hop.name, hop.login()),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The hop name as a host name for transport messages (a name of other characters, such as an
/// IPv6 address, is shown as `jump-N`).
pub fn hop_name(hop: &JumpHost, index: usize) -> HostName {
    hop.name
        .parse()
        .unwrap_or_else(|_| format!("jump-{}", index + 1).parse().expect("a valid name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::ssh_config::Context;

    fn config(text: &str) -> (tempfile::TempDir, SshConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let context = Context {
            home: dir.path().to_path_buf(),
            local_user: "me".into(),
            env: |_| None,
        };
        let config = SshConfig::load(&path, context).unwrap();
        (dir, config)
    }

    fn logins(hops: &[ResolvedHop]) -> Vec<String> {
        hops.iter()
            .map(|h| format!("{}={}@{}:{}", h.name, h.user, h.address, h.port))
            .collect()
    }

    #[test]
    fn inventory_chains_parse_and_none_means_direct() {
        let chain = Resolver::parse("admin@bastion:2222,10.0.0.1")
            .unwrap()
            .unwrap();
        assert_eq!(chain.to_string(), "admin@bastion:2222,[10.0.0.1]");
        assert!(Resolver::parse("none").unwrap().is_none());
        assert!(Resolver::parse("a,,b").is_err());
        assert!(Resolver::parse("host:99999").is_err());
        assert!(Resolver::parse("bastion # comment").is_err());
    }

    #[test]
    fn hops_without_a_config_are_as_written_with_the_local_user() {
        let resolver = Resolver {
            config: None,
            local_user: "me",
        };
        let chain = Resolver::parse("b1,ops@127.0.0.9:2200").unwrap().unwrap();
        assert_eq!(
            logins(&resolver.resolve(&chain).unwrap()),
            ["b1=me@b1:22", "127.0.0.9=ops@127.0.0.9:2200"]
        );
    }

    #[test]
    fn hops_resolve_through_the_config_and_the_chain_wins() {
        let (_dir, config) = config(
            "Host bastion\n  HostName 127.0.0.8\n  User jump\n  Port 2201\n\
             Host inner\n  HostName 127.0.0.9\n  ProxyJump ignored-for-later-hops\n",
        );
        let resolver = Resolver {
            config: Some(&config),
            local_user: "me",
        };
        let chain = Resolver::parse("bastion,root@inner:2202").unwrap().unwrap();
        assert_eq!(
            logins(&resolver.resolve(&chain).unwrap()),
            ["bastion=jump@127.0.0.8:2201", "inner=root@127.0.0.9:2202"]
        );
        let chain = Resolver::parse("other@bastion:22").unwrap().unwrap();
        assert_eq!(
            logins(&resolver.resolve(&chain).unwrap()),
            ["bastion=other@127.0.0.8:22"]
        );
    }

    #[test]
    fn the_first_hop_follows_its_own_proxy_jump_and_loops_are_refused() {
        let (_dir, config) = config(
            "Host inner\n  HostName 127.0.0.9\n  ProxyJump outer\n\
             Host outer\n  HostName 127.0.0.8\n\
             Host loop\n  ProxyJump loop\n\
             Host cmd\n  ProxyCommand nc %h %p\n",
        );
        let resolver = Resolver {
            config: Some(&config),
            local_user: "me",
        };
        let chain = Resolver::parse("inner").unwrap().unwrap();
        assert_eq!(
            logins(&resolver.resolve(&chain).unwrap()),
            ["outer=me@127.0.0.8:22", "inner=me@127.0.0.9:22"]
        );
        let chain = Resolver::parse("loop").unwrap().unwrap();
        assert!(matches!(
            resolver.resolve(&chain),
            Err(JumpProblem::Loop { hop }) if hop == "loop"
        ));
        let chain = Resolver::parse("cmd").unwrap().unwrap();
        let error = resolver.resolve(&chain).unwrap_err().to_string();
        assert!(error.contains("ProxyCommand `nc %h %p`"), "{error}");
    }
}
