//! Whether a saved plan still describes the cluster: the facts' fingerprint, and what changed,
//! host by host, in words. Pure.

use crate::facts::{HostFacts, Pinset};
use crate::inventory::Version;

use super::model::Plan;

/// What changed between the plan's facts and the cluster now; empty when nothing did.
pub fn stale_changes(plan: &Plan, now: &[HostFacts]) -> Vec<String> {
    if Plan::fingerprint(now) == plan.facts_fingerprint {
        return Vec::new();
    }
    let changes = differences(&plan.facts, now);
    if changes.is_empty() {
        vec!["the set of hosts".to_string()]
    } else {
        changes
    }
}

/// What changed between two fact sets, host by host, in words.
fn differences(before: &[HostFacts], now: &[HostFacts]) -> Vec<String> {
    let mut changes = Vec::new();
    for (old, new) in before.iter().zip(now) {
        let mut fields = Vec::new();
        if old.unreachable != new.unreachable {
            fields.push("reachability".to_string());
        }
        if old.service_version != new.service_version {
            fields.push(format!(
                "version {} → {}",
                version_text(old.service_version),
                version_text(new.service_version)
            ));
        }
        if old.running != new.running {
            fields.push(format!("running {} → {}", old.running, new.running));
        }
        if old.peerset != new.peerset {
            fields.push("peerset".to_string());
        }
        if old.pins != new.pins {
            fields.push(format!("pins {} → {}", count(&old.pins), count(&new.pins)));
        }
        if fields.is_empty()
            && Plan::fingerprint(std::slice::from_ref(old))
                != Plan::fingerprint(std::slice::from_ref(new))
        {
            fields.push("other facts".to_string());
        }
        if !fields.is_empty() {
            changes.push(format!("{}: {}", old.host, fields.join(", ")));
        }
    }
    changes
}

fn count(pins: &Option<Pinset>) -> String {
    pins.as_ref()
        .map_or("?".to_string(), |p| p.count.to_string())
}

/// A version for messages: `0.9.0`, or `an unknown version`.
fn version_text(version: Option<Version>) -> String {
    version.map_or_else(|| "an unknown version".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_version_or_pinset_is_named_per_host() {
        let host = |name: &str, version: &str, pins: &[&str]| HostFacts {
            host: name.into(),
            service_version: Some(version.parse().unwrap()),
            running: true,
            pins: Some(Pinset::from_cids(pins.iter().map(|p| p.to_string()))),
            ..HostFacts::default()
        };
        let before = [host("h1", "0.9.0", &["QmA"]), host("h2", "0.9.0", &["QmA"])];
        let now = [host("h1", "0.10.1", &["QmA"]), host("h2", "0.9.0", &[])];
        assert_eq!(
            differences(&before, &now),
            ["h1: version 0.9.0 → 0.10.1", "h2: pins 1 → 0"]
        );
        assert!(differences(&before, &before).is_empty());
    }
}
