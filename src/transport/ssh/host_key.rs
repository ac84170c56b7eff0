//! Host key verification during the handshake, before any authentication is attempted.

use crate::inventory::HostName;
use std::sync::{Arc, RwLock};

use russh::client;
use russh::keys::ssh_key::{Algorithm, Certificate, PublicKey};
use russh::keys::PublicKeyOrCertificate;
use russh::Preferred;

use crate::transport::error::TransportError;
use crate::transport::known_hosts::{self, fingerprint, CertMatch, KnownHosts, Match};
use crate::transport::quote;
use crate::transport::target::HostKeyPolicy;

/// Why the handshake stopped: an SSH failure, or our own refusal of the host key.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    Ssh(russh::Error),
    Refused(Box<TransportError>),
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

/// The russh client handler: checks the server key against known_hosts.
pub(crate) struct HostKeyCheck {
    pub(crate) host: HostName,
    pub(crate) address: String,
    pub(crate) port: u16,
    /// Shared by the run's connections; a key accepted as new is added for the others.
    pub(crate) known_hosts: Arc<RwLock<KnownHosts>>,
    pub(crate) policy: HostKeyPolicy,
}

impl client::Handler for HostKeyCheck {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.verify(key).map(|()| true).map_err(|e| self.refuse(e))
            }
            PublicKeyOrCertificate::Certificate(cert) => self
                .verify_certificate(cert)
                .map(|()| true)
                .map_err(|e| self.refuse(e)),
        }
    }
}

impl HostKeyCheck {
    fn refuse(&self, error: TransportError) -> HandshakeError {
        HandshakeError::Refused(Box::new(error))
    }

    fn verify(&self, key: &PublicKey) -> Result<(), TransportError> {
        let known = self.known_hosts.read().expect("known_hosts lock");
        let (files, verdict) = (
            Files::of(&known),
            known.check(&self.address, self.port, key),
        );
        drop(known);
        match (verdict, self.policy) {
            (Match::Unknown, HostKeyPolicy::AcceptNew) => self.accept_new(key),
            (verdict, _) => self.judge(key, verdict, files),
        }
    }

    /// A host certificate: trusted only through an `@cert-authority` line (never accepted as
    /// new).
    fn verify_certificate(&self, cert: &Certificate) -> Result<(), TransportError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let known = self.known_hosts.read().expect("known_hosts lock");
        match known.check_certificate((&self.address, self.port), cert, now) {
            CertMatch::Trusted { at } => {
                tracing::debug!(host = %self.host, %at, "host certificate trusted");
                Ok(())
            }
            CertMatch::Refused { why } => Err(TransportError::HostCertificate {
                host: self.host.clone(),
                why,
                known_hosts: known.describe(),
            }),
        }
    }

    /// What a known_hosts verdict means for the connection.
    fn judge(&self, key: &PublicKey, verdict: Match, files: Files) -> Result<(), TransportError> {
        match verdict {
            Match::Trusted { .. } => Ok(()),
            Match::Revoked { at } => Err(TransportError::HostKeyRevoked {
                host: self.host.clone(),
                fingerprint: fingerprint(key),
                known_hosts: at.path,
                line: at.number,
            }),
            Match::Changed { at, .. } => Err(TransportError::HostKeyChanged {
                host: self.host.clone(),
                fingerprint: fingerprint(key),
                hint: format!(
                    "if the host was reinstalled, confirm the new fingerprint out of band, remove line {} \
                     (ssh-keygen -R {} -f {}) and add the new key",
                    at.number,
                    self.quoted_name(),
                    self.quoted_path(&at.path),
                ),
                known_hosts: at.path,
                line: at.number,
            }),
            Match::Unknown => Err(TransportError::HostKeyUnknown {
                    host: self.host.clone(),
                    fingerprint: fingerprint(key),
                    hint: format!(
                        "confirm the fingerprint out of band (ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub on the host), \
                         then run: ssh-keyscan -p {} {} >> {}; or accept new host keys explicitly (--accept-new-host-keys)",
                        key_file_kind(&key.algorithm()),
                        self.port,
                        quote::quote(&self.address).unwrap_or_else(|_| self.address.clone()),
                        self.quoted_path(&files.first),
                    ),
                    known_hosts: files.described,
                }),
        }
    }

    /// Appends the key to known_hosts and adds it to the run's copy; checked again under the
    /// lock, since another connection to the same address may have added a key meanwhile.
    fn accept_new(&self, key: &PublicKey) -> Result<(), TransportError> {
        let mut known = self.known_hosts.write().expect("known_hosts lock");
        let files = Files::of(&known);
        match known.check(&self.address, self.port, key) {
            Match::Unknown => {}
            verdict => {
                drop(known);
                return self.judge(key, verdict, files);
            }
        }
        let path = files.first;
        let line = known_hosts::append(&path, &self.address, self.port, key).map_err(|source| {
            TransportError::KnownHosts {
                host: self.host.clone(),
                source,
            }
        })?;
        known.add_appended(line, (&self.address, self.port), key);
        tracing::info!(host = %self.host, fingerprint = %fingerprint(key), line, "added new host key to known_hosts");
        Ok(())
    }

    fn quoted_name(&self) -> String {
        let name = known_hosts::host_name(&self.address, self.port);
        quote::quote(&name).unwrap_or(name)
    }

    fn quoted_path(&self, path: &std::path::Path) -> String {
        let text = path.display().to_string();
        quote::quote(&text).unwrap_or(text)
    }
}

/// The known_hosts files a verdict came from, for messages: all of them, and the first (where
/// new keys go).
struct Files {
    described: String,
    first: std::path::PathBuf,
}

impl Files {
    fn of(known: &KnownHosts) -> Files {
        Files {
            described: known.describe(),
            first: known.path().to_path_buf(),
        }
    }
}

fn key_file_kind(algorithm: &Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Ed25519 => "ed25519",
        Algorithm::Ecdsa { .. } => "ecdsa",
        Algorithm::Rsa { .. } => "rsa",
        _ => "*",
    }
}

/// The host key algorithms to offer: only the types known_hosts has for the host (a server
/// that also has an ed25519 key would otherwise present that one and look unknown).
/// Unknown hosts get russh's defaults. With an `@cert-authority` line for the host
/// (`certificates`), certificates of every key type are asked for first.
pub(crate) fn preferred_for(known: &[Algorithm], certificates: bool) -> Preferred {
    let mut defaults = Preferred::default();
    if certificates {
        defaults.host_key_certificates = defaults.key.clone();
    }
    if known.is_empty() {
        return defaults;
    }
    let keys: Vec<Algorithm> = defaults
        .key
        .iter()
        .filter(|offered| known.iter().any(|k| known_hosts::same_family(k, offered)))
        .cloned()
        .collect();
    if keys.is_empty() {
        // Only key types russh cannot use are known: let the handshake fail on what the
        // server presents rather than with an empty algorithm list.
        return defaults;
    }
    Preferred {
        key: keys.into(),
        ..defaults
    }
}

/// Where the refusal or failure lands in our error type.
pub(crate) fn handshake_error(
    error: HandshakeError,
    host: &HostName,
    address: &str,
) -> TransportError {
    match error {
        HandshakeError::Refused(e) => *e,
        HandshakeError::Ssh(source) => TransportError::Handshake {
            host: host.clone(),
            address: address.to_string(),
            source: Box::new(source),
        },
    }
}
