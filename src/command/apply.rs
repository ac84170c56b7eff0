//! `cluster-upgrade apply`: run a plan with a write-ahead journal, or resume the unfinished run
//! of the same cluster.

use crate::cli::{ApplySettings, ApplyTarget};
use crate::error::Error;
use crate::facts::{HostFacts, ProbeScope};
use crate::inventory::Inventory;
use crate::journal::{Checkpoint, StateDir};
use crate::plan::{final_gate_problems, stale_changes, ClusterId, Plan, Playbooks, Reach};
use crate::report;

use super::plan::{self as plan_cmd};
use super::run::{self, Leased, RunOptions, RunRequest};
use super::{inputs, plan_file, preflight, resume, state};
use crate::exec::{Claim, Claims, Connected, LeaseRequest};
use crate::inventory::HostName;
use crate::journal::RunId;
use crate::plan::{PlanInputs, Planned};

/// What `apply` was asked to run, read and checked before anything else.
enum Request {
    /// An inventory, loaded and validated: plan now, then apply.
    Inventory {
        inventory: Box<Inventory>,
        playbooks: Box<Playbooks>,
    },
    /// A saved plan (sealed, checked).
    Plan(Box<Plan>),
    /// The plan `plan` saved last in the state directory.
    Latest,
}

impl Request {
    fn read(target: &ApplyTarget) -> Result<Request, Error> {
        Ok(match target {
            ApplyTarget::Latest => Request::Latest,
            ApplyTarget::Plan(path) => Request::Plan(Box::new(plan_file::read_plan(path)?)),
            ApplyTarget::Inventory(input) => {
                let (inventory, playbooks) = inputs::load(input)?;
                Request::Inventory {
                    inventory: Box::new(inventory),
                    playbooks: Box::new(playbooks),
                }
            }
        })
    }

    /// The inventory whose state directory is used (none for a bare `apply`).
    fn inventory(&self) -> Option<&std::path::Path> {
        match self {
            Request::Inventory { inventory, .. } => Some(&inventory.path),
            Request::Plan(plan) => Some(&plan.inventory),
            Request::Latest => None,
        }
    }

    /// The cluster it is for; `None`: whichever has an unfinished run.
    fn cluster(&self) -> Result<Option<ClusterId>, Error> {
        Ok(match self {
            Request::Inventory { inventory, .. } => Some(plan_cmd::cluster_id(inventory)?),
            Request::Plan(plan) => Some(plan.cluster_id.clone()),
            Request::Latest => None,
        })
    }
}

pub fn apply(settings: &ApplySettings) -> Result<(), Error> {
    // The input first: an invalid inventory or plan is refused before anything else happens.
    let request = Request::read(&settings.target)?;
    let state = StateDir::resolve(settings.run.state_dir.as_deref(), request.inventory());
    for note in state.prepare()? {
        report::note(&note);
    }
    run::confirmation_possible(settings.run.yes)?;
    let _lock = state.lock()?;
    report::log_to_file(&state.root.join("apply.log"));

    let (unfinished, others) = state::unfinished_of(&state, request.cluster()?.as_ref())?;
    for other in &others {
        report::note(&format!(
            "not resumed: run {} is unfinished too (resume it with `cluster-upgrade apply {}`)",
            other.describe(),
            other.summary.inventory.display()
        ));
    }
    match unfinished {
        Some(unfinished) => resume(settings, &state, unfinished, &request),
        None => fresh(settings, &state, request),
    }
}

fn options(settings: &ApplySettings) -> RunOptions<'_> {
    RunOptions {
        retry_in_flight: settings.run.retry_in_flight,
        take_over: settings.run.take_over.as_ref(),
    }
}

/// Resumes the cluster's unfinished run: only the run a saved plan names, without options
/// that would change it, once the hosts are still as the journal left them and the operator
/// agreed.
fn resume(
    settings: &ApplySettings,
    state: &StateDir,
    unfinished: state::Unfinished,
    request: &Request,
) -> Result<(), Error> {
    if let Request::Plan(plan) = request {
        if plan.run_id != unfinished.plan.run_id {
            return Err(Error::unfinished(
                unfinished.plan.choice.procedure,
                unfinished.dir.id().to_string(),
                unfinished.plan.inventory.clone(),
            ));
        }
    }
    resume::run_again(resume::Again {
        state,
        unfinished,
        planning_options: &settings.planning_options,
        run: &settings.run,
        options: options(settings),
        resumer: resume::Resumer::Apply,
        after: &|_run, plan: &Plan, now: &[HostFacts]| Ok(verify(plan, now)),
    })
}

/// A new run: plan from the inventory (or take the saved plan, checked against the cluster as
/// it is now), show it, ask, run. With `--yes` nothing stands between the plan and the run, so
/// the planning probe takes the hosts' lease in the same round trip (docs/adr/0023); every
/// refusal after it gives the lease back.
fn fresh(settings: &ApplySettings, state: &StateDir, request: Request) -> Result<(), Error> {
    let replaceable = state::lease_replaceable(state, settings.run.take_over.as_ref())?;
    let lease = |run_id: &RunId| {
        settings.run.yes.then(|| LeaseRequest {
            lease: run::lease_of(run_id, state),
            replaceable: replaceable.clone(),
        })
    };
    let (plan, probed) = match request {
        Request::Inventory {
            inventory,
            playbooks,
        } => {
            let origin = plan_cmd::origin(plan_cmd::cluster_id(&inventory)?, Reach::of(&inventory));
            // The run reuses these connections: one per host for the whole apply.
            let probed = Probed::open(&origin.reach, lease(&origin.run_id))?;
            let planned = plan_cmd::make_plan(PlanInputs {
                inventory: &inventory,
                playbooks: &playbooks,
                facts: &probed.facts,
                requested: settings.procedure,
                origin: &origin,
            });
            match planned {
                Ok(Planned::Plan(plan)) => (plan, probed),
                Ok(Planned::Converged { target, hosts }) => {
                    probed.release();
                    plan_cmd::report_converged(target, hosts, report::Printer::current().json);
                    return Ok(());
                }
                Err(error) => {
                    probed.release();
                    return Err(error);
                }
            }
        }
        Request::Plan(plan) => saved(settings, state, plan, lease)?,
        Request::Latest => {
            let path = state.latest_plan();
            if !path.exists() {
                return Err(Error::NoPlan { path });
            }
            saved(
                settings,
                state,
                Box::new(plan_file::read_plan(&path)?),
                lease,
            )?
        }
    };
    let leased = match ready(settings, state, &plan, &probed) {
        Ok(leased) => leased,
        Err(error) => {
            probed.release();
            return Err(error);
        }
    };
    let run = state.run(&plan.run_id);
    let request = RunRequest {
        state,
        run: &run,
        plan: &plan,
        checkpoint: Checkpoint::default(),
        options: options(settings),
        resumed: false,
        resets: Vec::new(),
        connected: probed.connected,
        lease: leased,
    };
    run::run_plan(request, &|now: &[HostFacts]| Ok(verify(&plan, now)))
}

/// The checks between the plan and the run (leases, room for backups), the plan shown and the
/// operator's yes: whether the lease is still to take.
fn ready(
    settings: &ApplySettings,
    state: &StateDir,
    plan: &Plan,
    probed: &Probed,
) -> Result<Leased, Error> {
    let replaceable = state::lease_replaceable(state, settings.run.take_over.as_ref())?;
    plan_cmd::check_leases(&probed.facts, None, &replaceable)?;
    let leased = match &probed.claims {
        None => Leased::ToTake,
        Some((_, claims)) => {
            let hosts: Vec<&HostName> = plan.reach.hosts.iter().map(|h| &h.name).collect();
            Leased::Taken(run::claimed(&hosts, claims)?)
        }
    };
    preflight::check_room(state, plan, &Checkpoint::default(), &probed.facts)?;
    report::print(&report::render_plan(plan));
    run::confirm(
        settings.run.yes,
        &format!(
            "Apply the {} procedure to {} hosts?",
            plan.choice.procedure,
            plan.facts.len()
        ),
    )?;
    Ok(leased)
}

/// The hosts connected and probed for a new run, and the lease claims when the probe took the
/// lease too.
struct Probed {
    connected: Connected,
    facts: Vec<HostFacts>,
    /// The run whose lease the probe took, and the claim on each host.
    claims: Option<(String, Claims)>,
}

impl Probed {
    /// Connects and probes every host (`ProbeScope::FULL`), taking `lease` in the same command.
    fn open(reach: &Reach, lease: Option<LeaseRequest>) -> Result<Probed, Error> {
        Ok(match lease {
            None => {
                let (connected, facts) = Connected::open_and_probe(reach, ProbeScope::FULL)?;
                Probed {
                    connected,
                    facts,
                    claims: None,
                }
            }
            Some(request) => {
                let (connected, facts, claims) =
                    Connected::open_probe_and_claim(reach, ProbeScope::FULL, &request)?;
                Probed {
                    connected,
                    facts,
                    claims: Some((request.lease.run_id, claims)),
                }
            }
        })
    }

    /// Gives the lease back where the probe took it (or replaced another run's): the run
    /// does not start.
    fn release(&self) {
        let Some((run_id, claims)) = &self.claims else {
            return;
        };
        let ours: Vec<HostName> = claims
            .iter()
            .filter(|(_, claim)| matches!(claim, Claim::Taken | Claim::Replaced(_)))
            .map(|(host, _)| host.clone())
            .collect();
        if !ours.is_empty() {
            self.connected.release_lease(run_id, &ours);
        }
    }
}

/// A saved plan, checked against the cluster as it is now: refused when it was applied
/// already, or is stale.
fn saved(
    settings: &ApplySettings,
    state: &StateDir,
    plan: Box<Plan>,
    lease: impl Fn(&RunId) -> Option<LeaseRequest>,
) -> Result<(Box<Plan>, Probed), Error> {
    if state.run(&plan.run_id).journal_path().exists() {
        return Err(Error::AlreadyApplied {
            run_id: plan.run_id.to_string(),
        });
    }
    let mut plan = plan;
    plan.reach = plan.reach.overridden(&settings.run.ssh);
    let probed = Probed::open(&plan.reach, lease(&plan.run_id))?;
    let changes = stale_changes(&plan, &probed.facts);
    if !changes.is_empty() {
        probed.release();
        return Err(Error::StalePlan { changes });
    }
    Ok((plan, probed))
}

/// The final gate: every peer on the target, running, seeing all the others, with the pinset
/// it had before (count and hash of the sorted CIDs).
pub(super) fn verify(plan: &Plan, now: &[HostFacts]) -> Vec<String> {
    final_gate_problems(&plan.facts, plan.choice.to, now, plan.choice.procedure)
}
