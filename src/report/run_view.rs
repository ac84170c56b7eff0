//! The state of a run, per host and per step: done / failed / in flight / pending, with the
//! failure's stderr tail (`status`, and the summary at the end of `apply`).

use std::fmt::Write;

use super::table;
use crate::inventory::HostName;
use crate::journal::{Checkpoint, HostStepState, StepTimes};
use crate::message::HostNames;
use crate::plan::Plan;
use crate::procedure::StepId;

/// Up to this many hosts get a column each; beyond, a step's hosts are counted by state.
const HOST_COLUMNS_UP_TO: usize = 10;

/// One failed (step, host), as the journal has it.
struct Failure {
    step: String,
    host: String,
    error: String,
    stderr_tail: String,
}

/// The run's state: for a few hosts, a table with one row per step and one column per host,
/// then every failure's details; for more, one row per step with its hosts counted by state,
/// then the failures grouped by step and error.
pub fn render_run(run_id: &str, plan: &Plan, journal: Journalled<'_>) -> String {
    let checkpoint = journal.checkpoint;
    let hosts: Vec<&HostName> = plan.facts.iter().map(|f| &f.host).collect();
    let columns = hosts.len() <= HOST_COLUMNS_UP_TO;
    let mut failures = Vec::new();
    let table = if columns {
        host_columns(plan, &hosts, journal, &mut failures)
    } else {
        step_counts(plan, journal, &mut failures)
    };
    let state = run_state(checkpoint, !failures.is_empty());
    let undoing =
        (plan.choice.undoes.as_ref()).map_or(String::new(), |undone| format!(" of run {undone}"));
    let mut out = format!(
        "Run {run_id}: {} procedure{undoing}, {} → {}, {state} (ran {})\n\n",
        plan.choice.procedure,
        plan.choice.from,
        plan.choice.to,
        took(journal.times.run)
    );
    out.push_str(&table);
    if columns {
        for failure in &failures {
            let _ = writeln!(
                out,
                "\n{} failed on {}: {}",
                failure.step, failure.host, failure.error
            );
            tail(&mut out, &failure.stderr_tail);
        }
    } else {
        for (first, hosts) in grouped(&failures) {
            let _ = writeln!(
                out,
                "\n{} failed on {}: {} (stderr of {}:)",
                first.step,
                HostNames(&hosts),
                first.error,
                first.host
            );
            tail(&mut out, &first.stderr_tail);
        }
    }
    if let Some(reason) = &checkpoint.last_stop {
        if !checkpoint.finished {
            let _ = writeln!(out, "\nLast stop: {reason}");
        }
    }
    out
}

/// What the journal says of a run: where each step is, and how long each took.
#[derive(Debug, Clone, Copy)]
pub struct Journalled<'a> {
    pub checkpoint: &'a Checkpoint,
    pub times: &'a StepTimes,
}

/// `0.4s`, `12s`, `3m05s`, `1h02m`.
pub fn took(duration: std::time::Duration) -> String {
    let ms = duration.as_millis();
    let secs = duration.as_secs();
    match secs {
        0..=9 => format!("{}.{}s", secs, (ms % 1000) / 100),
        10..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

fn run_state(checkpoint: &Checkpoint, failed: bool) -> &'static str {
    if checkpoint.finished {
        "finished"
    } else if checkpoint.abandoned {
        "abandoned"
    } else if !failed && checkpoint.is_fresh() {
        "not started"
    } else if !failed {
        "unfinished"
    } else {
        "failed"
    }
}

/// The run as JSON (`status --json`): its state, and every step's state on every host it runs
/// on (with the error and stderr tail of a failure).
pub fn run_json(run_id: &str, plan: &Plan, checkpoint: &Checkpoint) -> serde_json::Value {
    let mut failed = false;
    let steps: Vec<serde_json::Value> = rows_of(plan, checkpoint)
        .into_iter()
        .map(|(id, hosts)| {
            let hosts: Vec<serde_json::Value> = hosts
                .into_iter()
                .map(|host| {
                    let mut entry = serde_json::json!({"host": host.as_str()});
                    let (state, attempt) = match checkpoint.state(id, host) {
                        HostStepState::Pending => ("pending", None),
                        HostStepState::InFlight { attempt } => ("in_flight", Some(attempt)),
                        HostStepState::Finished { by_check: false } => ("done", None),
                        HostStepState::Finished { by_check: true } => ("done_by_check", None),
                        HostStepState::Failed {
                            attempt,
                            error,
                            stderr_tail,
                        } => {
                            failed = true;
                            entry["error"] = error.into();
                            entry["stderr_tail"] = stderr_tail.into();
                            ("failed", Some(attempt))
                        }
                    };
                    entry["state"] = state.into();
                    if let Some(attempt) = attempt {
                        entry["attempt"] = attempt.into();
                    }
                    entry
                })
                .collect();
            serde_json::json!({"id": id.as_str(), "hosts": hosts})
        })
        .collect();
    serde_json::json!({
        "schema": 1,
        "run_id": run_id,
        "cluster": plan.cluster,
        "procedure": plan.choice.procedure.name(),
        "undoes": plan.choice.undoes.as_ref().map(|run| run.as_str()),
        "from": plan.choice.from.to_string(),
        "to": plan.choice.to.to_string(),
        "state": run_state(checkpoint, failed),
        "last_stop": checkpoint.last_stop,
        "steps": steps,
    })
}

fn tail(out: &mut String, stderr_tail: &str) {
    for line in stderr_tail.lines() {
        let _ = writeln!(out, "  | {line}");
    }
}

/// The state of `host` in `step`, and the failure if it failed.
fn state_of(
    step: &StepId,
    host: &HostName,
    checkpoint: &Checkpoint,
) -> (HostStepState, Option<Failure>) {
    let state = checkpoint.state(step, host);
    let failure = match &state {
        HostStepState::Failed {
            error, stderr_tail, ..
        } => Some(Failure {
            step: step.to_string(),
            host: host.to_string(),
            error: error.clone(),
            stderr_tail: stderr_tail.clone(),
        }),
        _ => None,
    };
    (state, failure)
}

fn host_columns(
    plan: &Plan,
    hosts: &[&HostName],
    journal: Journalled<'_>,
    failures: &mut Vec<Failure>,
) -> String {
    let checkpoint = journal.checkpoint;
    let mut header = vec!["STEP"];
    header.extend(hosts.iter().map(|h| h.as_str()));
    header.push("TIME");
    let mut rows = Vec::new();
    for (id, step_hosts) in rows_of(plan, checkpoint) {
        let mut row = vec![id.to_string()];
        for host in hosts {
            let cell = if step_hosts.contains(host) {
                let (state, failure) = state_of(id, host, checkpoint);
                failures.extend(failure);
                match state {
                    HostStepState::Pending => "pending",
                    HostStepState::InFlight { .. } => "in flight",
                    HostStepState::Finished { by_check: false } => "done",
                    HostStepState::Finished { by_check: true } => "done (check)",
                    HostStepState::Failed { .. } => "FAILED",
                }
            } else {
                "-"
            };
            row.push(cell.to_string());
        }
        row.push(journal.times.step(id).map_or_else(|| "-".to_string(), took));
        rows.push(row);
    }
    table::render(&header, &rows)
}

fn step_counts(plan: &Plan, journal: Journalled<'_>, failures: &mut Vec<Failure>) -> String {
    let checkpoint = journal.checkpoint;
    let header = [
        "STEP",
        "HOSTS",
        "DONE",
        "IN FLIGHT",
        "PENDING",
        "FAILED",
        "TIME",
    ];
    let mut rows = Vec::new();
    for (id, step_hosts) in rows_of(plan, checkpoint) {
        let mut counts = [0usize; 4];
        for host in &step_hosts {
            let (state, failure) = state_of(id, host, checkpoint);
            failures.extend(failure);
            counts[match state {
                HostStepState::Finished { .. } => 0,
                HostStepState::InFlight { .. } => 1,
                HostStepState::Pending => 2,
                HostStepState::Failed { .. } => 3,
            }] += 1;
        }
        let mut row = vec![id.to_string(), step_hosts.len().to_string()];
        row.extend(counts.iter().map(usize::to_string));
        row.push(journal.times.step(id).map_or_else(|| "-".to_string(), took));
        rows.push(row);
    }
    table::render(&header, &rows)
}

/// One row per step id, in plan order, with the hosts it runs on: the steps of a rolling group,
/// one per host in the plan, share a row. On-demand steps follow, with the hosts the run
/// picked for them (none: no row).
fn rows_of<'p>(plan: &'p Plan, checkpoint: &Checkpoint) -> Vec<(&'p StepId, Vec<&'p HostName>)> {
    let mut rows: Vec<(&StepId, Vec<&HostName>)> = Vec::new();
    let mut index: std::collections::HashMap<&StepId, usize> = std::collections::HashMap::new();
    let picked = |host: &HostName| checkpoint.on_demand.contains(host);
    let regular = plan.steps.iter().map(|step| (step, true));
    let on_demand = plan.on_demand.iter().map(|step| (step, false));
    for (step, always) in regular.chain(on_demand) {
        let hosts: Vec<&HostName> = step
            .hosts
            .iter()
            .map(|h| &h.host)
            .filter(|host| always || picked(host))
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let at = *index.entry(&step.id).or_insert_with(|| {
            rows.push((&step.id, Vec::new()));
            rows.len() - 1
        });
        rows[at].1.extend(hosts);
    }
    rows
}

/// Failures with the same step and error, in order of their first host: (first, all hosts).
fn grouped(failures: &[Failure]) -> Vec<(&Failure, Vec<&str>)> {
    let mut groups: Vec<(&Failure, Vec<&str>)> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    for failure in failures {
        let key = (failure.step.as_str(), failure.error.as_str());
        match index.get(&key) {
            Some(&at) => groups[at].1.push(failure.host.as_str()),
            None => {
                index.insert(key, groups.len());
                groups.push((failure, vec![failure.host.as_str()]));
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {

    #[test]
    fn durations_read_at_a_glance() {
        use std::time::Duration;
        assert_eq!(super::took(Duration::from_millis(420)), "0.4s");
        assert_eq!(super::took(Duration::from_millis(9_950)), "9.9s");
        assert_eq!(super::took(Duration::from_secs(42)), "42s");
        assert_eq!(super::took(Duration::from_secs(185)), "3m05s");
        assert_eq!(super::took(Duration::from_secs(3_720)), "1h02m");
    }

    use super::*;

    fn failure(step: &str, host: &str, error: &str) -> Failure {
        Failure {
            step: step.into(),
            host: host.into(),
            error: error.into(),
            stderr_tail: format!("tail of {host}"),
        }
    }

    #[test]
    fn failures_are_grouped_by_step_and_error_in_order() {
        let failures = [
            failure("stop", "h1", "exit 1"),
            failure("stop", "h2", "timeout"),
            failure("stop", "h3", "exit 1"),
            failure("start", "h1", "exit 1"),
            failure("stop", "h4", "exit 1"),
            failure("stop", "h5", "exit 1"),
        ];
        let groups: Vec<(String, Vec<&str>)> = grouped(&failures)
            .into_iter()
            .map(|(first, hosts)| {
                (
                    format!("{} {} {}", first.step, first.error, first.host),
                    hosts,
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("stop exit 1 h1".to_string(), vec!["h1", "h3", "h4", "h5"]),
                ("stop timeout h2".to_string(), vec!["h2"]),
                ("start exit 1 h1".to_string(), vec!["h1"]),
            ]
        );
    }
}
