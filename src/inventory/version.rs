//! IPFS Cluster release versions and what the reference derives from them
//! (state format, RPC protocol, CLI shape; `/work/shared/ipfs-cluster-reference.md` §2, §4, §5).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A release version `X.Y.Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a release version like 1.1.6 (major.minor.patch)")]
pub struct VersionError;

/// What a release's pebble accepts in `format_major_version` and can open on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PebbleFormats {
    /// The lowest format it opens (and accepts in its config).
    pub oldest: u32,
    /// The newest format it can write (a store is raised to at most this).
    pub newest: u32,
}

/// How `daemon --bootstrap` takes several addresses in a release's CLI (reference §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootstrapFlagStyle {
    /// 0.3.x: a single address, and `--bootstrap` is a global flag.
    Single,
    /// 0.4–0.10: the flag is repeated once per address.
    Repeat,
    /// ≥ 0.11: one comma-separated value.
    Comma,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses what a binary reports (`1.1.6+git1234`, `v0.10.1`, `0.3.5-abcdef12`): build
    /// metadata and commit suffixes are dropped.
    pub fn from_reported(text: &str) -> Result<Version, VersionError> {
        let core = text.trim().trim_start_matches('v');
        let core = core.split(['+', '-']).next().unwrap_or_default();
        core.parse()
    }

    /// `mapstate.Version`, the first byte of a raft snapshot; `None` from 0.11 on (§2.5).
    pub fn state_format(self) -> Option<u8> {
        match (self.major, self.minor, self.patch) {
            (0, 0..=2, _) | (0, 3, 0..=1) => Some(2),
            (0, 3, 2..=4) => Some(3),
            (0, 3, _) | (0, 4, _) => Some(4),
            (0, 5..=9, _) => Some(5),
            (0, 10, _) => Some(6),
            _ => None,
        }
    }

    /// Whether `ipfs-cluster-service state upgrade` exists: 0.3.1 up to 0.10.x (§2.2).
    pub fn has_state_upgrade(self) -> bool {
        self >= Version::new(0, 3, 1) && self < Version::new(0, 11, 0)
    }

    /// The libp2p RPC protocol ID; peers with different IDs cannot talk (§4).
    /// The pebble `format_major_version`s this release opens and writes, when known (1.0.5,
    /// where pebble arrived, to 1.1.6): from each release's go.mod and pebble's
    /// `format_major_version.go` and `Options.Validate`, and the real 1.0.8 and 1.1.6
    /// binaries; see `docs/adr/0009-pebble-format.md`.
    pub fn pebble_formats(self) -> Option<PebbleFormats> {
        let range = |oldest, newest| Some(PebbleFormats { oldest, newest });
        match (self.major, self.minor, self.patch) {
            // pebble 2022-11/2023-02: FormatNewest 12, no minimum (a store without a marker is 1).
            (1, 0, 5..=7) => range(1, 12),
            // pebble 2023-12 and v1.1.x: FormatNewest 16.
            (1, 0, 8) | (1, 1, 0..=2) => range(1, 16),
            // pebble/v2 v2.0.3: FormatMinSupported 13, FormatNewest 19.
            (1, 1, 3..=4) => range(13, 19),
            // pebble/v2 v2.1.x: 13 to 24 ("must be between 13 and 24", the real 1.1.6).
            (1, 1, 5..=6) => range(13, 24),
            _ => None,
        }
    }

    pub fn rpc_protocol(self) -> String {
        match (self.major, self.minor) {
            (0, 0..=5) => format!("/ipfscluster/{self}/rpc"),
            (0, 13..=14) => "/ipfscluster/0.12/rpc".to_string(),
            (0, minor) => format!("/ipfscluster/0.{minor}/rpc"),
            _ => "/ipfscluster/1.0/rpc".to_string(),
        }
    }

    /// How several `--bootstrap` addresses are passed (§5).
    pub fn bootstrap_flag_style(self) -> BootstrapFlagStyle {
        if self < Version::new(0, 4, 0) {
            BootstrapFlagStyle::Single
        } else if self < Version::new(0, 11, 0) {
            BootstrapFlagStyle::Repeat
        } else {
            BootstrapFlagStyle::Comma
        }
    }

    /// The peer-ID protocol in the multiaddrs this release prints: `ipfs` before 0.11, `p2p` after.
    pub fn peer_id_protocol(self) -> &'static str {
        if self < Version::new(0, 11, 0) {
            "ipfs"
        } else {
            "p2p"
        }
    }
}

impl FromStr for Version {
    type Err = VersionError;

    /// Strict `X.Y.Z` (an optional leading `v` is accepted, as release tags carry one).
    fn from_str(text: &str) -> Result<Version, VersionError> {
        let core = text.strip_prefix('v').unwrap_or(text);
        let mut parts = core.split('.');
        let mut next = || -> Result<u32, VersionError> {
            let part = parts.next().ok_or(VersionError)?;
            // Leading zeros and signs are not version syntax.
            if part.is_empty()
                || !part.bytes().all(|b| b.is_ascii_digit())
                || (part.len() > 1 && part.starts_with('0'))
            {
                return Err(VersionError);
            }
            part.parse().map_err(|_| VersionError)
        };
        let version = Version::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(VersionError);
        }
        Ok(version)
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;
    fn try_from(text: String) -> Result<Version, VersionError> {
        text.parse()
    }
}

impl From<Version> for String {
    fn from(version: Version) -> String {
        version.to_string()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn parses_strict_and_reported_forms() {
        assert_eq!(v("0.10.1"), Version::new(0, 10, 1));
        assert_eq!(v("v1.1.6"), Version::new(1, 1, 6));
        for bad in [
            "",
            "1.0",
            "1.0.0.0",
            "1.x.0",
            "01.0.0",
            "1.0.0+git",
            " 1.0.0",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            Version::from_reported("1.1.6+gitabcdef").unwrap(),
            v("1.1.6")
        );
        assert_eq!(
            Version::from_reported("0.3.5-1a2b3c4d").unwrap(),
            v("0.3.5")
        );
    }

    #[test]
    fn derived_facts_follow_the_reference_tables() {
        assert_eq!(v("0.3.5").state_format(), Some(4));
        assert_eq!(v("0.9.0").state_format(), Some(5));
        assert_eq!(v("0.10.1").state_format(), Some(6));
        assert_eq!(v("0.11.0").state_format(), None);
        assert!(v("0.10.1").has_state_upgrade());
        assert!(!v("0.11.0").has_state_upgrade());
        assert!(!v("0.3.0").has_state_upgrade());
        assert_eq!(v("0.3.5").rpc_protocol(), "/ipfscluster/0.3.5/rpc");
        assert_eq!(v("0.10.1").rpc_protocol(), "/ipfscluster/0.10/rpc");
        assert_eq!(v("0.14.1").rpc_protocol(), "/ipfscluster/0.12/rpc");
        assert_eq!(v("1.1.6").rpc_protocol(), "/ipfscluster/1.0/rpc");
        assert_eq!(
            v("0.10.1").bootstrap_flag_style(),
            BootstrapFlagStyle::Repeat
        );
        assert_eq!(v("1.0.8").bootstrap_flag_style(), BootstrapFlagStyle::Comma);
        assert_eq!(v("0.10.1").peer_id_protocol(), "ipfs");
        assert_eq!(v("0.11.0").peer_id_protocol(), "p2p");
    }
}
