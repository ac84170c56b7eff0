//! Linux network namespaces (`ip netns`) for labs whose hosts must be reachable only through a
//! bastion: each namespace has a loopback of its own, so an address listened on inside one
//! cannot be dialled from outside it. Needs root (CAP_SYS_ADMIN); only loopback is used.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

/// Where `ip netns add NAME` mounts the namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Creates namespace `name` with its loopback up (an old one of the same name is replaced).
pub fn create(name: &str) -> io::Result<()> {
    if path(name).exists() {
        delete(name)?;
    }
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])
}

/// Deletes namespace `name`; a missing one is not an error.
pub fn delete(name: &str) -> io::Result<()> {
    if !path(name).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", name])
}

/// Moves the calling thread into namespace `name` (sockets it creates from now on live there;
/// the process's other threads are not affected).
pub fn enter(name: &str) -> io::Result<()> {
    let file = File::open(path(name))?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(io::Error::from)
}

/// `command` run inside namespace `name` (`ip netns exec`, which execs it: same PID).
pub fn command_in(name: &str, program: &str) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", name, program]);
    command
}
