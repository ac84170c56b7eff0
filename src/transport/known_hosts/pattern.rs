//! Host pattern lists of known_hosts lines, matched the way OpenSSH's `match_hostname` does.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// How a pattern list relates to a host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostMatch {
    /// A positive pattern matched and no negated one did.
    Yes,
    /// Nothing matched.
    No,
    /// A negated pattern (`!pat`) matched: the line is excluded even if another pattern matches.
    Negated,
}

/// Matches `name` (`host` or `[host]:port`, already lower-case) against a comma-separated list.
pub(crate) fn match_list(name: &str, list: &str) -> HostMatch {
    let mut matched = false;
    for pattern in list.split(',').filter(|p| !p.is_empty()) {
        if let Some(negated) = pattern.strip_prefix('!') {
            if match_one(name, negated) {
                return HostMatch::Negated;
            }
        } else if match_one(name, pattern) {
            matched = true;
        }
    }
    if matched {
        HostMatch::Yes
    } else {
        HostMatch::No
    }
}

fn match_one(name: &str, pattern: &str) -> bool {
    if let Some(hashed) = pattern.strip_prefix("|1|") {
        return match_hashed(name, hashed);
    }
    // OpenSSH lower-cases patterns too; host names are case-insensitive.
    let pattern = pattern.to_ascii_lowercase();
    wildcard(name.as_bytes(), pattern.as_bytes())
}

/// `|1|salt|hash`: HMAC-SHA1 keyed with the salt over the name, both base64 (what `ssh-keygen -H` writes).
fn match_hashed(name: &str, salt_and_hash: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    // verify_slice compares in constant time and refuses a hash of the wrong length.
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` matches any run of characters (also none), `?` exactly one; everything else literally.
fn wildcard(name: &[u8], pattern: &[u8]) -> bool {
    // Iterative matching with one backtrack point: linear enough for host names, no recursion.
    let (mut n, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                n += 1;
                p += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"10.0.0.5", b"10.0.0.*"));
        assert!(wildcard(b"10.0.0.5", b"*"));
        assert!(wildcard(b"", b"*"));
        assert!(wildcard(b"[10.0.0.5]:2222", b"[10.0.0.?]:2222"));
        assert!(!wildcard(b"[10.0.0.55]:2222", b"[10.0.0.?]:2222"));
        assert!(wildcard(b"abcabd", b"*abd"));
        assert!(wildcard(b"node-1.example.org", b"node-*.example.*"));
        assert!(!wildcard(b"node-1.example.org", b"node-*.example"));
        assert!(!wildcard(b"10.0.0.5", b"10.0.0.5?"));
    }

    #[test]
    fn lists_and_negation() {
        assert_eq!(match_list("b", "a,b,c"), HostMatch::Yes);
        assert_eq!(match_list("d", "a,b,c"), HostMatch::No);
        assert_eq!(
            match_list("10.0.0.5", "10.0.0.*,!10.0.0.5"),
            HostMatch::Negated
        );
        assert_eq!(match_list("10.0.0.6", "10.0.0.*,!10.0.0.5"), HostMatch::Yes);
        assert_eq!(match_list("10.0.0.5", "!10.0.0.5"), HostMatch::Negated);
        assert_eq!(match_list("x", "!10.0.0.5"), HostMatch::No);
        assert_eq!(match_list("node1", "NODE1"), HostMatch::Yes);
    }

    #[test]
    fn hashed_entry_from_ssh_keygen() {
        // Same construction as `ssh-keygen -H`; tests/transport_known_hosts.rs checks real output.
        let salt = [7u8; 20];
        let mac = Hmac::<Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"node1")
            .finalize()
            .into_bytes();
        let entry = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(mac));
        assert_eq!(match_list("node1", &entry), HostMatch::Yes);
        assert_eq!(match_list("node2", &entry), HostMatch::No);
        assert_eq!(match_list("node1", "|1|bad|"), HostMatch::No);
    }
}
