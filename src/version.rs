//! IPFS Cluster release versions and what each implies for an upgrade (state format, RPC
//! protocol, CLI era), after the tables of the upgrade reference.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A release version `X.Y.Z`; build metadata (`+git…`) and a leading `v` are accepted and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version `{text}`: expected X.Y.Z, for example 0.10.1")]
pub struct VersionError {
    pub text: String,
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || VersionError { text: text.to_string() };
        let core = text.trim().trim_start_matches('v');
        let core = core.split(['+', '-']).next().ok_or_else(err)?;
        let mut parts = core.split('.');
        let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok()).ok_or_else(err);
        let version = Version { major: next()?, minor: next()?, patch: next()? };
        if core.split('.').count() != 3 {
            return Err(err());
        }
        Ok(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version { major, minor, patch }
    }

    /// `major.minor`, the unit of compatibility the old upgrade docs asked for.
    pub fn series(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// The raft state format (first byte of a snapshot) of this release; `None` from 0.11 on,
    /// where the state is no longer versioned.
    pub fn state_format(&self) -> Option<u8> {
        let v = *self;
        match self.series() {
            _ if v < Version::new(0, 3, 2) => Some(2),
            _ if v < Version::new(0, 3, 5) => Some(3),
            (0, 3..=4) => Some(4),
            (0, 5..=9) => Some(5),
            (0, 10) => Some(6),
            _ => None,
        }
    }

    /// Whether `ipfs-cluster-service state upgrade` exists (0.3.1 – 0.10.x).
    pub fn has_state_upgrade(&self) -> bool {
        self.series() < (0, 11) && *self >= Version::new(0, 3, 1)
    }

    /// The libp2p RPC protocol ID: peers with different IDs cannot talk.
    pub fn rpc_protocol(&self) -> String {
        match self.series() {
            (0, 0..=5) => format!("/ipfscluster/{self}/rpc"),
            (0, 13..=14) => "/ipfscluster/0.12/rpc".to_string(),
            (0, minor) => format!("/ipfscluster/0.{minor}/rpc"),
            _ => "/ipfscluster/1.0/rpc".to_string(),
        }
    }

    /// How `daemon --bootstrap` takes several addresses: repeated flags up to 0.10, one
    /// comma-separated value from 0.11.
    pub fn bootstrap_flag_style(&self) -> &'static str {
        if self.series() < (0, 11) {
            "repeat"
        } else {
            "comma"
        }
    }

    /// The multiaddr protocol name for the peer ID suffix (`/ipfs/` up to 0.10, `/p2p/` after).
    pub fn peer_id_protocol(&self) -> &'static str {
        if self.series() < (0, 11) {
            "ipfs"
        } else {
            "p2p"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn parses_release_strings_as_the_binaries_print_them() {
        assert_eq!(v("0.10.1+git7a1c2d3"), Version::new(0, 10, 1));
        assert_eq!(v("v1.1.6"), Version::new(1, 1, 6));
        assert!("0.10".parse::<Version>().is_err());
        assert!("0.10.1.2".parse::<Version>().is_err());
        assert!("latest".parse::<Version>().is_err());
    }

    #[test]
    fn state_formats_follow_the_mapstate_table() {
        assert_eq!(v("0.3.1").state_format(), Some(2));
        assert_eq!(v("0.3.2").state_format(), Some(3));
        assert_eq!(v("0.3.5").state_format(), Some(4));
        assert_eq!(v("0.4.0").state_format(), Some(4));
        assert_eq!(v("0.9.0").state_format(), Some(5));
        assert_eq!(v("0.10.1").state_format(), Some(6));
        assert_eq!(v("0.11.0").state_format(), None);
        assert!(v("0.10.1").has_state_upgrade());
        assert!(!v("0.11.0").has_state_upgrade());
    }

    #[test]
    fn rpc_protocols_follow_the_interop_table() {
        assert_eq!(v("0.5.1").rpc_protocol(), "/ipfscluster/0.5.1/rpc");
        assert_eq!(v("0.9.0").rpc_protocol(), "/ipfscluster/0.9/rpc");
        assert_eq!(v("0.14.1").rpc_protocol(), "/ipfscluster/0.12/rpc");
        assert_eq!(v("1.1.6").rpc_protocol(), v("1.0.0").rpc_protocol());
    }
}
