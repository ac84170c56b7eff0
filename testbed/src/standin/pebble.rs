//! The pebble datastore's format rules (1.0.5 on), as the real releases apply them at start
//! and in `state` commands (`docs/adr/0009-pebble-format.md`, ADR 0012):
//!
//! * `service.json`'s `format_major_version` is validated when the configuration loads:
//!   pebble v2 (1.1.3 on) "FormatMajorVersion (1) must be between 13 and 24", pebble v1
//!   "FormatMajorVersion (99) must be <= 16" (each release's own bounds; the texts of pebble's
//!   `Options.Validate`, seen with the real 1.1.6 and 1.0.8).
//! * From 1.0.8 a configured format older than the newest is warned about
//!   (`datastore/pebble/pebble.go`).
//! * Opening the store: a store below the release's oldest format, or above its newest, is
//!   refused ("failed to open pebble database: pebble: database \"…\" was written in format
//!   major version 1, which is no longer supported", the real 1.1.6); otherwise the store is
//!   raised to the configured format when that is higher (never lowered).
//!
//! On disk the stand-in keeps what the real store shows of its format (seen in the real
//! 1.0.8's and 1.1.6's folders): the store's own format in a `marker.format-version.N.FFF`
//! file (none for format 1, whose stores have `CURRENT` instead), and the *configured* format
//! in the newest `OPTIONS-N` file (`  format_major_version=F`; pebble writes one at every open
//! and deletes the older ones). Nothing else of pebble's files is modelled.

use std::fs;
use std::path::Path;

use super::error::{Error, Result};
use super::logging;
use crate::release::{PebbleFormats, Release};

const MARKER: &str = "marker.format-version.";
const OPTIONS: &str = "OPTIONS-";
/// What a format-1 (pre-marker) store has and a pebble v2 store has not.
const CURRENT: &str = "CURRENT";

fn formats(release: &Release) -> Result<PebbleFormats> {
    release
        .pebble_formats()
        .ok_or_else(|| Error::NoSuchDatastore {
            datastore: "pebble".into(),
        })
}

/// The configuration check (`Options.Validate`), run where the real peer loads its config.
pub fn check_config(release: &Release, configured: u32) -> Result<()> {
    let f = formats(release)?;
    if f.is_v2() && !(f.oldest..=f.newest).contains(&configured) {
        return Err(Error::PebbleFormatRange {
            format: configured,
            oldest: f.oldest,
            newest: f.newest,
        });
    }
    if configured > f.newest {
        return Err(Error::PebbleFormatNewer {
            format: configured,
            newest: f.newest,
        });
    }
    Ok(())
}

/// The store's format: its marker's, 1 for a store with `CURRENT` and no marker, `None` for
/// a folder without a store.
pub fn store_format(folder: &Path) -> Option<u32> {
    let names = names(folder);
    let marked = names
        .iter()
        .filter_map(|n| n.strip_prefix(MARKER))
        .filter_map(|rest| rest.rsplit('.').next()?.parse::<u32>().ok())
        .max();
    marked.or_else(|| names.iter().any(|n| n == CURRENT).then_some(1))
}

/// Opens (or creates) the store in `folder` with `configured` as its format option: warns,
/// refuses or raises as the release's pebble does, then records the open.
pub fn open(release: &Release, folder: &Path, configured: u32) -> Result<()> {
    let f = formats(release)?;
    if release.warns_old_pebble_format() && configured < f.newest {
        logging::warn(
            "pebble",
            &format!(
                "Pebble's format_major_version is set to {configured}, but newest version is {}.\n\n\
                 It is recommended to increase format_major_version and restart. If an error\n\
                 occurrs when increasing the number several versions at once, it may help to\n\
                 increase them one by one, restarting the daemon every time.\n",
                f.newest
            ),
        );
    }
    let quoted = format!("{:?}", folder.display().to_string());
    let refuse = |detail: String| Err(Error::PebbleOpen { detail });
    let stored = store_format(folder);
    match stored {
        Some(1) if f.oldest > 1 && !has_marker(folder) => {
            return refuse(if release.pebble_legacy_v1_check() {
                format!("pebble: database {quoted} was written in format major version 1, which is no longer supported")
            } else {
                format!("pebble: database {quoted} written in format major version 1 which is no longer supported")
            });
        }
        Some(s) if s < f.oldest => {
            return refuse(format!(
                "pebble: database {quoted} written in format major version {s} which is no longer supported"
            ));
        }
        Some(s) if s > f.newest && f.is_v2() => {
            return refuse(format!(
                "pebble: database {quoted} written in unknown format major version {s}"
            ));
        }
        Some(s) if s > f.newest => {
            return refuse(format!(
                "pebble: database {quoted} written in format major version {s}"
            ));
        }
        _ => {}
    }
    fs::create_dir_all(folder).map_err(Error::io(folder))?;
    if stored.is_none() && !f.is_v2() {
        // pebble v1 stores keep a `CURRENT` file (v2 ones only the manifest marker).
        touch(&folder.join(CURRENT))?;
    }
    let format = stored.map_or(configured, |s| s.max(configured));
    let mut number = next_number(folder);
    if format > 1 && Some(format) != stored {
        replace(
            folder,
            MARKER,
            &format!("{MARKER}{number:06}.{format:03}"),
            "",
        )?;
        number += 1;
    }
    let options = format!(
        "[Version]\n  pebble_version=0.1\n\n[Options]\n  format_major_version={configured}\n"
    );
    replace(folder, OPTIONS, &format!("{OPTIONS}{number:06}"), &options)
}

fn names(folder: &Path) -> Vec<String> {
    fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn has_marker(folder: &Path) -> bool {
    names(folder).iter().any(|n| n.starts_with(MARKER))
}

/// One more than the highest file number of the store's OPTIONS files and markers.
fn next_number(folder: &Path) -> u64 {
    names(folder)
        .iter()
        .filter_map(|n| {
            n.strip_prefix(OPTIONS)
                .or_else(|| n.strip_prefix(MARKER)?.split('.').next())?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(2)
        + 1
}

/// Writes `name` with `text` and removes the older files starting with `prefix`.
fn replace(folder: &Path, prefix: &str, name: &str, text: &str) -> Result<()> {
    let path = folder.join(name);
    fs::write(&path, text).map_err(Error::io(&path))?;
    for old in names(folder) {
        if old.starts_with(prefix) && old != name {
            let old = folder.join(old);
            fs::remove_file(&old).map_err(Error::io(&old))?;
        }
    }
    Ok(())
}

fn touch(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    fs::write(path, "MANIFEST-000001\n").map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(v: &str) -> Release {
        Release::modelled(v).unwrap()
    }

    fn options_format(folder: &Path) -> Option<u32> {
        let newest = names(folder)
            .into_iter()
            .filter(|n| n.starts_with(OPTIONS))
            .max()?;
        let text = fs::read_to_string(folder.join(newest)).ok()?;
        text.split_once("format_major_version=")?
            .1
            .trim()
            .parse()
            .ok()
    }

    #[test]
    fn config_bounds_are_each_release_s_own() {
        let msg = |v: &str, f: u32| check_config(&rel(v), f).map_err(|e| e.to_string());
        assert_eq!(
            msg("1.1.6", 1).unwrap_err(),
            "FormatMajorVersion (1) must be between 13 and 24"
        );
        assert_eq!(
            msg("1.1.3", 20).unwrap_err(),
            "FormatMajorVersion (20) must be between 13 and 19"
        );
        assert_eq!(
            msg("1.0.8", 99).unwrap_err(),
            "FormatMajorVersion (99) must be <= 16"
        );
        assert_eq!(
            msg("1.0.5", 13).unwrap_err(),
            "FormatMajorVersion (13) must be <= 12"
        );
        assert!(msg("1.0.5", 1).is_ok());
        assert!(msg("1.1.2", 1).is_ok());
        assert!(msg("1.1.6", 13).is_ok());
        assert!(
            check_config(&rel("0.14.5"), 1).is_err(),
            "no pebble before 1.0.5"
        );
    }

    #[test]
    fn a_format_1_store_is_refused_by_pebble_v2_and_raised_by_a_higher_config() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("pebble");
        // 1.0.5 makes a format-1 store: CURRENT, no marker, OPTIONS at 1.
        open(&rel("1.0.5"), &store, 1).unwrap();
        assert_eq!(store_format(&store), Some(1));
        assert_eq!(options_format(&store), Some(1));
        let refused = open(&rel("1.1.6"), &store, 13).unwrap_err().to_string();
        assert_eq!(
            refused,
            format!("failed to open pebble database: pebble: database \"{}\" was written in format major version 1, which is no longer supported", store.display())
        );
        let older_text = open(&rel("1.1.3"), &store, 13).unwrap_err().to_string();
        assert!(
            older_text.ends_with("written in format major version 1 which is no longer supported"),
            "{older_text}"
        );
        // 1.0.8 with the config raised to 13 rewrites it; then 1.1.6 opens it.
        open(&rel("1.0.8"), &store, 13).unwrap();
        assert_eq!(store_format(&store), Some(13));
        assert_eq!(options_format(&store), Some(13));
        open(&rel("1.1.6"), &store, 13).unwrap();
        assert_eq!(store_format(&store), Some(13));
        // A lower configured format never lowers the store; OPTIONS says what was configured.
        open(&rel("1.0.8"), &store, 1).unwrap();
        assert_eq!(store_format(&store), Some(13));
        assert_eq!(options_format(&store), Some(1));
        let options = names(&store)
            .into_iter()
            .filter(|n| n.starts_with(OPTIONS))
            .count();
        assert_eq!(options, 1, "older OPTIONS files are removed");
    }

    #[test]
    fn a_store_newer_than_the_release_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("pebble");
        open(&rel("1.1.6"), &store, 24).unwrap();
        assert_eq!(store_format(&store), Some(24));
        assert!(
            !store.join(CURRENT).exists(),
            "pebble v2 stores have no CURRENT"
        );
        let refused = open(&rel("1.0.8"), &store, 16).unwrap_err().to_string();
        assert!(
            refused.ends_with("written in format major version 24"),
            "{refused}"
        );
        let refused = open(&rel("1.1.3"), &store, 19).unwrap_err().to_string();
        assert!(
            refused.contains("unknown format major version 24"),
            "{refused}"
        );
    }
}
