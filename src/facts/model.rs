//! The facts of one host, as plain data stored in the plan.

use serde::{Deserialize, Serialize};

use crate::inventory::{HostName, Sha256, Version};

/// What a read-only probe learned about one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub host: HostName,
    /// Why the host could not be probed (SSH connection, host key, authentication); `None`
    /// when the probe ran.
    pub unreachable: Option<String>,
    pub service_version: Option<Version>,
    /// The daemon answered its REST API.
    pub running: bool,
    pub peer_id: Option<String>,
    pub peername: Option<String>,
    /// The cluster multiaddr with its peer ID suffix, what `--bootstrap` takes.
    pub multiaddr: Option<String>,
    /// The peerset this peer sees (itself included), as a digest; `None` when the peer did not
    /// answer. Older facts files list the IDs under `cluster_peers`: they are read as a digest.
    #[serde(default, alias = "cluster_peers")]
    pub peerset: Option<Peerset>,
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
    /// Every peer ID `peers ls` listed (only on the one host that ran it): the inventory must
    /// name a host for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listed_peers: Vec<String>,
    /// The lease a run holds on this host (`<config_dir>/.cluster-upgrade.lease`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Free space, in KiB, of the file system holding `bin_dir` (where releases are staged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_kib: Option<u64>,
    /// The REST API refused the ctl (401): its message (`unauthorized: no auth provided`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_refused: Option<String>,
    /// The CIDs the peer lists, kept only when the probe asked for them
    /// ([`super::ProbeScope::with_cids`]: the rolling run's convergence check); never saved.
    #[serde(skip)]
    pub listed_cids: Option<std::sync::Arc<std::collections::BTreeSet<String>>>,
    /// The consensus configured in `service.json` (the `consensus` section's one key); `None`
    /// when the config could not be read. Releases before 0.11 only have raft.
    #[serde(default)]
    pub consensus: Option<Consensus>,
    /// The datastore backend configured in `service.json` (`pebble`, `badger`, `badger3`,
    /// `leveldb`: the `datastore` section's key); `None` when not configured (before 0.14).
    #[serde(default)]
    pub datastore: Option<String>,
    /// Pebble's `format_major_version` in `service.json`, when the datastore is pebble.
    #[serde(default)]
    pub pebble_format: Option<u32>,
    /// `consensus.crdt.rebroadcast_interval` in `service.json`: how often a CRDT peer
    /// announces its heads, so how soon a peer that missed updates hears of them.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::facts::model::secs"
    )]
    pub rebroadcast_interval: Option<std::time::Duration>,
    /// The format of the pebble store on disk (its newest `OPTIONS-*` file): what a release
    /// must be able to open, whatever `service.json` says.
    #[serde(default)]
    pub pebble_store_format: Option<u32>,
    /// What the installed `ipfs-cluster-ctl --version` reports.
    #[serde(default)]
    pub ctl_version: Option<Version>,
    /// The followers (`ipfs-cluster-follow NAME`) configured under the login's home
    /// (`~/.ipfs-cluster-follow/NAME/service.json`), by name: run by others, never upgraded by
    /// this tool, stranded by an RPC protocol change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<String>,
    /// The peer's systemd unit (`service_manager: systemd` hosts, planning probe only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<super::UnitFacts>,
    /// The peer's container on a Docker host (`service_manager: docker`), as `docker inspect`
    /// shows it, or why it could not be read; `None` on other hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<super::ContainerFacts>,
}

/// The lease a run holds on a host while it works there: which run, from where, since when.
/// Written before a run's first step and removed at its end, so no other run, from another
/// state directory or machine, starts on the host meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The holder's run id (as written: an unreadable lease is still a lease).
    pub run_id: String,
    /// `user@machine` of the controller, and its state directory.
    #[serde(default)]
    pub controller: String,
    #[serde(default)]
    pub state_dir: String,
    #[serde(default)]
    pub started_unix: u64,
}

impl std::fmt::Display for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {}", self.run_id)?;
        if !self.controller.is_empty() {
            write!(f, " of {}", self.controller)?;
        }
        if !self.state_dir.is_empty() {
            write!(f, " (state directory {})", self.state_dir)?;
        }
        Ok(())
    }
}

/// Tests build facts field by field over a placeholder host (`host` is always set).
#[cfg(test)]
impl Default for HostFacts {
    fn default() -> HostFacts {
        HostFacts::of("placeholder".parse().expect("a host name"))
    }
}

/// The consensus component of a peer (`ipfs-cluster-service init --consensus`, from 0.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consensus {
    /// A leader and a peerset of voters; state in the `raft/` folder.
    Raft,
    /// No leader; the peerset is who sent ping metrics; state in the datastore folder.
    Crdt,
}

impl Consensus {
    pub fn name(self) -> &'static str {
        match self {
            Consensus::Raft => "raft",
            Consensus::Crdt => "crdt",
        }
    }
}

impl std::fmt::Display for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    pub hash: Sha256,
}

/// The peerset one peer sees: the count and a SHA-256 of its sorted, distinct peer IDs (as
/// [`Pinset`] does for CIDs). Each of N peers lists all N IDs, so keeping the lists would make
/// the facts (and the plan) grow as N²; comparing digests is just as exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PeersetFormat")]
pub struct Peerset {
    pub count: usize,
    pub hash: Sha256,
}

/// A saved peerset: a digest, or (facts recorded before digests) the list of IDs.
#[derive(Deserialize)]
#[serde(untagged)]
enum PeersetFormat {
    Digest { count: usize, hash: Sha256 },
    Ids(Vec<String>),
}

impl From<PeersetFormat> for Peerset {
    fn from(format: PeersetFormat) -> Peerset {
        match format {
            PeersetFormat::Digest { count, hash } => Peerset { count, hash },
            PeersetFormat::Ids(ids) => Peerset::from_ids(&ids),
        }
    }
}

impl Peerset {
    /// The digest of peer IDs in any order.
    pub fn from_ids<S: AsRef<str>>(ids: &[S]) -> Peerset {
        let (count, hash) = digest(ids.iter().map(AsRef::as_ref));
        Peerset { count, hash }
    }

    /// The peerset every peer should see: exactly the inventory's peers, i.e. every peer ID
    /// the hosts reported (a stopped peer's from its config).
    pub fn expected(facts: &[HostFacts]) -> Peerset {
        let (count, hash) = digest(facts.iter().filter_map(|f| f.peer_id.as_deref()));
        Peerset { count, hash }
    }

    /// The start of the hash, enough to tell two peersets apart in a message.
    pub fn short_hash(&self) -> &str {
        self.hash.short()
    }
}

impl HostFacts {
    /// Why the peer is taken as not running, in words: `h1 is not running`, or the REST API's
    /// refusal of the ctl's credentials.
    pub fn not_running(&self) -> String {
        match &self.api_refused {
            None => format!("{} is not running", self.host),
            Some(message) => format!(
                "{} does not answer: its REST API refused ipfs-cluster-ctl (401 {message}); set or correct \
                 `api_auth` in the inventory (docs/inventory-schema.md, \"REST API access\")",
                self.host
            ),
        }
    }

    /// Facts of `host` before anything is known of it.
    pub fn of(host: HostName) -> HostFacts {
        HostFacts {
            host,
            unreachable: None,
            unit: None,
            api_refused: None,
            service_version: None,
            running: false,
            peer_id: None,
            peername: None,
            multiaddr: None,
            peerset: None,
            peer_errors: Vec::new(),
            rpc_protocol: None,
            state_format: None,
            has_snapshot: false,
            state_backups: Vec::new(),
            pins: None,
            leave_on_shutdown: None,
            wait_for_leader_timeout: None,
            listen_multiaddress: None,
            stored_states: Vec::new(),
            listed_peers: Vec::new(),
            lease: None,
            free_kib: None,
            listed_cids: None,
            consensus: None,
            datastore: None,
            pebble_format: None,
            rebroadcast_interval: None,
            pebble_store_format: None,
            ctl_version: None,
            followers: Vec::new(),
            container: None,
        }
    }

    /// Facts of a host the probe could not reach.
    pub fn unreachable(host: &HostName, reason: String) -> HostFacts {
        HostFacts {
            unreachable: Some(reason),
            ..HostFacts::of(host.clone())
        }
    }

    pub fn is_reachable(&self) -> bool {
        self.unreachable.is_none()
    }
}

impl Pinset {
    /// The start of the hash, enough to tell two pinsets apart in a message.
    pub fn short_hash(&self) -> &str {
        self.hash.short()
    }

    /// The pinset the cluster holds: the one most peers list (the largest on a tie).
    pub fn expected(facts: &[HostFacts]) -> Option<Pinset> {
        let mut votes: std::collections::BTreeMap<(usize, &str), (usize, &Pinset)> =
            std::collections::BTreeMap::new();
        for pins in facts.iter().filter_map(|f| f.pins.as_ref()) {
            votes
                .entry((pins.count, pins.hash.as_str()))
                .or_insert((0, pins))
                .0 += 1;
        }
        votes
            .into_iter()
            .max_by_key(|((count, _), (votes, _))| (*votes, *count))
            .map(|(_, (_, pins))| pins.clone())
    }

    /// Builds the pinset summary from CIDs in any order.
    pub fn from_cids<I: IntoIterator<Item = String>>(cids: I) -> Pinset {
        let cids: Vec<String> = cids.into_iter().collect();
        let (count, hash) = digest(cids.iter().map(String::as_str));
        Pinset { count, hash }
    }
}

/// Count and SHA-256 (hex) of the distinct `items`, sorted, each followed by a newline.
fn digest<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, Sha256) {
    use sha2::Digest;
    let items: std::collections::BTreeSet<&str> = items.into_iter().collect();
    let mut hasher = sha2::Sha256::new();
    for item in &items {
        hasher.update(item.as_bytes());
        hasher.update(b"\n");
    }
    (items.len(), Sha256::from_bytes(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_with_peerset(json: &str) -> HostFacts {
        serde_json::from_str(&format!(r#"{{"host": "h1", "unreachable": null, "service_version": null,
            "ctl_version": null, "running": true, "peer_id": "QmA", "peername": null, "multiaddr": null,
            {json} "peer_errors": [], "rpc_protocol": null, "state_format": null, "has_snapshot": false,
            "state_backups": [], "pins": null, "leave_on_shutdown": null, "wait_for_leader_timeout": null}}"#))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_peerset_digest_ignores_order_and_tells_sets_apart() {
        let a = Peerset::from_ids(&["QmB", "QmA", "QmC"]);
        assert_eq!(a, Peerset::from_ids(&["QmC", "QmB", "QmA", "QmA"]));
        assert_eq!(a.count, 3);
        assert_ne!(a, Peerset::from_ids(&["QmA", "QmB"]));
        assert_ne!(a.hash, Peerset::from_ids(&["QmA", "QmB", "QmD"]).hash);
        // The same scheme as the pinset: sorted, distinct, one per line.
        assert_eq!(
            a.hash,
            Pinset::from_cids(["QmA", "QmB", "QmC"].map(String::from)).hash
        );
        assert_eq!(a.short_hash().len(), 12);
    }

    #[test]
    fn the_expected_peerset_is_every_reported_peer_id() {
        let host = |name: &str, id: Option<&str>| HostFacts {
            host: name.into(),
            peer_id: id.map(String::from),
            ..HostFacts::default()
        };
        let facts = [
            host("h1", Some("QmB")),
            host("h2", None),
            host("h3", Some("QmA")),
        ];
        assert_eq!(
            Peerset::expected(&facts),
            Peerset::from_ids(&["QmA", "QmB"])
        );
    }

    #[test]
    fn facts_saved_as_a_digest_or_an_id_list_read_as_the_same_digest() {
        let digest = Peerset::from_ids(&["QmA", "QmB"]);
        let saved = serde_json::to_string(&digest).unwrap();
        assert_eq!(
            facts_with_peerset(&format!(r#""peerset": {saved},"#)).peerset,
            Some(digest.clone())
        );
        assert_eq!(
            facts_with_peerset(r#""cluster_peers": ["QmB", "QmA"],"#).peerset,
            Some(digest)
        );
        assert_eq!(facts_with_peerset("").peerset, None);
    }
}

/// An optional duration written as seconds (a float) in JSON.
pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<std::time::Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_f64(duration.as_secs_f64()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let seconds = Option::<f64>::deserialize(deserializer)?;
        Ok(seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(std::time::Duration::from_secs_f64))
    }
}
