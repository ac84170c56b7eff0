//! A non-root login that becomes root with sudo (`become: {method: sudo, user: root}`), as
//! operators run their hosts: peers running as `ipfs`, hosts behind a bastion and named by
//! ssh_config aliases, the key passphrase-protected and held by the ssh-agent. Real sshd, real
//! sudo, real ssh-agent. `cluster-lab up --login-user NAME [--sudo]` creates the users.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::proxyjump_e2e::aliases_as;
use crate::ssh_keys_e2e::{encrypted_key, ssh_add, Agent};
use crate::support::{text, Lab, Test};

/// A login whose sudo wants a password (the tests with NOPASSWD sudo have a login each, so
/// that each can check what it leaves in the login's home).
const NO_SUDO_LOGIN: &str = "cu-nosudo";

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    assert!(out.status.success(), "no user {user}");
    text(&out.stdout).trim().parse().unwrap()
}

/// The real user ID of the process whose PID is in `pidfile`.
fn process_uid(pidfile: &Path) -> u32 {
    let pid = std::fs::read_to_string(pidfile).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// Whether `login` can read `path` (as `runuser` would let it: its own permissions).
fn readable_by(login: &str, path: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", login, "--", "head", "-c", "1"])
        .arg(path)
        .output()
        .unwrap()
        .status
        .success()
}

/// Upgrades a lab of 3 stand-in peers on 0.9.0 through the bastion, by aliases, with the agent's
/// key, as the sudo login (`extra`: the procedure), and checks what the login leaves behind.
fn upgrade_as_sudo_login(login: &str, extra: &[&str], finished: &str) {
    let lab = Lab::up_with(
        3,
        "0.9.0",
        25,
        &["--bastion", "--login-user", login, "--sudo"],
    );
    let agent_dir = tempfile::tempdir().unwrap();
    let key = encrypted_key(&lab, agent_dir.path());
    let socket = agent_dir.path().join("agent.sock");
    let _agent = Agent::start(&socket);
    ssh_add(&socket, &key, agent_dir.path());
    let inventory = aliases_as(&lab, 3, login, &key);
    let socket = socket.to_str().unwrap();

    let out = Test::new()
        .env("SSH_AUTH_SOCK", socket)
        .args(["plan".as_ref(), inventory.as_os_str()])
        .run();
    let shown = text(&out.stdout);
    for i in 1..=3 {
        assert!(shown.contains(&format!("h{i}  {login}@")), "{shown}");
    }
    assert!(shown.contains("through jump"), "{shown}");
    assert!(shown.contains(", as root with sudo"), "{shown}");

    let mut args: Vec<&std::ffi::OsStr> =
        vec!["apply".as_ref(), inventory.as_os_str(), "--yes".as_ref()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = Test::new().env("SSH_AUTH_SOCK", socket).args(args).run();
    assert!(
        text(&out.stdout).contains(finished),
        "{}",
        text(&out.stdout)
    );
    lab.assert_cluster("0.10.1", 3, 25);

    let ipfs = uid_of("ipfs");
    for i in 1..=3 {
        let host = format!("h{i}");
        let home = lab.home(&host);
        // The hosts were logged into as the login, through the bastion only.
        assert!(
            lab.sshd_log(&host)
                .contains(&format!("Accepted publickey for {login} from ")),
            "{}",
            lab.sshd_log(&host)
        );
        // What the run installed is root's, not the login's.
        for file in ["ipfs-cluster-service", "ipfs-cluster-ctl"] {
            let meta = std::fs::metadata(home.join("bin").join(file)).unwrap();
            assert_eq!(meta.uid(), 0, "{host}: {file} is root's");
            assert_eq!(meta.mode() & 0o777, 0o755, "{host}: {file}");
        }
        let staged = home.join("bin/.cluster-upgrade/0.10.1/ipfs-cluster-service");
        if staged.exists() {
            assert_eq!(
                std::fs::metadata(&staged).unwrap().uid(),
                0,
                "{host}: staged"
            );
        }
        // The peer runs as ipfs, its config is ipfs's alone: the login cannot read the secret.
        assert_eq!(process_uid(&home.join("ipfs-cluster.pid")), ipfs, "{host}");
        let config = home.join(".ipfs-cluster");
        let meta = std::fs::metadata(&config).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (ipfs, 0o700), "{host}");
        assert!(config.join("service.json").exists());
        assert!(
            !readable_by(login, &config.join("service.json")),
            "{host}: the login must not read service.json"
        );
    }
    // The login's private upload folder holds nothing once the files are installed.
    let uploads = Path::new("/home")
        .join(login)
        .join(".cluster-upgrade-uploads");
    let meta = std::fs::metadata(&uploads).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn standard_upgrade_as_a_sudo_login_through_a_bastion_by_aliases_with_an_agent_key() {
    upgrade_as_sudo_login("cu-sudo-std", &[], "finished");
}

#[test]
fn bootstrap_upgrade_as_a_sudo_login_through_a_bastion_by_aliases_with_an_agent_key() {
    upgrade_as_sudo_login(
        "cu-sudo-boot",
        &["--procedure", "bootstrap"],
        "bootstrap procedure, 0.9.0 → 0.10.1, finished",
    );
}

#[test]
fn a_login_whose_sudo_wants_a_password_is_refused_at_plan_time_and_nothing_changes() {
    let lab = Lab::up_with(3, "0.9.0", 5, &["--login-user", NO_SUDO_LOGIN]);
    let inventory = lab.inventory();
    let before: Vec<_> = (1..=3)
        .map(|i| {
            std::fs::read(lab.home(&format!("h{i}")).join("bin/ipfs-cluster-service")).unwrap()
        })
        .collect();
    for command in ["plan", "apply"] {
        let mut args: Vec<&std::ffi::OsStr> = vec![command.as_ref(), inventory.as_os_str()];
        if command == "apply" {
            args.push("--yes".as_ref());
        }
        let out = Test::new().args(args).status(1).run();
        let stderr = text(&out.stderr);
        assert!(stderr.contains("host h1 is unreachable"), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "`{NO_SUDO_LOGIN}` cannot run commands as `root` with `sudo -n` (sudo: a password is required)"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("{NO_SUDO_LOGIN} ALL=(root) NOPASSWD: ALL")),
            "{stderr}"
        );
    }
    for (i, binary) in before.iter().enumerate() {
        let home = lab.home(&format!("h{}", i + 1));
        assert_eq!(
            &std::fs::read(home.join("bin/ipfs-cluster-service")).unwrap(),
            binary
        );
        assert!(
            !home.join("bin/.cluster-upgrade").exists(),
            "nothing staged"
        );
    }
    assert!(lab.run_dirs().is_empty(), "no run started");
    lab.assert_cluster("0.9.0", 3, 5);
}
