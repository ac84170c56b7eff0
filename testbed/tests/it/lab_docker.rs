//! `cluster-lab up --host-kind docker`: every host an sshd of the machine whose peer runs in a
//! container `ipfs-cluster` of the image `ipfs/ipfs-cluster:v<version>`, driven by the host's
//! own `docker` (Podman's Docker-compatible CLI on the host's own storage). Needs root, podman
//! and runc; imports the cached Debian tree as the base image on first use.

use crate::lab_support::{assert_healthy, down_and_assert_clean, on, processes_mentioning, Lab};

#[test]
fn options_docker_hosts_do_not_combine_with_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    let out = crate::lab_support::cluster_lab(&[
        "up",
        "--dir",
        lab.to_str().unwrap(),
        "--host-kind",
        "docker",
        "--real",
        "--version",
        "1.1.6",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid option --host-kind docker: not combined with --real"),
        "{stderr}"
    );
    assert!(!lab.join("lab.json").exists());
}

#[test]
fn docker_hosts_run_the_peer_in_their_own_container_of_the_image_and_go_down_without_a_trace() {
    let lab = Lab::up(2, "1.1.3", 5, &["--host-kind", "docker"]);
    assert_healthy(&lab.status(), 2, "1.1.3", 5);
    for host in ["h1", "h2"] {
        // Each host sees its own container only, as on separate machines.
        assert_eq!(
            on(
                &lab,
                host,
                "docker ps --all --format '{{.Names}} {{.Image}}'"
            ),
            "ipfs-cluster docker.io/ipfs/ipfs-cluster:v1.1.3"
        );
        // Nothing of the release is installed on the host: it is in the image.
        assert!(!lab
            .ssh(host, "command -v ipfs-cluster-service")
            .status
            .success());
        // As an operator creates it from the image's documentation: its command, a restart
        // policy, the host's network, the config folder bind-mounted and owned by the
        // image's ipfs user, which runs the peer.
        assert_eq!(
            on(
                &lab,
                host,
                "docker inspect -f '{{json .Config.Cmd}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}}' ipfs-cluster"
            ),
            "[\"daemon\"] unless-stopped host"
        );
        let config = lab.home(host).join(".ipfs-cluster");
        assert_eq!(
            on(
                &lab,
                host,
                "docker inspect -f '{{range .Mounts}}{{.Source}}:{{.Destination}}{{end}}' ipfs-cluster"
            ),
            format!("{}:/data/ipfs-cluster", config.display())
        );
        assert_eq!(
            on(&lab, host, &format!("stat -c %u:%g {}", config.display())),
            "1000:100"
        );
        assert_eq!(
            on(&lab, host, "docker exec ipfs-cluster cat /proc/1/status | sed -n 's/^Uid:\\t\\([0-9]*\\).*/\\1/p'"),
            "1000"
        );
    }
    let inventory = std::fs::read_to_string(lab.path().join("inventory.yaml")).unwrap();
    assert!(
        inventory.contains("  service_manager: docker\n  docker_container: \"ipfs-cluster\"\n  docker_image: \"ipfs/ipfs-cluster\"\n"),
        "{inventory}"
    );
    down_and_assert_clean(&lab);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(lab.path_str()),
        "mounts left behind under {}",
        lab.path_str()
    );
    assert!(processes_mentioning(lab.path()).is_empty());
}
