//! Facts about each host, gathered by read-only probes over SSH: versions, whether the peer
//! runs, its ID and the peers it sees, RPC protocol, state format, pinset, consensus and raft
//! settings.

mod container;
mod gather;
mod model;
mod parse;
mod probe;
mod unit;

pub use container::{
    Container, ContainerFacts, Mount, PortBinding, RestartPolicy, Ulimit,
    DEFAULT_CONTAINER_CONFIG_PATH,
};
pub use gather::{
    connect_all, connect_and_probe, probe_all, probe_session, Connection, ProbeTarget, Probed,
    Probing, Then, ThenOutput,
};
pub use model::{Consensus, HostFacts, Lease, PeerError, Peerset, Pinset, StoredState};
pub use parse::{
    listed_cids, parse_lease, parse_peers, parse_probe_output, pinset_of_listing, section,
};
pub use probe::{peers_script, probe_script, ProbeScope, ProbeVars, LEASE_FILE};
pub use unit::{parse_unit, UnitFacts};
