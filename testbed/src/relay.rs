//! A TCP relay between network namespaces: what stands for the network between a lab's bastion
//! and the hosts behind it. Each rule listens on an address in one namespace and, for every
//! connection, dials an address in another one, optionally from a given source address (so
//! that an sshd behind it sees the bastion's address as the client's).
//!
//! OpenSSH's sshd does not bind the connections it opens for `direct-tcpip` channels: they come
//! from the route's source address (127.0.0.1 on loopback), as a direct client's do. A bastion
//! therefore runs in a namespace of its own, where the hosts' addresses are this relay's, which
//! dials them from the bastion's address.

use std::io::{self, BufRead, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;

use rustix::net::{AddressFamily, SocketType};
use serde::{Deserialize, Serialize};

use crate::netns;

/// One listening address and where its connections go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The namespace to listen in (`None`: the relay's own).
    pub listen_netns: Option<String>,
    pub listen: SocketAddrV4,
    /// The namespace to dial in (`None`: the relay's own).
    pub dial_netns: Option<String>,
    pub dial: SocketAddrV4,
    /// The source address of dialled connections (`None`: the kernel's choice).
    pub source: Option<Ipv4Addr>,
}

/// Binds every rule's listener, prints `ready` on stdout, then relays until killed.
pub fn serve(rules: Vec<Rule>) -> io::Result<()> {
    let mut listeners = Vec::new();
    for rule in rules {
        let listener = thread::scope(|s| {
            s.spawn(|| {
                if let Some(ns) = &rule.listen_netns {
                    netns::enter(ns)?;
                }
                TcpListener::bind(rule.listen)
            })
            .join()
            .expect("bind thread")
        })
        .map_err(|e| io::Error::new(e.kind(), format!("listening on {}: {e}", rule.listen)))?;
        listeners.push((listener, rule));
    }
    println!("ready");
    io::stdout().flush()?;
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(listener, rule)| thread::spawn(move || accept_loop(&listener, &rule)))
        .collect();
    for handle in accepting {
        let _ = handle.join();
    }
    Ok(())
}

fn accept_loop(listener: &TcpListener, rule: &Rule) {
    for incoming in listener.incoming().flatten() {
        let rule = rule.clone();
        thread::spawn(move || {
            // Only this thread enters the dial namespace.
            if let Ok(outgoing) = dial(&rule) {
                pipe(incoming, outgoing);
            }
        });
    }
}

fn dial(rule: &Rule) -> io::Result<TcpStream> {
    if let Some(ns) = &rule.dial_netns {
        netns::enter(ns)?;
    }
    let Some(source) = rule.source else {
        return TcpStream::connect(rule.dial);
    };
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    rustix::net::bind(&socket, &SocketAddrV4::new(source, 0))?;
    rustix::net::connect(&socket, &rule.dial)?;
    let stream = TcpStream::from(socket);
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Copies both ways until each side has closed its half.
fn pipe(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let forth = thread::spawn(move || copy(a, b));
    copy(b2, a2);
    let _ = forth.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// The relay program: this `cluster-lab` (its hidden `relay` and `delay-relay` commands), or
/// the `cluster-lab` beside the running program.
pub fn program() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|name| name == "cluster-lab") {
        return Ok(exe);
    }
    Ok(exe.with_file_name("cluster-lab"))
}

/// Starts `program COMMAND --rules FILE` (the rules written to `file` as JSON) detached, and
/// waits until it prints `ready`. Returns its PID; the caller stops it by PID.
pub fn spawn<T: Serialize + ?Sized>(
    program: &Path,
    command: &str,
    file: &Path,
    rules: &T,
) -> io::Result<u32> {
    let text = serde_json::to_string_pretty(rules).map_err(io::Error::other)?;
    std::fs::write(file, text)?;
    let mut child = Command::new(program)
        .args([command, "--rules"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    io::BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "ready" {
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!(
            "relay did not start: {}",
            stderr.trim()
        )));
    }
    let pid = child.id();
    // Reaped by whoever stops it (by PID), like the lab's sshds.
    std::mem::forget(child);
    Ok(pid)
}
