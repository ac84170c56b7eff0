//! Command-line definitions (clap) and their resolution into settings for the commands
//! (`settings.rs`): nothing below `command/` sees a clap type.

mod settings;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::journal::RunId;

pub use settings::{
    AbandonSettings, ApplySettings, ApplyTarget, InventoryInput, MigrateSettings, PlanSettings,
    PruneSettings, RecoverSettings, RollbackSettings, RunSettings, RunsSettings, Settings,
    StateSettings, StatusSettings,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (also: the cluster already runs the target and is healthy, nothing to do)
  1  a host or a step failed (unreachable host, refused host key, failed command)
  2  invalid input (inventory, playbook, plan file, command line, state directory,
     no terminal to confirm on without --yes)
  3  refused as unsafe (the plan explains why; another run holds the cluster; the cluster
     changed; declined)
  130  interrupted";

/// Upgrade an IPFS Cluster safely over SSH: plan first, then apply with checkpoints.
#[derive(Debug, Parser)]
#[command(name = "cluster-upgrade", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Also print debug logs on stderr (repeat for trace logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command prints JSON on stdout (`plan --json`): its errors are JSON too.
    pub fn json_output(&self) -> bool {
        match &self.command {
            Command::Plan(args) => args.json,
            Command::Status(args) => args.json,
            Command::Runs(args) => args.json && args.action.is_none(),
            Command::Apply(args) => args.json,
            Command::Recover(args) => args.run.json,
            Command::MigrateConsensus(args) => args.run.json,
            Command::Rollback(args) => args.run.json,
            _ => false,
        }
    }

    /// What to do: a command with its settings, or one of the generators.
    pub fn invocation(&self) -> Invocation {
        let settings = match &self.command {
            Command::Check(args) => Settings::from(args),
            Command::Plan(args) => Settings::from(args),
            Command::Apply(args) => Settings::from(args),
            Command::Status(args) => Settings::from(args),
            Command::Recover(args) => Settings::from(args),
            Command::MigrateConsensus(args) => Settings::from(args),
            Command::Rollback(args) => Settings::from(args),
            Command::Runs(args) => Settings::from(args),
            Command::Completions { shell } => return Invocation::Completions(*shell),
            Command::Man { dir } => return Invocation::Man(dir.clone()),
        };
        Invocation::Run(Box::new(settings))
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Settings>),
    Completions(clap_complete::Shell),
    Man(PathBuf),
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "cluster-upgrade", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `cluster-upgrade.1` and one page per subcommand (`cluster-upgrade-plan.1`, …) into
/// `dir`; returns the files written.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let command = <Cli as clap::CommandFactory>::command();
    let mut written = Vec::new();
    let mut page = |command: clap::Command, name: String| -> std::io::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(command).render(&mut out)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, out)?;
        written.push(path);
        Ok(())
    };
    for sub in command.get_subcommands() {
        let name = format!("cluster-upgrade-{}", sub.get_name());
        page(sub.clone().name(name.clone()), name)?;
    }
    page(command, "cluster-upgrade".to_string())?;
    Ok(written)
}

/// `--procedure`: the procedures an operator may ask for (recovery has its own command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcedureArg {
    /// Swap binaries everywhere, restart every peer at once with `daemon --upgrade`.
    Standard,
    /// `peers rm` all but one peer, upgrade that one, bootstrap the others to it.
    Bootstrap,
    /// One peer at a time, the others serving: no downtime (only inside one RPC protocol).
    Rolling,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate an inventory and the playbooks without connecting to any host.
    ///
    /// Reports every error with its file, line and column. Renders every playbook step for every
    /// host with placeholder facts, so undefined variables and template errors show up here.
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Connect to every host, gather facts, choose the procedure and print the plan.
    ///
    /// Nothing is changed on any host: the probes are read-only. Prints a facts table, the
    /// chosen procedure with its reasons, the ordered steps (parallel or one host after
    /// another), the expected downtime and the backups that will be taken.
    #[command(after_help = EXIT_CODES)]
    Plan(PlanArgs),
    /// Run a plan over SSH, step by step, with a checkpoint after every step.
    ///
    /// `apply INVENTORY` plans first, shows the plan and asks for confirmation (exit 0 with
    /// "No changes" when the cluster already runs the target and is healthy); `apply plan.json`
    /// runs a saved plan exactly, with the hosts, SSH settings and variables it recorded (an
    /// edited plan is refused); a bare `apply` runs the plan that `plan` saved last in the state
    /// directory. Every remote command is recorded in a write-ahead journal in
    /// `.cluster-upgrade/runs/<run-id>/`.
    ///
    /// Runs belong to their cluster (inventory path, cluster name, host addresses): after a
    /// failure or a crash, `apply INVENTORY` (or `apply` with the run's plan) resumes that
    /// cluster's unfinished run at the failed step and never repeats a finished one; another
    /// cluster's unfinished run in the same state directory is neither resumed nor blocking. A
    /// resume first checks the hosts against the journal (versions, peers stopped or running,
    /// the backups on the controller), shows what is left and asks; `--var`, `--playbooks` and
    /// `--procedure` are refused on a resume. A run holds a lease on its hosts until it ends:
    /// another run, from any state directory or machine, is refused meanwhile (`--take-over`
    /// for a run that died). Right before a step that takes quorum away (stopping every peer),
    /// the cluster must still be as planned, or the run stops with the cluster up.
    #[command(after_help = EXIT_CODES)]
    Apply(ApplyArgs),
    /// Show the current or last run: per host and step, done / failed / pending, with the
    /// failure's stderr tail (past 10 hosts: per step, its hosts counted by state, and the
    /// failures grouped by step and error).
    #[command(after_help = EXIT_CODES)]
    Status(StatusArgs),
    /// Disaster recovery: rebuild the cluster on the target version from the state that survives.
    ///
    /// For when the peers are down and their state is gone but for one copy: a peer's `raft/`
    /// folder with a snapshot, a `raft.old.N` backup with a snapshot (what `peers rm` and
    /// `state cleanup` leave), or an export made earlier with the old version (`--from-export`).
    /// Probes every host (read-only) and shows what survives where and why it picks its source:
    /// a live `raft/` snapshot with the most recent index, else the newest backup. Then, with
    /// `playbooks/recover.yaml`: stop every peer; on the source peer restore the backup,
    /// `state export` with the old release, `state cleanup`, `state import`, swap in the target
    /// binaries, `state upgrade` where the target has it, and start it alone until it lists the
    /// whole pinset; then clean, upgrade and start every other peer with
    /// `daemon --bootstrap <source peer>`, one by one; finally check that every peer runs the
    /// target, sees all peers and lists exactly the exported pinset. Runs are journalled like
    /// `apply` runs (`.cluster-upgrade/runs/<run-id>/`, with a copy of the export in `backups/`);
    /// after a failure or a crash, run `recover` again to resume (refused, exit 3, when a host's
    /// installed version is neither its own from the plan nor one the recovery installs).
    #[command(after_help = EXIT_CODES)]
    Recover(RecoverArgs),
    /// Move a raft cluster to CRDT consensus, on the version its peers run (`--to crdt`).
    ///
    /// As the IPFS Cluster v0.11.0 CHANGELOG and backups guide say: every peer must run the same
    /// version (0.11 or later; a state is imported by the release that exported it), with raft,
    /// healthy, listing one pinset. Probes every host (read-only), shows the plan and asks. Then,
    /// with `playbooks/migrate-crdt.yaml`: stop every peer; export each peer's raft state, checked
    /// against the planned pinset and copied to the controller; keep each `service.json`; switch
    /// it to CRDT (its `consensus` and `datastore` sections from the release's own
    /// `init --consensus crdt`, identity, secret and everything else kept; the release must load
    /// the result); clean the others' CRDT state; import the export on the last host (the anchor)
    /// and start it alone until it lists the whole pinset; start the others with
    /// `daemon --bootstrap <anchor>`; check that every peer runs CRDT, sees all peers and lists
    /// the pinset. The `raft/` folders stay in place. Runs are journalled like `apply` runs;
    /// after a failure or a crash, run `migrate-consensus` again to resume.
    #[command(after_help = EXIT_CODES)]
    MigrateConsensus(MigrateArgs),
    /// Roll a run back: the release it replaced, on the peers it touched, one at a time.
    ///
    /// RUN_ID names the run to undo (see `cluster-upgrade runs INVENTORY`); by default the
    /// cluster's newest run. An unfinished rollback is resumed; an unfinished upgrade (failed or
    /// interrupted) is abandoned, journalled once you confirm, and, like an abandoned one, rolled
    /// back as far as its journal says it went: only the peers it stopped or swapped go back. Probes every host (read-only), shows the plan and asks.
    /// Then, with `playbooks/rollback.yaml`: check on every touched host that the run's backup
    /// (<bin_dir>/.cluster-upgrade/backup/<run id>/; where it is gone, the release from the
    /// release source, checked against its sums) is the release it ran before. A run that
    /// changed only binaries (rolling, or standard within one RPC protocol) goes back one peer at
    /// a time, the others serving: wait until the cluster is whole, stop the peer, copy the
    /// backup over its binaries, start it, wait until it runs the previous release, sees every
    /// peer and lists no fewer pins than planned. A raft run whose `daemon --upgrade` migrated
    /// the state (0.9 → 0.10) goes back all at once: list the pinset, stop every peer, put back
    /// the binaries and the raft folder the upgrade kept as raft.old.0 (the migrated one stays as
    /// raft.before-rollback-<run id>), start every peer, and make the pinset what it was before
    /// the stop (pins added since the upgrade added again, removed ones removed). Refused,
    /// before any host changes: staged (multi-hop), bootstrap, recover and migrate-consensus runs,
    /// a run across an RPC protocol change that did not migrate raft state, a run already rolled
    /// back, and any peer on a release the run did not install. Finally every peer must run the
    /// previous release and every pin any peer listed must reach every peer. The rollback is a
    /// run of its own (journal, lock, resume: run `rollback` again), shown by `runs` as undoing
    /// RUN_ID.
    #[command(after_help = EXIT_CODES)]
    Rollback(RollbackArgs),
    /// List the runs of a state directory (id, cluster, procedure, versions, state, started),
    /// or abandon an unfinished one.
    ///
    /// An unfinished run blocks new plans of its cluster until it is resumed (`apply`) or
    /// abandoned. Abandoning journals the decision (nothing is deleted) and says what state the
    /// hosts may be in; the run's lease on the hosts is then replaced by the next run.
    #[command(after_help = EXIT_CODES)]
    Runs(RunsArgs),
    /// Print a shell completion script: `cluster-upgrade completions bash > /etc/bash_completion.d/cluster-upgrade`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (`cluster-upgrade.1` and one per subcommand) into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Where the runs are: a state directory, given or beside an inventory.
#[derive(Debug, Args)]
pub struct StatePlace {
    /// The inventory whose runs to use (its state directory is `.cluster-upgrade/` beside it;
    /// with an inventory, only its cluster's runs are shown).
    pub inventory: Option<PathBuf>,

    /// The state directory (default: beside the inventory, else `.cluster-upgrade/` here).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub action: Option<RunsAction>,

    /// Print the runs as JSON on stdout (`"schema": 1`; errors as `{"error", "kind",
    /// "exit_code"}`).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub place: StatePlace,
}

#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// Mark an unfinished run abandoned: it is never resumed, and a new plan of its cluster can
    /// be made. The run stays in the state directory, with its journal and backups.
    #[command(after_help = EXIT_CODES)]
    Abandon(AbandonArgs),
    /// Remove what the cluster's runs beyond the newest N left behind: on every host each run's
    /// backup folder (<bin_dir>/.cluster-upgrade/backup/<run id>/: previous binaries, exports)
    /// and the staging folders of releases no kept run uses (with --keep 0, the *.prev binaries
    /// too), and each run's backups/ on the controller. Never anything of an unfinished run;
    /// journals and plans stay. Shows what goes and asks first; a pruned run can no longer be
    /// rolled back.
    #[command(after_help = EXIT_CODES)]
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The inventory of the cluster (its hosts are reached as for `plan`).
    pub inventory: PathBuf,

    /// How many of the newest runs keep their files.
    #[arg(long, value_name = "N")]
    pub keep: usize,

    /// The state directory (default: `.cluster-upgrade/` beside the inventory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Do not ask for confirmation (required when there is no terminal to ask on).
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub ssh: SshArgs,
}

#[derive(Debug, Args)]
pub struct AbandonArgs {
    /// The run to abandon (see `cluster-upgrade runs`).
    pub run_id: RunId,

    #[command(flatten)]
    pub place: StatePlace,

    /// Do not ask for confirmation (required when there is no terminal to ask on).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// The options of the commands that plan and run in one go (`recover`, `migrate-consensus`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print the run as a stream of JSON events on stdout, as `apply --json` does.
    #[arg(long)]
    pub json: bool,

    /// Do not ask for confirmation (required when there is no terminal to ask on).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Where runs, journals, logs and backups are kept (default: `.cluster-upgrade/` beside the
    /// inventory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Resume a step that was in flight when the last run died even though its playbook says
    /// to ask: its `check` decides whether it runs again.
    #[arg(long)]
    pub retry_in_flight: bool,

    /// Take over the hosts' lease held by this run, which died (its controller crashed or was
    /// killed): journalled in this run.
    #[arg(long, value_name = "RUN_ID")]
    pub take_over: Option<RunId>,

    #[command(flatten)]
    pub ssh: SshArgs,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub input: InventoryArgs,

    /// Recover from this export (`ipfs-cluster-service state export` of the OLD version, the one
    /// installed on the hosts) instead of a state found on a host; it is imported on the last host.
    #[arg(long, value_name = "FILE")]
    pub from_export: Option<PathBuf>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// `migrate-consensus --to`: the consensus to move to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsensusArg {
    /// Conflict-free replicated state: no leader, every trusted peer writes.
    Crdt,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub input: InventoryArgs,

    /// The consensus to move to (only `crdt`: raft is the legacy one).
    #[arg(long, value_enum, value_name = "CONSENSUS")]
    pub to: ConsensusArg,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub input: InventoryArgs,

    /// The run to roll back (default: the cluster's newest run).
    #[arg(value_name = "RUN_ID")]
    pub run_id: Option<RunId>,

    /// When the rollback restores the state from before the upgrade and the peer it lists the
    /// pinset on does not answer, go on without that listing: pins added after the upgrade are
    /// lost and pins removed after it come back. Without it, such a rollback is refused.
    #[arg(long)]
    pub allow_pin_loss: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A saved plan (a `.json` file) or an inventory (YAML: plan now, then apply). Without it,
    /// the plan that `plan` saved last in the state directory.
    pub target: Option<PathBuf>,

    /// Print the run as a stream of JSON events on stdout, one per line (`docs/events.md`,
    /// `"schema": 1`); the plan, the resume and the summary go to stderr; errors end the stream
    /// as `{"error", "kind", "exit_code"}`. Confirm with `--yes`.
    #[arg(long)]
    pub json: bool,

    /// Folder with the playbooks, when planning from an inventory (as for `plan`).
    #[arg(long, value_name = "DIR", env = "CLUSTER_UPGRADE_PLAYBOOKS")]
    pub playbooks: Option<PathBuf>,

    /// Set a variable for every host, when planning from an inventory (as for `plan`).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,

    /// Use this procedure instead of the one the facts call for, when planning from an inventory.
    #[arg(long, value_enum)]
    pub procedure: Option<ProcedureArg>,

    /// Do not ask for confirmation (required when there is no terminal to ask on).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Where runs, journals, logs and backups are kept (default: `.cluster-upgrade/` beside the
    /// inventory; for a bare `apply`, `.cluster-upgrade/` in the current folder).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Resume a step that was in flight when the last run died even though its playbook says
    /// to ask (`on_resume: ask`): its `check` decides whether it runs again. Use after looking
    /// at the host.
    #[arg(long)]
    pub retry_in_flight: bool,

    /// Take over the hosts' lease held by this run, which died (its controller crashed or was
    /// killed, possibly on another machine or with another state directory): journalled.
    #[arg(long, value_name = "RUN_ID")]
    pub take_over: Option<RunId>,

    #[command(flatten)]
    pub ssh: SshArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The inventory whose runs to show (its state directory is `.cluster-upgrade/` beside it).
    pub inventory: Option<PathBuf>,

    /// The state directory (default: beside the inventory, else `.cluster-upgrade/` here).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Show this run instead of the latest one.
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,

    /// Print the run as JSON on stdout (`"schema": 1`; errors as `{"error", "kind",
    /// "exit_code"}`).
    #[arg(long)]
    pub json: bool,
}

/// Inputs shared by every command that reads an inventory.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// The inventory file (YAML): cluster settings, SSH settings, hosts, groups and variables.
    pub inventory: PathBuf,

    /// Folder with the playbooks (standard.yaml, bootstrap.yaml). Default: `playbooks/` beside
    /// the inventory, else `playbooks/` in the current folder, else the built-in ones.
    #[arg(long, value_name = "DIR", env = "CLUSTER_UPGRADE_PLAYBOOKS")]
    pub playbooks: Option<PathBuf>,

    /// Set a variable for every host, over the inventory's global, group and host vars
    /// (repeatable), for example `--var config_dir=/data/ipfs-cluster`.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InventoryArgs,

    /// OpenSSH client config in which host addresses are resolved (as for `plan`; `none` for none).
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: InventoryArgs,

    /// Use this procedure instead of the one the facts call for (a warning says when that is unsafe).
    #[arg(long, value_enum)]
    pub procedure: Option<ProcedureArg>,

    /// Save the plan (with a fingerprint of the facts) to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Print the plan as JSON on stdout instead of the human-readable view (in every outcome:
    /// `{"converged": true, …}` when there is nothing to do, `{"error": …, "kind": …,
    /// "exit_code": …}` on failure).
    #[arg(long)]
    pub json: bool,

    /// Where `plan` keeps its latest plan for a bare `apply` (default: `.cluster-upgrade/`
    /// beside the inventory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Plan from recorded facts (a JSON file of the `facts` array of a saved plan) without
    /// connecting to any host.
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,

    /// Plan although this run holds the hosts' lease (a run that died; `apply --take-over`
    /// takes the lease over).
    #[arg(long, value_name = "RUN_ID")]
    pub take_over: Option<RunId>,

    #[command(flatten)]
    pub ssh: SshArgs,
}

/// SSH options that override the inventory's `ssh:` section.
#[derive(Debug, Default, Args)]
pub struct SshArgs {
    /// OpenSSH client config in which host addresses are resolved (`Host` aliases; default: the inventory's ssh.config, else ~/.ssh/config when it exists; `none` for none).
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,

    /// known_hosts file to verify host keys against (default: the inventory's, else ~/.ssh/known_hosts); give it again for more files, read as one (new keys go to the first).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Vec<PathBuf>,

    /// Trust host keys not yet in known_hosts and append them (changed or revoked keys are still refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,

    /// How many hosts to work on at once (default: the inventory's, else every host).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<std::num::NonZeroUsize>,
}

/// Why a `--var` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum VarArgError {
    #[error("`{0}` is not KEY=VALUE")]
    NotKeyValue(String),
    #[error("`{0}` is not a variable name (letters, digits and _, not starting with a digit)")]
    BadName(String),
}

fn parse_var(text: &str) -> Result<(String, String), VarArgError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| VarArgError::NotKeyValue(text.to_string()))?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(VarArgError::BadName(key.to_string()));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn vars_must_be_key_value() {
        assert_eq!(
            parse_var("a_b=c=d").unwrap(),
            ("a_b".to_string(), "c=d".to_string())
        );
        assert!(parse_var("novalue").is_err());
        assert!(parse_var("1x=y").is_err());
        assert!(parse_var("a-b=y").is_err());
    }
}
