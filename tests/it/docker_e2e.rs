//! Issue 18, Docker for real: upgrades of peers that run in containers of the image
//! `ipfs/ipfs-cluster:v<version>` (`cluster-lab up --host-kind docker`: Podman's
//! Docker-compatible CLI as each host's `docker`), through `apply`, end to end. Each container
//! is recreated from its own configuration with only the image changed, every pin is kept, the
//! state is exported through the old image, and no one-off flag stays in a container.

use crate::support::{assert_success, run, text, Lab};

/// A docker lab of `peers` hosts on `version` holding `pins` pins.
fn docker_lab(peers: usize, version: &str, pins: usize) -> Lab {
    Lab::up_with(peers, version, pins, &["--host-kind", "docker"])
}

/// What `docker inspect` says of a host's peer container, asked over SSH as an operator would.
fn container(lab: &Lab, host: &str) -> serde_json::Value {
    let out = lab.ssh(host, "docker inspect --type container ipfs-cluster");
    assert_success(&out, &format!("docker inspect on {host}"));
    let mut all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.remove(0)
}

/// The settings a recreated container must keep: its volumes, environment, network and
/// restart policy.
fn own_settings(container: &serde_json::Value) -> serde_json::Value {
    let mounts: Vec<serde_json::Value> = container["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| serde_json::json!([m["Type"], m["Source"], m["Destination"], m["RW"]]))
        .collect();
    let mut env: Vec<&str> = container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|v| v.starts_with("CLUSTER_"))
        .collect();
    env.sort();
    serde_json::json!({
        "mounts": mounts,
        "env": env,
        "network": container["HostConfig"]["NetworkMode"],
        "restart": container["HostConfig"]["RestartPolicy"]["Name"],
    })
}

fn lab_secret(lab: &Lab) -> String {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.path().join("lab.json")).unwrap()).unwrap();
    state["secret"].as_str().unwrap().to_string()
}

/// Every file the runs wrote on the controller (plans, journals, exports, logs), as text.
fn controller_files(lab: &Lab) -> String {
    let mut text = String::new();
    let mut dirs = vec![lab.path().join(".cluster-upgrade")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    text
}

fn backups(lab: &Lab) -> Vec<String> {
    let mut files: Vec<String> = lab
        .journal()
        .iter()
        .filter(|r| r["event"] == "backup")
        .map(|r| r["file"].as_str().unwrap().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn a_standard_upgrade_recreates_each_container_from_its_own_configuration_keeping_every_pin() {
    let lab = docker_lab(3, "1.1.3", 30);
    let hosts = lab.host_names();
    let before: Vec<serde_json::Value> = hosts.iter().map(|h| container(&lab, h)).collect();

    // The plan shows the recreate; the container's environment values never leave the hosts.
    let plan = run(&["plan", lab.inventory().to_str().unwrap()]);
    assert_success(&plan, "plan");
    let secret = lab_secret(&lab);
    assert!(!text(&plan.stdout).contains(&secret));

    let out = run(&[
        "apply",
        lab.inventory().to_str().unwrap(),
        "--yes",
        "--procedure",
        "standard",
    ]);
    assert_success(&out, "apply");
    assert!(
        text(&out.stdout).contains("standard procedure, 1.1.3 → 1.1.6, finished"),
        "{}",
        text(&out.stdout)
    );
    lab.assert_cluster("1.1.6", 3, 30);

    for (host, old) in hosts.iter().zip(&before) {
        let new = container(&lab, host);
        assert_ne!(new["Id"], old["Id"], "{host}: recreated");
        assert!(
            new["Config"]["Image"]
                .as_str()
                .unwrap()
                .ends_with("ipfs/ipfs-cluster:v1.1.6"),
            "{host}: {}",
            new["Config"]["Image"]
        );
        assert_eq!(own_settings(&new), own_settings(old), "{host}");
        assert_eq!(
            new["Config"]["Cmd"],
            serde_json::json!(["daemon"]),
            "{host}: the image's command, no flag baked in"
        );
    }
    // Exported with the old image, before anything was replaced.
    assert_eq!(
        backups(&lab),
        hosts
            .iter()
            .map(|h| format!("state-export-{h}-1.1.3.json"))
            .collect::<Vec<_>>()
    );
    assert!(
        !controller_files(&lab).contains(&secret),
        "the cluster secret of the containers' environment is on the controller"
    );
}

#[test]
fn a_bootstrap_upgrade_passes_bootstrap_for_one_start_only_and_keeps_every_pin() {
    let lab = docker_lab(3, "0.9.0", 30);
    let hosts = lab.host_names();
    let before: Vec<serde_json::Value> = hosts.iter().map(|h| container(&lab, h)).collect();
    let out = run(&[
        "apply",
        lab.inventory().to_str().unwrap(),
        "--yes",
        "--procedure",
        "bootstrap",
    ]);
    assert_success(&out, "apply");
    assert!(
        text(&out.stdout).contains("bootstrap procedure, 0.9.0 → 0.10.1, finished"),
        "{}",
        text(&out.stdout)
    );
    lab.assert_cluster("0.10.1", 3, 30);
    for (host, old) in hosts.iter().zip(&before) {
        let new = container(&lab, host);
        assert_eq!(own_settings(&new), own_settings(old), "{host}");
        // The 0.10 image's own command (`daemon --upgrade`, as the official one), never the
        // `--bootstrap` of the one start that joined it to the anchor.
        assert_eq!(
            new["Config"]["Cmd"],
            serde_json::json!(["daemon", "--upgrade"]),
            "{host}"
        );
    }
    assert_eq!(
        backups(&lab),
        ["pinset-h3-0.9.0.json", "state-export-h3-0.9.0.json"]
    );
}

#[test]
fn the_default_rolling_upgrade_recreates_one_container_at_a_time() {
    let lab = docker_lab(3, "1.1.3", 20);
    let hosts = lab.host_names();
    let before: Vec<serde_json::Value> = hosts.iter().map(|h| container(&lab, h)).collect();
    let out = run(&["apply", lab.inventory().to_str().unwrap(), "--yes"]);
    assert_success(&out, "apply");
    assert!(
        text(&out.stdout).contains("rolling procedure, 1.1.3 → 1.1.6, finished"),
        "{}",
        text(&out.stdout)
    );
    lab.assert_cluster("1.1.6", 3, 20);
    for (host, old) in hosts.iter().zip(&before) {
        assert_eq!(
            own_settings(&container(&lab, host)),
            own_settings(old),
            "{host}"
        );
    }
    assert_eq!(backups(&lab).len(), 3, "{:?}", backups(&lab));
}

/// A container whose peer crashes as it starts (the stand-in's `crash-at-start`: a Go panic,
/// exit status 2), with the restart policy operators give it, is restarted by its engine: the
/// waits after the start keep waiting (a container its engine restarts has not exited for good,
/// ADR 0024) and the roll finishes with every pin.
#[test]
fn a_container_that_crashes_as_it_starts_is_restarted_by_its_engine_and_the_roll_finishes() {
    let lab = docker_lab(3, "1.1.3", 20);
    let fault = lab.lab(&["fault", "crash-at-start", "h2"]);
    assert_success(&fault, "cluster-lab fault crash-at-start on a Docker host");
    let out = run(&["apply", lab.inventory().to_str().unwrap(), "--yes"]);
    assert_success(&out, "apply with a peer that crashes once");
    lab.assert_cluster("1.1.6", 3, 20);
    let h2 = container(&lab, "h2");
    assert_eq!(h2["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    assert!(
        h2["RestartCount"].as_u64().is_some_and(|n| n >= 1),
        "the engine restarted the crashed peer: {}",
        h2["RestartCount"]
    );
    let logs = lab.ssh("h2", "docker logs ipfs-cluster 2>&1");
    assert!(
        text(&logs.stdout).contains("panic: runtime error: invalid memory address"),
        "the crashed start is in the container's log: {}",
        text(&logs.stdout)
    );
}

#[test]
fn killed_as_the_containers_are_recreated_apply_resumes_and_keeps_every_pin() {
    let lab = docker_lab(3, "1.1.3", 20);
    let inventory = lab.inventory();
    let args = [
        "apply",
        inventory.to_str().unwrap(),
        "--yes",
        "--procedure",
        "standard",
    ];
    lab.kill_when_started(&args, "start-upgrade", 1);
    let out = run(&["apply", inventory.to_str().unwrap(), "--yes"]);
    assert_success(&out, "resumed apply");
    lab.assert_cluster("1.1.6", 3, 20);
    for host in lab.host_names() {
        let out = lab.ssh(&host, "docker ps --all --format '{{.Names}}'");
        assert_eq!(
            text(&out.stdout).trim(),
            "ipfs-cluster",
            "{host}: one container, renamed"
        );
    }
}
