//! Jump connections (ProxyJump): one SSH connection per chain of jump hosts, shared by every
//! host behind it. The next hop, or the host, is reached over a `direct-tcpip` channel of the
//! previous connection, and its host key is checked like any host's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use russh::client::{Handle, Msg};
use russh::ChannelStream;

use super::host_key::HostKeyCheck;
use super::{open, Dial, Endpoint};
use crate::inventory::HostName;
use crate::transport::error::TransportError;
use crate::transport::target::{Hop, Target};

/// An authenticated connection to a jump host.
pub(crate) struct JumpLink {
    name: HostName,
    handle: Handle<HostKeyCheck>,
    /// The connection this one runs over, kept open while this one is.
    _via: Option<Arc<JumpLink>>,
}

impl JumpLink {
    /// Asks the jump host to open a TCP connection to `endpoint`; the channel carries the next
    /// SSH connection.
    pub(crate) async fn forward(
        &self,
        endpoint: &Endpoint<'_>,
    ) -> Result<ChannelStream<Msg>, TransportError> {
        // The originator is informational; OpenSSH's `ssh -W` sends the same.
        let channel = self
            .handle
            .channel_open_direct_tcpip(endpoint.address, u32::from(endpoint.port), "127.0.0.1", 0)
            .await
            .map_err(|source| TransportError::Forward {
                host: endpoint.name.clone(),
                hop: self.name.clone(),
                address: endpoint.address_port(),
                source: Box::new(source),
            })?;
        Ok(channel.into_stream())
    }
}

/// A chain's connection, opened by the first host that needs it while the others wait.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<JumpLink>>>>;

/// The jump connections of a run, by chain (every prefix of a chain is a chain of its own, so
/// `a,b` and `a,c` share the connection to `a`). A connection that closed is opened again by
/// the next host that needs it; a failure is not remembered.
#[derive(Default)]
pub(crate) struct JumpPool {
    links: Mutex<HashMap<Vec<Hop>, Slot>>,
}

impl std::fmt::Debug for JumpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chains = self.links.lock().map(|links| links.len()).unwrap_or(0);
        f.debug_struct("JumpPool").field("chains", &chains).finish()
    }
}

impl JumpPool {
    /// The connection to the last jump host of `target`, opening the chain's connections that
    /// are not open yet; `None` when the target is reached directly. A failure names the hop.
    pub(crate) async fn link(
        &self,
        target: &Target,
        dial: &Dial<'_>,
    ) -> Result<Option<Arc<JumpLink>>, TransportError> {
        let mut via: Option<Arc<JumpLink>> = None;
        for (i, hop) in target.jumps.iter().enumerate() {
            let slot = self.slot(&target.jumps[..=i]);
            let mut slot = slot.lock().await;
            let open_link = slot.as_ref().filter(|link| !link.handle.is_closed());
            let link = match open_link {
                Some(link) => Arc::clone(link),
                None => {
                    let handle = open(&Endpoint::of_hop(hop), via.as_deref(), dial)
                        .await
                        .map_err(|source| TransportError::Jump {
                            host: target.name.clone(),
                            hop: hop.name.clone(),
                            address: hop.endpoint(),
                            source: Box::new(source),
                        })?;
                    tracing::debug!(hop = %hop.name, address = %hop.endpoint(), depth = i + 1, "connected to a jump host");
                    let link = Arc::new(JumpLink {
                        name: hop.name.clone(),
                        handle,
                        _via: via.clone(),
                    });
                    *slot = Some(Arc::clone(&link));
                    link
                }
            };
            via = Some(link);
        }
        Ok(via)
    }

    fn slot(&self, chain: &[Hop]) -> Slot {
        let mut links = self.links.lock().expect("jump pool lock");
        Arc::clone(links.entry(chain.to_vec()).or_default())
    }
}
