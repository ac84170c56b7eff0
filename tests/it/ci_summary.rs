//! `scripts/test-failures`: the end of a CI log, which is all some CI pages show, says why each
//! test failed, without the noise around it.

use std::path::Path;
use std::process::Command;

use crate::support::text;

#[test]
fn the_summary_of_a_failed_test_keeps_why_its_run_failed_and_what_its_peers_logged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/test-failures"))
        .arg(root.join("tests/fixtures/ci/failed-run.log"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let expected = "\
==== real_e2e::a_rollback
  thread 'real_e2e::a_rollback' (43005) panicked at tests/it/real_e2e.rs:354:5:
  real rollback 1.1.6 → 1.0.8 of 3 crdt peers failed (exit status: 1):
    early line 1
    early line 2
    early line 3
    early line 4
    early line 5
    early line 6
    early line 7
    early line 8
    early line 9
    early line 10
  [… what the run said of its failures, from the lines left out:]
  peer-ready failed on h3: `wait_until` gave up after 3s: its `fail_when` holds (the peer is not running: it exited; from its log:)
    | the peer is not running: it exited; from its log:
    | ERROR\tcrdt\tthe datastore is locked
  [… 15 lines …]
";
    assert!(summary.starts_with(expected), "{summary}");
    // The last lines of the message follow; then each peer's troubles, not the backtrace note.
    assert!(summary.contains("    late line 20\n  h1: 0 lines of trouble in its log, the last 12:\n  h3: 1 lines of trouble in its log, the last 12:\n    2026-12-07T18:00:00.000Z\tERROR\tcrdt\tthe datastore is locked\n"), "{summary}");
    assert!(!summary.contains("RUST_BACKTRACE"), "{summary}");
    assert!(!summary.contains("its whole log is kept"), "{summary}");
    assert_eq!(summary.matches("==== ").count(), 1, "{summary}");
}
