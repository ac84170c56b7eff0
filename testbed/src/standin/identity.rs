//! Peer identities: random IDs shaped like the real ones (RSA `Qm…` for identities created by
//! ≤ 0.10, Ed25519 `12D3KooW…` from 0.11) and `identity.json`.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use crate::release::{Era, Release};

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A peer's identity as stored in `identity.json` (≥ 0.11) or `service.json` (≤ 0.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub private_key: String,
}

impl Identity {
    /// A fresh identity in the style of the release that creates it.
    pub fn generate(release: &Release) -> Identity {
        let bytes = random_bytes(80);
        let tail: String = bytes[..44]
            .iter()
            .map(|b| BASE58[*b as usize % BASE58.len()] as char)
            .collect();
        let id = match release.era() {
            Era::Raft010 => format!("Qm{tail}"),
            Era::Modern => format!("12D3KooW{tail}"),
        };
        Identity {
            id,
            private_key: base64(&bytes),
        }
    }

    /// Reads `identity.json`; `None` if the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Identity>> {
        match fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| Error::ParseJson {
                        path: path.to_path_buf(),
                        source,
                    })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io(path)(err)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("identity serializes");
        fs::write(path, text + "\n").map_err(Error::io(path))
    }
}

/// Random bytes from the kernel; IDs only need to be unique, not secret.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let filled = fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !filled {
        // Without /dev/urandom, time and pid still make IDs unique enough for a test bed.
        let seed = format!("{}-{}", super::logging::unix_millis(), std::process::id());
        for (i, chunk) in buf.chunks_mut(32).enumerate() {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("{seed}-{i}").as_bytes());
            chunk.copy_from_slice(&digest[..chunk.len()]);
        }
    }
    buf
}

/// A 32-byte hex secret like `init` generates.
pub fn random_secret() -> String {
    random_bytes(32)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The identity a daemon or `state` command runs with. From 0.11 it lives in `identity.json`,
/// which is written from a ≤ 0.10 `service.json` on first use so the peer ID survives upgrades.
pub fn resolve(
    release: &Release,
    config_dir: &Path,
    in_config: Option<&Identity>,
) -> Result<Identity> {
    let path = config_dir.join(super::config::IDENTITY_JSON);
    match release.era() {
        Era::Raft010 => in_config.cloned().ok_or(Error::NoIdentity {
            path: config_dir.join(super::config::SERVICE_JSON),
        }),
        Era::Modern => {
            if let Some(identity) = Identity::load(&path)? {
                return Ok(identity);
            }
            let identity = in_config
                .cloned()
                .ok_or(Error::NoIdentity { path: path.clone() })?;
            identity.save(&path)?;
            super::logging::info(
                "config",
                &format!("identity written to {} from service.json", path.display()),
            );
            Ok(identity)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_era() {
        let old = Identity::generate(&Release::modelled("0.10.1").unwrap());
        assert!(old.id.starts_with("Qm") && old.id.len() == 46);
        let new = Identity::generate(&Release::modelled("1.1.6").unwrap());
        assert!(new.id.starts_with("12D3KooW") && new.id.len() == 52);
        assert_ne!(old.id[2..], new.id[8..]);
        assert_eq!(base64(b"hi!"), "aGkh");
        assert_eq!(base64(b"h"), "aA==");
    }
}
