//! `cluster-upgrade apply`: run a plan with a write-ahead journal, or resume the unfinished run.

use std::path::PathBuf;

use crate::cli::{ApplyArgs, InventoryArgs};
use crate::error::Error;
use crate::facts::{HostFacts, Pinset, ProbeScope};
use crate::inventory::Inventory;
use crate::journal::{Checkpoint, RunDir, StateDir};
use crate::plan::{Plan, PlanInputs, ProcedureKind};
use crate::report::{self};

use super::{hosts, inputs, plan as plan_cmd, run};

/// Where the plan comes from.
enum Source {
    Inventory(PathBuf),
    File(PathBuf),
    Latest,
}

pub fn apply(args: &ApplyArgs) -> Result<(), Error> {
    let source = match &args.target {
        None => Source::Latest,
        Some(path) if path.extension().is_some_and(|e| e == "json") => Source::File(path.clone()),
        Some(path) => Source::Inventory(path.clone()),
    };
    let state = match (&source, &args.state_dir) {
        (_, Some(dir)) => StateDir { root: dir.clone() },
        (Source::Inventory(inventory), None) => StateDir::for_inventory(inventory, None),
        (Source::File(file), None) => {
            StateDir::for_inventory(&run::read_plan(file)?.inventory, None)
        }
        (Source::Latest, None) => StateDir {
            root: PathBuf::from(".cluster-upgrade"),
        },
    };
    let _lock = state.lock()?;
    crate::report::log_to_file(&state.root.join("apply.log"));

    if let Some((run, plan, checkpoint)) = run::unfinished_run(&state)? {
        // Its final check is recover's (the exported pinset on every peer), not apply's.
        if plan.choice.procedure == ProcedureKind::Recover {
            return Err(Error::UnfinishedRecovery { run_id: run.id() });
        }
        if let Source::File(file) = &source {
            if run::read_plan(file)?.run_id != plan.run_id {
                return Err(Error::UnfinishedRun { run_id: run.id() });
            }
        }
        report::note(&format!(
            "resuming run {} ({} procedure, {} → {})",
            run.id(),
            plan.choice.procedure,
            plan.choice.from,
            plan.choice.to
        ));
        let inventory = Inventory::load(&plan.inventory, &[])?;
        return execute(
            args,
            &inventory,
            &run,
            &plan,
            checkpoint,
            Freshness::Resume,
            None,
        );
    }

    let mut connected = None;
    let (inventory, plan, freshness) = match &source {
        Source::Inventory(path) => {
            let input = InventoryArgs {
                inventory: path.clone(),
                playbooks: args.playbooks.clone(),
                vars: args.vars.clone(),
            };
            let (inventory, playbooks) = inputs::load(&input)?;
            // The run reuses these connections: one per host for the whole apply.
            let (cluster, facts) =
                hosts::Connected::open_and_probe(&inventory, &args.ssh, ProbeScope::FULL)?;
            connected = Some(cluster);
            let run_id = plan_cmd::run_id();
            let plan = plan_cmd::make_plan(PlanInputs {
                inventory: &inventory,
                playbooks: &playbooks,
                facts: &facts,
                requested: args.procedure,
                run_id: &run_id,
            });
            let plan = plan.inspect_err(|_| report::print(&report::render_facts(&facts)))?;
            (inventory, plan, Freshness::JustProbed)
        }
        Source::File(path) => {
            let plan = run::read_plan(path)?;
            (
                Inventory::load(&plan.inventory, &[])?,
                plan,
                Freshness::Saved,
            )
        }
        Source::Latest => {
            let path = state.latest_plan();
            if !path.exists() {
                return Err(Error::NoPlan { path });
            }
            let plan = run::read_plan(&path)?;
            (
                Inventory::load(&plan.inventory, &[])?,
                plan,
                Freshness::Saved,
            )
        }
    };
    let run = state.run(&plan.run_id);
    if run.journal_path().exists() {
        return Err(Error::AlreadyApplied {
            run_id: plan.run_id.clone(),
        });
    }
    report::print(&report::render_plan(&plan));
    run::confirm(
        args.yes,
        &format!(
            "Apply the {} procedure to {} hosts?",
            plan.choice.procedure,
            plan.facts.len()
        ),
    )?;
    run.create()?;
    plan_cmd::write_plan(&run.plan_path(), &plan)?;
    execute(
        args,
        &inventory,
        &run,
        &plan,
        Checkpoint::default(),
        freshness,
        connected,
    )
}

/// How much the plan's facts can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// Probed a moment ago by this process.
    JustProbed,
    /// Saved earlier: probe again and refuse if anything changed.
    Saved,
    /// A run in progress: the cluster is expected to be half-upgraded.
    Resume,
}

fn execute(
    args: &ApplyArgs,
    inventory: &Inventory,
    run: &RunDir,
    plan: &Plan,
    checkpoint: Checkpoint,
    freshness: Freshness,
    connected: Option<hosts::Connected>,
) -> Result<(), Error> {
    let stale = |now: &[HostFacts]| {
        if Plan::fingerprint(now) == plan.facts_fingerprint {
            Ok(())
        } else {
            Err(Error::StalePlan {
                changes: differences(&plan.facts, now),
            })
        }
    };
    // A resumed run is checked by `run_plan` itself.
    let before: Option<run::BeforeCheck<'_>> = match freshness {
        Freshness::JustProbed | Freshness::Resume => None,
        Freshness::Saved => Some(&stale),
    };
    let request = run::RunRequest {
        inventory,
        run,
        plan,
        checkpoint,
        ssh: &args.ssh,
        retry_in_flight: args.retry_in_flight,
        resumed: freshness == Freshness::Resume,
        connected,
    };
    run::run_plan(request, before, &|now: &[HostFacts]| Ok(verify(plan, now)))
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
        if fields.is_empty() && old != new {
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
    let mut problems = Vec::new();
    let expected_pins = Pinset::expected(&plan.facts);
    let all_peers = crate::facts::Peerset::expected(now);
    for host in now {
        let name = &host.host;
        if host.service_version != Some(plan.choice.to) {
            problems.push(format!(
                "{name} runs {}, not {}",
                version_text(host.service_version),
                plan.choice.to
            ));
        }
        if !host.running {
            problems.push(format!("{name} is not running"));
            continue;
        }
        match &host.peerset {
            Some(seen) if *seen == all_peers => {}
            Some(seen) => problems.push(format!(
                "{name} sees {} peers (peerset hash {}), expected {} (hash {})",
                seen.count,
                seen.short_hash(),
                all_peers.count,
                all_peers.short_hash()
            )),
            None => problems.push(format!("{name} did not report the peers it sees")),
        }
        for error in &host.peer_errors {
            problems.push(format!(
                "{name} reports {} with an error: {}",
                error.peer_id, error.error
            ));
        }
        if let Some(expected) = &expected_pins {
            match &host.pins {
                Some(pins) if pins == expected => {}
                Some(pins) => problems.push(format!(
                    "{name} lists {} pins (hash {}), expected {} (hash {}): the pinset changed",
                    pins.count,
                    &pins.hash[..12],
                    expected.count,
                    &expected.hash[..12]
                )),
                None => problems.push(format!("{name} did not list its pins")),
            }
        }
    }
    problems
}

/// A version for messages: `0.9.0`, or `an unknown version`.
fn version_text(version: Option<crate::inventory::Version>) -> String {
    version.map_or_else(|| "an unknown version".to_string(), |v| v.to_string())
}
