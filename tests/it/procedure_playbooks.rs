//! The shipped playbooks load, validate against inventories of every service manager, render
//! to valid shell, and follow the documented upgrade procedures.

use std::path::{Path, PathBuf};
use std::process::Command;

use cluster_upgrade::inventory::Inventory;
use cluster_upgrade::procedure::{
    Delegate, Mode, OnResume, Procedure, RenderedStep, Targets, TemplateContext,
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn playbook(name: &str) -> Procedure {
    Procedure::load(&root().join("playbooks").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn inventory(path: PathBuf) -> Inventory {
    crate::support::private_key_fixture();
    Inventory::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/playbooks").join(name)
}

/// lab (local source), systemd (url source, the shipped example) and docker inventories.
fn inventories() -> Vec<(&'static str, Inventory)> {
    vec![
        ("lab", inventory(fixture("lab_inventory.yaml"))),
        ("systemd", inventory(root().join("inventory.example.yaml"))),
        ("docker", inventory(fixture("docker_inventory.yaml"))),
    ]
}

/// Renders `step` for `host` with placeholder facts; the anchor is the last host.
fn render(
    procedure: &Procedure,
    inventory: &Inventory,
    step: &str,
    host: &str,
) -> Option<RenderedStep> {
    let anchor = inventory.hosts.last().unwrap();
    let context = TemplateContext::placeholder(inventory, inventory.host(host).unwrap(), anchor);
    let spec = procedure
        .step(step)
        .unwrap_or_else(|| panic!("no step {step}"));
    procedure
        .render_step(spec, &context)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn command(procedure: &Procedure, inventory: &Inventory, step: &str, host: &str) -> String {
    render(procedure, inventory, step, host)
        .unwrap()
        .command
        .unwrap()
}

fn assert_valid_shell(what: &str, script: &str) {
    let output = Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{what}: sh -n refuses:\n{script}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn shipped_playbooks_validate_against_every_service_manager() {
    for (manager, inventory) in inventories() {
        for name in ["standard.yaml", "bootstrap.yaml", "rolling.yaml"] {
            playbook(name)
                .validate_against(&inventory)
                .unwrap_or_else(|e| panic!("{name} with {manager}: {e}"));
        }
    }
}

#[test]
fn every_rendered_command_is_valid_shell() {
    for (manager, inventory) in inventories() {
        for name in ["standard.yaml", "bootstrap.yaml", "rolling.yaml"] {
            let procedure = playbook(name);
            for step in &procedure.steps {
                for host in &inventory.hosts {
                    let Some(rendered) =
                        render(&procedure, &inventory, step.id.as_str(), host.name.as_str())
                    else {
                        continue;
                    };
                    let what = format!("{name} {} on {} ({manager})", step.id, host.name);
                    let scripts = [
                        rendered.command,
                        rendered.check,
                        rendered.wait_until.map(|w| w.command),
                    ];
                    for script in scripts.iter().flatten() {
                        assert_valid_shell(&what, script);
                    }
                }
            }
        }
    }
}

#[test]
fn an_unknown_service_manager_is_found_by_check() {
    let inventory = inventory(fixture("bad_manager_inventory.yaml"));
    let error = playbook("standard.yaml")
        .validate_against(&inventory)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown service_manager `upstart` (expected lab, systemd or docker)"),
        "{error}"
    );
}

#[test]
fn every_step_says_what_resume_does_and_destructive_steps_can_be_checked() {
    for name in ["standard.yaml", "bootstrap.yaml"] {
        for step in &playbook(name).steps {
            assert_ne!(
                step.on_resume,
                OnResume::Ask,
                "{name} {}: pick rerun or check",
                step.id
            );
            if step.destructive && step.on_resume == OnResume::Check {
                assert!(
                    step.check.is_some(),
                    "{name} {}: on_resume check needs a check",
                    step.id
                );
            }
        }
    }
}

#[test]
fn standard_stops_all_swaps_and_starts_all_with_upgrade() {
    let standard = playbook("standard.yaml");
    let ids: Vec<&str> = standard.steps.iter().map(|s| s.id.as_str()).collect();
    let position = |id: &str| ids.iter().position(|s| *s == id).unwrap();
    assert!(
        position("verify-release") < position("stop-peers"),
        "verify before stopping anything"
    );
    assert!(position("keep-previous") < position("install-release"));
    assert!(position("stop-peers") < position("install-release"));
    assert!(position("install-release") < position("start-upgrade"));
    // Stopping keeps the state in place; the state is exported before anything destructive.
    assert!(!standard.step("stop-peers").unwrap().destructive);
    assert!(position("stop-peers") < position("export-state"));
    assert!(position("export-state") < position("install-release"));
    assert!(standard.step("export-state").unwrap().backup.is_some());
    for id in ["install-release", "start-upgrade"] {
        let step = standard.step(id).unwrap();
        assert_eq!(
            (&step.on, step.mode, step.destructive),
            (&Targets::All, Mode::Parallel, true),
            "{id}"
        );
    }

    let [(_, lab), (_, systemd), (_, docker)] = <[_; 3]>::try_from(inventories()).ok().unwrap();
    assert_eq!(
        command(&standard, &lab, "start-upgrade", "h1"),
        "/lab/hosts/h1/home/bin/ipfs-cluster-svc start --upgrade"
    );
    // The example inventory targets 1.1.6: from 0.11 `daemon --upgrade` is a deprecated no-op,
    // so the peers start with plain `daemon`.
    let start = command(&standard, &systemd, "start-upgrade", "peer0");
    // No flag to add: no drop-in is written (a stale one of a killed run is removed first).
    assert!(!start.contains("ExecStart="), "{start}");
    assert!(
        start.contains("rm -f /run/systemd/system/ipfs-cluster.service.d/zz-cluster-upgrade.conf"),
        "{start}"
    );
    assert!(start.ends_with("systemctl start ipfs-cluster"), "{start}");
    // Docker: the container is recreated from its own configuration (what `check` stands in
    // for: a bind-mounted config folder, the host's network), `docker_run_args` added, with the
    // image's own command: `--upgrade` is never baked into a container.
    let start = command(&standard, &docker, "start-upgrade", "d1");
    assert!(
        start.contains("docker create --name \"$c.next\" --env-file \"$env\" --restart unless-stopped --network host \
             -v '/srv/cluster data:/data/ipfs-cluster' --log-opt 'max-size=10m' \"$image\" >/dev/null || exit 1\n"),
        "{start}"
    );
    assert!(
        start.starts_with("c=cluster; image=ipfs/ipfs-cluster:v0.10.1; "),
        "{start}"
    );
    assert!(start.ends_with("docker rename \"$c.next\" \"$c\" && docker start \"$c\" >/dev/null"));
    assert!(!start.contains("--upgrade"), "{start}");
    assert!(
        render(&standard, &docker, "install-release", "d1").is_none(),
        "containers are replaced, not patched"
    );
    assert!(render(&standard, &docker, "pull-image", "d1").is_some());
}

#[test]
fn docker_peers_keep_their_container_are_exported_through_its_image_and_restart_on_their_release() {
    let docker = inventory(fixture("docker_inventory.yaml"));
    for name in ["standard.yaml", "rolling.yaml"] {
        let procedure = playbook(name);
        let ids: Vec<&str> = procedure.steps.iter().map(|s| s.id.as_str()).collect();
        let position = |id: &str| ids.iter().position(|s| *s == id).unwrap();
        assert!(
            position("keep-container") < position("export-container-state"),
            "{name}"
        );
        let keep = command(&procedure, &docker, "keep-container", "d1");
        assert!(
            keep.contains("| grep -vxF -e \"$e\" > \"$b/container.env.tmp\""),
            "only the variables the container sets beyond its image: {keep}"
        );
        assert!(keep.contains("umask 077"), "{keep}");
        let export = render(&procedure, &docker, "export-container-state", "d1").unwrap();
        assert_eq!(
            export.backup.as_deref(),
            Some("state-export-d1-0.0.0.json"),
            "{name}: the file the other hosts' export-state writes"
        );
        let export = export.command.unwrap();
        assert!(
            export.contains(
                "docker run --rm --network none --user \"$(stat -c %u:%g '/srv/cluster data')\" \
                 -v '/srv/cluster data:/data/ipfs-cluster' --entrypoint ipfs-cluster-service \
                 \"$(docker inspect --type container -f '{{.Image}}' cluster)\" \
                 --config /data/ipfs-cluster state export 2>\"$err\""
            ),
            "{name}: the image the container runs: {export}"
        );
        assert!(
            render(&procedure, &docker, "export-state", "d1").is_none(),
            "{name}: no binaries on the host"
        );
        // The pebble steps restart the peer on its current release: its own container.
        assert_eq!(
            command(&procedure, &docker, "pebble-start", "d1"),
            "docker start cluster >/dev/null",
            "{name}"
        );
        let pull = command(&procedure, &docker, "pull-image", "d1");
        assert!(
            pull.contains(
                "docker image inspect \"$image\" >/dev/null 2>&1 || docker pull \"$image\""
            ),
            "pulled only when missing: {pull}"
        );
        assert!(
            pull.contains("--entrypoint ipfs-cluster-service \"$image\" --version"),
            "and checked to run the target: {pull}"
        );
    }
}

#[test]
fn docker_bootstrap_passes_bootstrap_once_and_keeps_removed_peers_down() {
    let bootstrap = playbook("bootstrap.yaml");
    let docker = inventory(fixture("docker_inventory.yaml"));
    let ids: Vec<&str> = bootstrap.steps.iter().map(|s| s.id.as_str()).collect();
    let position = |id: &str| ids.iter().position(|s| *s == id).unwrap();
    assert!(position("hold-restarts") < position("remove-peers"));
    assert!(position("bootstrap-others") < position("settle-container"));
    assert!(position("settle-container") < position("cluster-healthy"));
    let hold = command(&bootstrap, &docker, "hold-restarts", "d1");
    assert!(
        hold.starts_with("c=cluster; env=/usr/local/bin/.cluster-upgrade/backup/check/container.env\ndocker update --restart=no \"$c\" >/dev/null 2>&1 && exit 0\n"),
        "{hold}"
    );
    assert!(hold.contains("--restart no --network host"), "{hold}");
    // Bootstrapping: the image's command, `--bootstrap` for this one start, no restart policy.
    let once = command(&bootstrap, &docker, "bootstrap-others", "d1");
    assert!(
        once.contains("--restart no --network host -v '/srv/cluster data:/data/ipfs-cluster' --log-opt 'max-size=10m' \"$image\" \"$@\" --bootstrap /ip4/10.1.0.2/tcp/9096/ipfs/QmPlaceholderPeerIdOfd2 >/dev/null"),
        "{once}"
    );
    assert!(
        once.contains("{{range .Config.Cmd}}{{println .}}{{end}}"),
        "{once}"
    );
    // Settled: recreated with its own policy and command, no flag left.
    let settled = command(&bootstrap, &docker, "settle-container", "d1");
    assert!(
        settled.contains("--restart unless-stopped --network host"),
        "{settled}"
    );
    assert!(!settled.contains("--bootstrap"), "{settled}");
    let settle = bootstrap.step("settle-container").unwrap();
    assert_eq!((&settle.on, settle.mode), (&Targets::Others, Mode::Serial));
    assert_eq!(
        render(&bootstrap, &docker, "export-container-state", "d2")
            .unwrap()
            .backup
            .as_deref(),
        Some("state-export-d2-0.0.0.json")
    );
}

#[test]
fn standard_stages_by_upload_or_download_and_verifies_checksums() {
    let standard = playbook("standard.yaml");
    let [(_, lab), (_, systemd), _] = <[_; 3]>::try_from(inventories()).ok().unwrap();
    let upload = render(&standard, &lab, "upload-service", "h1")
        .unwrap()
        .upload
        .unwrap();
    assert_eq!(
        upload.to,
        "/lab/hosts/h1/home/bin/.cluster-upgrade/0.10.1/ipfs-cluster-service"
    );
    assert_eq!(upload.mode, 0o755);
    assert!(render(&standard, &lab, "fetch-release", "h1").is_none());
    assert!(render(&standard, &systemd, "upload-service", "peer0").is_none());
    let fetch = command(&standard, &systemd, "fetch-release", "peer0");
    assert!(fetch.contains("curl -fsSL -o ipfs-cluster-ctl.part https://downloads.example.org/ipfs-cluster/1.1.6/ipfs-cluster-ctl"), "{fetch}");
    let verify = command(&standard, &systemd, "verify-release", "peer0");
    assert!(
        verify.contains(
            "3f6a1b0c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8 ipfs-cluster-service"
        ),
        "{verify}"
    );
    assert!(verify.contains("sha256sum -c -"), "{verify}");
}

#[test]
fn standard_health_gate_waits_for_the_target_version_and_all_peers() {
    let standard = playbook("standard.yaml");
    let lab = inventory(fixture("lab_inventory.yaml"));
    let gate = render(&standard, &lab, "cluster-healthy", "h2").unwrap();
    assert_eq!(gate.command, None);
    let wait = gate.wait_until.unwrap();
    assert!(
        wait.command
            .contains("ipfs-cluster-ctl --host /ip4/127.0.0.3/tcp/9094 version"),
        "{}",
        wait.command
    );
    assert!(
        wait.command.contains("grep -q 'Sees 2 other peers'"),
        "{}",
        wait.command
    );
}

#[test]
fn bootstrap_removes_others_from_the_anchor_then_bootstraps_them_one_by_one() {
    let bootstrap = playbook("bootstrap.yaml");
    let lab = inventory(fixture("lab_inventory.yaml"));
    let remove = bootstrap.step("remove-peers").unwrap();
    assert_eq!(
        (&remove.on, remove.mode, remove.delegate_to),
        (&Targets::Others, Mode::Serial, Delegate::Anchor)
    );
    let rendered = render(&bootstrap, &lab, "remove-peers", "h1").unwrap();
    assert_eq!(rendered.run_on.as_str(), "h3");
    assert_eq!(
        rendered.command.as_deref(),
        Some("'/lab/hosts/h 3/home/bin'/ipfs-cluster-ctl --host /ip4/127.0.0.4/tcp/9094 peers rm QmPlaceholderPeerIdOfh1")
    );
    let wait = rendered.wait_until.unwrap();
    assert_eq!(
        wait.run_on.as_str(),
        "h1",
        "the removed peer is watched on its own host"
    );
    assert_eq!(
        wait.command,
        "! { /lab/hosts/h1/home/bin/ipfs-cluster-svc status >/dev/null 2>&1; } \
         && ! test -e /lab/hosts/h1/home/.ipfs-cluster/raft",
        "stopped, with its raft folder cleaned (moved to a backup, or deleted when empty)"
    );

    let start = render(&bootstrap, &lab, "start-anchor", "h3").unwrap();
    assert_eq!(
        start.command.as_deref(),
        Some("'/lab/hosts/h 3/home/bin/ipfs-cluster-svc' start --upgrade")
    );
    assert!(
        start
            .wait_until
            .unwrap()
            .command
            .contains("'Sees 0 other peers'"),
        "one-peer cluster"
    );

    let join = bootstrap.step("bootstrap-others").unwrap();
    assert_eq!((&join.on, join.mode), (&Targets::Others, Mode::Serial));
    assert_eq!(
        command(&bootstrap, &lab, "bootstrap-others", "h2"),
        "/lab/hosts/h2/home/bin/ipfs-cluster-svc start --bootstrap /ip4/127.0.0.4/tcp/9096/ipfs/QmPlaceholderPeerIdOfh3"
    );
}

#[test]
fn bootstrap_runs_state_upgrade_only_where_the_target_has_it() {
    let bootstrap = playbook("bootstrap.yaml");
    let lab = inventory(fixture("lab_inventory.yaml"));
    assert_eq!(
        command(&bootstrap, &lab, "state-upgrade", "h3"),
        "'/lab/hosts/h 3/home/bin'/ipfs-cluster-service --config '/lab/hosts/h 3/home/.ipfs-cluster' state upgrade"
    );
    let example = inventory(root().join("inventory.example.yaml"));
    assert!(
        render(&bootstrap, &example, "state-upgrade", "peer2").is_none(),
        "1.1.6 has no state upgrade"
    );
    let join = command(&bootstrap, &example, "bootstrap-others", "peer0");
    assert!(
        join.contains("daemon --bootstrap /dns4/peer2.example.org/tcp/9096/p2p/"),
        "{join}"
    );
}

#[test]
fn a_variable_missing_inside_a_partial_is_named() {
    // The inventory fixture says `service_manager: lab` but gives no `service_cmd`.
    let inventory = inventory(root().join("tests/fixtures/inventory/valid.yaml"));
    let error = playbook("standard.yaml")
        .validate_against(&inventory)
        .unwrap_err();
    let text = error.to_string();
    // The place of the partial, then the step that included it from the playbook.
    let (partial, rest) = text
        .split_once(": step `stop-peers` of ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(partial.contains("partials.yaml:"), "{text}");
    let (step_at, rest) = rest.split_once(' ').unwrap();
    assert!(
        step_at.starts_with(&format!(
            "{}:",
            root().join("playbooks/standard.yaml").display()
        )),
        "{text}"
    );
    assert!(
        rest.starts_with("for host `h1`: command: undefined variable `service_cmd`"),
        "{text}"
    );
    let unknown = playbook("standard.yaml")
        .validate_against(&self::inventory(fixture("bad_manager_inventory.yaml")));
    let unknown = unknown.unwrap_err().to_string();
    assert!(unknown.contains("standard.yaml:"), "{unknown}");
}

#[test]
fn an_inventory_raises_the_ready_deadline_of_the_shipped_playbooks() {
    let wait = |inventory: &Inventory, name: &str, step: &str| {
        let procedure = playbook(name);
        let anchor = inventory.hosts.last().unwrap();
        let context =
            TemplateContext::placeholder(inventory, inventory.hosts.first().unwrap(), anchor);
        procedure.render_step(procedure.step(step).unwrap(), &context)
    };
    let mut lab = inventory(fixture("lab_inventory.yaml"));
    let deadline = |inventory: &Inventory, name, step| {
        wait(inventory, name, step)
            .unwrap()
            .unwrap()
            .wait_until
            .unwrap()
            .deadline
            .to_string()
    };
    assert_eq!(deadline(&lab, "rolling.yaml", "peer-ready"), "5m");
    assert_eq!(deadline(&lab, "standard.yaml", "cluster-healthy"), "3m");
    let raise = |lab: &mut Inventory, value: &str| {
        for host in &mut lab.hosts {
            host.vars
                .insert("ready_deadline".parse().unwrap(), value.into());
        }
    };
    raise(&mut lab, "2h");
    assert_eq!(deadline(&lab, "rolling.yaml", "peer-ready"), "2h");
    assert_eq!(deadline(&lab, "standard.yaml", "cluster-healthy"), "2h");
    raise(&mut lab, "soon");
    let refused = wait(&lab, "rolling.yaml", "peer-ready")
        .unwrap_err()
        .to_string();
    assert!(refused.contains("wait_until.deadline: `soon`"), "{refused}");
    assert!(
        refused.contains("step `peer-ready` for host `"),
        "{refused}"
    );
}
