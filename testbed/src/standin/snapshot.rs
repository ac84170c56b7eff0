//! Raft snapshots: `raft/snapshots/<term>-<index>-<unixms>/{meta.json,state.bin}`.
//!
//! `state.bin` starts with the state format byte on ≤ 0.10 (5 for 0.9, 6 for 0.10) and has no
//! such byte from 0.11; the body is JSON. `meta.json` carries a CRC-64 (ECMA) of `state.bin`
//! like hashicorp's file snapshot store. The last five snapshots are kept.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::logging::unix_millis;
use super::state::ClusterState;
use crate::release::Release;

/// How many snapshots a raft folder keeps (`RaftMaxSnapshots`).
const KEEP: usize = 5;

/// `meta.json` of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Meta {
    pub version: u32,
    #[serde(rename = "ID")]
    pub id: String,
    pub index: u64,
    pub term: u64,
    pub peers: Vec<String>,
    pub size: u64,
    #[serde(rename = "CRC")]
    pub crc: String,
}

/// The format marker found at the start of a `state.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredFormat {
    /// ≤ 0.10: the first byte is `mapstate.Version`.
    Versioned(u8),
    /// ≥ 0.11: no version byte.
    Unversioned,
}

/// What a release makes of a stored format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Current,
    /// Older, but this release can migrate it (≤ 0.10 only).
    Outdated,
}

/// A snapshot found on disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub meta: Meta,
}

impl Snapshot {
    /// The latest snapshot of a raft folder, by (term, index, time).
    pub fn latest(raft_dir: &Path) -> Result<Option<Snapshot>> {
        let snaps_dir = raft_dir.join("snapshots");
        let read = match fs::read_dir(&snaps_dir) {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io(&snaps_dir)(err)),
        };
        let mut found: Vec<((u64, u64, u128), PathBuf)> = Vec::new();
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(key) = parse_name(&name) {
                if entry.path().join("meta.json").exists() {
                    found.push((key, entry.path()));
                }
            }
        }
        found.sort();
        let Some((_, dir)) = found.pop() else {
            return Ok(None);
        };
        let meta_path = dir.join("meta.json");
        let bytes = fs::read(&meta_path).map_err(Error::io(&meta_path))?;
        let meta = serde_json::from_slice(&bytes).map_err(|source| Error::ParseJson {
            path: meta_path,
            source,
        })?;
        Ok(Some(Snapshot { dir, meta }))
    }

    /// `state.bin`, verified against the CRC in `meta.json`.
    pub fn payload(&self) -> Result<Vec<u8>> {
        let path = self.dir.join("state.bin");
        let bytes = fs::read(&path).map_err(Error::io(&path))?;
        if crc_text(&bytes) != self.meta.crc {
            return Err(Error::SnapshotDecode {
                path,
                detail: "CRC mismatch: snapshot potentially corrupt".into(),
            });
        }
        Ok(bytes)
    }

    /// The format marker of this snapshot.
    #[cfg(test)]
    pub fn format(&self) -> Result<StoredFormat> {
        Ok(stored_format(&self.payload()?))
    }

    /// Decodes the state as `release` would, refusing formats it cannot read.
    /// Outdated formats decode too; callers decide whether that is allowed.
    pub fn decode(&self, release: &Release) -> Result<(ClusterState, Fit)> {
        let bytes = self.payload()?;
        let path = self.dir.join("state.bin");
        let fit = fit(release, stored_format(&bytes), &path)?;
        let body = match stored_format(&bytes) {
            StoredFormat::Versioned(_) => &bytes[1..],
            StoredFormat::Unversioned => &bytes[..],
        };
        let state = serde_json::from_slice(body).map_err(|e| Error::SnapshotDecode {
            path: path.clone(),
            detail: format!("error unmarshalling snapshot. Snapshot potentially corrupt: {e}"),
        })?;
        Ok((state, fit))
    }
}

/// Decides whether `release` can read a stored format (reference §2.5).
pub fn fit(release: &Release, stored: StoredFormat, path: &Path) -> Result<Fit> {
    match (release.state_format(), stored) {
        (Some(current), StoredFormat::Versioned(v)) if v == current => Ok(Fit::Current),
        (Some(current), StoredFormat::Versioned(v)) if (1..current).contains(&v) => Ok(Fit::Outdated),
        (Some(current), StoredFormat::Versioned(v)) => Err(Error::NewerState { found: v, supported: current }),
        (Some(current), StoredFormat::Unversioned) => Err(Error::NewerState { found: b'{', supported: current }),
        // 0.11+ has no migrations but reads the 0.10 datastore dump; anything older is
        // undecodable msgpack to it.
        (None, StoredFormat::Unversioned | StoredFormat::Versioned(6)) => Ok(Fit::Current),
        (None, StoredFormat::Versioned(v)) => Err(Error::SnapshotDecode {
            path: path.to_path_buf(),
            detail: format!("msgpack decode error [pos 1]: only encoded map or array can be decoded into a struct (state format {v})"),
        }),
    }
}

fn stored_format(bytes: &[u8]) -> StoredFormat {
    match bytes.first() {
        Some(b'{') | None => StoredFormat::Unversioned,
        Some(v) => StoredFormat::Versioned(*v),
    }
}

/// Writes a snapshot of `state` in `release`'s format and prunes old ones.
pub fn write(raft_dir: &Path, state: &ClusterState, release: &Release) -> Result<PathBuf> {
    let mut bytes = Vec::new();
    if let Some(format) = release.state_format() {
        bytes.push(format);
    }
    bytes.extend_from_slice(&serde_json::to_vec(state).expect("state serializes"));
    let snaps_dir = raft_dir.join("snapshots");
    let mut ms = unix_millis();
    let mut dir = snaps_dir.join(format!("{}-{}-{ms}", state.term, state.index));
    while dir.exists() {
        ms += 1;
        dir = snaps_dir.join(format!("{}-{}-{ms}", state.term, state.index));
    }
    // Written under a temporary name and renamed, so a crash never leaves a half snapshot.
    let tmp = snaps_dir.join(format!("{}-{}-{ms}.tmp", state.term, state.index));
    fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
    let meta = Meta {
        version: 1,
        id: format!("{}-{}-{ms}", state.term, state.index),
        index: state.index,
        term: state.term,
        peers: state.peerset.keys().cloned().collect(),
        size: bytes.len() as u64,
        crc: crc_text(&bytes),
    };
    fs::write(tmp.join("state.bin"), &bytes).map_err(Error::io(tmp.join("state.bin")))?;
    let meta_text = serde_json::to_string_pretty(&meta).expect("meta serializes");
    fs::write(tmp.join("meta.json"), meta_text).map_err(Error::io(tmp.join("meta.json")))?;
    fs::rename(&tmp, &dir).map_err(Error::io(&dir))?;
    prune(&snaps_dir)?;
    Ok(dir)
}

fn prune(snaps_dir: &Path) -> Result<()> {
    let mut found: Vec<((u64, u64, u128), PathBuf)> = fs::read_dir(snaps_dir)
        .map_err(Error::io(snaps_dir))?
        .flatten()
        .filter_map(|e| parse_name(&e.file_name().to_string_lossy()).map(|k| (k, e.path())))
        .collect();
    found.sort();
    while found.len() > KEEP {
        let (_, dir) = found.remove(0);
        fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
    }
    Ok(())
}

fn parse_name(name: &str) -> Option<(u64, u64, u128)> {
    let mut parts = name.split('-');
    let key = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(key)
}

/// CRC-64/ECMA as Go's `hash/crc64` computes it, as hex.
fn crc_text(bytes: &[u8]) -> String {
    const POLY: u64 = 0xC96C_5795_D787_0F42;
    let mut crc = !0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    let crc = !crc;
    crc.to_be_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(v: &str) -> Release {
        Release::modelled(v).unwrap()
    }

    #[test]
    fn formats_fit_per_release() {
        let p = Path::new("x");
        assert_eq!(
            fit(&rel("0.10.1"), StoredFormat::Versioned(5), p).unwrap(),
            Fit::Outdated
        );
        assert_eq!(
            fit(&rel("0.10.1"), StoredFormat::Versioned(6), p).unwrap(),
            Fit::Current
        );
        assert!(fit(&rel("0.9.0"), StoredFormat::Versioned(6), p).is_err());
        assert_eq!(
            fit(&rel("1.1.6"), StoredFormat::Versioned(6), p).unwrap(),
            Fit::Current
        );
        assert!(fit(&rel("1.1.6"), StoredFormat::Versioned(5), p).is_err());
        assert!(fit(&rel("0.10.1"), StoredFormat::Unversioned, p).is_err());
    }

    #[test]
    fn snapshots_round_trip_keep_five_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = ClusterState::default();
        for i in 1..=7 {
            state.index = i;
            write(dir.path(), &state, &rel("0.9.0")).unwrap();
        }
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
            5
        );
        let snap = Snapshot::latest(dir.path()).unwrap().unwrap();
        assert_eq!(snap.meta.index, 7);
        assert_eq!(snap.format().unwrap(), StoredFormat::Versioned(5));
        assert_eq!(snap.decode(&rel("0.9.0")).unwrap().0, state);
        fs::write(snap.dir.join("state.bin"), b"\x05{}").unwrap();
        assert!(snap.payload().is_err());
    }
}
