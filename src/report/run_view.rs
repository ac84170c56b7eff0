//! The state of a run, per host and per step: done / failed / in flight / pending, with the
//! failure's stderr tail (`status`, and the summary at the end of `apply`).

use std::fmt::Write;

use super::table;
use crate::journal::{Checkpoint, HostStepState};
use crate::plan::Plan;

/// A table with one row per step and one column per host, then every failure's details.
pub fn render_run(run_id: &str, plan: &Plan, checkpoint: &Checkpoint) -> String {
    let hosts: Vec<String> = plan.facts.iter().map(|f| f.host.clone()).collect();
    let mut header = vec!["STEP"];
    header.extend(hosts.iter().map(String::as_str));
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for step in &plan.steps {
        let mut row = vec![step.id.clone()];
        for host in &hosts {
            let cell = if step.hosts.iter().any(|h| h.host.as_str() == host) {
                match checkpoint.state(&step.id, host) {
                    HostStepState::Pending => "pending".to_string(),
                    HostStepState::InFlight { .. } => "in flight".to_string(),
                    HostStepState::Finished { by_check: false } => "done".to_string(),
                    HostStepState::Finished { by_check: true } => "done (check)".to_string(),
                    HostStepState::Failed {
                        error, stderr_tail, ..
                    } => {
                        failures.push((step.id.clone(), host.clone(), error, stderr_tail));
                        "FAILED".to_string()
                    }
                }
            } else {
                "-".to_string()
            };
            row.push(cell);
        }
        rows.push(row);
    }
    let state = if checkpoint.finished {
        "finished"
    } else if failures.is_empty() && checkpoint.is_fresh() {
        "not started"
    } else if failures.is_empty() {
        "unfinished"
    } else {
        "failed"
    };
    let mut out = format!(
        "Run {run_id}: {} procedure, {} → {}, {state}\n\n",
        plan.choice.procedure, plan.choice.from, plan.choice.to
    );
    out.push_str(&table::render(&header, &rows));
    for (step, host, error, stderr_tail) in failures {
        let _ = writeln!(out, "\n{step} failed on {host}: {error}");
        for line in stderr_tail.lines() {
            let _ = writeln!(out, "  | {line}");
        }
    }
    if let Some(reason) = &checkpoint.last_stop {
        if !checkpoint.finished {
            let _ = writeln!(out, "\nLast stop: {reason}");
        }
    }
    out
}
