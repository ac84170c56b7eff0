//! The plan: the procedure choice and the rendered steps. Pure, no I/O.

mod choice;
mod model;

pub use choice::{choose, Choice, ProcedureKind, Refusal};
pub use model::{HostStep, OnResume, Plan, PlannedStep, StepMode, Upload, WaitUntil, PLAN_FORMAT};
