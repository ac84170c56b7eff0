//! cluster-upgrade: safe, resumable upgrades of IPFS Cluster peers over SSH.

pub mod inventory;
pub mod procedure;
pub mod transport;
pub mod version;
