//! Where a host keeps its peer, as the host's own shell sees it, and how the lab starts, stops
//! and checks that peer: with the service wrapper on a process host, with systemctl on a
//! systemd host. Everything here renders shell text for [`super::remote`]; nothing runs.

use std::path::{Path, PathBuf};

use super::layout::HostPaths;
use super::quote;
use super::state::HostKind;
use super::tree::{SERVICE_HOME, SERVICE_USER};
use super::wrapper;

/// The systemd unit of the peer on a systemd host (`ipfs-cluster.service`).
pub const SYSTEMD_UNIT: &str = "ipfs-cluster";

/// Where a systemd host keeps the binaries.
pub const SYSTEMD_BIN_DIR: &str = "/usr/local/bin";

/// How long systemd waits for the peer to stop (it snapshots on SIGTERM) before SIGKILL, as
/// the wrapper's `stop`.
const STOP_TIMEOUT_SECS: u32 = 30;

/// How the peer of a host is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// `ipfs-cluster-svc` and its unit-like file (a process host).
    Wrapper { cmd: PathBuf, unit: PathBuf },
    /// A systemd unit run as `user` (a systemd host).
    Systemd { unit: String, user: String },
}

/// A host's peer, as seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnHost {
    /// `ipfs-cluster-service` and `ipfs-cluster-ctl` are here.
    pub bin_dir: PathBuf,
    /// `ipfs-cluster-service -c`.
    pub config_dir: PathBuf,
    /// Where an install unpacks and checks the files before moving them into `bin_dir`.
    pub scratch: PathBuf,
    pub service: Service,
}

impl OnHost {
    /// The host of `kind` whose lab folder is `paths`.
    pub fn new(kind: HostKind, paths: &HostPaths) -> OnHost {
        match kind {
            HostKind::Process => OnHost {
                bin_dir: paths.bin_dir(),
                config_dir: paths.config_dir(),
                scratch: paths.home().join(".lab-install"),
                service: Service::Wrapper {
                    cmd: paths.service_cmd(),
                    unit: paths.unit(),
                },
            },
            HostKind::Systemd => OnHost {
                bin_dir: SYSTEMD_BIN_DIR.into(),
                config_dir: Path::new(SERVICE_HOME).join(".ipfs-cluster"),
                scratch: "/root/.lab-install".into(),
                service: Service::Systemd {
                    unit: SYSTEMD_UNIT.into(),
                    user: SERVICE_USER.into(),
                },
            },
        }
    }

    /// A file of `bin_dir`.
    pub fn bin(&self, file: &str) -> String {
        self.bin_dir.join(file).display().to_string()
    }

    /// Whether the service wrapper is installed beside the binaries.
    pub fn needs_wrapper(&self) -> bool {
        matches!(self.service, Service::Wrapper { .. })
    }

    /// The script that writes the unit (and, for systemd, loads and enables it).
    pub fn write_unit_script(&self) -> String {
        match &self.service {
            Service::Wrapper { unit, .. } => format!(
                "printf '%s' {} >{}",
                quote::word(&wrapper::unit_file(&self.bin_dir, &self.config_dir)),
                quote::word(&unit.display().to_string())
            ),
            Service::Systemd { unit, user } => {
                let path = format!("/etc/systemd/system/{unit}.service");
                format!(
                    "printf '%s' {} >{} && systemctl daemon-reload && systemctl enable --quiet {}",
                    quote::word(&systemd_unit_file(&self.bin_dir, user)),
                    quote::word(&path),
                    quote::word(unit)
                )
            }
        }
    }

    /// What runs after `init` (as root): on a systemd host the config folder becomes the
    /// service user's alone (0700: `service.json` holds the cluster secret).
    pub fn after_init_script(&self) -> Option<String> {
        match &self.service {
            Service::Wrapper { .. } => None,
            Service::Systemd { user, .. } => {
                let cfg = quote::word(&self.config_dir.display().to_string());
                Some(format!(
                    "chown -R {u}:{u} {cfg} && chmod 0700 {cfg}",
                    u = quote::word(user)
                ))
            }
        }
    }

    /// The script for `verb` (`start`, `stop`, `status`; `start` with `extra` daemon arguments
    /// for this one start). `status` exits 0 when the peer runs and 3 when it does not (as
    /// systemctl and the wrapper).
    pub fn service_script(&self, verb: &str, extra: &[String]) -> String {
        match &self.service {
            Service::Wrapper { cmd, .. } => {
                let mut args = vec![cmd.display().to_string(), verb.to_string()];
                args.extend(extra.iter().cloned());
                quote::command(&args)
            }
            Service::Systemd { unit, .. } => match verb {
                "status" => format!("systemctl is-active --quiet {}", quote::word(unit)),
                "start" if !extra.is_empty() => one_off_start(unit, &self.bin_dir, extra),
                verb => format!("systemctl {} {}", quote::word(verb), quote::word(unit)),
            },
        }
    }
}

/// `ipfs-cluster.service`: the peer as its operators run it, as `user` from its home (the
/// daemon's default config folder is `$HOME/.ipfs-cluster`, and systemd sets `HOME` for
/// `User=`).
pub fn systemd_unit_file(bin_dir: &Path, user: &str) -> String {
    format!(
        "# Written by cluster-lab up --host-kind systemd.\n\
         [Unit]\n\
         Description=IPFS Cluster peer\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         User={user}\n\
         Group={user}\n\
         ExecStart={}/ipfs-cluster-service daemon\n\
         TimeoutStopSec={STOP_TIMEOUT_SECS}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        bin_dir.display()
    )
}

/// Starts `unit` once with `extra` daemon arguments (`--bootstrap ADDR`) through a runtime
/// drop-in that is removed once the unit has started, as cluster-upgrade's playbooks do.
fn one_off_start(unit: &str, bin_dir: &Path, extra: &[String]) -> String {
    let dir = format!("/run/systemd/system/{unit}.service.d");
    let file = format!("{dir}/cluster-lab.conf");
    let mut exec = vec![format!("{}/ipfs-cluster-service", bin_dir.display())];
    exec.push("daemon".into());
    exec.extend(extra.iter().cloned());
    format!(
        "mkdir -p {d} && printf '[Service]\\nExecStart=\\nExecStart=%s\\n' {e} >{f} && \
         systemctl daemon-reload && systemctl start {u}; rc=$?\n\
         rm -f {f}; systemctl daemon-reload\n\
         exit $rc",
        d = quote::word(&dir),
        e = quote::word(&exec.join(" ")),
        f = quote::word(&file),
        u = quote::word(unit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::layout::Layout;

    fn systemd() -> OnHost {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        OnHost::new(HostKind::Systemd, &layout.host("h1"))
    }

    #[test]
    fn a_systemd_host_runs_the_peer_as_ipfs_from_usr_local_bin() {
        let host = systemd();
        assert_eq!(
            host.bin("ipfs-cluster-ctl"),
            "/usr/local/bin/ipfs-cluster-ctl"
        );
        assert_eq!(host.config_dir, Path::new("/home/ipfs/.ipfs-cluster"));
        assert!(!host.needs_wrapper());
        let unit = systemd_unit_file(&host.bin_dir, "ipfs");
        assert!(unit.contains("\nUser=ipfs\n"), "{unit}");
        assert!(unit.contains("\nExecStart=/usr/local/bin/ipfs-cluster-service daemon\n"));
        assert!(unit.contains("\nWantedBy=multi-user.target\n"));
        assert_eq!(
            host.service_script("status", &[]),
            "systemctl is-active --quiet ipfs-cluster"
        );
        assert_eq!(
            host.service_script("stop", &[]),
            "systemctl stop ipfs-cluster"
        );
    }

    #[test]
    fn a_one_off_start_goes_through_a_runtime_drop_in_that_is_removed() {
        let host = systemd();
        let script = host.service_script("start", &["--bootstrap".into(), "/ip4/1/p2p/Qm".into()]);
        assert!(script.contains(
            "printf '[Service]\\nExecStart=\\nExecStart=%s\\n' '/usr/local/bin/ipfs-cluster-service daemon --bootstrap /ip4/1/p2p/Qm' >/run/systemd/system/ipfs-cluster.service.d/cluster-lab.conf"
        ), "{script}");
        assert!(script.contains("\nrm -f /run/systemd/system/ipfs-cluster.service.d/cluster-lab.conf; systemctl daemon-reload\n"));
        assert!(script.ends_with("exit $rc"));
    }
}
