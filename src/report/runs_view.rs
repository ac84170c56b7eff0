//! The runs of a state directory, one line each (`cluster-upgrade runs`).

use super::table;

/// One run, as `runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLine {
    pub id: String,
    pub cluster: String,
    pub procedure: String,
    pub versions: String,
    pub state: String,
    pub started: String,
}

/// The runs as JSON (`runs --json`), oldest first.
pub fn runs_json(runs: &[RunLine]) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id, "cluster": r.cluster, "procedure": r.procedure,
                "versions": r.versions, "state": r.state, "started": r.started,
            })
        })
        .collect();
    serde_json::json!({"schema": 1, "runs": runs})
}

/// The runs as a table, oldest first.
pub fn render_runs(runs: &[RunLine]) -> String {
    if runs.is_empty() {
        return "No runs.\n".to_string();
    }
    let header = [
        "RUN",
        "CLUSTER",
        "PROCEDURE",
        "VERSIONS",
        "STATE",
        "STARTED",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            vec![
                run.id.clone(),
                run.cluster.clone(),
                run.procedure.clone(),
                run.versions.clone(),
                run.state.clone(),
                run.started.clone(),
            ]
        })
        .collect();
    table::render(&header, &rows)
}

/// What `runs prune` removes, for the question before it does.
pub fn render_prune(plan: &crate::prune::PrunePlan) -> String {
    use std::fmt::Write;
    if plan.is_empty() {
        return format!(
            "Nothing to prune: the cluster has {} run(s), all kept.\n",
            plan.kept.len()
        );
    }
    let mut out = String::from(
        "Runs pruned (their journals and plans stay; they can no longer be rolled back):\n",
    );
    for run in &plan.pruned {
        let _ = writeln!(out, "  {run}");
    }
    let _ = writeln!(
        out,
        "Kept: {}",
        if plan.kept.is_empty() {
            "none".to_string()
        } else {
            plan.kept
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    out.push_str("Removed on the hosts (when present):\n");
    for (host, paths) in &plan.hosts {
        for path in paths {
            let _ = writeln!(out, "  {host}: {path}");
        }
    }
    out.push_str("Removed on the controller:\n");
    for path in &plan.controller {
        let _ = writeln!(out, "  {}", path.display());
    }
    out
}
