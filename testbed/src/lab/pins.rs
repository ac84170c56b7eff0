//! The lab's deterministic fake pins.
//!
//! Each is a well-formed CIDv0 (base58btc of a sha2-256 multihash, so it starts with `Qm`) of
//! the bytes `cluster-lab pin <index>`: the same index gives the same CID in every lab, which
//! lets tests name the pins they expect.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The CID of pin number `index`.
pub fn cid(index: usize) -> String {
    let digest = Sha256::digest(format!("cluster-lab pin {index}").as_bytes());
    let mut multihash = vec![0x12, 0x20];
    multihash.extend_from_slice(&digest);
    base58(&multihash)
}

/// The name given to pin number `index`.
pub fn name(index: usize) -> String {
    format!("lab-pin-{index}")
}

/// Base58 (bitcoin alphabet), leading zero bytes as `1`s.
fn base58(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    // Little-endian base-58 digits of the number, built by long multiplication.
    let mut digits: Vec<u8> = Vec::new();
    for &byte in bytes {
        let mut carry = byte as u32;
        for digit in digits.iter_mut() {
            carry += (*digit as u32) << 8;
            *digit = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut text = "1".repeat(zeros);
    text.extend(digits.iter().rev().map(|&d| ALPHABET[d as usize] as char));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_matches_known_vectors() {
        assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(base58(&[0, 0, 1]), "112");
        assert_eq!(base58(&[]), "");
    }

    #[test]
    fn cids_look_like_cidv0_and_are_stable() {
        let first = cid(0);
        assert!(first.starts_with("Qm"), "{first}");
        assert_eq!(first.len(), 46);
        assert_eq!(first, cid(0));
        assert_ne!(first, cid(1));
        let all: std::collections::HashSet<_> = (0..1000).map(cid).collect();
        assert_eq!(all.len(), 1000);
    }
}
