//! The read-only probes: one shell script per host, run over the host's SSH connection, whose
//! output is split into `@@ section` blocks. They never print secrets: from the config files they
//! extract single fields on the host instead of copying them (they hold the private key and the
//! cluster secret).
//!
//! The scripts start as few processes as they can (a handful per host): on a large cluster the
//! probe runs twice per `apply`, and its cost is paid on every host.

use crate::transport::quote::{quote, QuoteError};

/// Where the probe finds the binaries, the config folder and the REST API of one host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeVars {
    pub bin_dir: String,
    pub config_dir: String,
    pub api: String,
    /// Shell text before the ctl: `CLUSTER_CREDENTIALS` read on the host (`api_auth`), or empty.
    #[serde(default)]
    pub ctl_env: String,
    /// The ctl's `--https`/`--no-check-certificate`/`--force-http` flags (`api_auth`), or empty.
    #[serde(default)]
    pub ctl_flags: String,
    /// The peer's systemd unit (`systemd_unit`, `ipfs-cluster` by default) on a host whose
    /// `service_manager` is `systemd`: the planning probe reads it with `systemctl show`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The peer's container on a Docker host: the probe asks it (`docker exec`, `docker
    /// inspect`) instead of binaries on the host; `config_dir` is the host folder mounted as
    /// its config folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_container: Option<String>,
    /// `docker exec` options passing the credentials of `api_auth` in (`-e CLUSTER_CREDENTIALS `).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_env: String,
}

impl ProbeVars {
    /// A host's `bin_dir`, `config_dir`, `api` and `api_auth` variables, or their defaults.
    pub fn of(vars: &crate::inventory::Vars) -> ProbeVars {
        let auth = crate::inventory::ApiAuth::of(vars)
            .unwrap_or_else(|_| crate::inventory::ApiAuth::plain());
        ProbeVars {
            bin_dir: vars.bin_dir().to_string(),
            config_dir: vars.config_dir().to_string(),
            api: vars.api().to_string(),
            ctl_env: auth.env_prefix(),
            ctl_flags: auth.ctl_flags(),
            systemd_unit: (vars.str("service_manager") == Some("systemd")).then(|| {
                vars.str("systemd_unit")
                    .unwrap_or("ipfs-cluster")
                    .to_string()
            }),
            docker_container: vars.docker_container().map(String::from),
            docker_env: auth.docker_env(),
        }
    }
}

/// What a probe asks a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeScope {
    /// Everything the planner uses: versions, the peer, its pinset, its config and the raft
    /// folders on disk. Without it, only what a health check needs (versions, the peer, its
    /// pinset).
    pub disk: bool,
    /// Also `peers ls`, the one command whose cost grows with the cluster (the peer asks every
    /// other peer): run on one host per probe, not on all of them.
    pub peers: bool,
    /// Keep the CIDs each peer lists ([`super::HostFacts::listed_cids`]), not only their
    /// digest: for comparing pinsets that are still growing.
    pub cids: bool,
}

impl ProbeScope {
    /// For planning and for comparing the cluster with a saved plan.
    pub const FULL: ProbeScope = ProbeScope {
        disk: true,
        peers: false,
        cids: false,
    };
    /// For the gate after the last step.
    pub const HEALTH: ProbeScope = ProbeScope {
        disk: false,
        peers: false,
        cids: false,
    };

    pub fn with_peers(self) -> ProbeScope {
        ProbeScope {
            peers: true,
            ..self
        }
    }

    pub fn with_cids(self) -> ProbeScope {
        ProbeScope { cids: true, ..self }
    }
}

/// The probe script for one host.
pub fn probe_script(vars: &ProbeVars, scope: ProbeScope) -> Result<String, QuoteError> {
    let mut script = head(vars)?;
    script.push_str(if scope.disk { PEER } else { RUNNING_PEER });
    if scope.peers {
        script.push_str(PEERS);
    }
    if scope.disk {
        script.push_str(DISK);
        if let Some(unit) = &vars.systemd_unit {
            script.push_str(&format!(
                "section unit; systemctl show {} -- {} 2>&1; rc $?\n",
                super::unit::UNIT_PROPERTIES,
                quote(&format!("{}.service", unit.trim_end_matches(".service")))?
            ));
        }
        if vars.docker_container.is_some() {
            script.push_str(&docker_sections());
        }
    }
    Ok(script)
}

/// A script that only runs `peers ls` (when the host chosen for it was not running).
pub fn peers_script(vars: &ProbeVars) -> Result<String, QuoteError> {
    Ok(head(vars)? + PEERS)
}

/// The variables, the section markers, `ctl` (the host's ctl on its REST API, with the
/// credentials and flags of `api_auth`, read on the host when it runs), and `svc`/`ctlv` (the
/// installed `ipfs-cluster-service`/`ipfs-cluster-ctl`): on a Docker host, those of the peer's
/// container (`docker exec`; a stopped container's image, in a one-off container).
fn head(vars: &ProbeVars) -> Result<String, QuoteError> {
    let common = format!(
        "bin={}; cfg={}; api={}\nsection() {{ echo \"@@ $1\"; }}\nrc() {{ echo \"@@ rc $1\"; }}\n",
        quote(&vars.bin_dir)?,
        quote(&vars.config_dir)?,
        quote(&vars.api)?,
    );
    Ok(match &vars.docker_container {
        None => format!(
            "{common}ctl() {{ {}\"$bin/ipfs-cluster-ctl\" --host \"$api\"{} \"$@\"; }}\n\
             svc() {{ \"$bin/ipfs-cluster-service\" \"$@\"; }}\nctlv() {{ \"$bin/ipfs-cluster-ctl\" \"$@\"; }}\n",
            vars.ctl_env, vars.ctl_flags,
        ),
        Some(container) => format!(
            "{common}c={}\nctl() {{ {}docker exec {}\"$c\" ipfs-cluster-ctl --host \"$api\"{} \"$@\"; }}\n{DOCKER_HEAD}",
            quote(container)?,
            vars.ctl_env,
            vars.docker_env,
            vars.ctl_flags,
        ),
    })
}

// A running container answers `docker exec`; a stopped one's image runs the binaries in a
// one-off container without network (`--version` only). A start cut between removing the old
// container and renaming the new one (`container_start` of the playbooks) leaves only
// `$c.next`, on the release it was starting: that one is the peer's then.
const DOCKER_HEAD: &str = r#"look() { docker inspect --type container -f '{{.State.Running}} {{.Image}}' "$1" 2>/dev/null; }
st=$(look "$c"); [ -n "$st" ] || { st=$(look "$c.next"); [ -z "$st" ] || c="$c.next"; }; img=${st#* }
if [ "${st%% *}" = true ]; then in_peer() { docker exec "$c" "$@"; }
else in_peer() { [ -n "$st" ] || { echo "no container $c" >&2; return 127; }; p=$1; shift; docker run --rm --network none --entrypoint "$p" "$img" "$@"; }; fi
svc() { in_peer ipfs-cluster-service "$@"; }
ctlv() { in_peer ipfs-cluster-ctl "$@"; }
"#;

/// The Docker host's sections: the container's settings, its image's defaults, and the names
/// of the variables the container sets (`crate::facts::Container`).
fn docker_sections() -> String {
    use super::container::{CONTAINER_TEMPLATE, ENV_SCRIPT, IMAGE_TEMPLATE};
    format!(
        "section container; docker inspect --type container -f '{CONTAINER_TEMPLATE}' \"$c\" 2>&1; rc $?\n\
         section image; docker image inspect -f '{IMAGE_TEMPLATE}' \"$img\" 2>&1; rc $?\n\
         section container_env; {ENV_SCRIPT}; rc 0\n"
    )
}

// Each section ends with `@@ rc N`, the exit status of its command, so the parser can tell
// "not installed" from "empty output".
const PEER: &str = r#"section service_version; svc --version 2>&1; rc $?
section id; ctl --enc json id 2>&1; rc $?
section pins; ctl --enc json pin ls 2>&1; rc $?
"#;

// For the health check, the version a running peer reports (`id`) is the one that counts; the
// installed binary is asked only when the peer does not answer.
const RUNNING_PEER: &str = r#"section id; ctl --enc json id 2>&1; r=$?; rc $r
if [ "$r" -ne 0 ]; then section service_version; svc --version 2>&1; rc $?; fi
section pins; ctl --enc json pin ls 2>&1; rc $?
"#;

const PEERS: &str = r#"section peers; ctl --enc json peers ls 2>&1; rc $?
"#;

// `config` reads single fields, each match ended by a NUL (`grep -z` reads a file as one line,
// so a list that spans lines matches too): the 1.x default `listen_multiaddress` is a list, and
// the key inside `consensus` (`raft` or `crdt`) names the consensus.
// `followers` names the followers (`ipfs-cluster-follow NAME`) of the login, by the folders
// holding a `service.json` in `~/.ipfs-cluster-follow` (globs, no process).
// `states` lists every raft folder and the snapshots in it with shell globs (no process), then
// the first byte of each snapshot's state.bin, in the same order, from one `head | od`; the
// parser pairs them and picks each folder's newest snapshot.
const DISK: &str = r#"section config; grep -h -z -o -E '"(leave_on_shutdown|wait_for_leader_timeout|id|listen_multiaddress|format_major_version|rebroadcast_interval)": *("[^"]*"|[a-z0-9]+|\[[^]]*\])|"(raft|crdt|pebble|badger|badger3|leveldb)": *\{' "$cfg/service.json" "$cfg/identity.json" 2>/dev/null; echo; rc 0
section ctl_version; ctlv --version 2>&1; rc $?
section states; set --
for d in "$cfg/raft" "$cfg"/raft.old.*; do [ -d "$d" ] || continue; echo "folder ${d##*/}"
for s in "$d"/snapshots/*/state.bin; do [ -s "$s" ] || continue; s=${s%/state.bin}; echo "snapshot ${d##*/} ${s##*/}"; set -- "$@" "$s/state.bin"; done; done
echo bytes; if [ $# -gt 0 ]; then head -q -c 1 "$@" | od -An -tu1 -v -w1; fi; rc 0
section pebble; o=; for f in "$cfg"/pebble/OPTIONS-*; do [ -f "$f" ] && o=$f; done; if [ -n "$o" ]; then grep -m 1 'format_major_version=' "$o"; fi; rc 0
section followers; for f in "$HOME"/.ipfs-cluster-follow/*/service.json; do [ -f "$f" ] || continue; f=${f%/service.json}; echo "${f##*/}"; done; rc 0
section lease; if [ -e "$cfg/.cluster-upgrade.lease" ]; then cat "$cfg/.cluster-upgrade.lease"; echo; fi; rc 0
section free; df -Pk "$bin" 2>&1 | tail -n 1; rc $?
"#;

/// The lease file of a host, in its peer's configuration folder: it belongs to the peer, which
/// is what two runs must not both work on.
pub const LEASE_FILE: &str = ".cluster-upgrade.lease";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> ProbeVars {
        ProbeVars {
            bin_dir: "/opt/my bin".into(),
            config_dir: "/var/lib/cluster".into(),
            api: "/ip4/127.0.0.1/tcp/9094".into(),
            ctl_env: String::new(),
            ctl_flags: String::new(),
            systemd_unit: None,
            docker_container: None,
            docker_env: String::new(),
        }
    }

    /// The probe's `ctl` under a real shell, with `api_auth` from a credentials file: the
    /// ctl gets `CLUSTER_CREDENTIALS` from the file and the flags, while the script itself
    /// holds only the file's path.
    #[test]
    fn api_auth_reads_the_credentials_on_the_host_and_passes_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("api credentials");
        std::fs::write(&secret_file, "admin:s3cret").unwrap();
        let ctl = dir.path().join("ipfs-cluster-ctl");
        std::fs::write(
            &ctl,
            "#!/bin/sh\necho \"creds=$CLUSTER_CREDENTIALS args=$*\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&ctl, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut vars = crate::inventory::Vars::new();
        vars.insert(
            "api_auth".parse().unwrap(),
            serde_json::json!({"credentials_file": secret_file, "check_certificate": false}),
        );
        let probe = ProbeVars {
            bin_dir: dir.path().to_str().unwrap().into(),
            ..ProbeVars::of(&vars)
        };
        let script = probe_script(&probe, ProbeScope::HEALTH).unwrap();
        assert!(!script.contains("s3cret"), "{script}");
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("creds=admin:s3cret args=--host /ip4/127.0.0.1/tcp/9094 --https --no-check-certificate --enc json id"),
            "{stdout}"
        );
    }

    #[test]
    fn the_health_probe_skips_the_disk_and_peers_ls() {
        let script = probe_script(&vars(), ProbeScope::HEALTH).unwrap();
        assert!(script.contains("section pins"));
        assert!(script.contains("if [ \"$r\" -ne 0 ]; then section service_version"));
        assert!(!script.contains("section states"));
        assert!(!script.contains("peers ls"));
        let full = probe_script(&vars(), ProbeScope::FULL.with_peers()).unwrap();
        assert!(full.contains("section states") && full.contains("peers ls"));
    }

    #[test]
    fn the_followers_section_names_the_folders_with_a_service_json() {
        let home = tempfile::tempdir().unwrap();
        let base = home.path().join(".ipfs-cluster-follow");
        for (name, config) in [("mirror", true), ("archive", true), ("half", false)] {
            std::fs::create_dir_all(base.join(name)).unwrap();
            if config {
                std::fs::write(base.join(name).join("service.json"), "{}").unwrap();
            }
        }
        let line = DISK
            .lines()
            .find(|l| l.starts_with("section followers;"))
            .unwrap();
        let run = |home: &std::path::Path| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "section() {{ echo \"@@ $1\"; }}\nrc() {{ echo \"@@ rc $1\"; }}\n{line}"
                ))
                .env("HOME", home)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let mut seen: Vec<String> = run(home.path()).lines().map(String::from).collect();
        seen.sort();
        assert_eq!(seen, ["@@ followers", "@@ rc 0", "archive", "mirror"]);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(run(empty.path()), "@@ followers\n@@ rc 0\n");
    }

    /// A `docker` that answers as Podman's Docker-compatible CLI does for a peer container
    /// `name` (running or stopped), and for no other, logging its arguments.
    fn fake_docker(dir: &std::path::Path, name: &str, running: bool) {
        let script = format!(
            r#"#!/bin/sh
echo "$*" >> "{log}"
case "$*" in
  "inspect --type container -f {{{{.State.Running}}}} {{{{.Image}}}} {name}") echo "{running} 466cb275" ;;
  "inspect --type container -f {{\"id\""*" {name}") echo '{{"id":"51f7","name":"ipfs-cluster","image":"466cb275","image_name":"docker.io/ipfs/ipfs-cluster:v1.1.3","running":{running},"cmd":["daemon"],"entrypoint":"/usr/local/bin/entrypoint.sh","user":"","labels":{{}},"mounts":[{{"Type":"bind","Source":"{cfg}","Destination":"/data/ipfs-cluster","RW":true}}],"network":"host","ports":{{}},"restart":{{"Name":"unless-stopped","MaximumRetryCount":0}}}}' ;;
  "inspect --type container -f {{{{range"*" {name}") printf 'PATH=/bin\nIPFS_CLUSTER_PATH=/data/ipfs-cluster\nCLUSTER_SECRET=s3cret\n' ;;
  "inspect --type container "*) echo "Error: no such container ${{*##* }}" >&2; exit 125 ;;
  "image inspect -f {{\"cmd\""*) echo '{{"cmd":["daemon"],"entrypoint":["/usr/local/bin/entrypoint.sh"],"user":"","labels":null}}' ;;
  "image inspect -f {{{{range"*) printf 'PATH=/bin\nIPFS_CLUSTER_PATH=/data/ipfs-cluster\n' ;;
  "exec {name} ipfs-cluster-service --version"|"run --rm --network none --entrypoint ipfs-cluster-service 466cb275 --version") echo "ipfs-cluster-service version 1.1.3" ;;
  "exec {name} ipfs-cluster-ctl --version"|"run --rm --network none --entrypoint ipfs-cluster-ctl 466cb275 --version") echo "ipfs-cluster-ctl version 1.1.3" ;;
  "exec {name} ipfs-cluster-ctl --host /ip4/127.0.0.1/tcp/9094 --enc json id") [ {running} = true ] || exit 1; echo '{{"id":"QmA","version":"1.1.3","cluster_peers":["QmA"]}}' ;;
  "exec {name} ipfs-cluster-ctl --host /ip4/127.0.0.1/tcp/9094 --enc json pin ls") [ {running} = true ] || exit 1; echo '{{"cid":"QmX"}}' ;;
  *) echo "unexpected: $*" >&2; exit 125 ;;
esac
"#,
            log = dir.join("docker.log").display(),
            cfg = dir.join("cfg").display(),
        );
        let docker = dir.join("docker");
        std::fs::write(&docker, script).unwrap();
        std::fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::create_dir_all(dir.join("cfg")).unwrap();
        std::fs::write(
            dir.join("cfg/service.json"),
            r#"{"consensus": {"crdt": {}}, "datastore": {"pebble": {}}}"#,
        )
        .unwrap();
    }

    fn probe_docker_host(name: &str, running: bool) -> (super::super::HostFacts, String) {
        let dir = tempfile::tempdir().unwrap();
        fake_docker(dir.path(), name, running);
        let mut host_vars = crate::inventory::Vars::new();
        host_vars.insert("service_manager".parse().unwrap(), "docker".into());
        host_vars.insert(
            "config_dir".parse().unwrap(),
            dir.path().join("cfg").display().to_string().into(),
        );
        let probe = ProbeVars::of(&host_vars);
        assert_eq!(probe.docker_container.as_deref(), Some("ipfs-cluster"));
        let script = probe_script(&probe, ProbeScope::FULL).unwrap();
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let facts = super::super::parse_probe_output(&"d1".into(), "127.0.0.1", &stdout);
        let log = std::fs::read_to_string(dir.path().join("docker.log")).unwrap();
        (facts, log)
    }

    /// A Docker host without binaries on the host: versions come from the container, the
    /// config from the host folder mounted into it, and the container's settings are read.
    #[test]
    fn a_docker_host_is_probed_through_its_container() {
        let (facts, log) = probe_docker_host("ipfs-cluster", true);
        assert_eq!(facts.service_version, Some("1.1.3".parse().unwrap()));
        assert_eq!(facts.ctl_version, Some("1.1.3".parse().unwrap()));
        assert!(facts.running);
        assert_eq!(facts.pins.as_ref().map(|p| p.count), Some(1));
        assert_eq!(facts.consensus, Some(crate::facts::Consensus::Crdt));
        let container = facts.container.as_ref().and_then(|c| c.found()).unwrap();
        assert_eq!(container.env, ["CLUSTER_SECRET"]);
        assert!(container.config_mount().is_some());
        assert!(
            !log.contains("run --rm"),
            "a running container is asked: {log}"
        );
    }

    #[test]
    fn a_stopped_container_s_release_answers_from_its_image() {
        let (facts, log) = probe_docker_host("ipfs-cluster", false);
        assert!(!facts.running);
        assert_eq!(facts.service_version, Some("1.1.3".parse().unwrap()));
        assert!(
            log.contains(
                "run --rm --network none --entrypoint ipfs-cluster-service 466cb275 --version"
            ),
            "{log}"
        );
        assert!(!facts.container.unwrap().found().unwrap().running);
    }

    /// A `container_start` killed after removing the old container and before renaming the
    /// new one: the new one, stopped, is the peer's (a resumed run starts it again).
    #[test]
    fn a_start_cut_before_the_rename_is_read_from_the_new_container() {
        let (facts, log) = probe_docker_host("ipfs-cluster.next", false);
        assert!(!facts.running);
        assert_eq!(facts.service_version, Some("1.1.3".parse().unwrap()));
        assert!(facts.container.unwrap().found().is_some());
        assert!(
            log.contains(
                "inspect --type container -f {{.State.Running}} {{.Image}} ipfs-cluster.next"
            ),
            "{log}"
        );
    }

    #[test]
    fn no_container_at_all_reports_no_release() {
        let (facts, _) = probe_docker_host("another", false);
        assert!(!facts.running);
        assert_eq!(facts.service_version, None);
        assert!(facts.container.unwrap().found().is_none());
    }

    #[test]
    fn the_container_templates_fit_in_single_quotes() {
        use super::super::container::{CONTAINER_TEMPLATE, IMAGE_TEMPLATE};
        assert!(!CONTAINER_TEMPLATE.contains('\'') && !IMAGE_TEMPLATE.contains('\''));
    }

    #[test]
    fn paths_are_quoted() {
        let script = probe_script(&vars(), ProbeScope::FULL).unwrap();
        assert!(script.starts_with("bin='/opt/my bin'; "));
    }
}
