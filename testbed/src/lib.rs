//! Test bed for cluster-upgrade: a faithful stand-in for the IPFS Cluster binaries and a lab
//! of real OpenSSH hosts on loopback. Not part of the shipped tool.

pub mod delay;
pub mod lab;
pub mod netns;
pub mod relay;
pub mod release;
pub mod sshd;
pub mod standin;
