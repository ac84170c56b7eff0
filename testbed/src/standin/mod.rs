//! The stand-in `ipfs-cluster-service` / `ipfs-cluster-ctl` / `ipfs-cluster-follow` (≥ 0.11).
//!
//! One executable plays both roles and every modelled release: it reads the trailer that
//! `release::write_release` appended to its own file and behaves as that role and version.
//! The behaviour follows `shared/ipfs-cluster-reference.md` closely enough that a wrong
//! upgrade procedure fails the way it would against the real Go binaries. Raft is modelled by
//! a small leader-based replication (see `consensus`); CRDT (≥ 0.11, the default of `init`)
//! by merged per-CID writes and ping metrics (see `consensus::crdt` and `datastore`).
//! A follower (`ipfs-cluster-follow`, see `follow`) is a CRDT peer in follower mode.
//! `tests/it/fidelity.rs` compares the 1.x releases with the real binaries (`docs/fidelity.md`).
//!
//! # For lab authors
//! * Config folder: `-c DIR`, else `IPFS_CLUSTER_PATH`, else `$HOME/.ipfs-cluster`.
//! * Environment read by `init` and by every later config load: `CLUSTER_PEERNAME`,
//!   `CLUSTER_SECRET`, `CLUSTER_LISTENMULTIADDRESS`, `CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS`,
//!   `CLUSTER_RAFT_WAITFORLEADERTIMEOUT`, `CLUSTER_LEAVEONSHUTDOWN`, `CLUSTER_PEERWATCHINTERVAL`,
//!   `CLUSTER_MONITORPINGINTERVAL` (a CRDT peer's metrics live twice as long);
//!   `NOTIFY_SOCKET` (sd_notify `READY=1`, from 1.0.7).
//! * `service.json` keys: `cluster.{id,private_key (≤0.10),peername,secret,leave_on_shutdown,
//!   listen_multiaddress,peer_watch_interval}`, `consensus.raft.{init_peerset,
//!   wait_for_leader_timeout,backups_rotate}` or `consensus.crdt` (its presence selects CRDT),
//!   `datastore.<backend>` (a CRDT peer's datastore; `pebble_options.format_major_version`),
//!   `cluster.monitor_ping_interval`, `api.restapi.http_listen_multiaddress`,
//!   `api.restapi.basic_auth_credentials` (Basic auth of the REST API, see `auth`). Unknown
//!   keys are preserved. Peers must listen on distinct, dialable addresses (not `0.0.0.0` when
//!   they live on different loopback IPs): the listen address is what the others dial.
//! * Log lines (stderr) worth waiting for: `Initializing. For verbose output run with "-l debug".
//!   Please wait...`, `IPFS Cluster v<ver> listening on:` (next line: the multiaddr with
//!   `/ipfs/<id>` or `/p2p/<id>`), `** IPFS Cluster is READY **`, `***** ipfs-cluster consensus
//!   start timed out (tips below) *****`, `bootstrap to <maddr> failed: <err>`,
//!   `<id>: removed from raft. Initiating shutdown`, `Out of date ipfs-cluster state is saved.`,
//!   `Skipping migration of up-to-date state`.
//! * The daemon exits 0 after a clean stop, a ready timeout or its removal; 1 on `checkErr`
//!   failures (`error <doing>: <err>`); 255 (1.x: 1) on the third signal.
//!
//! # Faults modelled on purpose
//! * An interrupted CRDT merge (ADR 0015; `dirty`): with the real 1.0.x a stop (SIGTERM)
//!   that races go-ds-crdt's merge leaves updates whose heads are recorded but whose pins are
//!   not in the store, and marks the store dirty. The stand-in never races; `cluster-lab fault
//!   interrupted-merge HOST --pins N` writes `<config>/standin-interrupted-merge` (holding N),
//!   and the peer's next clean stop on a release with go-ds-crdt v0.3–v0.5 (0.14.5 to 1.1.1)
//!   leaves out of its store the N live pins it received last (highest CRDT stamps — Lamport
//!   clock, then writer ID — among pins written by other peers; its own writes never wait in
//!   the merge queue), records their stamps as processed (`processed` in the datastore's
//!   `standin-crdt.json`), marks the store dirty (`dirty`), logs go-ds-crdt's lines and
//!   removes the marker. Releases with go-ds-crdt v0.6 (1.1.2 on) and before v0.3 leave the
//!   marker for a later stop. At start, v0.3–v0.5 repair a dirty store (the processed set is
//!   dropped, so the next exchange brings the pins back); v0.6 logs `Dirty: false` and "store
//!   is marked clean. No need to repair" and keeps the processed set: merges never take those
//!   updates back (a later write of the same CID does apply), `pin ls`, `status` and `state
//!   export` of that peer lack the pins for good, the other peers keep them. `state cleanup`
//!   removes the set with the pinset, so the blank peer resyncs fully. The boundary follows
//!   each release's go.mod (1.1.0 and 1.1.1, not modelled, still ship v0.5.2); that the real
//!   1.0.8 repairs such a store at its next start is taken from go-ds-crdt's source
//!   (`repair()` runs at start), not observed.
//!
//! # Deviations from the real binaries
//! * A CRDT peer keeps its pinset in one JSON file inside its datastore folder (`badger/`,
//!   `badger3/`, `leveldb/` or `pebble/`), not in the backend's files; of pebble's files only
//!   what shows the store's format is kept (`CURRENT`, `marker.format-version.*`, `OPTIONS-*`;
//!   see `pebble` and ADR 0012). It is ready at once (no IPFS daemon to wait for) and its pins
//!   are PINNED at once.
//! * `service.json` holds only the sections the stand-in reads (plus unknown keys it keeps).
//! * Peers of different RPC protocol IDs never count for each other, even for raft traffic
//!   (real raft replication would cross versions; the project wants such peers not to form a
//!   cluster).
//! * Elections are simplified: every peer computes the same candidate from what it can reach
//!   (the most recent last entry, ties to the lowest peer ID), and that candidate leads once a
//!   majority votes for it. Terms, votes and log matching keep acknowledged writes as raft
//!   does (see `consensus`); the highest term seen is kept in `raft/term` rather than in
//!   `raft.db`. Caught-up followers receive entries (concurrent writes share one round); a
//!   follower that is behind receives the leader's whole state.
//! * No 0.3.x release is modelled, so the 0.3-only behaviours (default daemon, global
//!   `--bootstrap`, `cluster.peers` mismatch, `init` refusing without `-f`) are absent.
//! * Snapshots are taken on clean shutdown, migration and import only, never periodically.
//! * The REST API speaks plain HTTP only: a daemon whose `api.restapi.ssl_cert_file` or
//!   `ssl_key_file` is set refuses to start, and the ctl's `--https` gets only as far as Go's
//!   client does against a plain HTTP server. Bearer (JWT) tokens are always invalid.

mod api;
mod args;
mod auth;
mod backup;
mod config;
mod consensus;
pub mod crash;
mod ctl;
mod daemon;
mod datastore;
pub mod dirty;
pub mod duration;
mod error;
mod follow;
mod http;
mod identity;
mod lock;
mod logging;
mod multiaddr;
mod notify;
mod pebble;
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
        Role::Follow => follow::run(&release, args),
    }
}
