//! Reads the probe's Docker sections into [`ContainerFacts`]. Pure: unit-tested on outputs
//! recorded from Podman's Docker-compatible CLI and from Docker.

use std::collections::BTreeMap;

use super::raw::{RawContainer, RawImage};
use super::{
    Container, ContainerFacts, Mount, PortBinding, RestartPolicy, Ulimit,
    DEFAULT_CONTAINER_CONFIG_PATH,
};

/// `docker inspect --type container -f` template: the settings a recreated container needs, as
/// one JSON object (field names as Docker's and Podman's Go structs have them; `.ID`, not
/// `.Id`). The environment is left out: its values may be secrets (`CLUSTER_SECRET`).
pub const CONTAINER_TEMPLATE: &str = concat!(
    r#"{"id":{{json .ID}},"name":{{json .Name}},"image":{{json .Image}},"image_name":{{json .Config.Image}},"#,
    r#""running":{{json .State.Running}},"cmd":{{json .Config.Cmd}},"#,
    r#""entrypoint":{{json .Config.Entrypoint}},"user":{{json .Config.User}},"#,
    r#""labels":{{json .Config.Labels}},"mounts":{{json .Mounts}},"#,
    r#""network":{{json .HostConfig.NetworkMode}},"ports":{{json .HostConfig.PortBindings}},"#,
    r#""restart":{{json .HostConfig.RestartPolicy}},"ulimits":{{json .HostConfig.Ulimits}},"#,
    r#""init":{{json .HostConfig.Init}},"extra_hosts":{{json .HostConfig.ExtraHosts}},"#,
    r#""cap_add":{{json .HostConfig.CapAdd}},"cap_drop":{{json .HostConfig.CapDrop}},"#,
    r#""memory":{{json .HostConfig.Memory}},"nano_cpus":{{json .HostConfig.NanoCpus}},"#,
    r#""stop_timeout":{{json .Config.StopTimeout}},"log":{{json .HostConfig.LogConfig.Type}},"#,
    r#""privileged":{{json .HostConfig.Privileged}},"devices":{{json .HostConfig.Devices}},"#,
    r#""security_opt":{{json .HostConfig.SecurityOpt}},"tmpfs":{{json .HostConfig.Tmpfs}},"#,
    r#""dns":{{json .HostConfig.Dns}}}"#,
);

/// `docker image inspect -f` template: the image's defaults.
pub const IMAGE_TEMPLATE: &str = concat!(
    r#"{"cmd":{{json .Config.Cmd}},"entrypoint":{{json .Config.Entrypoint}},"#,
    r#""user":{{json .Config.User}},"labels":{{json .Config.Labels}}}"#,
);

/// Prints `path DIR` (the container's `IPFS_CLUSTER_PATH`) and `set NAME` for every variable
/// the container sets beyond its image (`$c`: the container, `$img`: its image), never a value
/// but that path's.
pub const ENV_SCRIPT: &str = concat!(
    "e=$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' \"$img\" 2>/dev/null)\n",
    "v=$(docker inspect --type container -f '{{range .Config.Env}}{{println .}}{{end}}' \"$c\" 2>/dev/null)\n",
    "printf '%s\\n' \"$v\" | sed -n 's/^IPFS_CLUSTER_PATH=/path /p'\n",
    "printf '%s\\n' \"$v\" | grep -vxF -e \"$e\" | sed -n 's/^\\([^=]*\\)=.*/set \\1/p'",
);

/// What the probe printed for one container: each section's body when its command succeeded,
/// or what it printed when it failed.
#[derive(Debug, Clone, Copy)]
pub struct ContainerOutput<'a> {
    pub container: Result<&'a str, &'a str>,
    pub image: Result<&'a str, &'a str>,
    /// The [`ENV_SCRIPT`] lines.
    pub env: &'a str,
}

/// The container's facts, or why they could not be read.
pub fn read_container(output: ContainerOutput<'_>) -> ContainerFacts {
    let unreadable = |reason: String| ContainerFacts::Unreadable { reason };
    let raw: RawContainer = match output.container {
        Err(printed) => return unreadable(first_line(printed, "docker inspect failed")),
        Ok(body) => match serde_json::from_str(body.trim()) {
            Ok(raw) => raw,
            Err(error) => {
                return unreadable(format!("cannot read `docker inspect`'s output: {error}"))
            }
        },
    };
    let image: RawImage = match output.image {
        Err(printed) => {
            return unreadable(format!(
                "its image {} cannot be inspected: {}",
                short_id(&raw.image),
                first_line(printed, "docker image inspect failed")
            ))
        }
        Ok(body) => match serde_json::from_str(body.trim()) {
            Ok(image) => image,
            Err(error) => {
                return unreadable(format!(
                    "cannot read `docker image inspect`'s output: {error}"
                ))
            }
        },
    };
    ContainerFacts::Found(Box::new(container(raw, image, output.env)))
}

fn container(raw: RawContainer, image: RawImage, env: &str) -> Container {
    let (env_path, env_names) = env_lines(env);
    let own = |container: Option<Vec<String>>, image: Option<Vec<String>>| {
        let container = container.unwrap_or_default();
        (container != image.unwrap_or_default() && !container.is_empty()).then_some(container)
    };
    let command = own(raw.cmd, image.cmd);
    let config_path = command
        .as_deref()
        .and_then(config_flag)
        .or(env_path)
        .unwrap_or_else(|| DEFAULT_CONTAINER_CONFIG_PATH.to_string());
    let image_labels = image.labels.unwrap_or_default();
    let mut not_carried = Vec::new();
    if raw.privileged == Some(true) {
        not_carried.push("privileged".to_string());
    }
    if raw.devices.as_ref().is_some_and(|d| !d.is_empty()) {
        not_carried.push("devices".to_string());
    }
    if raw.security_opt.as_ref().is_some_and(|s| !s.is_empty()) {
        not_carried.push("security_opt".to_string());
    }
    Container {
        // Docker prints `/ipfs-cluster`, Podman `ipfs-cluster`.
        name: raw.name.trim_start_matches('/').to_string(),
        id: raw.id,
        image_id: raw.image,
        image_name: raw.image_name,
        running: raw.running,
        command,
        entrypoint: own(
            raw.entrypoint.map(|e| e.into_list()),
            image.entrypoint.map(|e| e.into_list()),
        ),
        user: raw
            .user
            .filter(|user| !user.is_empty() && Some(user) != image.user.as_ref()),
        labels: raw
            .labels
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, value)| image_labels.get(key) != Some(value))
            .collect(),
        mounts: raw
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| Mount {
                kind: m.kind,
                name: m.name.filter(|n| !n.is_empty()),
                source: m.source,
                destination: m.destination,
                read_only: !m.read_write,
            })
            .collect(),
        network: raw.network.filter(|n| !n.is_empty() && n != "default"),
        ports: ports(raw.ports.unwrap_or_default()),
        restart: raw
            .restart
            .map_or_else(RestartPolicy::default, |r| RestartPolicy {
                name: r.name,
                max_retries: r.maximum_retry_count,
            }),
        ulimits: raw
            .ulimits
            .unwrap_or_default()
            .into_iter()
            .map(|u| Ulimit {
                name: ulimit_name(&u.name),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        init: raw.init == Some(true),
        extra_hosts: raw.extra_hosts.unwrap_or_default(),
        cap_add: raw.cap_add.unwrap_or_default(),
        cap_drop: raw.cap_drop.unwrap_or_default(),
        dns: raw.dns.unwrap_or_default(),
        tmpfs: raw.tmpfs.unwrap_or_default(),
        memory: positive(raw.memory),
        nano_cpus: positive(raw.nano_cpus),
        stop_timeout: positive(raw.stop_timeout),
        log_driver: raw.log.filter(|l| !l.is_empty()),
        env: env_names,
        config_path,
        not_carried,
    }
}

/// The `path` and `set` lines of [`ENV_SCRIPT`].
fn env_lines(text: &str) -> (Option<String>, Vec<String>) {
    let mut path = None;
    let mut names = Vec::new();
    for line in text.lines() {
        if let Some(dir) = line.strip_prefix("path ") {
            path = Some(dir.to_string()).filter(|d| !d.is_empty());
        } else if let Some(name) = line.strip_prefix("set ") {
            names.push(name.trim().to_string());
        }
    }
    names.sort();
    names.dedup();
    (path, names)
}

/// `--config DIR`, `--config=DIR`, `-c DIR` in a command line.
fn config_flag(words: &[String]) -> Option<String> {
    words.iter().enumerate().find_map(|(i, word)| {
        if let Some(dir) = word.strip_prefix("--config=") {
            return Some(dir.to_string());
        }
        matches!(word.as_str(), "--config" | "-c")
            .then(|| words.get(i + 1).cloned())
            .flatten()
    })
}

fn ports(raw: BTreeMap<String, Option<Vec<super::raw::RawPortBinding>>>) -> Vec<PortBinding> {
    raw.into_iter()
        .flat_map(|(container_port, bindings)| {
            bindings
                .unwrap_or_default()
                .into_iter()
                .map(move |b| PortBinding {
                    container_port: container_port.clone(),
                    host_ip: b.host_ip,
                    host_port: b.host_port,
                })
        })
        .collect()
}

/// `RLIMIT_NOFILE` (Podman) → `nofile` (what `--ulimit` takes).
fn ulimit_name(name: &str) -> String {
    name.strip_prefix("RLIMIT_")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn positive(value: Option<i64>) -> Option<u64> {
    value.filter(|v| *v > 0).map(|v| v as u64)
}

fn first_line(text: &str, otherwise: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(otherwise)
        .to_string()
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Podman 4.3's Docker-compatible CLI on a lab host.
    const PODMAN: &str = r#"{"id":"51f72910927b989bf0fba87dd481e044b659049c9affe62087342fa2539a66d4","name":"ipfs-cluster","image":"466cb275fc316cd22ef8cb9dae3b06ddd4e65a183a1435540d782078b1460419","image_name":"docker.io/ipfs/ipfs-cluster:v1.1.3","running":true,"cmd":["daemon"],"entrypoint":"/usr/local/bin/entrypoint.sh","user":"","labels":{"io.buildah.version":"1.28.2"},"mounts":[{"Type":"bind","Source":"/srv/cluster data","Destination":"/data/ipfs-cluster","Driver":"","Mode":"","Options":["rbind"],"RW":true,"Propagation":"rprivate"}],"network":"host","ports":{},"restart":{"Name":"unless-stopped","MaximumRetryCount":0},"ulimits":[{"Name":"RLIMIT_NOFILE","Soft":20000,"Hard":20000}],"init":false,"extra_hosts":[],"cap_add":[],"cap_drop":[],"memory":0,"nano_cpus":0,"stop_timeout":10,"log":"k8s-file","privileged":false,"devices":[],"security_opt":[],"tmpfs":{},"dns":[],"volumes_from":null}"#;

    const PODMAN_IMAGE: &str = r#"{"cmd":["daemon"],"entrypoint":["/usr/local/bin/entrypoint.sh"],"user":"","labels":{"io.buildah.version":"1.28.2"}}"#;

    /// As Docker lays out `docker inspect` (written from its API types: no Docker daemon runs
    /// on the development machine), with a named volume, published ports and an on-failure
    /// policy.
    const DOCKER: &str = r#"{"id":"9f2c","name":"/cluster0","image":"sha256:0a1b2c3d4e5f60718293a4b5","image_name":"ipfs/ipfs-cluster:v1.1.5","running":false,"cmd":["daemon","--bootstrap","/dns4/c0/tcp/9096/p2p/QmA"],"entrypoint":["/sbin/tini","--","/usr/local/bin/entrypoint.sh"],"user":"","labels":{"com.docker.compose.project":"pinning","org.opencontainers.image.source":"https://github.com/ipfs-cluster/ipfs-cluster"},"mounts":[{"Type":"volume","Name":"cluster-data","Source":"/var/lib/docker/volumes/cluster-data/_data","Destination":"/data/ipfs-cluster","Driver":"local","Mode":"z","RW":true,"Propagation":""}],"network":"pinning_default","ports":{"9094/tcp":[{"HostIp":"127.0.0.1","HostPort":"9094"}],"9096/tcp":[{"HostIp":"","HostPort":"9096"}]},"restart":{"Name":"on-failure","MaximumRetryCount":5},"ulimits":null,"init":null,"extra_hosts":null,"cap_add":null,"cap_drop":null,"memory":1073741824,"nano_cpus":1500000000,"stop_timeout":null,"log":"json-file","privileged":true,"devices":[],"security_opt":null,"tmpfs":null,"dns":[],"volumes_from":null}"#;

    const DOCKER_IMAGE: &str = r#"{"cmd":["daemon"],"entrypoint":["/sbin/tini","--","/usr/local/bin/entrypoint.sh"],"user":"","labels":{"org.opencontainers.image.source":"https://github.com/ipfs-cluster/ipfs-cluster"}}"#;

    fn found(facts: ContainerFacts) -> Container {
        match facts {
            ContainerFacts::Found(container) => *container,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_podman_container_keeps_its_bind_mount_network_and_policy_and_only_its_own_env() {
        let container = found(read_container(ContainerOutput {
            container: Ok(PODMAN),
            image: Ok(PODMAN_IMAGE),
            env: "path /data/ipfs-cluster\nset CLUSTER_SECRET\nset CLUSTER_PEERNAME\nset TERM\n",
        }));
        assert_eq!(container.name, "ipfs-cluster");
        assert_eq!(container.image_name, "docker.io/ipfs/ipfs-cluster:v1.1.3");
        assert!(container.running);
        assert_eq!(container.command, None, "the image's own command");
        assert_eq!(
            container.entrypoint, None,
            "Podman's string is the image's list"
        );
        assert!(
            container.labels.is_empty(),
            "the image's labels are not the container's"
        );
        assert_eq!(container.network.as_deref(), Some("host"));
        assert_eq!(container.restart.flag_value(), "unless-stopped");
        assert_eq!(
            container.ulimits,
            [Ulimit {
                name: "nofile".into(),
                soft: 20000,
                hard: 20000
            }]
        );
        assert_eq!(
            container.env,
            ["CLUSTER_PEERNAME", "CLUSTER_SECRET", "TERM"]
        );
        let mount = container
            .config_mount()
            .expect("the config folder is mounted");
        assert_eq!(
            (mount.kind.as_str(), mount.source.as_str()),
            ("bind", "/srv/cluster data")
        );
        assert!(container.not_carried.is_empty());
    }

    #[test]
    fn a_docker_container_keeps_its_volume_ports_limits_and_labels_and_names_what_is_not_carried() {
        let container = found(read_container(ContainerOutput {
            container: Ok(DOCKER),
            image: Ok(DOCKER_IMAGE),
            env: "set CLUSTER_SECRET\n",
        }));
        assert_eq!(container.name, "cluster0");
        assert!(!container.running);
        assert_eq!(
            container.command.as_deref(),
            Some(&["daemon", "--bootstrap", "/dns4/c0/tcp/9096/p2p/QmA"].map(String::from)[..])
        );
        assert_eq!(container.config_path, DEFAULT_CONTAINER_CONFIG_PATH);
        let mount = container.config_mount().unwrap();
        assert_eq!(mount.name.as_deref(), Some("cluster-data"));
        assert_eq!(mount.source, "/var/lib/docker/volumes/cluster-data/_data");
        assert_eq!(container.network.as_deref(), Some("pinning_default"));
        assert_eq!(
            container.ports,
            [
                PortBinding {
                    container_port: "9094/tcp".into(),
                    host_ip: "127.0.0.1".into(),
                    host_port: "9094".into()
                },
                PortBinding {
                    container_port: "9096/tcp".into(),
                    host_ip: String::new(),
                    host_port: "9096".into()
                }
            ]
        );
        assert_eq!(container.restart.flag_value(), "on-failure:5");
        assert_eq!(
            (container.memory, container.nano_cpus),
            (Some(1 << 30), Some(1_500_000_000))
        );
        assert_eq!(
            container.labels.keys().collect::<Vec<_>>(),
            ["com.docker.compose.project"]
        );
        assert_eq!(container.not_carried, ["privileged"]);
    }

    #[test]
    fn the_config_folder_is_the_command_s_config_flag_else_the_env_else_the_image_default() {
        assert_eq!(
            config_flag(&["daemon", "--config", "/cfg"].map(String::from)),
            Some("/cfg".into())
        );
        assert_eq!(
            config_flag(&["--config=/x", "daemon"].map(String::from)),
            Some("/x".into())
        );
        let env = |text: &str| {
            found(read_container(ContainerOutput {
                container: Ok(PODMAN),
                image: Ok(PODMAN_IMAGE),
                env: text,
            }))
            .config_path
        };
        assert_eq!(env("path /srv/peer\n"), "/srv/peer");
        assert_eq!(env(""), DEFAULT_CONTAINER_CONFIG_PATH);
    }

    #[test]
    fn a_missing_container_or_image_is_unreadable_with_the_reason() {
        let missing = read_container(ContainerOutput {
            container: Err("Error: no such container ipfs-cluster\n"),
            image: Err(""),
            env: "",
        });
        assert_eq!(
            missing,
            ContainerFacts::Unreadable {
                reason: "Error: no such container ipfs-cluster".into()
            }
        );
        let no_image = read_container(ContainerOutput {
            container: Ok(DOCKER),
            image: Err("Error: No such image: sha256:0a1b\n"),
            env: "",
        });
        let ContainerFacts::Unreadable { reason } = no_image else {
            panic!("{no_image:?}")
        };
        assert!(
            reason.starts_with("its image 0a1b2c3d4e5f cannot be inspected: Error: No such image"),
            "{reason}"
        );
    }

    /// The env script under a real shell, with a `docker` that answers like one: only the
    /// container's own variables are named, never a value, and the config path is read.
    #[test]
    fn the_env_script_names_the_container_s_own_variables_without_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker");
        std::fs::write(
            &docker,
            "#!/bin/sh\ncase \"$1\" in\n\
             image) printf 'PATH=/usr/bin\\nIPFS_CLUSTER_PATH=/data/ipfs-cluster\\n' ;;\n\
             inspect) printf 'PATH=/usr/bin\\nIPFS_CLUSTER_PATH=/data/ipfs-cluster\\nCLUSTER_SECRET=s3cret=x\\nCLUSTER_PEERNAME=h1\\n' ;;\n\
             esac\n",
        )
        .unwrap();
        std::fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("c=ipfs-cluster; img=abc\n{ENV_SCRIPT}"))
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text,
            "path /data/ipfs-cluster\nset CLUSTER_SECRET\nset CLUSTER_PEERNAME\n"
        );
        assert!(!text.contains("s3cret"));
    }
}
