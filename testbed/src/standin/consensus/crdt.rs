//! The CRDT consensus of a ≥ 0.11 peer (`init --consensus crdt`): no leader and no quorum.
//!
//! * A write is applied to the local datastore at once and pushed to every known peer (the
//!   real peer broadcasts its DAG head over pubsub); the write succeeds even when no other
//!   peer is up.
//! * On every tick a peer sends its "ping metric" to the peers it knows, carrying the digest of
//!   its pinset and the peers it knows. Every `rebroadcast_interval` (1 minute by default, as
//!   the real peers rebroadcast their DAG heads) a peer exchanges and merges pinsets with those
//!   whose digest differs: a peer that missed writes (stopped, cleaned) catches up then, or at
//!   the next write, whose broadcast carries the whole pinset (a real DAG head links to all).
//! * The peerset (`peers ls`, `id`'s `cluster_peers`) is this peer and every peer whose ping
//!   metric arrived within the metric TTL (twice `monitor_ping_interval`), as
//!   `consensus/crdt.Peers()` reads it from the peer monitor.
//! * `peers rm` fails: "crdt consensus component cannot remove peers" (`ErrRmPeer`).
//! * Metrics of 0.13 and 0.14 differ (ipfs-cluster#1409, the 0.14.0 notes: "Nodes on
//!   different versions will be unable to parse metrics from each other (thus peers ls will
//!   not report peers on different versions)"): a 0.13 peer drops 0.14 metrics ("multicodec
//!   did not match", as the real 0.13 logs); from 0.14.1 (PR #1446) a peer reads 0.13 metrics
//!   and warns once. Pinsets still travel (the break is in the metrics, not the CRDT).
//! * Joining (`--bootstrap`) only makes the peers know each other: no state is cleaned.
//! * A stop can be made to interrupt a merge (`cluster-lab fault interrupted-merge`, see
//!   `standin::dirty`): the updates it left out are kept as "processed", and a merge never
//!   takes them back unless they are repaired away; absence never removes a pin from a peer
//!   that merges this one's pinset, so the others keep them.
//! * A follower (`cluster.follower_mode`, what `ipfs-cluster-follow` runs) knows only its
//!   trusted peers (its peerstore) and pulls their pinset on every tick (`Call::Pull`): it
//!   sends no ping metric, so no trusted peer lists it, and it refuses writes with the real
//!   `errFollowerMode`. Calls between peers of different RPC protocols are refused, so a
//!   follower stops syncing once its trusted peers move to another protocol.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::{Node, NodeSettings, PUSH_TIMEOUT};
use crate::release::MetricsCodec;
use crate::standin::datastore::CrdtState;
use crate::standin::error::{Error, Result};
use crate::standin::logging;
use crate::standin::rpc::{Call, Ping, Reply};
use crate::standin::state::{ClusterState, Op};

/// The message of the real `errFollowerMode` (a write asked of a follower).
pub const FOLLOWER_MODE: &str =
    "this peer is configured to be in follower mode. Write operations are disabled";

/// The message of `ErrRmPeer`.
pub const RM_PEER: &str = "crdt consensus component cannot remove peers";

/// What a CRDT peer holds besides the settings.
#[derive(Debug, Default)]
pub(super) struct View {
    pub(super) pinset: CrdtState,
    /// Peer ID → transport address of every peer this one knows.
    pub(super) known: BTreeMap<String, String>,
    /// When each peer's last ping metric arrived.
    metrics: BTreeMap<String, Instant>,
    /// When this peer last sent its pinset to the peers holding another one.
    rebroadcast: Option<Instant>,
    /// The peers whose metrics this peer could not read (logged once each).
    unreadable: BTreeSet<String>,
    /// Whether the warning about metrics of peers ≤ 0.13.3 was logged (once, as #1446).
    warned_old_metrics: bool,
}

impl Node {
    /// A CRDT peer starting from its datastore, knowing `known` (its peerstore).
    pub fn new_crdt(
        settings: NodeSettings,
        pinset: CrdtState,
        known: BTreeMap<String, String>,
    ) -> Arc<Node> {
        let node = Node::new(settings, ClusterState::default(), false, false);
        {
            let mut inner = node.inner();
            inner.crdt.pinset = pinset;
            inner.crdt.known = known;
            inner.crdt.known.remove(node.id());
        }
        node
    }

    /// The known peers (ID → transport address), this one excluded.
    pub fn known_peers(&self) -> BTreeMap<String, String> {
        self.inner().crdt.known.clone()
    }

    pub(super) fn crdt_state(&self) -> ClusterState {
        let inner = self.inner();
        let ttl = self.settings.metric_ttl;
        let mut peerset: BTreeMap<String, String> = inner
            .crdt
            .metrics
            .iter()
            .filter(|(_, at)| at.elapsed() < ttl)
            .filter_map(|(id, _)| Some((id.clone(), inner.crdt.known.get(id)?.clone())))
            .collect();
        peerset.insert(
            self.settings.peer_id.clone(),
            self.settings.cluster_addr.clone(),
        );
        ClusterState {
            pins: inner.crdt.pinset.pins(),
            peerset,
            term: 0,
            index: 0,
            config_last: false,
        }
    }

    /// Remembers a peer's address.
    pub(super) fn learn(&self, id: &str, addr: &str) {
        if id != self.settings.peer_id && !addr.is_empty() {
            let mut inner = self.inner();
            inner.crdt.known.insert(id.to_string(), addr.to_string());
        }
    }

    /// Records `from`'s ping metric, if this release can read its encoding.
    fn metric_from(&self, from: &str, codec: MetricsCodec) {
        let release = &self.settings.release;
        let mut inner = self.inner();
        if !release.reads_metrics(codec) {
            if inner.crdt.unreadable.insert(from.to_string()) {
                logging::error("monitor", "multicodec did not match");
            }
            return;
        }
        if codec != release.metrics_codec() && !inner.crdt.warned_old_metrics {
            inner.crdt.warned_old_metrics = true;
            logging::warn(
                "monitor",
                "Peers in versions <= v0.13.3 detected. These peers will not receive metrics from this or other newer peers. Please upgrade them.",
            );
        }
        inner.crdt.metrics.insert(from.to_string(), Instant::now());
    }

    /// A ping metric from `from`.
    pub(super) fn gossip_from(&self, from: &str, ping: Ping) -> Result<Reply> {
        self.require_crdt()?;
        self.learn(from, &ping.addr);
        for (id, addr) in &ping.known {
            self.learn(id, addr);
        }
        self.metric_from(from, ping.codec);
        let inner = self.inner();
        let mine = inner.crdt.pinset.digest();
        if mine != ping.digest {
            logging::debug("crdt", &format!("{from} has another pinset"));
        }
        Ok(Reply::Gossip {
            digest: mine,
            known: inner.crdt.known.clone(),
            codec: self.settings.release.metrics_codec(),
        })
    }

    /// Another peer's pinset: merged; the answer is ours.
    pub(super) fn merge_from(&self, theirs: &CrdtState) -> Result<Reply> {
        self.require_crdt()?;
        self.merge(theirs)?;
        Ok(Reply::Merge {
            state: self.inner().crdt.pinset.clone(),
        })
    }

    fn merge(&self, theirs: &CrdtState) -> Result<()> {
        let mut inner = self.inner();
        if inner.crdt.pinset.merge(theirs) {
            inner.crdt.pinset.save(&self.settings.datastore_dir)?;
        }
        Ok(())
    }

    /// A stop that cuts the merge of the `count` pins received last short (the lab's
    /// `interrupted-merge` fault, see `standin::dirty`): they leave the saved store, recorded
    /// as processed, and the store is marked dirty. Runs once the stop flag is set; a merge
    /// still in flight cannot bring them back (`CrdtState::merge` skips processed updates).
    /// Returns the CIDs left out.
    pub fn interrupt_merge(&self, count: usize) -> Result<Vec<String>> {
        let mut inner = self.inner();
        let left_out = inner
            .crdt
            .pinset
            .interrupt_merge(&self.settings.peer_id, count);
        inner.crdt.pinset.save(&self.settings.datastore_dir)?;
        Ok(left_out)
    }

    fn require_crdt(&self) -> Result<()> {
        match self.settings.kind {
            super::ConsensusKind::Crdt => Ok(()),
            super::ConsensusKind::Raft => Err(Error::ProtocolNotSupported),
        }
    }

    /// A follower's pull: this peer's pinset, merged nowhere.
    pub(super) fn pull_from(&self) -> Result<Reply> {
        self.require_crdt()?;
        Ok(Reply::Merge {
            state: self.inner().crdt.pinset.clone(),
        })
    }

    /// A follower's tick: pulls the pinset of every trusted peer it knows and merges it.
    fn follower_tick(&self) {
        let known = self.inner().crdt.known.clone();
        let members: Vec<(&String, &String)> = known.iter().collect();
        for ((id, _), reply) in
            members
                .iter()
                .zip(self.call_many(&members, Call::Pull, super::PING_TIMEOUT))
        {
            let merged = match reply {
                Ok(Reply::Merge { state }) => self.merge(&state),
                Ok(_) => Ok(()),
                Err(err) => Err(err),
            };
            if let Err(err) = merged {
                logging::debug("crdt", &format!("following {id}: {err}"));
            }
        }
    }

    /// Pings every known peer; exchanges pinsets with those whose digest differs.
    pub(super) fn crdt_tick(&self) {
        if self.settings.follower {
            return self.follower_tick();
        }
        let (known, digest) = {
            let inner = self.inner();
            (inner.crdt.known.clone(), inner.crdt.pinset.digest())
        };
        if known.is_empty() {
            return;
        }
        let call = Call::Gossip {
            ping: Ping {
                addr: self.settings.cluster_addr.clone(),
                digest: digest.clone(),
                known: known.clone(),
                codec: self.settings.release.metrics_codec(),
            },
        };
        let members: Vec<(&String, &String)> = known.iter().collect();
        let mut differ = Vec::new();
        for ((id, addr), reply) in
            members
                .iter()
                .zip(self.call_many(&members, call, super::PING_TIMEOUT))
        {
            match reply {
                Ok(Reply::Gossip {
                    digest: theirs,
                    known,
                    codec,
                }) => {
                    self.metric_from(id, codec);
                    for (id, addr) in &known {
                        self.learn(id, addr);
                    }
                    if theirs != digest {
                        differ.push(((*id).clone(), (*addr).clone()));
                    }
                }
                Ok(_) => {}
                Err(err) => logging::debug("crdt", &format!("{id}: {err}")),
            }
        }
        // Pinsets travel with each write (see `broadcast`) and, for peers that missed some
        // (a restart, a cleanup), with the periodic rebroadcast of the DAG heads.
        let due = {
            let mut inner = self.inner();
            let last = *inner.crdt.rebroadcast.get_or_insert_with(Instant::now);
            let due = last.elapsed() >= self.settings.rebroadcast;
            if due {
                inner.crdt.rebroadcast = Some(Instant::now());
            }
            due
        };
        if !due {
            return;
        }
        for (id, addr) in differ {
            if let Err(err) = self.exchange(&addr) {
                logging::debug("crdt", &format!("syncing with {id}: {err}"));
            }
        }
    }

    /// Sends our pinset to one peer and merges the answer.
    fn exchange(&self, addr: &str) -> Result<()> {
        let state = self.inner().crdt.pinset.clone();
        match self.call(addr, Call::Merge { state }, PUSH_TIMEOUT)? {
            Reply::Merge { state } => self.merge(&state),
            _ => Ok(()),
        }
    }

    /// Applies a write locally and pushes the pinset to the known peers in the background.
    pub(super) fn crdt_commit(self: &Node, op: Op) -> Result<()> {
        let me = self.settings.peer_id.clone();
        if self.settings.follower && matches!(op, Op::Pin { .. } | Op::Unpin { .. }) {
            logging::error("cluster", FOLLOWER_MODE);
            return Err(Error::Remote {
                message: FOLLOWER_MODE.to_string(),
            });
        }
        {
            let mut inner = self.inner();
            match op {
                Op::Pin { pin } => {
                    let cid = pin.cid.clone();
                    inner.crdt.pinset.write(&me, &cid, Some(pin));
                }
                Op::Unpin { cid } => {
                    if !inner.crdt.pinset.has(&cid) {
                        return Err(Error::Remote {
                            message: crate::standin::api::PIN_NOT_FOUND.to_string(),
                        });
                    }
                    inner.crdt.pinset.write(&me, &cid, None);
                }
                Op::RemovePeer { .. } => {
                    logging::error("cluster", RM_PEER);
                    return Err(Error::Remote {
                        message: RM_PEER.to_string(),
                    });
                }
                Op::AddPeer { id, addr } => {
                    drop(inner);
                    self.learn(&id, &addr);
                    return Ok(());
                }
                Op::Bootstrap { .. } | Op::Replace { .. } => return Ok(()),
            }
            inner.crdt.pinset.save(&self.settings.datastore_dir)?;
        }
        self.broadcast();
        Ok(())
    }

    /// Pushes the pinset to every known peer, without waiting.
    fn broadcast(&self) {
        let (known, state) = {
            let inner = self.inner();
            (inner.crdt.known.clone(), inner.crdt.pinset.clone())
        };
        let (creds, addrs): (_, Vec<String>) = (self.creds.clone(), known.into_values().collect());
        thread::spawn(move || {
            let sockets: Vec<_> = addrs
                .iter()
                .filter_map(|a| {
                    crate::standin::multiaddr::Multiaddr::parse(a)
                        .ok()?
                        .socket_addr()
                        .ok()
                })
                .collect();
            let _ = crate::standin::rpc::call_many(
                &sockets,
                &creds,
                Call::Merge { state },
                PUSH_TIMEOUT,
            );
        });
    }
}
