//! Rotation of the raft folder into `raft.old.N` backups (`dataBackupHelper`): the newest
//! backup is `.old.0`, older ones shift up, and only `backups_rotate` are kept. A folder
//! without any snapshot holds nothing worth keeping and is deleted instead.

use std::fs;
use std::path::Path;

use super::error::{Error, Result};
use super::logging;
use super::snapshot::Snapshot;

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    NothingThere,
    Deleted,
    BackedUp,
}

/// Moves `<config>/raft` out of the way, keeping at most `keep` backups.
pub fn rotate(config_dir: &Path, keep: usize) -> Result<Rotation> {
    let raft = config_dir.join("raft");
    if !raft.exists() {
        return Ok(Rotation::NothingThere);
    }
    if Snapshot::latest(&raft)?.is_none() {
        logging::info(
            "raft",
            &format!("cleaning empty Raft data folder ({})", raft.display()),
        );
        fs::remove_dir_all(&raft).map_err(Error::io(&raft))?;
        return Ok(Rotation::Deleted);
    }
    let keep = keep.max(1);
    let backup = |n: usize| config_dir.join(format!("raft.old.{n}"));
    let mut n = keep - 1;
    // Backups beyond the limit (e.g. from a larger backups_rotate earlier) go too.
    while backup(n).exists() {
        fs::remove_dir_all(backup(n)).map_err(Error::io(backup(n)))?;
        n += 1;
    }
    for i in (0..keep - 1).rev() {
        if backup(i).exists() {
            fs::rename(backup(i), backup(i + 1)).map_err(Error::io(backup(i)))?;
        }
    }
    logging::info(
        "raft",
        &format!(
            "cleaning and backing up Raft data folder ({})",
            raft.display()
        ),
    );
    fs::rename(&raft, backup(0)).map_err(Error::io(&raft))?;
    Ok(Rotation::BackedUp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Release;
    use crate::standin::state::ClusterState;

    #[test]
    fn rotation_shifts_and_caps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let rel = Release::modelled("0.10.1").unwrap();
        for i in 0..4u64 {
            let state = ClusterState {
                index: i,
                ..Default::default()
            };
            crate::standin::snapshot::write(&dir.path().join("raft"), &state, &rel).unwrap();
            assert_eq!(rotate(dir.path(), 3).unwrap(), Rotation::BackedUp);
        }
        assert!(dir.path().join("raft.old.2").exists());
        assert!(!dir.path().join("raft.old.3").exists());
        let newest = Snapshot::latest(&dir.path().join("raft.old.0"))
            .unwrap()
            .unwrap();
        assert_eq!(newest.meta.index, 3);
        fs::create_dir_all(dir.path().join("raft")).unwrap();
        assert_eq!(rotate(dir.path(), 3).unwrap(), Rotation::Deleted);
        assert_eq!(rotate(dir.path(), 3).unwrap(), Rotation::NothingThere);
    }
}
