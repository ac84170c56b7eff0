//! The plan: the procedure choice and the rendered steps. Pure, no I/O.

mod build;
mod choice;
mod container;
mod converge;
mod file;
mod health;
mod model;
mod pebble;
mod protocol;
mod resume;
mod seal;
mod stages;
mod stale;
mod upgrade;

pub use build::{
    build_plan, current_context, pins_context, render_steps, PlanError, PlanInputs, PlanOrigin,
    PlanParts, PlanSteps, Playbooks, MIGRATION_DOWNTIME, RECOVERY_DOWNTIME, ROLLING_DOWNTIME,
};
pub use choice::{choose, Choice, ProcedureKind, Refusal};
pub use container::{check_containers, container_context};
pub use converge::{
    convergence_patience, gap_problems, lag, pinset_gaps, resync_choice, settled_pins, CatchUp,
    Lag, NoResync, Resync, ResyncInputs, IN_FLIGHT,
};
pub use health::{
    converged_problems, drift_problems, final_gate_problems, health_problems, membership_problems,
    pinset_drift_problems, pinset_problem, settling, views_flicker, WholeViews,
};
pub use model::{ClusterId, HostReach, Plan, PlannedStep, Reach, PLAN_FORMAT};
pub use pebble::{pebble_plan, raise_to as pebble_raise_to, PebblePlan, PebbleProblem, PEBBLE_V2};
pub use protocol::{mixed_versions_problem, protocol_of};
pub use resume::{resume_problems, review_resume, MissingBackup, Reset, ResumeReview};
pub use seal::{unseal, PlanFileError, SealError, SealingWriter};
pub use stages::build_staged_plan;
pub use stale::stale_changes;
pub use upgrade::{plan_upgrade, Planned};
