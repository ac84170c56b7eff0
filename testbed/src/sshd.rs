//! Real OpenSSH `sshd` processes on loopback addresses, for the lab and for tests.
//!
//! Each server has its own config, host key, pid file and log, and sets `HOME` and `PATH` for
//! the sessions it starts (`SetEnv`), so every host of the lab has a home folder of its own while
//! all of them log in as the user running the lab.

use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's openssh-server puts the daemon; sshd needs an absolute path to re-exec.
pub const SSHD: &str = "/usr/sbin/sshd";

/// Fails with installation advice when openssh-server is missing.
pub fn require_sshd() -> io::Result<()> {
    if Path::new(SSHD).exists() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "/usr/sbin/sshd is missing: install Debian's openssh-server (as root: apt-get install -y openssh-server), or run scripts/test which does it",
        ))
    }
}

/// The user the lab logs in as: the one running it.
pub fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            let out = Command::new("id").arg("-un").output().ok();
            out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "root".into())
        })
}

/// Generates an ed25519 key pair with `ssh-keygen` (no passphrase) at `path` and `path.pub`.
pub fn generate_key(path: &Path, comment: &str) -> io::Result<()> {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "ssh-keygen failed for {}",
            path.display()
        )));
    }
    Ok(())
}

/// What one sshd needs.
#[derive(Debug, Clone)]
pub struct SshdSpec {
    /// Folder for config, host key, pid file and log.
    pub dir: PathBuf,
    pub address: Ipv4Addr,
    pub port: u16,
    /// `HOME` of the sessions (created if missing).
    pub home: PathBuf,
    /// An authorized_keys file readable by the login user.
    pub authorized_keys: PathBuf,
    /// The network namespace to run in (`None`: this process's).
    pub netns: Option<String>,
    /// Logins are allowed only from this client address (`AllowUsers *@ADDRESS`): a host
    /// behind a bastion.
    pub allow_from: Option<Ipv4Addr>,
}

/// A running sshd. Dropping it stops it unless [`SshServer::detach`] was called.
#[derive(Debug)]
pub struct SshServer {
    pub spec: SshdSpec,
    pub pid: u32,
    detached: bool,
}

impl SshdSpec {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }
    pub fn host_key_path(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("sshd.pid")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from((self.address, self.port))
    }

    /// Writes the config and, if missing, the host key.
    pub fn prepare(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        fs::create_dir_all(self.home.join("bin"))?;
        fs::create_dir_all("/run/sshd").or_else(|e| {
            if Path::new("/run/sshd").is_dir() {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        if !self.host_key_path().exists() {
            generate_key(&self.host_key_path(), "lab-host-key")?;
        }
        let home = self.home.display();
        let mut config = format!(
            "ListenAddress {addr}\nPort {port}\nHostKey {key}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPrintMotd no\n\
             MaxStartups 200:30:400\nMaxSessions 64\nLogLevel INFO\n\
             SetEnv HOME={home} PATH={home}/bin:/usr/local/bin:/usr/bin:/bin\n\
             Subsystem sftp internal-sftp\n",
            addr = self.address,
            port = self.port,
            key = self.host_key_path().display(),
            pid = self.pid_path().display(),
            ak = self.authorized_keys.display(),
        );
        if let Some(client) = self.allow_from {
            config.push_str(&format!("AllowUsers *@{client}\n"));
        }
        fs::write(self.config_path(), config)
    }

    /// The host's public key line (`ssh-ed25519 AAAA... comment`).
    pub fn host_public_key(&self) -> io::Result<String> {
        Ok(
            fs::read_to_string(self.host_key_path().with_extension("pub"))?
                .trim()
                .to_string(),
        )
    }

    /// A known_hosts line for this server (`[addr]:port ssh-ed25519 AAAA...`).
    pub fn known_hosts_line(&self) -> io::Result<String> {
        let key = self.host_public_key()?;
        let mut parts = key.split_whitespace();
        let (kind, blob) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let host = if self.port == 22 {
            self.address.to_string()
        } else {
            format!("[{}]:{}", self.address, self.port)
        };
        Ok(format!("{host} {kind} {blob}"))
    }

    /// Starts sshd and waits until it accepts connections.
    pub fn start(&self) -> io::Result<SshServer> {
        require_sshd()?;
        let log = fs::File::create(self.log_path())?;
        let _ = fs::remove_file(self.pid_path());
        let mut command = match &self.netns {
            Some(ns) => crate::netns::command_in(ns, SSHD),
            None => Command::new(SSHD),
        };
        let child = command
            .args(["-D", "-e", "-f"])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let server = SshServer {
            spec: self.clone(),
            pid: child.id(),
            detached: false,
        };
        // The child is reaped by whoever stops it (by PID); do not keep the handle.
        std::mem::forget(child);
        server.wait_listening(Duration::from_secs(10))?;
        Ok(server)
    }
}

impl SshServer {
    /// Keeps sshd running after this value is dropped (the lab stops it later by PID).
    pub fn detach(mut self) -> u32 {
        self.detached = true;
        self.pid
    }

    fn wait_listening(&self, deadline: Duration) -> io::Result<()> {
        let start = Instant::now();
        let address = self.spec.socket_addr();
        let netns = self.spec.netns.clone();
        let listening = || {
            let netns = netns.clone();
            std::thread::spawn(move || {
                if let Some(ns) = &netns {
                    crate::netns::enter(ns)?;
                }
                TcpStream::connect_timeout(&address, Duration::from_millis(200)).map(|_| ())
            })
            .join()
            .is_ok_and(|connected| connected.is_ok())
        };
        loop {
            if listening() {
                return Ok(());
            }
            if !pid_alive(self.pid) || start.elapsed() > deadline {
                let log = fs::read_to_string(self.spec.log_path()).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "sshd on {} did not start: {}",
                    self.spec.socket_addr(),
                    log.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops sshd (SIGTERM, then SIGKILL after 2 s) and reaps it if it is our child.
    pub fn stop(&self) {
        stop_pid(self.pid, Duration::from_secs(2));
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

/// Whether a process exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|rest| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL; reaps the process if it is our child.
pub fn stop_pid(pid: u32, grace: Duration) {
    let Some(pid_t) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = kill_process(pid_t, Signal::TERM);
    let start = Instant::now();
    while pid_alive(pid) && start.elapsed() < grace {
        reap(pid_t);
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid_alive(pid) {
        let _ = kill_process(pid_t, Signal::KILL);
        let start = Instant::now();
        while pid_alive(pid) && start.elapsed() < Duration::from_secs(2) {
            reap(pid_t);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    reap(pid_t);
}

/// Collects the exit status of `pid` if it is our child and has ended (never blocks).
fn reap(pid: Pid) {
    let _ = waitpid(Some(pid), WaitOptions::NOHANG);
}

/// Finds a free port on `address`, starting at `first`, by trying to bind.
pub fn free_port(address: Ipv4Addr, first: u16) -> io::Result<u16> {
    for port in first..first.saturating_add(500) {
        if TcpListener::bind((address, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other(format!(
        "no free port on {address} from {first}"
    )))
}
