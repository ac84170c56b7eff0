//! IPFS Cluster's RPC protocol per release, and the known breaks between releases that share
//! one protocol ID. Peers of different versions work together while the protocol matches
//! (the upgrade docs: "restart the peers either sequentially or at once"), so a rolling
//! upgrade (one peer at a time) is only safe inside one protocol and across no known break.
//! Pure data, with its sources; releases past the table are unknown, and unknown fails closed.

use crate::inventory::Version;

/// The newest release the table knows: anything after it is not rolled until the table says.
pub const NEWEST_KNOWN: Version = Version::new(1, 1, 6);

/// A change that breaks peers of two releases that share one protocol ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownBreak {
    /// Releases before `at` do not work with releases from `at` on.
    pub at: Version,
    pub what: &'static str,
    pub source: &'static str,
}

/// Known breaks inside one protocol ID.
pub const KNOWN_BREAKS: &[KnownBreak] = &[
    KnownBreak {
        at: Version::new(0, 13, 0),
        what: "CRDT broadcasts changed between 0.12.1 and 0.13",
        source: "ipfs-cluster#1145",
    },
    KnownBreak {
        at: Version::new(0, 14, 0),
        what: "metrics and status changed between 0.13 and 0.14",
        source: "ipfs-cluster#1409",
    },
];

/// The RPC protocol of `version`, when the table knows it.
/// (`Version::rpc_protocol`: up to 0.12.x from the major and minor version, 0.13.0 – 0.14.5
/// fixed at 0.12, 1.0.0 – 1.1.6 at 1.0; sources in `../shared/ipfs-cluster-1x.md` §3.)
pub fn protocol_of(version: Version) -> Option<String> {
    (version <= NEWEST_KNOWN).then(|| version.rpc_protocol())
}

/// Why peers of `from` and `to` cannot run side by side (so a rolling upgrade is unsafe), or
/// `None` when they can.
pub fn mixed_versions_problem(from: Version, to: Version) -> Option<String> {
    let (Some(old), Some(new)) = (protocol_of(from), protocol_of(to)) else {
        return Some(format!(
            "the RPC protocol of {} is not known to this version of cluster-upgrade (its table ends at {NEWEST_KNOWN})",
            if protocol_of(from).is_none() { from } else { to }
        ));
    };
    if old != new {
        return Some(format!(
            "the RPC protocol changes ({from} speaks {old}, {to} speaks {new}): peers of the two versions cannot work together"
        ));
    }
    KNOWN_BREAKS
        .iter()
        .find(|b| from < b.at && b.at <= to)
        .map(|b| {
            format!(
                "{from} and {to} share the protocol {old}, but {} ({})",
                b.what, b.source
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn protocols_per_release() {
        assert_eq!(protocol_of(v("0.9.0")).unwrap(), "/ipfscluster/0.9/rpc");
        assert_eq!(protocol_of(v("0.12.1")).unwrap(), "/ipfscluster/0.12/rpc");
        assert_eq!(protocol_of(v("0.13.3")).unwrap(), "/ipfscluster/0.12/rpc");
        assert_eq!(protocol_of(v("0.14.5")).unwrap(), "/ipfscluster/0.12/rpc");
        assert_eq!(protocol_of(v("1.0.8")).unwrap(), "/ipfscluster/1.0/rpc");
        assert_eq!(protocol_of(v("1.1.6")).unwrap(), "/ipfscluster/1.0/rpc");
        assert_eq!(
            protocol_of(v("1.2.0")),
            None,
            "unknown releases fail closed"
        );
    }

    #[test]
    fn inside_1_x_peers_of_two_versions_work_together() {
        assert_eq!(mixed_versions_problem(v("1.0.8"), v("1.1.6")), None);
        assert_eq!(mixed_versions_problem(v("1.0.0"), v("1.0.8")), None);
        assert_eq!(mixed_versions_problem(v("0.10.0"), v("0.10.1")), None);
    }

    #[test]
    fn protocol_changes_and_known_breaks_are_named() {
        let across_1_0 = mixed_versions_problem(v("0.14.5"), v("1.0.8")).unwrap();
        assert!(across_1_0.contains("RPC protocol changes"), "{across_1_0}");
        let raft_era = mixed_versions_problem(v("0.9.0"), v("0.10.1")).unwrap();
        assert!(raft_era.contains("/ipfscluster/0.9/rpc"), "{raft_era}");
        let metrics = mixed_versions_problem(v("0.13.3"), v("0.14.5")).unwrap();
        assert!(metrics.contains("ipfs-cluster#1409"), "{metrics}");
        let broadcast = mixed_versions_problem(v("0.12.1"), v("0.13.3")).unwrap();
        assert!(broadcast.contains("ipfs-cluster#1145"), "{broadcast}");
        let unknown = mixed_versions_problem(v("1.1.6"), v("1.2.0")).unwrap();
        assert!(unknown.contains("not known"), "{unknown}");
    }
}
