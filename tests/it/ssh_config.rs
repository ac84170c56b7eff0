//! The ssh_config resolver against the real OpenSSH client: for fixture configs
//! (`tests/fixtures/ssh_config/`), `ssh -G -F FILE ALIAS` and our resolution agree on every key
//! we resolve. ssh runs in a private mount namespace whose `/etc/passwd` gives this user the
//! test's temporary home (ssh takes `~` from the password database, `Include` from `$HOME`),
//! so neither reads the real home.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cluster_upgrade::inventory::ssh_config::{
    Context, Jump, Resolved, SshConfig, StrictHostKeyChecking,
};

/// The keys compared, as `ssh -G` names them.
const KEYS: [&str; 11] = [
    "hostname",
    "port",
    "user",
    "identityfile",
    "identitiesonly",
    "identityagent",
    "proxyjump",
    "proxycommand",
    "userknownhostsfile",
    "stricthostkeychecking",
    "connecttimeout",
];

/// A temporary home holding a copy of the fixture home, and this user's name.
struct Home {
    dir: tempfile::TempDir,
    user: String,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssh_config/home");
        copy_tree(&fixture, dir.path());
        Home {
            dir,
            user: command_output("id", &["-un"]),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self, name: &str) -> PathBuf {
        self.path().join(".ssh").join(name)
    }

    /// `/etc/passwd` with this user's home replaced by the temporary one.
    fn passwd(&self) -> PathBuf {
        let uid = command_output("id", &["-u"]);
        let passwd: String = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .map(|line| {
                let mut fields: Vec<String> = line.split(':').map(str::to_string).collect();
                if fields.len() == 7 && fields[2] == uid {
                    fields[5] = self.path().display().to_string();
                }
                fields.join(":") + "\n"
            })
            .collect();
        let path = self.path().join("passwd");
        std::fs::write(&path, passwd).unwrap();
        path
    }

    /// What `ssh -G` says for `alias`: each compared key with its values, in order.
    fn ssh_g(&self, config: &Path, alias: &str) -> BTreeMap<String, Vec<String>> {
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/passwd && exec ssh -G -F "$1" "$2""#)
            .arg(self.passwd())
            .arg(config)
            .arg(alias)
            .env("HOME", self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh -G {alias}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            if KEYS.contains(&key) {
                found.entry(key.into()).or_default().push(value.into());
            }
        }
        found
    }

    /// Our resolution of `alias`, printed as `ssh -G` prints it (with ssh's defaults for
    /// what the config leaves unset).
    fn ours(&self, config: &Path, alias: &str) -> BTreeMap<String, Vec<String>> {
        let context = Context {
            home: self.path().to_path_buf(),
            local_user: self.user.clone(),
            env: |_| None,
        };
        let resolved = SshConfig::load(config, context)
            .unwrap()
            .resolve(alias)
            .unwrap();
        as_ssh_g(&resolved, self)
    }
}

fn as_ssh_g(resolved: &Resolved, home: &Home) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut put = |key: &str, value: String| out.entry(key.into()).or_default().push(value);
    put("hostname", resolved.hostname.clone());
    put(
        "port",
        resolved.port.as_ref().map_or(22, |p| p.value).to_string(),
    );
    let user = resolved.user.as_ref().map(|u| u.value.clone());
    put("user", user.unwrap_or_else(|| home.user.clone()));
    let defaults = [
        "id_rsa",
        "id_ecdsa",
        "id_ecdsa_sk",
        "id_ed25519",
        "id_ed25519_sk",
        "id_xmss",
        "id_dsa",
    ];
    if resolved.identity_files.is_empty() {
        for name in defaults {
            put("identityfile", format!("~/.ssh/{name}"));
        }
    }
    for file in &resolved.identity_files {
        put("identityfile", file.value.clone());
    }
    let only = resolved.identities_only.as_ref().is_some_and(|o| o.value);
    put("identitiesonly", if only { "yes" } else { "no" }.into());
    if let Some(agent) = &resolved.identity_agent {
        put("identityagent", agent.value.clone());
    }
    if let Some(Jump::Via(chain)) = resolved.jump().map(|j| &j.value) {
        put("proxyjump", chain.to_string());
    }
    if let Some(command) = resolved.proxy_command() {
        put("proxycommand", command.value.clone());
    }
    let home_ssh = home.path().join(".ssh");
    let known = match &resolved.user_known_hosts_files {
        Some(files) => files.value.join(" "),
        None => format!("{0}/known_hosts {0}/known_hosts2", home_ssh.display()),
    };
    put("userknownhostsfile", known);
    let strict = match resolved.strict_host_key_checking.as_ref().map(|s| s.value) {
        Some(StrictHostKeyChecking::Yes) => "true",
        Some(StrictHostKeyChecking::No) => "false",
        Some(StrictHostKeyChecking::AcceptNew) => "accept-new",
        Some(StrictHostKeyChecking::Ask) | None => "ask",
    };
    put("stricthostkeychecking", strict.into());
    let timeout = resolved.connect_timeout.as_ref().and_then(|t| t.value);
    put(
        "connecttimeout",
        timeout.map_or("none".into(), |t| t.to_string()),
    );
    out
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every alias resolves as `ssh -G` resolves it.
fn assert_same_as_ssh(config: &str, aliases: &[&str]) {
    let home = Home::new();
    let config = home.config(config);
    for alias in aliases {
        let expected = home.ssh_g(&config, alias);
        assert_eq!(home.ours(&config, alias), expected, "alias `{alias}`");
    }
}

#[test]
fn aliases_wildcards_negation_match_include_and_jumps_resolve_as_ssh_g_does() {
    assert_same_as_ssh(
        "main.conf",
        &[
            "peer1",
            "peer2",
            "peer3",
            "Peer9",
            "peer10",
            "web.lan",
            "db1.lan",
            "jumped",
            "direct",
            "cmd",
            "bastion1",
            "jump-x",
            "quoted",
            "other",
            "inc-a",
            "inc-b",
            "nothing.example",
        ],
    );
}

#[test]
fn an_include_in_a_block_that_does_not_apply_and_repeated_files_resolve_as_ssh_g_does() {
    assert_same_as_ssh("scoped.conf", &["a", "inc-b", "x"]);
}

#[test]
fn tokens_agent_values_and_match_on_the_user_resolve_as_ssh_g_does() {
    assert_same_as_ssh("tokens.conf", &["t1", "t2", "t3", "t4"]);
}

#[test]
fn the_fixture_exercises_what_it_claims() {
    // Guards the comparison above against a fixture that silently stopped covering a case.
    let home = Home::new();
    let config = home.config("main.conf");
    let ssh = |alias| home.ssh_g(&config, alias);
    assert_eq!(
        ssh("jumped")["proxyjump"],
        ["admin@bastion:2200,ops@[fd00::1]:22,[10.0.0.9]"]
    );
    assert!(!ssh("bastion1").contains_key("proxyjump"));
    assert_eq!(ssh("peer1")["connecttimeout"], ["42"]);
    assert!(ssh("peer2")["identityfile"].contains(&"~/.ssh/with space".to_string()));
    assert_eq!(ssh("inc-b")["hostname"], ["b.example"]);
    assert_eq!(ssh("inc-a")["port"], ["2300"]);
    assert_eq!(ssh("other")["hostname"], ["other.example"]);
    assert_eq!(ssh("db1.lan")["stricthostkeychecking"], ["true"]);
    assert_eq!(ssh("web.lan")["user"], ["lanuser"]);
    assert!(ssh("peer1")["identityfile"].len() >= 4);
}
