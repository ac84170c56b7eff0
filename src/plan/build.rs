//! Builds the plan: the procedure choice, then every step of the chosen playbook rendered for
//! every host it runs for, from the inventory and the facts. Pure: no I/O.

use std::collections::HashMap;

use super::choice::{choose, Choice, ProcedureKind, Refusal};
use super::health::membership_problems;
use super::model::{ClusterId, Plan, PlannedStep, Reach, PLAN_FORMAT};
use crate::facts::{HostFacts, Pinset};
use crate::inventory::{Host, HostName, HumanDuration, Inventory};
use crate::journal::RunId;
use crate::procedure::{
    AnchorContext, ClusterContext, CurrentContext, HostContext, Mode, PinsContext, Procedure,
    ReleaseContext, RenderError, RenderedStep, RestApiContext, RunContext, TargetContext,
    TemplateContext,
};

/// The two playbooks the planner chooses between.
#[derive(Debug, Clone)]
pub struct Playbooks {
    pub standard: Procedure,
    pub bootstrap: Procedure,
    pub rolling: Procedure,
}

/// What the planner needs.
#[derive(Debug, Clone, Copy)]
pub struct PlanInputs<'a> {
    pub inventory: &'a Inventory,
    pub playbooks: &'a Playbooks,
    /// Facts of every inventory host, in inventory order.
    pub facts: &'a [HostFacts],
    /// `--procedure`.
    pub requested: Option<ProcedureKind>,
    /// The run, cluster and time the plan is made for.
    pub origin: &'a PlanOrigin,
}

/// What names a plan: its run, its cluster, when it was made (the planner reads no clock) and
/// how its hosts were reached (the inventory's, under the command line's SSH options).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOrigin {
    /// Names the run: the run directory, and the remote backup folder of the binaries.
    pub run_id: RunId,
    pub cluster_id: ClusterId,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    pub reach: Reach,
}

impl PlanOrigin {
    /// An origin for tests: a fixed run id and time, the inventory's hosts.
    #[cfg(test)]
    pub fn example(inventory: &Inventory) -> PlanOrigin {
        PlanOrigin {
            run_id: "20261204T000000Z-0001".parse().expect("a run id"),
            cluster_id: ClusterId::of(inventory, "/inventory.yaml".into()),
            created_unix: 1_796_400_000,
            reach: Reach::of(inventory),
        }
    }

    /// The header every plan starts with: format, run, cluster and how its hosts are reached.
    pub fn plan(&self, inventory: &Inventory, facts: &[HostFacts], parts: PlanParts) -> Plan {
        Plan {
            format: PLAN_FORMAT,
            run_id: self.run_id.clone(),
            created_unix: self.created_unix,
            inventory: self.cluster_id.inventory.clone(),
            cluster: inventory.cluster.name.clone(),
            cluster_id: self.cluster_id.clone(),
            reach: self.reach.clone(),
            playbook: parts.playbook,
            choice: parts.choice,
            facts_fingerprint: Plan::fingerprint(facts),
            facts: facts.to_vec(),
            steps: parts.steps.steps,
            on_demand: parts.steps.on_demand,
            expected_downtime: parts.expected_downtime,
            backups: parts.backups,
        }
    }
}

/// What a planner decided, put under a plan's header by [`PlanOrigin::plan`].
#[derive(Debug)]
pub struct PlanParts {
    pub playbook: std::path::PathBuf,
    pub choice: Choice,
    pub steps: PlanSteps,
    pub expected_downtime: String,
    pub backups: Vec<String>,
}

/// A procedure's steps rendered for a plan: the regular ones, and those that run only on the
/// peers the controller picks for them at run time (`on_demand:`), each list rolled.
#[derive(Debug, Default)]
pub struct PlanSteps {
    pub steps: Vec<PlannedStep>,
    pub on_demand: Vec<PlannedStep>,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("upgrade refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("the facts do not match the inventory: expected host {expected}, found {found}")]
    FactsMismatch { expected: String, found: String },
}

impl PlanError {
    /// The refusal, when the plan was refused as unsafe.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            PlanError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

/// What a recovery plan says about downtime.
pub const RECOVERY_DOWNTIME: &str =
    "the cluster is down from `stop-all` until the source peer has started alone with the \
     whole pinset; the other peers rejoin one by one after it";

/// What a raft → crdt migration plan says about downtime.
pub const ROLLING_DOWNTIME: &str =
    "none: one peer at a time is down (seconds each), the others keep serving and accepting pins";

pub const MIGRATION_DOWNTIME: &str =
    "the cluster is down from `stop-peers` until the anchor has started alone with the whole \
     pinset (the export, the config switch and the import take seconds for thousands of pins); \
     the other peers then start together and list the pinset after the anchor's next rebroadcast \
     of its CRDT heads (`rebroadcast_interval`, 1 minute by default)";

/// Chooses the procedure and renders it.
pub fn build_plan(inputs: PlanInputs<'_>) -> Result<Plan, PlanError> {
    build_stage(inputs, inputs.origin.run_id.as_str())
}

/// [`build_plan`], with `run_label` naming the run in the rendered commands (one stage of a
/// staged plan has its own).
pub(super) fn build_stage(inputs: PlanInputs<'_>, run_label: &str) -> Result<Plan, PlanError> {
    let PlanInputs {
        inventory,
        playbooks,
        facts,
        requested,
        origin,
    } = inputs;
    check_facts_match(inventory, facts)?;
    // Unreachable hosts are refused by `choose`, naming why; only a cluster whose every host
    // answered can be compared with its peerset.
    let problems = membership_problems(facts);
    if facts.iter().all(HostFacts::is_reachable) && !problems.is_empty() {
        return Err(Refusal::NotWholeCluster { problems }.into());
    }
    // A Docker host whose container could not be recreated safely is refused before the
    // choice (which would only see a host without a version).
    let container_warnings = super::container::check_containers(inventory, facts)?;
    let mut choice = choose(facts, inventory.cluster.target_version, requested)?;
    choice.warnings.extend(container_warnings);
    let procedure = match choice.procedure {
        ProcedureKind::Standard => &playbooks.standard,
        ProcedureKind::Bootstrap => &playbooks.bootstrap,
        ProcedureKind::Rolling => &playbooks.rolling,
        ProcedureKind::Recover | ProcedureKind::Migrate | ProcedureKind::Rollback => {
            unreachable!(
                "`choose` never picks recover, migrate or rollback; their modules plan them"
            )
        }
    };
    // The standard playbook has no anchor steps; the last host stands in so contexts are whole.
    let anchor = match &choice.anchor {
        Some(name) => inventory
            .host(name)
            .expect("the anchor is an inventory host"),
        None => inventory
            .hosts
            .last()
            .expect("a validated inventory has hosts"),
    };
    let anchor_facts = facts_of(facts, anchor);
    let shared = SharedContext {
        inventory,
        anchor,
        anchor_facts,
        cluster: ClusterContext {
            pins: pins_context(facts),
            ..ClusterContext::new(inventory)
        },
        run_id: run_label,
    };
    let by_name: HashMap<&str, &HostFacts> = facts.iter().map(|f| (f.host.as_str(), f)).collect();
    let steps = render_steps(procedure, inventory, &anchor.name, |host| {
        shared.context_for(host, by_name[host.name.as_str()])
    })?;
    let parts = PlanParts {
        playbook: procedure.path.clone(),
        expected_downtime: expected_downtime(&choice),
        backups: backups(&choice, inventory, &steps.steps),
        choice,
        steps,
    };
    Ok(origin.plan(inventory, facts, parts))
}

fn check_facts_match(inventory: &Inventory, facts: &[HostFacts]) -> Result<(), PlanError> {
    for (index, host) in inventory.hosts.iter().enumerate() {
        let found = facts.get(index).map_or("nothing", |f| f.host.as_str());
        if found != host.name.as_str() {
            return Err(PlanError::FactsMismatch {
                expected: host.name.to_string(),
                found: found.to_string(),
            });
        }
    }
    if let Some(extra) = facts.get(inventory.hosts.len()) {
        return Err(PlanError::FactsMismatch {
            expected: "no more hosts".into(),
            found: extra.host.to_string(),
        });
    }
    Ok(())
}

fn facts_of<'a>(facts: &'a [HostFacts], host: &Host) -> &'a HostFacts {
    facts
        .iter()
        .find(|f| f.host == host.name.as_str())
        .expect("facts checked against the inventory")
}

/// What every host's template context shares.
struct SharedContext<'a> {
    inventory: &'a Inventory,
    anchor: &'a Host,
    anchor_facts: &'a HostFacts,
    cluster: ClusterContext,
    run_id: &'a str,
}

impl SharedContext<'_> {
    fn context_for(&self, host: &Host, facts: &HostFacts) -> TemplateContext {
        let bin_dir = host.vars.bin_dir();
        TemplateContext {
            vars: host.vars.clone(),
            host: HostContext::new(host),
            cluster: self.cluster.clone(),
            target: TargetContext::new(self.inventory.cluster.target_version),
            current: CurrentContext {
                pebble_raise_to: super::pebble::raise_to(
                    facts,
                    self.inventory.cluster.target_version,
                ),
                container: facts.container.as_ref().and_then(|c| c.found()).map(|c| {
                    super::container::container_context(c, self.inventory.cluster.target_version)
                }),
                ..current_context(facts, facts.multiaddr.clone())
            },
            anchor: AnchorContext {
                name: self.anchor.name.to_string(),
                peer_id: self.anchor_facts.peer_id.clone(),
                multiaddr: self.anchor_facts.multiaddr.clone(),
                vars: self.anchor.vars.clone(),
                rest_api: RestApiContext::of(&self.anchor.vars),
            },
            release: ReleaseContext::new(&self.inventory.cluster, bin_dir),
            run: RunContext::new(self.run_id, bin_dir),
            rest_api: RestApiContext::of(&host.vars),
        }
    }
}

fn expected_downtime(choice: &Choice) -> String {
    match choice.procedure {
        ProcedureKind::Recover => RECOVERY_DOWNTIME.to_string(),
        ProcedureKind::Migrate => MIGRATION_DOWNTIME.to_string(),
        ProcedureKind::Rolling | ProcedureKind::Rollback => ROLLING_DOWNTIME.to_string(),
        ProcedureKind::Standard => "every peer is down from `stop-peers` until the simultaneous restart elects a leader: \
             typically a few seconds, at most the health gate's deadline; \
             no pin can be written meanwhile, and pins written after planning stop the run before `stop-peers`"
            .to_string(),
        ProcedureKind::Bootstrap => format!(
            "the cluster shrinks to {} while the other peers are removed; it is down while {} is stopped, upgraded \
             and restarted (seconds); the other peers rejoin one by one",
            choice.anchor.as_deref().unwrap_or("the anchor"),
            choice.anchor.as_deref().unwrap_or("the anchor"),
        ),
    }
}

/// Hosts whose state a step exports to the controller.
fn steps_with_backups(steps: &[PlannedStep]) -> Vec<&str> {
    steps
        .iter()
        .flat_map(|s| &s.hosts)
        .filter(|h| h.backup.is_some())
        .map(|h| h.host.as_str())
        .collect()
}

fn backups(choice: &Choice, inventory: &Inventory, steps: &[PlannedStep]) -> Vec<String> {
    let docker = inventory
        .hosts
        .iter()
        .filter(|h| h.vars.is_docker())
        .count();
    let mut list = Vec::new();
    if docker < inventory.hosts.len() {
        list.push(
            "previous binaries on every host: <bin_dir>/ipfs-cluster-{service,ctl}.prev and the run's folder \
             <bin_dir>/.cluster-upgrade/backup/<run id>/"
                .to_string(),
        );
    }
    if docker > 0 {
        list.push(
            "each Docker host's container as it was: its `docker inspect` and its environment (a private file) in the run's folder \
             <bin_dir>/.cluster-upgrade/backup/<run id>/; its old image stays in the host's image store"
                .to_string(),
        );
    }
    let target = inventory.cluster.target_version;
    let exports: Vec<&str> = steps_with_backups(steps);
    if !exports.is_empty() {
        list.push(format!(
            "state export with the old release, copied to the controller (run directory, backups/) from {}",
            exports.join(", ")
        ));
    }
    match choice.procedure {
        ProcedureKind::Standard if choice.from.state_format() != target.state_format() => list.push(
            "raft state: `daemon --upgrade` migrates it and keeps the old folder as raft.old.0 on every peer".to_string(),
        ),
        ProcedureKind::Standard
        | ProcedureKind::Recover
        | ProcedureKind::Rolling
        | ProcedureKind::Migrate
        | ProcedureKind::Rollback => {}
        ProcedureKind::Bootstrap => {
            list.push("raft state of every removed peer: moved to raft.old.0 by the peer itself when it is removed".to_string());
            if target.has_state_upgrade() {
                list.push(format!(
                    "raft state of {}: `state upgrade` keeps the old folder as raft.old.0",
                    choice.anchor.as_deref().unwrap_or("the anchor")
                ));
            }
        }
    }
    list
}

/// Renders every step of `procedure` for the hosts it runs on, each host's context built (by
/// `context_of`) and converted for the templates once; steps that run nowhere are left out.
/// Steps without a timeout get the inventory's `ssh.command_timeout`. On failure, the error is
/// the first in step order, then host order.
///
/// Large inventories are split into consecutive slices rendered on a few threads (rendering is
/// most of planning's work, and each host's is independent); the result is the same.
/// `current` of a host from its facts, with `multiaddr` as the caller computes it; no pebble
/// raise (the upgrade planner sets one).
pub fn current_context(facts: &HostFacts, multiaddr: Option<String>) -> CurrentContext {
    CurrentContext {
        version: facts.service_version.map(|v| v.to_string()),
        state_format: facts.state_format,
        peer_id: facts.peer_id.clone(),
        multiaddr,
        datastore: facts.datastore.clone(),
        pebble_format: facts.pebble_format,
        pebble_store_format: facts.pebble_store_format,
        pebble_raise_to: None,
        unit_user: facts.unit.as_ref().and_then(|u| u.user.clone()),
        exec_start: facts
            .unit
            .as_ref()
            .map(|u| u.exec_start.clone())
            .filter(|words| !words.is_empty()),
        container: None,
    }
}

/// `cluster.pins`: the pinset most peers list.
pub fn pins_context(facts: &[HostFacts]) -> Option<PinsContext> {
    Pinset::expected(facts).map(|p| PinsContext {
        count: p.count,
        hash: p.hash.to_string(),
    })
}

pub fn render_steps(
    procedure: &Procedure,
    inventory: &Inventory,
    anchor: &HostName,
    context_of: impl Fn(&Host) -> TemplateContext + Sync,
) -> Result<PlanSteps, RenderError> {
    let job = RenderJob {
        procedure,
        anchor,
        timeout: inventory.ssh.command_timeout,
        context_of: &context_of,
    };
    let hosts = &inventory.hosts;
    let slice = hosts.len().div_ceil(render_threads(hosts.len())).max(1);
    let parts: Vec<Rendered> = if slice >= hosts.len() {
        vec![job.render(hosts)]
    } else {
        std::thread::scope(|scope| {
            let (first, rest) = hosts.split_at(slice);
            let threads: Vec<_> = rest
                .chunks(slice)
                .map(|part| scope.spawn(|| job.render(part)))
                .collect();
            // This thread takes the first slice: its allocator reuses what loading freed.
            let mut parts = vec![job.render(first)];
            parts.extend(threads.into_iter().map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }));
            parts
        })
    };
    let mut steps: Vec<Vec<RenderedStep>> = vec![Vec::new(); procedure.steps.len()];
    let mut failure: Option<(usize, RenderError)> = None;
    for part in parts {
        // Slices are in host order: a later slice's error comes first only at an earlier step.
        match (part.failure, &failure) {
            (Some((index, error)), None) => failure = Some((index, error)),
            (Some((index, error)), Some((first, _))) if index < *first => {
                failure = Some((index, error))
            }
            _ => {}
        }
        for (all, mut more) in steps.iter_mut().zip(part.steps) {
            all.append(&mut more);
        }
    }
    if let Some((_, error)) = failure {
        return Err(error);
    }
    let (mut regular, mut on_demand) = (Vec::new(), Vec::new());
    for (spec, hosts) in procedure.steps.iter().zip(steps) {
        if hosts.is_empty() {
            continue;
        }
        let step = PlannedStep {
            id: spec.id.clone(),
            name: spec.name.clone(),
            mode: spec.mode,
            destructive: spec.destructive,
            on_resume: spec.on_resume,
            takes_quorum: spec.takes_quorum,
            hosts,
        };
        match spec.on_demand {
            None => regular.push(step),
            Some(_) => on_demand.push(step),
        }
    }
    Ok(PlanSteps {
        steps: roll(regular),
        on_demand: roll(on_demand),
    })
}

/// Expands every group of consecutive rolling steps into one single-host step per host and
/// step, host after host (in the order of the group's first step): the whole group runs on a
/// host before the next host starts it. Other steps are kept as they are.
pub fn roll(steps: Vec<PlannedStep>) -> Vec<PlannedStep> {
    let mut out = Vec::with_capacity(steps.len());
    let mut group: Vec<PlannedStep> = Vec::new();
    let flush = |group: &mut Vec<PlannedStep>, out: &mut Vec<PlannedStep>| {
        let Some(first) = group.first() else {
            return;
        };
        let order: Vec<HostName> = first.hosts.iter().map(|h| h.host.clone()).collect();
        // Each step without its hosts (cheap to copy), and its hosts by name.
        let mut parts: Vec<(PlannedStep, HashMap<HostName, RenderedStep>)> = group
            .drain(..)
            .map(|mut step| {
                let hosts = std::mem::take(&mut step.hosts);
                let by_host = hosts.into_iter().map(|h| (h.host.clone(), h)).collect();
                (step, by_host)
            })
            .collect();
        for host in &order {
            for (step, by_host) in &mut parts {
                if let Some(rendered) = by_host.remove(host) {
                    out.push(PlannedStep {
                        hosts: vec![rendered],
                        ..step.clone()
                    });
                }
            }
        }
    };
    for step in steps {
        if step.mode == Mode::Rolling {
            group.push(step);
        } else {
            flush(&mut group, &mut out);
            out.push(step);
        }
    }
    flush(&mut group, &mut out);
    out
}

/// Threads for rendering `hosts` hosts: one per 1,000 hosts, at most one per core (and 8).
fn render_threads(hosts: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    hosts.div_ceil(1000).clamp(1, cores.min(8))
}

/// What every slice of hosts is rendered with.
struct RenderJob<'a, F> {
    procedure: &'a Procedure,
    anchor: &'a HostName,
    timeout: HumanDuration,
    context_of: &'a F,
}

/// One slice's steps (by step index, in host order) and its first failure.
struct Rendered {
    steps: Vec<Vec<RenderedStep>>,
    failure: Option<(usize, RenderError)>,
}

impl<F: Fn(&Host) -> TemplateContext> RenderJob<'_, F> {
    fn render(&self, hosts: &[Host]) -> Rendered {
        let procedure = self.procedure;
        let mut steps: Vec<Vec<RenderedStep>> = vec![Vec::new(); procedure.steps.len()];
        // The first failure so far, by step: later hosts still render the earlier steps, where
        // an error would come first.
        let mut failure: Option<(usize, RenderError)> = None;
        // Host by host, so only one converted context exists at a time: the plan itself is
        // what grows with the cluster.
        for host in hosts {
            let context = procedure.prepare(&(self.context_of)(host));
            for (index, spec) in procedure.steps.iter().enumerate() {
                if failure.as_ref().is_some_and(|(failed, _)| index >= *failed) {
                    break;
                }
                if !spec.on.includes(&host.name, self.anchor) {
                    continue;
                }
                match procedure.render_prepared(spec, &context) {
                    Ok(Some(mut step)) => {
                        step.timeout.get_or_insert(self.timeout);
                        steps[index].push(step);
                    }
                    Ok(None) => {}
                    Err(error) => failure = Some((index, error)),
                }
            }
        }
        Rendered { steps, failure }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(hosts: usize) -> Inventory {
        let sha = "0".repeat(64);
        let mut text = format!(
            "cluster:\n  name: t\n  target_version: \"0.10.1\"\n  releases:\n    source: url\n    \
             url: \"https://example.org/{{{{ version }}}}/{{{{ file }}}}\"\n    sha256:\n      \"0.10.1\":\n        \
             ipfs-cluster-service: {sha}\n        ipfs-cluster-ctl: {sha}\n\
             ssh:\n  known_hosts: /dev/null\ndefaults:\n  user: u\nhosts:\n"
        );
        for index in 1..=hosts {
            text.push_str(&format!(
                "  - name: h{index}\n    address: 127.0.{}.{}\n",
                index / 250,
                index % 250 + 1
            ));
        }
        Inventory::from_text(std::path::Path::new("inventory.yaml"), &text, &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn procedure(text: &str) -> Procedure {
        Procedure::from_text(std::path::Path::new("p.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn render(
        procedure: &Procedure,
        inventory: &Inventory,
    ) -> Result<Vec<PlannedStep>, RenderError> {
        let anchor = inventory.hosts.last().unwrap();
        render_steps(procedure, inventory, &anchor.name, |host| {
            TemplateContext::new(inventory, host, anchor)
        })
        .map(|rendered| rendered.steps)
    }

    #[test]
    fn a_large_inventory_renders_every_host_in_inventory_order() {
        // 2,500 hosts: rendered in slices on several threads where there are cores.
        let inventory = inventory(2_500);
        let steps = render(
            &procedure(
                "name: p\nsteps:\n  - id: a\n    name: A\n    on: all\n    command: echo {{ host.name }}\n\
                 \n  - id: b\n    name: B\n    on: anchor\n    command: echo anchor\n",
            ),
            &inventory,
        )
        .unwrap();
        let commands: Vec<&str> = steps[0]
            .hosts
            .iter()
            .map(|h| h.command.as_deref().unwrap())
            .collect();
        let expected: Vec<String> = (1..=2_500).map(|i| format!("echo h{i}")).collect();
        assert_eq!(commands, expected);
        assert_eq!(steps[1].hosts.len(), 1);
        assert_eq!(steps[1].hosts[0].host.as_str(), "h2500");
    }

    #[test]
    fn the_first_error_is_the_first_in_step_order_then_host_order() {
        // Step b fails for h10 (first slice), step a for h2400 and h2450 (last slice): the
        // error of a sequential step-by-step rendering is a's for h2400.
        let inventory = inventory(2_500);
        let fail = |hosts: &str| {
            format!("{{% if host.name in [{hosts}] %}}{{{{ fail(\"boom \" ~ host.name) }}}}{{% endif %}}x")
        };
        let text = format!(
            "name: p\nsteps:\n  - id: a\n    name: A\n    on: all\n    command: '{}'\n\
             \n  - id: b\n    name: B\n    on: all\n    command: '{}'\n",
            fail("\"h2400\", \"h2450\""),
            fail("\"h10\"")
        );
        let error = render(&procedure(&text), &inventory)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("step `a` for host `h2400`: command: boom h2400"),
            "{error}"
        );
    }

    #[test]
    fn on_demand_steps_are_rendered_apart_and_rolled_among_themselves() {
        let inventory = inventory(2);
        let step = |id: &str, extra: &str| {
            format!("  - id: {id}\n    name: {id}\n    on: all\n    mode: rolling\n{extra}    command: echo {id}\n")
        };
        let text = format!(
            "name: p\nsteps:\n{}{}{}{}",
            step("stop", ""),
            step("start", ""),
            step("resync-stop", "    on_demand: resync\n"),
            step("resync-start", "    on_demand: resync\n"),
        );
        let anchor = inventory.hosts.last().unwrap();
        let rendered = render_steps(&procedure(&text), &inventory, &anchor.name, |host| {
            TemplateContext::new(&inventory, host, anchor)
        })
        .unwrap();
        let order = |steps: &[PlannedStep]| -> Vec<String> {
            steps
                .iter()
                .map(|s| format!("{}@{}", s.id, s.hosts[0].host))
                .collect()
        };
        // The resync steps do not join the regular rolling group: they are not run per peer
        // with it, but only on the peers the controller picks, after it.
        assert_eq!(
            order(&rendered.steps),
            ["stop@h1", "start@h1", "stop@h2", "start@h2"]
        );
        assert_eq!(
            order(&rendered.on_demand),
            [
                "resync-stop@h1",
                "resync-start@h1",
                "resync-stop@h2",
                "resync-start@h2"
            ]
        );
    }
}
