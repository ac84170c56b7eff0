//! Whether a run may go on from its journal: the cluster must still be as the run left it, not
//! changed by someone else meanwhile. Pure.

use crate::facts::HostFacts;
use crate::inventory::Version;

/// Before resuming, every host must have installed either the version it had when the plan was
/// made (its steps may not have reached it yet), or one of the `versions` the run installs
/// (source, intermediate releases, target). Anything else means the hosts were changed by hand
/// (or another tool) since: the journal's record of what is done no longer describes them.
pub fn resume_problems(
    planned: &[HostFacts],
    versions: &[Version],
    now: &[HostFacts],
) -> Vec<String> {
    let expected = |versions: &[Version]| {
        versions
            .iter()
            .map(Version::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    now.iter()
        .filter_map(|host| {
            let before = planned
                .iter()
                .find(|p| p.host == host.host)
                .and_then(|p| p.service_version);
            let mut allowed: Vec<Version> = versions.to_vec();
            allowed.extend(before);
            match host.service_version {
                Some(version) if allowed.contains(&version) => None,
                None if before.is_none() => None,
                Some(version) => Some(format!(
                    "{} runs {version}, which is none of {} (the plan's versions and its own before the run)",
                    host.host,
                    expected(&allowed)
                )),
                None => Some(format!(
                    "{}: ipfs-cluster-service did not report its version (it reported {} when the plan was made)",
                    host.host,
                    expected(&allowed[allowed.len() - 1..])
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn host(name: &str, version: Option<&str>) -> HostFacts {
        HostFacts {
            host: name.into(),
            service_version: version.map(v),
            ..HostFacts::default()
        }
    }

    #[test]
    fn hosts_on_the_source_the_target_or_their_own_version_may_resume() {
        let planned = [
            host("a", Some("0.9.0")),
            host("b", Some("0.8.0")),
            host("c", None),
        ];
        let now = [
            host("a", Some("0.10.1")),
            host("b", Some("0.8.0")),
            host("c", None),
        ];
        assert!(resume_problems(&planned, &[v("0.9.0"), v("0.10.1")], &now).is_empty());
        let now = [
            host("a", Some("0.9.0")),
            host("b", Some("0.10.1")),
            host("c", Some("0.10.1")),
        ];
        assert!(resume_problems(&planned, &[v("0.9.0"), v("0.10.1")], &now).is_empty());
    }

    #[test]
    fn a_version_installed_by_hand_or_a_vanished_binary_refuses() {
        let planned = [host("a", Some("0.9.0")), host("b", Some("0.9.0"))];
        let now = [host("a", Some("1.1.4")), host("b", None)];
        let problems = resume_problems(&planned, &[v("0.9.0"), v("0.10.1")], &now);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("a runs 1.1.4, which is none of 0.9.0, 0.10.1"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].starts_with(
                "b: ipfs-cluster-service did not report its version (it reported 0.9.0"
            ),
            "{}",
            problems[1]
        );
    }
}
