//! `up --login-user NAME [--sudo]`: the hosts are logged into as a non-root user who becomes
//! root with sudo (NOPASSWD with `--sudo`; without it sudo wants a password), and the peers run
//! as the `ipfs` user, as on a real host. The users and the sudoers file are the machine's own
//! (every lab host shares its `/etc/passwd`): `up` creates what is missing and leaves them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::error::{LabError, Result};

/// The user the peers run as.
pub const SERVICE_USER: &str = "ipfs";

/// How the inventory logs in when it is not as the lab's own user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The login user.
    pub user: String,
    /// Whether that user may sudo without a password (`/etc/sudoers.d/cluster-lab-USER`).
    pub sudo: bool,
}

/// The sudoers file of a lab login.
fn sudoers_file(user: &str) -> String {
    format!("/etc/sudoers.d/cluster-lab-{user}")
}

/// Creates the login user and the service user when missing, and gives the login NOPASSWD sudo
/// (`sudo`) or takes it away; lets every user traverse the lab folder (sshd reads the login's
/// authorized_keys there as that user).
pub fn prepare(login: &Login, lab_dir: &Path) -> Result<()> {
    valid_name(&login.user)?;
    ensure_user(&login.user, &["-m", "-s", "/bin/sh"])?;
    // useradd leaves the password locked (`!`), and sshd without PAM refuses locked accounts
    // even for keys; `*` is no password at all, not a lock.
    run("usermod", &["-p", "*", &login.user])?;
    ensure_user(SERVICE_USER, &["-r", "-M", "-s", "/usr/sbin/nologin"])?;
    let file = sudoers_file(&login.user);
    if login.sudo {
        let line = format!(
            "# Written by cluster-lab up --login-user {0} --sudo.\n{0} ALL=(ALL:ALL) NOPASSWD: ALL\n",
            login.user
        );
        fs::write(&file, line).map_err(LabError::io("writing", &file))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o440))
            .map_err(LabError::io("protecting", &file))?;
        run("visudo", &["-c", "-q", "-f", &file])?;
    } else if Path::new(&file).exists() {
        fs::remove_file(&file).map_err(LabError::io("removing", &file))?;
    }
    fs::set_permissions(lab_dir, fs::Permissions::from_mode(0o711))
        .map_err(LabError::io("opening for the login user", lab_dir))
}

fn valid_name(user: &str) -> Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user.starts_with(|c: char| c.is_ascii_lowercase())
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok && user != "root" {
        Ok(())
    } else {
        Err(LabError::InvalidOption {
            option: "--login-user",
            detail: format!(
                "`{user}` is not a lab login (lower-case letters, digits, - and _; not root)"
            ),
        })
    }
}

fn ensure_user(user: &str, options: &[&str]) -> Result<()> {
    let exists = Command::new("id")
        .arg("-u")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        return Ok(());
    }
    let mut args: Vec<&str> = options.to_vec();
    args.push(user);
    run("useradd", &args)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| LabError::Spawn {
            host: "localhost".into(),
            program: program.into(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(LabError::Remote {
        host: "localhost".into(),
        step: format!("{program} {}", args.join(" ")),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// The script that hands a host's peer to the service user: its config folder becomes that
/// user's alone (0700: `service.json` holds the cluster secret), and the unit runs the daemon
/// as that user (`User=`, read by ipfs-cluster-svc).
pub fn hand_over_script(config_dir: &Path, unit: &Path) -> String {
    let q = |p: &Path| super::quote::word(&p.display().to_string());
    format!(
        "chown -R {SERVICE_USER}: {cfg} && chmod 0700 {cfg} && printf 'User={SERVICE_USER}\\n' >>{unit}",
        cfg = q(config_dir),
        unit = q(unit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_must_be_a_plain_name_and_not_root() {
        assert!(valid_name("cu-sudo").is_ok());
        for bad in ["root", "", "Cu", "a b", "1x", "x;rm"] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_hand_over_makes_the_config_the_service_users_and_names_it_in_the_unit() {
        let script = hand_over_script(Path::new("/lab/h1/.ipfs-cluster"), Path::new("/lab/h1/u"));
        assert_eq!(
            script,
            "chown -R ipfs: /lab/h1/.ipfs-cluster && chmod 0700 /lab/h1/.ipfs-cluster && printf 'User=ipfs\\n' >>/lab/h1/u"
        );
    }
}
