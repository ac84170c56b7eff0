//! What a resume will do, shown before it asks: the cluster and the run, what is done, and
//! every step still to run with its hosts (destructive ones marked).

use std::fmt::Write;

use super::plan_view::host_list;
use crate::journal::{Checkpoint, HostStepState};
use crate::plan::{Plan, Reset};

/// The resume, as text.
pub fn render_resume(plan: &Plan, checkpoint: &Checkpoint, resets: &[Reset]) -> String {
    let choice = &plan.choice;
    let mut out = format!(
        "Resuming run {} of cluster `{}` ({}): {} procedure, {} → {}\n",
        plan.run_id,
        plan.cluster,
        plan.inventory.display(),
        choice.procedure,
        choice.from,
        choice.to
    );
    if let Some(stop) = &checkpoint.last_stop {
        let _ = writeln!(out, "It stopped: {stop}");
    }
    let mut done = Vec::new();
    let mut left = String::new();
    // A resync the run picked hosts for is part of what is left.
    let steps = plan.steps_run(&checkpoint.on_demand);
    for (index, step) in steps.iter().enumerate() {
        let pending: Vec<&str> = step
            .hosts
            .iter()
            .filter(|h| {
                !matches!(
                    checkpoint.state(&step.id, &h.host),
                    HostStepState::Finished { .. }
                )
            })
            .map(|h| h.host.as_str())
            .collect();
        if pending.is_empty() {
            done.push(step.id.as_str());
            continue;
        }
        let marker = if step.destructive {
            " [destructive]"
        } else {
            ""
        };
        let _ = writeln!(
            left,
            "{:>3}. {}{marker} ({})",
            index + 1,
            step.name,
            host_list(&pending, plan.facts.len())
        );
    }
    let _ = writeln!(
        out,
        "Done: {} of {} steps{}",
        done.len(),
        steps.len(),
        match (done.first(), done.last()) {
            (Some(first), Some(last)) if first == last => format!(" ({first})"),
            (Some(first), Some(last)) => format!(" ({first} … {last})"),
            _ => String::new(),
        }
    );
    for Reset { step, host, reason } in resets {
        let _ = writeln!(out, "Again: {step} on {host} ({reason})");
    }
    if left.is_empty() {
        out.push_str("Left: only the final check\n");
    } else {
        out.push_str("Left:\n");
        out.push_str(&left);
    }
    out
}
