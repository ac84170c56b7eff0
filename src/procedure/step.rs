//! Validated step specifications: what a playbook step means once loaded.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::inventory::{HostName, HumanDuration, SourcePosition};

use super::template::TemplateRef;

/// A step's identifier: lowercase letters, digits and `-`, unique within its playbook. It names
/// the step in the journal, so it must stay stable across edits of the step's text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StepId(String);

/// Why a step id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected lowercase letters, digits and `-`, starting with a letter (e.g. `stop-peers`)")]
pub struct StepIdError;

impl StepId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StepId {
    type Err = StepIdError;
    fn from_str(text: &str) -> Result<StepId, StepIdError> {
        let valid = text.len() <= 64
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(StepId(text.to_string()))
        } else {
            Err(StepIdError)
        }
    }
}

impl TryFrom<String> for StepId {
    type Error = StepIdError;
    fn try_from(text: String) -> Result<StepId, StepIdError> {
        text.parse()
    }
}

impl From<StepId> for String {
    fn from(id: StepId) -> String {
        id.0
    }
}

/// Unit tests write step ids as literals; a bad one fails the test.
#[cfg(test)]
impl From<&str> for StepId {
    fn from(text: &str) -> StepId {
        text.parse().expect("a valid step id in a test")
    }
}

/// A step id reads as the text it is.
impl std::ops::Deref for StepId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by step id are looked up with a plain `&str`.
impl std::borrow::Borrow<str> for StepId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which hosts a step runs for (`on:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Targets {
    /// Every host of the inventory.
    All,
    /// The one host the planner picks (for bootstrap: the peer that keeps the state).
    Anchor,
    /// Every host but the anchor.
    Others,
    /// One named host.
    Host(HostName),
}

impl Targets {
    /// The hosts this step runs for, in inventory order.
    pub fn select<'a>(&self, hosts: &'a [HostName], anchor: &HostName) -> Vec<&'a HostName> {
        hosts
            .iter()
            .filter(|host| self.includes(host, anchor))
            .collect()
    }

    /// Whether the step runs for `host`.
    pub fn includes(&self, host: &HostName, anchor: &HostName) -> bool {
        match self {
            Targets::All => true,
            Targets::Anchor => host == anchor,
            Targets::Others => host != anchor,
            Targets::Host(name) => host == name,
        }
    }
}

/// How a step's hosts are worked through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// All hosts at once (bounded by `ssh.max_concurrency`).
    #[default]
    Parallel,
    /// One host after another, in inventory order; each host's wait finishes before the next starts.
    Serial,
    /// Consecutive rolling steps form a group that runs whole on one host before the next host
    /// starts it (stop, swap, start, wait on h1; then on h2; …): the planner expands the group
    /// into one single-host step per host and step.
    Rolling,
}

/// Where a step's command runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delegate {
    /// On the host the step is for.
    #[default]
    Target,
    /// On the anchor, with the target host's context (e.g. `peers rm` of each other peer from
    /// the anchor's ctl, whose API listens on the anchor's loopback only).
    Anchor,
}

/// What a resumed run does with a step that was in flight when the previous run died.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnResume {
    /// Run it again: the command is idempotent.
    Rerun,
    /// Run its `check` first; skip the step if the check passes, run it otherwise.
    Check,
    /// Stop and ask the operator: neither re-running nor skipping is known to be safe.
    #[default]
    Ask,
}

/// Whether a peer's daemon runs, as a step leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    Stopped,
    Running,
}

impl fmt::Display for PeerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerState::Stopped => "stopped",
            PeerState::Running => "running",
        })
    }
}

/// What a finished step leaves in place on its host (`establishes:`): a resumed run checks that
/// it is still so before going on, so that a peer started or stopped by hand meanwhile is
/// noticed instead of counted as done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EstablishesSpec {
    pub peer: Option<PeerState>,
    /// The step installs the target release's binaries.
    pub installed_target: bool,
}

/// A file copied from the controller before the step's command runs.
#[derive(Debug, Clone)]
pub struct UploadSpec {
    /// Local path on the controller (template).
    pub from: TemplateRef,
    /// Remote path (template).
    pub to: TemplateRef,
    /// Permission bits of the remote file.
    pub mode: u32,
}

/// A condition polled after the command until it holds or the deadline passes.
#[derive(Debug, Clone)]
pub struct WaitSpec {
    /// Exit 0 means the condition holds.
    pub command: TemplateRef,
    pub interval: HumanDuration,
    pub deadline: Deadline,
    /// Exit 0 means the wait cannot pass any more (the peer it waits for exited): asked after
    /// each failed try, it ends the wait at once, and the step fails with what it printed.
    pub fail_when: Option<TemplateRef>,
    /// Where the wait runs; defaults to where the step's command runs.
    pub delegate_to: Delegate,
}

/// How long a wait may take: written in the playbook, or a template of the host's variables
/// (`'{{ ready_deadline }}'`), so an inventory can give a long first start (a data migration)
/// more time.
#[derive(Debug, Clone)]
pub enum Deadline {
    Fixed(HumanDuration),
    Template(TemplateRef),
}

impl WaitSpec {
    pub const DEFAULT_INTERVAL: HumanDuration = HumanDuration::from_secs(2);
}

/// One validated playbook step.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub id: StepId,
    pub name: String,
    pub on: Targets,
    pub mode: Mode,
    pub delegate_to: Delegate,
    pub command: Option<TemplateRef>,
    pub upload: Option<UploadSpec>,
    /// Exit 0 means the step's effect is already there (used for safe resume).
    pub check: Option<TemplateRef>,
    pub wait_until: Option<WaitSpec>,
    /// `None`: the inventory's `ssh.command_timeout`.
    pub timeout: Option<HumanDuration>,
    pub retries: u32,
    pub on_resume: OnResume,
    /// Renders to `true` or `false`; a `false` step is skipped for that host.
    pub when: Option<TemplateRef>,
    /// The executor exports the state before the first destructive step.
    pub destructive: bool,
    /// A file name in the run's `backups/` on the controller: the command's stdout (a state
    /// export) is saved there, private, with its SHA-256 in the journal.
    pub backup: Option<TemplateRef>,
    /// The step takes quorum away (stops every peer, removes peers): before it starts, the
    /// cluster must still be as the plan saw it.
    pub takes_quorum: bool,
    pub establishes: EstablishesSpec,
    /// Run only on the peers the controller picks for it after the regular steps and checks
    /// (`None`: a regular step).
    pub on_demand: Option<OnDemand>,
    /// Where the step starts in its playbook.
    pub position: SourcePosition,
}

/// Why the controller runs an on-demand step on a peer (`on_demand:`). Such steps are planned
/// (rendered, shown) like any other, but run only on the peers picked at run time, one peer at
/// a time, after every regular step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDemand {
    /// The peer's CRDT store lacks pins every other peer lists after a rolling run, and will
    /// not fetch them by itself (ADR 0015, 0019): empty it and let it fetch the pinset again.
    Resync,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_are_kebab_case() {
        assert!("stop-peers".parse::<StepId>().is_ok());
        assert!("swap2".parse::<StepId>().is_ok());
        for bad in ["", "Stop", "stop_peers", "-x", "1x", "a b"] {
            assert!(bad.parse::<StepId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_select_in_inventory_order() {
        let hosts: Vec<HostName> = ["h1", "h2", "h3"]
            .iter()
            .map(|h| h.parse().unwrap())
            .collect();
        let anchor = &hosts[2];
        let names = |t: Targets| {
            t.select(&hosts, anchor)
                .iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Targets::All), ["h1", "h2", "h3"]);
        assert_eq!(names(Targets::Anchor), ["h3"]);
        assert_eq!(names(Targets::Others), ["h1", "h2"]);
        assert_eq!(names(Targets::Host(hosts[1].clone())), ["h2"]);
    }
}
