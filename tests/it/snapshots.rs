//! Snapshots of what users see (insta, in `tests/it/snapshots/`): `--help` of every command,
//! the main errors, the plan view and the status table. Paths, addresses, peer ids, run ids,
//! times, digests and durations are filtered to fixed words. After an intended change of the
//! output: `cargo insta review` (or `INSTA_UPDATE=always cargo test --test it snapshots`).

use std::path::Path;

use crate::support::{snapshot_filters, text, Lab, Test};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inventory")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn help_of_every_command() {
    let settings = snapshot_filters();
    for command in [
        "",
        "check",
        "plan",
        "apply",
        "status",
        "recover",
        "migrate-consensus",
        "rollback",
        "runs",
    ] {
        let args: Vec<&str> = [command, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let out = Test::new().args(&args).run();
        let name = if command.is_empty() { "help" } else { command };
        settings.bind(|| insta::assert_snapshot!(format!("help_{name}"), text(&out.stdout)));
    }
}

#[test]
fn main_errors() {
    let folder = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<String>, i32); 5] = [
        ("syntax", vec!["check".into(), fixture("syntax.yaml")], 2),
        (
            "several_invalid_values",
            vec!["check".into(), fixture("several.yaml")],
            2,
        ),
        (
            "missing_inventory",
            vec!["check".into(), "/nonexistent/prod.yaml".into()],
            2,
        ),
        ("no_plan_to_apply", vec!["apply".into(), "--yes".into()], 2),
        (
            "not_a_run_id",
            vec!["runs".into(), "abandon".into(), "nope".into()],
            2,
        ),
    ];
    let settings = snapshot_filters();
    for (name, args, status) in cases {
        let out = Test::new()
            .args(&args)
            .current_dir(folder.path())
            .status(status)
            .run();
        assert_eq!(text(&out.stdout), "", "errors go to stderr only");
        settings.bind(|| insta::assert_snapshot!(format!("error_{name}"), text(&out.stderr)));
    }
}

#[test]
fn plan_view_and_status_table_of_a_standard_upgrade() {
    let lab = Lab::up(3, "0.9.0", 4);
    let folder = lab.path();
    let inventory = lab.inventory();
    let settings = snapshot_filters();

    let plan = Test::new()
        .args([Path::new("plan"), inventory.as_path()])
        .current_dir(folder)
        .run();
    settings.bind(|| insta::assert_snapshot!("plan_view_standard", text(&plan.stdout)));

    Test::new()
        .args([Path::new("apply"), inventory.as_path(), Path::new("--yes")])
        .current_dir(folder)
        .run();
    let status = Test::new().args(["status"]).current_dir(folder).run();
    settings.bind(|| insta::assert_snapshot!("status_table_finished", text(&status.stdout)));
}
