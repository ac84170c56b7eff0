//! Whether a run may go on from its journal: the cluster must still be as the run left it, not
//! changed by someone else meanwhile. Pure.

use crate::facts::HostFacts;
use crate::inventory::{HostName, Version};
use crate::journal::{Checkpoint, HostStepState};
use crate::procedure::{PeerState, StepId};

use super::model::Plan;

/// A state export the run saved on the controller that is no longer there as saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBackup {
    pub host: HostName,
    pub file: String,
    /// `missing`, or `changed since it was saved`.
    pub why: String,
}

/// What a resumed run must do, or cannot, before going on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResumeReview {
    /// The hosts are not as the journal says: the run must not go on.
    pub problems: Vec<String>,
    /// Hosts whose peer a finished step started but that does not answer yet: worth a short
    /// wait (it may still be starting) before they count as problems.
    pub settling: Vec<String>,
    /// Finished steps to run again (their backup is gone, and nothing destructive ran on the
    /// host since).
    pub resets: Vec<Reset>,
}

/// A step the journal says finished on a host, that a resumed run takes again, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub step: StepId,
    pub host: HostName,
    pub reason: String,
}

/// Reviews a resume: what the finished steps established (`establishes:` — peer stopped or
/// running, the target installed) must still hold on every host, unless a later step that
/// changes it is in flight or failed there (then either is possible); a state export missing
/// from the controller is taken again when no destructive step has started on its host, and
/// stops the run otherwise.
pub fn review_resume(
    plan: &Plan,
    checkpoint: &Checkpoint,
    now: &[HostFacts],
    missing: &[MissingBackup],
) -> ResumeReview {
    let mut review = ResumeReview::default();
    for host in now {
        let name = &host.host;
        if !host.is_reachable() {
            continue;
        }
        let mut peer: Option<(PeerState, &StepId)> = None;
        let mut installed: Option<(Version, &StepId)> = None;
        // On-demand steps run after the regular ones; on a host not picked for them they are
        // pending, which changes nothing.
        for step in plan.steps.iter().chain(&plan.on_demand) {
            for rendered in step.hosts.iter().filter(|h| h.host == *name) {
                let Some(established) = rendered.establishes else {
                    continue;
                };
                match checkpoint.state(&step.id, name) {
                    HostStepState::Finished { .. } => {
                        if let Some(state) = established.peer {
                            peer = Some((state, &step.id));
                        }
                        if let Some(version) = established.installed {
                            installed = Some((version, &step.id));
                        }
                    }
                    HostStepState::InFlight { .. } | HostStepState::Failed { .. } => {
                        if established.peer.is_some() {
                            peer = None;
                        }
                        if established.installed.is_some() {
                            installed = None;
                        }
                    }
                    HostStepState::Pending => {}
                }
            }
        }
        match peer {
            Some((PeerState::Stopped, step)) if host.running => review.problems.push(format!(
                "{name}: `{step}` stopped its peer, but it is running now (started by hand?); stop it again, or abandon the run (`cluster-upgrade runs abandon {}`)",
                plan.run_id
            )),
            Some((PeerState::Running, _)) if !host.running => {
                review.settling.push(name.to_string())
            }
            _ => {}
        }
        if let Some((version, step)) = installed {
            if host.service_version != Some(version) {
                review.problems.push(format!(
                    "{name}: `{step}` installed {version}, but the host has {} now",
                    host.service_version
                        .map_or_else(|| "no readable release".to_string(), |v| v.to_string())
                ));
            }
        }
    }
    for backup in missing {
        review_backup(plan, checkpoint, backup, &mut review);
    }
    review
}

/// A missing backup: taken again if nothing destructive ran on its host since; a problem if a
/// destructive step started there and another is still to run; a non-issue once everything
/// destructive is done.
fn review_backup(
    plan: &Plan,
    checkpoint: &Checkpoint,
    backup: &MissingBackup,
    review: &mut ResumeReview,
) {
    let host = &backup.host;
    let producer = plan.steps.iter().find(|step| {
        step.hosts
            .iter()
            .any(|h| h.host == *host && h.backup.as_deref() == Some(&backup.file))
    });
    let destructive: Vec<HostStepState> = plan
        .steps
        .iter()
        .filter(|step| step.destructive && step.hosts.iter().any(|h| h.host == *host))
        .map(|step| checkpoint.state(&step.id, host))
        .collect();
    let started = destructive.iter().any(|s| *s != HostStepState::Pending);
    let left = destructive
        .iter()
        .any(|s| !matches!(s, HostStepState::Finished { .. }));
    match producer {
        Some(step) if !started => review.resets.push(Reset {
            step: step.id.clone(),
            host: host.clone(),
            reason: format!("its state export {} is {}", backup.file, backup.why),
        }),
        _ if left => review.problems.push(format!(
            "{host}: the run's state export {} is {} on the controller, and a destructive step already ran on {host}, so it cannot be taken again with the old release; put the file back into the run's backups/ folder, or abandon the run",
            backup.file, backup.why
        )),
        _ => {}
    }
}

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
