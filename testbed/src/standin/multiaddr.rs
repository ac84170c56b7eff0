//! The small subset of multiaddrs the stand-in understands:
//! `/ip4/<ip>/tcp/<port>` or `/dns4/<name>/tcp/<port>`, optionally ending in `/ipfs/<id>` or
//! `/p2p/<id>` (the two are aliases).

use std::net::{SocketAddr, ToSocketAddrs};

use super::error::{Error, Result};

/// A parsed TCP multiaddr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multiaddr {
    /// The transport part, e.g. `/ip4/127.0.0.1/tcp/9096`.
    pub transport: String,
    host: String,
    port: u16,
    /// The peer ID of an `/ipfs/` or `/p2p/` suffix.
    pub peer_id: Option<String>,
}

impl Multiaddr {
    pub fn parse(text: &str) -> Result<Multiaddr> {
        let bad = || Error::InvalidMultiaddr {
            addr: text.to_string(),
        };
        let parts: Vec<&str> = text.trim().split('/').collect();
        if parts.len() < 5 || !parts[0].is_empty() || parts[3] != "tcp" {
            return Err(bad());
        }
        if !matches!(parts[1], "ip4" | "dns4" | "dns") {
            return Err(bad());
        }
        let port: u16 = parts[4].parse().map_err(|_| bad())?;
        let peer_id = match &parts[5..] {
            [] => None,
            [proto, id] if matches!(*proto, "ipfs" | "p2p") && !id.is_empty() => {
                Some(id.to_string())
            }
            _ => return Err(bad()),
        };
        Ok(Multiaddr {
            transport: format!("/{}/{}/tcp/{}", parts[1], parts[2], port),
            host: parts[2].to_string(),
            port,
            peer_id,
        })
    }

    /// The socket address to dial or bind.
    pub fn socket_addr(&self) -> Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.find(SocketAddr::is_ipv4))
            .ok_or_else(|| Error::InvalidMultiaddr {
                addr: self.transport.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transport_and_peer() {
        let m = Multiaddr::parse("/ip4/127.0.0.2/tcp/9096/p2p/12D3KooWabc").unwrap();
        assert_eq!(m.transport, "/ip4/127.0.0.2/tcp/9096");
        assert_eq!(m.peer_id.as_deref(), Some("12D3KooWabc"));
        assert_eq!(m.socket_addr().unwrap().to_string(), "127.0.0.2:9096");
        assert!(Multiaddr::parse("/ip4/1.2.3.4/udp/1").is_err());
        assert!(Multiaddr::parse("/ip4/1.2.3.4/tcp/1/foo/x").is_err());
    }
}
