//! The plan: the procedure choice and the rendered steps. Pure, no I/O.

mod build;
mod choice;
mod file;
mod model;
mod resume;
mod stages;

pub use build::{build_plan, render_steps, PlanError, PlanInputs, Playbooks};
pub use choice::{choose, Choice, ProcedureKind, Refusal};
pub use model::{Plan, PlannedStep, PLAN_FORMAT};
pub use resume::resume_problems;
pub use stages::build_staged_plan;
