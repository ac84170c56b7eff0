//! Writing the lab's `inventory.yaml` (the format of docs/inventory-schema.md).
//!
//! Strings are written as JSON strings, which are valid double-quoted YAML scalars: no value can
//! turn into a number, a boolean or a syntax error, whatever the folder is called.

use std::fmt::Write as _;
use std::fs;

use super::error::{LabError, Result};
use super::layout::Layout;
use super::service::{OnHost, Service};
use super::state::{HostKind, LabState};

/// The group every lab host is in.
pub const GROUP: &str = "lab";

/// Writes `DIR/inventory.yaml` for `state`.
pub fn write(layout: &Layout, state: &LabState) -> Result<()> {
    let path = layout.inventory();
    fs::write(&path, render(layout, state)).map_err(LabError::io("writing", &path))
}

fn q(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

/// The inventory's `service_manager` for hosts of `kind`.
pub fn service_manager(kind: HostKind) -> &'static str {
    match kind {
        HostKind::Process => "lab",
        HostKind::Systemd => "systemd",
        HostKind::Docker => "docker",
    }
}

/// The inventory text.
pub fn render(layout: &Layout, state: &LabState) -> String {
    let mut y = String::new();
    let (what, releases) = match &state.real {
        Some(real) => (
            format!(
                "the real IPFS Cluster {} ({}) and kubo {}",
                state.version,
                real.consensus.as_str(),
                real.kubo_version
            ),
            q(&real.releases.display().to_string()),
        ),
        None => (
            format!("IPFS Cluster {} (stand-in)", state.version),
            "releases".to_string(),
        ),
    };
    let _ = writeln!(
        y,
        "# Written by cluster-lab up: {} hosts running {what} on loopback.",
        state.hosts.len(),
    );
    if let Some(latency) = &state.latency {
        let _ = writeln!(
            y,
            "# Every host is reached through cluster-lab's delaying relay ({}) on port {}.",
            latency.delay, latency.port
        );
    }
    let _ = writeln!(y, "# Paths are relative to this file.");
    let _ = writeln!(
        y,
        "cluster:\n  name: lab\n  target_version: {}",
        q(&state.target)
    );
    let _ = writeln!(y, "  releases:\n    source: local\n    path: {releases}");
    let _ = writeln!(
        y,
        // A lab is reached as its inventory says: the operator's ~/.ssh/config (a `Host *`
        // with a ProxyJump, say) has no say.
        "ssh:\n  config: none\n  known_hosts: known_hosts\n  accept_new_host_keys: false\n  connect_timeout: 10s\n  command_timeout: 120s\n  max_concurrency: 0"
    );
    // `up --login-user`: a non-root login that becomes root with sudo, peers run as `ipfs`.
    let login = state.login.as_ref().map_or(&state.user, |l| &l.user);
    let _ = writeln!(
        y,
        "defaults:\n  user: {}\n  port: {}\n  identity_file: id_ed25519",
        q(login),
        state.entry_port()
    );
    if state.login.is_some() {
        let _ = writeln!(y, "  become: {{method: sudo, user: root}}");
    }
    if let Some(chain) = super::bastion::proxy_jump(state) {
        // The hosts take logins only through the bastions (cluster-lab up --bastion).
        let _ = writeln!(y, "  proxy_jump: {}", q(&chain));
    }
    let manager = service_manager(state.host_kind);
    let _ = writeln!(y, "vars:\n  service_manager: {manager}");
    match state.host_kind {
        HostKind::Process if state.login.is_some() => {
            let _ = writeln!(y, "  service_user: {}", q(super::login::SERVICE_USER));
        }
        HostKind::Process => {}
        // The peers run as `ipfs` (the unit's User=), the login is root.
        HostKind::Systemd => {
            let _ = writeln!(y, "  service_user: {}", q(super::tree::SERVICE_USER));
            let _ = writeln!(y, "  systemd_unit: {}", q(super::service::SYSTEMD_UNIT));
        }
        // The peer runs in a container of the image; config_dir (per host) is the folder the
        // container mounts as its config folder.
        HostKind::Docker => {
            let _ = writeln!(y, "  docker_container: {}", q(super::docker::CONTAINER));
            let _ = writeln!(y, "  docker_image: {}", q(super::docker::IMAGE));
        }
    }
    let _ = writeln!(y, "groups:\n  - name: {GROUP}\n    vars: {{}}");
    let _ = writeln!(y, "hosts:");
    for host in &state.hosts {
        let paths = layout.host(&host.name);
        let _ = writeln!(y, "  - name: {}", q(&host.name));
        let _ = writeln!(y, "    address: {}", q(&host.address.to_string()));
        let _ = writeln!(y, "    port: {}", state.entry_port());
        let _ = writeln!(y, "    user: {}", q(login));
        let _ = writeln!(y, "    identity_file: id_ed25519");
        let _ = writeln!(y, "    groups: [{GROUP}]");
        let _ = writeln!(y, "    vars:");
        let _ = writeln!(y, "      service_manager: {manager}");
        let on_host = OnHost::new(state.host_kind, &paths);
        let _ = writeln!(
            y,
            "      bin_dir: {}",
            q(&on_host.bin_dir.display().to_string())
        );
        let _ = writeln!(
            y,
            "      config_dir: {}",
            q(&on_host.config_dir.display().to_string())
        );
        let _ = writeln!(y, "      api: {}", q(&state.api(host)));
        match &on_host.service {
            Service::Wrapper { cmd, .. } => {
                let _ = writeln!(y, "      service_cmd: {}", q(&cmd.display().to_string()));
            }
            Service::Systemd { unit, .. } => {
                let _ = writeln!(y, "      systemd_unit: {}", q(unit));
            }
            Service::Docker { .. } => {}
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::state::{HostRecord, Ports};

    #[test]
    fn every_host_gets_its_paths_and_api() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let state = LabState {
            version: "0.10.1".into(),
            target: "0.11.0".into(),
            user: "root".into(),
            ports: Ports::default(),
            secret: "00".repeat(32),
            hosts: vec![HostRecord {
                name: "h1".into(),
                address: "127.9.8.2".parse().unwrap(),
                sshd_pid: Some(1),
                peer_id: None,
                container: None,
            }],
            real: None,
            bastions: Vec::new(),
            login: None,
            latency: None,
            host_kind: HostKind::Process,
        };
        let text = render(&layout, &state);
        assert!(text.contains("target_version: \"0.11.0\""));
        assert!(text.contains("    address: \"127.9.8.2\"\n    port: 2222\n"));
        assert!(text.contains("      api: \"/ip4/127.9.8.2/tcp/9094\"\n"));
        let svc = format!(
            "      service_cmd: \"{}/hosts/h1/home/bin/ipfs-cluster-svc\"\n",
            layout.dir().display()
        );
        assert!(text.contains(&svc), "{text}");
    }

    #[test]
    fn systemd_hosts_are_driven_by_systemctl_as_root_with_the_peer_as_ipfs() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let state = LabState {
            version: "1.1.6".into(),
            target: "1.1.6".into(),
            user: "root".into(),
            ports: Ports::default(),
            secret: "00".repeat(32),
            hosts: vec![HostRecord {
                name: "h1".into(),
                address: "127.9.8.2".parse().unwrap(),
                sshd_pid: None,
                peer_id: None,
                container: None,
            }],
            real: None,
            bastions: Vec::new(),
            login: None,
            latency: None,
            host_kind: HostKind::Systemd,
        };
        let text = render(&layout, &state);
        assert!(
            text.contains("vars:\n  service_manager: systemd\n  service_user: \"ipfs\"\n  systemd_unit: \"ipfs-cluster\"\n"),
            "{text}"
        );
        assert!(text.contains("    user: \"root\"\n"));
        assert!(text.contains(
            "      service_manager: systemd\n      bin_dir: \"/usr/local/bin\"\n      config_dir: \"/home/ipfs/.ipfs-cluster\"\n      api: \"/ip4/127.9.8.2/tcp/9094\"\n      systemd_unit: \"ipfs-cluster\"\n"
        ), "{text}");
        assert!(!text.contains("service_cmd"));
    }

    #[test]
    fn docker_hosts_name_their_container_image_and_the_config_folder_it_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let state = LabState {
            version: "1.1.3".into(),
            target: "1.1.6".into(),
            user: "root".into(),
            ports: Ports::default(),
            secret: "00".repeat(32),
            hosts: vec![HostRecord {
                name: "h1".into(),
                address: "127.9.8.2".parse().unwrap(),
                sshd_pid: Some(1),
                peer_id: None,
                container: None,
            }],
            real: None,
            bastions: Vec::new(),
            login: None,
            latency: None,
            host_kind: HostKind::Docker,
        };
        let text = render(&layout, &state);
        assert!(
            text.contains("vars:\n  service_manager: docker\n  docker_container: \"ipfs-cluster\"\n  docker_image: \"ipfs/ipfs-cluster\"\n"),
            "{text}"
        );
        let home = format!("{}/hosts/h1/home", layout.dir().display());
        assert!(
            text.contains(&format!(
                "      service_manager: docker\n      bin_dir: \"{home}/bin\"\n      config_dir: \"{home}/.ipfs-cluster\"\n"
            )),
            "{text}"
        );
        assert!(!text.contains("service_cmd"));
    }
}
