//! What the lab does on one host, always over SSH: install a release, `init`, drive the
//! service wrapper, ask the peer through `ipfs-cluster-ctl`, add pins.

use crate::lab::remote::Job;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::release::{Era, Release};

use super::ctl::{self, PeerId};
use super::error::{LabError, Result};
use super::layout::{HostPaths, Layout};
use super::pins;
use super::quote;
use super::remote::{Input, Output, Remote, DEFAULT_TIMEOUT};
use super::service::OnHost;
use super::state::{Consensus, HostRecord, LabState};
use super::wrapper;

/// One lab host, reached over SSH.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub remote: Remote,
    pub paths: HostPaths,
    /// The REST API multiaddress (`ipfs-cluster-ctl --host`).
    pub api: String,
    /// The peer's files and service, as the host sees them.
    pub on_host: OnHost,
}

/// The settings `init` writes into a peer's `service.json` (through the env overrides).
#[derive(Debug, Clone)]
pub struct InitSettings {
    pub release: Release,
    pub secret: String,
    pub listen: String,
    /// e.g. `3s`
    pub wait_for_leader_timeout: String,
    /// e.g. `1s`
    pub peer_watch_interval: String,
    pub consensus: Consensus,
    /// `init --datastore`, when asked for (else the release's default).
    pub datastore: Option<String>,
    /// More `CLUSTER_*` overrides (a real lab's IPFS daemon and listener addresses).
    pub extra_env: Vec<(String, String)>,
}

impl Peer {
    pub fn new(layout: &Layout, state: &LabState, host: &HostRecord) -> Peer {
        Peer {
            name: host.name.clone(),
            remote: Remote::new(layout, state, host),
            paths: layout.host(&host.name),
            api: state.api(host),
            on_host: on_host(layout, state, host),
        }
    }

    /// Copies release `version` and the service wrapper into the host's `bin` (through a tar
    /// stream over SSH), checks them against the release's SHA256SUMS, and writes the unit.
    pub fn install(&self, layout: &Layout, version: &str) -> Result<()> {
        if self.on_host.in_container() {
            // The release is in the image: only its container is created (not started).
            return self
                .remote
                .run("create the container", &self.on_host.write_unit_script())
                .map(|_| ());
        }
        self.install_release(layout, &layout.release(version))
    }

    /// Like [`Peer::install`], from a release folder anywhere (a real release).
    pub fn install_release(&self, layout: &Layout, release_dir: &Path) -> Result<()> {
        self.install_files(
            layout,
            release_dir,
            &["ipfs-cluster-service", "ipfs-cluster-ctl"],
        )?;
        self.remote
            .run("write unit", &self.on_host.write_unit_script())
            .map(|_| ())
    }

    /// Copies `files` of `source` and the service wrapper (when the host uses it) into the
    /// host's `bin` (through a tar stream over SSH) and checks the files against `source`'s
    /// SHA256SUMS on the host.
    pub fn install_files(&self, layout: &Layout, source: &Path, files: &[&str]) -> Result<()> {
        let mut tar = Command::new("tar");
        tar.arg("-C")
            .arg(source)
            .arg("-cf")
            .arg("-")
            .args(files)
            .arg("SHA256SUMS");
        let mut installed: Vec<&str> = files.to_vec();
        if self.on_host.needs_wrapper() {
            tar.arg("-C").arg(layout.assets()).arg(wrapper::FILE_NAME);
            installed.push(wrapper::FILE_NAME);
        }
        let tar = tar
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| LabError::Spawn {
                host: self.name.clone(),
                program: "tar".into(),
                source,
            })?;
        let mut tar = tar;
        let stage = self.on_host.scratch().display().to_string();
        let bin = self.on_host.bin_dir.display().to_string();
        let words = quote::command(&installed);
        let script = [
            "set -e".to_string(),
            format!(
                "rm -rf {s} && mkdir -p {s} {b}",
                s = quote::word(&stage),
                b = quote::word(&bin)
            ),
            format!("tar -C {} -xf -", quote::word(&stage)),
            // A release folder may list files the lab does not install (ipfs-cluster-follow).
            format!(
                "cd {} && sha256sum -c --quiet --ignore-missing SHA256SUMS",
                quote::word(&stage)
            ),
            format!("chmod 0755 {words}"),
            format!("mv -f {words} {}/", quote::word(&bin)),
            format!("cd / && rm -rf {}", quote::word(&stage)),
        ]
        .join("\n");
        let stdout = tar.stdout.take().expect("piped");
        let result = self.remote.run_with(Job {
            step: "install",
            script: &script,
            input: Input::Pipe(stdout.into()),
            timeout: DEFAULT_TIMEOUT,
        });
        let tar_status = tar.wait();
        result?;
        match tar_status {
            Ok(status) if status.success() => Ok(()),
            _ => Err(LabError::Io {
                what: "packing release",
                path: source.to_path_buf(),
                source: std::io::Error::other("tar failed"),
            }),
        }
    }

    /// Runs `ipfs-cluster-service init` with the lab's settings as env overrides.
    pub fn init(&self, settings: &InitSettings) -> Result<()> {
        let mut env: Vec<(String, String)> = [
            ("CLUSTER_PEERNAME", self.name.as_str()),
            ("CLUSTER_SECRET", &settings.secret),
            ("CLUSTER_LISTENMULTIADDRESS", &settings.listen),
            ("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS", &self.api),
            (
                "CLUSTER_RAFT_WAITFORLEADERTIMEOUT",
                &settings.wait_for_leader_timeout,
            ),
            ("CLUSTER_PEERWATCHINTERVAL", &settings.peer_watch_interval),
            ("CLUSTER_LEAVEONSHUTDOWN", "false"),
        ]
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .to_vec();
        env.extend(settings.extra_env.iter().cloned());
        let mut args: Vec<String> = vec!["init".into()];
        if settings.release.era() == Era::Modern {
            // From 0.11 the default consensus is crdt: say which one, always.
            args.extend(["--consensus".into(), settings.consensus.as_str().into()]);
        }
        if let Some(datastore) = &settings.datastore {
            args.extend(["--datastore".into(), datastore.clone()]);
        }
        let mut script = self.on_host.init_script(&env, &args);
        if let Some(after) = self.on_host.after_init_script() {
            script = format!("{script} && {after}");
        }
        self.remote.run("init", &script).map(|_| ())
    }

    /// Runs the service's VERB (`ipfs-cluster-svc VERB EXTRA...`, or systemctl on a systemd
    /// host) and returns its output whatever the exit status.
    pub fn service(&self, verb: &str, extra: &[String]) -> Result<Output> {
        // `stop` may wait 30 s for the snapshot, then SIGKILL.
        self.remote.exec(Job {
            step: &format!("ipfs-cluster-svc {verb}"),
            script: &self.on_host.service_script(verb, extra),
            input: Input::Nothing,
            timeout: Duration::from_secs(60),
        })
    }

    /// Runs `ipfs-cluster-svc VERB EXTRA...` and requires success.
    pub fn service_ok(&self, verb: &str, extra: &[String]) -> Result<Output> {
        let output = self.service(verb, extra)?;
        if output.success() {
            Ok(output)
        } else {
            Err(self
                .remote
                .failed(&format!("ipfs-cluster-svc {verb}"), &output))
        }
    }

    /// The ctl command line for `args`.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut all = self.on_host.tool("ipfs-cluster-ctl");
        all.extend([
            "--host".into(),
            self.api.clone(),
            "--enc".into(),
            "json".into(),
        ]);
        all.extend(args.iter().map(|a| a.to_string()));
        quote::command(&all)
    }

    /// The peer's `id`, or `None` while its API does not answer.
    pub fn id(&self) -> Result<Option<PeerId>> {
        let output = self.remote.exec(Job {
            step: "ipfs-cluster-ctl id",
            script: &self.ctl(&["id"]),
            input: Input::Nothing,
            timeout: Duration::from_secs(30),
        })?;
        if output.status == Some(255) {
            return Err(self.remote.failed("ipfs-cluster-ctl id", &output));
        }
        if !output.success() {
            return Ok(None);
        }
        ctl::parse_id(&output.stdout)
            .map(Some)
            .map_err(|detail| LabError::Parse {
                host: self.name.clone(),
                step: "ipfs-cluster-ctl id".into(),
                detail,
            })
    }

    /// The CIDs the peer lists, or `None` while its API does not answer.
    pub fn pins(&self) -> Result<Option<Vec<String>>> {
        let step = "ipfs-cluster-ctl pin ls";
        let output = self.remote.exec(Job {
            step,
            script: &self.ctl(&["pin", "ls"]),
            input: Input::Nothing,
            timeout: Duration::from_secs(60),
        })?;
        if output.status == Some(255) {
            return Err(self.remote.failed(step, &output));
        }
        if !output.success() {
            return Ok(None);
        }
        ctl::pin_cids(&output.stdout)
            .map(Some)
            .map_err(|detail| LabError::Parse {
                host: self.name.clone(),
                step: step.into(),
                detail,
            })
    }

    /// The number of pins the peer lists, or `None` while its API does not answer.
    pub fn pin_count(&self) -> Result<Option<usize>> {
        Ok(self.pins()?.map(|cids| cids.len()))
    }

    /// Adds the lab's pins, each a CID and its index, through this peer, in one SSH command
    /// fed by stdin.
    pub fn add_pins<'a>(&self, pins: impl IntoIterator<Item = (&'a str, usize)>) -> Result<()> {
        let mut input = String::new();
        for (cid, index) in pins {
            input.push_str(&format!("{cid} {}\n", pins::name(index)));
        }
        let ctl = self.ctl(&[]);
        // Right after joins raft may still be settling on a leader ("no leader found"): retry
        // each pin for up to 10 s before giving up.
        let script = format!(
            "while read -r cid name; do\n\
             tries=0\n\
             until out=$({ctl} pin add --no-status --name \"$name\" \"$cid\" </dev/null 2>&1); do\n\
             tries=$((tries + 1))\n\
             if [ $tries -ge 50 ]; then echo \"pin add $cid failed: $out\" >&2; exit 1; fi\n\
             sleep 0.2\n\
             done\n\
             done\n"
        );
        self.remote
            .run_with(Job {
                step: "pin add",
                script: &script,
                input: Input::Bytes(input.into_bytes()),
                timeout: Duration::from_secs(600),
            })
            .map(|_| ())
    }
}

/// Where `host` of the lab keeps its peer; a Docker host's container gets the image of the
/// lab's release and the lab's options (`lab::docker::run_args`).
fn on_host(layout: &Layout, state: &LabState, host: &HostRecord) -> OnHost {
    let paths = layout.host(&host.name);
    match state.host_kind {
        super::state::HostKind::Docker => OnHost::docker(
            &paths,
            super::docker::image(&state.version),
            super::docker::run_args(&paths, &host.name, &state.secret),
        ),
        kind => OnHost::new(kind, &paths),
    }
}

/// The `--bootstrap` address of a peer, in the form its release prints (`/ipfs/` before 0.11).
pub fn bootstrap_addr(cluster_addr: &str, peer_id: &str, release: &Release) -> String {
    let protocol = if release.era() == Era::Modern {
        "p2p"
    } else {
        "ipfs"
    };
    format!("{cluster_addr}/{protocol}/{peer_id}")
}
