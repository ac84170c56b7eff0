//! Room for what a run will write, checked before anything changes: the state exports it will
//! copy to the controller, and the release it will stage on each host.

use std::path::Path;

use crate::error::Error;
use crate::facts::{HostFacts, Pinset};
use crate::journal::{Checkpoint, HostStepState, StateDir};
use crate::message::HostNames;
use crate::plan::Plan;
use crate::procedure::StepId;

/// What one exported pin takes, generously (a 1.x export line with name, allocations and
/// metadata is a few hundred bytes).
const BYTES_PER_EXPORTED_PIN: u64 = 1024;
/// Per export, and for the run's plan, journal and log.
const SLACK_BYTES: u64 = 1 << 20;
/// A release whose size cannot be known here (fetched by each host from a URL): as large as
/// the largest real one (service and ctl of 1.1.6 take 114 MB), rounded up.
const UNKNOWN_RELEASE_BYTES: u64 = 256 << 20;
/// A release staged on a host takes its size three times there: staged, and the previous
/// binaries kept twice (`*.prev` and the run's backup folder).
const RELEASE_COPIES: u64 = 3;

/// Refuses a run that will not fit: on the controller (the state directory), and on any host
/// that still has a release to stage.
pub fn check_room(
    state: &StateDir,
    plan: &Plan,
    checkpoint: &Checkpoint,
    facts: &[HostFacts],
) -> Result<(), Error> {
    let needed = controller_bytes(plan, checkpoint);
    let available = available_bytes(&state.root)?;
    if available < needed {
        return Err(Error::NoRoom {
            problems: vec![format!(
                "the state directory {} has {} free, and this run needs about {} for its state exports, plan and journal",
                state.root.display(),
                size(available),
                size(needed)
            )],
            on_controller: true,
        });
    }
    let problems = host_problems(plan, checkpoint, facts);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::NoRoom {
            problems,
            on_controller: false,
        })
    }
}

/// The exports still to be taken: the pinset's size on every host with a backup step left.
fn controller_bytes(plan: &Plan, checkpoint: &Checkpoint) -> u64 {
    let pins = Pinset::expected(&plan.facts).map_or(0, |p| p.count as u64);
    let exports = plan
        .steps
        .iter()
        .flat_map(|step| step.hosts.iter().map(move |host| (step, host)))
        .filter(|(step, host)| {
            host.backup.is_some()
                && !matches!(
                    checkpoint.state(&step.id, &host.host),
                    HostStepState::Finished { .. }
                )
        })
        .count() as u64;
    exports * (pins * BYTES_PER_EXPORTED_PIN + SLACK_BYTES) + SLACK_BYTES
}

/// Hosts with a release still to install, without room for it next to `bin_dir`.
fn host_problems(plan: &Plan, checkpoint: &Checkpoint, facts: &[HostFacts]) -> Vec<String> {
    let mut short: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut needed_most = 0;
    for host in facts {
        let name = &host.host;
        let pending =
            |id: &StepId| !matches!(checkpoint.state(id, name), HostStepState::Finished { .. });
        let mut installs = false;
        let mut upload_bytes = 0;
        for step in &plan.steps {
            for rendered in step.hosts.iter().filter(|h| h.host == *name) {
                if !pending(&step.id) {
                    continue;
                }
                installs |= rendered.establishes.is_some_and(|e| e.installed.is_some());
                if let Some(upload) = &rendered.upload {
                    upload_bytes += std::fs::metadata(&upload.from).map_or(0, |m| m.len());
                }
            }
        }
        if !installs && upload_bytes == 0 {
            continue;
        }
        let release = if upload_bytes > 0 {
            upload_bytes
        } else {
            UNKNOWN_RELEASE_BYTES
        };
        let needed = release * RELEASE_COPIES;
        match host.free_kib {
            Some(free) if free.saturating_mul(1024) >= needed => {}
            Some(_) => {
                needed_most = needed_most.max(needed);
                short.push(format!(
                    "{name} ({} free)",
                    size(host.free_kib.unwrap_or(0) * 1024)
                ));
            }
            None => unknown.push(name.to_string()),
        }
    }
    let mut problems = Vec::new();
    if !short.is_empty() {
        problems.push(format!(
            "no room beside bin_dir for the release (about {} with the kept binaries) on {}",
            size(needed_most),
            short.join(", ")
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "the free space beside bin_dir could not be read on {} (`df -Pk` failed), so the release may not fit",
            HostNames(&unknown)
        ));
    }
    problems
}

/// Free bytes for this user on the file system of `dir`.
fn available_bytes(dir: &Path) -> Result<u64, Error> {
    let stat = rustix::fs::statvfs(dir).map_err(|error| crate::journal::JournalError::Io {
        path: dir.to_path_buf(),
        source: error.into(),
    })?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// `1.5 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::HostFacts;
    use crate::inventory::Version;
    use crate::procedure::Established;

    fn plan_installing_on(hosts: &[&str]) -> Plan {
        let step = |id: &str, establishes| crate::plan::PlannedStep {
            id: id.into(),
            name: id.into(),
            mode: crate::procedure::Mode::Parallel,
            destructive: false,
            on_resume: crate::procedure::OnResume::Rerun,
            takes_quorum: false,
            hosts: hosts
                .iter()
                .map(|h| crate::procedure::RenderedStep {
                    id: id.parse().unwrap(),
                    name: id.into(),
                    host: h.parse().unwrap(),
                    run_on: h.parse().unwrap(),
                    mode: crate::procedure::Mode::Parallel,
                    command: Some("true".into()),
                    upload: None,
                    check: None,
                    wait_until: None,
                    timeout: None,
                    retries: 0,
                    on_resume: crate::procedure::OnResume::Rerun,
                    destructive: false,
                    backup: None,
                    establishes,
                })
                .collect(),
        };
        let mut plan = Plan::for_tests(hosts, Vec::new());
        plan.steps = vec![
            step("fetch", None),
            step(
                "install",
                Some(Established {
                    peer: None,
                    installed: Some(Version::new(1, 1, 6)),
                }),
            ),
        ];
        plan
    }

    #[test]
    fn a_host_without_room_for_the_release_or_whose_room_is_unknown_is_named() {
        let plan = plan_installing_on(&["h1", "h2", "h3"]);
        let facts = |free: [Option<u64>; 3]| -> Vec<HostFacts> {
            ["h1", "h2", "h3"]
                .iter()
                .zip(free)
                .map(|(h, free_kib)| HostFacts {
                    host: h.parse().unwrap(),
                    free_kib,
                    ..HostFacts::default()
                })
                .collect()
        };
        let plenty = 4 << 20;
        assert!(host_problems(&plan, &Checkpoint::default(), &facts([Some(plenty); 3])).is_empty());
        let problems = host_problems(
            &plan,
            &Checkpoint::default(),
            &facts([Some(plenty), Some(1024), None]),
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("on h2 (1.0 MiB free)"), "{problems:?}");
        assert!(
            problems[0].contains("768.0 MiB"),
            "3 copies of an unknown-size release"
        );
        assert!(
            problems[1].contains("could not be read on h3"),
            "{problems:?}"
        );
        // Once the release is installed there, a host needs no more room.
        let done = Checkpoint::replay(&[
            crate::journal::Record::now(crate::journal::Event::StepStarted {
                step: "install".into(),
                host: "h2".into(),
                attempt: 1,
            }),
            crate::journal::Record::now(crate::journal::Event::StepFinished {
                step: "install".into(),
                host: "h2".into(),
                by_check: false,
            }),
        ]);
        let problems = host_problems(
            &plan,
            &done,
            &facts([Some(plenty), Some(1024), Some(plenty)]),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }
}
