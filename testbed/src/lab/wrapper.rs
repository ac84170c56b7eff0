//! The per-host service wrapper (`ipfs-cluster-svc`) and its unit-like file.
//!
//! Real deployments run the peer under systemd or Docker; the lab's hosts have neither, so a
//! small script with systemctl-like verbs plays that part (see `assets/ipfs-cluster-svc`).

use std::path::Path;

/// The wrapper's file name in a host's `bin` folder.
pub const FILE_NAME: &str = "ipfs-cluster-svc";

/// The same wrapper under the name that makes it control kubo (`ipfs.unit`) on a real lab's host.
pub const KUBO_FILE_NAME: &str = "ipfs-svc";

/// The wrapper script, installed on every host.
pub const SCRIPT: &str = include_str!("../../assets/ipfs-cluster-svc");

/// The exit status of `ipfs-cluster-svc status` when the peer is not running (as systemctl).
pub const STATUS_NOT_RUNNING: i32 = 3;

/// A unit-like file whose daemon runs `exec` (the peer's, or kubo's through the `ipfs-svc`
/// link).
pub fn unit_text(exec: &str) -> String {
    format!(
        "# The lab's stand-in for a systemd unit; read by ipfs-cluster-svc (or ipfs-svc).\n\
         [Service]\n\
         ExecStart={exec}\n"
    )
}

/// The contents of `home/ipfs-cluster.unit`: how the service starts the daemon.
pub fn unit_file(bin_dir: &Path, config_dir: &Path) -> String {
    unit_text(&format!(
        "{}/ipfs-cluster-service -c {} daemon",
        bin_dir.display(),
        config_dir.display()
    ))
}

/// The contents of `home/ipfs.unit` on a real lab's host: kubo, offline, on its own repository.
pub fn kubo_unit_file(bin_dir: &Path, repo: &Path) -> String {
    unit_text(&format!(
        "{}/ipfs --repo-dir {} daemon --offline",
        bin_dir.display(),
        repo.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_names_the_daemon_and_its_config() {
        let unit = unit_file(
            Path::new("/lab/h1/home/bin"),
            Path::new("/lab/h1/home/.ipfs-cluster"),
        );
        assert!(unit.contains("\nExecStart=/lab/h1/home/bin/ipfs-cluster-service -c /lab/h1/home/.ipfs-cluster daemon\n"));
        assert!(SCRIPT.starts_with("#!/bin/sh"));
        let kubo = kubo_unit_file(
            Path::new("/lab/h1/home/bin"),
            Path::new("/lab/h1/home/.ipfs"),
        );
        assert!(kubo.contains(
            "\nExecStart=/lab/h1/home/bin/ipfs --repo-dir /lab/h1/home/.ipfs daemon --offline\n"
        ));
    }
}
