//! `cluster-upgrade plan`: gather facts over SSH (read-only), choose the procedure, render it,
//! show it, and save it on request.

use std::path::Path;
use std::time::SystemTime;

use crate::cli::PlanSettings;
use crate::error::Error;
use crate::facts::HostFacts;
use crate::inventory::{Inventory, Version};
use crate::journal::{open_private, write_private_with, RunId, StateDir};
use crate::plan::{plan_upgrade, ClusterId, PlanInputs, PlanOrigin, Planned, Reach};
use crate::report;

use super::{inputs, plan_file, state};

pub fn plan(args: &PlanSettings) -> Result<(), Error> {
    // A recorded facts file is parsed while the inventory and playbooks load; their errors
    // still come first.
    let (loaded, recorded) = std::thread::scope(|scope| {
        let recorded = (args.facts.as_deref()).map(|path| scope.spawn(|| read_facts(path)));
        let loaded = inputs::load(&args.input);
        let recorded = recorded.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (loaded, recorded)
    });
    let (inventory, playbooks) = loaded?;
    let state = StateDir::resolve(args.state_dir.as_deref(), Some(&args.input.inventory));
    for note in state.prepare()? {
        report::note(&note);
    }
    let cluster_id = cluster_id(&inventory)?;
    // A run of this cluster that is not over: resumed by `apply`, or abandoned, first.
    if let (Some(unfinished), _) = state::unfinished_of(&state, Some(&cluster_id))? {
        return Err(Error::unfinished(
            unfinished.plan.choice.procedure,
            unfinished.dir.id().to_string(),
            args.input.inventory.clone(),
        ));
    }
    let reach = Reach::of(&inventory);
    let facts = match recorded {
        Some(facts) => facts?,
        // The command line's SSH options are in the inventory's settings already.
        None => crate::exec::gather_facts(&reach)?,
    };
    let replaceable = state::lease_replaceable(&state, args.take_over.as_ref())?;
    check_leases(&facts, None, &replaceable)?;
    let origin = origin(cluster_id, reach);
    let plan = match make_plan(PlanInputs {
        inventory: &inventory,
        playbooks: &playbooks,
        facts: &facts,
        requested: args.procedure,
        origin: &origin,
    })? {
        Planned::Plan(plan) => plan,
        Planned::Converged { target, hosts } => {
            report_converged(target, hosts, args.json);
            return Ok(());
        }
    };
    if !args.json {
        report::print(&report::render_plan(&plan));
    }
    // Serialized once, streamed into the state folder; stdout and `--out` get the same bytes.
    let latest = state.latest_plan();
    plan_file::write_plan(&latest, &plan)?;
    // Freeing a large plan string by string takes a noticeable share of the run; the process
    // ends right after this command, which frees it at once.
    std::mem::forget(plan);
    if args.json {
        report::print_from(&mut open_private(&latest)?);
    }
    if let Some(out) = &args.out {
        let mut file = open_private(&latest)?;
        write_private_with(out, |to| std::io::copy(&mut file, to).map(drop))?;
        report::note(&format!("plan saved to {}", out.display()));
    }
    Ok(())
}

/// "Nothing to do", for people or as JSON.
pub fn report_converged(target: Version, hosts: usize, json: bool) {
    if json {
        let value = serde_json::json!({
            "converged": true,
            "target_version": target.to_string(),
            "hosts": hosts,
            "steps": [],
        });
        report::json(&value);
    } else {
        report::print(&format!(
            "No changes: every one of the {hosts} peers runs {target} and the cluster is healthy; nothing to do.\n"
        ));
    }
}

pub(super) fn read_facts(path: &Path) -> Result<Vec<HostFacts>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::FactsFile {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::FactsFile {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// The identity of the inventory's cluster (its path made canonical).
pub fn cluster_id(inventory: &Inventory) -> Result<ClusterId, Error> {
    let canonical = std::fs::canonicalize(&inventory.path).map_err(|source| {
        crate::inventory::InventoryError::Read {
            path: inventory.path.clone(),
            source,
        }
    })?;
    Ok(ClusterId::of(inventory, canonical))
}

/// A new run's origin: its id and the time, now.
pub fn origin(cluster_id: ClusterId, reach: Reach) -> PlanOrigin {
    let now = SystemTime::now();
    PlanOrigin {
        run_id: RunId::at(now),
        cluster_id,
        created_unix: now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        reach,
    }
}

/// Refuses while another run holds a lease on a host (`own`: the run that may hold them).
pub fn check_leases(
    facts: &[HostFacts],
    own: Option<&RunId>,
    replaceable: &[String],
) -> Result<(), Error> {
    let holders: Vec<String> = facts
        .iter()
        .filter_map(|host| {
            let lease = host.lease.as_ref()?;
            let ours = own.is_some_and(|id| id.as_str() == lease.run_id);
            (!ours && !replaceable.contains(&lease.run_id)).then(|| {
                format!(
                    "{lease} on {} since {}",
                    host.host,
                    time_text(lease.started_unix)
                )
            })
        })
        .collect();
    if holders.is_empty() {
        Ok(())
    } else {
        Err(Error::LeaseHeld { holders })
    }
}

/// `2026-12-04 17:52:37 UTC`.
pub fn time_text(unix: u64) -> String {
    crate::journal::utc_text(unix)
}

/// Plans the upgrade (see `plan::plan_upgrade`); a refusal is shown with the facts.
pub fn make_plan(inputs: PlanInputs<'_>) -> Result<Planned, Error> {
    let (inventory, facts) = (inputs.inventory, inputs.facts);
    plan_upgrade(inputs, &|is_hop| inventory.with_intermediate_target(is_hop)).map_err(|error| {
        if error.refusal().is_some() {
            report::print(&report::render_facts(facts));
        }
        error.into()
    })
}
