//! `cluster-upgrade runs prune INVENTORY --keep N`: what upgrades leave behind that may go,
//! for the runs of one cluster beyond its newest N: each run's remote backup folder
//! (`<bin_dir>/.cluster-upgrade/backup/<run id>/`: previous binaries, exports, the old
//! `service.json`), the staging folders of releases no kept run uses, the `*.prev` binaries
//! when no run is kept, and the run's `backups/` on the controller. Never anything of an
//! unfinished run; journals and plans stay (they are the history `runs` shows). Pure: no I/O.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::inventory::{HostName, Version};
use crate::journal::RunId;
use crate::procedure::{ReleaseContext, RunContext};

/// One run of the cluster, oldest first, as pruning needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    pub id: RunId,
    /// Neither finished nor abandoned: kept whatever `--keep` says.
    pub unfinished: bool,
    /// The releases the run staged (`Plan::versions`).
    pub versions: Vec<Version>,
    /// Pruned already: neither pruned again nor counted as kept.
    pub pruned: bool,
    /// Went through intermediate releases: each stage kept its backup under its own run id
    /// (`RunContext::stage_run_id`).
    pub staged: bool,
}

impl RunFiles {
    /// The run ids its remote backup folders are named after.
    fn backup_runs(&self) -> Vec<String> {
        if !self.staged {
            return vec![self.id.to_string()];
        }
        // `versions` starts with the release before the run; each stage is named after its
        // target.
        self.versions
            .iter()
            .skip(1)
            .map(|v| RunContext::stage_run_id(self.id.as_str(), *v))
            .collect()
    }
}

/// The file in a run directory that says the run was pruned.
pub const PRUNED_MARKER: &str = "pruned";

type Indexed<'a> = Vec<(usize, &'a RunFiles)>;

/// What goes, by host and on the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePlan {
    pub pruned: Vec<RunId>,
    pub kept: Vec<RunId>,
    /// Remote paths to remove, by host (inventory order).
    pub hosts: Vec<(HostName, Vec<String>)>,
    /// The pruned runs' `backups/` folders on the controller.
    pub controller: Vec<PathBuf>,
}

impl PrunePlan {
    pub fn is_empty(&self) -> bool {
        self.pruned.is_empty()
    }
}

/// Plans the pruning of `runs` (oldest first) beyond the newest `keep`, on `hosts` (name and
/// `bin_dir`), with the run directories under `runs_dir`.
pub fn plan_prune(
    runs: &[RunFiles],
    keep: usize,
    hosts: &[(HostName, String)],
    runs_dir: &Path,
) -> PrunePlan {
    let newest = runs.len().saturating_sub(keep);
    let (kept, pruned): (Indexed<'_>, Indexed<'_>) = runs
        .iter()
        .enumerate()
        .filter(|(_, run)| !run.pruned)
        .partition(|(index, run)| *index >= newest || run.unfinished);
    let kept_versions: BTreeSet<Version> = kept
        .iter()
        .flat_map(|(_, run)| run.versions.iter().copied())
        .collect();
    let staged: BTreeSet<Version> = pruned
        .iter()
        .flat_map(|(_, run)| run.versions.iter().copied())
        .filter(|v| !kept_versions.contains(v))
        .collect();
    let hosts = if pruned.is_empty() {
        Vec::new()
    } else {
        hosts
            .iter()
            .map(|(name, bin_dir)| {
                let mut paths: Vec<String> = pruned
                    .iter()
                    .flat_map(|(_, run)| run.backup_runs())
                    .map(|id| RunContext::new(&id, bin_dir).remote_backup_dir)
                    .collect();
                paths.extend(
                    staged
                        .iter()
                        .map(|v| ReleaseContext::staging_dir_for(bin_dir, *v)),
                );
                if kept.is_empty() {
                    let bin = bin_dir.trim_end_matches('/');
                    paths.push(format!("{bin}/ipfs-cluster-service.prev"));
                    paths.push(format!("{bin}/ipfs-cluster-ctl.prev"));
                }
                (name.clone(), paths)
            })
            .collect()
    };
    PrunePlan {
        controller: pruned
            .iter()
            .map(|(_, run)| runs_dir.join(run.id.as_str()).join("backups"))
            .collect(),
        pruned: pruned.into_iter().map(|(_, run)| run.id.clone()).collect(),
        kept: kept.into_iter().map(|(_, run)| run.id.clone()).collect(),
        hosts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u32, unfinished: bool, versions: &[&str]) -> RunFiles {
        RunFiles {
            id: format!("20261204T00000{n}Z-0001").parse().unwrap(),
            unfinished,
            staged: versions.len() > 2,
            versions: versions.iter().map(|v| v.parse().unwrap()).collect(),
            pruned: false,
        }
    }

    fn hosts() -> Vec<(HostName, String)> {
        vec![("h1".parse().unwrap(), "/opt/bin".to_string())]
    }

    #[test]
    fn runs_beyond_the_newest_n_go_but_never_an_unfinished_one() {
        let runs = [
            run(1, false, &["0.9.0", "0.10.1"]),
            run(2, true, &["0.10.1", "1.0.8"]),
            run(3, false, &["1.0.8", "1.1.6"]),
            run(4, false, &["1.1.6", "1.0.8"]),
        ];
        let plan = plan_prune(&runs, 1, &hosts(), Path::new("/s/runs"));
        let ids = |list: &[RunId]| list.iter().map(|r| r.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ids(&plan.pruned),
            ["20261204T000001Z-0001", "20261204T000003Z-0001"]
        );
        assert_eq!(
            ids(&plan.kept),
            ["20261204T000002Z-0001", "20261204T000004Z-0001"]
        );
        assert_eq!(
            plan.hosts[0].1,
            [
                "/opt/bin/.cluster-upgrade/backup/20261204T000001Z-0001",
                "/opt/bin/.cluster-upgrade/backup/20261204T000003Z-0001",
                // 0.10.1, 1.0.8 and 1.1.6 are staged by kept runs.
                "/opt/bin/.cluster-upgrade/0.9.0",
            ]
        );
        assert_eq!(
            plan.controller,
            [
                PathBuf::from("/s/runs/20261204T000001Z-0001/backups"),
                PathBuf::from("/s/runs/20261204T000003Z-0001/backups"),
            ]
        );
    }

    #[test]
    fn a_staged_run_loses_the_backup_folder_of_each_of_its_stages() {
        let runs = [run(1, false, &["0.9.0", "0.10.1", "1.0.8"])];
        let plan = plan_prune(&runs, 0, &hosts(), Path::new("/s/runs"));
        let paths = &plan.hosts[0].1;
        assert_eq!(
            paths[..2],
            [
                "/opt/bin/.cluster-upgrade/backup/20261204T000001Z-0001-to-0.10.1",
                "/opt/bin/.cluster-upgrade/backup/20261204T000001Z-0001-to-1.0.8",
            ]
        );
    }

    #[test]
    fn keeping_none_also_removes_the_prev_binaries_and_keeping_all_removes_nothing() {
        let runs = [run(1, false, &["1.0.8", "1.1.6"])];
        let none = plan_prune(&runs, 0, &hosts(), Path::new("/s/runs"));
        assert!(none.hosts[0]
            .1
            .contains(&"/opt/bin/ipfs-cluster-service.prev".to_string()));
        let all = plan_prune(&runs, 1, &hosts(), Path::new("/s/runs"));
        assert!(all.is_empty());
        assert!(all.hosts.is_empty() && all.controller.is_empty());
        let done = [RunFiles {
            pruned: true,
            ..runs[0].clone()
        }];
        assert!(
            plan_prune(&done, 0, &hosts(), Path::new("/s/runs")).is_empty(),
            "a pruned run is not pruned again"
        );
    }
}
