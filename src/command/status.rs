//! `cluster-upgrade status`: the current or last run, per host and step (of the inventory's
//! cluster when an inventory is named).

use crate::cli::StatusSettings;
use crate::error::Error;
use crate::inventory::Inventory;
use crate::journal::{Checkpoint, StateDir, StepTimes};
use crate::report;

use super::plan_file::read_plan;
use super::{plan as plan_cmd, state};

pub fn status(args: &StatusSettings) -> Result<(), Error> {
    let state = StateDir::resolve(
        args.place.state_dir.as_deref(),
        args.place.inventory.as_deref(),
    );
    let cluster = match &args.place.inventory {
        Some(path) => Some(plan_cmd::cluster_id(&Inventory::load(path, &[])?)?),
        None => None,
    };
    let runs = state::runs(&state)?;
    let run = match &args.run {
        Some(id) => runs.into_iter().find(|r| r.dir.id().as_str() == id),
        None => runs.into_iter().rev().find(|r| {
            cluster
                .as_ref()
                .is_none_or(|c| c.key == r.summary.cluster_id.key)
        }),
    }
    .ok_or_else(|| Error::NoRun {
        dir: state.root.join("runs"),
    })?;
    let plan = read_plan(&run.dir.plan_path())?;
    let records = run.dir.records()?;
    let checkpoint = Checkpoint::replay(&records);
    let times = StepTimes::from_records(&records);
    let id = run.dir.id().as_str();
    if args.json {
        report::json(&report::run_json(id, &plan, &checkpoint));
    } else {
        let journal = report::Journalled {
            checkpoint: &checkpoint,
            times: &times,
        };
        report::print(&report::render_run(id, &plan, journal));
    }
    Ok(())
}
