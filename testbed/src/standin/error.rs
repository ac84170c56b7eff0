//! Errors of the stand-in. Their `Display` texts are the messages the real binaries print,
//! because tests and the lab match on them.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the stand-in service, ctl or consensus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    ParseJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cluster.Peers and cluster.Bootstrap keys have been deprecated")]
    DeprecatedKeys,
    #[error("{key}: invalid duration {value:?}")]
    InvalidDuration { key: &'static str, value: String },
    #[error("invalid multiaddr {addr:?}")]
    InvalidMultiaddr { addr: String },
    #[error("invalid p2p multiaddr: {addr} has no /ipfs/ or /p2p/ peer ID")]
    MissingPeerId { addr: String },
    #[error("identity not found in {}: run init first", path.display())]
    NoIdentity { path: PathBuf },
    /// The ≤ 0.10 lock failure text.
    #[error("could not obtain execution lock")]
    LockOld,
    /// The ≥ 0.11 lock failure text.
    #[error("{reason}. If no other ipfs-cluster-service process is running, remove {}, or make sure that the config folder is writable for the user running ipfs-cluster-service.", path.display())]
    LockModern { reason: String, path: PathBuf },
    #[error("outdated state version stored")]
    OutdatedState,
    #[error("state version {found} stored is newer than the supported version {supported}")]
    NewerState { found: u8, supported: u8 },
    #[error("no snapshot found")]
    NoSnapshot,
    #[error("version migration not supported")]
    MigrationNotSupported,
    #[error("error restoring snapshot {}: {detail}", path.display())]
    SnapshotDecode { path: PathBuf, detail: String },
    #[error("{detail}")]
    ImportShape { detail: String },
    /// `init --consensus` or `--datastore` with a value the release does not offer (the text
    /// is the release's).
    #[error("{0}")]
    FlagChoice(&'static str),
    /// A datastore the release has no component for.
    #[error("datastore {datastore:?} is not available in this release")]
    NoSuchDatastore { datastore: String },
    /// pebble v2's `Options.Validate`.
    #[error("FormatMajorVersion ({format}) must be between {oldest} and {newest}")]
    PebbleFormatRange {
        format: u32,
        oldest: u32,
        newest: u32,
    },
    /// pebble v1's `Options.Validate`.
    #[error("FormatMajorVersion ({format}) must be <= {newest}")]
    PebbleFormatNewer { format: u32, newest: u32 },
    /// go-ds-pebble's wrapping of pebble's refusal to open a store.
    #[error("failed to open pebble database: {detail}")]
    PebbleOpen { detail: String },
    #[error("listen tcp {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{} exists. Try running: ipfs-cluster-service -f init", path.display())]
    ConfigExists { path: PathBuf },
    #[error("aborted")]
    Aborted,
    /// `ipfs-cluster-follow NAME run` before `init`.
    #[error("no configuration for cluster {name} in {}: run ipfs-cluster-follow {name} init <trusted peer multiaddr>", path.display())]
    NoFollowerConfig { name: String, path: PathBuf },
    /// `ipfs-cluster-follow NAME init` needs the cluster's secret (the real template holds it).
    #[error("CLUSTER_SECRET is not set: a follower needs the cluster's secret")]
    NoFollowerSecret,
    /// A peer answered with another RPC protocol ID (libp2p protocol negotiation failed).
    #[error("protocol not supported")]
    ProtocolNotSupported,
    #[error("private network secret mismatch")]
    SecretMismatch,
    #[error("dial {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// An error reported by the other side of an RPC or HTTP call.
    #[error("{message}")]
    Remote { message: String },
    #[error("no leader found")]
    NoLeader,
    #[error("could not commit: no quorum of peers acknowledged the operation")]
    NoQuorum,
    #[error("cannot take snapshot now, wait until the configuration entry at {index} has been applied (have applied {})", index.saturating_sub(1))]
    ConfigurationPending { index: u64 },
    #[error("cannot remove ourselves from a 1-peer cluster")]
    OnePeer,
    #[error("this peer is shutting down")]
    ShuttingDown,
    #[error("malformed message: {source}")]
    Malformed {
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid cid {cid:?}")]
    InvalidCid { cid: String },
    #[error("unsupported encoding")]
    UnsupportedEncoding,
    /// `api.restapi` JSON that encoding/json refuses (the text is Go's).
    #[error("{detail}")]
    ApiConfigUnmarshal { detail: String },
    /// `api.restapi` that fails the real `Validate` (the text is the real one).
    #[error("{detail}")]
    ApiConfigInvalid { detail: String },
    /// `api.restapi.ssl_cert_file`/`ssl_key_file`: the stand-in serves plain HTTP only, and
    /// says so rather than serve plain HTTP where HTTPS was configured.
    #[error("api.restapi.ssl_cert_file/ssl_key_file are set, but the stand-in does not model TLS (it serves plain HTTP only): remove them or use the real ipfs-cluster-service")]
    TlsNotModelled,
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Result alias of the stand-in.
pub type Result<T> = std::result::Result<T, Error>;
