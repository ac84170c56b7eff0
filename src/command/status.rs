//! `cluster-upgrade status`: the current or last run, per host and step.

use std::path::PathBuf;

use crate::cli::StatusArgs;
use crate::error::Error;
use crate::journal::{Checkpoint, StateDir};
use crate::report;

use super::run::read_plan;

pub fn status(args: &StatusArgs) -> Result<(), Error> {
    let state = match (&args.state_dir, &args.inventory) {
        (Some(dir), _) => StateDir { root: dir.clone() },
        (None, Some(inventory)) => StateDir::for_inventory(inventory, None),
        (None, None) => StateDir {
            root: PathBuf::from(".cluster-upgrade"),
        },
    };
    let runs = state.runs()?;
    let run = match &args.run {
        Some(id) => runs.into_iter().find(|r| &r.id() == id),
        None => runs.into_iter().rev().find(|r| r.plan_path().exists()),
    }
    .ok_or_else(|| Error::NoRun {
        dir: state.root.join("runs"),
    })?;
    let plan = read_plan(&run.plan_path())?;
    let checkpoint = Checkpoint::replay(&run.records()?);
    report::print(&report::render_run(&run.id(), &plan, &checkpoint));
    Ok(())
}
