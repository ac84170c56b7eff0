//! Upgrades that cannot be done in one step (0.9 → 1.x: only 0.10 migrates the old raft state
//! format; 1.0.5 – 1.0.7 pebble stores into ≥ 1.1.3: only 1.0.8 – 1.1.2 can raise them): one plan made of consecutive stages, each a whole procedure ending in its own
//! health gate, the next planned from the facts the previous one leaves. Pure.

use super::build::{build_stage, PlanError, PlanInputs};
use super::model::{Plan, PlannedStep};
use crate::facts::HostFacts;
use crate::inventory::{Inventory, Version};
use crate::procedure::{RunContext, StepId};

/// Plans `inputs` through `intermediate` (an inventory identical but for its target release);
/// `why` says why the upgrade cannot be done in one step.
pub fn build_staged_plan(
    inputs: PlanInputs<'_>,
    intermediate: &Inventory,
    why: &str,
) -> Result<Plan, PlanError> {
    let hop = intermediate.cluster.target_version;
    let run_id = &inputs.origin.run_id;
    let first_run = RunContext::stage_run_id(run_id.as_str(), hop);
    let first = build_stage(
        PlanInputs {
            inventory: intermediate,
            ..inputs
        },
        &first_run,
    )?;
    let predicted = facts_after(inputs.facts, hop);
    let second_run =
        RunContext::stage_run_id(run_id.as_str(), inputs.inventory.cluster.target_version);
    let second = build_stage(
        PlanInputs {
            facts: &predicted,
            ..inputs
        },
        &second_run,
    )?;

    let mut choice = first.choice.clone();
    choice.to = second.choice.to;
    choice.via = vec![hop];
    choice.reasons.insert(
        0,
        format!(
            "{} → {} goes through {hop}: {why}; stage 1 upgrades to {hop} ({}), stage 2 to {} ({})",
            first.choice.from,
            second.choice.to,
            first.choice.procedure,
            second.choice.to,
            second.choice.procedure,
        ),
    );
    choice.reasons.extend(
        second
            .choice
            .reasons
            .iter()
            .map(|r| format!("stage 2: {r}")),
    );
    choice
        .warnings
        .extend(second.choice.warnings.iter().cloned());
    let mut steps = stage(first.steps, 1, hop);
    steps.extend(stage(second.steps, 2, second.choice.to));
    let mut backups = first.backups;
    backups.extend(second.backups.into_iter().map(|b| format!("stage 2: {b}")));
    // Only the last stage's pinsets are checked at the end of the run, so only its
    // on-demand steps (a resync, for a rolling stage) can be asked for.
    Ok(Plan {
        choice,
        steps,
        on_demand: stage(second.on_demand, 2, second.choice.to),
        backups,
        expected_downtime: format!(
            "stage 1: {}; stage 2: {}",
            first.expected_downtime, second.expected_downtime
        ),
        ..first
    })
}

/// The facts the first stage leaves: every peer on `version`, same peers and pins.
fn facts_after(facts: &[HostFacts], version: Version) -> Vec<HostFacts> {
    facts
        .iter()
        .map(|host| HostFacts {
            service_version: Some(version),
            state_format: version.state_format(),
            rpc_protocol: Some(version.rpc_protocol()),
            ..host.clone()
        })
        .collect()
}

/// Step IDs and names of one stage, prefixed so that the journal tells the stages apart.
fn stage(steps: Vec<PlannedStep>, number: usize, version: Version) -> Vec<PlannedStep> {
    steps
        .into_iter()
        .map(|mut step| {
            let id = format!("stage{number}-{}", step.id);
            let step_id: StepId = id.parse().expect("a prefixed step ID is still valid");
            let name = format!("[{version}] {}", step.name);
            for host in &mut step.hosts {
                host.id = step_id.clone();
                host.name = name.clone();
            }
            step.id = step_id;
            step.name = name;
            step
        })
        .collect()
}
