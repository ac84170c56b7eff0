//! The Debian tree the systemd hosts boot (`up --host-kind systemd`): made once with
//! `debootstrap` into the user's cache (`<cache>/systemd-tree/`), never inside a lab or the work
//! tree, and shared read-only by every host of every lab (each host writes to an overlay of its
//! own).
//!
//! A build happens under an exclusive lock (labs and tests started together build it once), in
//! a staging folder that is renamed into place only when complete: a folder named
//! [`Tree::dir`] is always a whole tree.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use super::error::{LabError, Result};
use super::progress::Progress;

/// The Debian release of the tree.
pub const SUITE: &str = "bookworm";

/// Bumped whenever what goes into the tree changes: a new format is a new folder.
pub const FORMAT: u32 = 1;

/// The packages on top of debootstrap's `minbase`: systemd as init, D-Bus (systemctl talks to
/// it), sshd, and `ip`/`ps` for whoever logs in.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "procps",
];

/// Units that have no business in a lab host sharing the machine's network namespace (they
/// would configure the machine's interfaces or clock) or that wait for a console it lacks.
pub const MASKED_UNITS: &[&str] = &[
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "console-getty.service",
    "getty@.service",
    "serial-getty@.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
];

/// The user the peers run as on a systemd host (`User=` of the unit).
pub const SERVICE_USER: &str = "ipfs";

/// Its home, where its config folder is (`~/.ipfs-cluster`, the daemon's default).
pub const SERVICE_HOME: &str = "/home/ipfs";

/// The Debian mirror used when the machine's apt sources name none.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The file written last into a complete tree.
const MARKER: &str = ".cluster-lab-tree";

/// How long a build (debootstrap downloads ~100 MB) or the wait for another one may take.
const BUILD_LIMIT: Duration = Duration::from_secs(30 * 60);

/// A complete tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    dir: PathBuf,
}

impl Tree {
    /// The tree's root folder (`systemd-nspawn -D`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The folder of the trees: `<cache>/systemd-tree`.
pub fn default_cache() -> PathBuf {
    super::cache::root().join("systemd-tree")
}

/// The folder of the tree of this [`FORMAT`] in `cache`.
pub fn tree_dir(cache: &Path) -> PathBuf {
    cache.join(format!("{SUITE}-{FORMAT}"))
}

/// The tree in `cache`, built first if it is missing.
pub fn ensure(cache: &Path, progress: &dyn Progress) -> Result<Tree> {
    let dir = tree_dir(cache);
    if dir.join(MARKER).is_file() {
        return Ok(Tree { dir });
    }
    fs::create_dir_all(cache).map_err(LabError::io("creating", cache))?;
    let lock_path = cache.join(".lock");
    let lock = fs::File::create(&lock_path).map_err(LabError::io("opening", &lock_path))?;
    let start = Instant::now();
    while flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
        if start.elapsed() > BUILD_LIMIT {
            return Err(LabError::WaitTimeout {
                what: format!("another build of the Debian tree ({})", lock_path.display()),
                seconds: BUILD_LIMIT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Another process may have finished it while we waited for the lock.
    if dir.join(MARKER).is_file() {
        return Ok(Tree { dir });
    }
    if !super::systemd::installed("debootstrap") {
        return Err(LabError::ToolMissing {
            program: "debootstrap",
            hint: "install it (as root: apt-get install -y debootstrap), or run scripts/setup",
        });
    }
    progress.step(&format!(
        "building the systemd hosts' Debian tree in {} (once; a minute or more)",
        dir.display()
    ));
    let staging = cache.join(format!(".building-{SUITE}-{FORMAT}"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(LabError::io("removing", &staging))?;
    }
    let log = cache.join("build.log");
    let mirror = fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|text| mirror_from_sources(&text))
        .or_else(|| {
            fs::read_to_string("/etc/apt/sources.list")
                .ok()
                .and_then(|text| mirror_from_sources(&text))
        })
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string());
    run_logged(
        "debootstrap",
        &debootstrap_args(&staging, &mirror),
        &log,
        &staging,
    )?;
    run_logged("useradd", &useradd_args(&staging), &log, &staging)?;
    customize(&staging)?;
    fs::rename(&staging, &dir).map_err(LabError::io("renaming into place", &dir))?;
    Ok(Tree { dir })
}

/// `debootstrap`'s arguments for a tree in `target` from `mirror`.
pub fn debootstrap_args(target: &Path, mirror: &str) -> Vec<String> {
    vec![
        "--variant=minbase".into(),
        format!("--include={}", PACKAGES.join(",")),
        SUITE.into(),
        target.display().to_string(),
        mirror.into(),
    ]
}

/// `useradd`'s arguments for the service user, run on `root` (`--root`: no boot, no chroot
/// shell).
pub fn useradd_args(root: &Path) -> Vec<String> {
    [
        "--root",
        &root.display().to_string(),
        "--system",
        "--create-home",
        "--home-dir",
        SERVICE_HOME,
        "--shell",
        "/usr/sbin/nologin",
        "--user-group",
        SERVICE_USER,
    ]
    .map(String::from)
    .to_vec()
}

/// The first Debian mirror of an apt sources text (one-line `deb URL SUITE …` or deb822
/// `URIs: URL`), skipping the security archive.
pub fn mirror_from_sources(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match words.next()? {
                "deb" => words.find(|w| w.contains("://")),
                "URIs:" => words.next(),
                _ => None,
            }
        })
        .find(|url| url.trim_end_matches('/').ends_with("/debian"))
        .map(|url| url.trim_end_matches('/').to_string())
}

/// What every host shares beyond the packages: no SSH host keys (each host has its own), an
/// empty machine ID (each boot makes its own), the masked units, then the marker.
fn customize(root: &Path) -> Result<()> {
    let ssh = root.join("etc/ssh");
    for entry in fs::read_dir(&ssh).map_err(LabError::io("reading", &ssh))? {
        let path = entry.map_err(LabError::io("reading", &ssh))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("ssh_host_") {
            fs::remove_file(&path).map_err(LabError::io("removing", &path))?;
        }
    }
    let dropins = ssh.join("sshd_config.d");
    fs::create_dir_all(&dropins).map_err(LabError::io("creating", &dropins))?;
    let machine_id = root.join("etc/machine-id");
    fs::write(&machine_id, "").map_err(LabError::io("writing", &machine_id))?;
    let dbus_id = root.join("var/lib/dbus/machine-id");
    if dbus_id.symlink_metadata().is_ok() {
        fs::remove_file(&dbus_id).map_err(LabError::io("removing", &dbus_id))?;
    }
    let units = root.join("etc/systemd/system");
    for unit in MASKED_UNITS {
        let link = units.join(unit);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).map_err(LabError::io("removing", &link))?;
        }
        symlink("/dev/null", &link).map_err(LabError::io("masking", &link))?;
    }
    let marker = root.join(MARKER);
    fs::write(
        &marker,
        format!(
            "debootstrap --variant=minbase {SUITE} with {}\n",
            PACKAGES.join(",")
        ),
    )
    .map_err(LabError::io("writing", &marker))
}

/// Runs `program args`, its output appended to `log`; fails naming the log.
fn run_logged(program: &str, args: &[String], log: &Path, tree: &Path) -> Result<()> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(LabError::io("opening", log))?;
    let err = file.try_clone().map_err(LabError::io("opening", log))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|source| LabError::Spawn {
            host: "localhost".into(),
            program: program.into(),
            source,
        })?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) if start.elapsed() < BUILD_LIMIT => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("killed after {} s", BUILD_LIMIT.as_secs());
            }
            Err(e) => break e.to_string(),
        }
    };
    if status == "exit status: 0" {
        return Ok(());
    }
    Err(LabError::TreeBuild {
        tree: tree.to_path_buf(),
        step: program.into(),
        status,
        log: log.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_the_first_debian_one_of_the_apt_sources() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/2025\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n";
        assert_eq!(
            mirror_from_sources(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one_line = "deb [arch=amd64] http://mirror.example/debian/ bookworm main\n";
        assert_eq!(
            mirror_from_sources(one_line).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_from_sources("deb https://packages.cloud.google.com/apt x main\n"),
            None
        );
    }

    #[test]
    fn debootstrap_makes_a_minbase_tree_with_systemd_and_sshd() {
        let args = debootstrap_args(Path::new("/c/t"), DEFAULT_MIRROR);
        assert_eq!(args[0], "--variant=minbase");
        assert!(args[1].starts_with("--include=systemd,systemd-sysv,dbus,openssh-server"));
        assert_eq!(&args[2..], ["bookworm", "/c/t", DEFAULT_MIRROR]);
        assert_eq!(
            tree_dir(Path::new("/c")),
            PathBuf::from(format!("/c/bookworm-{FORMAT}"))
        );
    }
}
