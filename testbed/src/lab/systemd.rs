//! The systemd host kind (`up --host-kind systemd`): every host is a container whose init is a
//! real systemd, booted by `systemd-nspawn` from the shared Debian tree ([`super::tree`]) with
//! an overlay of its own (`hosts/<name>/container/upper`). Its systemd runs sshd, listening on
//! the host's loopback address (the container shares the machine's network namespace), and the
//! peer as `ipfs-cluster.service` with `User=ipfs`.
//!
//! Safety: systemd empties `/tmp` when it boots. It only ever boots on the read-only tree with
//! the host's overlay on top, so what it cleans is the container's own `/tmp`; nothing of the
//! machine is bound into a container, and its console is a pipe and a log file of the lab,
//! never a device of the machine.
//!
//! nspawn runs with `--keep-unit --register=no` (no systemd manages the machine) in a cgroup of
//! its own, `cluster-lab/<machine>` in every cgroup hierarchy the container needs, made by the
//! lab before nspawn starts; `down` stops nspawn (the container powers off), kills what is
//! left in that cgroup and removes it.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sshd::{pid_alive, stop_pid};

use super::error::{LabError, Result};
use super::procs;

/// The program that boots the containers.
pub const NSPAWN: &str = "systemd-nspawn";

/// The parent cgroup of every lab container, in each hierarchy.
pub const CGROUP_PARENT: &str = "cluster-lab";

/// How long a booting container may take to answer on its SSH port.
const BOOT_LIMIT: Duration = Duration::from_secs(90);

/// How long a container may take to power off (its peer snapshots first) before SIGKILL.
const POWEROFF_GRACE: Duration = Duration::from_secs(30);

/// What the lab records about a host's container (in `lab.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The machine name (`systemd-nspawn -M`), unique on the machine: `cl-A-B-C` after the
    /// host's address.
    pub machine: String,
    /// The PID of `systemd-nspawn`, `None` once stopped.
    pub pid: Option<u32>,
}

/// What one container needs to boot.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The host's lab name, also its hostname (`h1`, …).
    pub host: String,
    pub machine: String,
    pub address: Ipv4Addr,
    /// The port sshd listens on (on `address`).
    pub ssh_port: u16,
    /// The tree booted read-only.
    pub tree: PathBuf,
    /// `hosts/<name>/container`: the overlay's upper folder and the console log.
    pub dir: PathBuf,
}

/// The files a host's overlay starts with: the SSH host key pair and the login's key.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The private host key (its `.pub` beside it).
    pub host_key: PathBuf,
    /// The `authorized_keys` text of root.
    pub authorized_keys: String,
}

/// The overlay's upper folder of the container whose folder is `dir`.
pub fn upper_dir(dir: &Path) -> PathBuf {
    dir.join("upper")
}

impl ContainerSpec {
    /// The overlay's upper folder: everything the host writes.
    pub fn upper(&self) -> PathBuf {
        upper_dir(&self.dir)
    }

    /// nspawn's output (the container's console).
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    /// The host's socket address for SSH.
    pub fn ssh_addr(&self) -> SocketAddr {
        SocketAddr::from((self.address, self.ssh_port))
    }

    /// A string only this container's nspawn command line holds: its upper folder.
    pub fn marker(&self) -> String {
        self.upper().display().to_string()
    }
}

/// The machine name of the host at `address`.
pub fn machine_name(address: Ipv4Addr) -> String {
    let [_, a, b, c] = address.octets();
    format!("cl-{a}-{b}-{c}")
}

/// The sshd drop-in of a host (`/etc/ssh/sshd_config.d/cluster-lab.conf`): it listens only on
/// its own address, since the container shares the machine's network, and takes root's key.
/// Debian's sshd_config includes the drop-ins first, and the first value of an option wins.
pub fn sshd_dropin(address: Ipv4Addr, port: u16) -> String {
    format!(
        "# Written by cluster-lab up --host-kind systemd.\n\
         ListenAddress {address}:{port}\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         MaxStartups 200:30:400\n\
         MaxSessions 64\n"
    )
}

/// `systemd-nspawn`'s arguments for `spec`: boot the tree read-only under the host's overlay,
/// in the machine's network namespace, console on a pipe, no registration with a host systemd.
pub fn nspawn_args(spec: &ContainerSpec) -> Vec<String> {
    vec![
        "--quiet".into(),
        "-D".into(),
        spec.tree.display().to_string(),
        "--read-only".into(),
        format!("--overlay=+/:{}:/", spec.upper().display()),
        "--boot".into(),
        "--register=no".into(),
        "--keep-unit".into(),
        "--console=pipe".into(),
        "--link-journal=no".into(),
        "--private-users=no".into(),
        "--timezone=off".into(),
        "--resolv-conf=off".into(),
        format!("--machine={}", spec.machine),
        format!("--hostname={}", spec.host),
    ]
}

/// The cgroup hierarchies a container's cgroup is made in: both the named `systemd` one and the
/// unified one on a hybrid machine, else the unified root itself.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").is_file() {
        return vec![base.to_path_buf()];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| base.join(h))
        .filter(|dir| dir.join("cgroup.procs").is_file())
        .collect()
}

/// The container's cgroup in each hierarchy.
pub fn cgroups(machine: &str) -> Vec<PathBuf> {
    cgroup_roots()
        .into_iter()
        .map(|root| root.join(CGROUP_PARENT).join(machine))
        .collect()
}

/// Whether `program` is an executable file in a folder of `PATH`.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The machine name in an nspawn command line of the lab (`--machine=cl-…`), if it is one.
pub fn machine_of(cmdline: &str) -> Option<String> {
    let mut words = cmdline.split(' ');
    words.next()?.ends_with(NSPAWN).then_some(())?;
    words
        .find_map(|w| w.strip_prefix("--machine="))
        .filter(|m| m.starts_with("cl-"))
        .map(str::to_string)
}

/// Fails unless the machine can boot containers: root and systemd-nspawn.
pub fn require() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(LabError::InvalidOption {
            option: "--host-kind systemd",
            detail: "needs root (systemd-nspawn)".into(),
        });
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(NSPAWN).is_file()));
    if found {
        Ok(())
    } else {
        Err(LabError::ToolMissing {
            program: NSPAWN,
            hint: "install it (as root: apt-get install -y systemd-container debootstrap), or run scripts/setup",
        })
    }
}

/// Writes the host's overlay: its hostname, SSH host key, sshd drop-in and root's
/// authorized_keys.
pub fn prepare(spec: &ContainerSpec, keys: &Keys) -> Result<()> {
    let upper = spec.upper();
    let ssh = upper.join("etc/ssh");
    let dropins = ssh.join("sshd_config.d");
    let root_ssh = upper.join("root/.ssh");
    for dir in [&dropins, &root_ssh] {
        fs::create_dir_all(dir).map_err(LabError::io("creating", dir))?;
    }
    let key = ssh.join("ssh_host_ed25519_key");
    copy_with_mode(&keys.host_key, &key, 0o600)?;
    copy_with_mode(
        &keys.host_key.with_extension("pub"),
        &key.with_extension("pub"),
        0o644,
    )?;
    // The tree's /etc/hostname is the machine's (debootstrap copies it); the host's own wins.
    write_with_mode(
        &upper.join("etc/hostname"),
        &format!("{}\n", spec.host),
        0o644,
    )?;
    write_with_mode(
        &dropins.join("cluster-lab.conf"),
        &sshd_dropin(spec.address, spec.ssh_port),
        0o644,
    )?;
    fs::set_permissions(&root_ssh, fs::Permissions::from_mode(0o700))
        .map_err(LabError::io("protecting", &root_ssh))?;
    write_with_mode(
        &root_ssh.join("authorized_keys"),
        &keys.authorized_keys,
        0o600,
    )
}

fn copy_with_mode(from: &Path, to: &Path, mode: u32) -> Result<()> {
    fs::copy(from, to).map_err(LabError::io("copying to", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .map_err(LabError::io("protecting", to))
}

fn write_with_mode(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).map_err(LabError::io("writing", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(LabError::io("protecting", path))
}

/// Boots the container of `spec` (prepared) in its own cgroup and returns nspawn's PID once its
/// sshd accepts connections. A container that does not get there is stopped again.
pub fn boot(spec: &ContainerSpec) -> Result<u32> {
    let cgroups = cgroups(&spec.machine);
    for dir in &cgroups {
        create_cgroup(dir)?;
    }
    let log = spec.console_log();
    let out = fs::File::create(&log).map_err(LabError::io("creating", &log))?;
    let err = out.try_clone().map_err(LabError::io("opening", &log))?;
    // The shell moves itself into the container's cgroups, then becomes nspawn (same PID):
    // nspawn with --keep-unit makes the cgroup it runs in the container's.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(
            "n=$1; shift; while [ \"$n\" -gt 0 ]; do echo $$ >\"$1/cgroup.procs\" || exit 1; \
             shift; n=$((n - 1)); done; exec \"$@\"",
        )
        .arg("sh")
        .arg(cgroups.len().to_string())
        .args(&cgroups)
        .arg(NSPAWN)
        .args(nspawn_args(spec))
        // The console is a pipe of ours (closed at once: the container reads no input) and the
        // lab's log file, never a device of the machine.
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err);
    let child = command.spawn().map_err(|source| LabError::Spawn {
        host: spec.host.clone(),
        program: NSPAWN.into(),
        source,
    })?;
    let pid = child.id();
    // Reaped by whoever stops it, by PID (as the lab's sshds).
    std::mem::forget(child);
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&spec.ssh_addr(), Duration::from_millis(200)).is_ok() {
            return Ok(pid);
        }
        let failure = if !pid_alive(pid) {
            Some("exited")
        } else if start.elapsed() > BOOT_LIMIT {
            Some("timed out")
        } else {
            None
        };
        if let Some(failure) = failure {
            let record = ContainerRecord {
                machine: spec.machine.clone(),
                pid: Some(pid),
            };
            stop(&record, &spec.dir);
            return Err(LabError::Container {
                host: spec.host.clone(),
                what: "boot until sshd listens",
                detail: format!(
                    "nspawn {failure} after {:.0} s; sshd on {}",
                    start.elapsed().as_secs_f64(),
                    spec.ssh_addr()
                ),
                console: log,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prepares and boots every container at once; returns nspawn's PIDs in the order given. If
/// any fails, the ones that booted are stopped again.
pub fn boot_all(specs: &[(ContainerSpec, Keys)]) -> Result<Vec<u32>> {
    let results = super::parallel::map(specs, super::parallel::HOST_WORKERS, |(spec, keys)| {
        prepare(spec, keys)?;
        boot(spec)
    });
    if results.iter().all(|r| r.is_ok()) {
        return Ok(results.into_iter().map(|r| r.expect("checked")).collect());
    }
    let mut first_error = None;
    for ((spec, _), result) in specs.iter().zip(results) {
        match result {
            Ok(pid) => {
                let record = ContainerRecord {
                    machine: spec.machine.clone(),
                    pid: Some(pid),
                };
                stop(&record, &spec.dir);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.expect("one failed"))
}

/// Whether the container of `record`, whose folder is `dir`, runs: its nspawn's command line
/// still names the container's overlay.
pub fn is_running(record: &ContainerRecord, dir: &Path) -> bool {
    let marker = upper_dir(dir).display().to_string();
    record.pid.is_some_and(|pid| procs::is_ours(pid, &marker))
}

/// Makes the cgroup `dir` and its parent. Another lab's `down` removes the shared parent when
/// it empties, which may happen between the two: then it is made again.
fn create_cgroup(dir: &Path) -> Result<()> {
    let mut attempts = 0;
    loop {
        match fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            Err(e) => return Err(LabError::io("creating cgroup", dir)(e)),
        }
    }
}

/// Powers the container of `record` (folder `dir`) off: SIGTERM to nspawn, SIGKILL after a
/// grace period; then kills whatever is left in its cgroups and removes them. Says whether
/// nspawn was running.
pub fn stop(record: &ContainerRecord, dir: &Path) -> bool {
    let was_running = is_running(record, dir);
    if let Some(pid) = record.pid.filter(|_| was_running) {
        stop_pid(pid, POWEROFF_GRACE);
    }
    remove_cgroups(&record.machine);
    // nspawn leaves its (empty) propagation folder behind when /run is not a tmpfs.
    let _ = fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(&record.machine));
    was_running
}

/// Kills every process in the container's cgroups and removes them, deepest first.
pub fn remove_cgroups(machine: &str) {
    for dir in cgroups(machine) {
        if !dir.exists() {
            continue;
        }
        let start = Instant::now();
        loop {
            let tree = cgroup_tree(&dir);
            for cgroup in &tree {
                for pid in cgroup_pids(cgroup) {
                    stop_pid(pid, Duration::ZERO);
                }
            }
            // Deepest first: a cgroup goes only once its children have.
            let removed = tree
                .iter()
                .rev()
                .all(|cgroup| fs::remove_dir(cgroup).is_ok());
            if removed || start.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The parent stays while another lab's container uses it.
        if let Some(parent) = dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Whether any cgroup of the container is left.
pub fn cgroups_left(machine: &str) -> Vec<PathBuf> {
    cgroups(machine)
        .into_iter()
        .filter(|d| d.exists())
        .collect()
}

/// `dir` and every cgroup below it, parents before children.
fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    let mut next = 0;
    while next < all.len() {
        if let Ok(entries) = fs::read_dir(&all[next]) {
            let mut children: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            children.sort();
            all.extend(children);
        }
        next += 1;
    }
    all
}

/// The PIDs in one cgroup (not its children).
fn cgroup_pids(cgroup: &Path) -> Vec<u32> {
    fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            host: "h2".into(),
            machine: machine_name("127.9.8.3".parse().unwrap()),
            address: "127.9.8.3".parse().unwrap(),
            ssh_port: 2222,
            tree: "/cache/systemd-tree/bookworm-1".into(),
            dir: "/lab/hosts/h2/container".into(),
        }
    }

    #[test]
    fn nspawn_boots_the_shared_tree_read_only_under_the_hosts_overlay() {
        let spec = spec();
        assert_eq!(spec.machine, "cl-9-8-3");
        let args = nspawn_args(&spec);
        let has = |a: &str| args.iter().any(|x| x == a);
        assert!(has("--read-only") && has("--boot") && has("--console=pipe"));
        assert!(has("--register=no") && has("--keep-unit"));
        assert!(has("--overlay=+/:/lab/hosts/h2/container/upper:/"));
        assert!(has("--machine=cl-9-8-3") && has("--hostname=h2"));
        let root = args.iter().position(|a| a == "-D").unwrap();
        assert_eq!(args[root + 1], "/cache/systemd-tree/bookworm-1");
        // Never the machine's own root.
        assert!(args.iter().all(|a| a != "/"));
        assert_eq!(spec.marker(), "/lab/hosts/h2/container/upper");
    }

    #[test]
    fn the_machine_of_a_stray_nspawn_is_read_from_its_command_line() {
        let line = format!("{NSPAWN} --quiet -D /t --machine=cl-9-8-3 --hostname=h2");
        assert_eq!(machine_of(&line).as_deref(), Some("cl-9-8-3"));
        let line = format!("/usr/bin/{NSPAWN} --machine=cl-1-2-3");
        assert_eq!(machine_of(&line).as_deref(), Some("cl-1-2-3"));
        assert_eq!(machine_of("sh -c x --machine=cl-1-2-3"), None);
        assert_eq!(machine_of(&format!("{NSPAWN} --machine=other")), None);
    }

    #[test]
    fn sshd_listens_on_the_hosts_address_only() {
        let dropin = sshd_dropin("127.9.8.3".parse().unwrap(), 2222);
        assert!(
            dropin.contains("\nListenAddress 127.9.8.3:2222\n"),
            "{dropin}"
        );
        assert!(dropin.contains("\nHostKey /etc/ssh/ssh_host_ed25519_key\n"));
    }
}
