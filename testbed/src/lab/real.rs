//! The real releases a lab of real binaries (`up --real`) installs: IPFS Cluster and kubo, as
//! `scripts/real-releases` builds them into a cache outside the work tree.
//!
//! Nothing here builds or substitutes anything: a release that is missing is an error that
//! names the script that builds it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::release::Release;

use super::error::{LabError, Result};

/// The executables of a real IPFS Cluster release the lab installs (`ipfs-cluster-follow` is
/// built too, but nothing in a lab runs it).
pub const CLUSTER_FILES: &[&str] = &["ipfs-cluster-service", "ipfs-cluster-ctl"];

/// kubo's executable.
pub const KUBO_FILE: &str = "ipfs";

/// The script that builds the real releases (named in every error about them).
pub const BUILD_SCRIPT: &str = "scripts/real-releases";

/// The cache folder of the real releases: as `scripts/real-releases --print-dir` computes it
/// (`<cache>/real`, see [`super::cache::root`]).
pub fn default_dir() -> PathBuf {
    super::cache::root().join("real")
}

/// The real releases found in one cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealReleases {
    dir: PathBuf,
}

impl RealReleases {
    /// The releases in `dir` (by default [`default_dir`]).
    pub fn open(dir: Option<&Path>) -> RealReleases {
        RealReleases {
            dir: dir.map_or_else(default_dir, Path::to_path_buf),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The IPFS Cluster releases folder: `<version>/{ipfs-cluster-service,…,SHA256SUMS}`, the
    /// layout of a cluster-upgrade `releases: {source: local}` folder.
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.join("ipfs-cluster")
    }

    /// Every complete IPFS Cluster release, oldest first.
    pub fn versions(&self) -> Vec<String> {
        complete_versions(&self.cluster_dir(), CLUSTER_FILES)
    }

    /// The newest complete kubo build: its version and folder.
    pub fn kubo(&self) -> Option<(String, PathBuf)> {
        let dir = self.dir.join("kubo");
        let version = complete_versions(&dir, &[KUBO_FILE]).pop()?;
        let path = dir.join(&version);
        Some((version, path))
    }

    /// The folder of IPFS Cluster `version`, or the error that says how to build it.
    pub fn require(&self, version: &str) -> Result<PathBuf> {
        if self.versions().iter().any(|v| v == version) {
            return Ok(self.cluster_dir().join(version));
        }
        Err(self.missing(&format!("IPFS Cluster {version}")))
    }

    /// kubo's version and folder, or the error that says how to build it.
    pub fn require_kubo(&self) -> Result<(String, PathBuf)> {
        self.kubo().ok_or_else(|| self.missing("kubo"))
    }

    fn missing(&self, what: &str) -> LabError {
        let built = self.versions();
        LabError::RealReleaseMissing {
            what: what.to_string(),
            dir: self.dir.clone(),
            built: if built.is_empty() {
                "none".to_string()
            } else {
                built.join(", ")
            },
        }
    }
}

/// The sub-folders of `dir` named by a version that hold every one of `files` (executable) and
/// a SHA256SUMS naming each of them, oldest first. The checksums themselves are verified where
/// the files are installed (`sha256sum -c` on every host).
fn complete_versions(dir: &Path, files: &[&str]) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Release> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let release = Release::parse(&name).filter(|r| r.version == name)?;
            let folder = entry.path();
            let sums = fs::read_to_string(folder.join("SHA256SUMS")).ok()?;
            let complete = files.iter().all(|file| {
                is_executable(&folder.join(file))
                    && sums
                        .lines()
                        .any(|line| line.split_whitespace().nth(1) == Some(*file))
            });
            complete.then_some(release)
        })
        .collect();
    found.sort_by_key(|r| (r.major, r.minor, r.patch));
    found.into_iter().map(|r| r.version).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The default target of a real lab: the next real release built after `version`, or
/// `version` itself when it is the newest.
pub fn default_target(built: &[String], version: &str) -> String {
    let position = built.iter().position(|v| v == version);
    position
        .and_then(|p| built.get(p + 1))
        .cloned()
        .unwrap_or_else(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn release(dir: &Path, version: &str, files: &[&str], sums: &[&str]) {
        let folder = dir.join(version);
        fs::create_dir_all(&folder).unwrap();
        for file in files {
            fs::write(folder.join(file), "#!/bin/sh\n").unwrap();
            fs::set_permissions(folder.join(file), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let text: String = sums
            .iter()
            .map(|f| format!("{}  {f}\n", "0".repeat(64)))
            .collect();
        fs::write(folder.join("SHA256SUMS"), text).unwrap();
    }

    #[test]
    fn only_complete_releases_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("ipfs-cluster");
        release(&cluster, "1.1.6", CLUSTER_FILES, CLUSTER_FILES);
        release(&cluster, "1.0.8", CLUSTER_FILES, CLUSTER_FILES);
        release(&cluster, "1.0.7", &["ipfs-cluster-service"], CLUSTER_FILES);
        release(&cluster, "1.1.0", CLUSTER_FILES, &["ipfs-cluster-ctl"]);
        fs::create_dir_all(cluster.join(".build-ipfs-cluster-1.1.5.x")).unwrap();
        release(&dir.path().join("kubo"), "0.43.0", &["ipfs"], &["ipfs"]);
        let real = RealReleases::open(Some(dir.path()));
        assert_eq!(real.versions(), ["1.0.8", "1.1.6"]);
        assert_eq!(real.kubo().unwrap().0, "0.43.0");
        assert_eq!(real.require("1.0.8").unwrap(), cluster.join("1.0.8"));
        let error = real.require("1.0.7").unwrap_err().to_string();
        assert!(error.contains("IPFS Cluster 1.0.7"), "{error}");
        assert!(error.contains(BUILD_SCRIPT), "{error}");
        assert!(error.contains("built: 1.0.8, 1.1.6"), "{error}");
    }

    #[test]
    fn an_empty_cache_names_the_script_that_fills_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = RealReleases::open(Some(&dir.path().join("nothing")));
        assert!(real.versions().is_empty());
        let error = real.require_kubo().unwrap_err().to_string();
        assert!(
            error.contains("kubo") && error.contains("scripts/real-releases"),
            "{error}"
        );
    }

    #[test]
    fn the_default_target_is_the_next_real_release() {
        let built = vec!["1.0.8".to_string(), "1.1.6".to_string()];
        assert_eq!(default_target(&built, "1.0.8"), "1.1.6");
        assert_eq!(default_target(&built, "1.1.6"), "1.1.6");
    }
}
