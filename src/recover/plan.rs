//! Builds the recovery plan: `playbooks/recover.yaml` rendered for every host, the source host
//! as the anchor, with the `recovery` variable telling the playbook where the state comes from.
//! Pure: no I/O.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::json;

use super::source::{Origin, SourceChoice};
use crate::facts::HostFacts;
use crate::inventory::{Host, Inventory, Version};
use crate::plan::{
    current_context, render_steps, Choice, Plan, PlanOrigin, PlanParts, ProcedureKind,
};
use crate::procedure::{Procedure, RenderError, RunContext, TemplateContext};

/// The file name, in the run's `backups/` on the controller, of the export the source peer
/// imports (the `keep-export` step copies it there).
pub const EXPORT_BACKUP: &str = "state-export.json";

/// The export the recovery imports, given with `--from-export` (read on the controller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub path: std::path::PathBuf,
    pub sha256: crate::inventory::Sha256,
    pub pins: usize,
    pub shape: super::ExportShape,
}

/// What the recovery planner needs.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryInputs<'a> {
    pub inventory: &'a Inventory,
    pub playbook: &'a Procedure,
    /// Facts of every inventory host, in inventory order.
    pub facts: &'a [HostFacts],
    pub choice: &'a SourceChoice,
    pub export: Option<&'a ExportFile>,
    pub origin: &'a PlanOrigin,
}

/// The file the source host exports its state to (or receives `--from-export` in): in the
/// run's remote backup folder, beside the previous binaries.
pub fn remote_export_path(source: &Host, run_id: &str) -> String {
    format!(
        "{}/state-export.json",
        RunContext::new(run_id, bin_dir(source)).remote_backup_dir
    )
}

/// Renders the recovery playbook for every host.
pub fn build_recovery_plan(inputs: RecoveryInputs<'_>) -> Result<Plan, RenderError> {
    let RecoveryInputs {
        inventory,
        playbook,
        facts,
        choice,
        export,
        origin,
    } = inputs;
    let run_id = origin.run_id.as_str();
    let target = inventory.cluster.target_version;
    let anchor = inventory
        .host(&choice.source.host)
        .expect("the source is an inventory host");
    let anchor_facts = facts_of(facts, anchor);
    let anchor_multiaddr = bootstrap_multiaddr(anchor, anchor_facts, target);
    let by_name: HashMap<&str, &HostFacts> = facts.iter().map(|f| (f.host.as_str(), f)).collect();
    let recovery = recovery_var(choice, export, anchor, run_id);
    let steps = render_steps(playbook, inventory, &anchor.name, |host| {
        let host_facts = by_name[host.name.as_str()];
        let mut context = TemplateContext::new(inventory, host, anchor);
        context.current =
            current_context(host_facts, bootstrap_multiaddr(host, host_facts, target));
        context.anchor.peer_id = anchor_facts.peer_id.clone();
        context.anchor.multiaddr = anchor_multiaddr.clone();
        context.run = RunContext::new(run_id, bin_dir(host));
        context.vars.insert(
            "recovery".parse().expect("a valid name"),
            with_force_local(recovery.clone(), host_facts),
        );
        context
    })?;
    let mut reasons = choice.findings.clone();
    reasons.push(format!("source: {}", choice.reason));
    let parts = PlanParts {
        playbook: playbook.path.clone(),
        expected_downtime: crate::plan::RECOVERY_DOWNTIME.to_string(),
        backups: backups(choice, anchor, run_id),
        choice: Choice {
            procedure: ProcedureKind::Recover,
            from: choice.from,
            to: target,
            reasons,
            warnings: choice.warnings.clone(),
            anchor: Some(anchor.name.clone()),
            via: Vec::new(),
            undoes: None,
        },
        steps,
    };
    Ok(origin.plan(inventory, facts, parts))
}

/// The `recovery` variable of one host: whether its `state import` and `state cleanup` take a
/// local `-f` (from 0.10; before, only the global one).
fn with_force_local(mut recovery: serde_json::Value, facts: &HostFacts) -> serde_json::Value {
    recovery["force_local"] = json!(facts
        .service_version
        .is_some_and(|v| v >= Version::new(0, 10, 0)));
    recovery
}

/// The `recovery` variable, the same for every host.
fn recovery_var(
    choice: &SourceChoice,
    export: Option<&ExportFile>,
    anchor: &Host,
    run_id: &str,
) -> serde_json::Value {
    let backup = match &choice.source.origin {
        Origin::Backup { folder } => folder.clone(),
        _ => String::new(),
    };
    json!({
        "source": choice.source.origin.kind(),
        "backup": backup,
        "snapshot": choice.source.snapshot.clone().unwrap_or_default(),
        "export_file": export.map(|e| e.path.display().to_string()).unwrap_or_default(),
        "export_sha256": export.map(|e| e.sha256.to_string()).unwrap_or_default(),
        "export_path": remote_export_path(anchor, run_id),
        "backup_file": EXPORT_BACKUP,
    })
}

/// The address the others bootstrap to: the running peer's, else the config's listen address
/// (a wildcard replaced by the inventory address), with the peer ID in the target's style.
pub fn bootstrap_multiaddr(host: &Host, facts: &HostFacts, target: Version) -> Option<String> {
    let peer_id = facts.peer_id.as_deref()?;
    let network = match host.address.ip() {
        Some(IpAddr::V4(_)) => "ip4",
        Some(IpAddr::V6(_)) => "ip6",
        None => "dns4",
    };
    let own = format!("/{network}/{}", host.address);
    let listen = match facts.listen_multiaddress.as_deref() {
        Some(listen) => {
            let transport = listen
                .splitn(4, '/')
                .nth(3)
                .map_or("tcp/9096".to_string(), str::to_string);
            let wildcard = listen.starts_with("/ip4/0.0.0.0/") || listen.starts_with("/ip6/::/");
            if wildcard {
                format!("{own}/{transport}")
            } else {
                listen.trim_end_matches('/').to_string()
            }
        }
        None => format!("{own}/tcp/9096"),
    };
    Some(format!("{listen}/{}/{peer_id}", target.peer_id_protocol()))
}

fn bin_dir(host: &Host) -> &str {
    host.vars.bin_dir()
}

fn facts_of<'a>(facts: &'a [HostFacts], host: &Host) -> &'a HostFacts {
    facts
        .iter()
        .find(|f| f.host == host.name.as_str())
        .expect("facts checked against the inventory")
}

fn backups(choice: &SourceChoice, anchor: &Host, run_id: &str) -> Vec<String> {
    let mut list = vec![
        "previous binaries on every host: <bin_dir>/ipfs-cluster-{service,ctl}.prev and the run's folder \
         <bin_dir>/.cluster-upgrade/backup/<run id>/"
            .to_string(),
        format!(
            "the recovered pinset: exported with the old version to {} on {}, and copied into the run directory on the controller",
            remote_export_path(anchor, run_id),
            anchor.name
        ),
    ];
    if let Origin::Backup { folder } = &choice.source.origin {
        list.push(format!("{folder} on {} becomes raft again; a raft folder already there is kept as raft.before-recover.<run id>", anchor.name));
    }
    list.push("raft state of every peer: `state cleanup` keeps it as raft.old.0 (a folder without a snapshot is deleted)".to_string());
    list
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .join("tests/fixtures/inventory/recover.yaml");
        Inventory::from_text(&path, &text, &[]).unwrap_or_else(|error| panic!("{error}"))
    }

    fn playbook() -> Procedure {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/recover.yaml");
        Procedure::load(&path).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn a_backup_source_is_restored_exported_and_bootstrapped_to() {
        use crate::facts::StoredState;
        let inventory = lab_inventory();
        let facts: Vec<HostFacts> = (1..=3)
            .map(|n| HostFacts {
                host: format!("h{n}").parse().unwrap(),
                service_version: Some(Version::new(0, 9, 0)),
                peer_id: Some(format!("Qm{n}")),
                listen_multiaddress: Some("/ip4/0.0.0.0/tcp/9096".into()),
                stored_states: if n == 1 {
                    vec![StoredState {
                        folder: "raft.old.0".into(),
                        snapshot: Some("3-9-1".into()),
                        first_byte: Some(5),
                    }]
                } else {
                    Vec::new()
                },
                ..HostFacts::default()
            })
            .collect();
        let choice = crate::recover::choose_source(&facts, Version::new(0, 10, 1), None).unwrap();
        let playbook = playbook();
        let plan = build_recovery_plan(RecoveryInputs {
            inventory: &inventory,
            playbook: &playbook,
            facts: &facts,
            choice: &choice,
            export: None,
            origin: &crate::plan::PlanOrigin::example(&inventory),
        })
        .unwrap();
        assert_eq!(plan.choice.procedure, ProcedureKind::Recover);
        assert_eq!(plan.choice.anchor.as_deref(), Some("h1"));
        let step = |id: &str| plan.steps.iter().find(|s| s.id == id);
        assert!(step("upload-export").is_none(), "no export was given");
        let hosts = |id: &str| {
            step(id)
                .unwrap()
                .hosts
                .iter()
                .map(|h| h.host.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(hosts("restore-backup"), ["h1"]);
        assert_eq!(hosts("import-state"), ["h1"]);
        assert_eq!(hosts("bootstrap-others"), ["h2", "h3"]);
        let restore = step("restore-backup").unwrap().hosts[0]
            .command
            .clone()
            .unwrap();
        assert!(restore.contains("mv raft.old.0 raft"), "{restore}");
        // 0.9 takes only the global --force for state cleanup and import.
        let import = step("import-state").unwrap().hosts[0]
            .command
            .clone()
            .unwrap();
        assert!(import.contains("--force --config /lab/cfg state import /lab/bin/.cluster-upgrade/backup/20261204T000000Z-0001/state-export.json"), "{import}");
        assert!(!import.contains("import -f"), "{import}");
        let keep = &step("keep-export").unwrap().hosts[0];
        assert_eq!(
            keep.command.as_deref(),
            Some("cat /lab/bin/.cluster-upgrade/backup/20261204T000000Z-0001/state-export.json")
        );
        assert_eq!(keep.backup.as_deref(), Some(EXPORT_BACKUP));
        let start = step("bootstrap-others").unwrap().hosts[0]
            .command
            .clone()
            .unwrap();
        assert_eq!(
            start,
            "/lab/bin/svc start --bootstrap /ip4/127.9.9.2/tcp/9096/ipfs/Qm1"
        );
        assert_eq!(
            step("start-source").unwrap().hosts[0].command.as_deref(),
            Some("/lab/bin/svc start --upgrade")
        );
    }

    fn host(address: &str) -> Host {
        let text = format!(
            "cluster:\n  name: lab\n  target_version: \"0.10.1\"\n  releases:\n    source: local\n    path: releases\n\
             ssh:\n  known_hosts: /dev/null\nhosts:\n  - name: h1\n    address: \"{address}\"\n    user: root\n"
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/inventory/recover.yaml");
        match Inventory::from_text(&path, &text, &[]) {
            Ok(inventory) => inventory.hosts[0].clone(),
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn a_stopped_peer_is_bootstrapped_to_from_its_config() {
        let facts = HostFacts {
            peer_id: Some("QmA".into()),
            listen_multiaddress: Some("/ip4/0.0.0.0/tcp/9096".into()),
            ..HostFacts::default()
        };
        let h = host("127.9.9.2");
        assert_eq!(
            bootstrap_multiaddr(&h, &facts, Version::new(0, 10, 1)).as_deref(),
            Some("/ip4/127.9.9.2/tcp/9096/ipfs/QmA")
        );
        assert_eq!(
            bootstrap_multiaddr(&h, &facts, Version::new(1, 1, 6)).as_deref(),
            Some("/ip4/127.9.9.2/tcp/9096/p2p/QmA")
        );
        let bound = HostFacts {
            listen_multiaddress: Some("/ip4/10.0.0.5/tcp/9196".into()),
            ..facts.clone()
        };
        assert_eq!(
            bootstrap_multiaddr(&h, &bound, Version::new(0, 10, 1)).as_deref(),
            Some("/ip4/10.0.0.5/tcp/9196/ipfs/QmA")
        );
        let unknown = HostFacts {
            listen_multiaddress: None,
            ..facts
        };
        assert_eq!(
            bootstrap_multiaddr(&h, &unknown, Version::new(0, 10, 1)).as_deref(),
            Some("/ip4/127.9.9.2/tcp/9096/ipfs/QmA")
        );
        assert_eq!(
            bootstrap_multiaddr(&h, &HostFacts::default(), Version::new(0, 10, 1)),
            None
        );
    }
}
