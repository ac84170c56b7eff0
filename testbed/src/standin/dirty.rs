//! A CRDT store whose merge a stop interrupted (ADR 0015), modelled deterministically.
//!
//! With the real binaries this is a race: a 1.0.x peer stopped (SIGTERM) while go-ds-crdt
//! merges updates records their heads but not their pins, and marks its store dirty. Its next
//! start repairs the store on go-ds-crdt v0.3–v0.5; on v0.6 (1.1.2 on) it reads the store as
//! clean and the pins stay missing for good (see [`DirtyStore`]). The stand-in has no race to
//! lose: `cluster-lab fault interrupted-merge HOST --pins N` writes [`MARKER`] into the peer's
//! config folder, and the peer's next clean stop on a repairing release leaves out the N pins
//! it received last (see `CrdtState::interrupt_merge`).
//!
//! The log lines are go-ds-crdt's own (`crdt.go` of v0.5.2 and v0.6.8, `migrations.go` of
//! v0.6.8), under ipfs-cluster's `crdt` logger. Heads and height are the stand-in's: it has no
//! DAG, so one head and its Lamport clock as the height.

use std::fs;
use std::path::Path;

use super::datastore::CrdtState;
use super::error::Result;
use super::logging;
use crate::release::{DirtyStore, Release};

/// The marker file in the peer's config folder (`<home>/.ipfs-cluster/`): "the next stop
/// happens while the peer merges CRDT updates". It holds the number of updates left out.
pub const MARKER: &str = "standin-interrupted-merge";

/// How many updates an interrupted merge leaves out unless told (ADR 0015 saw 3–4).
pub const DEFAULT_PINS: usize = 3;

/// The logger go-ds-crdt is given by ipfs-cluster's `consensus/crdt`.
const LOGGER: &str = "crdt";

/// Writes the marker for `pins` updates into `config_dir` (the lab's fault).
pub fn arm(config_dir: &Path, pins: usize) -> std::io::Result<()> {
    fs::write(config_dir.join(MARKER), format!("{pins}\n"))
}

/// The number of updates the marker in `config_dir` asks to leave out, if there is one (a
/// marker that does not hold a number asks for the default).
pub fn armed(config_dir: &Path) -> Option<usize> {
    let text = fs::read_to_string(config_dir.join(MARKER)).ok()?;
    Some(text.trim().parse().unwrap_or(DEFAULT_PINS))
}

/// Removes the marker once the stop it asked for happened.
pub(crate) fn disarm(config_dir: &Path) {
    let _ = fs::remove_file(config_dir.join(MARKER));
}

/// Whether a clean stop of `release` with the marker in `config_dir` interrupts a merge, and
/// of how many updates. Releases that read a dirty store as clean, or have no dirty mark,
/// leave the marker for a later stop (the fault models a 1.0.x peer's stop).
pub(crate) fn due_on_stop(release: &Release, config_dir: &Path) -> Option<usize> {
    match release.crdt_dirty_store() {
        DirtyStore::Repairs => armed(config_dir),
        DirtyStore::NoMark | DirtyStore::ReadsClean => None,
    }
}

/// What the real peer logs when its stop cut the merge of `left_out` short.
pub(crate) fn log_interrupted(release: &Release, left_out: &[String]) {
    if release.logs_missing_children() {
        for _ in left_out {
            logging::warn(LOGGER, "GetDeltas did not include all children");
        }
    }
    logging::error(LOGGER, "error getting delta: context canceled");
    logging::warn(LOGGER, "marking datastore as dirty");
    logging::warn(LOGGER, "datastore is being closed marked as dirty");
}

/// Opens a store that a stop left dirty or with updates it never fetched, as `release` does:
/// go-ds-crdt v0.3–v0.5 repairs a dirty store (the left-out updates come back at the next
/// exchange); v0.6 migrates it, reads it as clean and keeps what it recorded as processed.
/// A clean store without such updates is left alone (and logs nothing more than before).
/// Saves the store into `folder` when it changed.
pub(crate) fn open(release: &Release, folder: &Path, state: &mut CrdtState) -> Result<()> {
    if !state.dirty && state.processed.is_empty() {
        return Ok(());
    }
    let heads = usize::from(!state.entries.is_empty() || !state.processed.is_empty());
    let height = state.clock();
    let created = |dirty: bool| {
        format!(
            "crdt Datastore created. Number of heads: {heads}. Current max-height: {height}. Dirty: {dirty}"
        )
    };
    match release.crdt_dirty_store() {
        DirtyStore::NoMark => return Ok(()),
        DirtyStore::Repairs if state.dirty => {
            logging::info(LOGGER, &created(true));
            logging::warn(
                LOGGER,
                "store is marked dirty. Starting DAG repair operation",
            );
            state.repair();
            logging::info(LOGGER, "DAG repair finished. Took 0s");
        }
        DirtyStore::Repairs => {
            logging::info(LOGGER, &created(false));
            logging::info(LOGGER, "store is marked clean. No need to repair");
            return Ok(());
        }
        DirtyStore::ReadsClean => {
            if state.dirty {
                // Only a v0 store (last written by go-ds-crdt < v0.6) carries the mark.
                let tombstones = state.entries.values().filter(|e| e.pin.is_none()).count();
                logging::info(
                    LOGGER,
                    &format!("Migration v0 to v1 finished ({tombstones} elements affected)"),
                );
            }
            logging::info(LOGGER, "CRDT database format v1");
            state.dirty = false;
            logging::info(LOGGER, &created(false));
            logging::info(LOGGER, "store is marked clean. No need to repair");
        }
    }
    state.save(folder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin::pin::Pin;

    const CIDS: [&str; 3] = [
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB",
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
    ];

    fn release(v: &str) -> Release {
        Release::modelled(v).unwrap()
    }

    /// A store that an interrupted merge left dirty, missing `CIDS[2]`.
    fn interrupted() -> CrdtState {
        let mut state = CrdtState::default();
        for cid in CIDS {
            state.write("other", cid, Some(Pin::everywhere(cid, "").unwrap()));
        }
        assert_eq!(state.interrupt_merge("me", 1), [CIDS[2]]);
        state
    }

    #[test]
    fn the_marker_holds_a_count_and_only_repairing_releases_act_on_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(armed(dir.path()), None);
        arm(dir.path(), 5).unwrap();
        assert_eq!(armed(dir.path()), Some(5));
        assert_eq!(due_on_stop(&release("1.0.8"), dir.path()), Some(5));
        assert_eq!(due_on_stop(&release("1.1.6"), dir.path()), None);
        assert_eq!(due_on_stop(&release("0.13.1"), dir.path()), None);
        fs::write(dir.path().join(MARKER), "").unwrap();
        assert_eq!(armed(dir.path()), Some(DEFAULT_PINS));
        disarm(dir.path());
        assert_eq!(armed(dir.path()), None);
    }

    #[test]
    fn a_repairing_release_forgets_the_left_out_updates() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = interrupted();
        open(&release("1.0.8"), dir.path(), &mut state).unwrap();
        assert!(!state.dirty && state.processed.is_empty());
        assert_eq!(CrdtState::open(dir.path()).unwrap(), state);
    }

    #[test]
    fn a_v0_6_release_reads_the_store_as_clean_and_keeps_them_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = interrupted();
        open(&release("1.1.6"), dir.path(), &mut state).unwrap();
        assert!(!state.dirty);
        assert_eq!(state.processed.keys().collect::<Vec<_>>(), [CIDS[2]]);
        assert_eq!(CrdtState::open(dir.path()).unwrap(), state);
        // Back on a repairing release the store is clean: nothing is repaired either.
        open(&release("1.0.8"), dir.path(), &mut state).unwrap();
        assert_eq!(state.processed.len(), 1);
    }

    #[test]
    fn a_clean_store_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = CrdtState::default();
        open(&release("1.1.6"), dir.path(), &mut state).unwrap();
        assert!(
            !dir.path().join("standin-crdt.json").exists(),
            "nothing to save"
        );
    }
}
