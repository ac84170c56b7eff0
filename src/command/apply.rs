//! `cluster-upgrade apply`: run a plan with a write-ahead journal, or resume the unfinished run
//! of the same cluster.

use crate::cli::ApplyArgs;
use crate::error::Error;
use crate::facts::{HostFacts, Pinset, ProbeScope};
use crate::inventory::Inventory;
use crate::journal::{Checkpoint, StateDir};
use crate::plan::{final_gate_problems, ClusterId, Plan, Playbooks, ProcedureKind, Reach};
use crate::report;

use super::hosts::Connected;
use super::plan::{self as plan_cmd, Planned};
use super::run::{self, RunOptions, RunRequest};
use super::{inputs, plan_file, preflight, resume, state};

/// What `apply` was asked to run.
enum Request {
    /// An inventory, loaded and validated: plan now, then apply.
    Inventory {
        inventory: Box<Inventory>,
        playbooks: Box<Playbooks>,
    },
    /// A saved plan (sealed, checked).
    Plan { plan: Box<Plan> },
    /// The plan `plan` saved last in the state directory.
    Latest,
}

pub fn apply(args: &ApplyArgs) -> Result<(), Error> {
    // The input first: an invalid inventory or plan is refused before anything else happens.
    let request = read_request(args)?;
    let state = match &request {
        Request::Inventory { inventory, .. } => {
            state::state_dir(args.state_dir.as_deref(), Some(&inventory.path))
        }
        Request::Plan { plan, .. } => {
            state::state_dir(args.state_dir.as_deref(), Some(&plan.inventory))
        }
        Request::Latest => state::state_dir(args.state_dir.as_deref(), None),
    };
    for note in state.prepare()? {
        report::note(&note);
    }
    run::confirmation_possible(args.yes)?;
    let _lock = state.lock()?;
    report::log_to_file(&state.root.join("apply.log"));

    let cluster: Option<ClusterId> = match &request {
        Request::Inventory { inventory, .. } => Some(plan_cmd::cluster_id(inventory)?),
        Request::Plan { plan, .. } => Some(plan.cluster_id.clone()),
        Request::Latest => None,
    };
    let (unfinished, others) = state::unfinished_of(&state, cluster.as_ref())?;
    for other in &others {
        report::note(&format!(
            "not resumed: run {} is unfinished too (resume it with `cluster-upgrade apply {}`)",
            other.describe(),
            other.summary.inventory.display()
        ));
    }
    if let Some(unfinished) = unfinished {
        return resume(args, &state, unfinished, &request);
    }
    fresh(args, &state, request)
}

fn read_request(args: &ApplyArgs) -> Result<Request, Error> {
    Ok(match &args.target {
        None => Request::Latest,
        Some(path) if path.extension().is_some_and(|e| e == "json") => Request::Plan {
            plan: Box::new(plan_file::read_plan(path)?),
        },
        Some(path) => {
            let input = crate::cli::InventoryArgs {
                inventory: path.clone(),
                playbooks: args.playbooks.clone(),
                vars: args.vars.clone(),
            };
            let (inventory, playbooks) = inputs::load(&input, &args.ssh)?;
            Request::Inventory {
                inventory: Box::new(inventory),
                playbooks: Box::new(playbooks),
            }
        }
    })
}

fn options(args: &ApplyArgs) -> RunOptions<'_> {
    RunOptions {
        ssh: &args.ssh,
        retry_in_flight: args.retry_in_flight,
        take_over: args.take_over.as_ref(),
    }
}

/// Resumes the cluster's unfinished run: only the run a saved plan names, without options
/// that would change it, once the hosts are still as the journal left them and the operator
/// agreed.
fn resume(
    args: &ApplyArgs,
    state: &StateDir,
    unfinished: state::Unfinished,
    request: &Request,
) -> Result<(), Error> {
    let inventory = unfinished.plan.inventory.clone();
    let run_id = unfinished.dir.id().to_string();
    // Its final check is recover's (the exported pinset on every peer), not apply's.
    if unfinished.plan.choice.procedure == ProcedureKind::Recover {
        return Err(Error::UnfinishedRecovery { run_id, inventory });
    }
    if let Request::Plan { plan, .. } = request {
        if plan.run_id != unfinished.plan.run_id {
            return Err(Error::UnfinishedRun { run_id, inventory });
        }
    }
    resume::refuse_options(
        &unfinished,
        &[
            ("--var", !args.vars.is_empty()),
            ("--playbooks", args.playbooks.is_some()),
            ("--procedure", args.procedure.is_some()),
        ],
    )?;
    let ready =
        resume::reconnect_and_review(state, &unfinished, &args.ssh, args.take_over.as_ref())?;
    let plan = &unfinished.plan;
    preflight::check_room(state, plan, &ready.checkpoint, &ready.facts)?;
    report::print(&report::render_resume(
        plan,
        &ready.checkpoint,
        &ready.resets,
    ));
    run::confirm(
        args.yes,
        &format!("Resume run {} of cluster `{}`?", plan.run_id, plan.cluster),
    )?;
    let request = RunRequest {
        state,
        run: &unfinished.dir,
        plan,
        checkpoint: ready.checkpoint,
        options: options(args),
        resumed: true,
        resets: ready.resets,
        connected: ready.connected,
    };
    run::run_plan(request, &|now: &[HostFacts]| Ok(verify(plan, now)))
}

/// A new run: plan from the inventory (or take the saved plan, checked against the cluster as
/// it is now), show it, ask, run.
fn fresh(args: &ApplyArgs, state: &StateDir, request: Request) -> Result<(), Error> {
    let (plan, connected, facts) = match request {
        Request::Inventory {
            inventory,
            playbooks,
        } => {
            let reach = Reach::of(&inventory);
            // The run reuses these connections: one per host for the whole apply.
            let (connected, facts) =
                Connected::open_and_probe(&reach, &args.ssh, ProbeScope::FULL)?;
            let origin = plan_cmd::origin(plan_cmd::cluster_id(&inventory)?, reach);
            match plan_cmd::make_plan(&inventory, &playbooks, &facts, args.procedure, &origin)? {
                Planned::Plan(plan) => (plan, connected, facts),
                Planned::Converged { target, hosts } => {
                    plan_cmd::report_converged(target, hosts, false);
                    return Ok(());
                }
            }
        }
        Request::Plan { plan, .. } => saved(args, state, plan)?,
        Request::Latest => {
            let path = state.latest_plan();
            if !path.exists() {
                return Err(Error::NoPlan { path });
            }
            saved(args, state, Box::new(plan_file::read_plan(&path)?))?
        }
    };
    let run = state.run(&plan.run_id);
    let replaceable = state::lease_replaceable(state, args.take_over.as_ref())?;
    plan_cmd::check_leases(&facts, None, &replaceable)?;
    preflight::check_room(state, &plan, &Checkpoint::default(), &facts)?;
    report::print(&report::render_plan(&plan));
    run::confirm(
        args.yes,
        &format!(
            "Apply the {} procedure to {} hosts?",
            plan.choice.procedure,
            plan.facts.len()
        ),
    )?;
    let request = RunRequest {
        state,
        run: &run,
        plan: &plan,
        checkpoint: Checkpoint::default(),
        options: options(args),
        resumed: false,
        resets: Vec::new(),
        connected,
    };
    run::run_plan(request, &|now: &[HostFacts]| Ok(verify(&plan, now)))
}

/// A saved plan, checked against the cluster as it is now: refused when it was applied
/// already, or is stale.
fn saved(
    args: &ApplyArgs,
    state: &StateDir,
    plan: Box<Plan>,
) -> Result<(Box<Plan>, Connected, Vec<HostFacts>), Error> {
    if state.run(&plan.run_id).journal_path().exists() {
        return Err(Error::AlreadyApplied {
            run_id: plan.run_id.to_string(),
        });
    }
    let (connected, facts) = Connected::open_and_probe(&plan.reach, &args.ssh, ProbeScope::FULL)?;
    if Plan::fingerprint(&facts) != plan.facts_fingerprint {
        return Err(Error::StalePlan {
            changes: differences(&plan.facts, &facts),
        });
    }
    Ok((plan, connected, facts))
}

/// What changed between two fact sets, host by host, in words.
fn differences(before: &[HostFacts], now: &[HostFacts]) -> Vec<String> {
    let mut changes = Vec::new();
    for (old, new) in before.iter().zip(now) {
        let mut fields = Vec::new();
        if old.unreachable != new.unreachable {
            fields.push("reachability".to_string());
        }
        if old.service_version != new.service_version {
            fields.push(format!(
                "version {} → {}",
                version_text(old.service_version),
                version_text(new.service_version)
            ));
        }
        if old.running != new.running {
            fields.push(format!("running {} → {}", old.running, new.running));
        }
        if old.peerset != new.peerset {
            fields.push("peerset".to_string());
        }
        if old.pins != new.pins {
            fields.push(format!("pins {} → {}", count(&old.pins), count(&new.pins)));
        }
        if fields.is_empty()
            && Plan::fingerprint(std::slice::from_ref(old))
                != Plan::fingerprint(std::slice::from_ref(new))
        {
            fields.push("other facts".to_string());
        }
        if !fields.is_empty() {
            changes.push(format!("{}: {}", old.host, fields.join(", ")));
        }
    }
    changes
}

fn count(pins: &Option<Pinset>) -> String {
    pins.as_ref()
        .map_or("?".to_string(), |p| p.count.to_string())
}

/// The final gate: every peer on the target, running, seeing all the others, with the pinset
/// it had before (count and hash of the sorted CIDs).
pub(super) fn verify(plan: &Plan, now: &[HostFacts]) -> Vec<String> {
    final_gate_problems(&plan.facts, plan.choice.to, now)
}

/// A version for messages: `0.9.0`, or `an unknown version`.
fn version_text(version: Option<crate::inventory::Version>) -> String {
    version.map_or_else(|| "an unknown version".to_string(), |v| v.to_string())
}
