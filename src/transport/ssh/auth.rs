//! Logging in, with a key file or the ssh-agent. Runs only after the host key was accepted.

use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::ssh_key::HashAlg;
use russh::keys::{load_secret_key, PrivateKeyWithHashAlg};

use super::host_key::HostKeyCheck;
use super::Endpoint;
use crate::transport::error::TransportError;
use crate::transport::target::Identity;

type Client = Handle<HostKeyCheck>;

/// Authenticates as `target.user`; a refusal is [`TransportError::Auth`].
pub(crate) async fn login(
    handle: &mut Client,
    target: &Endpoint<'_>,
) -> Result<(), TransportError> {
    match target.identity {
        Identity::File(path) => {
            // No passphrase: this tool never asks for or stores one; encrypted keys go through the agent.
            let key = load_secret_key(path, None).map_err(|source| TransportError::KeyFile {
                host: target.name.clone(),
                path: path.clone(),
                source: Box::new(source),
            })?;
            let hash = if key.algorithm().is_rsa() {
                rsa_hash(handle, target).await?
            } else {
                None
            };
            let result = handle
                .authenticate_publickey(
                    target.user,
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(|source| TransportError::Channel {
                    host: target.name.clone(),
                    source: Box::new(source),
                })?;
            if result.success() {
                Ok(())
            } else {
                Err(refused(target, format!("key file {}", path.display())))
            }
        }
        Identity::Agent => login_with_agent(handle, target).await,
    }
}

async fn login_with_agent(
    handle: &mut Client,
    target: &Endpoint<'_>,
) -> Result<(), TransportError> {
    let agent_error = |e: Box<dyn std::error::Error + Send + Sync>| TransportError::Agent {
        host: target.name.clone(),
        source: e,
    };
    let mut agent = AgentClient::connect_env()
        .await
        .map_err(|e| agent_error(Box::new(e)))?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| agent_error(Box::new(e)))?;
    for identity in identities {
        // Certificates would need the server to trust a user CA; plain keys are what we support.
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        let hash = if key.algorithm().is_rsa() {
            rsa_hash(handle, target).await?
        } else {
            None
        };
        let result = handle
            .authenticate_publickey_with(target.user, key, hash, &mut agent)
            .await
            .map_err(|e| agent_error(Box::new(e)))?;
        if result.success() {
            return Ok(());
        }
    }
    Err(refused(target, "ssh-agent".to_string()))
}

/// The RSA signature hash the server accepts (asking can wait up to a second, hence RSA only).
async fn rsa_hash(
    handle: &Client,
    target: &Endpoint<'_>,
) -> Result<Option<HashAlg>, TransportError> {
    let best =
        handle
            .best_supported_rsa_hash()
            .await
            .map_err(|source| TransportError::Channel {
                host: target.name.clone(),
                source: Box::new(source),
            })?;
    Ok(best.flatten())
}

fn refused(target: &Endpoint<'_>, method: String) -> TransportError {
    TransportError::Auth {
        host: target.name.clone(),
        user: target.user.to_string(),
        method,
    }
}
