//! Upgrades from the CRDT-era releases the stand-in models besides 1.0.8 (issue 13): a 1.0.5
//! pebble store (format 1) on its way to 1.1.6, which refuses it as it is; 0.14 → 1.0 across
//! the RPC protocol change; 0.13 → 0.14 across the metrics break (ipfs-cluster#1409).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{assert_success, run, text, Lab};

fn plan(lab: &Lab) -> Output {
    run(&["plan", lab.inventory().to_str().unwrap()])
}

fn apply(lab: &Lab) -> Output {
    run(&["apply", lab.inventory().to_str().unwrap(), "--yes"])
}

/// The newest `OPTIONS-*` file's `format_major_version` in a host's pebble store (what the
/// facts probe reads).
fn store_options_format(lab: &Lab, host: &str) -> Option<u32> {
    let store = lab.home(host).join(".ipfs-cluster/pebble");
    let newest = std::fs::read_dir(&store)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("OPTIONS-"))
        .max()?;
    let text = std::fs::read_to_string(store.join(newest)).ok()?;
    text.split_once("format_major_version=")?
        .1
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A copy of a host's config folder, for starting another release on it without touching
/// the host.
fn copy_config(lab: &Lab, host: &str) -> (tempfile::TempDir, PathBuf) {
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("c");
    let status = Command::new("cp")
        .arg("-a")
        .arg(lab.home(host).join(".ipfs-cluster"))
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success());
    (copy, target)
}

/// `ipfs-cluster-service daemon` of the lab's staged `version` on `config`, on ports of its
/// own (it must fail before it listens, but should it not, it must not take the host's).
fn daemon_on(lab: &Lab, version: &str, config: &Path) -> Output {
    Command::new(
        lab.path()
            .join("releases")
            .join(version)
            .join("ipfs-cluster-service"),
    )
    .arg("--config")
    .arg(config)
    .arg("daemon")
    .env("CLUSTER_LISTENMULTIADDRESS", "/ip4/127.0.0.1/tcp/1")
    .env(
        "CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS",
        "/ip4/127.0.0.1/tcp/1",
    )
    .output()
    .unwrap()
}

fn set_format(config: &Path, format: u32) {
    let path = config.join("service.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["datastore"]["pebble"]["pebble_options"]["format_major_version"] = format.into();
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

#[test]
fn a_1_0_5_pebble_store_reaches_1_1_6_through_a_release_that_raises_it_and_keeps_every_pin() {
    let lab = Lab::up_with(
        3,
        "1.0.5",
        12,
        &["--datastore", "pebble", "--target", "1.1.6"],
    );
    for host in ["h1", "h2", "h3"] {
        assert_eq!(store_options_format(&lab, host), Some(1), "{host}");
    }

    // Without the pre-step 1.1.6 refuses such a peer, with the real messages: its config,
    // and its store once the config alone was raised.
    let (_copy, config) = copy_config(&lab, "h1");
    let refused = daemon_on(&lab, "1.1.6", &config);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains(
            "error loading configurations: FormatMajorVersion (1) must be between 13 and 24"
        ),
        "{}",
        text(&refused.stderr)
    );
    set_format(&config, 13);
    let refused = daemon_on(&lab, "1.1.6", &config);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains(&format!(
            "error creating datastore: failed to open pebble database: pebble: database \"{}\" was written in format major version 1, which is no longer supported",
            config.join("pebble").display()
        )),
        "{}",
        text(&refused.stderr)
    );

    // 1.0.5 cannot raise its store to 13. Without a release that can (1.0.8 – 1.1.2) in the
    // release source, the plan refuses and names the way, and nothing runs.
    let releases = lab.path().join("releases");
    let aside = lab.path().join("releases-aside");
    std::fs::create_dir_all(&aside).unwrap();
    for hop in ["1.0.8", "1.1.2"] {
        std::fs::rename(releases.join(hop), aside.join(hop)).unwrap();
    }
    for args in [vec!["plan"], vec!["apply", "--yes"]] {
        let mut args = args.clone();
        let inventory = lab.inventory();
        args.insert(1, inventory.to_str().unwrap());
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("upgrade to 1.0.8 first"), "{stderr}");
        assert!(
            stderr.contains("h1's pebble store is in format 1, which 1.1.6 cannot open"),
            "{stderr}"
        );
    }
    lab.assert_cluster("1.0.5", 3, 12);
    assert!(lab.run_dirs().is_empty(), "no run was started");

    // With them, one plan goes through the newest (1.1.2, rolled: one protocol, no pebble hazard
    // below 1.1.3), then to 1.1.6, raising the stores first, one peer at a time, on 1.1.2.
    for hop in ["1.0.8", "1.1.2"] {
        std::fs::rename(aside.join(hop), releases.join(hop)).unwrap();
    }
    let out = plan(&lab);
    assert_success(&out, "plan to 1.1.6 through 1.1.2");
    let shown = text(&out.stdout);
    assert!(
        shown.contains(
            "1.0.5 → 1.1.6 goes through 1.1.2: the pebble stores are in format 1, which 1.1.6 cannot open, and 1.0.5 cannot raise them to 13: 1.1.2 can; stage 1 upgrades to 1.1.2 (rolling), stage 2 to 1.1.6 (rolling)"
        ),
        "{shown}"
    );
    assert!(
        shown.contains(
            "pebble stores older than 1.1.6 opens: h1 (format 1), h2 (format 1), h3 (format 1)"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("[1.1.6] Raise pebble's format_major_version"),
        "{shown}"
    );
    assert_success(&apply(&lab), "apply to 1.1.6");
    lab.assert_cluster("1.1.6", 3, 12);
    for host in ["h1", "h2", "h3"] {
        assert_eq!(store_options_format(&lab, host), Some(13), "{host}");
    }
}

#[test]
fn from_0_14_to_1_0_on_crdt_the_standard_procedure_is_chosen_for_the_protocol_change() {
    let lab = Lab::up_with(3, "0.14.5", 8, &["--target", "1.0.8"]);
    let out = plan(&lab);
    assert_success(&out, "plan");
    let shown = text(&out.stdout);
    assert!(shown.contains("Procedure: standard"), "{shown}");
    assert!(
        shown.contains("not rolled: the RPC protocol changes (0.14.5 speaks /ipfscluster/0.12/rpc, 1.0.8 speaks /ipfscluster/1.0/rpc)"),
        "{shown}"
    );
    // Asked for one peer at a time anyway: refused with the same reason.
    let inventory = lab.inventory();
    let out = run(&[
        "plan",
        inventory.to_str().unwrap(),
        "--procedure",
        "rolling",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the RPC protocol changes"),
        "{}",
        text(&out.stderr)
    );
    // And it works: every peer on 1.0.8 with every pin, the badger stores carried over.
    assert_success(&apply(&lab), "apply");
    lab.assert_cluster("1.0.8", 3, 8);
    assert!(lab.home("h1").join(".ipfs-cluster/badger").is_dir());
}

#[test]
fn from_0_13_to_0_14_is_not_rolled_across_the_metrics_break() {
    let lab = Lab::up_with(3, "0.13.1", 4, &["--target", "0.14.5"]);
    let out = plan(&lab);
    assert_success(&out, "plan");
    let shown = text(&out.stdout);
    assert!(shown.contains("Procedure: standard"), "{shown}");
    assert!(
        shown.contains("not rolled: 0.13.1 and 0.14.5 share the protocol /ipfscluster/0.12/rpc, but metrics and status changed between 0.13 and 0.14 (ipfs-cluster#1409)"),
        "{shown}"
    );
    let inventory = lab.inventory();
    let out = run(&[
        "plan",
        inventory.to_str().unwrap(),
        "--procedure",
        "rolling",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ipfs-cluster#1409"),
        "{}",
        text(&out.stderr)
    );
    // All peers at once: every peer on 0.14.5, seeing the others, with every pin.
    assert_success(&apply(&lab), "apply");
    lab.assert_cluster("0.14.5", 3, 4);
}

#[test]
fn followers_on_a_login_are_shown_in_the_facts_and_named_in_the_protocol_warning() {
    let lab = Lab::up_with(3, "0.14.5", 1, &["--target", "1.0.8"]);
    // What `ipfs-cluster-follow mirror init` leaves on h2's login (the probe reads no more).
    let folder = lab.home("h2").join(".ipfs-cluster-follow/mirror");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("service.json"), "{}").unwrap();
    // A folder without a service.json is no follower.
    std::fs::create_dir_all(lab.home("h2").join(".ipfs-cluster-follow/half")).unwrap();
    let out = plan(&lab);
    assert_success(&out, "plan");
    let shown = text(&out.stdout);
    // The facts table's note column, on h2's row only.
    let rows: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains("followers: "))
        .collect();
    assert_eq!(rows.len(), 1, "{shown}");
    assert!(
        rows[0].contains("h2") && rows[0].ends_with("followers: mirror"),
        "{shown}"
    );
    assert!(!shown.contains("half"), "{shown}");
    let shown = shown + &text(&out.stderr);
    assert!(
        shown.contains("tell their operators (followers seen: mirror on h2)"),
        "{shown}"
    );
}
