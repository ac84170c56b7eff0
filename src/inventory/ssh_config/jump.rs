//! `ProxyJump` values: `none`, or a chain of `[user@]host[:port]` hops (and `ssh://` URIs),
//! checked as OpenSSH checks them and shown as `ssh -G` shows them.

use std::fmt;

/// A resolved `ProxyJump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jump {
    /// `ProxyJump none`: connect directly (and ignore later `ProxyJump` lines).
    Direct,
    /// Jump through these hops, first to last, as written.
    Via(JumpChain),
}

impl Jump {
    /// A `ProxyJump` value (or the inventory's `proxy_jump`): `none`, or a chain.
    pub fn parse(text: &str) -> Result<Jump, String> {
        parse(text)
    }
}

/// The hops of a jump chain: all but the last kept as written (OpenSSH only checks their
/// syntax here), the last one parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpChain {
    /// The hops before the last, as written, comma-separated.
    pub before: Option<String>,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// The value text, with a trailing comment removed, parsed; `Err` says why it is refused.
pub fn parse(rest: &str) -> Result<Jump, String> {
    let text = rest.split('#').next().unwrap_or_default().trim_end();
    if text.eq_ignore_ascii_case("none") {
        return Ok(Jump::Direct);
    }
    let (before, last) = match text.rfind(',') {
        Some(comma) => (Some(&text[..comma]), &text[comma + 1..]),
        None => (None, text),
    };
    for hop in before.into_iter().flat_map(|b| b.split(',')) {
        Hop::parse(hop)?;
    }
    let Hop { user, host, port } = Hop::parse(last)?;
    Ok(Jump::Via(JumpChain {
        before: before.map(str::to_string),
        user,
        host,
        port,
    }))
}

type UserHostPort = (Option<String>, String, Option<u16>);

/// One hop of a chain: `[user@]host[:port]` (or `ssh://[user@]host[:port]`), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub user: Option<String>,
    /// The host as written: an address, a name or a `Host` alias to resolve.
    pub host: String,
    pub port: Option<u16>,
}

impl Hop {
    /// Parses one hop as OpenSSH does (`parse_ssh_uri`, then `parse_user_host_port`).
    pub fn parse(text: &str) -> Result<Hop, String> {
        let text = text.trim();
        let plain = match text.strip_prefix("ssh://") {
            Some(uri) => uri.strip_suffix('/').unwrap_or(uri),
            None => text,
        };
        let (user, host, port) = user_host_port(plain)?;
        Ok(Hop { user, host, port })
    }
}

impl JumpChain {
    /// Every hop, first to last.
    pub fn hops(&self) -> Result<Vec<Hop>, String> {
        let mut hops = Vec::new();
        for hop in self.before.iter().flat_map(|b| b.split(',')) {
            hops.push(Hop::parse(hop)?);
        }
        hops.push(Hop {
            user: self.user.clone(),
            host: self.host.clone(),
            port: self.port,
        });
        Ok(hops)
    }
}

/// OpenSSH's `parse_user_host_port`: `[user@]host[:port]`, `[user@][v6]:port`.
fn user_host_port(hop: &str) -> Result<UserHostPort, String> {
    let bad = || format!("`{hop}` is not [user@]host[:port]");
    let (user, rest) = match hop.rfind('@') {
        Some(0) => return Err(bad()),
        Some(at) => (Some(hop[..at].to_string()), &hop[at + 1..]),
        None => (None, hop),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(bad)?,
        ),
    };
    Ok((user, host.to_string(), port))
}

impl fmt::Display for JumpChain {
    /// As `ssh -G` prints it: numeric or IPv6 last hosts in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(before) = &self.before {
            write!(f, "{before},")?;
        }
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        let numeric =
            self.host.contains(':') || self.host.chars().all(|c| c.is_ascii_digit() || c == '.');
        if numeric {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_keep_their_hops_and_show_as_ssh_does() {
        let Jump::Via(chain) = parse("ssh://u@h:33,10.0.0.1:2200").unwrap() else {
            panic!("a chain")
        };
        assert_eq!(chain.to_string(), "ssh://u@h:33,[10.0.0.1]:2200");
        let Jump::Via(chain) = parse("admin@bastion  # comment").unwrap() else {
            panic!("a chain")
        };
        assert_eq!(
            (chain.user.as_deref(), chain.host.as_str()),
            (Some("admin"), "bastion")
        );
        assert_eq!(parse("NONE").unwrap(), Jump::Direct);
        let Jump::Via(chain) = parse("ssh://u@h:33,10.0.0.1:2200,last").unwrap() else {
            panic!("a chain")
        };
        let hops = chain.hops().unwrap();
        assert_eq!(
            hops.iter()
                .map(|h| (h.user.as_deref(), h.host.as_str(), h.port))
                .collect::<Vec<_>>(),
            [
                (Some("u"), "h", Some(33)),
                (None, "10.0.0.1", Some(2200)),
                (None, "last", None)
            ]
        );
        assert!(parse("a,@b").is_err());
        assert!(parse("h:0").is_err());
    }
}
