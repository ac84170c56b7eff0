//! One step on one host: upload, command, retries, then the `wait_until` probe.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::inventory::{HostName, Sha256};
use crate::procedure::{RenderedStep, RenderedWait};
use crate::transport::{CommandOutput, Session, Source, Upload};

/// Why a host step failed: the message and the tail of the remote stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    pub error: String,
    pub stderr_tail: String,
}

/// The last lines of a command's stderr (and stdout when stderr is empty), for reports.
pub fn tail(output: &CommandOutput) -> String {
    let text = if output.stderr.is_empty() {
        output.stdout_text()
    } else {
        output.stderr_text()
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn describe_exit(output: &CommandOutput) -> String {
    match &output.exit {
        crate::transport::Exit::Status(code) => format!("exited with status {code}"),
        crate::transport::Exit::Signal(signal) => format!("was killed by signal {signal}"),
        crate::transport::Exit::Unknown => "ended without an exit status".to_string(),
    }
}

/// The sessions of every host, by host name.
pub type Sessions<S> = HashMap<HostName, Arc<S>>;

/// Runs the step's `check` on its host: `true` when it exits 0.
pub async fn check_passes<S: Session>(
    sessions: &Sessions<S>,
    step: &RenderedStep,
) -> Result<bool, HostFailure> {
    let Some(check) = &step.check else {
        return Ok(false);
    };
    let session = session_for(sessions, &step.run_on)?;
    let output = session
        .run(check, timeout_of(step))
        .await
        .map_err(transport_failure)?;
    Ok(output.success())
}

/// A state export saved on the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBackup {
    pub file: String,
    pub sha256: Sha256,
}

/// Runs upload, command (with retries) and the wait of one step on one host. A step with a
/// `backup` saves its command's stdout into `backups_dir`.
pub async fn run_step<S: Session>(
    sessions: &Sessions<S>,
    step: &RenderedStep,
    backups_dir: &Path,
) -> Result<Option<SavedBackup>, HostFailure> {
    let session = session_for(sessions, &step.run_on)?;
    let mut attempt = 0;
    let saved = loop {
        match run_once(session.as_ref(), step, backups_dir).await {
            Ok(saved) => break saved,
            Err(failure) if attempt < step.retries => {
                // Info, not a warning: the progress shows the next attempt on the host's line
                // (a thousand hosts retrying would otherwise print a thousand warnings).
                tracing::info!(host = %step.host, step = %step.id, error = %failure.error, "retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(failure) => return Err(failure),
        }
    };
    if let Some(wait) = &step.wait_until {
        let session = session_for(sessions, &wait.run_on)?;
        wait_until(session.as_ref(), wait, timeout_of(step)).await?;
    }
    Ok(saved)
}

/// Polls the wait's command every `interval` until it exits 0, or fails: at the deadline, or
/// at once when its `fail_when` holds after a failed try (the peer it waits for exited).
async fn wait_until<S: Session>(
    session: &S,
    wait: &RenderedWait,
    timeout: Duration,
) -> Result<(), HostFailure> {
    let started = Instant::now();
    let deadline = started + wait.deadline.get();
    let interval = wait.interval.get();
    // What a command may take: what is left of the wait (a second at least), within the
    // step's timeout.
    let limit = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1))
            .min(timeout)
    };
    loop {
        let last = match session.run(&wait.command, limit()).await {
            Ok(output) if output.success() => return Ok(()),
            Ok(output) => HostFailure {
                error: format!("`wait_until` still failing ({})", describe_exit(&output)),
                stderr_tail: tail(&output),
            },
            Err(err) => transport_failure(err),
        };
        if let Some(fail_when) = &wait.fail_when {
            if let Ok(output) = session.run(fail_when, limit()).await {
                if output.success() {
                    let said = if output.stderr.is_empty() {
                        output.stdout_text()
                    } else {
                        output.stderr_text()
                    };
                    return Err(HostFailure {
                        error: format!(
                            "`wait_until` gave up after {}s, before its deadline of {}: its `fail_when` holds ({}); the last try: {}",
                            started.elapsed().as_secs(),
                            wait.deadline,
                            first_line(&said),
                            last.error
                        ),
                        stderr_tail: tail(&output),
                    });
                }
            }
        }
        if Instant::now() + interval >= deadline {
            return Err(HostFailure {
                error: format!(
                    "`wait_until` did not pass within {}: {}",
                    wait.deadline, last.error
                ),
                stderr_tail: last.stderr_tail,
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// The first line of `text`, or `it printed nothing`.
fn first_line(text: &str) -> &str {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("it printed nothing")
}

async fn run_once<S: Session>(
    session: &S,
    step: &RenderedStep,
    backups_dir: &Path,
) -> Result<Option<SavedBackup>, HostFailure> {
    if let Some(upload) = &step.upload {
        let upload = Upload {
            source: Source::File(upload.from.clone()),
            remote_path: upload.to.clone(),
            mode: upload.mode,
        };
        session.upload(&upload).await.map_err(transport_failure)?;
    }
    if let Some(command) = &step.command {
        let output = session
            .run(command, timeout_of(step))
            .await
            .map_err(transport_failure)?;
        if !output.success() {
            return Err(HostFailure {
                error: format!("the command {}", describe_exit(&output)),
                stderr_tail: tail(&output),
            });
        }
        if let Some(file) = &step.backup {
            return save_backup(backups_dir, file, &output).map(Some);
        }
    }
    Ok(None)
}

/// Writes a state export into the run's private `backups/` folder.
fn save_backup(
    backups_dir: &Path,
    file: &str,
    output: &CommandOutput,
) -> Result<SavedBackup, HostFailure> {
    let failure = |error: String| HostFailure {
        error,
        stderr_tail: tail(output),
    };
    if file.is_empty() || file.contains('/') || file.starts_with('.') {
        return Err(failure(format!(
            "backup file name `{file}` must be a plain file name"
        )));
    }
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(failure(
            "the state export is empty: refusing to go on without a backup".to_string(),
        ));
    }
    crate::journal::write_private(&backups_dir.join(file), &output.stdout)
        .map_err(|e| failure(crate::message::chain(&e)))?;
    Ok(SavedBackup {
        file: file.to_string(),
        sha256: Sha256::of(&output.stdout),
    })
}

fn timeout_of(step: &RenderedStep) -> Duration {
    step.timeout
        .unwrap_or(crate::inventory::SshSettings::DEFAULT_COMMAND_TIMEOUT)
        .get()
}

fn session_for<'a, S>(
    sessions: &'a Sessions<S>,
    host: &HostName,
) -> Result<&'a Arc<S>, HostFailure> {
    sessions.get(host).ok_or_else(|| HostFailure {
        error: format!("no SSH session to {host}"),
        stderr_tail: String::new(),
    })
}

fn transport_failure(err: crate::transport::TransportError) -> HostFailure {
    HostFailure {
        error: crate::message::chain(&err),
        stderr_tail: String::new(),
    }
}
