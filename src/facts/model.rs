//! The facts of one host, as plain data stored in the plan.

use serde::{Deserialize, Serialize};

use crate::inventory::Version;

/// What a read-only probe learned about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub host: String,
    /// Why the host could not be probed (SSH connection, host key, authentication); `None`
    /// when the probe ran.
    pub unreachable: Option<String>,
    pub service_version: Option<Version>,
    pub ctl_version: Option<Version>,
    /// The daemon answered its REST API.
    pub running: bool,
    pub peer_id: Option<String>,
    pub peername: Option<String>,
    /// The cluster multiaddr with its peer ID suffix, what `--bootstrap` takes.
    pub multiaddr: Option<String>,
    /// Peer IDs in the peerset this peer sees (itself included), sorted.
    pub cluster_peers: Vec<String>,
    /// Peers listed by `peers ls` with an error (unreachable, other protocol).
    pub peer_errors: Vec<PeerError>,
    pub rpc_protocol: Option<String>,
    /// First byte of the newest raft snapshot (≤ 0.10 releases only).
    pub state_format: Option<u8>,
    /// Whether a raft snapshot exists on disk.
    pub has_snapshot: bool,
    /// Backups of the raft folder (`raft.old.N`) found on disk.
    pub state_backups: Vec<String>,
    pub pins: Option<Pinset>,
    pub leave_on_shutdown: Option<bool>,
    pub wait_for_leader_timeout: Option<String>,
    /// `cluster.listen_multiaddress` from the config (without the peer ID): where the peer
    /// listens even while it is stopped, so `recover` can bootstrap to it.
    #[serde(default)]
    pub listen_multiaddress: Option<String>,
    /// Every raft folder on disk (`raft`, then `raft.old.N`) with its newest snapshot.
    #[serde(default)]
    pub stored_states: Vec<StoredState>,
}

/// One raft folder on disk and its newest snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    /// `raft` or `raft.old.N`.
    pub folder: String,
    /// The newest snapshot's folder name, `<term>-<index>-<unix ms>`; `None` when there is none.
    pub snapshot: Option<String>,
    /// First byte of that snapshot's `state.bin` (the state format on ≤ 0.10 releases).
    pub first_byte: Option<u8>,
}

impl StoredState {
    /// `(index, term, unix ms)` of the snapshot, the order in which snapshots are newer.
    pub fn snapshot_position(&self) -> Option<(u64, u64, u64)> {
        let mut parts = self
            .snapshot
            .as_deref()?
            .split('-')
            .map(|p| p.parse::<u64>().ok());
        let (term, index, ms) = (
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        );
        Some((index, term, ms))
    }

    /// `N` of `raft.old.N`; `None` for the live `raft` folder.
    pub fn backup_number(&self) -> Option<u32> {
        self.folder
            .strip_prefix("raft.old.")
            .and_then(|n| n.parse().ok())
    }
}

/// A peer that `peers ls` reported with an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerError {
    pub peer_id: String,
    pub error: String,
}

/// The shared pinset as one peer reports it: the count and a SHA-256 of the sorted CIDs, so
/// that "not one pin lost" is a comparison of two short values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinset {
    pub count: usize,
    pub hash: String,
}

impl HostFacts {
    /// Facts of a host the probe could not reach.
    pub fn unreachable(host: &str, reason: String) -> HostFacts {
        HostFacts {
            host: host.to_string(),
            unreachable: Some(reason),
            ..HostFacts::default()
        }
    }

    pub fn is_reachable(&self) -> bool {
        self.unreachable.is_none()
    }
}

impl Pinset {
    /// The pinset the cluster holds: the one most peers list (the largest on a tie).
    pub fn expected(facts: &[HostFacts]) -> Option<Pinset> {
        let mut votes: std::collections::BTreeMap<(usize, &str), usize> =
            std::collections::BTreeMap::new();
        for pins in facts.iter().filter_map(|f| f.pins.as_ref()) {
            *votes.entry((pins.count, pins.hash.as_str())).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by_key(|((count, _), votes)| (*votes, *count))
            .map(|((count, hash), _)| Pinset {
                count,
                hash: hash.to_string(),
            })
    }

    /// Builds the pinset summary from CIDs in any order.
    pub fn from_cids<I: IntoIterator<Item = String>>(cids: I) -> Pinset {
        use sha2::{Digest, Sha256};
        let mut cids: Vec<String> = cids.into_iter().collect();
        cids.sort();
        cids.dedup();
        let mut hasher = Sha256::new();
        for cid in &cids {
            hasher.update(cid.as_bytes());
            hasher.update(b"\n");
        }
        let hash = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Pinset {
            count: cids.len(),
            hash,
        }
    }
}
