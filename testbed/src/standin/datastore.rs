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

/// The CRDT pinset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrdtState {
    pub entries: BTreeMap<String, Stamped>,
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
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::ParseJson {
                path: path.clone(),
                source,
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(CrdtState::default()),
            Err(err) => Err(Error::io(&path)(err)),
        }
    }

    /// Writes the state into the datastore folder atomically (a crash leaves the old or the
    /// new file).
    pub fn save(&self, folder: &Path) -> Result<()> {
        fs::create_dir_all(folder).map_err(Error::io(folder))?;
        let path = folder.join(FILE);
        let tmp = folder.join(format!("{FILE}.tmp"));
        let text = serde_json::to_vec(self).expect("crdt state serializes");
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

    /// The highest clock seen.
    fn clock(&self) -> u64 {
        self.entries.values().map(|e| e.stamp.0).max().unwrap_or(0)
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
            if newer {
                self.entries.insert(cid.clone(), theirs.clone());
                changed = true;
            }
        }
        changed
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
