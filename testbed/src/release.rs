//! The modelled IPFS Cluster releases and how a release executable is made.
//!
//! Every release is a distinct executable file: a copy of the `cluster-peer` stand-in binary
//! with a small trailer appended that names the release and the role (service or ctl). The
//! running program reads the trailer back from its own executable, so swapping the file on disk
//! is what changes the version, exactly as with real releases.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Magic bytes that end every release executable.
const MAGIC: &[u8; 16] = b"CLUSTER-RELEASE1";

/// The releases the stand-in models, oldest first.
pub const RELEASES: &[&str] = &[
    "0.9.0", "0.10.1", "0.11.0", "0.13.1", "0.14.5", "1.0.5", "1.0.8", "1.1.2", "1.1.3", "1.1.6",
];

/// Which of the two executables of a release a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Service,
    Ctl,
    /// `ipfs-cluster-follow` (CRDT-era releases only, ≥ 0.11).
    Follow,
}

impl Role {
    pub fn file_name(self) -> &'static str {
        match self {
            Role::Service => "ipfs-cluster-service",
            Role::Ctl => "ipfs-cluster-ctl",
            Role::Follow => "ipfs-cluster-follow",
        }
    }
}

/// The metadata appended to a release executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub role: Role,
    pub version: String,
}

/// CLI generation of `ipfs-cluster-service`, which decides commands and flag shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Era {
    /// 0.4.x – 0.10.x: `state upgrade|version`, repeated `--bootstrap` flags, `/ipfs/` addresses.
    Raft010,
    /// ≥ 0.11: no state format byte, `identity.json`, NDJSON exports, `/p2p/` addresses.
    Modern,
}

/// Everything the stand-in derives from a release version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    /// Parses `X.Y.Z` (an optional leading `v` and `+build` suffix are ignored).
    pub fn parse(text: &str) -> Option<Release> {
        let core = text.trim().trim_start_matches('v');
        let core = core.split('+').next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        Some(Release {
            version: format!("{major}.{minor}.{patch}"),
            major,
            minor,
            patch,
        })
    }

    /// A modelled release by exact version, or `None`.
    pub fn modelled(version: &str) -> Option<Release> {
        let release = Release::parse(version)?;
        RELEASES
            .contains(&release.version.as_str())
            .then_some(release)
    }

    pub fn era(&self) -> Era {
        if (self.major, self.minor) < (0, 11) {
            Era::Raft010
        } else {
            Era::Modern
        }
    }

    /// `mapstate.Version`, the first byte of a raft snapshot (reference §2.5); `None` from 0.11.
    pub fn state_format(&self) -> Option<u8> {
        match (self.major, self.minor) {
            (0, 5..=9) => Some(5),
            (0, 10) => Some(6),
            _ => None,
        }
    }

    /// The datastores `init --datastore` offers (`cmd/ipfs-cluster-service/main.go` of each
    /// tag): no flag before 0.14 (CRDT peers use badger), badger and leveldb from 0.14, also
    /// badger3 and pebble from 1.0.5.
    pub fn datastores(&self) -> &'static [Backend] {
        use Backend::*;
        match (self.major, self.minor, self.patch) {
            (0, 0..=13, _) => &[],
            (0, _, _) | (1, 0, 0..=4) => &[Badger, LevelDb],
            _ => &[Badger, Badger3, LevelDb, Pebble],
        }
    }

    /// The datastore a CRDT `init` writes without `--datastore`: badger up to 1.0.5, pebble
    /// from 1.0.6 (on linux/amd64; `pebble_enabled.go` keeps badger3 on arm, 386 and
    /// openbsd/amd64 until 1.0.8).
    pub fn default_datastore(&self) -> Backend {
        if (self.major, self.minor, self.patch) >= (1, 0, 6) {
            Backend::Pebble
        } else {
            Backend::Badger
        }
    }

    /// `choosing datastore`'s refusal of a value `init --datastore` does not offer (the
    /// real texts of 0.14.x and of 1.0.5 on).
    pub fn datastore_refusal(&self) -> &'static str {
        if self.datastores().contains(&Backend::Pebble) {
            "flag value must be set to 'leveldb', 'badger', 'badger3' or 'pebble'"
        } else {
            "flag value must be set to 'leveldb' or 'badger'"
        }
    }

    /// The pebble formats of a release that has pebble (1.0.5 on); see [`PebbleFormats`].
    pub fn pebble_formats(&self) -> Option<PebbleFormats> {
        let range = |oldest, newest| Some(PebbleFormats { oldest, newest });
        match (self.major, self.minor, self.patch) {
            // pebble 2022-11 / 2023-02 pseudo-versions: FormatNewest 12.
            (1, 0, 5..=7) => range(1, 12),
            // pebble 2023-12 pseudo-version and v1.1.x: FormatNewest 16.
            (1, 0, 8..) | (1, 1, 0..=2) => range(1, 16),
            // pebble/v2 v2.0.3: FormatMinSupported 13, FormatNewest 19.
            (1, 1, 3..=4) => range(13, 19),
            // pebble/v2 v2.1.x: 13 to 24.
            (1, 1, 5..) => range(13, 24),
            _ => None,
        }
    }

    /// The `format_major_version` a pebble `init` writes: 1 up to 1.0.7 (pebble's
    /// `FormatMostCompatible`, the options' default), the newest from 1.0.8 (#2019).
    pub fn pebble_init_format(&self) -> Option<u32> {
        let formats = self.pebble_formats()?;
        if (self.major, self.minor, self.patch) < (1, 0, 8) {
            Some(1)
        } else {
            Some(formats.newest)
        }
    }

    /// Whether the pebble datastore warns at start when its configured format is older than
    /// the newest (`datastore/pebble/pebble.go`, from 1.0.8).
    pub fn warns_old_pebble_format(&self) -> bool {
        (self.major, self.minor, self.patch) >= (1, 0, 8)
    }

    /// Whether this release's pebble refuses a store without a format marker (format 1) with
    /// pebble v2.1.5's `checkForLegacyFormatVersion1` text ("was written …, which …", 1.1.6),
    /// rather than v2.0.3/v2.1.2's ("written … which …", 1.1.3 – 1.1.5).
    pub fn pebble_legacy_v1_check(&self) -> bool {
        (self.major, self.minor, self.patch) >= (1, 1, 6)
    }

    /// How this release encodes its ping metrics (ipfs-cluster#1409).
    pub fn metrics_codec(&self) -> MetricsCodec {
        if (self.major, self.minor) <= (0, 13) {
            MetricsCodec::Multicodec
        } else {
            MetricsCodec::Msgpack
        }
    }

    /// Whether a peer of this release takes a ping metric encoded with `codec`: the same
    /// codec, or an old one from 0.14.1 on (PR #1446 strips the multicodec header and warns
    /// once); a 0.13 peer cannot read 0.14 metrics ("multicodec did not match").
    pub fn reads_metrics(&self, codec: MetricsCodec) -> bool {
        codec == self.metrics_codec()
            || (codec == MetricsCodec::Multicodec
                && (self.major, self.minor, self.patch) >= (0, 14, 1))
    }

    /// What this release's go-ds-crdt does with a store whose merge a stop interrupted
    /// (ADR 0015), from each tag's go.mod: go-ds-crdt v0.1.x up to 0.14.4 (no dirty mark);
    /// v0.3.x–v0.5.x from 0.14.5 to 1.1.1 (0.14.5 v0.3.2, 1.0.5 v0.3.9, 1.0.8–1.1.1 v0.5.2);
    /// v0.6.x from 1.1.2 (1.1.2 v0.6.2, 1.1.3 v0.6.5, 1.1.6 v0.6.8), which migrates the store
    /// "v0 to v1" at its first open.
    pub fn crdt_dirty_store(&self) -> DirtyStore {
        match (self.major, self.minor, self.patch) {
            (0, 0..=13, _) | (0, 14, 0..=4) => DirtyStore::NoMark,
            (0, _, _) | (1, 0, _) | (1, 1, 0..=1) => DirtyStore::Repairs,
            _ => DirtyStore::ReadsClean,
        }
    }

    /// Whether go-ds-crdt logs "GetDeltas did not include all children" when a stop cuts a
    /// fetch of deltas short (from v0.3.6, ipfs-cluster 1.0.2).
    pub fn logs_missing_children(&self) -> bool {
        (self.major, self.minor, self.patch) >= (1, 0, 2)
    }

    /// The libp2p RPC protocol ID (reference §4).
    pub fn rpc_protocol(&self) -> String {
        match (self.major, self.minor) {
            (0, 0..=5) => format!("/ipfscluster/{}/rpc", self.version),
            (0, 13..=14) => "/ipfscluster/0.12/rpc".to_string(),
            (0, m) => format!("/ipfscluster/0.{m}/rpc"),
            _ => "/ipfscluster/1.0/rpc".to_string(),
        }
    }
}

/// How a release's go-ds-crdt meets a CRDT store marked dirty (see
/// [`Release::crdt_dirty_store`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirtyStore {
    /// go-ds-crdt v0.1.x has no dirty mark: the stand-in does not model an interrupted merge.
    NoMark,
    /// v0.3.x–v0.5.x: a merge cut short marks the store dirty, and the next start walks the
    /// DAG again from the recorded heads ("store is marked dirty. Starting DAG repair
    /// operation"), fetching what the interrupted merge left out.
    Repairs,
    /// v0.6.x: seen with the real 1.1.6 on a store a 1.0.8 peer had marked dirty, it logs
    /// `Dirty: false` and "store is marked clean. No need to repair" (after the v0 → v1
    /// migration): the left-out updates are never fetched again.
    ReadsClean,
}

/// A datastore backend of a CRDT peer (`init --datastore`, the key of `service.json`'s
/// `datastore` section and the name of its folder next to `service.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Badger,
    Badger3,
    LevelDb,
    Pebble,
}

impl Backend {
    /// The `--datastore` value, config key and folder name (one name for all three).
    pub fn key(self) -> &'static str {
        match self {
            Backend::Badger => "badger",
            Backend::Badger3 => "badger3",
            Backend::LevelDb => "leveldb",
            Backend::Pebble => "pebble",
        }
    }

    pub fn parse(text: &str) -> Option<Backend> {
        [
            Backend::Badger,
            Backend::Badger3,
            Backend::LevelDb,
            Backend::Pebble,
        ]
        .into_iter()
        .find(|b| b.key() == text)
    }
}

/// What a release's pebble accepts in `format_major_version` and can open on disk
/// (`docs/adr/0009-pebble-format.md`, from each release's go.mod and its pebble's
/// `format_major_version.go` and `Options.Validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PebbleFormats {
    /// The oldest store format it opens (1 before pebble v2: no minimum).
    pub oldest: u32,
    /// `FormatNewest`: the highest format it accepts in its config and writes.
    pub newest: u32,
}

impl PebbleFormats {
    /// pebble v2 (from 1.1.3) has a minimum and says "must be between"; v1 only an upper bound.
    pub fn is_v2(self) -> bool {
        self.oldest > 1
    }
}

/// How a release's ping metrics are encoded (ipfs-cluster#1409): 0.14.0 changed the encoding,
/// so peers of 0.13 and 0.14 share the RPC protocol but not their metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsCodec {
    /// Up to 0.13.3: msgpack behind a multicodec header.
    Multicodec,
    /// From 0.14.0: plain msgpack.
    Msgpack,
}

/// Reads the trailer of an executable, or `None` if it has none (the bare stand-in).
pub fn read_trailer(path: &Path) -> io::Result<Option<Trailer>> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    let tail = (MAGIC.len() + 4) as u64;
    if len < tail {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(len - tail))?;
    let mut buf = [0u8; 20];
    file.read_exact(&mut buf)?;
    if &buf[4..] != MAGIC {
        return Ok(None);
    }
    let body_len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as u64;
    if body_len + tail > len {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(len - tail - body_len))?;
    let mut body = vec![0u8; body_len as usize];
    file.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body).ok())
}

/// The trailer of the running executable.
pub fn own_trailer() -> io::Result<Option<Trailer>> {
    read_trailer(&std::env::current_exe()?)
}

/// Writes one release executable: `standin` plus the trailer, mode 0755.
pub fn write_executable(standin: &Path, trailer: &Trailer, out: &Path) -> io::Result<()> {
    let mut bytes = fs::read(standin)?;
    if read_trailer(standin)?.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "source already is a release executable",
        ));
    }
    let body = serde_json::to_vec(trailer).expect("trailer serializes");
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(MAGIC);
    let tmp = out.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    set_mode(&tmp, 0o755)?;
    fs::rename(&tmp, out)
}

/// Writes a release's executables (service, ctl and, from 0.11, follow) and a `SHA256SUMS`
/// file into `out_dir`. Returns the paths of the service and ctl executables.
pub fn write_release(
    standin: &Path,
    version: &str,
    out_dir: &Path,
) -> io::Result<(PathBuf, PathBuf)> {
    let release = Release::modelled(version).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "release {version} is not modelled (known: {})",
                RELEASES.join(", ")
            ),
        )
    })?;
    fs::create_dir_all(out_dir)?;
    let mut sums = String::new();
    let mut paths = Vec::new();
    let roles: &[Role] = match release.era() {
        Era::Raft010 => &[Role::Service, Role::Ctl],
        Era::Modern => &[Role::Service, Role::Ctl, Role::Follow],
    };
    for &role in roles {
        let path = out_dir.join(role.file_name());
        write_executable(
            standin,
            &Trailer {
                role,
                version: release.version.clone(),
            },
            &path,
        )?;
        sums.push_str(&format!("{}  {}\n", sha256_file(&path)?, role.file_name()));
        paths.push(path);
    }
    fs::write(out_dir.join("SHA256SUMS"), sums)?;
    Ok((paths[0].clone(), paths[1].clone()))
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_facts_follow_the_reference_tables() {
        let r = |v| Release::modelled(v).unwrap();
        assert_eq!(r("0.9.0").state_format(), Some(5));
        assert_eq!(r("0.10.1").state_format(), Some(6));
        assert_eq!(r("0.11.0").state_format(), None);
        assert_eq!(r("0.9.0").rpc_protocol(), "/ipfscluster/0.9/rpc");
        assert_eq!(r("0.10.1").rpc_protocol(), "/ipfscluster/0.10/rpc");
        assert_eq!(r("1.0.8").rpc_protocol(), r("1.1.6").rpc_protocol());
        assert_eq!(r("1.1.6").era(), Era::Modern);
        assert!(Release::modelled("0.12.0").is_none());
        assert_eq!(Release::parse("v0.10.1+git1234").unwrap().version, "0.10.1");
    }

    #[test]
    fn a_dirty_crdt_store_is_repaired_only_by_go_ds_crdt_v0_3_to_v0_5() {
        let r = |v| Release::modelled(v).unwrap().crdt_dirty_store();
        assert_eq!(r("0.11.0"), DirtyStore::NoMark);
        assert_eq!(r("0.13.1"), DirtyStore::NoMark);
        for v in ["0.14.5", "1.0.5", "1.0.8"] {
            assert_eq!(r(v), DirtyStore::Repairs, "{v}");
        }
        // 1.1.0 and 1.1.1 still ship go-ds-crdt v0.5.2.
        assert_eq!(
            Release::parse("1.1.1").unwrap().crdt_dirty_store(),
            DirtyStore::Repairs
        );
        for v in ["1.1.2", "1.1.3", "1.1.6"] {
            assert_eq!(r(v), DirtyStore::ReadsClean, "{v}");
        }
        assert!(!Release::modelled("0.14.5").unwrap().logs_missing_children());
        assert!(Release::modelled("1.0.5").unwrap().logs_missing_children());
    }

    #[test]
    fn the_crdt_era_releases_follow_their_init_and_go_mod() {
        let r = |v| Release::modelled(v).unwrap();
        for v in ["0.13.1", "0.14.5", "1.0.5", "1.1.2", "1.1.3"] {
            assert!(RELEASES.contains(&v), "{v} is modelled");
            assert_eq!(r(v).era(), Era::Modern);
        }
        // RPC protocol IDs (1x doc §3): 0.13 and 0.14 share 0.12's, 1.x one of its own.
        assert_eq!(r("0.13.1").rpc_protocol(), "/ipfscluster/0.12/rpc");
        assert_eq!(r("0.14.5").rpc_protocol(), "/ipfscluster/0.12/rpc");
        assert_eq!(r("1.0.5").rpc_protocol(), "/ipfscluster/1.0/rpc");
        assert_eq!(r("1.1.3").rpc_protocol(), "/ipfscluster/1.0/rpc");
        // --datastore: none before 0.14, badger|leveldb in 0.14, four from 1.0.5.
        use Backend::*;
        assert!(r("0.13.1").datastores().is_empty());
        assert_eq!(r("0.14.5").datastores(), [Badger, LevelDb]);
        assert_eq!(r("1.0.5").datastores(), [Badger, Badger3, LevelDb, Pebble]);
        assert_eq!(r("0.13.1").default_datastore(), Badger);
        assert_eq!(r("1.0.5").default_datastore(), Badger);
        assert_eq!(r("1.0.8").default_datastore(), Pebble);
        assert_eq!(
            r("0.14.5").datastore_refusal(),
            "flag value must be set to 'leveldb' or 'badger'"
        );
        // Pebble formats (ADR 0009) and what init writes.
        let formats = |v| r(v).pebble_formats().map(|f| (f.oldest, f.newest));
        assert_eq!(formats("0.14.5"), None);
        assert_eq!(formats("1.0.5"), Some((1, 12)));
        assert_eq!(formats("1.0.8"), Some((1, 16)));
        assert_eq!(formats("1.1.2"), Some((1, 16)));
        assert_eq!(formats("1.1.3"), Some((13, 19)));
        assert_eq!(formats("1.1.6"), Some((13, 24)));
        assert_eq!(r("1.0.5").pebble_init_format(), Some(1));
        assert_eq!(r("1.0.8").pebble_init_format(), Some(16));
        assert_eq!(r("1.1.3").pebble_init_format(), Some(19));
        assert!(!r("1.0.5").warns_old_pebble_format());
        assert!(r("1.0.8").warns_old_pebble_format());
        // The metrics break (#1409): 0.14.5 reads 0.13 metrics, 0.13 cannot read 0.14's.
        let (old, new) = (r("0.13.1"), r("0.14.5"));
        assert_ne!(old.metrics_codec(), new.metrics_codec());
        assert!(new.reads_metrics(old.metrics_codec()));
        assert!(!old.reads_metrics(new.metrics_codec()));
        assert!(r("1.1.6").reads_metrics(r("1.0.5").metrics_codec()));
    }

    #[test]
    fn trailer_round_trips_and_sums_match() {
        let dir = tempfile::tempdir().unwrap();
        let standin = dir.path().join("standin");
        fs::write(&standin, b"#!/bin/sh\nexit 0\n").unwrap();
        let (svc, ctl) = write_release(&standin, "0.10.1", &dir.path().join("rel")).unwrap();
        let t = read_trailer(&svc).unwrap().unwrap();
        assert_eq!(
            t,
            Trailer {
                role: Role::Service,
                version: "0.10.1".into()
            }
        );
        assert_eq!(read_trailer(&ctl).unwrap().unwrap().role, Role::Ctl);
        assert_eq!(read_trailer(&standin).unwrap(), None);
        let sums = fs::read_to_string(dir.path().join("rel/SHA256SUMS")).unwrap();
        assert!(sums.contains(&format!("{}  ipfs-cluster-ctl", sha256_file(&ctl).unwrap())));
        assert!(write_release(&standin, "0.12.0", dir.path()).is_err());
        // Followers came with CRDT (0.11): only the CRDT-era releases have `ipfs-cluster-follow`.
        assert!(!dir.path().join("rel/ipfs-cluster-follow").exists());
        write_release(&standin, "1.1.6", &dir.path().join("new")).unwrap();
        let follow = dir.path().join("new/ipfs-cluster-follow");
        assert_eq!(read_trailer(&follow).unwrap().unwrap().role, Role::Follow);
        let sums = fs::read_to_string(dir.path().join("new/SHA256SUMS")).unwrap();
        assert!(sums.contains(&format!(
            "{}  ipfs-cluster-follow",
            sha256_file(&follow).unwrap()
        )));
    }
}
