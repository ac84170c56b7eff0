//! The lab: real OpenSSH hosts on loopback, each running a stand-in IPFS Cluster peer under a
//! small service wrapper (or systemd, or in a Podman container driven by a `docker` command),
//! described by an inventory that cluster-upgrade can use.
//!
//! `up` builds a lab in a folder (with `--rtt`, behind a delaying relay), `status` reads it over SSH, `fault` breaks it on purpose and
//! `down` stops every process it started. Everything a later command needs is in `lab.json`.

pub mod bastion;
pub mod cache;
pub mod ctl;
pub mod docker;
pub mod down;
pub mod error;
pub mod fault;
pub mod hosts;
pub mod images;
pub mod inventory;
pub mod keys;
pub mod kubo;
pub mod latency;
pub mod layout;
pub mod login;
pub mod network;
pub mod parallel;
pub mod peer;
pub mod pins;
pub mod procs;
pub mod progress;
pub mod quote;
pub mod real;
pub mod real_up;
pub mod remote;
pub mod service;
pub mod stage;
pub mod state;
pub mod status;
pub mod systemd;
pub mod tree;
pub mod up;
pub mod wait;
pub mod wrapper;

pub use down::{down, DownReport};
pub use error::{LabError, Result};
pub use fault::{inject, Fault};
pub use layout::Layout;
pub use progress::{Progress, Silent};
pub use state::{Consensus, HostKind, HostRecord, LabState, Ports, RealLab, RealPorts};
pub use status::{status, HostStatus};
pub use up::{up, UpOptions, UpReport};
