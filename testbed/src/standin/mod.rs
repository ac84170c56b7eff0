//! The stand-in `ipfs-cluster-service` / `ipfs-cluster-ctl`.
//!
//! One executable plays both roles and every modelled release: it reads the trailer that
//! `release::write_release` appended to its own file and behaves as that role and version.
//! The behaviour follows `shared/ipfs-cluster-reference.md` closely enough that a wrong
//! upgrade procedure fails the way it would against the real Go binaries. Raft is modelled by
//! a small leader-based replication (see `consensus`); CRDT is not modelled.

mod api;
mod args;
mod backup;
mod config;
mod consensus;
mod ctl;
mod daemon;
mod duration;
mod error;
mod http;
mod identity;
mod lock;
mod logging;
mod multiaddr;
mod notify;
mod peerstore;
mod pin;
mod raftlog;
mod rpc;
mod service;
mod signals;
mod snapshot;
mod state;
mod state_cmd;

use crate::release::{self, Release, Role};

pub use error::Error;

/// Runs the stand-in as the role and release named by its own trailer; returns the exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let trailer = match release::own_trailer() {
        Ok(Some(trailer)) => trailer,
        Ok(None) => {
            eprintln!(
                "cluster-peer: this executable is not a release; make one with \
                 `cluster-lab release VERSION --out DIR` and run DIR/ipfs-cluster-service or DIR/ipfs-cluster-ctl"
            );
            return 1;
        }
        Err(err) => {
            eprintln!("cluster-peer: cannot read own executable: {err}");
            return 1;
        }
    };
    let Some(release) = Release::modelled(&trailer.version) else {
        eprintln!("cluster-peer: release {} is not modelled", trailer.version);
        return 1;
    };
    match trailer.role {
        Role::Service => service::run(&release, args),
        Role::Ctl => ctl::run(&release, args),
    }
}
