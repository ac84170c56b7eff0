//! The seams between the executor and the network, so the executor can be tested with fakes.

use std::future::Future;
use std::time::Duration;

use super::command::{CommandOutput, Upload};
use super::error::TransportError;
use super::target::Target;

/// One open connection to one host; every step of that host runs over it.
pub trait Session: Send + Sync {
    /// Runs a command line (built with [`super::quote`]) and collects its output.
    /// After `timeout` the command is sent SIGTERM, its channel closed, and
    /// [`TransportError::CommandTimeout`] returned; the connection stays usable. sshd refuses
    /// signal requests for root logins, so a remote process may outlive its timeout: commands
    /// that must not should bound themselves (e.g. with coreutils `timeout`).
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
