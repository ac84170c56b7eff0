//! Commands on a long-lived `/bin/sh`: one channel runs many commands, one at a time.
//!
//! A channel per command makes sshd fork a session and start the login shell every time (about
//! 2-3 ms of the host's CPU, most of a trivial step). Here the shell starts once per channel;
//! each command runs in a subshell (`( eval '…' )`, so `cd`, variables, `exit` and syntax
//! errors stay inside it) with stdin from /dev/null, then the shell prints a marker with a
//! random nonce and the exit status on stdout, and the nonce on stderr. The output before the
//! markers is the command's. The subshell's PID travels the same way, as a marker on stderr
//! that is taken out of the output, so that a command that timed out can be stopped from
//! another shell. See docs/adr/0006-persistent-shell.md.

use crate::inventory::HostName;
use std::time::Duration;

use russh::client::{Handle, Msg};
use russh::{Channel, ChannelMsg, Sig};
use tokio::time::{timeout_at, Instant};

use super::host_key::HostKeyCheck;
use crate::transport::command::{CommandOutput, Exit};
use crate::transport::error::TransportError;
use crate::transport::quote::quote;

/// Sets up the shell: on SIGTERM (sent when a command times out) it stops the running command
/// and that command's children, not itself or anything else in its process group (a daemon
/// that an earlier step started may be there).
fn prelude() -> String {
    format!("trap '{}' TERM\n", stop_command("\"$cu_p\""))
}

/// Where a shell starts: the connection, the host's name (for messages) and the user to become.
#[derive(Clone, Copy)]
pub(crate) struct ShellHost<'a> {
    pub handle: &'a Handle<HostKeyCheck>,
    pub host: &'a HostName,
    pub become_user: Option<&'a str>,
}

/// One `/bin/sh` on its own channel.
pub(crate) struct Shell {
    channel: Channel<Msg>,
}

/// How a command on a shell ended: the shell can run the next one, or it is gone, or the
/// deadline came first (the shell was sent SIGTERM and closed; `pid` is the command's subshell,
/// when its marker had arrived).
pub(crate) enum Ran {
    Reusable(CommandOutput),
    ShellGone(CommandOutput),
    TimedOut { pid: Option<u32> },
}

/// The command that starts a shell: `/bin/sh`, or `/bin/sh` as `become_user` through sudo,
/// which never prompts (`-n`) and starts no login shell (the environment is sudo's, `env_reset`).
pub(crate) fn shell_command(
    host: &HostName,
    become_user: Option<&str>,
) -> Result<String, TransportError> {
    match become_user {
        None => Ok("exec /bin/sh".to_string()),
        Some(user) => {
            let user = quote(user).map_err(|source| TransportError::Quote {
                host: host.clone(),
                source,
            })?;
            Ok(format!("exec sudo -n -u {user} -- /bin/sh"))
        }
    }
}

/// The longest first command sent in the exec request ([`first_command_shell`]); longer ones
/// go over the channel. Far below Linux's limit for one argument (128 KiB), which the login
/// shell's `-c` and `/bin/sh -c` each take it as, and sshd's packet limit.
const FIRST_COMMAND_MAX: usize = 16 * 1024;

/// The exec request that starts a shell already running `script` (a command's [`script`]):
/// `/bin/sh -c` runs the prelude and the script, then becomes the `/bin/sh` that reads the
/// next commands from the channel (the prelude sent on the channel is the first thing it
/// reads: `exec` drops the trap). `None`: the script goes over the channel, as with
/// `become_user` (sudo would log the whole script, and a sudoers rule may allow `/bin/sh`
/// without arguments only) or a script longer than [`FIRST_COMMAND_MAX`].
pub(crate) fn first_command_shell(
    become_user: Option<&str>,
    script: &str,
) -> Option<Result<String, crate::transport::quote::QuoteError>> {
    if become_user.is_some() || script.len() > FIRST_COMMAND_MAX {
        return None;
    }
    let program = format!("{}{script}exec /bin/sh\n", prelude());
    Some(quote(&program).map(|quoted| format!("exec /bin/sh -c {quoted}")))
}

fn quote_command(host: &HostName, command: &str) -> Result<String, TransportError> {
    quote(command).map_err(|source| TransportError::Quote {
        host: host.clone(),
        source,
    })
}

/// What stops a command that timed out, run from another shell: the signal request of the
/// channel does not reach root logins (sshd: "session signalling requires privilege
/// separation"). The shell's trap runs the same: the command's subshell and its children.
pub(crate) fn stop_command(pid: impl std::fmt::Display) -> String {
    format!("pkill -TERM -P {pid} 2>/dev/null; kill -TERM {pid} 2>/dev/null; true")
}

impl Shell {
    /// Opens a channel and starts `/bin/sh` reading commands from it, as the login or, with
    /// `become_user`, as that user through `sudo -n` (one sudo per shell, not per command).
    pub(crate) async fn start(
        on: &ShellHost<'_>,
        deadline: Instant,
        timed_out: impl Fn() -> TransportError,
    ) -> Result<Shell, TransportError> {
        let exec = shell_command(on.host, on.become_user)?;
        Self::open(on, &exec, deadline, timed_out).await
    }

    /// Starts a shell and runs `command` as its first command. Without `become_user`, and when
    /// the command is short enough, the command travels in the exec request itself
    /// ([`first_command_shell`]): OpenSSH's sshd opens a session channel with no window and
    /// grants one only once the exec request is handled, so data sent on the channel (the
    /// command) would wait a round trip for it; the exec request carries it at once.
    pub(crate) async fn start_running(
        on: &ShellHost<'_>,
        command: &str,
        deadline: Instant,
        timed_out: impl Fn() -> TransportError,
    ) -> Result<(Shell, Ran), TransportError> {
        let host = on.host;
        let quoted = quote_command(host, command)?;
        let nonce = nonce();
        let script = script(&quoted, &nonce);
        let Some(exec) = first_command_shell(on.become_user, &script) else {
            let mut shell = Self::start(on, deadline, timed_out).await?;
            let ran = shell.run(host, command, deadline).await?;
            return Ok((shell, ran));
        };
        let exec = exec.map_err(|source| TransportError::Quote {
            host: host.clone(),
            source,
        })?;
        let mut shell = Self::open(on, &exec, deadline, timed_out).await?;
        let ran = shell.collect(host, (command, &nonce), deadline).await?;
        Ok((shell, ran))
    }

    /// Opens a session channel, execs `exec` on it and sends the prelude (which the shell that
    /// reads the channel's data runs first).
    async fn open(
        on: &ShellHost<'_>,
        exec: &str,
        deadline: Instant,
        timed_out: impl Fn() -> TransportError,
    ) -> Result<Shell, TransportError> {
        let channel_error = channel_error(on.host);
        let channel = timeout_at(deadline, on.handle.channel_open_session())
            .await
            .map_err(|_| timed_out())?
            .map_err(channel_error)?;
        channel.exec(true, exec).await.map_err(channel_error)?;
        channel
            .data(prelude().as_bytes())
            .await
            .map_err(channel_error)?;
        Ok(Shell { channel })
    }

    /// Runs `command` and collects its output until both markers arrived. On timeout the shell
    /// is sent SIGTERM (its trap stops the command) and closed.
    pub(crate) async fn run(
        &mut self,
        host: &HostName,
        command: &str,
        deadline: Instant,
    ) -> Result<Ran, TransportError> {
        let quoted = quote_command(host, command)?;
        let nonce = nonce();
        self.channel
            .data(script(&quoted, &nonce).as_bytes())
            .await
            .map_err(channel_error(host))?;
        self.collect(host, (command, &nonce), deadline).await
    }

    /// Collects the output of `command`, sent already tagged with `nonce`, until both markers
    /// arrived, or the shell ended, or the deadline came (then the shell is sent SIGTERM and
    /// closed).
    async fn collect(
        &mut self,
        host: &HostName,
        (command, nonce): (&str, &str),
        deadline: Instant,
    ) -> Result<Ran, TransportError> {
        let mut collected = Collected::new(nonce);
        loop {
            if let Some(output) = collected.finished() {
                return Ok(Ran::Reusable(output));
            }
            // `wait` only receives from a queue, so dropping it at the deadline loses nothing.
            let Ok(message) = timeout_at(deadline, self.channel.wait()).await else {
                // sshd >= 7.9 delivers the signal, except for root logins (it then logs
                // "session_signal_req"): the caller then stops the command by its PID.
                let _ = self.channel.signal(Sig::TERM).await;
                let _ = self.channel.close().await;
                return Ok(Ran::TimedOut {
                    pid: collected.pid.found,
                });
            };
            match message {
                Some(ChannelMsg::Data { data }) => collected.stdout(&data),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => collected.stderr(&data),
                Some(ChannelMsg::Failure) => {
                    let _ = self.channel.close().await;
                    return Err(TransportError::Refused {
                        host: host.clone(),
                        request: "exec",
                    });
                }
                // The shell itself ended (the command killed it, or exec'd over it): report
                // how, with the output so far; this shell is not used again.
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    collected.output.exit = Exit::Status(exit_status as i32)
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    collected.output.exit = Exit::Signal(signal_text(&signal_name))
                }
                Some(ChannelMsg::Close) => return Ok(Ran::ShellGone(collected.gone())),
                // The connection ended under the command: whether it ran is unknown.
                None => {
                    return Err(TransportError::ConnectionLost {
                        host: host.clone(),
                        command: command.to_string(),
                    })
                }
                Some(_) => {}
            }
        }
    }

    /// Whether an idle shell can take a command: it did not end while idle. Output that
    /// arrived between commands (a process an earlier command left running) is dropped here, so
    /// that it is not taken for the next command's.
    pub(crate) async fn still_usable(&mut self) -> bool {
        loop {
            match tokio::time::timeout(Duration::ZERO, self.channel.wait()).await {
                Err(_) => return true,
                Ok(Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. })) => {
                    tracing::debug!(bytes = data.len(), "output between commands dropped")
                }
                Ok(Some(
                    ChannelMsg::Eof
                    | ChannelMsg::Close
                    | ChannelMsg::ExitStatus { .. }
                    | ChannelMsg::ExitSignal { .. },
                ))
                | Ok(None) => return false,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Closes the channel; the shell reads end-of-file and exits.
    pub(crate) async fn close(self) {
        let _ = self.channel.eof().await;
        let _ = self.channel.close().await;
    }
}

/// The signal's name without `SIG`, as the server sent it.
fn signal_text(signal: &Sig) -> String {
    let name = match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    };
    name.to_string()
}

fn channel_error(host: &HostName) -> impl Fn(russh::Error) -> TransportError + Copy + '_ {
    move |source| TransportError::Channel {
        host: host.clone(),
        source: Box::new(source),
    }
}

/// Finds the subshell's PID marker (`\n@@<nonce> pid <N>\n`) anywhere in stderr and takes it
/// out: the shell writes it with one `printf`, so its bytes arrive together, between the
/// command's own writes, and removing exactly them gives back the command's output.
struct PidMarker {
    marker: String,
    /// Where to search from next time (what came before was searched already).
    from: usize,
    found: Option<u32>,
}

impl PidMarker {
    fn new(nonce: &str) -> PidMarker {
        PidMarker {
            marker: format!("\n@@{nonce} pid "),
            from: 0,
            found: None,
        }
    }

    fn take(&mut self, buffer: &mut Vec<u8>) {
        if self.found.is_some() {
            return;
        }
        let marker = self.marker.as_bytes();
        let Some(at) = find_first(&buffer[self.from..], marker).map(|i| i + self.from) else {
            self.from = buffer.len().saturating_sub(marker.len());
            return;
        };
        let digits = at + marker.len();
        let Some(end) = buffer[digits..].iter().position(|&b| b == b'\n') else {
            self.from = at;
            return;
        };
        self.found = std::str::from_utf8(&buffer[digits..digits + end])
            .ok()
            .and_then(|text| text.parse().ok());
        buffer.drain(at..=digits + end);
    }
}

fn find_first(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// If `buffer` ends with `marker` + status + `\n`, removes them and returns the status.
fn take_status(buffer: &mut Vec<u8>, marker: &str) -> Option<i32> {
    if buffer.last() != Some(&b'\n') {
        return None;
    }
    let window = buffer.len().saturating_sub(marker.len() + 16);
    let at = find_last(&buffer[window..], marker.as_bytes())? + window;
    let code = std::str::from_utf8(&buffer[at + marker.len()..buffer.len() - 1])
        .ok()?
        .parse()
        .ok()?;
    buffer.truncate(at);
    Some(code)
}

/// If `buffer` ends with `marker`, removes it.
fn take_marker(buffer: &mut Vec<u8>, marker: &str) -> bool {
    if buffer.ends_with(marker.as_bytes()) {
        buffer.truncate(buffer.len() - marker.len());
        true
    } else {
        false
    }
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// 128 random bits as hex: no command's output contains it by chance.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos(),
        );
        hasher.finish()
    };
    format!("cu{:016x}{:016x}", random(1), random(2))
}

/// The script that runs one command in the shell: the command in a subshell with no stdin,
/// its PID on stderr, then its status on stdout and an end marker on stderr, both tagged with
/// `nonce` so that no output of the command can fake them.
fn script(quoted: &str, nonce: &str) -> String {
    format!(
        "( eval {quoted} ) </dev/null & cu_p=$!\nprintf '\\n@@%s pid %s\\n' {nonce} \"$cu_p\" >&2; \
         wait \"$cu_p\"; cu_r=$?; \
         printf '\\n@@%s %s\\n' {nonce} \"$cu_r\"; printf '\\n@@%s\\n' {nonce} >&2\n"
    )
}

/// What the shell said so far about one command, with its markers taken out.
struct Collected {
    output: CommandOutput,
    pid: PidMarker,
    stdout_marker: String,
    stderr_marker: String,
    status: Option<i32>,
    stderr_done: bool,
}

impl Collected {
    fn new(nonce: &str) -> Collected {
        Collected {
            output: CommandOutput {
                stdout: Vec::new(),
                stderr: Vec::new(),
                exit: Exit::Unknown,
            },
            pid: PidMarker::new(nonce),
            stdout_marker: format!("\n@@{nonce} "),
            stderr_marker: format!("\n@@{nonce}\n"),
            status: None,
            stderr_done: false,
        }
    }

    fn stdout(&mut self, data: &[u8]) {
        self.output.stdout.extend_from_slice(data);
        if self.status.is_none() {
            self.status = take_status(&mut self.output.stdout, &self.stdout_marker);
        }
    }

    fn stderr(&mut self, data: &[u8]) {
        self.output.stderr.extend_from_slice(data);
        self.pid.take(&mut self.output.stderr);
        if !self.stderr_done {
            self.stderr_done = take_marker(&mut self.output.stderr, &self.stderr_marker);
        }
    }

    /// The command's output once both markers arrived (the shell can take the next command).
    fn finished(&mut self) -> Option<CommandOutput> {
        let code = self.status.filter(|_| self.stderr_done)?;
        let mut output = std::mem::replace(&mut self.output, Collected::new("").output);
        output.exit = Exit::Status(code);
        Some(output)
    }

    /// The output so far of a shell that ended.
    fn gone(mut self) -> CommandOutput {
        if let Some(code) = self.status {
            self.output.exit = Exit::Status(code);
        }
        self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exec request of a shell with its first command, run by a real `sh -c` as sshd
    /// would (the login shell's `-c`), with the channel as stdin: the first command runs with
    /// its markers, then the shell reads the prelude and the next command from stdin, as a
    /// shell started without a first command does.
    #[test]
    fn a_shell_started_with_its_first_command_runs_it_then_reads_the_next_ones() {
        use std::io::Write;
        let first = script(&quote("cd /; echo first in $(pwd); exit 3").unwrap(), "cuA");
        let exec = first_command_shell(None, &first).unwrap().unwrap();
        assert!(exec.starts_with("exec /bin/sh -c "), "{exec}");
        let mut shell = std::process::Command::new("sh")
            .args(["-c", &exec])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = shell.stdin.take().unwrap();
        let second = script(
            &quote("echo second in $(pwd); read x; echo read $?").unwrap(),
            "cuB",
        );
        stdin.write_all(prelude().as_bytes()).unwrap();
        stdin.write_all(second.as_bytes()).unwrap();
        drop(stdin);
        let out = shell.wait_with_output().unwrap();
        let mut stdout = out.stdout.clone();
        let mut stderr = out.stderr.clone();
        let here = std::env::current_dir().unwrap();
        let second_text = format!("second in {}\nread 1\n", here.display());
        for (nonce, text) in [("cuB", second_text.as_str()), ("cuA", "first in /\n")] {
            // Both commands' markers, the later one last: cut them off in turn. The first
            // command's `cd` and `exit` stayed in its subshell; the second one's stdin is
            // /dev/null, so `read` fails.
            let status = take_status(&mut stdout, &format!("\n@@{nonce} "));
            assert_eq!(status, Some(if nonce == "cuA" { 3 } else { 0 }), "{nonce}");
            assert!(
                stdout.ends_with(text.as_bytes()),
                "{}",
                String::from_utf8_lossy(&stdout)
            );
            stdout.truncate(stdout.len() - text.len());
            assert!(
                take_marker(&mut stderr, &format!("\n@@{nonce}\n")),
                "{nonce}"
            );
            let mut pid = PidMarker::new(nonce);
            pid.take(&mut stderr);
            assert!(pid.found.is_some(), "{nonce}: its PID marker");
        }
        assert!(
            stdout.is_empty() && stderr.is_empty(),
            "{stdout:?} {stderr:?}"
        );
    }

    #[test]
    fn the_first_command_goes_over_the_channel_with_sudo_or_when_long() {
        let short = script("true", "cuA");
        assert!(first_command_shell(None, &short).is_some());
        assert!(first_command_shell(Some("ipfs"), &short).is_none());
        let long = script(&"x".repeat(FIRST_COMMAND_MAX), "cuA");
        assert!(first_command_shell(None, &long).is_none());
    }

    #[test]
    fn the_status_marker_is_cut_from_stdout() {
        let mut out = b"hello\nno newline\n@@cuX 3\n".to_vec();
        assert_eq!(take_status(&mut out, "\n@@cuX "), Some(3));
        assert_eq!(out, b"hello\nno newline");
        let mut partial = b"hello\n@@cuX".to_vec();
        assert_eq!(take_status(&mut partial, "\n@@cuX "), None);
        assert_eq!(partial, b"hello\n@@cuX");
    }

    #[test]
    fn output_ending_in_a_newline_keeps_it() {
        let mut out = b"line\n\n@@cuX 0\n".to_vec();
        assert_eq!(take_status(&mut out, "\n@@cuX "), Some(0));
        assert_eq!(out, b"line\n");
        let mut err = b"oops\n\n@@cuX\n".to_vec();
        assert!(take_marker(&mut err, "\n@@cuX\n"));
        assert_eq!(err, b"oops\n");
    }

    #[test]
    fn the_pid_marker_is_taken_out_wherever_it_lands_even_split_across_chunks() {
        // The command wrote "abc" without a newline, then the shell its marker, then the
        // command "def\n": the output is the command's bytes alone.
        let stream = b"abc\n@@cuX pid 4242\ndef\n";
        for cut in 0..=stream.len() {
            let mut marker = PidMarker::new("cuX");
            let mut buffer = stream[..cut].to_vec();
            marker.take(&mut buffer);
            buffer.extend_from_slice(&stream[cut..]);
            marker.take(&mut buffer);
            assert_eq!(marker.found, Some(4242), "cut at {cut}");
            assert_eq!(buffer, b"abcdef\n", "cut at {cut}");
        }
        let mut other_nonce = b"\n@@cuY pid 1\n".to_vec();
        let mut marker = PidMarker::new("cuX");
        marker.take(&mut other_nonce);
        assert_eq!((marker.found, other_nonce.len()), (None, 13));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
        assert_eq!(nonce().len(), 34);
    }
}
