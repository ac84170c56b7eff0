//! `cluster-upgrade recover`: plan the disaster recovery from the state that survives, then run
//! it like `apply` (same run directory, journal, executor and resume), and check at the end
//! that every peer lists exactly the exported pinset.

use std::path::Path;

use crate::cli::RecoverArgs;
use crate::error::Error;
use crate::facts::{pinset_of_listing, HostFacts, Pinset, ProbeScope};
use crate::inventory::Inventory;
use crate::journal::{Checkpoint, RunDir, StateDir};
use crate::plan::{Plan, ProcedureKind};
use crate::recover::{
    build_recovery_plan, check_export_fits, choose_source, ExportFile, ExportShape, RecoverError,
    RecoveryInputs, EXPORT_BACKUP,
};
use crate::report::{self};

use super::{apply, hosts, inputs, plan as plan_cmd, run};

pub fn recover(args: &RecoverArgs) -> Result<(), Error> {
    let state = StateDir::for_inventory(&args.input.inventory, args.state_dir.as_deref());
    let _lock = state.lock()?;
    report::log_to_file(&state.root.join("apply.log"));

    if let Some((run, plan, checkpoint)) = run::unfinished_run(&state)? {
        if plan.choice.procedure != ProcedureKind::Recover {
            return Err(Error::UnfinishedRun { run_id: run.id() });
        }
        report::note(&format!(
            "resuming recovery run {} (source {}, {} → {})",
            run.id(),
            anchor_of(&plan),
            plan.choice.from,
            plan.choice.to
        ));
        let inventory = Inventory::load(&plan.inventory, &[])?;
        return execute(args, &inventory, &run, &plan, checkpoint, true, None);
    }

    let (inventory, playbook) = inputs::load_recover(&args.input)?;
    let export = args.from_export.as_deref().map(read_export).transpose()?;
    // The run reuses these connections: one per host for the whole recovery.
    let (connected, facts) =
        hosts::Connected::open_and_probe(&inventory, &args.ssh, ProbeScope::FULL)?;
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
    let run_id = plan_cmd::run_id();
    let plan = build_recovery_plan(RecoveryInputs {
        inventory: &inventory,
        playbook: &playbook,
        facts: &facts,
        choice: &choice,
        export: export.as_ref(),
        run_id: &run_id,
    })
    .map_err(RecoverError::from)?;
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
    run.create()?;
    plan_cmd::write_plan(&run.plan_path(), &plan)?;
    execute(
        args,
        &inventory,
        &run,
        &plan,
        Checkpoint::default(),
        false,
        Some(connected),
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

fn execute(
    args: &RecoverArgs,
    inventory: &Inventory,
    run: &RunDir,
    plan: &Plan,
    checkpoint: Checkpoint,
    resumed: bool,
    connected: Option<hosts::Connected>,
) -> Result<(), Error> {
    // A resumed recovery is checked against the hosts by `run_plan`, as a resumed `apply` is.
    let request = run::RunRequest {
        inventory,
        run,
        plan,
        checkpoint,
        ssh: &args.ssh,
        retry_in_flight: args.retry_in_flight,
        resumed,
        connected,
    };
    run::run_plan(request, None, &|now: &[HostFacts]| {
        Ok(verify(plan, now, &kept_export(run, plan)?))
    })
}

/// The export the source peer imported, as the `keep-export` step saved it in the run's
/// `backups/`: the pinset every peer must list at the end.
fn kept_export(run: &RunDir, plan: &Plan) -> Result<Pinset, Error> {
    let path = run.backups_dir().join(EXPORT_BACKUP);
    let failed = |message: String| RecoverError::ExportCheck {
        host: anchor_of(plan).to_string(),
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
    // Peers that ran before the recovery may have listed another pinset: the export is the reference.
    let mut reference = plan.clone();
    for facts in &mut reference.facts {
        facts.pins = None;
    }
    let mut problems = apply::verify(&reference, now);
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
