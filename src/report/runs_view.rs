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
