//! Where a host keeps its peer, as the host's own shell sees it, and how the lab starts, stops
//! and checks that peer: with the service wrapper on a process host, with systemctl on a
//! systemd host, with `docker` on a Docker host. Everything here renders shell text for
//! [`super::remote`]; nothing runs.

use std::path::{Path, PathBuf};

use super::layout::HostPaths;
use super::quote;
use super::state::HostKind;
use super::tree::{SERVICE_HOME, SERVICE_USER};
use super::wrapper;

/// The systemd unit of the peer on a systemd host (`ipfs-cluster.service`).
pub const SYSTEMD_UNIT: &str = "ipfs-cluster";

/// The systemd unit of a real lab's kubo on a systemd host (`ipfs.service`).
pub const KUBO_SYSTEMD_UNIT: &str = "ipfs";

/// Where a systemd host keeps the binaries.
pub const SYSTEMD_BIN_DIR: &str = "/usr/local/bin";

/// How long systemd waits for the peer to stop (it snapshots on SIGTERM) before SIGKILL, as
/// the wrapper's `stop`.
const STOP_TIMEOUT_SECS: u32 = 30;

/// How a daemon of a host (the peer, or a real lab's kubo) is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// `ipfs-cluster-svc` (or its `ipfs-svc` link) with its unit-like file, PID file and log
    /// (a process host).
    Wrapper {
        cmd: PathBuf,
        unit: PathBuf,
        pid_file: PathBuf,
        log: PathBuf,
    },
    /// A systemd unit run as `user` (a systemd host); its output goes to the journal.
    Systemd { unit: String, user: String },
    /// A container of the peer's image, driven by the host's `docker` (a Docker host), created
    /// with `run_args` (network, config folder, environment) from `image`.
    Docker {
        container: String,
        image: String,
        run_args: Vec<String>,
    },
}

impl Service {
    /// The script for `verb` (`start`, `stop`, `status`; `start` with `extra` daemon arguments
    /// for this one start, which `exec` is the daemon's command line of). `status` exits 0 when
    /// the daemon runs and 3 when it does not (as systemctl and the wrapper).
    pub fn script(&self, verb: &str, extra: &[String], exec: &str) -> String {
        match self {
            Service::Wrapper { cmd, .. } => {
                let mut args = vec![cmd.display().to_string(), verb.to_string()];
                args.extend(extra.iter().cloned());
                quote::command(&args)
            }
            Service::Systemd { unit, .. } => match verb {
                "status" => format!("systemctl is-active --quiet {}", quote::word(unit)),
                "start" if !extra.is_empty() => one_off_start(unit, exec, extra),
                verb => format!("systemctl {} {}", quote::word(verb), quote::word(unit)),
            },
            Service::Docker {
                container,
                run_args,
                ..
            } => {
                let c = quote::word(container);
                match verb {
                    "status" => format!(
                        "[ \"$(docker inspect --type container -f '{{{{.State.Running}}}}' {c} 2>/dev/null)\" = true ] || exit 3"
                    ),
                    "stop" => format!("docker stop -t {STOP_TIMEOUT_SECS} {c} >/dev/null"),
                    "start" if !extra.is_empty() => one_off_run(container, run_args, extra),
                    verb => format!("docker {} {c} >/dev/null", quote::word(verb)),
                }
            }
        }
    }

    /// Docker: the container recreated from its image with the lab's own options and its
    /// restart policy, the image's command: after a start with one-off arguments (see
    /// [`one_off_run`]), what an operator's container looks like.
    pub fn settle_script(&self) -> Option<String> {
        let Service::Docker {
            container,
            run_args,
            ..
        } = self
        else {
            return None;
        };
        let c = quote::word(container);
        Some(format!(
            "img=$(docker inspect --type container -f '{{{{.Config.Image}}}}' {c}) || exit 1\n\
             docker stop -t {STOP_TIMEOUT_SECS} {c} >/dev/null 2>&1; docker rm -f {c} >/dev/null || exit 1\n\
             docker run -d --name {c} --restart {restart} {args} \"$img\" >/dev/null",
            restart = super::docker::RESTART,
            args = quote::command(run_args),
        ))
    }

    /// A script printing the daemon's PID (nothing when it does not run).
    pub fn main_pid_script(&self) -> String {
        match self {
            Service::Wrapper { pid_file, .. } => {
                format!(
                    "cat {} 2>/dev/null",
                    quote::word(&pid_file.display().to_string())
                )
            }
            Service::Systemd { unit, .. } => format!(
                "pid=$(systemctl show -p MainPID --value {}) && [ \"$pid\" != 0 ] && echo \"$pid\"",
                quote::word(unit)
            ),
            Service::Docker { container, .. } => format!(
                "pid=$(docker inspect --type container -f '{{{{.State.Pid}}}}' {} 2>/dev/null) && [ \"$pid\" != 0 ] && echo \"$pid\"",
                quote::word(container)
            ),
        }
    }

    /// A script printing the daemon's log (its file, or its unit's journal).
    pub fn log_script(&self) -> String {
        match self {
            Service::Wrapper { log, .. } => {
                format!(
                    "cat {} 2>/dev/null",
                    quote::word(&log.display().to_string())
                )
            }
            Service::Systemd { unit, .. } => format!(
                "journalctl -u {} -o cat --no-pager 2>/dev/null",
                quote::word(unit)
            ),
            Service::Docker { container, .. } => {
                format!("docker logs {} 2>&1", quote::word(container))
            }
        }
    }

    /// The script that writes the unit whose daemon runs `exec` (and, for systemd, loads and
    /// enables it; `after` are the units it starts after).
    pub fn write_unit_script(&self, exec: &str, after: &[&str]) -> String {
        match self {
            Service::Wrapper { unit, .. } => format!(
                "printf '%s' {} >{}",
                quote::word(&wrapper::unit_text(exec)),
                quote::word(&unit.display().to_string())
            ),
            Service::Systemd { unit, user } => {
                let path = format!("/etc/systemd/system/{unit}.service");
                format!(
                    "printf '%s' {} >{} && systemctl daemon-reload && systemctl enable --quiet {}",
                    quote::word(&systemd_unit_file(&UnitSpec {
                        description: unit,
                        user,
                        exec,
                        after,
                    })),
                    quote::word(&path),
                    quote::word(unit)
                )
            }
            // The container an operator creates from the image (not started).
            Service::Docker {
                container,
                image,
                run_args,
            } => format!(
                "docker rm -f {c} >/dev/null 2>&1; docker create --name {c} --restart {restart} {args} {image} >/dev/null",
                c = quote::word(container),
                restart = super::docker::RESTART,
                args = quote::command(run_args),
                image = quote::word(image),
            ),
        }
    }

    /// What makes `dir` (written as root) the daemon's user's alone, 0700; nothing for the
    /// wrapper, whose daemons run as the login.
    pub fn own_script(&self, dir: &Path) -> Option<String> {
        match self {
            Service::Wrapper { .. } | Service::Docker { .. } => None,
            Service::Systemd { user, .. } => {
                let dir = quote::word(&dir.display().to_string());
                Some(format!(
                    "chown -R {u}:{u} {dir} && chmod 0700 {dir}",
                    u = quote::word(user)
                ))
            }
        }
    }
}

/// A host's peer (and a real lab's kubo), as seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnHost {
    /// The login's home on the host: the lab's scratch files (installs, blocks) go below it.
    pub home: PathBuf,
    /// `ipfs-cluster-service`, `ipfs-cluster-ctl` (and kubo's `ipfs`) are here.
    pub bin_dir: PathBuf,
    /// `ipfs-cluster-service -c`.
    pub config_dir: PathBuf,
    /// A real lab's kubo repository (`ipfs --repo-dir`).
    pub ipfs_repo: PathBuf,
    /// The peer's service.
    pub service: Service,
    /// A real lab's kubo service.
    pub kubo: Service,
}

impl OnHost {
    /// The host of `kind` whose lab folder is `paths`.
    pub fn new(kind: HostKind, paths: &HostPaths) -> OnHost {
        match kind {
            HostKind::Process => OnHost {
                home: paths.home(),
                bin_dir: paths.bin_dir(),
                config_dir: paths.config_dir(),
                ipfs_repo: paths.ipfs_repo(),
                service: Service::Wrapper {
                    cmd: paths.service_cmd(),
                    unit: paths.unit(),
                    pid_file: paths.pid_file(),
                    log: paths.log(),
                },
                kubo: Service::Wrapper {
                    cmd: paths.kubo_service_cmd(),
                    unit: paths.kubo_unit(),
                    pid_file: paths.kubo_pid_file(),
                    log: paths.kubo_log(),
                },
            },
            HostKind::Systemd => {
                let systemd = |unit: &str| Service::Systemd {
                    unit: unit.into(),
                    user: SERVICE_USER.into(),
                };
                OnHost {
                    home: "/root".into(),
                    bin_dir: SYSTEMD_BIN_DIR.into(),
                    config_dir: Path::new(SERVICE_HOME).join(".ipfs-cluster"),
                    ipfs_repo: Path::new(SERVICE_HOME).join(".ipfs"),
                    service: systemd(SYSTEMD_UNIT),
                    kubo: systemd(KUBO_SYSTEMD_UNIT),
                }
            }
            // `bin` holds the host's `docker` (and the runs' folders); the config folder is
            // mounted into the container. [`OnHost::docker`] names its image and options.
            HostKind::Docker => OnHost {
                service: Service::Docker {
                    container: super::docker::CONTAINER.into(),
                    image: String::new(),
                    run_args: Vec::new(),
                },
                ..OnHost::new(HostKind::Process, paths)
            },
        }
    }

    /// A Docker host whose container is created from `image` with `run_args`.
    pub fn docker(paths: &HostPaths, image: String, run_args: Vec<String>) -> OnHost {
        OnHost {
            service: Service::Docker {
                container: super::docker::CONTAINER.into(),
                image,
                run_args,
            },
            ..OnHost::new(HostKind::Docker, paths)
        }
    }

    /// The command line of a tool of the peer's release (`ipfs-cluster-ctl`): the file in
    /// `bin_dir`, or on a Docker host the one in the container (`docker exec`).
    pub fn tool(&self, file: &str) -> Vec<String> {
        match &self.service {
            Service::Docker { container, .. } => vec![
                "docker".into(),
                "exec".into(),
                container.clone(),
                file.into(),
            ],
            _ => vec![self.bin(file)],
        }
    }

    /// Whether the peer's release is in a container image (nothing is installed on the host).
    pub fn in_container(&self) -> bool {
        matches!(self.service, Service::Docker { .. })
    }

    /// The script running `ipfs-cluster-service -c <config> ARGS` (`init`) with `env`: on the
    /// host, or on a Docker host in a one-off container of the image on the config folder, as
    /// the peer's user, without network.
    pub fn init_script(&self, env: &[(String, String)], args: &[String]) -> String {
        let assignments: Vec<String> = env.iter().map(|(n, v)| quote::env(n, v)).collect();
        match &self.service {
            Service::Docker { image, .. } => {
                let mut words: Vec<String> = vec![
                    "docker".into(),
                    "run".into(),
                    "--rm".into(),
                    "--network".into(),
                    "none".into(),
                    "--user".into(),
                    format!("{}:{}", super::docker::PEER_UID, super::docker::PEER_GID),
                    "-v".into(),
                    format!(
                        "{}:{}",
                        self.config_dir.display(),
                        super::docker::CONFIG_PATH
                    ),
                ];
                for (name, value) in env {
                    words.push("-e".into());
                    words.push(format!("{name}={value}"));
                }
                words.extend([
                    "--entrypoint".into(),
                    "ipfs-cluster-service".into(),
                    image.clone(),
                    "-c".into(),
                    super::docker::CONFIG_PATH.into(),
                ]);
                words.extend(args.iter().cloned());
                quote::command(&words)
            }
            _ => {
                let mut words = vec![
                    self.bin("ipfs-cluster-service"),
                    "-c".into(),
                    self.config_dir.display().to_string(),
                ];
                words.extend(args.iter().cloned());
                format!("{} {}", assignments.join(" "), quote::command(&words))
                    .trim_start()
                    .to_string()
            }
        }
    }

    /// A file of `bin_dir`.
    pub fn bin(&self, file: &str) -> String {
        self.bin_dir.join(file).display().to_string()
    }

    /// Where an install unpacks and checks the files before moving them into `bin_dir`.
    pub fn scratch(&self) -> PathBuf {
        self.home.join(".lab-install")
    }

    /// Whether the service wrapper is installed beside the binaries.
    pub fn needs_wrapper(&self) -> bool {
        matches!(self.service, Service::Wrapper { .. })
    }

    /// The peer's daemon command line: on a systemd host the daemon's default config folder
    /// (`$HOME/.ipfs-cluster` of the unit's `User=`), as operators' units have it.
    pub fn peer_exec(&self) -> String {
        match self.service {
            Service::Wrapper { .. } | Service::Docker { .. } => format!(
                "{} -c {} daemon",
                self.bin("ipfs-cluster-service"),
                self.config_dir.display()
            ),
            Service::Systemd { .. } => format!("{} daemon", self.bin("ipfs-cluster-service")),
        }
    }

    /// kubo's daemon command line: offline, on its own repository.
    pub fn kubo_exec(&self) -> String {
        format!(
            "{} --repo-dir {} daemon --offline",
            self.bin(super::real::KUBO_FILE),
            self.ipfs_repo.display()
        )
    }

    /// The script that writes the peer's unit.
    pub fn write_unit_script(&self) -> String {
        self.service
            .write_unit_script(&self.peer_exec(), &["network.target", "ipfs.service"])
    }

    /// What runs after `init` (as root): on a systemd host the config folder becomes the
    /// service user's alone (0700: `service.json` holds the cluster secret).
    pub fn after_init_script(&self) -> Option<String> {
        self.service.own_script(&self.config_dir)
    }

    /// The peer's script for `verb` (see [`Service::script`]).
    pub fn service_script(&self, verb: &str, extra: &[String]) -> String {
        self.service.script(verb, extra, &self.peer_exec())
    }
}

/// What a systemd unit of the lab runs.
#[derive(Debug, Clone, Copy)]
pub struct UnitSpec<'a> {
    pub description: &'a str,
    pub user: &'a str,
    /// `ExecStart=`.
    pub exec: &'a str,
    /// `After=`.
    pub after: &'a [&'a str],
}

/// A unit of the lab (`ipfs-cluster.service`, `ipfs.service`): the daemon as its operators
/// run it, as `user` (systemd sets `HOME` for `User=`), enabled for the multi-user target.
pub fn systemd_unit_file(spec: &UnitSpec<'_>) -> String {
    let after = match spec.after {
        [] => String::new(),
        after => format!("After={}\n", after.join(" ")),
    };
    format!(
        "# Written by cluster-lab up --host-kind systemd.\n\
         [Unit]\n\
         Description={description} (cluster-lab)\n\
         {after}\
         \n\
         [Service]\n\
         Type=simple\n\
         User={user}\n\
         Group={user}\n\
         ExecStart={exec}\n\
         TimeoutStopSec={STOP_TIMEOUT_SECS}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        description = spec.description,
        user = spec.user,
        exec = spec.exec,
    )
}

/// Docker: runs the container once with `daemon EXTRA` (`--bootstrap ADDR`) and restart policy
/// `no`, on the image it was created from; [`Service::settle_script`] makes it an operator's
/// container again.
fn one_off_run(container: &str, run_args: &[String], extra: &[String]) -> String {
    let c = quote::word(container);
    format!(
        "img=$(docker inspect --type container -f '{{{{.Config.Image}}}}' {c}) || exit 1\n\
         docker rm -f {c} >/dev/null || exit 1\n\
         docker run -d --name {c} --restart no {args} \"$img\" daemon {extra} >/dev/null",
        args = quote::command(run_args),
        extra = quote::command(extra),
    )
}

/// Starts `unit` once with `extra` daemon arguments (`--bootstrap ADDR`) through a runtime
/// drop-in that is removed once the unit has started, as cluster-upgrade's playbooks do.
fn one_off_start(unit: &str, exec: &str, extra: &[String]) -> String {
    let dir = format!("/run/systemd/system/{unit}.service.d");
    let file = format!("{dir}/cluster-lab.conf");
    let mut exec = vec![exec.to_string()];
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
        let unit = systemd_unit_file(&UnitSpec {
            description: "ipfs-cluster",
            user: "ipfs",
            exec: &host.peer_exec(),
            after: &["network.target", "ipfs.service"],
        });
        assert!(unit.contains("\nUser=ipfs\n"), "{unit}");
        assert!(
            unit.contains("\nAfter=network.target ipfs.service\n"),
            "{unit}"
        );
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
    fn a_docker_host_drives_its_container_and_runs_the_tools_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        let paths = layout.host("h1");
        let host = OnHost::docker(
            &paths,
            "ipfs/ipfs-cluster:v1.1.3".into(),
            vec!["--network".into(), "host".into()],
        );
        assert!(host.in_container() && !host.needs_wrapper());
        assert_eq!(
            host.tool("ipfs-cluster-ctl"),
            ["docker", "exec", "ipfs-cluster", "ipfs-cluster-ctl"]
        );
        assert_eq!(
            host.write_unit_script(),
            "docker rm -f ipfs-cluster >/dev/null 2>&1; docker create --name ipfs-cluster --restart unless-stopped \
             --network host ipfs/ipfs-cluster:v1.1.3 >/dev/null"
        );
        assert_eq!(
            host.service_script("start", &[]),
            "docker start ipfs-cluster >/dev/null"
        );
        assert!(host
            .service_script("status", &[])
            .ends_with("= true ] || exit 3"));
        let once = host.service_script("start", &["--bootstrap".into(), "/ip4/1/p2p/Qm".into()]);
        assert!(
            once.ends_with("docker run -d --name ipfs-cluster --restart no --network host \"$img\" daemon --bootstrap /ip4/1/p2p/Qm >/dev/null"),
            "{once}"
        );
        let settle = host.service.settle_script().unwrap();
        assert!(
            settle.ends_with("docker run -d --name ipfs-cluster --restart unless-stopped --network host \"$img\" >/dev/null"),
            "the image's command: {settle}"
        );
        let init = host.init_script(&[("CLUSTER_SECRET".into(), "s".into())], &["init".into()]);
        assert_eq!(
            init,
            format!(
                "docker run --rm --network none --user 1000:100 -v {}:/data/ipfs-cluster -e 'CLUSTER_SECRET=s' \
                 --entrypoint ipfs-cluster-service ipfs/ipfs-cluster:v1.1.3 -c /data/ipfs-cluster init",
                paths.config_dir().display()
            )
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
