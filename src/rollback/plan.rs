//! Builds the rollback plan: `playbooks/rollback.yaml` rendered for every host, with the
//! release each touched host ran before as `target.version` and the `rollback` variable naming
//! the undone run's backup folder on the host. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::{RollbackChoice, RollbackWay, StateExport};
use crate::facts::HostFacts;
use crate::inventory::{HostName, Inventory, ReleaseSums};
use crate::plan::{
    current_context, pins_context, render_steps, Choice, Plan, PlanOrigin, PlanParts,
    ProcedureKind, ROLLING_DOWNTIME,
};
use crate::procedure::{
    Procedure, ReleaseContext, RenderError, RunContext, TargetContext, TemplateContext,
};

/// What the rollback planner needs.
#[derive(Debug, Clone, Copy)]
pub struct RollbackInputs<'a> {
    pub inventory: &'a Inventory,
    pub playbook: &'a Procedure,
    /// Facts of every inventory host, in inventory order.
    pub facts: &'a [HostFacts],
    pub choice: &'a RollbackChoice,
    /// The hosts whose backup of the undone run is gone: they get the previous release from
    /// the release source (`previous`, checked by `check_backups`).
    pub backup_gone: &'a [HostName],
    /// The SHA-256 sums the undone run's `keep-previous` step recorded with its backup, by
    /// host (read when planning; runs made before it recorded none).
    pub backup_sums: &'a BTreeMap<HostName, ReleaseSums>,
    /// The undone run's `backups/` folder on the controller (where a `RestoreExport` way's
    /// export is uploaded from).
    pub undone_backups: &'a std::path::Path,
    /// The inventory with the previous release as its target, when its source offers it.
    pub previous: Option<&'a Inventory>,
    pub origin: &'a PlanOrigin,
}

/// Renders the rollback playbook for every host (its steps run only on the touched ones).
pub fn build_rollback_plan(inputs: RollbackInputs<'_>) -> Result<Plan, RenderError> {
    let RollbackInputs {
        inventory,
        playbook,
        facts,
        choice,
        backup_gone,
        backup_sums,
        undone_backups,
        previous,
        origin,
    } = inputs;
    let run_id = origin.run_id.as_str();
    let undone = choice.backup_run.as_str();
    // The peer that imports the export, or lists the pinset before a raft restore; else the
    // last host.
    let anchor_name = match (choice.way.export(), &choice.lister) {
        (Some(export), _) => Some(&export.anchor),
        (None, lister) => lister.as_ref(),
    };
    let anchor = anchor_name
        .and_then(|name| inventory.host(name))
        .or(inventory.hosts.last())
        .expect("a validated inventory has hosts");
    let export = match choice.way.export() {
        Some(StateExport { file, sha256, .. }) => json!({
            "local": undone_backups.join(file).display().to_string(),
            "sha256": sha256.to_string(),
            "remote": format!("{}/state-export.json", RunContext::new(run_id, anchor.vars.bin_dir()).remote_backup_dir),
        }),
        // Not used: the playbook's steps that read it run for the ways with an export only.
        None => json!({"local": "/dev/null", "sha256": "0".repeat(64), "remote": "/dev/null"}),
    };
    // The address the other peers bootstrap to when the cluster is rebuilt around the anchor.
    let anchor_facts = facts.iter().find(|f| f.host == anchor.name);
    let anchor_multiaddr =
        anchor_facts.and_then(|f| crate::recover::bootstrap_multiaddr(anchor, f, choice.to));
    // Pins are kept (listed before the stop, made so again) unless the operator let them go.
    let keep_pins = choice.lister.is_some() || choice.way == RollbackWay::OneAtATime;
    let by_name: HashMap<&str, &HostFacts> = facts.iter().map(|f| (f.host.as_str(), f)).collect();
    let pins = pins_context(facts);
    let steps = render_steps(playbook, inventory, &anchor.name, |host| {
        let host_facts = by_name[host.name.as_str()];
        let mut context = TemplateContext::new(inventory, host, anchor);
        context.target = TargetContext::new(choice.to);
        context.cluster.pins = pins.clone().filter(|_| keep_pins);
        context.anchor.peer_id = anchor_facts.and_then(|f| f.peer_id.clone());
        context.anchor.multiaddr = anchor_multiaddr.clone();
        context.current = current_context(host_facts, None);
        // A Docker host's container is recreated on the previous release's image.
        context.current.container = host_facts
            .container
            .as_ref()
            .and_then(|c| c.found())
            .map(|c| crate::plan::container_context(c, choice.to));
        context.run = RunContext::new(run_id, host.vars.bin_dir());
        if let Some(previous) = previous {
            context.release = ReleaseContext::new(&previous.cluster, host.vars.bin_dir());
        }
        let from_release = backup_gone.contains(&host.name);
        let backup_dir = RunContext::new(undone, host.vars.bin_dir()).remote_backup_dir;
        let binaries_dir = if from_release {
            ReleaseContext::staging_dir_for(host.vars.bin_dir(), choice.to)
        } else {
            backup_dir.clone()
        };
        context.vars.insert(
            "rollback".parse().expect("a valid name"),
            json!({
                "undoes": choice.undoes.as_str(),
                "backup_dir": backup_dir,
                "binaries_dir": binaries_dir,
                "from_release": from_release,
                "sums": backup_sums.get(&host.name).filter(|_| !from_release),
                "swap": choice.touched.contains(&host.name),
                "way": choice.way.name(),
                "export": export,
                "keep_pins": choice.lister.is_some(),
                // `state cleanup` and `state import` take a local `-f` from 0.10 on.
                "force_local": choice.to >= crate::inventory::Version::new(0, 10, 0),
                "restore_state": matches!(&choice.way, RollbackWay::RestoreRaft { hosts } if hosts.contains(&host.name)),
            }),
        );
        context
    })?;
    let parts = PlanParts {
        playbook: playbook.path.clone(),
        expected_downtime: match &choice.way {
            RollbackWay::OneAtATime => ROLLING_DOWNTIME.to_string(),
            RollbackWay::RestoreRaft { .. } | RollbackWay::RestoreExport(_) => {
                RESTORE_DOWNTIME.to_string()
            }
            RollbackWay::RebuildRaft(_) => REBUILD_DOWNTIME.to_string(),
        },
        backups: backups(choice, inventory, backup_gone, backup_sums),
        choice: Choice {
            procedure: ProcedureKind::Rollback,
            from: choice.from,
            to: choice.to,
            reasons: choice.reasons.clone(),
            warnings: Vec::new(),
            anchor: None,
            via: Vec::new(),
            undoes: Some(choice.undoes.clone()),
        },
        steps,
    };
    Ok(origin.plan(inventory, facts, parts))
}

/// Every peer is down between `stop-peers` and the restart.
const RESTORE_DOWNTIME: &str =
    "every peer is down from `stop-peers` until they start again on the previous release \
     and elect a leader: typically seconds, at most the `cluster-back` wait";

/// Every peer is down from the stop until the anchor starts alone; the others join it one at a
/// time.
const REBUILD_DOWNTIME: &str =
    "every peer is down from `stop-peers` until the anchor starts alone on the previous release with the \
     imported state (typically seconds, at most the `anchor-alone` wait); the others join it one at a time";

fn backups(
    choice: &RollbackChoice,
    inventory: &Inventory,
    gone: &[HostName],
    sums: &BTreeMap<HostName, ReleaseSums>,
) -> Vec<String> {
    let undone = choice.undoes.as_str();
    let mut list = vec![format!(
        "the binaries put back come from run {undone}'s backup, <bin_dir>/.cluster-upgrade/backup/{}/ on each host, \
         checked on every host before any peer stops",
        choice.backup_run
    )];
    // Docker hosts keep no binaries: their image is pulled again.
    let unsummed: Vec<HostName> = inventory
        .hosts
        .iter()
        .filter(|host| host.vars.str("service_manager") != Some("docker"))
        .map(|host| &host.name)
        .filter(|host| choice.touched.contains(host))
        .filter(|host| !gone.contains(host) && !sums.contains_key(*host))
        .cloned()
        .collect();
    if !sums.is_empty() {
        let summed: Vec<HostName> = sums.keys().cloned().collect();
        list.push(format!(
            "on {}: against the SHA-256 sums run {undone} recorded with its backup (shown in this plan)",
            crate::message::HostNames(&summed)
        ));
    }
    if !unsummed.is_empty() {
        list.push(format!(
            "on {}: run {undone} recorded no SHA-256 sums with its backup (made before they were kept): \
             checked by the release it reports only",
            crate::message::HostNames(&unsummed)
        ));
    }
    if !gone.is_empty() {
        list.push(format!(
            "that backup is gone from {}: {} comes from the release source there, staged in <bin_dir>/.cluster-upgrade/{} \
             and checked against its SHA-256 sums",
            crate::message::HostNames(gone),
            choice.to,
            choice.to
        ));
    }
    if let Some(StateExport { anchor, file, .. }) = choice.way.export() {
        let undone = choice.undoes.as_str();
        list.push(format!(
            "the state imported on {anchor} is run {undone}'s export {file}, checked against the SHA-256 its journal recorded"
        ));
    }
    if let Some(lister) = &choice.lister {
        list.push(format!(
            "the pinset is listed on {lister} right before the stop (kept there and in this run's backups/)"
        ));
    }
    if let RollbackWay::RestoreRaft { .. } = choice.way {
        list.push(
            "the migrated raft folder of each restored peer stays beside it as raft.before-rollback-<run id>"
                .to_string(),
        );
    }
    list
}
