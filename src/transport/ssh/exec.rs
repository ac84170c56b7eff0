//! One command on one channel: collect stdout and stderr until the channel closes.

use std::time::Duration;

use russh::client::Handle;
use russh::{ChannelMsg, Sig};
use tokio::time::{timeout_at, Instant};

use super::host_key::HostKeyCheck;
use crate::transport::command::{CommandOutput, Exit};
use crate::transport::error::TransportError;

/// Runs `command` on a new channel of `handle`.
pub(crate) async fn run(
    handle: &Handle<HostKeyCheck>,
    host: &str,
    command: &str,
    timeout: Duration,
) -> Result<CommandOutput, TransportError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || TransportError::CommandTimeout {
        host: host.to_string(),
        command: command.to_string(),
        after: timeout,
    };
    let channel_error = |source| TransportError::Channel {
        host: host.to_string(),
        source: Box::new(source),
    };

    let mut channel = timeout_at(deadline, handle.channel_open_session())
        .await
        .map_err(|_| timed_out())?
        .map_err(channel_error)?;
    channel.exec(true, command).await.map_err(channel_error)?;

    let mut output = CommandOutput {
        stdout: Vec::new(),
        stderr: Vec::new(),
        exit: Exit::Unknown,
    };
    loop {
        // `wait` only receives from a queue, so dropping it at the deadline loses nothing.
        let Ok(message) = timeout_at(deadline, channel.wait()).await else {
            // Closing alone would leave the process running until it next writes. sshd >= 7.9
            // delivers the signal, except for root logins (it then logs "session_signal_req").
            let _ = channel.signal(Sig::TERM).await;
            let _ = channel.close().await;
            return Err(timed_out());
        };
        match message {
            Some(ChannelMsg::Data { data }) => output.stdout.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                output.stderr.extend_from_slice(&data)
            }
            // The status arrives after Eof, so keep reading until Close.
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                output.exit = Exit::Status(exit_status as i32)
            }
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                output.exit = Exit::Signal(signal_text(&signal_name))
            }
            Some(ChannelMsg::Failure) => {
                let _ = channel.close().await;
                return Err(TransportError::Refused {
                    host: host.to_string(),
                    request: "exec",
                });
            }
            Some(ChannelMsg::Close) => break,
            // The connection ended under the command: whether it ran is unknown.
            None => {
                return Err(TransportError::ConnectionLost {
                    host: host.to_string(),
                    command: command.to_string(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(output)
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
