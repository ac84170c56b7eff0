//! The health gates of the shipped playbooks, run for real by `sh` against a scripted
//! `ipfs-cluster-ctl`: they pass on a healthy peer and fail when a pin is lost or added.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use cluster_upgrade::inventory::Inventory;
use cluster_upgrade::procedure::{PinsContext, Procedure, TemplateContext};
use sha2::{Digest, Sha256};

/// A fake ctl: `version`, `id` (the first line, as the real text output) and `pin ls` from files.
const FAKE_CTL: &str = r#"#!/bin/sh
dir=$(dirname "$0")
shift 2
case "$1" in
  version) cat "$dir/version" ;;
  id) echo "QmSelf | h1 | Sees 2 other peers" ;;
  pin) cat "$dir/pins" ;;
  *) exit 2 ;;
esac
"#;

fn pin_line(cid: &str) -> String {
    format!("{cid} | pin | PIN | Repl. Factor: -1 | Allocations: [everywhere] | Recursive | Metadata: no\n")
}

/// Renders `step`'s wait for h1 of the lab fixture, with `bin_dir` pointing at `bin` and the
/// planned pinset being `planned`.
fn gate(playbook: &str, step: &str, bin: &Path, planned: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let overrides = [("bin_dir".to_string(), bin.display().to_string())];
    let inventory = Inventory::load(
        &root.join("tests/fixtures/playbooks/lab_inventory.yaml"),
        &overrides,
    )
    .unwrap();
    let procedure = Procedure::load(&root.join("playbooks").join(playbook)).unwrap();
    let host = inventory.host("h1").unwrap();
    let mut context =
        TemplateContext::placeholder(&inventory, host, inventory.hosts.last().unwrap());
    let mut sorted: Vec<&str> = planned.to_vec();
    sorted.sort();
    let listing: String = sorted.iter().map(|cid| format!("{cid}\n")).collect();
    let hash = Sha256::digest(listing.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    context.cluster.pins = Some(PinsContext {
        count: planned.len(),
        hash,
    });
    let rendered = procedure
        .render_step(procedure.step(step).unwrap(), &context)
        .unwrap()
        .unwrap();
    rendered.wait_until.expect("a health gate").command
}

fn run_gate(script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_health_gates_fail_when_a_pin_is_lost_or_added() {
    let bin = tempfile::tempdir().unwrap();
    let ctl = bin.path().join("ipfs-cluster-ctl");
    std::fs::write(&ctl, FAKE_CTL).unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(bin.path().join("version"), "0.10.1\n").unwrap();
    let planned = ["QmAAAA", "QmBBBB", "QmCCCC"];
    let set_pins = |cids: &[&str]| {
        std::fs::write(
            bin.path().join("pins"),
            cids.iter().map(|c| pin_line(c)).collect::<String>(),
        )
        .unwrap()
    };

    for (playbook, step) in [
        ("standard.yaml", "cluster-healthy"),
        ("bootstrap.yaml", "cluster-healthy"),
    ] {
        let script = gate(playbook, step, bin.path(), &planned);
        set_pins(&["QmCCCC", "QmAAAA", "QmBBBB"]);
        let (ok, stderr) = run_gate(&script);
        assert!(
            ok,
            "{playbook}: a healthy peer with every pin passes: {stderr}"
        );

        set_pins(&["QmAAAA", "QmCCCC"]);
        let (ok, stderr) = run_gate(&script);
        assert!(!ok, "{playbook}: a lost pin fails the gate");
        assert!(
            stderr.contains("the pinset differs from the 3 pins planned"),
            "{stderr}"
        );

        set_pins(&["QmAAAA", "QmBBBB", "QmCCCC", "QmDDDD"]);
        assert!(
            !run_gate(&script).0,
            "{playbook}: an unexpected pin fails the gate"
        );

        set_pins(&planned);
        std::fs::write(bin.path().join("version"), "0.9.0\n").unwrap();
        assert!(
            !run_gate(&script).0,
            "{playbook}: the old version fails the gate"
        );
        std::fs::write(bin.path().join("version"), "0.10.1\n").unwrap();
    }
}
