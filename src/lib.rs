//! cluster-upgrade: safe, resumable upgrades of IPFS Cluster peers over SSH.

pub mod cli;
pub mod command;
pub mod error;
pub mod exec;
pub mod facts;
pub mod inventory;
pub mod journal;
mod message;
pub mod migrate;
pub mod plan;
pub mod procedure;
pub mod prune;
pub mod recover;
pub mod report;
pub mod rollback;
pub mod transport;
