//! Builds the migration plan: `playbooks/migrate-crdt.yaml` rendered for every host on the
//! version the peers run, the last host as the anchor (it imports the export). Pure: no I/O.

use std::collections::HashMap;

use crate::facts::HostFacts;
use crate::inventory::{Host, Inventory, Version};
use crate::plan::{
    current_context, pins_context, render_steps, Choice, Plan, PlanOrigin, PlanParts,
    ProcedureKind, MIGRATION_DOWNTIME,
};
use crate::procedure::{Procedure, RenderError, RunContext, TargetContext, TemplateContext};
use crate::recover::bootstrap_multiaddr;

/// What the migration planner needs.
#[derive(Debug, Clone, Copy)]
pub struct MigrationInputs<'a> {
    pub inventory: &'a Inventory,
    pub playbook: &'a Procedure,
    /// Facts of every inventory host, in inventory order, checked by `check_migration`.
    pub facts: &'a [HostFacts],
    /// The version every peer runs (`check_migration`'s answer).
    pub version: Version,
    pub origin: &'a PlanOrigin,
}

/// Renders the migration playbook for every host.
pub fn build_migration_plan(inputs: MigrationInputs<'_>) -> Result<Plan, RenderError> {
    let MigrationInputs {
        inventory,
        playbook,
        facts,
        version,
        origin,
    } = inputs;
    let run_id = origin.run_id.as_str();
    let anchor = inventory
        .hosts
        .last()
        .expect("a validated inventory has hosts");
    let by_name: HashMap<&str, &HostFacts> = facts.iter().map(|f| (f.host.as_str(), f)).collect();
    let anchor_facts = by_name[anchor.name.as_str()];
    let pins = pins_context(facts);
    let steps = render_steps(playbook, inventory, &anchor.name, |host| {
        let host_facts = by_name[host.name.as_str()];
        let mut context = TemplateContext::new(inventory, host, anchor);
        // The release the peers run is the one that exports and imports: no other is involved.
        context.target = TargetContext::new(version);
        context.cluster.pins = pins.clone();
        context.current =
            current_context(host_facts, bootstrap_multiaddr(host, host_facts, version));
        context.anchor.peer_id = anchor_facts.peer_id.clone();
        context.anchor.multiaddr = bootstrap_multiaddr(anchor, anchor_facts, version);
        context.run = RunContext::new(run_id, host.vars.bin_dir());
        context
    })?;
    let mut reasons = vec![
        format!("every peer runs {version} with raft and is healthy; the same release exports and imports the state"),
        format!("{} imports the export; the other peers start clean and sync from it", anchor.name),
        "each service.json keeps its identity, secret and every section but `consensus` and `datastore`, \
         which come from this release's own `init --consensus crdt` (trusted_peers: \"*\", the release's default datastore)"
            .to_string(),
    ];
    if inventory.cluster.target_version != version {
        reasons.push(format!(
            "the inventory's target_version {} is not used: a migration changes no binary",
            inventory.cluster.target_version
        ));
    }
    let parts = PlanParts {
        playbook: playbook.path.clone(),
        expected_downtime: MIGRATION_DOWNTIME.to_string(),
        backups: backups(anchor, run_id),
        choice: Choice {
            procedure: ProcedureKind::Migrate,
            from: version,
            to: version,
            reasons,
            warnings: Vec::new(),
            anchor: Some(anchor.name.clone()),
            via: Vec::new(),
            undoes: None,
        },
        steps,
    };
    Ok(origin.plan(inventory, facts, parts))
}

fn backups(anchor: &Host, run_id: &str) -> Vec<String> {
    let folder = RunContext::new(run_id, anchor.vars.bin_dir()).remote_backup_dir;
    vec![
        format!(
            "the raft state export of every peer, checked against the planned pinset: in the run's folder \
             <bin_dir>/.cluster-upgrade/backup/<run id>/ on each host (the anchor imports {folder}/state-export.json), \
             and copied into the run directory on the controller"
        ),
        "each peer's raft service.json: <bin_dir>/.cluster-upgrade/backup/<run id>/service.json".to_string(),
        "each peer's raft/ folder stays where it is (a CRDT peer does not read it): with the old service.json \
         it undoes the switch"
            .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Consensus;

    fn lab_inventory() -> Inventory {
        let mut text = String::from(
            "cluster:\n  name: lab\n  target_version: \"0.10.1\"\n  releases:\n    source: local\n    path: releases\n\
             vars:\n  service_manager: lab\n  bin_dir: /lab/bin\n  config_dir: /lab/cfg\n  service_cmd: /lab/bin/svc\n  \
             api: /ip4/127.0.0.1/tcp/9094\nssh:\n  known_hosts: /dev/null\nhosts:\n",
        );
        for n in 1..=3 {
            text.push_str(&format!(
                "  - name: h{n}\n    address: \"127.9.9.{}\"\n    user: root\n",
                n + 1
            ));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/inventory/migrate.yaml");
        Inventory::from_text(&path, &text, &[]).unwrap_or_else(|error| panic!("{error}"))
    }

    fn playbook() -> Procedure {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/migrate-crdt.yaml");
        Procedure::load(&path).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn the_last_host_imports_and_the_others_bootstrap_to_it() {
        let inventory = lab_inventory();
        let facts: Vec<HostFacts> = (1..=3)
            .map(|n| HostFacts {
                host: format!("h{n}").parse().unwrap(),
                service_version: Some(Version::new(1, 0, 8)),
                running: true,
                peer_id: Some(format!("Qm{n}")),
                listen_multiaddress: Some("/ip4/0.0.0.0/tcp/9096".into()),
                pins: Some(crate::facts::pinset_of_listing("Qma\nQmb\n")),
                consensus: Some(Consensus::Raft),
                ..HostFacts::default()
            })
            .collect();
        let playbook = playbook();
        let plan = build_migration_plan(MigrationInputs {
            inventory: &inventory,
            playbook: &playbook,
            facts: &facts,
            version: Version::new(1, 0, 8),
            origin: &PlanOrigin::example(&inventory),
        })
        .unwrap();
        assert_eq!(plan.choice.procedure, ProcedureKind::Migrate);
        assert_eq!(
            (plan.choice.from, plan.choice.to),
            (Version::new(1, 0, 8), Version::new(1, 0, 8))
        );
        assert!(
            plan.choice
                .reasons
                .iter()
                .any(|r| r.contains("target_version 0.10.1 is not used")),
            "{:?}",
            plan.choice.reasons
        );
        let step = |id: &str| plan.steps.iter().find(|s| s.id == id).unwrap();
        let hosts = |id: &str| {
            step(id)
                .hosts
                .iter()
                .map(|h| h.host.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(hosts("import-state"), ["h3"]);
        assert_eq!(hosts("cleanup-others"), ["h1", "h2"]);
        assert_eq!(hosts("write-crdt-config"), ["h1", "h2", "h3"]);
        let import = step("import-state").hosts[0].command.clone().unwrap();
        assert_eq!(
            import,
            "/lab/bin/ipfs-cluster-service --force --config /lab/cfg state import -f \
             /lab/bin/.cluster-upgrade/backup/20261204T000000Z-0001/state-export.json"
        );
        let start = step("start-others").hosts[0].command.clone().unwrap();
        assert_eq!(
            start,
            "/lab/bin/svc start --bootstrap /ip4/127.9.9.4/tcp/9096/p2p/Qm3"
        );
        // The gates check the version the peers run, not the inventory's target.
        let healthy = step("cluster-healthy").hosts[0]
            .wait_until
            .clone()
            .unwrap()
            .command;
        assert!(healthy.contains("1.0.8"), "{healthy}");
        assert!(!healthy.contains("0.10.1"), "{healthy}");
        let export = step("export-state").hosts[1].backup.clone().unwrap();
        assert_eq!(export, "state-export-h2-1.0.8.json");
    }
}
