//! The one step from the command line to settings: each subcommand's arguments (with their
//! environment variables, read by clap) become a plain settings struct, and the commands see
//! only those. Inventory defaults are merged when the inventory loads (`inventory::Overrides`).

use std::path::PathBuf;

use crate::inventory::{Overrides, SshOverrides};
use crate::journal::RunId;
use crate::plan::ProcedureKind;

use super::{
    AbandonArgs, ApplyArgs, CheckArgs, ConsensusArg, InventoryArgs, MigrateArgs, PlanArgs,
    ProcedureArg, RecoverArgs, RollbackArgs, RunArgs, RunsAction, RunsArgs, SshArgs, StatePlace,
    StatusArgs,
};

/// What a command runs, with its settings.
#[derive(Debug)]
pub enum Settings {
    Check(InventoryInput),
    Plan(PlanSettings),
    Apply(ApplySettings),
    Status(StatusSettings),
    Recover(RecoverSettings),
    Migrate(MigrateSettings),
    Rollback(RollbackSettings),
    Runs(RunsSettings),
    Abandon(AbandonSettings),
    Prune(PruneSettings),
}

/// An inventory to read, the playbooks beside it, and what the command line overrides in it.
#[derive(Debug, Clone)]
pub struct InventoryInput {
    pub inventory: PathBuf,
    /// `--playbooks DIR` (or `CLUSTER_UPGRADE_PLAYBOOKS`).
    pub playbooks: Option<PathBuf>,
    /// `--var`, `--ssh-config`, `--known-hosts`, `--accept-new-host-keys`, `--concurrency`.
    pub overrides: Overrides,
}

#[derive(Debug)]
pub struct PlanSettings {
    pub input: InventoryInput,
    pub procedure: Option<ProcedureKind>,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub state_dir: Option<PathBuf>,
    pub facts: Option<PathBuf>,
    pub take_over: Option<RunId>,
}

/// What `apply` runs.
#[derive(Debug)]
pub enum ApplyTarget {
    /// Plan from this inventory now, then apply.
    Inventory(InventoryInput),
    /// A saved plan.
    Plan(PathBuf),
    /// The plan `plan` saved last in the state directory.
    Latest,
}

/// What every run (`apply`, `recover`) shares.
#[derive(Debug)]
pub struct RunSettings {
    /// Do not ask.
    pub yes: bool,
    pub retry_in_flight: bool,
    pub take_over: Option<RunId>,
    pub ssh: SshOverrides,
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug)]
pub struct ApplySettings {
    pub target: ApplyTarget,
    pub procedure: Option<ProcedureKind>,
    pub run: RunSettings,
    /// Options given that only planning uses (refused on a resume): `--var`, `--playbooks`,
    /// `--procedure`.
    pub planning_options: Vec<&'static str>,
}

#[derive(Debug)]
pub struct RecoverSettings {
    pub input: InventoryInput,
    pub from_export: Option<PathBuf>,
    pub run: RunSettings,
    /// `--var`, `--playbooks`, `--from-export`, refused on a resume.
    pub planning_options: Vec<&'static str>,
}

/// What `migrate-consensus` runs.
#[derive(Debug)]
pub struct MigrateSettings {
    pub input: InventoryInput,
    pub to: crate::migrate::TargetConsensus,
    pub run: RunSettings,
    /// `--var`, `--playbooks`, `--ssh-config`, refused on a resume.
    pub planning_options: Vec<&'static str>,
}

/// What `rollback` runs.
#[derive(Debug)]
pub struct RollbackSettings {
    pub input: InventoryInput,
    /// The run to undo; the cluster's newest when not given.
    pub run_id: Option<RunId>,
    /// `--allow-pin-loss`.
    pub allow_pin_loss: bool,
    pub run: RunSettings,
    /// `--var`, `--playbooks`, `--ssh-config`, `--allow-pin-loss`, refused on a resume.
    pub planning_options: Vec<&'static str>,
}

/// Where the runs are.
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub inventory: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug)]
pub struct StatusSettings {
    pub place: StateSettings,
    pub run: Option<String>,
    pub json: bool,
}

#[derive(Debug)]
pub struct RunsSettings {
    pub place: StateSettings,
    pub json: bool,
}

#[derive(Debug)]
pub struct PruneSettings {
    pub input: InventoryInput,
    pub keep: usize,
    pub state_dir: Option<PathBuf>,
    pub yes: bool,
}

#[derive(Debug)]
pub struct AbandonSettings {
    pub run_id: RunId,
    pub place: StateSettings,
    pub yes: bool,
}

impl From<ProcedureArg> for ProcedureKind {
    fn from(arg: ProcedureArg) -> ProcedureKind {
        match arg {
            ProcedureArg::Standard => ProcedureKind::Standard,
            ProcedureArg::Rolling => ProcedureKind::Rolling,
            ProcedureArg::Bootstrap => ProcedureKind::Bootstrap,
        }
    }
}

fn ssh(args: &SshArgs) -> SshOverrides {
    SshOverrides {
        ssh_config: args.ssh_config.clone(),
        known_hosts: args.known_hosts.clone(),
        accept_new_host_keys: args.accept_new_host_keys,
        max_concurrency: args.concurrency,
    }
}

fn input(args: &InventoryArgs, ssh_args: &SshArgs) -> InventoryInput {
    InventoryInput {
        inventory: args.inventory.clone(),
        playbooks: args.playbooks.clone(),
        overrides: Overrides {
            vars: args.vars.clone(),
            ssh: ssh(ssh_args),
        },
    }
}

fn place(args: &StatePlace) -> StateSettings {
    StateSettings {
        inventory: args.inventory.clone(),
        state_dir: args.state_dir.clone(),
    }
}

/// The planning options given on the command line, by name.
fn given(options: &[(&'static str, bool)]) -> Vec<&'static str> {
    options
        .iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| *name)
        .collect()
}

impl From<&CheckArgs> for Settings {
    fn from(args: &CheckArgs) -> Settings {
        let ssh = SshArgs {
            ssh_config: args.ssh_config.clone(),
            ..SshArgs::default()
        };
        Settings::Check(input(&args.input, &ssh))
    }
}

impl From<&PlanArgs> for Settings {
    fn from(args: &PlanArgs) -> Settings {
        Settings::Plan(PlanSettings {
            input: input(&args.input, &args.ssh),
            procedure: args.procedure.map(ProcedureKind::from),
            out: args.out.clone(),
            json: args.json,
            state_dir: args.state_dir.clone(),
            facts: args.facts.clone(),
            take_over: args.take_over.clone(),
        })
    }
}

impl From<&ApplyArgs> for Settings {
    fn from(args: &ApplyArgs) -> Settings {
        let target = match &args.target {
            None => ApplyTarget::Latest,
            Some(path) if path.extension().is_some_and(|e| e == "json") => {
                ApplyTarget::Plan(path.clone())
            }
            Some(path) => ApplyTarget::Inventory(input(
                &InventoryArgs {
                    inventory: path.clone(),
                    playbooks: args.playbooks.clone(),
                    vars: args.vars.clone(),
                },
                &args.ssh,
            )),
        };
        Settings::Apply(ApplySettings {
            target,
            procedure: args.procedure.map(ProcedureKind::from),
            run: RunSettings {
                yes: args.yes,
                retry_in_flight: args.retry_in_flight,
                take_over: args.take_over.clone(),
                ssh: ssh(&args.ssh),
                state_dir: args.state_dir.clone(),
            },
            planning_options: given(&[
                ("--var", !args.vars.is_empty()),
                ("--playbooks", args.playbooks.is_some()),
                ("--procedure", args.procedure.is_some()),
                ("--ssh-config", args.ssh.ssh_config.is_some()),
            ]),
        })
    }
}

impl From<&RecoverArgs> for Settings {
    fn from(args: &RecoverArgs) -> Settings {
        Settings::Recover(RecoverSettings {
            input: input(&args.input, &args.run.ssh),
            from_export: args.from_export.clone(),
            run: RunSettings::from(&args.run),
            planning_options: given(&[
                ("--var", !args.input.vars.is_empty()),
                ("--playbooks", args.input.playbooks.is_some()),
                ("--from-export", args.from_export.is_some()),
                ("--ssh-config", args.run.ssh.ssh_config.is_some()),
            ]),
        })
    }
}

impl From<&RunArgs> for RunSettings {
    fn from(args: &RunArgs) -> RunSettings {
        RunSettings {
            yes: args.yes,
            retry_in_flight: args.retry_in_flight,
            take_over: args.take_over.clone(),
            ssh: ssh(&args.ssh),
            state_dir: args.state_dir.clone(),
        }
    }
}

impl From<&MigrateArgs> for Settings {
    fn from(args: &MigrateArgs) -> Settings {
        Settings::Migrate(MigrateSettings {
            input: input(&args.input, &args.run.ssh),
            to: match args.to {
                ConsensusArg::Crdt => crate::migrate::TargetConsensus::Crdt,
            },
            run: RunSettings::from(&args.run),
            planning_options: given(&[
                ("--var", !args.input.vars.is_empty()),
                ("--playbooks", args.input.playbooks.is_some()),
                ("--ssh-config", args.run.ssh.ssh_config.is_some()),
            ]),
        })
    }
}

impl From<&RollbackArgs> for Settings {
    fn from(args: &RollbackArgs) -> Settings {
        Settings::Rollback(RollbackSettings {
            input: input(&args.input, &args.run.ssh),
            run_id: args.run_id.clone(),
            allow_pin_loss: args.allow_pin_loss,
            run: RunSettings::from(&args.run),
            planning_options: given(&[
                ("--var", !args.input.vars.is_empty()),
                ("--playbooks", args.input.playbooks.is_some()),
                ("--ssh-config", args.run.ssh.ssh_config.is_some()),
                ("--allow-pin-loss", args.allow_pin_loss),
            ]),
        })
    }
}

impl From<&StatusArgs> for Settings {
    fn from(args: &StatusArgs) -> Settings {
        Settings::Status(StatusSettings {
            place: StateSettings {
                inventory: args.inventory.clone(),
                state_dir: args.state_dir.clone(),
            },
            run: args.run.clone(),
            json: args.json,
        })
    }
}

impl From<&RunsArgs> for Settings {
    fn from(args: &RunsArgs) -> Settings {
        match &args.action {
            None => Settings::Runs(RunsSettings {
                place: place(&args.place),
                json: args.json,
            }),
            Some(RunsAction::Abandon(abandon)) => Settings::from(abandon),
            Some(RunsAction::Prune(prune)) => Settings::Prune(PruneSettings {
                input: InventoryInput {
                    inventory: prune.inventory.clone(),
                    playbooks: None,
                    overrides: Overrides {
                        vars: Vec::new(),
                        ssh: ssh(&prune.ssh),
                    },
                },
                keep: prune.keep,
                state_dir: prune.state_dir.clone(),
                yes: prune.yes,
            }),
        }
    }
}

impl From<&AbandonArgs> for Settings {
    fn from(args: &AbandonArgs) -> Settings {
        Settings::Abandon(AbandonSettings {
            run_id: args.run_id.clone(),
            place: place(&args.place),
            yes: args.yes,
        })
    }
}
