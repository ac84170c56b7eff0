//! The Docker host kind (`up --host-kind docker`): each host is an sshd of the machine (as a
//! process host) whose peer runs in a container named `ipfs-cluster`, started from an image
//! `ipfs/ipfs-cluster:v<version>` like the official one (`lab::images`). The container engine
//! is Podman's Docker-compatible CLI: every host has a `docker` command first in its `PATH`
//! (its `bin` folder, which sshd puts first) that runs Podman on the host's own storage and
//! configuration (`hosts/<name>/docker/`): what `docker ps` shows on one host is that host's,
//! as on separate machines. The images are the lab's, shared read-only by every host.
//!
//! What makes Podman run here (a Firecracker VM, Debian 12, hybrid cgroups, no
//! CAP_SYS_RESOURCE; docs/docker.md): runc (crun refuses hybrid cgroups), the cgroupfs manager,
//! ulimits within the VM's (`nofile` ≤ 20000, `nproc` ≤ 32768), file locks and events, no pulls.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::{LabError, Result};
use super::layout::HostPaths;
use super::quote;

/// The peer's container on every host (the official image's documentation names it so).
pub const CONTAINER: &str = "ipfs-cluster";

/// The image repository; a release's image is `<IMAGE>:v<version>`.
pub const IMAGE: &str = "ipfs/ipfs-cluster";

/// The peer's config folder inside the container (`IPFS_CLUSTER_PATH` of the official image).
pub const CONFIG_PATH: &str = "/data/ipfs-cluster";

/// The user and group the official image runs the peer as (`adduser -u 1000 -G users ipfs`).
pub const PEER_UID: u32 = 1000;
pub const PEER_GID: u32 = 100;

/// The restart policy of the lab's containers (the image's documentation uses it).
pub const RESTART: &str = "unless-stopped";

/// Where Podman is expected (Debian's package).
const PODMAN: &str = "podman";

/// The name of the `docker` command in a host's `bin` folder.
pub const DOCKER_COMMAND: &str = "docker";

/// Fails unless this machine can run the lab's containers: root, podman and runc.
pub fn require() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(LabError::InvalidOption {
            option: "--host-kind docker",
            detail: "needs root (Podman runs the hosts' containers as root)".into(),
        });
    }
    for program in [PODMAN, "runc"] {
        if !super::systemd::installed(program) {
            return Err(LabError::ToolMissing {
                program: if program == PODMAN { PODMAN } else { "runc" },
                hint:
                    "install them (as root: apt-get install -y podman runc), or run scripts/setup",
            });
        }
    }
    Ok(())
}

/// One Podman setup: its storage and engine configuration files and scratch folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// Holds `containers.conf`, `storage.conf`, `root/` (the storage), `run/`, `tmp/`.
    pub dir: PathBuf,
}

/// What an engine's storage holds beyond its own images: read-only image stores.
#[derive(Debug, Clone, Copy)]
pub struct Stores<'a> {
    pub read_only: &'a [&'a Path],
}

impl Engine {
    pub fn at(dir: &Path) -> Engine {
        Engine {
            dir: dir.to_path_buf(),
        }
    }

    pub fn containers_conf(&self) -> PathBuf {
        self.dir.join("containers.conf")
    }

    pub fn storage_conf(&self) -> PathBuf {
        self.dir.join("storage.conf")
    }

    /// The image and container storage (`graphroot`).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Writes the configuration files (and the folders they name).
    pub fn write(&self, stores: Stores<'_>) -> Result<()> {
        for dir in [
            self.root(),
            self.dir.join("run"),
            self.tmp(),
            self.dir.join("networks"),
        ] {
            fs::create_dir_all(&dir).map_err(LabError::io("creating", &dir))?;
        }
        let path = self.containers_conf();
        fs::write(&path, containers_conf(&self.dir)).map_err(LabError::io("writing", &path))?;
        let path = self.storage_conf();
        fs::write(&path, storage_conf(&self.dir, stores)).map_err(LabError::io("writing", &path))
    }

    /// The environment that points Podman at this engine.
    pub fn env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("CONTAINERS_CONF", self.containers_conf()),
            ("CONTAINERS_STORAGE_CONF", self.storage_conf()),
            ("TMPDIR", self.tmp()),
        ]
    }

    /// `podman ARGS` on this engine, run here (building images, tearing down).
    pub fn podman(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PODMAN);
        command.args(args).envs(self.env()).stdin(Stdio::null());
        command
    }

    /// Runs `podman ARGS` and requires success.
    pub fn run(&self, what: &str, args: &[&str]) -> Result<String> {
        let output = self
            .podman(args)
            .output()
            .map_err(|source| LabError::Spawn {
                host: "localhost".into(),
                program: PODMAN.into(),
                source,
            })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(LabError::Engine {
            what: what.to_string(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// The engine configuration: what makes Podman run on this machine (see the module's doc).
fn containers_conf(dir: &Path) -> String {
    let path = |name: &str| toml_string(&dir.join(name));
    format!(
        "# Written by cluster-lab: Podman as it runs on this machine (docs/docker.md).\n\
         [containers]\n\
         default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
         \n\
         [engine]\n\
         runtime = \"runc\"\n\
         cgroup_manager = \"cgroupfs\"\n\
         events_logger = \"file\"\n\
         events_logfile_path = {events}\n\
         lock_type = \"file\"\n\
         pull_policy = \"never\"\n\
         tmp_dir = {tmp}\n\
         static_dir = {statics}\n\
         volume_path = {volumes}\n\
         \n\
         [network]\n\
         network_config_dir = {networks}\n",
        networks = path("networks"),
        events = path("events.log"),
        tmp = path("tmp"),
        statics = path("root/libpod"),
        volumes = path("volumes"),
    )
}

/// The storage configuration: its own overlay storage, and the read-only image stores.
fn storage_conf(dir: &Path, stores: Stores<'_>) -> String {
    let read_only: Vec<String> = stores.read_only.iter().map(|s| toml_string(s)).collect();
    format!(
        "# Written by cluster-lab.\n\
         [storage]\n\
         driver = \"overlay\"\n\
         graphroot = {root}\n\
         runroot = {run}\n\
         \n\
         [storage.options]\n\
         additionalimagestores = [{stores}]\n",
        root = toml_string(&dir.join("root")),
        run = toml_string(&dir.join("run")),
        stores = read_only.join(", "),
    )
}

/// A path as a TOML basic string (lab paths hold no control characters).
fn toml_string(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("strings serialize")
}

/// A host's engine: `hosts/<name>/docker/`.
pub fn host_engine(paths: &HostPaths) -> Engine {
    Engine::at(&paths.docker_dir())
}

/// The `docker` command of a host: Podman on the host's engine.
pub fn docker_wrapper(engine: &Engine, podman: &Path) -> String {
    let assign: Vec<String> = engine
        .env()
        .iter()
        .map(|(name, value)| quote::env(name, &value.display().to_string()))
        .collect();
    let names: Vec<&str> = engine.env().iter().map(|(name, _)| *name).collect();
    format!(
        "#!/bin/sh\n\
         # Written by cluster-lab: this host's `docker` is Podman's Docker-compatible CLI on the\n\
         # host's own storage and configuration.\n\
         {}\n\
         export {}\n\
         exec {} \"$@\"\n",
        assign.join(" "),
        names.join(" "),
        quote::word(&podman.display().to_string())
    )
}

/// Gives a host its engine, its `docker` command and the peer's config folder (the peer's
/// user's, mounted into its container): what installing Docker on a machine would do.
pub fn prepare_host(paths: &HostPaths, images: &[&Path]) -> Result<()> {
    let engine = host_engine(paths);
    engine.write(Stores { read_only: images })?;
    let podman = which(PODMAN).ok_or(LabError::ToolMissing {
        program: PODMAN,
        hint: "install it (as root: apt-get install -y podman runc), or run scripts/setup",
    })?;
    let bin = paths.bin_dir();
    fs::create_dir_all(&bin).map_err(LabError::io("creating", &bin))?;
    let docker = bin.join(DOCKER_COMMAND);
    fs::write(&docker, docker_wrapper(&engine, &podman))
        .map_err(LabError::io("writing", &docker))?;
    fs::set_permissions(&docker, fs::Permissions::from_mode(0o755))
        .map_err(LabError::io("protecting", &docker))?;
    let config = paths.config_dir();
    fs::create_dir_all(&config).map_err(LabError::io("creating", &config))?;
    rustix::fs::chown(
        &config,
        Some(rustix::fs::Uid::from_raw(PEER_UID)),
        Some(rustix::fs::Gid::from_raw(PEER_GID)),
    )
    .map_err(|e| LabError::Io {
        what: "handing to the peer's user",
        path: config.clone(),
        source: e.into(),
    })
}

/// Removes every container of a host (stopping its peer, up to `grace` seconds), run here: the
/// host's sshd may be the thing that is down. Whether a container was running.
pub fn remove_containers(paths: &HostPaths, grace_secs: u32) -> bool {
    let engine = host_engine(paths);
    if !engine.storage_conf().is_file() {
        return false;
    }
    let running = engine
        .run("list running containers", &["ps", "--quiet"])
        .is_ok_and(|ids| !ids.trim().is_empty());
    let grace = grace_secs.to_string();
    let _ = engine.run(
        "remove the containers",
        &["rm", "--all", "--force", "--time", &grace],
    );
    // Each container's monitor (conmon) runs `podman container cleanup` as it exits, which
    // mounts the storage again: wait for them before unmounting.
    let marker = format!("{}/", engine.dir.display());
    let _ = super::wait::until(
        "the engine's last processes",
        std::time::Duration::from_secs(15),
        std::time::Duration::from_millis(100),
        || Ok(super::procs::mentioning(&marker).is_empty().then_some(())),
    );
    unmount_under(&engine.dir);
    running
}

/// Unmounts what a host's engine left mounted (after `down` stopped its last processes).
pub fn unmount_host(paths: &HostPaths) {
    unmount_under(&host_engine(paths).dir);
}

/// Unmounts whatever is still mounted under `dir`, deepest first: the overlay storage's own
/// mount, and a container's layers when `rm` could not remove it (its folder could not be
/// deleted with the lab otherwise).
fn unmount_under(dir: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mount_points(&mounts)
        .into_iter()
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in points {
        let _ = rustix::mount::unmount(&point, rustix::mount::UnmountFlags::DETACH);
    }
}

/// The mount points of a `/proc/self/mountinfo` text (field 5, octal escapes undone).
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| {
            let mut path = String::new();
            let mut rest = field;
            while let Some(at) = rest.find('\\') {
                path.push_str(&rest[..at]);
                let code = rest
                    .get(at + 1..at + 4)
                    .and_then(|o| u8::from_str_radix(o, 8).ok());
                match code {
                    Some(byte) => {
                        path.push(byte as char);
                        rest = &rest[at + 4..];
                    }
                    None => {
                        path.push('\\');
                        rest = &rest[at + 1..];
                    }
                }
            }
            path.push_str(rest);
            PathBuf::from(path)
        })
        .collect()
}

/// The absolute path of `program` in `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// The lab's own options of a host's container, as an operator following the image's
/// documentation creates it: the host's network, the config folder bind-mounted, its peer
/// name and the cluster secret in its environment, a restart policy.
pub fn run_args(paths: &HostPaths, host: &str, secret: &str) -> Vec<String> {
    vec![
        "--network".into(),
        "host".into(),
        "-v".into(),
        format!("{}:{CONFIG_PATH}", paths.config_dir().display()),
        "-e".into(),
        format!("CLUSTER_PEERNAME={host}"),
        "-e".into(),
        format!("CLUSTER_SECRET={secret}"),
    ]
}

/// The image of release `version`.
pub fn image(version: &str) -> String {
    format!("{IMAGE}:v{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_with_their_escapes_undone() {
        let mountinfo =
            "36 35 98:0 /mnt1 /lab/hosts/h1/docker/root/overlay rw - ext4 /dev/vda rw\n\
                         37 35 0:5 / /lab\\040dir/shm rw - tmpfs shm rw\n";
        assert_eq!(
            mount_points(mountinfo),
            [
                PathBuf::from("/lab/hosts/h1/docker/root/overlay"),
                PathBuf::from("/lab dir/shm")
            ]
        );
    }

    #[test]
    fn a_host_s_docker_is_podman_on_its_own_storage_with_what_this_machine_needs() {
        let engine = Engine::at(Path::new("/lab/hosts/h1/docker"));
        let wrapper = docker_wrapper(&engine, Path::new("/usr/bin/podman"));
        assert!(wrapper.starts_with("#!/bin/sh\n"));
        assert!(wrapper.contains(
            "CONTAINERS_CONF=/lab/hosts/h1/docker/containers.conf CONTAINERS_STORAGE_CONF=/lab/hosts/h1/docker/storage.conf TMPDIR=/lab/hosts/h1/docker/tmp\n"
        ), "{wrapper}");
        assert!(wrapper.ends_with("exec /usr/bin/podman \"$@\"\n"));
        let conf = containers_conf(&engine.dir);
        for line in [
            "runtime = \"runc\"",
            "cgroup_manager = \"cgroupfs\"",
            "default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]",
            "pull_policy = \"never\"",
            "tmp_dir = \"/lab/hosts/h1/docker/tmp\"",
        ] {
            assert!(conf.contains(line), "{line} in {conf}");
        }
        let storage = storage_conf(
            &engine.dir,
            Stores {
                read_only: &[
                    Path::new("/lab/docker/root"),
                    Path::new("/cache/docker/root"),
                ],
            },
        );
        assert!(storage.contains("graphroot = \"/lab/hosts/h1/docker/root\"\n"));
        assert!(storage
            .contains("additionalimagestores = [\"/lab/docker/root\", \"/cache/docker/root\"]\n"));
    }
}
