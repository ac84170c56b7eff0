//! Planning an upgrade from start to end: one procedure, or two stages through an
//! intermediate release (0.9 → 1.x), or nothing to do when the cluster already runs its target
//! and is healthy. Pure but for `intermediate`, which looks the intermediate release up.

use super::build::{build_plan, PlanError, PlanInputs};
use super::choice::Refusal;
use super::health::converged_problems;
use super::model::Plan;
use super::pebble::PebbleProblem;
use super::stages::build_staged_plan;
use crate::inventory::{Inventory, Version};

/// What planning found: a plan, or a cluster already on its target and healthy.
#[derive(Debug)]
pub enum Planned {
    Plan(Box<Plan>),
    Converged { target: Version, hosts: usize },
}

/// Finds the newest release the release source offers among those a predicate accepts: the
/// inventory with that target.
pub type Intermediate<'a> = &'a dyn Fn(&dyn Fn(Version) -> bool) -> Option<Inventory>;

/// Plans the upgrade; a jump that needs an intermediate release is planned in two stages
/// through the release `intermediate` finds (the inventory with that target): 0.9 → 1.x
/// through 0.10 (raft state format), and into ≥ 1.1.3 from a pebble store its release cannot
/// raise (1.0.5 – 1.0.7) through a release that opens it and can raise it. Refused when it
/// finds none. A cluster already on its target is "converged" when healthy, refused otherwise.
pub fn plan_upgrade(
    inputs: PlanInputs<'_>,
    intermediate: Intermediate<'_>,
) -> Result<Planned, PlanError> {
    let planned = match build_plan(inputs) {
        Err(PlanError::Refused(Refusal::PebbleHazard(PebbleProblem::CannotRaise {
            host,
            format,
            target,
            needed,
            current,
        }))) => {
            let from = inputs.facts.iter().filter_map(|f| f.service_version).max();
            let can_raise = |v: Version| {
                from.is_some_and(|from| v > from)
                    && v < target
                    && v.pebble_formats()
                        .is_some_and(|f| f.oldest <= format && f.newest >= needed)
            };
            match intermediate(&can_raise) {
                Some(hop) => {
                    let why = format!(
                        "the pebble stores are in format {format}, which {target} cannot open, and {} cannot raise them to {needed}: {} can",
                        current.map_or_else(|| "their release".to_string(), |v| v.to_string()),
                        hop.cluster.target_version
                    );
                    build_staged_plan(inputs, &hop, &why)
                }
                None => Err(PlanError::Refused(Refusal::PebbleHazard(
                    PebbleProblem::CannotRaise {
                        host,
                        format,
                        target,
                        needed,
                        current,
                    },
                ))),
            }
        }
        Err(PlanError::Refused(Refusal::UnsupportedJump { from, to, format })) => {
            let raft_hop = |v: Version| v.major == 0 && v.minor == 10;
            match intermediate(&raft_hop) {
                Some(hop) => {
                    let why = format!(
                        "only 0.10 migrates raft state format {format} (0.11 removed `state upgrade`)"
                    );
                    build_staged_plan(inputs, &hop, &why)
                }
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
