//! Keys as operators keep them: a passphrase-protected key file whose key the ssh-agent holds
//! logs in through the agent; without the agent, the errors say what to do (`ssh-add`, an empty
//! or dead `SSH_AUTH_SOCK`). Real sshd, real ssh-agent and ssh-add.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{cluster_upgrade, text, Lab};

pub(crate) const PASSPHRASE: &str = "correct horse battery staple";

/// `cluster-upgrade plan` on the lab with `SSH_AUTH_SOCK` as given (`None`: unset).
fn plan(lab: &Lab, agent_socket: Option<&str>) -> Output {
    let mut command = Command::new(cluster_upgrade());
    command.arg("plan").arg(lab.inventory());
    match agent_socket {
        Some(socket) => command.env("SSH_AUTH_SOCK", socket),
        None => command.env_remove("SSH_AUTH_SOCK"),
    };
    command.output().expect("run cluster-upgrade plan")
}

/// A new passphrase-protected ed25519 key, authorized on every lab host and named by the
/// inventory instead of the lab's own key.
fn use_encrypted_key(lab: &Lab, dir: &Path) -> std::path::PathBuf {
    let key = encrypted_key(lab, dir);
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    assert!(
        inventory.contains("identity_file: id_ed25519"),
        "{inventory}"
    );
    let inventory = inventory.replace(
        "identity_file: id_ed25519",
        &format!("identity_file: \"{}\"", key.display()),
    );
    std::fs::write(lab.inventory(), inventory).unwrap();
    key
}

/// A new passphrase-protected ed25519 key in `dir`, authorized on every lab host and bastion.
pub(crate) fn encrypted_key(lab: &Lab, dir: &Path) -> std::path::PathBuf {
    let key = dir.join("id_encrypted");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            PASSPHRASE,
            "-C",
            "encrypted",
            "-f",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let authorized = lab.path().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&public);
    std::fs::write(&authorized, keys).unwrap();
    key
}

/// A real ssh-agent in the foreground on `socket`, killed when dropped.
pub(crate) struct Agent(Child);

impl Agent {
    pub(crate) fn start(socket: &Path) -> Agent {
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        // Answering, not only bound: `ssh-add -l` exits 2 while it cannot talk to the agent
        // (the socket file appears before the agent listens on it; seen on a loaded machine).
        let start = Instant::now();
        loop {
            let listed = Command::new("ssh-add")
                .arg("-l")
                .env("SSH_AUTH_SOCK", socket)
                .output()
                .expect("run ssh-add -l");
            if listed.status.code() != Some(2) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the agent never answered"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ssh-add KEY` with the passphrase given through SSH_ASKPASS (no terminal).
pub(crate) fn ssh_add(socket: &Path, key: &Path, dir: &Path) {
    let askpass = dir.join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{PASSPHRASE}'\n")).unwrap();
    let out = Command::new("chmod")
        .arg("700")
        .arg(&askpass)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new("ssh-add")
        .arg(key)
        .env("SSH_AUTH_SOCK", socket)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-add: {}", text(&out.stderr));
}

#[test]
fn an_encrypted_key_logs_in_through_the_agent_that_holds_it_and_says_ssh_add_otherwise() {
    let lab = Lab::up(3, "1.0.8", 3);
    let dir = tempfile::tempdir().unwrap();
    let key = use_encrypted_key(&lab, dir.path());
    let key_text = key.display().to_string();

    let refused = |out: &Output, part: &str| {
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{}", text(&out.stdout));
        assert!(stderr.contains(part), "expected `{part}` in:\n{stderr}");
        assert!(!stderr.contains(PASSPHRASE));
    };
    // No agent at all, an empty SSH_AUTH_SOCK, a dead one: each named, with the way out.
    let out = plan(&lab, None);
    refused(
        &out,
        &format!("{key_text} is passphrase-protected and there is no ssh-agent to sign with it (SSH_AUTH_SOCK is not set;"),
    );
    refused(&out, &format!("add it with `ssh-add {key_text}`"));
    refused(&plan(&lab, Some("")), "SSH_AUTH_SOCK is empty");
    let dead = dir.path().join("no-agent.sock");
    refused(
        &plan(&lab, Some(dead.to_str().unwrap())),
        &format!("no ssh-agent answers at SSH_AUTH_SOCK={}", dead.display()),
    );

    // An agent that does not hold the key.
    let socket = dir.path().join("agent.sock");
    let _agent = Agent::start(&socket);
    refused(
        &plan(&lab, Some(socket.to_str().unwrap())),
        &format!("{key_text} is passphrase-protected and the ssh-agent does not hold it: add it with `ssh-add {key_text}`"),
    );

    // Once it does, every host is logged into through it.
    ssh_add(&socket, &key, dir.path());
    let out = plan(&lab, Some(socket.to_str().unwrap()));
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("Procedure:"),
        "{}",
        text(&out.stdout)
    );
    // The logins used that key (sshd logs its fingerprint).
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = text(&listed.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    for host in ["h1", "h2", "h3"] {
        let log = lab.sshd_log(host);
        assert!(
            log.lines()
                .any(|l| l.contains("Accepted publickey") && l.contains(&fingerprint)),
            "{host}: {log}"
        );
    }
}
