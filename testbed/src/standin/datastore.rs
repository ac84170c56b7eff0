//! The CRDT state of a ≥ 0.11 peer in its datastore folder (`badger/`, `badger3/`,
//! `leveldb/` or `pebble/` next to `service.json`, after the configured backend).
//!
//! The real peer keeps a Merkle-DAG of deltas in pebble; the stand-in keeps what converges
//! the same way for an operator: one entry per CID, stamped with a Lamport clock and the peer
//! that wrote it, a removal kept as a tombstone. Two states merge by taking, per CID, the
//! entry with the higher stamp, so every peer that has seen the same writes holds the same
//! pinset whatever the order (strong eventual consistency, as go-ds-crdt).
//!
//! The folder holds the stand-in's own file, not the backend's files; for pebble also what
//! the real store shows of its format (see `pebble`), which the facts probe and the
//! `pebble-*` steps read.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{Datastore, ServiceConfig};
use super::error::{Error, Result};
use super::pebble;
use super::pin::Pin;
use crate::release::{Backend, Release};

/// The file inside the datastore folder.
const FILE: &str = "standin-crdt.json";

/// (Lamport clock, writer peer ID): the later stamp wins a merge.
pub type Stamp = (u64, String);

/// One CID's latest write: the pin, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub stamp: Stamp,
    pub pin: Option<Pin>,
}

/// The CRDT pinset, and what the datastore keeps beside it.
///
/// Only `entries` travels between peers; `processed` and `dirty` stay in the datastore file
/// (see [`OnDisk`]), as go-ds-crdt's processed-block keys and dirty bit stay in its store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrdtState {
    pub entries: BTreeMap<String, Stamped>,
    /// Updates this peer recorded as processed (their DAG heads) without holding them: a stop
    /// interrupted their merge (ADR 0015, `cluster-lab fault interrupted-merge`). A merge
    /// never takes back a write of these CIDs stamped at or below the recorded stamp; a later
    /// write (a new delta) applies.
    #[serde(skip)]
    pub processed: BTreeMap<String, Stamp>,
    /// go-ds-crdt's dirty bit: a merge was cut short and the DAG should be walked again.
    #[serde(skip)]
    pub dirty: bool,
}

/// The datastore file: the pinset and, when set, the processed updates and the dirty mark.
/// Both are absent from files written before they existed, and from clean stores.
#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    entries: BTreeMap<String, Stamped>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    processed: BTreeMap<String, Stamp>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    dirty: bool,
}

/// The datastore a CRDT peer's config names, or what its release's `init` would write when the
/// config has no `datastore` section.
pub fn configured(release: &Release, cfg: &ServiceConfig) -> Datastore {
    cfg.datastore
        .unwrap_or_else(|| Datastore::fresh(release, release.default_datastore()))
}

/// The configuration check of the datastore (pebble's `format_major_version`), as the real
/// config loader runs it ("error loading configurations: …").
pub fn check_config(release: &Release, cfg: &ServiceConfig) -> Result<()> {
    let datastore = configured(release, cfg);
    if !release.datastores().is_empty() && !release.datastores().contains(&datastore.backend) {
        return Err(Error::NoSuchDatastore {
            datastore: datastore.backend.key().into(),
        });
    }
    match (datastore.backend, datastore.pebble_format) {
        (Backend::Pebble, Some(format)) => pebble::check_config(release, format),
        _ => Ok(()),
    }
}

/// Opens the configured datastore of `config_dir` as the release would (for pebble: the
/// format rules, which may refuse the store or raise it) and reads the state; returns the
/// datastore folder with it.
pub fn open(
    release: &Release,
    config_dir: &Path,
    cfg: &ServiceConfig,
) -> Result<(PathBuf, CrdtState)> {
    let datastore = configured(release, cfg);
    let folder = datastore.folder(config_dir);
    if datastore.backend == Backend::Pebble {
        let format = datastore
            .pebble_format
            .or_else(|| release.pebble_init_format())
            .unwrap_or(1);
        pebble::open(release, &folder, format)?;
    }
    let state = CrdtState::open(&folder)?;
    Ok((folder, state))
}

impl CrdtState {
    /// Reads the state of the datastore folder `folder` (creating it, as the backends do).
    pub fn open(folder: &Path) -> Result<CrdtState> {
        fs::create_dir_all(folder).map_err(Error::io(folder))?;
        let path = folder.join(FILE);
        let file: OnDisk = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::ParseJson {
                path: path.clone(),
                source,
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => OnDisk::default(),
            Err(err) => return Err(Error::io(&path)(err)),
        };
        Ok(CrdtState {
            entries: file.entries,
            processed: file.processed,
            dirty: file.dirty,
        })
    }

    /// Writes the state into the datastore folder atomically (a crash leaves the old or the
    /// new file).
    pub fn save(&self, folder: &Path) -> Result<()> {
        fs::create_dir_all(folder).map_err(Error::io(folder))?;
        let path = folder.join(FILE);
        let tmp = folder.join(format!("{FILE}.tmp"));
        let file = OnDisk {
            entries: self.entries.clone(),
            processed: self.processed.clone(),
            dirty: self.dirty,
        };
        let text = serde_json::to_vec(&file).expect("crdt state serializes");
        fs::write(&tmp, text).map_err(Error::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(Error::io(&path))
    }

    /// Removes every key of the consensus from the datastore folder (the folder and the
    /// store stay, as `crdt.Clean` leaves them).
    pub fn clean(folder: &Path) -> Result<()> {
        let path = folder.join(FILE);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path)(err)),
            _ => CrdtState::open(folder).map(|_| ()),
        }
    }

    /// The highest clock seen, the processed updates' included: a new write must stamp
    /// above the updates this peer left out, or the others would keep those over it.
    pub fn clock(&self) -> u64 {
        let written = self.entries.values().map(|e| e.stamp.0);
        let processed = self.processed.values().map(|stamp| stamp.0);
        written.chain(processed).max().unwrap_or(0)
    }

    /// Records a local write by `writer`.
    pub fn write(&mut self, writer: &str, cid: &str, pin: Option<Pin>) {
        let stamp = (self.clock() + 1, writer.to_string());
        self.entries.insert(cid.to_string(), Stamped { stamp, pin });
    }

    /// Takes the later write of every CID from `other`; returns whether anything changed.
    pub fn merge(&mut self, other: &CrdtState) -> bool {
        let mut changed = false;
        for (cid, theirs) in &other.entries {
            let newer = self
                .entries
                .get(cid)
                .is_none_or(|ours| theirs.stamp > ours.stamp);
            let skipped = self
                .processed
                .get(cid)
                .is_some_and(|seen| theirs.stamp <= *seen);
            if newer && !skipped {
                self.entries.insert(cid.clone(), theirs.clone());
                changed = true;
            }
        }
        changed
    }

    /// A stop that interrupts the merge of the `count` pins this peer received last: their
    /// entries leave the store, their stamps are recorded as processed, the store is marked
    /// dirty. "Received last" is the highest stamps (Lamport clock, then writer ID) among
    /// the live pins written by another peer: a peer's own writes never go through the merge
    /// queue. Returns the CIDs left out, latest first.
    pub fn interrupt_merge(&mut self, me: &str, count: usize) -> Vec<String> {
        let mut received: Vec<(&Stamp, &String)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pin.is_some() && e.stamp.1 != me)
            .map(|(cid, e)| (&e.stamp, cid))
            .collect();
        received.sort_unstable_by(|a, b| b.cmp(a));
        let cids: Vec<String> = received
            .into_iter()
            .take(count)
            .map(|(_, cid)| cid.clone())
            .collect();
        for cid in &cids {
            if let Some(entry) = self.entries.remove(cid) {
                self.processed.insert(cid.clone(), entry.stamp);
            }
        }
        self.dirty = true;
        cids
    }

    /// The DAG repair of go-ds-crdt v0.3–v0.5: the processed updates are forgotten, so the
    /// next exchange brings them in; the store is clean again.
    pub fn repair(&mut self) {
        self.processed.clear();
        self.dirty = false;
    }

    /// The live pins.
    pub fn pins(&self) -> BTreeMap<String, Pin> {
        self.entries
            .iter()
            .filter_map(|(cid, e)| e.pin.clone().map(|p| (cid.clone(), p)))
            .collect()
    }

    /// Whether `cid` is pinned.
    pub fn has(&self, cid: &str) -> bool {
        self.entries.get(cid).is_some_and(|e| e.pin.is_some())
    }

    /// A digest of the whole state: equal digests, equal states.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(&self.entries).expect("crdt state serializes");
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

    #[test]
    fn merges_converge_whatever_the_order_and_removals_win_when_later() {
        let pin = Pin::everywhere(A, "a").unwrap();
        let mut one = CrdtState::default();
        one.write("p1", A, Some(pin));
        let mut two = one.clone();
        two.write("p2", A, None);
        let mut three = CrdtState::default();
        assert!(three.merge(&two));
        assert!(!three.merge(&one));
        assert!(one.merge(&two));
        assert_eq!(one.digest(), three.digest());
        assert!(!one.has(A));
    }

    /// Three peers' view of five pins: p1 wrote 0..2 (clocks 1–3), "me" wrote 3 (clock 4),
    /// p2 wrote 4 (clock 5); pin 1 was removed by p2 afterwards (clock 6).
    fn five() -> (Vec<String>, CrdtState) {
        let cids: Vec<String> = [
            "QmPavaYUtVohs7KyZFyEyqjQ75y6XtRqimT4VYjrxiyJgP",
            "QmduYK1rmWdeikGA6nQmev8k8abY2YLC6A2QGMRq8hbfhN",
            "QmQpQUi9UAhWGBVQHya7uo99bN52huwH9qGnSmyKmqWSso",
            "QmcpkK6qpSQ6otvRZW7F5ZpFF6wTXY3gNt54ToRnkPNvnY",
            "QmTYLxVLQ89UcbJqciWutkR4g9jPVxXmHT6a4J6rrtfmrt",
        ]
        .map(String::from)
        .to_vec();
        let mut state = CrdtState::default();
        for (i, cid) in cids.iter().enumerate() {
            let writer = match i {
                3 => "me",
                4 => "p2",
                _ => "p1",
            };
            state.write(writer, cid, Some(Pin::everywhere(cid, "").unwrap()));
        }
        state.write("p2", &cids[1], None);
        (cids, state)
    }

    #[test]
    fn an_interrupted_merge_leaves_out_the_pins_received_last() {
        let (cids, mut state) = five();
        let left_out = state.interrupt_merge("me", 2);
        // Latest first; own writes and tombstones are never left out.
        assert_eq!(left_out, [cids[4].clone(), cids[2].clone()]);
        assert!(state.dirty);
        assert_eq!(
            state.pins().into_keys().collect::<Vec<_>>().len(),
            2,
            "pins 0 and 3 stay"
        );
        assert!(state.has(&cids[0]) && state.has(&cids[3]));
        assert_eq!(state.processed[&cids[4]], (5, "p2".to_string()));
        assert_eq!(state.processed[&cids[2]], (3, "p1".to_string()));
        // Asking for more than were received leaves out what there is.
        let (_, mut all) = five();
        assert_eq!(all.interrupt_merge("me", 10).len(), 3);
    }

    #[test]
    fn merges_never_bring_left_out_updates_back_but_later_writes_apply() {
        let (cids, others) = five();
        let mut diverged = others.clone();
        diverged.interrupt_merge("me", 2);
        // Rebroadcasts announce the same updates: nothing changes.
        assert!(!diverged.merge(&others));
        assert!(!diverged.has(&cids[4]) && !diverged.has(&cids[2]));
        // The others lose nothing by merging the diverged peer's pinset.
        let mut peer = others.clone();
        assert!(!peer.merge(&diverged));
        assert_eq!(peer, others);
        // A new write of the same CID anywhere is a new update: it applies.
        let mut writer = others.clone();
        writer.write(
            "p1",
            &cids[4],
            Some(Pin::everywhere(&cids[4], "again").unwrap()),
        );
        assert!(diverged.merge(&writer));
        assert!(diverged.has(&cids[4]) && !diverged.has(&cids[2]));
        // The diverged peer's own writes stamp above what it left out, even when that was
        // the latest update it knew of: else the others would keep the older write.
        let mut latest = CrdtState::default();
        latest.write("p1", &cids[0], Some(Pin::everywhere(&cids[0], "").unwrap()));
        latest.write("p2", &cids[1], Some(Pin::everywhere(&cids[1], "").unwrap()));
        let mut behind = latest.clone();
        assert_eq!(behind.interrupt_merge("me", 1), [cids[1].clone()]);
        behind.write("me", &cids[1], None);
        assert!(latest.merge(&behind));
        assert!(!latest.has(&cids[1]), "the later removal wins everywhere");
        // A repair forgets them: the next exchange brings them back.
        let mut repaired = others.clone();
        repaired.interrupt_merge("me", 2);
        repaired.repair();
        assert!(repaired.merge(&others));
        assert_eq!(repaired.digest(), others.digest());
    }

    #[test]
    fn processed_updates_and_the_dirty_mark_persist_and_old_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut state) = five();
        state.save(dir.path()).unwrap();
        let clean = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            !clean.contains("processed") && !clean.contains("dirty"),
            "a clean store is written as before: {clean}"
        );
        // A file written before these fields existed: the pinset alone.
        let old = format!(
            "{{\"entries\":{}}}",
            serde_json::to_string(&state.entries).unwrap()
        );
        fs::write(dir.path().join(FILE), old).unwrap();
        assert_eq!(CrdtState::open(dir.path()).unwrap(), state);
        state.interrupt_merge("me", 1);
        state.save(dir.path()).unwrap();
        let reopened = CrdtState::open(dir.path()).unwrap();
        assert_eq!(reopened, state);
        assert!(reopened.dirty && reopened.processed.len() == 1);
        // Nothing of it travels between peers.
        let wire = serde_json::to_string(&state).unwrap();
        assert!(
            !wire.contains("processed") && !wire.contains("dirty"),
            "{wire}"
        );
        // `state cleanup` removes it with the pinset.
        CrdtState::clean(dir.path()).unwrap();
        assert_eq!(CrdtState::open(dir.path()).unwrap(), CrdtState::default());
    }

    #[test]
    fn the_folder_survives_a_clean_and_the_state_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = CrdtState::open(dir.path()).unwrap();
        state.write("p1", A, Some(Pin::everywhere(A, "").unwrap()));
        state.save(dir.path()).unwrap();
        assert!(CrdtState::open(dir.path()).unwrap().has(A));
        CrdtState::clean(dir.path()).unwrap();
        assert!(dir.path().is_dir());
        assert_eq!(CrdtState::open(dir.path()).unwrap(), CrdtState::default());
    }
}
