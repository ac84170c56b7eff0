//! The pebble datastore hazard: from v1.1.3 IPFS Cluster links pebble v2, which neither opens a
//! store written in an old format ("written in format major version 1, which is no longer
//! supported") nor accepts an old `format_major_version` in `service.json` ("FormatMajorVersion
//! (1) must be between 13 and 24"; both seen with the real 1.1.6). Stores made before v1.0.8
//! use format 1. The fix the v1.1.0 notes give: raise `format_major_version` in `service.json`
//! and restart on the old release (pebble rewrites the store's format when it opens it; seen
//! with the real 1.0.8: its newest OPTIONS file and format marker then say 16), one peer at a
//! time, before moving to ≥ v1.1.3. Pure data and functions.

use crate::facts::HostFacts;
use crate::inventory::{HostName, PebbleFormats, Version};

/// The first release on pebble v2 (the higher minimum).
pub const PEBBLE_V2: Version = Version::new(1, 1, 3);

fn formats_of(version: Version) -> Option<PebbleFormats> {
    version.pebble_formats()
}

/// A pebble store the target cannot open as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub host: HostName,
    /// The store's format on disk (or the config's, when the store was not read).
    pub format: u32,
}

/// What the upgrade must do about pebble: nothing, raise the stores behind to `to` first (on
/// their current release), or refuse with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PebblePlan {
    Nothing,
    Raise { to: u32, hosts: Vec<Behind> },
}

/// The lower of a pebble peer's store format and its config's (the store's alone when the
/// config says nothing, and the other way round).
fn lowest_format(f: &HostFacts) -> Option<u32> {
    match (f.pebble_store_format, f.pebble_format) {
        (Some(store), Some(config)) => Some(store.min(config)),
        (store, config) => store.or(config),
    }
}

/// The format this peer's pebble store and config are raised to before `target` starts on it:
/// `Some` only for a pebble peer behind what `target` opens (what the `pebble-*` steps render
/// `current.pebble_raise_to` from; `pebble_plan` refuses what cannot be raised).
pub fn raise_to(f: &HostFacts, target: Version) -> Option<u32> {
    let needed = target.pebble_formats()?.oldest;
    let pebble = f.datastore.as_deref() == Some("pebble");
    (pebble && target >= PEBBLE_V2 && lowest_format(f)? < needed).then_some(needed)
}

/// Why pebble stores cannot be carried to the target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PebbleProblem {
    #[error("the pebble formats {target} opens are not known to this version of cluster-upgrade; its peers use pebble, whose stores {PEBBLE_V2} and later may refuse")]
    UnknownTarget { target: Version },
    #[error("{host} uses pebble, but neither its store's nor its config's format_major_version could be read")]
    Unread { host: HostName },
    #[error("{host}'s pebble store is in format {format}, which {target} cannot open (it needs {needed} or newer), and its release {} cannot raise it that far (or is not known to): upgrade to 1.0.8 first, which can (with a release from 1.0.8 to 1.1.2 in the release source, the plan goes through it)", current.map_or_else(|| "unknown".to_string(), |v| v.to_string()))]
    CannotRaise {
        host: HostName,
        format: u32,
        target: Version,
        needed: u32,
        current: Option<Version>,
    },
}

/// The pebble stores of `facts` that `target` could not open, and how to fix them.
pub fn pebble_plan(facts: &[HostFacts], target: Version) -> Result<PebblePlan, PebbleProblem> {
    let pebble: Vec<&HostFacts> = facts
        .iter()
        .filter(|f| f.datastore.as_deref() == Some("pebble"))
        .collect();
    if pebble.is_empty() || target < PEBBLE_V2 {
        return Ok(PebblePlan::Nothing);
    }
    let Some(needed) = formats_of(target) else {
        return Err(PebbleProblem::UnknownTarget { target });
    };
    let behind: Vec<Behind> = pebble
        .iter()
        .filter_map(|f| {
            let format = lowest_format(f)?;
            (format < needed.oldest).then(|| Behind {
                host: f.host.clone(),
                format,
            })
        })
        .collect();
    if let Some(unknown) = pebble
        .iter()
        .find(|f| f.pebble_store_format.is_none() && f.pebble_format.is_none())
    {
        return Err(PebbleProblem::Unread {
            host: unknown.host.clone(),
        });
    }
    if behind.is_empty() {
        return Ok(PebblePlan::Nothing);
    }
    for host in &behind {
        let current = facts
            .iter()
            .find(|f| f.host == host.host)
            .and_then(|f| f.service_version);
        let writes = current.and_then(formats_of).map(|f| f.newest);
        if writes.is_none_or(|newest| newest < needed.oldest) {
            return Err(PebbleProblem::CannotRaise {
                host: host.host.clone(),
                format: host.format,
                target,
                needed: needed.oldest,
                current,
            });
        }
    }
    Ok(PebblePlan::Raise {
        to: needed.oldest,
        hosts: behind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pebble_peer(
        name: &str,
        version: &str,
        store: Option<u32>,
        config: Option<u32>,
    ) -> HostFacts {
        HostFacts {
            host: name.into(),
            service_version: Some(version.parse().unwrap()),
            datastore: Some("pebble".into()),
            pebble_store_format: store,
            pebble_format: config,
            ..HostFacts::default()
        }
    }

    const TO: Version = Version::new(1, 1, 6);

    #[test]
    fn stores_the_target_opens_need_nothing() {
        let facts = [pebble_peer("h1", "1.0.8", Some(16), Some(16))];
        assert_eq!(pebble_plan(&facts, TO), Ok(PebblePlan::Nothing));
        let old_store = [pebble_peer("h1", "1.0.8", Some(1), Some(1))];
        assert_eq!(
            pebble_plan(&old_store, Version::new(1, 0, 8)),
            Ok(PebblePlan::Nothing),
            "before pebble v2 nothing changes"
        );
    }

    #[test]
    fn a_store_in_format_1_is_raised_to_the_target_minimum_first() {
        let facts = [
            pebble_peer("h1", "1.0.8", Some(1), Some(1)),
            pebble_peer("h2", "1.0.8", Some(16), Some(16)),
            // The config was raised by hand, the store never reopened: still behind.
            pebble_peer("h3", "1.0.8", Some(1), Some(16)),
        ];
        let Ok(PebblePlan::Raise { to, hosts }) = pebble_plan(&facts, TO) else {
            panic!("{:?}", pebble_plan(&facts, TO));
        };
        assert_eq!(to, 13);
        let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["h1", "h3"]);
        let raised: Vec<Option<u32>> = facts.iter().map(|f| raise_to(f, TO)).collect();
        assert_eq!(raised, [Some(13), None, Some(13)], "the steps' view agrees");
        // A config already at the target's minimum and no store read: nothing to raise.
        let config_only = pebble_peer("h1", "1.0.8", None, Some(13));
        assert_eq!(raise_to(&config_only, TO), None);
        assert_eq!(pebble_plan(&[config_only], TO), Ok(PebblePlan::Nothing));
    }

    #[test]
    fn a_release_that_cannot_raise_the_store_or_unknown_formats_are_refused() {
        let facts = [pebble_peer("h1", "1.0.6", Some(1), Some(1))];
        let refused = pebble_plan(&facts, TO).unwrap_err().to_string();
        assert!(refused.contains("upgrade to 1.0.8 first"), "{refused}");
        let unread = [pebble_peer("h1", "1.0.8", None, None)];
        assert!(matches!(
            pebble_plan(&unread, TO),
            Err(PebbleProblem::Unread { .. })
        ));
        let unknown_target = [pebble_peer("h1", "1.0.8", Some(16), Some(16))];
        assert!(matches!(
            pebble_plan(&unknown_target, Version::new(1, 2, 0)),
            Err(PebbleProblem::UnknownTarget { .. })
        ));
    }
}
