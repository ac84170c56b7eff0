//! The command line without any host: `check` of the shipped example, and `--help`.

mod support;

use support::{run, text};

#[test]
fn the_example_inventory_passes_check() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/inventory.example.yaml");
    let out = run(&["check", example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("valid (3 hosts, target"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn every_subcommand_documents_its_options_and_the_exit_codes() {
    for (command, options) in [
        ("check", &["--playbooks", "--var"][..]),
        (
            "plan",
            &[
                "--procedure",
                "--out",
                "--json",
                "--facts",
                "--state-dir",
                "--known-hosts",
                "--accept-new-host-keys",
                "--concurrency",
            ][..],
        ),
        (
            "apply",
            &[
                "--yes",
                "--state-dir",
                "--retry-in-flight",
                "--procedure",
                "--playbooks",
                "--var",
            ][..],
        ),
        ("status", &["--state-dir", "--run"][..]),
        ("recover", &["--yes"][..]),
    ] {
        let out = run(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        let help = text(&out.stdout);
        for option in options {
            assert!(
                help.contains(option),
                "`{command} --help` lacks {option}:\n{help}"
            );
        }
        assert!(
            help.contains("Exit codes:"),
            "`{command} --help` lacks the exit codes"
        );
    }
}

#[test]
fn a_missing_inventory_is_invalid_input_with_its_path() {
    let out = run(&["check", "/nonexistent/inventory.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/inventory.yaml"),
        "{}",
        text(&out.stderr)
    );
}
