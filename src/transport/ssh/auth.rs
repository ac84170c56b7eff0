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
            let key = match load_secret_key(path, None) {
                Ok(key) => key,
                Err(russh::keys::Error::KeyIsEncrypted) => {
                    return login_with_agent_key(handle, target, path).await
                }
                Err(source) => {
                    return Err(TransportError::KeyFile {
                        host: target.name.clone(),
                        path: path.clone(),
                        source: Box::new(source),
                    })
                }
            };
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

/// The ssh-agent of `SSH_AUTH_SOCK`, or why there is none, in words an operator can act on.
async fn connect_agent(
    target: &Endpoint<'_>,
) -> Result<AgentClient<tokio::net::UnixStream>, TransportError> {
    let no_agent = |why: String| TransportError::NoAgent {
        host: target.name.clone(),
        why,
    };
    let hint = "start one (`eval \"$(ssh-agent)\"`, then `ssh-add`), or name an unencrypted key with identity_file";
    let socket = match std::env::var_os("SSH_AUTH_SOCK") {
        None => return Err(no_agent(format!("SSH_AUTH_SOCK is not set; {hint}"))),
        Some(socket) if socket.is_empty() => {
            return Err(no_agent(format!("SSH_AUTH_SOCK is empty; {hint}")))
        }
        Some(socket) => std::path::PathBuf::from(socket),
    };
    match tokio::net::UnixStream::connect(&socket).await {
        Ok(stream) => Ok(AgentClient::connect(stream)),
        Err(error) => Err(no_agent(format!(
            "no ssh-agent answers at SSH_AUTH_SOCK={} ({error}); is it running? {hint}",
            socket.display()
        ))),
    }
}

/// A passphrase-protected key file: its public half (readable without the passphrase) is
/// looked up in the ssh-agent, which signs with it.
async fn login_with_agent_key(
    handle: &mut Client,
    target: &Endpoint<'_>,
    path: &std::path::Path,
) -> Result<(), TransportError> {
    let encrypted = |agent: String| TransportError::EncryptedKey {
        host: target.name.clone(),
        path: path.to_path_buf(),
        agent,
    };
    let public = russh::keys::PrivateKey::read_openssh_file(path)
        .map(|key| key.public_key().clone())
        .or_else(|_| russh::keys::load_public_key(path.with_extension("pub")))
        .map_err(|source| TransportError::KeyFile {
            host: target.name.clone(),
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    let mut agent = match connect_agent(target).await {
        Ok(agent) => agent,
        Err(TransportError::NoAgent { why, .. }) => {
            return Err(encrypted(format!(
                "there is no ssh-agent to sign with it ({why})"
            )))
        }
        Err(other) => return Err(other),
    };
    let agent_error = |e: Box<dyn std::error::Error + Send + Sync>| TransportError::Agent {
        host: target.name.clone(),
        source: e,
    };
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| agent_error(Box::new(e)))?;
    let held = identities.into_iter().any(|identity| {
        matches!(identity, AgentIdentity::PublicKey { ref key, .. } if key.key_data() == public.key_data())
    });
    if !held {
        return Err(encrypted("the ssh-agent does not hold it".to_string()));
    }
    let hash = if public.algorithm().is_rsa() {
        rsa_hash(handle, target).await?
    } else {
        None
    };
    let result = handle
        .authenticate_publickey_with(target.user, public, hash, &mut agent)
        .await
        .map_err(|e| agent_error(Box::new(e)))?;
    if result.success() {
        Ok(())
    } else {
        Err(refused(
            target,
            format!("the ssh-agent's key of {}", path.display()),
        ))
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
    let mut agent = connect_agent(target).await?;
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
