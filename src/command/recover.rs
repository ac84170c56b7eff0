//! `cluster-upgrade recover`: plan the disaster recovery from the state that survives, then run
//! it like `apply` (same run directory, journal, executor and resume), and check at the end
//! that every peer lists exactly the exported pinset.

use std::path::Path;

use crate::cli::RecoverArgs;
use crate::error::Error;
use crate::facts::{pinset_of_listing, HostFacts, Pinset, ProbeScope};
use crate::journal::{Checkpoint, RunDir, StateDir};
use crate::plan::{health_problems, Plan, ProcedureKind, Reach};
use crate::recover::{
    build_recovery_plan, check_export_fits, choose_source, ExportFile, ExportShape, RecoverError,
    RecoveryInputs, EXPORT_BACKUP,
};
use crate::report::{self};

use super::{hosts, inputs, plan as plan_cmd, preflight, resume, run, state};

pub fn recover(args: &RecoverArgs) -> Result<(), Error> {
    // The inputs first: an invalid inventory, playbook or export is refused before anything.
    let (inventory, playbook) = inputs::load_recover(&args.input, &args.ssh)?;
    let export = args.from_export.as_deref().map(read_export).transpose()?;
    let state = StateDir::for_inventory(&args.input.inventory, args.state_dir.as_deref());
    for note in state.prepare()? {
        report::note(&note);
    }
    run::confirmation_possible(args.yes)?;
    let _lock = state.lock()?;
    report::log_to_file(&state.root.join("apply.log"));

    let cluster_id = plan_cmd::cluster_id(&inventory)?;
    let (unfinished, others) = state::unfinished_of(&state, Some(&cluster_id))?;
    for other in &others {
        report::note(&format!(
            "not resumed: run {} is unfinished too",
            other.describe()
        ));
    }
    if let Some(unfinished) = unfinished {
        return resume(args, &state, unfinished);
    }

    // The run reuses these connections: one per host for the whole recovery.
    let reach = Reach::of(&inventory);
    let (connected, facts) = hosts::Connected::open_and_probe(&reach, &args.ssh, ProbeScope::FULL)?;
    let choice = choose_source(
        &facts,
        inventory.cluster.target_version,
        export.as_ref().map(|e| &e.path),
    )
    .map_err(RecoverError::from)
    .inspect_err(|_| report::print(&report::render_facts(&facts)))?;
    if let Some(export) = &export {
        check_export_fits(export, &choice)?;
    }
    let origin = plan_cmd::origin(cluster_id, reach);
    let plan = build_recovery_plan(RecoveryInputs {
        inventory: &inventory,
        playbook: &playbook,
        facts: &facts,
        choice: &choice,
        export: export.as_ref(),
        origin: &origin,
    })
    .map_err(RecoverError::from)?;
    let replaceable = state::lease_replaceable(&state, args.take_over.as_ref())?;
    plan_cmd::check_leases(&facts, None, &replaceable)?;
    preflight::check_room(&state, &plan, &Checkpoint::default(), &facts)?;
    report::print(&report::render_plan(&plan));
    run::confirm(
        args.yes,
        &format!(
            "Recover the cluster from {} and bootstrap {} hosts to it?",
            anchor_of(&plan),
            plan.facts.len() - 1
        ),
    )?;
    let run = state.run(&plan.run_id);
    execute(
        args,
        &state,
        &run,
        &plan,
        Execution {
            checkpoint: Checkpoint::default(),
            resumed: false,
            resets: Vec::new(),
            connected,
        },
    )
}

/// Resumes the cluster's unfinished recovery, as `apply` resumes a run.
fn resume(
    args: &RecoverArgs,
    state: &StateDir,
    unfinished: state::Unfinished,
) -> Result<(), Error> {
    if unfinished.plan.choice.procedure != ProcedureKind::Recover {
        return Err(Error::UnfinishedRun {
            run_id: unfinished.dir.id().to_string(),
            inventory: unfinished.plan.inventory.clone(),
        });
    }
    resume::refuse_options(
        &unfinished,
        &[
            ("--var", !args.input.vars.is_empty()),
            ("--playbooks", args.input.playbooks.is_some()),
            ("--from-export", args.from_export.is_some()),
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
        &format!(
            "Resume recovery run {} of cluster `{}` (source {})?",
            plan.run_id,
            plan.cluster,
            anchor_of(plan)
        ),
    )?;
    execute(
        args,
        state,
        &unfinished.dir,
        plan,
        Execution {
            checkpoint: ready.checkpoint,
            resumed: true,
            resets: ready.resets,
            connected: ready.connected,
        },
    )
}

/// Reads `--from-export FILE`: it must be a readable export holding at least one pin.
fn read_export(path: &Path) -> Result<ExportFile, Error> {
    use sha2::{Digest, Sha256};
    let bad = |message: String| RecoverError::Export {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| bad("not UTF-8 text".to_string()))?;
    let pins = pinset_of_listing(&text).count;
    let shape = ExportShape::of(&text).filter(|_| pins > 0).ok_or_else(|| {
        bad(
            "no pins found (expected the JSON written by `ipfs-cluster-service state export`)"
                .to_string(),
        )
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(ExportFile {
        path: absolute,
        sha256,
        pins,
        shape,
    })
}

fn anchor_of(plan: &Plan) -> &str {
    plan.choice.anchor.as_deref().unwrap_or("?")
}

/// Where a recovery run starts from.
struct Execution {
    checkpoint: Checkpoint,
    resumed: bool,
    resets: Vec<crate::plan::Reset>,
    connected: hosts::Connected,
}

fn execute(
    args: &RecoverArgs,
    state: &StateDir,
    run: &RunDir,
    plan: &Plan,
    execution: Execution,
) -> Result<(), Error> {
    let request = run::RunRequest {
        state,
        run,
        plan,
        checkpoint: execution.checkpoint,
        options: run::RunOptions {
            ssh: &args.ssh,
            retry_in_flight: args.retry_in_flight,
            take_over: args.take_over.as_ref(),
        },
        resumed: execution.resumed,
        resets: execution.resets,
        connected: execution.connected,
    };
    run::run_plan(request, &|now: &[HostFacts]| {
        Ok(verify(plan, now, &kept_export(run, plan)?))
    })
}

/// The export the source peer imported, as the `keep-export` step saved it in the run's
/// `backups/`: the pinset every peer must list at the end.
fn kept_export(run: &RunDir, plan: &Plan) -> Result<Pinset, Error> {
    let path = run.backups_dir().join(EXPORT_BACKUP);
    let failed = |message: String| RecoverError::ExportCheck {
        host: plan
            .choice
            .anchor
            .clone()
            .unwrap_or_else(|| plan.facts[0].host.clone()),
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| failed(e.to_string()))?;
    let pins = pinset_of_listing(&text);
    if pins.count == 0 {
        return Err(failed("it holds no pins".to_string()).into());
    }
    Ok(pins)
}

/// `apply`'s final gate (target version, running, whole peerset), and every peer listing
/// exactly the exported pinset (count and hash of the sorted CIDs).
fn verify(plan: &Plan, now: &[HostFacts], expected: &Pinset) -> Vec<String> {
    // Peers that ran before the recovery may have listed another pinset: the export is the
    // reference, checked below.
    let mut problems = health_problems(now, plan.choice.to, None);
    for host in now.iter().filter(|h| h.running) {
        match &host.pins {
            Some(pins) if pins == expected => {}
            Some(pins) => problems.push(format!(
                "{} lists {} pins (hash {}), but the recovered export holds {} (hash {})",
                host.host,
                pins.count,
                &pins.hash[..12],
                expected.count,
                &expected.hash[..12]
            )),
            None => problems.push(format!("{} did not list its pins", host.host)),
        }
    }
    problems
}
