//! Planning an upgrade from start to end: one procedure, or two stages through an
//! intermediate release (0.9 → 1.x), or nothing to do when the cluster already runs its target
//! and is healthy. Pure but for `intermediate`, which looks the intermediate release up.

use super::build::{build_plan, PlanError, PlanInputs};
use super::choice::Refusal;
use super::health::converged_problems;
use super::model::Plan;
use super::stages::build_staged_plan;
use crate::inventory::{Inventory, Version};

/// What planning found: a plan, or a cluster already on its target and healthy.
#[derive(Debug)]
pub enum Planned {
    Plan(Box<Plan>),
    Converged { target: Version, hosts: usize },
}

/// Plans the upgrade; a jump that needs an intermediate release (0.9 → 1.x) is planned in two
/// stages through the release `intermediate` finds (the inventory with that target), or
/// refused when it finds none. A cluster already on its target is "converged" when healthy,
/// refused otherwise.
pub fn plan_upgrade(
    inputs: PlanInputs<'_>,
    intermediate: impl FnOnce() -> Option<Inventory>,
) -> Result<Planned, PlanError> {
    let planned = match build_plan(inputs) {
        Err(PlanError::Refused(Refusal::UnsupportedJump { from, to, format })) => {
            match intermediate() {
                Some(hop) => build_staged_plan(inputs, &hop),
                None => Err(PlanError::Refused(Refusal::IntermediateMissing {
                    from,
                    to,
                    format,
                    looked_in: inputs.inventory.cluster.releases.describe(),
                })),
            }
        }
        Err(PlanError::Refused(Refusal::AlreadyAtTarget { target })) => {
            let problems = converged_problems(inputs.facts, target);
            if problems.is_empty() {
                return Ok(Planned::Converged {
                    target,
                    hosts: inputs.facts.len(),
                });
            }
            Err(PlanError::Refused(Refusal::AtTargetUnhealthy {
                target,
                problems,
            }))
        }
        other => other,
    };
    planned.map(|plan| Planned::Plan(Box::new(plan)))
}
