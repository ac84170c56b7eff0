//! Where everything of a lab lives inside its folder.
//!
//! The hosts share the machine with the lab, so a host's "remote" paths are the same strings
//! as the local ones; the lab still only changes a running host through SSH, and reads these
//! paths locally only to tear down or inject faults when SSH may be the thing that is broken.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sshd::SshdSpec;

use super::error::{LabError, Result};

/// The paths of one lab folder (absolute, so they can be written into configs and inventories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Uses `dir`, creating it if needed, as an absolute path.
    pub fn create(dir: &Path) -> Result<Layout> {
        fs::create_dir_all(dir).map_err(LabError::io("creating", dir))?;
        Layout::open(dir)
    }

    /// Uses an existing `dir` as an absolute path.
    pub fn open(dir: &Path) -> Result<Layout> {
        let dir = fs::canonicalize(dir).map_err(LabError::io("opening", dir))?;
        Ok(Layout { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Everything `status`, `down` and `fault` need to know about the lab.
    pub fn lab_json(&self) -> PathBuf {
        self.dir.join("lab.json")
    }
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    /// The user key every host accepts.
    pub fn identity(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }
    /// `releases/<version>/{ipfs-cluster-service,ipfs-cluster-ctl,SHA256SUMS}`.
    pub fn releases(&self) -> PathBuf {
        self.dir.join("releases")
    }
    pub fn release(&self, version: &str) -> PathBuf {
        self.releases().join(version)
    }
    /// Files the lab copies to every host besides a release (the service wrapper).
    pub fn assets(&self) -> PathBuf {
        self.dir.join("assets")
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    /// The bastions' sshd folders and relay rules (`up --bastion`).
    pub fn bastions(&self) -> PathBuf {
        self.dir.join("bastions")
    }
    /// The rules of the delaying relay in front of the hosts (`up --rtt`); its command line
    /// names this file, which is how `down` knows the process is the lab's.
    pub fn delay_relay(&self) -> PathBuf {
        self.dir.join("delay-relay.json")
    }
    /// The OpenSSH client config that reaches the hosts through the bastions (the lab's own
    /// `ssh` commands use it).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }
    pub fn host(&self, name: &str) -> HostPaths {
        HostPaths {
            root: self.hosts().join(name),
        }
    }
}

/// The paths of one host: its sshd folder and its home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
}

impl HostPaths {
    /// Config, host key, pid file and log of the host's sshd.
    pub fn sshd_dir(&self) -> PathBuf {
        self.root.join("sshd")
    }
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    pub fn bin_dir(&self) -> PathBuf {
        self.home().join("bin")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.home().join(".ipfs-cluster")
    }
    /// The service wrapper, `ipfs-cluster-svc`.
    pub fn service_cmd(&self) -> PathBuf {
        self.bin_dir().join(super::wrapper::FILE_NAME)
    }
    /// The unit-like file holding the daemon's `ExecStart=` line.
    pub fn unit(&self) -> PathBuf {
        self.home().join("ipfs-cluster.unit")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.home().join("ipfs-cluster.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.home().join("ipfs-cluster.log")
    }
    /// The socket of `up`'s shared SSH connection to the host. It lives under the host folder
    /// so that a master connection left by a killed `up` is found by `down`'s sweep.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("ssh-control")
    }
    /// A Docker host's container engine: Podman's configuration and storage (`lab::docker`).
    pub fn docker_dir(&self) -> PathBuf {
        self.root.join("docker")
    }
    /// A systemd host's container: its overlay's upper folder and console log.
    pub fn container_dir(&self) -> PathBuf {
        self.root.join("container")
    }
    /// The raft data folder of the peer.
    pub fn raft_dir(&self) -> PathBuf {
        self.config_dir().join("raft")
    }
    /// A real lab's kubo repository (`ipfs --repo-dir`).
    pub fn ipfs_repo(&self) -> PathBuf {
        self.home().join(".ipfs")
    }
    /// The wrapper controlling kubo (`ipfs-svc`, a link to `ipfs-cluster-svc`).
    pub fn kubo_service_cmd(&self) -> PathBuf {
        self.bin_dir().join(super::wrapper::KUBO_FILE_NAME)
    }
    /// kubo's unit-like file, PID file and log (read by `ipfs-svc`).
    pub fn kubo_unit(&self) -> PathBuf {
        self.home().join("ipfs.unit")
    }
    pub fn kubo_pid_file(&self) -> PathBuf {
        self.home().join("ipfs.pid")
    }
    pub fn kubo_log(&self) -> PathBuf {
        self.home().join("ipfs.log")
    }
}

/// The sshd of a host, as the shared fixture describes it.
pub fn sshd_spec(layout: &Layout, name: &str, address: std::net::Ipv4Addr, port: u16) -> SshdSpec {
    let host = layout.host(name);
    SshdSpec {
        dir: host.sshd_dir(),
        address,
        port,
        home: host.home(),
        authorized_keys: layout.authorized_keys(),
        netns: None,
        allow_from: None,
    }
}
