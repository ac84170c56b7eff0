//! The seams between the executor and the network, so the executor can be tested with fakes.

use std::future::Future;
use std::time::Duration;

use super::command::{CommandOutput, Upload};
use super::error::TransportError;
use super::target::Target;

/// One open connection to one host; every step of that host runs over it.
pub trait Session: Send + Sync {
    /// Runs a command line (built with [`super::quote`]) and collects its output.
    /// After `timeout` the command and its children are sent SIGTERM (from another shell for
    /// root logins, whose signal requests sshd refuses), its channel closed, and
    /// [`TransportError::CommandTimeout`] returned; the connection stays usable. Grandchildren
    /// that ignore the parent's end may outlive it: commands that must not leave any should
    /// bound themselves (e.g. with coreutils `timeout`). If the connection
    /// drops mid-command the result is [`TransportError::ConnectionLost`]: the command's effect
    /// is unknown.
    fn run(
        &self,
        command: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<CommandOutput, TransportError>> + Send;

    /// Places a file on the host atomically (temporary file in the same folder, then rename).
    fn upload(&self, upload: &Upload) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Ends the connection politely.
    fn close(&self) -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// Opens sessions.
pub trait Connector: Send + Sync {
    /// The sessions it opens.
    type Session: Session;

    /// Connects to the target, checks its host key and logs in.
    fn connect(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Self::Session, TransportError>> + Send;
}

#[cfg(test)]
mod tests {
    //! The traits can be implemented by a plain fake and driven from spawned tasks, as the
    //! executor does.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::transport::command::Exit;
    use crate::transport::target::Identity;

    #[derive(Default)]
    struct FakeSession {
        commands: Mutex<Vec<String>>,
    }

    impl Session for FakeSession {
        async fn run(
            &self,
            command: &str,
            _timeout: Duration,
        ) -> Result<CommandOutput, TransportError> {
            self.commands.lock().unwrap().push(command.to_string());
            Ok(CommandOutput {
                stdout: command.as_bytes().to_vec(),
                stderr: Vec::new(),
                exit: Exit::Status(0),
            })
        }

        async fn upload(&self, upload: &Upload) -> Result<(), TransportError> {
            self.commands
                .lock()
                .unwrap()
                .push(format!("upload {}", upload.remote_path));
            Ok(())
        }

        async fn close(&self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    struct FakeConnector;

    impl Connector for FakeConnector {
        type Session = FakeSession;

        async fn connect(&self, target: &Target) -> Result<FakeSession, TransportError> {
            if target.port == 0 {
                return Err(TransportError::HostCertificate {
                    host: target.name.clone(),
                    why: "a fake refusal".into(),
                    known_hosts: "/dev/null".into(),
                });
            }
            Ok(FakeSession::default())
        }
    }

    async fn echo_on<C: Connector>(
        connector: &C,
        target: Target,
    ) -> Result<String, TransportError> {
        let session = connector.connect(&target).await?;
        let output = session
            .run(&format!("echo {}", target.name), Duration::from_secs(1))
            .await?;
        session.close().await?;
        Ok(output.stdout_text())
    }

    fn target(name: &str, port: u16) -> Target {
        Target {
            jumps: Vec::new(),
            become_user: None,
            name: name.into(),
            address: "127.0.0.1".into(),
            port,
            user: "u".into(),
            identity: Identity::Agent,
        }
    }

    #[tokio::test]
    async fn a_fake_connector_works_from_spawned_tasks() {
        let connector = Arc::new(FakeConnector);
        let mut tasks = tokio::task::JoinSet::new();
        for (name, port) in [("a", 22), ("b", 0)] {
            let connector = Arc::clone(&connector);
            tasks.spawn(
                async move { (name, echo_on(connector.as_ref(), target(name, port)).await) },
            );
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (name, result) = joined.unwrap();
            results.push((name, result.map_err(|e| e.host().to_string())));
        }
        results.sort();
        assert_eq!(
            results,
            vec![("a", Ok("echo a".to_string())), ("b", Err("b".to_string()))]
        );
    }
}
