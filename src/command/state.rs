//! The runs of a state directory as the commands need them: which are unfinished and for which
//! cluster, which are over (their leases on hosts are stale), and where the state directory is.

use crate::error::Error;
use crate::journal::{Checkpoint, RunDir, StateDir};
use crate::plan::{ClusterId, Plan};

use super::plan_file::{read_plan, read_summary, PlanSummary};

/// A run with a journal, its plan's summary and where it stands.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub dir: RunDir,
    pub summary: PlanSummary,
    pub checkpoint: Checkpoint,
    /// When its first journal record was written, in seconds since the Unix epoch.
    pub started_unix: u64,
}

impl RunInfo {
    /// `finished`, `abandoned`, `failed`, `unfinished` (interrupted or in progress).
    pub fn state(&self) -> &'static str {
        let checkpoint = &self.checkpoint;
        if checkpoint.finished {
            "finished"
        } else if checkpoint.abandoned {
            "abandoned"
        } else if checkpoint.last_stop.is_some() {
            "stopped (unfinished)"
        } else {
            "unfinished"
        }
    }

    /// One line naming the run for messages: `20261204T…-1a2b (cluster `prod`, /x/prod.yaml)`.
    pub fn describe(&self) -> String {
        format!(
            "{} (cluster {}, {} {} → {})",
            self.dir.id(),
            self.summary.cluster_id,
            self.summary.choice.procedure,
            self.summary.choice.from,
            self.summary.choice.to
        )
    }
}

/// Every run that has a journal, oldest first. Each run's folder and files must be private to
/// this user: a run planted by someone else is refused, never read further.
pub fn runs(state: &StateDir) -> Result<Vec<RunInfo>, Error> {
    let mut runs = Vec::new();
    for dir in state.runs()? {
        if !dir.journal_path().exists() {
            continue;
        }
        dir.check_private()?;
        let records = dir.records()?;
        let checkpoint = Checkpoint::replay(&records);
        let summary = read_summary(&dir.plan_path())?;
        runs.push(RunInfo {
            dir,
            summary,
            checkpoint,
            started_unix: records.first().map_or(0, |r| r.at_ms / 1000),
        });
    }
    Ok(runs)
}

/// The unfinished runs (neither finished nor abandoned), oldest first.
pub fn unfinished(state: &StateDir) -> Result<Vec<RunInfo>, Error> {
    Ok(runs(state)?
        .into_iter()
        .filter(|run| run.checkpoint.is_unfinished())
        .collect())
}

/// The runs this state directory knows to be over (finished or abandoned): a lease one of them
/// left on a host is stale and may be replaced.
pub fn ended_run_ids(state: &StateDir) -> Result<Vec<String>, Error> {
    Ok(runs(state)?
        .into_iter()
        .filter(|run| !run.checkpoint.is_unfinished())
        .map(|run| run.dir.id().to_string())
        .collect())
}

/// Leases that may be replaced: `--take-over RUN_ID`, and runs this state directory knows to
/// be over.
pub fn lease_replaceable(
    state: &StateDir,
    take_over: Option<&crate::journal::RunId>,
) -> Result<Vec<String>, Error> {
    let mut replaceable = ended_run_ids(state)?;
    replaceable.extend(take_over.map(|id| id.to_string()));
    Ok(replaceable)
}

/// An unfinished run with its whole plan (sealed), ready to resume.
pub struct Unfinished {
    pub dir: RunDir,
    pub plan: Plan,
    pub checkpoint: Checkpoint,
}

/// The unfinished run of the cluster `cluster` (its newest), with the other clusters'
/// unfinished runs (which are neither resumed nor blocking).
pub fn unfinished_of(
    state: &StateDir,
    cluster: Option<&ClusterId>,
) -> Result<(Option<Unfinished>, Vec<RunInfo>), Error> {
    let all = unfinished(state)?;
    let cluster = match cluster {
        Some(cluster) => cluster.clone(),
        None => {
            // A bare `apply`: only when every unfinished run is of one cluster.
            let mut clusters: Vec<&ClusterId> = all.iter().map(|r| &r.summary.cluster_id).collect();
            clusters.dedup_by(|a, b| a.key == b.key);
            let distinct: std::collections::BTreeSet<&str> =
                clusters.iter().map(|c| c.key.as_str()).collect();
            if distinct.len() > 1 {
                return Err(Error::SeveralUnfinished {
                    runs: all.iter().map(RunInfo::describe).collect(),
                });
            }
            match all.last() {
                Some(run) => run.summary.cluster_id.clone(),
                None => return Ok((None, Vec::new())),
            }
        }
    };
    let (mine, others): (Vec<RunInfo>, Vec<RunInfo>) = all
        .into_iter()
        .partition(|run| run.summary.cluster_id.key == cluster.key);
    let Some(newest) = mine.into_iter().last() else {
        return Ok((None, others));
    };
    let plan = read_plan(&newest.dir.plan_path())?;
    Ok((
        Some(Unfinished {
            dir: newest.dir,
            plan,
            checkpoint: newest.checkpoint,
        }),
        others,
    ))
}
