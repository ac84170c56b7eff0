//! Running commands and placing files on remote hosts: the [`Session`] and [`Connector`]
//! traits, their SSH implementation (russh), host key checking and the one quoting point.

mod command;
mod error;
pub mod known_hosts;
pub mod quote;
mod session;
pub mod ssh;
mod target;

pub use command::{CommandOutput, Exit, Source, Upload};
pub use error::TransportError;
pub use session::{Connector, Session};
pub use ssh::{SshConnector, SshSession};
pub use target::{Hop, HostKeyPolicy, Identity, SshOptions, Target};
