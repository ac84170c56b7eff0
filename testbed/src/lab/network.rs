//! Choosing the loopback addresses and ports of a lab.
//!
//! Every lab takes a random /24 inside 127.0.0.0/8 (never 127.0.0.x, where the machine's own
//! services live), so parallel labs and tests do not collide, and puts its hosts at .2, .3, …
//! Every host uses the same three ports, like real machines would. A choice is only taken after
//! binding every (address, port) pair, because a process holding the wildcard address on a port
//! makes that port unusable on every loopback address.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};

use super::state::Ports;

/// The first host is .2: .1 is often treated as the network's own address.
const FIRST_HOST: u8 = 2;

/// The most hosts one /24 can hold from .2 on.
pub const MAX_HOSTS: usize = 253 - FIRST_HOST as usize;

/// The addresses and ports picked for a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub addresses: Vec<Ipv4Addr>,
    pub ports: Ports,
}

/// A random 64-bit number (std's hasher keys are random per process; the counter varies calls).
pub fn random_u64() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

/// The address of host `index` (0-based) in the /24 `127.a.b.0`.
pub fn host_address(a: u8, b: u8, index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, a, b, FIRST_HOST + index as u8)
}

/// Picks a candidate network for `count` hosts: the preferred ports on the first attempts, then
/// random high ports (a clash on the ports follows us to every address).
pub fn candidate(count: usize, preferred: Ports, attempt: u32) -> Network {
    let r = random_u64();
    // a is never 0, which keeps us out of 127.0.0.x.
    let a = 1 + (r % 254) as u8;
    let b = (r >> 8) as u8;
    let ports = if attempt < 2 {
        preferred
    } else {
        let base = 20_000 + ((r >> 16) % 40_000) as u16;
        Ports {
            ssh: base,
            cluster: base + 2,
            api: base + 1,
        }
    };
    Network {
        addresses: (0..count).map(|i| host_address(a, b, i)).collect(),
        ports,
    }
}

/// Checks that every port of the network can be bound on every address; says which cannot.
pub fn check_free(network: &Network) -> Result<(), String> {
    let Ports { ssh, cluster, api } = network.ports;
    if ssh == cluster || ssh == api || cluster == api {
        return Err(format!(
            "ports must differ: ssh {ssh}, cluster {cluster}, api {api}"
        ));
    }
    for address in &network.addresses {
        for port in [ssh, cluster, api] {
            // Dropping the listener frees the port at once (no TIME_WAIT without a connection).
            TcpListener::bind((*address, port)).map_err(|e| format!("{address}:{port}: {e}"))?;
        }
    }
    Ok(())
}

/// Checks that `port` can be bound on every address (the delaying relay's port).
pub fn check_port_free(addresses: &[Ipv4Addr], port: u16) -> Result<(), String> {
    for address in addresses {
        TcpListener::bind((*address, port)).map_err(|e| format!("{address}:{port}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_stay_out_of_127_0_0() {
        for attempt in 0..200 {
            let network = candidate(3, Ports::default(), attempt);
            let [n, a, _, d] = network.addresses[0].octets();
            assert_eq!(n, 127);
            assert_ne!(a, 0);
            assert_eq!(d, 2);
            assert_eq!(network.addresses[2].octets()[3], 4);
            if attempt < 2 {
                assert_eq!(network.ports, Ports::default());
            }
        }
    }

    #[test]
    fn a_bound_port_is_reported() {
        let network = candidate(1, Ports::default(), 5);
        let held = TcpListener::bind((network.addresses[0], network.ports.api));
        if held.is_ok() {
            let err = check_free(&network).unwrap_err();
            assert!(err.contains(&network.ports.api.to_string()), "{err}");
        }
    }
}
