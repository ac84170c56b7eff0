//! Docker hosts (`service_manager: docker`): whether each peer's container can be recreated on
//! another image keeping everything of its own, and how. Refused when it cannot (no readable
//! container, the peer's config folder in the container's writable layer, a `config_dir` that
//! is not the folder it mounts there); warned about what would not be carried over. The
//! `docker create` options come from the container's own `docker inspect` configuration:
//! volumes, network, published ports, user, labels, limits; its environment is kept on the host
//! by the run (`keep-container`) and its command is its own with one-off flags left out (ADR
//! 0022). Pure.

use crate::facts::{Container, HostFacts};
use crate::inventory::{Inventory, Version};
use crate::procedure::ContainerContext;

use super::choice::Refusal;

/// The label docker compose puts on the containers it manages.
const COMPOSE_PROJECT: &str = "com.docker.compose.project";

/// Refuses a Docker host whose container cannot be recreated safely; else the warnings about
/// what a recreated container would not keep. Unreachable hosts are left to the procedure
/// choice, which refuses them naming why.
pub fn check_containers(
    inventory: &Inventory,
    facts: &[HostFacts],
) -> Result<Vec<String>, Refusal> {
    let mut warnings = Vec::new();
    for (host, facts) in inventory.hosts.iter().zip(facts) {
        let Some(name) = host.vars.docker_container() else {
            continue;
        };
        if !facts.is_reachable() {
            continue;
        }
        let refuse = |problem: String| Refusal::Container {
            host: host.name.clone(),
            problem,
        };
        let container = match facts.container.as_ref() {
            Some(found) => found.found().ok_or_else(|| {
                refuse(format!(
                    "its container `{name}` cannot be read ({}); set `docker_container` to the peer's container",
                    match found {
                        crate::facts::ContainerFacts::Unreadable { reason } => reason.as_str(),
                        crate::facts::ContainerFacts::Found(_) => "",
                    }
                ))
            })?,
            None => {
                return Err(refuse(format!(
                    "its container `{name}` was not inspected (the facts predate Docker support): plan again"
                )))
            }
        };
        let Some(mount) = container.config_mount() else {
            return Err(refuse(format!(
                "its container `{name}` keeps the peer's config folder {} in its own writable layer (no volume or bind mount is there): \
                 recreating it would lose the peer's identity and state; move the folder to a volume first",
                container.config_path
            )));
        };
        let config_dir = host.vars.config_dir().trim_end_matches('/');
        if mount.source.trim_end_matches('/') != config_dir {
            return Err(refuse(format!(
                "config_dir is {config_dir}, but its container `{name}` mounts {} at its config folder {}: set config_dir to that folder \
                 (the run reads the peer's config and keeps its lease there)",
                mount.source, container.config_path
            )));
        }
        if let Some(bad) = container
            .mounts
            .iter()
            .filter(|m| m.keeps_data())
            .find(|m| volume_source(m).contains(':') || m.destination.contains(':'))
        {
            return Err(refuse(format!(
                "its container `{name}` mounts {} at {}, which `docker create -v` cannot name (a `:` in it)",
                volume_source(bad),
                bad.destination
            )));
        }
        warnings.extend(container_warnings(&host.name, container));
    }
    Ok(warnings)
}

/// What a recreated container would lose, and a container docker compose manages.
fn container_warnings(host: &crate::inventory::HostName, container: &Container) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut lost = container.not_carried.clone();
    if container.entrypoint.as_ref().is_some_and(|e| e.len() > 1) {
        lost.push("entrypoint (more than one word)".to_string());
    }
    if !lost.is_empty() {
        warnings.push(format!(
            "{host}: its container `{}` sets {}, which the recreated container will not have (cluster-upgrade carries its volumes, \
             environment, network, published ports, restart policy, user, labels and limits)",
            container.name,
            lost.join(", ")
        ));
    }
    if let Some(project) = container.labels.get(COMPOSE_PROJECT) {
        warnings.push(format!(
            "{host}: its container `{}` belongs to the docker compose project `{project}`: set the new image in the compose file too, \
             or the next `docker compose up` recreates it on the old one",
            container.name
        ));
    }
    warnings
}

/// `current.container` of a Docker host upgraded (or rolled back) to `target`.
pub fn container_context(container: &Container, target: Version) -> ContainerContext {
    ContainerContext {
        name: container.name.clone(),
        image: container.image_id.clone(),
        run_args: run_args(container),
        volumes: volume_args(container),
        restart: container.restart.flag_value(),
        command: container
            .command
            .as_deref()
            .map(|own| command_on(own, target)),
        config_path: container.config_path.clone(),
        env: container.env.clone(),
    }
}

/// The operator's own command on `target`: without `--bootstrap ADDR` (a one-off: every later
/// start would clean the raft state and join again), without `--upgrade` where it is a
/// deprecated no-op (from 0.11), and with it where the official image always passes it (0.10 and
/// earlier: it migrates the state when needed and is harmless otherwise).
fn command_on(own: &[String], target: Version) -> Vec<String> {
    let mut words = Vec::with_capacity(own.len() + 1);
    let mut skip_next = false;
    for word in own {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        match word.as_str() {
            "--bootstrap" | "-j" => skip_next = true,
            w if w.starts_with("--bootstrap=") => {}
            "--upgrade" | "-u" => {}
            _ => words.push(word.clone()),
        }
    }
    if target.has_state_upgrade() && words.first().is_some_and(|w| w == "daemon") {
        words.push("--upgrade".to_string());
    }
    words
}

/// The `docker create` options of the container's own settings (see [`ContainerContext`]).
fn run_args(container: &Container) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: String| {
        args.push(name.to_string());
        args.push(value);
    };
    if let Some(network) = &container.network {
        flag("--network", network.clone());
    }
    for port in &container.ports {
        let binding = match (port.host_ip.as_str(), port.host_port.as_str()) {
            ("", "") => port.container_port.clone(),
            ("", host_port) => format!("{host_port}:{}", port.container_port),
            (ip, host_port) => format!("{ip}:{host_port}:{}", port.container_port),
        };
        flag("-p", binding);
    }
    args.extend(volume_args(container));
    let mut flag = |name: &str, value: String| {
        args.push(name.to_string());
        args.push(value);
    };
    let mut tmpfs = container.tmpfs.clone();
    for mount in container.mounts.iter().filter(|m| m.kind == "tmpfs") {
        tmpfs.entry(mount.destination.clone()).or_default();
    }
    for (destination, options) in tmpfs {
        let value = match options.as_str() {
            "" => destination,
            options => format!("{destination}:{options}"),
        };
        flag("--tmpfs", value);
    }
    if let Some(user) = &container.user {
        flag("--user", user.clone());
    }
    for (key, value) in &container.labels {
        flag("--label", format!("{key}={value}"));
    }
    for limit in &container.ulimits {
        flag(
            "--ulimit",
            format!("{}={}:{}", limit.name, limit.soft, limit.hard),
        );
    }
    for host in &container.extra_hosts {
        flag("--add-host", host.clone());
    }
    for cap in &container.cap_add {
        flag("--cap-add", cap.clone());
    }
    for cap in &container.cap_drop {
        flag("--cap-drop", cap.clone());
    }
    for server in &container.dns {
        flag("--dns", server.clone());
    }
    if let Some(memory) = container.memory {
        flag("--memory", memory.to_string());
    }
    if let Some(nano) = container.nano_cpus {
        flag("--cpus", cpus(nano));
    }
    if let Some(seconds) = container.stop_timeout {
        flag("--stop-timeout", seconds.to_string());
    }
    if let Some(driver) = &container.log_driver {
        flag("--log-driver", driver.clone());
    }
    if let Some([entrypoint]) = container.entrypoint.as_deref() {
        flag("--entrypoint", entrypoint.clone());
    }
    if container.init {
        args.push("--init".to_string());
    }
    args
}

/// `-v SOURCE:DESTINATION[:ro]` for every volume and bind mount.
fn volume_args(container: &Container) -> Vec<String> {
    container
        .mounts
        .iter()
        .filter(|m| m.keeps_data())
        .flat_map(|mount| {
            let mode = if mount.read_only { ":ro" } else { "" };
            [
                "-v".to_string(),
                format!("{}:{}{mode}", volume_source(mount), mount.destination),
            ]
        })
        .collect()
}

/// What `-v` names: the volume (named or anonymous, so the same one is attached again), or the
/// host folder of a bind mount.
fn volume_source(mount: &crate::facts::Mount) -> &str {
    match (&mount.name, mount.kind.as_str()) {
        (Some(name), "volume") => name,
        _ => &mount.source,
    }
}

/// `--cpus` from billionths of a CPU: `1.5`, `2`.
fn cpus(nano: u64) -> String {
    let whole = nano / 1_000_000_000;
    let fraction = nano % 1_000_000_000;
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{:09}", fraction)
            .trim_end_matches('0')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{ContainerFacts, Mount, PortBinding, RestartPolicy};

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    /// The container of the official image's documentation, on a named volume.
    fn container() -> Container {
        Container {
            name: "ipfs-cluster".into(),
            id: "9f2c".into(),
            image_id: "sha256:0a1b".into(),
            image_name: "ipfs/ipfs-cluster:v1.1.5".into(),
            running: true,
            command: None,
            entrypoint: None,
            user: None,
            labels: Default::default(),
            mounts: vec![Mount {
                kind: "volume".into(),
                name: Some("cluster-data".into()),
                source: "/var/lib/docker/volumes/cluster-data/_data".into(),
                destination: "/data/ipfs-cluster".into(),
                read_only: false,
            }],
            network: Some("host".into()),
            ports: Vec::new(),
            restart: RestartPolicy {
                name: "unless-stopped".into(),
                max_retries: 0,
            },
            ulimits: Vec::new(),
            init: false,
            extra_hosts: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            dns: Vec::new(),
            tmpfs: Default::default(),
            memory: None,
            nano_cpus: None,
            stop_timeout: None,
            log_driver: None,
            env: vec!["CLUSTER_SECRET".into()],
            config_path: "/data/ipfs-cluster".into(),
            not_carried: Vec::new(),
        }
    }

    fn inventory(config_dir: &str) -> Inventory {
        let yaml = format!(
            "cluster:\n  target_version: \"1.1.6\"\n  releases:\n    source: url\n    url: \"https://example.org/{{{{ version }}}}/{{{{ file }}}}\"\n    \
             sha256:\n      \"1.1.6\":\n        ipfs-cluster-service: {z}\n        ipfs-cluster-ctl: {z}\n\
             ssh:\n  known_hosts: /dev/null\n  accept_new_host_keys: true\n\
             defaults:\n  user: root\n\
             vars:\n  service_manager: docker\n  config_dir: {config_dir}\n\
             hosts:\n  - name: d1\n    address: 10.0.0.1\n",
            z = "0".repeat(64)
        );
        Inventory::from_text(std::path::Path::new("/inventory.yaml"), &yaml, &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn facts(container: ContainerFacts) -> Vec<HostFacts> {
        vec![HostFacts {
            host: "d1".into(),
            container: Some(container),
            ..HostFacts::default()
        }]
    }

    #[test]
    fn the_container_is_recreated_with_its_volume_network_and_policy_and_the_image_s_command() {
        let context = container_context(&container(), v("1.1.6"));
        assert_eq!(
            context.run_args,
            words("--network host -v cluster-data:/data/ipfs-cluster")
        );
        assert_eq!(context.volumes, words("-v cluster-data:/data/ipfs-cluster"));
        assert_eq!(context.restart, "unless-stopped");
        assert_eq!(context.command, None, "the new image's own command");
        assert_eq!(context.image, "sha256:0a1b");
        assert_eq!(context.env, ["CLUSTER_SECRET"]);
    }

    #[test]
    fn every_setting_of_its_own_is_carried_in_docker_create_options() {
        let mut c = container();
        c.network = Some("pinning_default".into());
        c.ports = vec![
            PortBinding {
                container_port: "9094/tcp".into(),
                host_ip: "127.0.0.1".into(),
                host_port: "9094".into(),
            },
            PortBinding {
                container_port: "9096/tcp".into(),
                host_ip: String::new(),
                host_port: "9096".into(),
            },
        ];
        c.mounts.push(Mount {
            kind: "bind".into(),
            name: None,
            source: "/etc/cluster/tls".into(),
            destination: "/tls".into(),
            read_only: true,
        });
        c.user = Some("1000:100".into());
        c.labels.insert("team".into(), "pins".into());
        c.ulimits.push(crate::facts::Ulimit {
            name: "nofile".into(),
            soft: 65536,
            hard: 65536,
        });
        c.memory = Some(1 << 30);
        c.nano_cpus = Some(1_500_000_000);
        c.restart = RestartPolicy {
            name: "on-failure".into(),
            max_retries: 5,
        };
        c.init = true;
        let context = container_context(&c, v("1.1.6"));
        assert_eq!(
            context.run_args.join(" "),
            "--network pinning_default -p 127.0.0.1:9094:9094/tcp -p 9096:9096/tcp \
             -v cluster-data:/data/ipfs-cluster -v /etc/cluster/tls:/tls:ro --user 1000:100 --label team=pins \
             --ulimit nofile=65536:65536 --memory 1073741824 --cpus 1.5 --init"
        );
        assert_eq!(context.restart, "on-failure:5");
    }

    #[test]
    fn one_off_flags_never_stay_in_the_command() {
        assert_eq!(
            command_on(
                &words("daemon --bootstrap /ip4/1/tcp/9096/p2p/QmA --stats"),
                v("1.1.6")
            ),
            words("daemon --stats")
        );
        assert_eq!(
            command_on(&words("daemon --upgrade"), v("1.1.6")),
            words("daemon"),
            "a deprecated no-op from 0.11"
        );
        assert_eq!(
            command_on(
                &words("daemon --bootstrap=/ip4/1/tcp/9096/ipfs/QmA"),
                v("0.10.1")
            ),
            words("daemon --upgrade"),
            "as the official 0.10 image runs it: the state is migrated when needed"
        );
        let mut c = container();
        c.command = Some(words("daemon --bootstrap /ip4/1/tcp/9096/p2p/QmA"));
        assert_eq!(
            container_context(&c, v("1.1.6")).command,
            Some(words("daemon"))
        );
    }

    #[test]
    fn a_container_whose_config_folder_is_not_a_volume_or_not_config_dir_is_refused() {
        let inventory = inventory("/var/lib/docker/volumes/cluster-data/_data");
        let ok = check_containers(
            &inventory,
            &facts(ContainerFacts::Found(Box::new(container()))),
        );
        assert_eq!(ok, Ok(Vec::new()));

        let mut layer = container();
        layer.mounts.clear();
        let refused = check_containers(&inventory, &facts(ContainerFacts::Found(Box::new(layer))))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(
                "keeps the peer's config folder /data/ipfs-cluster in its own writable layer"
            ),
            "{refused}"
        );

        let elsewhere = inventory_with_config_dir_refused();
        assert!(
            elsewhere.contains("config_dir is /data/ipfs-cluster, but its container `ipfs-cluster` mounts /var/lib/docker/volumes/cluster-data/_data"),
            "{elsewhere}"
        );

        let missing = check_containers(
            &inventory,
            &facts(ContainerFacts::Unreadable {
                reason: "Error: no such container ipfs-cluster".into(),
            }),
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("host d1: its container `ipfs-cluster` cannot be read (Error: no such container ipfs-cluster)"),
            "{missing}"
        );
    }

    fn inventory_with_config_dir_refused() -> String {
        check_containers(
            &inventory("/data/ipfs-cluster"),
            &facts(ContainerFacts::Found(Box::new(container()))),
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn what_is_not_carried_and_compose_projects_are_warned_about() {
        let mut c = container();
        c.not_carried = vec!["privileged".into()];
        c.labels.insert(COMPOSE_PROJECT.into(), "pinning".into());
        let warnings = check_containers(
            &inventory("/var/lib/docker/volumes/cluster-data/_data"),
            &facts(ContainerFacts::Found(Box::new(c))),
        )
        .unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("d1: its container `ipfs-cluster` sets privileged, which the recreated container will not have"));
        assert!(warnings[1].contains("docker compose project `pinning`"));
    }

    #[test]
    fn cpus_read_as_docker_takes_them() {
        assert_eq!(cpus(1_500_000_000), "1.5");
        assert_eq!(cpus(2_000_000_000), "2");
        assert_eq!(cpus(250_000_000), "0.25");
    }
}
