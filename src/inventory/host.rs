//! One managed host: how to reach it over SSH and its merged variables.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::jump::JumpHost;
use super::names::{GroupName, HostName, UserName};
use super::vars::Vars;

/// A host of the cluster, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: HostName,
    pub address: Address,
    pub port: Port,
    pub user: UserName,
    pub identity: Identity,
    /// The jump hosts it is reached through, first to last; empty when reached directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jumps: Vec<JumpHost>,
    /// The user every command runs as, through `sudo -n -u USER` (inventory `become`); `None`:
    /// as the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<UserName>,
    /// Groups in the order the host lists them (the order their vars were layered in).
    pub groups: Vec<GroupName>,
    /// Merged variables: global < groups < host < command line.
    pub vars: Vars,
}

/// How the SSH client authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// A private key file, resolved to an absolute path and readable when the inventory loaded.
    File(PathBuf),
    /// Keys offered by the running ssh-agent (`SSH_AUTH_SOCK`).
    Agent,
}

/// An IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an IP address or a DNS name")]
pub struct AddressError;

impl Address {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as an IP, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.0.parse().ok()
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        if text.parse::<IpAddr>().is_ok() || is_dns_name(text) {
            Ok(Address(text.to_string()))
        } else {
            Err(AddressError)
        }
    }
}

fn is_dns_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // An all-numeric dotted name is a mistyped IP address, not a DNS name.
        && !name.split('.').all(|label| label.bytes().all(|b| b.is_ascii_digit()))
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(text: String) -> Result<Address, AddressError> {
        text.parse()
    }
}

impl From<Address> for String {
    fn from(address: Address) -> String {
        address.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A TCP port, never 0; defaults to 22.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Port(NonZeroU16);

impl Port {
    /// `None` for port 0.
    pub fn new(port: u16) -> Option<Port> {
        NonZeroU16::new(port).map(Port)
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl Default for Port {
    fn default() -> Port {
        Port(NonZeroU16::new(22).expect("22 is not zero"))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_ips_or_dns_names() {
        for good in ["127.0.0.2", "::1", "peer0.example.org", "h1", "node-3.lan."] {
            assert!(good.parse::<Address>().is_ok(), "{good}");
        }
        for bad in ["", "999.1.1.1", "a b", "-x.org", "host:22", "a..b", "1.2.3"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn port_defaults_to_22_and_refuses_0() {
        assert_eq!(Port::default().get(), 22);
        assert!(Port::new(0).is_none());
    }
}
