//! The SSH transport against real OpenSSH `sshd` processes on loopback: commands, uploads,
//! host key checking (before authentication), deadlines and login failures.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_testbed::sshd::{current_user, free_port, generate_key, SshServer, SshdSpec};
use cluster_upgrade::transport::{
    Connector, Exit, HostKeyPolicy, Identity, Source, SshConnector, SshOptions, SshSession, Target,
    TransportError, Upload,
};
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(20);

/// One sshd with its own folder, user key and known_hosts file; stopped on drop.
struct Lab {
    dir: TempDir,
    spec: SshdSpec,
    _server: SshServer,
    user_key: PathBuf,
    known_hosts: PathBuf,
}

/// Each lab gets its own loopback address, so parallel tests never race for a port.
fn next_address() -> Ipv4Addr {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let pid_part = (std::process::id() % 200) as u8 + 20;
    Ipv4Addr::new(127, 61, pid_part, NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Lab {
    /// An sshd whose host key is trusted by a plain `[addr]:port` known_hosts line.
    fn start() -> Lab {
        Self::start_with(|_| {})
    }

    /// An sshd; `before_start` may add to its config (e.g. another host key).
    fn start_with(before_start: impl Fn(&SshdSpec)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let user_key = dir.path().join("id_ed25519");
        generate_key(&user_key, "transport-test").unwrap();
        let authorized_keys = dir.path().join("authorized_keys");
        fs::copy(user_key.with_extension("pub"), &authorized_keys).unwrap();
        fs::set_permissions(&authorized_keys, fs::Permissions::from_mode(0o644)).unwrap();
        let address = next_address();
        let mut last_error = None;
        // A port can be taken between probing and binding: retry on another one.
        for attempt in 0..5 {
            let port = free_port(
                address,
                20000 + attempt * 97 + (std::process::id() % 1000) as u16,
            )
            .unwrap();
            let spec = SshdSpec {
                dir: dir.path().join("sshd"),
                address,
                port,
                home: dir.path().join("home"),
                authorized_keys: authorized_keys.clone(),
                netns: None,
                allow_from: None,
            };
            spec.prepare().unwrap();
            before_start(&spec);
            match spec.start() {
                Ok(server) => {
                    let known_hosts = dir.path().join("known_hosts");
                    fs::write(&known_hosts, spec.known_hosts_line().unwrap() + "\n").unwrap();
                    return Lab {
                        dir,
                        spec,
                        _server: server,
                        user_key,
                        known_hosts,
                    };
                }
                Err(e) => last_error = Some(e),
            }
        }
        panic!("sshd did not start: {last_error:?}");
    }

    fn target(&self) -> Target {
        Target {
            jumps: Vec::new(),
            become_user: None,
            name: "node-a".parse().unwrap(),
            address: self.spec.address.to_string(),
            port: self.spec.port,
            user: current_user(),
            identity: Identity::File(self.user_key.clone()),
        }
    }

    fn options(&self) -> SshOptions {
        SshOptions {
            connect_timeout: Duration::from_secs(10),
            ..SshOptions::new(&self.known_hosts)
        }
    }

    async fn connect(&self) -> Result<SshSession, TransportError> {
        SshConnector::new(self.options())
            .connect(&self.target())
            .await
    }

    fn log(&self) -> String {
        fs::read_to_string(self.spec.log_path()).unwrap()
    }

    /// Logins sshd accepted so far (one per connection).
    fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    fn home(&self) -> PathBuf {
        self.spec.home.clone()
    }

    /// The host key's fingerprint according to `ssh-keygen -l`.
    fn host_fingerprint(&self) -> String {
        fingerprint_of(&self.spec.host_key_path().with_extension("pub"))
    }
}

fn fingerprint_of(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn keyscan(lab: &Lab, key_type: &str) -> String {
    let out = Command::new("ssh-keyscan")
        .args([
            "-T",
            "5",
            "-t",
            key_type,
            "-p",
            &lab.spec.port.to_string(),
            &lab.spec.address.to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.trim().is_empty(),
        "ssh-keyscan found nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

// ---------------------------------------------------------------- commands

#[tokio::test]
async fn run_captures_stdout_stderr_and_exit_status() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    let out = session
        .run("echo out; echo err >&2; printf 'x\\0y'; exit 3", STEP)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out\nx\0y");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit, Exit::Status(3));
    assert!(!out.success());
    assert!(session.run("true", STEP).await.unwrap().success());
    assert!(!session.is_closed());
    session.close().await.unwrap();
}

#[tokio::test]
async fn one_command_does_not_leak_into_the_next() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    let out = session
        .run("cd /tmp && X=set && export Y=set && echo here", STEP)
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "here\n");
    let out = session
        .run("pwd; echo \"${X:-unset} ${Y:-unset}\"", STEP)
        .await
        .unwrap();
    assert_ne!(out.stdout_text().lines().next(), Some("/tmp"));
    assert!(out.stdout_text().ends_with("unset unset\n"), "{out:?}");
    // A syntax error or an `exit` ends that command only.
    let out = session.run("echo 'unterminated", STEP).await.unwrap();
    assert!(!out.success());
    assert!(!out.stderr.is_empty());
    let out = session.run("exit 7; echo never", STEP).await.unwrap();
    assert_eq!(
        (out.exit.clone(), out.stdout_text()),
        (Exit::Status(7), String::new())
    );
    // Nothing a command reads comes from the next command.
    let out = session.run("cat; echo done", STEP).await.unwrap();
    assert_eq!(out.stdout_text(), "done\n");
    assert_eq!(
        session.run("echo next", STEP).await.unwrap().stdout_text(),
        "next\n"
    );
    assert_eq!(lab.logins(), 1);
}

#[tokio::test]
async fn a_shell_that_ended_or_printed_between_commands_is_not_trusted() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    // A process left behind prints on the shell's stdout after its command returned.
    let out = session
        .run("( sleep 0.2; echo stray ) & echo first", STEP)
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "first\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = session.run("echo second", STEP).await.unwrap();
    assert_eq!(out.stdout_text(), "second\n");
    // The shell dies while idle: the next command gets a new one.
    let out = session
        .run(
            "( sleep 0.2; kill -KILL $$ ) >/dev/null 2>&1 & echo third",
            STEP,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "third\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = session.run("echo fourth", STEP).await.unwrap();
    assert_eq!(
        (out.stdout_text(), out.success()),
        ("fourth\n".to_string(), true)
    );
    assert_eq!(lab.logins(), 1);
}

#[tokio::test]
async fn a_connection_lost_mid_run_is_reported_and_later_calls_fail() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    // Kill the sshd process serving this connection (the parent of the command's shell).
    let error = session
        .run("kill -KILL $PPID; sleep 2", STEP)
        .await
        .unwrap_err();
    match &error {
        TransportError::ConnectionLost { host, command } => {
            assert_eq!(
                (host.as_str(), command.as_str()),
                ("node-a", "kill -KILL $PPID; sleep 2")
            );
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    for _ in 0..100 {
        if session.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(session.is_closed());
    let error = session.run("true", STEP).await.unwrap_err();
    assert!(
        matches!(&error, TransportError::Channel { host, .. } if host == "node-a"),
        "{error:?}"
    );
}

#[tokio::test]
async fn command_killed_by_a_signal_reports_the_signal() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    let out = session
        .run("echo before; kill -KILL $$", STEP)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"before\n");
    assert_eq!(out.exit, Exit::Signal("KILL".into()));
}

#[tokio::test]
async fn output_larger_than_the_channel_window_is_complete() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    let out = session
        .run(
            "head -c 5000000 /dev/zero; head -c 300000 /dev/zero >&2",
            STEP,
        )
        .await
        .unwrap();
    assert_eq!((out.stdout.len(), out.stderr.len()), (5_000_000, 300_000));
    assert!(out.success());
}

#[tokio::test]
async fn many_sequential_and_concurrent_commands_share_one_connection() {
    let lab = Lab::start();
    let session = Arc::new(lab.connect().await.unwrap());
    for i in 0..40 {
        let out = session.run(&format!("echo {i}"), STEP).await.unwrap();
        assert_eq!(out.stdout_text(), format!("{i}\n"));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let session = Arc::clone(&session);
        tasks.spawn(async move { (i, session.run(&format!("sleep 0.05; echo {i}"), STEP).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, out) = joined.unwrap();
        assert_eq!(out.unwrap().stdout_text(), format!("{i}\n"));
    }
    assert_eq!(lab.logins(), 1, "sshd log:\n{}", lab.log());
}

#[tokio::test]
async fn concurrent_channels_are_capped_per_host() {
    let lab = Lab::start();
    let options = SshOptions {
        max_channels: 2,
        ..lab.options()
    };
    let session = Arc::new(
        SshConnector::new(options)
            .connect(&lab.target())
            .await
            .unwrap(),
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let session = Arc::clone(&session);
        tasks.spawn(async move { session.run("sleep 0.4", STEP).await.unwrap() });
    }
    while let Some(joined) = tasks.join_next().await {
        assert!(joined.unwrap().success());
    }
    // Four 0.4 s commands, two at a time: at least two rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn command_timeout_is_an_error_and_the_connection_stays_usable() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    let started = Instant::now();
    // A duration unique to this lab, so the process can be found (and only it).
    let sleep = format!("sleep 37.{}", lab.spec.port);
    let error = session
        .run(&sleep, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match &error {
        TransportError::CommandTimeout {
            host,
            command,
            after,
        } => {
            assert_eq!(
                (host.as_str(), command.as_str(), *after),
                ("node-a", sleep.as_str(), Duration::from_millis(300))
            );
        }
        other => panic!("expected CommandTimeout, got {other:?}"),
    }
    assert_eq!(
        session
            .run("echo still-here", STEP)
            .await
            .unwrap()
            .stdout_text(),
        "still-here\n"
    );
    // The command was stopped: by the channel's signal request, or, for root logins, which
    // sshd does not pass it to ("session signalling requires privilege separation"), from
    // another shell by its PID.
    let mut left = String::new();
    for _ in 0..20 {
        let pattern = sleep.replace('.', "[.]");
        left = session
            .run(&format!("pgrep -f '{pattern}' || true"), STEP)
            .await
            .unwrap()
            .stdout_text();
        if left.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        left.trim().is_empty(),
        "{sleep} still running after its timeout (PIDs {left}); sshd log:\n{}",
        lab.log()
    );
    // Leave nothing behind: stop exactly the PIDs found.
    for pid in left.split_whitespace() {
        session.run(&format!("kill {pid}"), STEP).await.unwrap();
    }
}

/// Regression: without TCP_NODELAY on our own socket every command after the first waited
/// ~40 ms (Nagle), and without quick ACKs the first command after login did (delayed ACK).
#[tokio::test]
async fn commands_do_not_stall_on_nagle_or_delayed_ack() {
    let lab = Lab::start();
    let mut first_commands = Vec::new();
    let mut later_commands = Vec::new();
    for _ in 0..3 {
        let session = lab.connect().await.unwrap();
        for i in 0..10 {
            let started = Instant::now();
            session.run("true", STEP).await.unwrap();
            let took = started.elapsed();
            if i == 0 {
                first_commands.push(took)
            } else {
                later_commands.push(took)
            }
        }
        session.close().await.unwrap();
    }
    later_commands.sort();
    // Minimum and median, so that a loaded test machine does not make this flaky; a stall
    // adds 40 ms to a command that otherwise takes a few.
    let first = *first_commands.iter().min().unwrap();
    let median = later_commands[later_commands.len() / 2];
    assert!(
        first < Duration::from_millis(35),
        "first command after login took {first:?}"
    );
    assert!(
        median < Duration::from_millis(35),
        "median command took {median:?}"
    );
}

// ---------------------------------------------------------------- uploads

#[tokio::test]
async fn upload_sets_the_mode_and_replaces_atomically() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    let remote = lab.home().join("bin/tool");
    let remote_path = remote.to_str().unwrap().to_string();

    let first = Upload {
        source: Source::Bytes(b"#!/bin/sh\necho one\n".to_vec()),
        remote_path: remote_path.clone(),
        mode: 0o755,
    };
    session.upload(&first).await.unwrap();
    assert_eq!(fs::read(&remote).unwrap(), b"#!/bin/sh\necho one\n");
    assert_eq!(
        fs::metadata(&remote).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        session.run("tool", STEP).await.unwrap().stdout_text(),
        "one\n"
    );
    let old_inode = fs::metadata(&remote).unwrap().ino();

    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let local = lab.dir.path().join("local-binary");
    fs::write(&local, &big).unwrap();
    let second = Upload {
        source: Source::File(local),
        remote_path: remote_path.clone(),
        mode: 0o700,
    };
    session.upload(&second).await.unwrap();
    assert_eq!(fs::read(&remote).unwrap(), big);
    assert_eq!(
        fs::metadata(&remote).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    // A new inode: the file was renamed into place, never rewritten where a reader could see it half done.
    assert_ne!(fs::metadata(&remote).unwrap().ino(), old_inode);
    let leftovers: Vec<_> = fs::read_dir(lab.home().join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("tool")]);
    assert_eq!(lab.logins(), 1);
}

#[tokio::test]
async fn upload_into_a_missing_folder_fails_with_the_path() {
    let lab = Lab::start();
    let session = lab.connect().await.unwrap();
    let remote_path = lab
        .home()
        .join("no/such/dir/tool")
        .to_str()
        .unwrap()
        .to_string();
    let error = session
        .upload(&Upload {
            source: Source::Bytes(b"x".to_vec()),
            remote_path,
            mode: 0o755,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TransportError::Sftp { operation: "create", path, .. } if path.contains("no/such/dir")),
        "{error:?}"
    );
    assert!(session.run("true", STEP).await.unwrap().success());
}

// ---------------------------------------------------------------- host keys

#[tokio::test]
async fn unknown_host_key_is_refused_before_authentication() {
    let lab = Lab::start();
    fs::write(&lab.known_hosts, "").unwrap();
    let error = lab.connect().await.unwrap_err();
    match &error {
        TransportError::HostKeyUnknown {
            host,
            fingerprint,
            known_hosts,
            hint,
        } => {
            assert_eq!(host, "node-a");
            assert_eq!(fingerprint, &lab.host_fingerprint());
            assert_eq!(known_hosts, &lab.known_hosts.display().to_string());
            let keyscan = format!("ssh-keyscan -p {} {}", lab.spec.port, lab.spec.address);
            assert!(hint.contains(&keyscan), "{hint}");
        }
        other => panic!("expected HostKeyUnknown, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("node-a") && message.contains(&lab.host_fingerprint()),
        "{message}"
    );
    assert!(!lab.log().contains("Accepted"), "sshd log:\n{}", lab.log());
    assert_eq!(
        fs::read_to_string(&lab.known_hosts).unwrap(),
        "",
        "strict mode must not write"
    );
}

#[tokio::test]
async fn missing_known_hosts_file_means_unknown() {
    let lab = Lab::start();
    fs::remove_file(&lab.known_hosts).unwrap();
    assert!(matches!(
        lab.connect().await.unwrap_err(),
        TransportError::HostKeyUnknown { .. }
    ));
}

#[tokio::test]
async fn changed_host_key_is_refused_with_the_fingerprint_and_line() {
    let lab = Lab::start();
    let other = lab.dir.path().join("other_host_key");
    generate_key(&other, "impostor").unwrap();
    let blob = fs::read_to_string(other.with_extension("pub")).unwrap();
    let name = format!("[{}]:{}", lab.spec.address, lab.spec.port);
    fs::write(&lab.known_hosts, format!("# fleet\n{name} {}", blob)).unwrap();
    let error = lab.connect().await.unwrap_err();
    match &error {
        TransportError::HostKeyChanged {
            host,
            fingerprint,
            known_hosts,
            line,
            ..
        } => {
            assert_eq!((host.as_str(), *line), ("node-a", 2));
            assert_eq!(fingerprint, &lab.host_fingerprint());
            assert_eq!(known_hosts, &lab.known_hosts);
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert!(!lab.log().contains("Accepted"));
}

#[tokio::test]
async fn changed_host_key_is_refused_even_with_accept_new() {
    let lab = Lab::start();
    let other = lab.dir.path().join("other_host_key");
    generate_key(&other, "impostor").unwrap();
    let name = format!("[{}]:{}", lab.spec.address, lab.spec.port);
    let before = format!(
        "{name} {}",
        fs::read_to_string(other.with_extension("pub")).unwrap()
    );
    fs::write(&lab.known_hosts, &before).unwrap();
    let options = SshOptions {
        policy: HostKeyPolicy::AcceptNew,
        ..lab.options()
    };
    let error = SshConnector::new(options)
        .connect(&lab.target())
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::HostKeyChanged { line: 1, .. }),
        "{error:?}"
    );
    assert_eq!(fs::read_to_string(&lab.known_hosts).unwrap(), before);
}

#[tokio::test]
async fn revoked_host_key_is_refused_even_when_another_line_trusts_it() {
    let lab = Lab::start();
    let host_key = lab.spec.host_public_key().unwrap();
    let trusted = lab.spec.known_hosts_line().unwrap();
    fs::write(
        &lab.known_hosts,
        format!("{trusted}\n@revoked * {host_key}\n"),
    )
    .unwrap();
    let error = lab.connect().await.unwrap_err();
    match &error {
        TransportError::HostKeyRevoked {
            fingerprint, line, ..
        } => {
            assert_eq!(
                (fingerprint.as_str(), *line),
                (lab.host_fingerprint().as_str(), 2)
            );
        }
        other => panic!("expected HostKeyRevoked, got {other:?}"),
    }
    assert!(!lab.log().contains("Accepted"));
}

#[tokio::test]
async fn hashed_entry_written_by_ssh_keygen_is_trusted() {
    let lab = Lab::start();
    fs::write(&lab.known_hosts, keyscan(&lab, "ed25519")).unwrap();
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&lab.known_hosts)
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = fs::read_to_string(&lab.known_hosts).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains(&lab.spec.address.to_string()),
        "{text}"
    );
    let session = lab.connect().await.unwrap();
    assert!(session.run("true", STEP).await.unwrap().success());
}

#[tokio::test]
async fn wildcard_entry_with_tabs_is_trusted() {
    let lab = Lab::start();
    let host_key = lab.spec.host_public_key().unwrap();
    let (kind, blob) = host_key.split_once(' ').unwrap();
    let blob = blob.split_whitespace().next().unwrap();
    fs::write(
        &lab.known_hosts,
        format!(
            "other.example,[127.61.*]:{}\t{kind}\t{blob}\n",
            lab.spec.port
        ),
    )
    .unwrap();
    assert!(lab
        .connect()
        .await
        .unwrap()
        .run("true", STEP)
        .await
        .unwrap()
        .success());
    // A negated pattern excludes the host again.
    let address = lab.spec.address;
    fs::write(
        &lab.known_hosts,
        format!(
            "[127.61.*]:{port},![{address}]:{port} {kind} {blob}\n",
            port = lab.spec.port
        ),
    )
    .unwrap();
    assert!(matches!(
        lab.connect().await.unwrap_err(),
        TransportError::HostKeyUnknown { .. }
    ));
}

#[tokio::test]
async fn accept_new_appends_the_key_and_later_connections_trust_it() {
    let lab = Lab::start();
    fs::write(&lab.known_hosts, "# fleet keys").unwrap();
    let options = SshOptions {
        policy: HostKeyPolicy::AcceptNew,
        ..lab.options()
    };
    let session = SshConnector::new(options)
        .connect(&lab.target())
        .await
        .unwrap();
    assert!(session.run("true", STEP).await.unwrap().success());
    let text = fs::read_to_string(&lab.known_hosts).unwrap();
    assert_eq!(
        text,
        format!("# fleet keys\n{}\n", lab.spec.known_hosts_line().unwrap())
    );
    // Strict mode now trusts it.
    assert!(lab
        .connect()
        .await
        .unwrap()
        .run("true", STEP)
        .await
        .unwrap()
        .success());
}

#[tokio::test]
async fn several_known_hosts_files_are_read_as_one_and_new_keys_go_to_the_first() {
    let lab = Lab::start();
    let team = lab.dir.path().join("team_known_hosts");
    let mine = &lab.known_hosts;
    let trusted = lab.spec.known_hosts_line().unwrap();
    let with_team = |policy| SshOptions {
        more_known_hosts: vec![team.clone()],
        policy,
        ..lab.options()
    };
    let connect = async |options| SshConnector::new(options).connect(&lab.target()).await;

    // Only the second file lists the host: trusted, and nothing is written.
    fs::write(mine, "# mine\n").unwrap();
    fs::write(&team, format!("{trusted}\n")).unwrap();
    let session = connect(with_team(HostKeyPolicy::Strict)).await.unwrap();
    assert!(session.run("true", STEP).await.unwrap().success());
    assert_eq!(fs::read_to_string(mine).unwrap(), "# mine\n");

    // The second file revokes what the first trusts: refused, naming the second file's line.
    let host_key = lab.spec.host_public_key().unwrap();
    fs::write(mine, format!("{trusted}\n")).unwrap();
    fs::write(&team, format!("# team\n@revoked * {host_key}\n")).unwrap();
    match connect(with_team(HostKeyPolicy::Strict)).await.unwrap_err() {
        TransportError::HostKeyRevoked {
            known_hosts, line, ..
        } => assert_eq!((known_hosts, line), (team.clone(), 2)),
        other => panic!("expected HostKeyRevoked, got {other:?}"),
    }

    // Listed in neither: the message names both files; accept-new writes to the first only.
    fs::write(mine, "").unwrap();
    fs::write(&team, "# team\n").unwrap();
    let error = connect(with_team(HostKeyPolicy::Strict))
        .await
        .unwrap_err()
        .to_string();
    let both = format!("not in {}, {};", mine.display(), team.display());
    assert!(error.contains(&both), "{error}");
    let session = connect(with_team(HostKeyPolicy::AcceptNew)).await.unwrap();
    assert!(session.run("true", STEP).await.unwrap().success());
    assert_eq!(fs::read_to_string(mine).unwrap(), format!("{trusted}\n"));
    assert_eq!(fs::read_to_string(&team).unwrap(), "# team\n");
}

#[tokio::test]
async fn only_the_key_types_known_for_the_host_are_negotiated() {
    // The server has ed25519 and ECDSA keys; known_hosts lists only the ECDSA one (russh would
    // otherwise pick ed25519 and call the host changed).
    let lab = Lab::start_with(|spec| {
        let ecdsa = spec.dir.join("ssh_host_ecdsa_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
            .arg(&ecdsa)
            .status()
            .unwrap();
        assert!(status.success());
        let mut config = fs::read_to_string(spec.config_path()).unwrap();
        config.push_str(&format!("HostKey {}\n", ecdsa.display()));
        fs::write(spec.config_path(), config).unwrap();
    });
    let scanned = keyscan(&lab, "ecdsa");
    assert!(scanned.contains("ecdsa-sha2-nistp256"), "{scanned}");
    fs::write(&lab.known_hosts, &scanned).unwrap();
    assert!(lab
        .connect()
        .await
        .unwrap()
        .run("true", STEP)
        .await
        .unwrap()
        .success());
}

// ---------------------------------------------------------------- deadlines and login

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let address = next_address();
    let port = free_port(address, 24000).unwrap();
    let target = Target {
        jumps: Vec::new(),
        become_user: None,
        name: "node-gone".parse().unwrap(),
        address: address.to_string(),
        port,
        user: current_user(),
        identity: Identity::Agent,
    };
    let dir = tempfile::tempdir().unwrap();
    let error = SshConnector::new(SshOptions::new(dir.path().join("known_hosts")))
        .connect(&target)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TransportError::Connect { host, .. } if host == "node-gone"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_listener_that_never_speaks_hits_the_connect_deadline() {
    let address = next_address();
    // Accepted by the kernel's backlog, but no SSH banner ever comes.
    let listener = std::net::TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = Target {
        jumps: Vec::new(),
        become_user: None,
        name: "node-mute".parse().unwrap(),
        address: address.to_string(),
        port,
        user: current_user(),
        identity: Identity::Agent,
    };
    let dir = tempfile::tempdir().unwrap();
    let options = SshOptions {
        connect_timeout: Duration::from_millis(400),
        ..SshOptions::new(dir.path().join("kh"))
    };
    let started = Instant::now();
    let error = SshConnector::new(options)
        .connect(&target)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match error {
        TransportError::Timeout {
            host,
            address: dialled,
            after,
        } => {
            assert_eq!(
                (host.as_str(), after),
                ("node-mute", Duration::from_millis(400))
            );
            assert_eq!(dialled, format!("{address}:{port}"));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    drop(listener);
}

#[tokio::test]
async fn wrong_key_is_an_auth_error_naming_user_and_host() {
    let lab = Lab::start();
    let wrong = lab.dir.path().join("wrong_key");
    generate_key(&wrong, "stranger").unwrap();
    let target = Target {
        jumps: Vec::new(),
        become_user: None,
        identity: Identity::File(wrong.clone()),
        ..lab.target()
    };
    let error = SshConnector::new(lab.options())
        .connect(&target)
        .await
        .unwrap_err();
    match &error {
        TransportError::Auth { host, user, method } => {
            assert_eq!(
                (host.as_str(), user.as_str()),
                ("node-a", current_user().as_str())
            );
            assert!(method.contains(wrong.to_str().unwrap()), "{method}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(!lab.log().contains("Accepted"));
}

#[tokio::test]
async fn unreadable_key_file_is_a_key_file_error() {
    let lab = Lab::start();
    let missing = lab.dir.path().join("no_such_key");
    let target = Target {
        jumps: Vec::new(),
        become_user: None,
        identity: Identity::File(missing.clone()),
        ..lab.target()
    };
    let error = SshConnector::new(lab.options())
        .connect(&target)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TransportError::KeyFile { path, .. } if *path == missing),
        "{error:?}"
    );
}

#[tokio::test]
async fn ssh_agent_identities_log_in() {
    let lab = Lab::start();
    let socket = lab.dir.path().join("agent.sock");
    let agent = crate::ssh_keys_e2e::Agent::start(&socket);
    let added = Command::new("ssh-add")
        .arg(&lab.user_key)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // Only this test of this binary reads SSH_AUTH_SOCK, so changing the process environment is safe here.
    std::env::set_var("SSH_AUTH_SOCK", &socket);
    let target = Target {
        jumps: Vec::new(),
        become_user: None,
        identity: Identity::Agent,
        ..lab.target()
    };
    let result = SshConnector::new(lab.options()).connect(&target).await;
    drop(agent);
    assert!(result.unwrap().run("true", STEP).await.unwrap().success());
}

#[tokio::test]
async fn a_host_certificate_from_a_trusted_authority_logs_in_and_one_from_another_is_refused() {
    let lab = Lab::start_with(|spec| {
        let ca = spec.dir.join("host_ca");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&ca)
            .status()
            .unwrap();
        assert!(made.success());
        let signed = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca)
            .args([
                "-h",
                "-I",
                "lab-host",
                "-n",
                &spec.address.to_string(),
                "-V",
                "-5m:+1h",
            ])
            .arg(spec.host_key_path().with_extension("pub"))
            .status()
            .unwrap();
        assert!(signed.success());
        let cert = spec.dir.join("ssh_host_ed25519_key-cert.pub");
        let mut config = fs::read_to_string(spec.config_path()).unwrap();
        config.push_str(&format!("HostCertificate {}\n", cert.display()));
        fs::write(spec.config_path(), config).unwrap();
    });
    // Only the authority is known: no line for the host's own key.
    let ca = fs::read_to_string(lab.spec.dir.join("host_ca.pub")).unwrap();
    let pattern = format!("[{}]:{}", lab.spec.address, lab.spec.port);
    fs::write(
        &lab.known_hosts,
        format!("@cert-authority {pattern} {}", ca.trim()),
    )
    .unwrap();
    let session = lab.connect().await.unwrap();
    assert!(session.run("true", STEP).await.unwrap().success());

    // Another authority: refused before authentication, naming the signer.
    let other = lab.dir.path().join("other_ca");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(made.success());
    let other = fs::read_to_string(other.with_extension("pub")).unwrap();
    fs::write(
        &lab.known_hosts,
        format!("@cert-authority {pattern} {}", other.trim()),
    )
    .unwrap();
    let error = lab.connect().await.unwrap_err();
    assert!(
        matches!(&error, TransportError::HostCertificate { why, .. } if why.contains("which no @cert-authority line")),
        "{error:?}"
    );
}
