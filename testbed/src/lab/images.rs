//! The Docker hosts' images: `ipfs/ipfs-cluster:v<version>` for the stand-in releases, made as
//! the official image is (its `Dockerfile` and `docker/entrypoint.sh`): the release's
//! `ipfs-cluster-service` and `ipfs-cluster-ctl` in `/usr/local/bin`, the config folder
//! `/data/ipfs-cluster` a volume owned by `ipfs` (uid 1000, group `users`), an entrypoint that
//! drops from root to that user, initialises a missing config and runs
//! `ipfs-cluster-service "$@"`, and the command `daemon` (`daemon --upgrade` up to 0.10, as the
//! official images had it).
//!
//! No registry is involved: the base is the systemd hosts' Debian tree (`lab::tree`), imported
//! once into a Podman store in the user's cache; each lab builds its releases' images on top
//! into a store of its own, which every host reads (the stand-in changes with every build).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use crate::release::{Era, Release};

use super::docker::{self, Engine, Stores, CONFIG_PATH, PEER_GID, PEER_UID};
use super::error::{LabError, Result};
use super::layout::Layout;
use super::progress::Progress;
use super::tree::Tree;

/// Bumped whenever what goes into the base changes: a new format is a new store.
pub const FORMAT: u32 = 1;

/// The base image: the Debian tree as it is.
pub fn base_image() -> String {
    format!(
        "localhost/cluster-lab-base:{}-{}",
        super::tree::SUITE,
        FORMAT
    )
}

/// How long an import, or the wait for another one, may take.
const IMPORT_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The file written last into a complete base store.
const MARKER: &str = ".imported";

/// The entrypoint of the lab's images: the official one's steps, with `setpriv` for
/// `su-exec` (the tree is Debian, not Alpine).
pub const ENTRYPOINT: &str = r#"#!/bin/sh
# Written by cluster-lab: the official image's docker/entrypoint.sh, with setpriv for su-exec.
set -e
user=ipfs
if [ "$(id -u)" -eq 0 ]; then
    echo "Changing user to $user"
    # ensure directories are writable
    setpriv --reuid="$user" --regid=users --init-groups test -w "${IPFS_CLUSTER_PATH}" || chown -R -- "$user" "${IPFS_CLUSTER_PATH}"
    exec setpriv --reuid="$user" --regid=users --init-groups "$0" "$@"
fi
ipfs-cluster-service --version
if [ -e "${IPFS_CLUSTER_PATH}/service.json" ]; then
    echo "Found IPFS cluster configuration at ${IPFS_CLUSTER_PATH}"
else
    echo "Initializing default configuration..."
    ipfs-cluster-service init
fi
exec ipfs-cluster-service "$@"
"#;

/// The cached store holding the base image, `<cache>/docker/base-<FORMAT>/`.
pub fn base_engine(cache: &Path) -> Engine {
    Engine::at(&cache.join(format!("base-{FORMAT}")))
}

/// The folder of the Docker hosts' cache: `<cache>/docker`.
pub fn default_cache() -> PathBuf {
    super::cache::root().join("docker")
}

/// The base image's store in `cache`, imported from `tree` first if it is missing (once, under
/// an exclusive lock: labs started together import it once).
pub fn ensure_base(cache: &Path, tree: &Tree, progress: &dyn Progress) -> Result<Engine> {
    let engine = base_engine(cache);
    if engine.dir.join(MARKER).is_file() {
        return Ok(engine);
    }
    fs::create_dir_all(cache).map_err(LabError::io("creating", cache))?;
    let lock_path = cache.join(".lock");
    let lock = fs::File::create(&lock_path).map_err(LabError::io("opening", &lock_path))?;
    let start = Instant::now();
    while flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
        if start.elapsed() > IMPORT_LIMIT {
            return Err(LabError::WaitTimeout {
                what: format!("another import of the base image ({})", lock_path.display()),
                seconds: IMPORT_LIMIT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if engine.dir.join(MARKER).is_file() {
        return Ok(engine);
    }
    progress.step(&format!(
        "importing the Debian tree as the Docker hosts' base image into {} (once)",
        engine.dir.display()
    ));
    engine.write(Stores { read_only: &[] })?;
    import(&engine, tree.dir(), &base_image())?;
    let marker = engine.dir.join(MARKER);
    fs::write(&marker, base_image()).map_err(LabError::io("writing", &marker))?;
    Ok(engine)
}

/// `tar -C TREE -c . | podman import - IMAGE` on `engine`.
fn import(engine: &Engine, tree: &Path, image: &str) -> Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(tree)
        .args(["-cf", "-", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| LabError::Spawn {
            host: "localhost".into(),
            program: "tar".into(),
            source,
        })?;
    let stream = tar.stdout.take().expect("piped");
    let output = engine
        .podman(&["import", "-", image])
        .stdin(stream)
        .output()
        .map_err(|source| LabError::Spawn {
            host: "localhost".into(),
            program: "podman".into(),
            source,
        })?;
    let tar_ok = tar.wait().is_ok_and(|s| s.success());
    if output.status.success() && tar_ok {
        return Ok(());
    }
    Err(LabError::Engine {
        what: format!("import {} as {image}", tree.display()),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// The lab's image store, `<lab>/docker/`.
pub fn lab_engine(layout: &Layout) -> Engine {
    Engine::at(&layout.dir().join("docker"))
}

/// Builds `ipfs/ipfs-cluster:v<version>` for every release of `versions` (staged in the lab's
/// `releases/`) into the lab's store, on the base in `base`; returns the lab's store.
pub fn build(layout: &Layout, base: &Engine, tree: &Tree, versions: &[Release]) -> Result<Engine> {
    let engine = lab_engine(layout);
    let base_root = base.root();
    engine.write(Stores {
        read_only: &[&base_root],
    })?;
    let passwd_path = tree.dir().join("etc/passwd");
    let passwd = fs::read_to_string(&passwd_path).map_err(LabError::io("reading", &passwd_path))?;
    for release in versions {
        let context = engine.dir.join("context").join(&release.version);
        write_context(
            &context,
            &layout.release(&release.version),
            release,
            &passwd,
        )?;
        let tag = format!("docker.io/{}", docker::image(&release.version));
        let context_arg = context.display().to_string();
        engine.run(
            &format!("build {tag}"),
            &[
                "build",
                "--pull=never",
                "--quiet",
                "--tag",
                &tag,
                &context_arg,
            ],
        )?;
    }
    Ok(engine)
}

/// The build context of one release's image.
fn write_context(
    context: &Path,
    release_dir: &Path,
    release: &Release,
    passwd: &str,
) -> Result<()> {
    if context.exists() {
        fs::remove_dir_all(context).map_err(LabError::io("removing", context))?;
    }
    let data = context.join("data/ipfs-cluster");
    fs::create_dir_all(&data).map_err(LabError::io("creating", &data))?;
    for file in ["ipfs-cluster-service", "ipfs-cluster-ctl"] {
        let to = context.join(file);
        fs::copy(release_dir.join(file), &to).map_err(LabError::io("copying", &to))?;
    }
    let files = [
        ("entrypoint.sh", ENTRYPOINT.to_string(), 0o755),
        ("passwd", peer_passwd(passwd), 0o644),
        ("Containerfile", containerfile(release), 0o644),
    ];
    for (name, text, mode) in files {
        let path = context.join(name);
        fs::write(&path, text).map_err(LabError::io("writing", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(LabError::io("protecting", &path))?;
    }
    Ok(())
}

/// The tree's `/etc/passwd` with `ipfs` as the official image has it: uid 1000, group
/// `users`, home the config folder.
pub fn peer_passwd(passwd: &str) -> String {
    let entry = format!("ipfs:x:{PEER_UID}:{PEER_GID}::{CONFIG_PATH}:/usr/sbin/nologin");
    let mut lines: Vec<String> = passwd
        .lines()
        .filter(|line| !line.starts_with("ipfs:"))
        .map(String::from)
        .collect();
    lines.push(entry);
    lines.join("\n") + "\n"
}

/// The image of one release, as the official `Dockerfile` makes it.
pub fn containerfile(release: &Release) -> String {
    let command = match release.era() {
        // The official images up to 0.10 ran `daemon --upgrade` (a state upgrade when needed).
        Era::Raft010 => r#"["daemon", "--upgrade"]"#,
        Era::Modern => r#"["daemon"]"#,
    };
    let consensus = match release.era() {
        Era::Raft010 => "",
        Era::Modern => "ENV IPFS_CLUSTER_CONSENSUS=crdt\n",
    };
    format!(
        "# Written by cluster-lab: ipfs/ipfs-cluster:v{version}, as the official Dockerfile makes it.\n\
         FROM {base}\n\
         COPY passwd /etc/passwd\n\
         COPY --chown={PEER_UID}:{PEER_GID} data/ /data/\n\
         COPY ipfs-cluster-service ipfs-cluster-ctl entrypoint.sh /usr/local/bin/\n\
         ENV IPFS_CLUSTER_PATH={CONFIG_PATH}\n\
         {consensus}\
         EXPOSE 9094 9095 9096\n\
         VOLUME {CONFIG_PATH}\n\
         ENTRYPOINT [\"/usr/local/bin/entrypoint.sh\"]\n\
         CMD {command}\n",
        version = release.version,
        base = base_image(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_images_run_daemon_upgrade_up_to_0_10_as_the_official_ones_did() {
        let old = containerfile(&Release::parse("0.10.1").unwrap());
        assert!(old.ends_with("CMD [\"daemon\", \"--upgrade\"]\n"), "{old}");
        let new = containerfile(&Release::parse("1.1.6").unwrap());
        assert!(new.ends_with("CMD [\"daemon\"]\n"), "{new}");
        assert!(new.contains(
            "VOLUME /data/ipfs-cluster\nENTRYPOINT [\"/usr/local/bin/entrypoint.sh\"]\n"
        ));
        assert!(new.contains("ENV IPFS_CLUSTER_CONSENSUS=crdt\n"));
    }

    #[test]
    fn the_peer_user_is_the_official_image_s() {
        let passwd = peer_passwd(
            "root:x:0:0:root:/root:/bin/bash\nipfs:x:999:997::/home/ipfs:/usr/sbin/nologin\n",
        );
        assert_eq!(
            passwd,
            "root:x:0:0:root:/root:/bin/bash\nipfs:x:1000:100::/data/ipfs-cluster:/usr/sbin/nologin\n"
        );
    }

    /// The entrypoint under a real shell as the peer's user: it initialises a missing config
    /// and runs the service with the container's command, each word as given.
    #[test]
    fn the_entrypoint_inits_a_missing_config_then_runs_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fs::write(
            bin.join("ipfs-cluster-service"),
            "#!/bin/sh\necho \"service $*\"\n[ \"$1\" = init ] && touch \"$IPFS_CLUSTER_PATH/service.json\"\nexit 0\n",
        )
        .unwrap();
        fs::set_permissions(
            bin.join("ipfs-cluster-service"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let entrypoint = dir.path().join("entrypoint.sh");
        // As a user that is not root, the entrypoint skips the drop to `ipfs`.
        fs::write(
            &entrypoint,
            ENTRYPOINT.replace("\"$(id -u)\" -eq 0", "1 -eq 0"),
        )
        .unwrap();
        let run = || {
            Command::new("sh")
                .arg(&entrypoint)
                .args(["daemon", "--bootstrap", "/ip4/1 2"])
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("IPFS_CLUSTER_PATH", dir.path())
                .output()
                .unwrap()
        };
        let first = String::from_utf8(run().stdout).unwrap();
        assert_eq!(
            first,
            "service --version\nInitializing default configuration...\nservice init\nservice daemon --bootstrap /ip4/1 2\n"
        );
        let second = String::from_utf8(run().stdout).unwrap();
        assert!(
            second.contains("Found IPFS cluster configuration"),
            "{second}"
        );
    }
}
