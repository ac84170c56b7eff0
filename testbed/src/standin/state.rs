//! The replicated state: pinset, peerset, raft term and index, and the operations of the log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::pin::Pin;

/// Everything a raft snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub pins: BTreeMap<String, Pin>,
    /// Peer ID → cluster multiaddr (transport part) of every member.
    pub peerset: BTreeMap<String, String>,
    pub term: u64,
    pub index: u64,
    /// Whether the last entry changed the peerset (raft's configuration) rather than the
    /// pinset: raft cannot snapshot then ("wait until the configuration entry … has been
    /// applied"), so a peer stopped right after a join or removal keeps no new snapshot.
    #[serde(default)]
    pub config_last: bool,
}

/// One committed operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Pin {
        pin: Pin,
    },
    Unpin {
        cid: String,
    },
    AddPeer {
        id: String,
        addr: String,
    },
    RemovePeer {
        id: String,
    },
    /// The first entry of a new cluster: its initial peerset.
    Bootstrap {
        peerset: BTreeMap<String, String>,
    },
    /// A whole state received from the leader (a follower that was behind, or a joiner).
    Replace {
        state: ClusterState,
    },
}

/// A log entry: an operation at its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub op: Op,
}

impl ClusterState {
    /// Applies a committed entry.
    pub fn apply(&mut self, entry: &Entry) {
        match &entry.op {
            Op::Replace { state } => {
                *self = state.clone();
                return;
            }
            Op::Pin { pin } => {
                self.pins.insert(pin.cid.clone(), pin.clone());
            }
            Op::Unpin { cid } => {
                self.pins.remove(cid);
            }
            Op::AddPeer { id, addr } => {
                self.peerset.insert(id.clone(), addr.clone());
            }
            Op::RemovePeer { id } => {
                self.peerset.remove(id);
            }
            Op::Bootstrap { peerset } => self.peerset = peerset.clone(),
        }
        self.config_last = !matches!(entry.op, Op::Pin { .. } | Op::Unpin { .. });
        self.term = entry.term;
        self.index = entry.index;
    }

    /// The pins in CID order.
    pub fn pin_list(&self) -> Vec<Pin> {
        self.pins.values().cloned().collect()
    }

    /// (term, index): which of two states is more recent.
    pub fn position(&self) -> (u64, u64) {
        (self.term, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_move_the_position_and_replace_wins() {
        let mut s = ClusterState::default();
        let pin = Pin::everywhere("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "").unwrap();
        s.apply(&Entry {
            term: 1,
            index: 1,
            op: Op::Pin { pin },
        });
        assert_eq!((s.pins.len(), s.position()), (1, (1, 1)));
        s.apply(&Entry {
            term: 1,
            index: 2,
            op: Op::Replace {
                state: ClusterState::default(),
            },
        });
        assert_eq!(s, ClusterState::default());
    }
}
