//! The cluster RPC between peers: one JSON request line and one JSON response line per TCP
//! connection on the cluster listen address. Every message carries the sender's RPC protocol
//! ID and the cluster secret; a peer refuses other protocols ("protocol not supported", as
//! libp2p's protocol negotiation would) and other secrets (as the private network would).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::state::{ClusterState, Entry, Op};

/// What a peer says about itself (`ID` RPC); also the heartbeat of the consensus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: String,
    pub peername: String,
    pub version: String,
    pub rpc_protocol: String,
    /// The cluster addresses, with the `/ipfs/` or `/p2p/` suffix.
    pub addresses: Vec<String>,
    pub peerset: BTreeMap<String, String>,
    pub term: u64,
    pub index: u64,
    /// Whether the peer is joining via `--bootstrap` and has no state yet.
    pub staging: bool,
    /// The highest leadership term the peer has seen.
    #[serde(default)]
    pub current_term: u64,
}

/// The calls a peer serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Call {
    Id,
    /// A peer that the leader choice names asking for the votes that make it leader of `term`.
    Vote {
        term: u64,
        /// The (term, index) of the candidate's last entry.
        last_term: u64,
        last_index: u64,
    },
    /// The leader of `term` replicating entries to a follower whose last entry is `prev`.
    Append {
        term: u64,
        prev_term: u64,
        prev_index: u64,
        entries: Vec<Entry>,
    },
    /// The leader of `term` sending its whole state to a follower that is behind (a joiner,
    /// a restarted peer, one that missed entries or holds entries that were never committed).
    Install {
        term: u64,
        state: ClusterState,
    },
    /// A follower forwarding a write to the leader.
    Commit {
        op: Op,
    },
    /// A joiner asking to be added (`Cluster.PeerAdd`).
    PeerAdd {
        id: String,
        addr: String,
    },
}

/// The successful answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Id { status: PeerStatus },
    Vote { granted: bool },
    Ack { accepted: bool },
    Done,
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    protocol: String,
    secret: String,
    from: String,
    call: Call,
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<Reply>,
}

/// Who is calling: the identity and credentials put on every request.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub protocol: String,
    pub secret: String,
    pub peer_id: String,
}

const PROTOCOL_NOT_SUPPORTED: &str = "protocol not supported";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// Calls `call` on the peer at `addr`; `timeout` bounds the wait for the answer.
pub fn call(addr: SocketAddr, creds: &Credentials, call: Call, timeout: Duration) -> Result<Reply> {
    let unreachable = |source| Error::Unreachable {
        addr: addr.to_string(),
        source,
    };
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(unreachable)?;
    let request = Request {
        protocol: creds.protocol.clone(),
        secret: creds.secret.clone(),
        from: creds.peer_id.clone(),
        call,
    };
    let mut line = serde_json::to_string(&request).expect("request serializes");
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(unreachable)?;
    let response: Response =
        serde_json::from_str(&answer).map_err(|source| Error::Malformed { source })?;
    if response.protocol != creds.protocol {
        return Err(Error::ProtocolNotSupported);
    }
    match (response.error, response.reply) {
        (Some(message), _) if message == PROTOCOL_NOT_SUPPORTED => Err(Error::ProtocolNotSupported),
        (Some(message), _) => Err(Error::Remote { message }),
        (None, Some(reply)) => Ok(reply),
        (None, None) => Err(Error::Remote {
            message: "empty response".into(),
        }),
    }
}

/// The peer-side handler of calls: (caller's peer ID, call) → reply.
pub type Handler = Arc<dyn Fn(&str, Call) -> Result<Reply> + Send + Sync>;

/// Serves calls until `stop` is set; one thread per connection.
pub fn serve(listener: TcpListener, creds: Credentials, handler: Handler, stop: Arc<AtomicBool>) {
    // Blocking accept: the process exits right after its shutdown, which ends this thread;
    // the flag only stops serving new calls once shutdown has begun.
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Ok(stream) = stream {
            let (creds, handler) = (creds.clone(), handler.clone());
            thread::spawn(move || answer(stream, &creds, &handler));
        }
    }
}

fn answer(stream: TcpStream, creds: &Credentials, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response {
            protocol: creds.protocol.clone(),
            error: Some(e.to_string()),
            reply: None,
        },
        Ok(req) if req.protocol != creds.protocol => Response {
            protocol: creds.protocol.clone(),
            error: Some(PROTOCOL_NOT_SUPPORTED.into()),
            reply: None,
        },
        Ok(req) if req.secret != creds.secret => Response {
            protocol: creds.protocol.clone(),
            error: Some(Error::SecretMismatch.to_string()),
            reply: None,
        },
        Ok(req) => match handler(&req.from, req.call) {
            Ok(reply) => Response {
                protocol: creds.protocol.clone(),
                error: None,
                reply: Some(reply),
            },
            Err(e) => Response {
                protocol: creds.protocol.clone(),
                error: Some(e.to_string()),
                reply: None,
            },
        },
    };
    let mut text = serde_json::to_string(&response).expect("response serializes");
    text.push('\n');
    let mut stream = stream;
    let _ = stream.write_all(text.as_bytes());
}
