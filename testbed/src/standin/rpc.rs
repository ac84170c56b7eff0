//! The cluster RPC between peers: JSON request and response lines over TCP connections to the
//! cluster listen address. Every message carries the sender's RPC protocol ID and the cluster
//! secret; a peer refuses other protocols ("protocol not supported", as libp2p's protocol
//! negotiation would) and other secrets (as the private network would).
//!
//! Connections stay open and are reused, one call at a time each, as libp2p keeps its streams'
//! connections: a connection per call made every peer's heartbeat pay a TCP handshake and a
//! thread per member and second, which kept 50 idle peers busy on most of two cores.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::datastore::CrdtState;
use super::error::{Error, Result};
use super::state::{ClusterState, Entry, Op};
use crate::release::MetricsCodec;

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

/// What the consensus asks of every member on each tick: the part of [`PeerStatus`] it uses,
/// with the membership check done by the member (a whole status carries the peerset, which
/// made the heartbeats of a big cluster mostly JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: String,
    pub staging: bool,
    /// Whether the caller is in this peer's peerset.
    pub lists_caller: bool,
    /// The (term, index) of this peer's last entry.
    pub term: u64,
    pub index: u64,
    /// The highest leadership term the peer has seen.
    pub current_term: u64,
    /// Whether the peer leads in that term.
    #[serde(default)]
    pub leading: bool,
}

/// The calls a peer serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Call {
    Id,
    /// The consensus tick's question (see [`Heartbeat`]).
    Heartbeat,
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
    /// A CRDT peer's ping metric: who it is, where it listens, the digest of its pinset and
    /// the peers it knows (what pubsub spreads in the real cluster).
    Gossip {
        ping: Ping,
    },
    /// A CRDT peer's whole pinset, to merge; the answer is the receiver's merged pinset.
    Merge {
        state: CrdtState,
    },
    /// A CRDT follower (`ipfs-cluster-follow`) asking a trusted peer for its pinset; the
    /// answer is a [`Reply::Merge`]. Unlike [`Call::Gossip`] it carries no metric, so the
    /// follower never shows in the trusted peers' peerset.
    Pull,
}

/// A CRDT peer's ping metric (see [`Call::Gossip`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping {
    /// The sender's cluster address (transport part).
    pub addr: String,
    /// The digest of the sender's pinset.
    pub digest: String,
    /// The peers the sender knows (ID → transport address).
    pub known: BTreeMap<String, String>,
    /// How the sender's release encodes the metric (0.13 and 0.14 differ, #1409).
    pub codec: MetricsCodec,
}

/// The successful answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Id {
        status: PeerStatus,
    },
    Heartbeat {
        beat: Heartbeat,
    },
    Vote {
        granted: bool,
    },
    Ack {
        accepted: bool,
    },
    Done,
    /// The answer to a ping: the receiver's own metric, digest and known peers.
    Gossip {
        digest: String,
        known: BTreeMap<String, String>,
        codec: MetricsCodec,
    },
    Merge {
        state: CrdtState,
    },
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
/// A server closes a connection that carried no call for this long; the client stops reusing
/// one well before, so it rarely finds a connection the server just closed.
const SERVER_IDLE: Duration = Duration::from_secs(30);
const CLIENT_IDLE: Duration = Duration::from_secs(20);
/// Idle connections kept per peer address (concurrent calls to one peer open more).
const POOL_PER_ADDR: usize = 4;

/// An open connection to a peer with its read buffer (a response is one line).
struct Conn {
    reader: BufReader<TcpStream>,
    idle_since: Instant,
}

/// Idle connections by peer address, shared by every caller in the process: each request
/// names its sender and credentials, so a connection carries no identity of its own.
static POOL: LazyLock<Mutex<HashMap<SocketAddr, Vec<Conn>>>> = LazyLock::new(Mutex::default);

fn take_idle(addr: SocketAddr) -> Option<Conn> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let conns = pool.get_mut(&addr)?;
    while let Some(conn) = conns.pop() {
        if conn.idle_since.elapsed() < CLIENT_IDLE {
            return Some(conn);
        }
    }
    None
}

fn put_idle(addr: SocketAddr, mut conn: Conn) {
    conn.idle_since = Instant::now();
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let conns = pool.entry(addr).or_default();
    if conns.len() < POOL_PER_ADDR {
        conns.push(conn);
    }
}

fn connect(addr: SocketAddr) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    Ok(Conn {
        reader: BufReader::new(stream),
        idle_since: Instant::now(),
    })
}

/// Sends one request line and reads the response line. `Ok(None)`: the connection ended
/// before any byte of the response (the peer closed it, or went away).
fn exchange(conn: &mut Conn, request: &str, timeout: Duration) -> io::Result<Option<String>> {
    if let Err(err) = send(conn, request, timeout) {
        return match err.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Ok(None),
            _ => Err(err),
        };
    }
    receive(conn, timeout)
}

fn send(conn: &mut Conn, request: &str, timeout: Duration) -> io::Result<()> {
    let stream = conn.reader.get_mut();
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request.as_bytes())
}

fn receive(conn: &mut Conn, timeout: Duration) -> io::Result<Option<String>> {
    conn.reader.get_mut().set_read_timeout(Some(timeout))?;
    let mut answer = String::new();
    match conn.reader.read_line(&mut answer) {
        Ok(0) => Ok(None),
        Ok(_) if answer.ends_with('\n') => Ok(Some(answer)),
        Ok(_) => Err(io::ErrorKind::UnexpectedEof.into()),
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset && answer.is_empty() => Ok(None),
        Err(err) => Err(err),
    }
}

fn request_line(creds: &Credentials, call: Call) -> String {
    let request = Request {
        protocol: creds.protocol.clone(),
        secret: creds.secret.clone(),
        from: creds.peer_id.clone(),
        call,
    };
    let mut line = serde_json::to_string(&request).expect("request serializes");
    line.push('\n');
    line
}

fn unreachable(addr: SocketAddr) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Unreachable {
        addr: addr.to_string(),
        source,
    }
}

/// Calls `call` on the peer at `addr`; `timeout` bounds the wait for the answer.
pub fn call(addr: SocketAddr, creds: &Credentials, call: Call, timeout: Duration) -> Result<Reply> {
    call_line(addr, creds, &request_line(creds, call), timeout)
}

fn call_line(
    addr: SocketAddr,
    creds: &Credentials,
    line: &str,
    timeout: Duration,
) -> Result<Reply> {
    // A reused connection may have been closed by the peer meanwhile (it restarted, or found
    // the connection idle): the request never reached it, so it is sent once more on a new
    // connection. A connection that failed in any other way is dropped, never reused.
    let (conn, answer) = match take_idle(addr) {
        Some(mut conn) => match exchange(&mut conn, line, timeout).map_err(unreachable(addr))? {
            Some(answer) => (conn, answer),
            None => fresh_exchange(addr, line, timeout).map_err(unreachable(addr))?,
        },
        None => fresh_exchange(addr, line, timeout).map_err(unreachable(addr))?,
    };
    reply(addr, conn, &answer, creds)
}

/// Calls `call` on every peer of `addrs` at once, without a thread each: the requests are all
/// sent, then the answers read in turn, each within what is left of `timeout`. The answers
/// come in the order of `addrs`.
pub fn call_many(
    addrs: &[SocketAddr],
    creds: &Credentials,
    call: Call,
    timeout: Duration,
) -> Vec<Result<Reply>> {
    let line = request_line(creds, call);
    let deadline = Instant::now() + timeout;
    let sent: Vec<io::Result<(Conn, bool)>> = addrs
        .iter()
        .map(|&addr| {
            if let Some(mut conn) = take_idle(addr) {
                if send(&mut conn, &line, timeout).is_ok() {
                    return Ok((conn, true));
                }
            }
            let mut conn = connect(addr)?;
            send(&mut conn, &line, timeout)?;
            Ok((conn, false))
        })
        .collect();
    addrs
        .iter()
        .zip(sent)
        .map(|(&addr, sent)| {
            let (mut conn, reused) = sent.map_err(unreachable(addr))?;
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            match receive(&mut conn, left).map_err(unreachable(addr))? {
                Some(answer) => reply(addr, conn, &answer, creds),
                // The peer had closed the reused connection: once more, alone, on a new one.
                None if reused => call_line(addr, creds, &line, left),
                None => Err(unreachable(addr)(io::ErrorKind::UnexpectedEof.into())),
            }
        })
        .collect()
}

/// Reads the response to a call; a connection that answered goes back to the pool.
fn reply(addr: SocketAddr, mut conn: Conn, answer: &str, creds: &Credentials) -> Result<Reply> {
    let response: Response =
        serde_json::from_str(answer).map_err(|source| Error::Malformed { source })?;
    conn.idle_since = Instant::now();
    put_idle(addr, conn);
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

fn fresh_exchange(addr: SocketAddr, line: &str, timeout: Duration) -> io::Result<(Conn, String)> {
    let mut conn = connect(addr)?;
    match exchange(&mut conn, line, timeout)? {
        Some(answer) => Ok((conn, answer)),
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// The peer-side handler of calls: (caller's peer ID, call) → reply.
pub type Handler = Arc<dyn Fn(&str, Call) -> Result<Reply> + Send + Sync>;

/// Serves calls until `stop` is set; one thread per connection, which answers its calls in turn.
pub fn serve(listener: TcpListener, creds: Credentials, handler: Handler, stop: Arc<AtomicBool>) {
    // Blocking accept: the process exits right after its shutdown, which ends this thread;
    // the flag only stops serving new calls once shutdown has begun.
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Ok(stream) = stream {
            let (creds, handler) = (creds.clone(), handler.clone());
            let stop = stop.clone();
            thread::spawn(move || answer(stream, &creds, &handler, &stop));
        }
    }
}

fn answer(stream: TcpStream, creds: &Credentials, handler: &Handler, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(SERVER_IDLE));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {}
            _ => return,
        }
        // Once shutdown has begun, calls are no longer answered (the caller sees the
        // connection close, as it would when the process is gone).
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let mut text =
            serde_json::to_string(&respond(&line, creds, handler)).expect("response serializes");
        text.push('\n');
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

fn respond(line: &str, creds: &Credentials, handler: &Handler) -> Response {
    match serde_json::from_str::<Request>(line) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn creds() -> Credentials {
        Credentials {
            protocol: "/ipfscluster/test/rpc".into(),
            secret: "s3cret".into(),
            peer_id: "QmCaller".into(),
        }
    }

    fn answer_ids() -> Handler {
        Arc::new(|from: &str, call: Call| match call {
            Call::Heartbeat => Ok(Reply::Heartbeat {
                beat: Heartbeat {
                    id: "QmServer".into(),
                    staging: false,
                    lists_caller: from == "QmCaller",
                    term: 1,
                    index: 2,
                    current_term: 3,
                    leading: true,
                },
            }),
            _ => Ok(Reply::Done),
        })
    }

    fn idle_count(addr: SocketAddr) -> usize {
        POOL.lock().unwrap().get(&addr).map_or(0, Vec::len)
    }

    /// A server that answers one call per connection and then closes it, as a peer that
    /// restarted (or dropped an idle connection) would; counts the connections it took.
    fn one_call_per_connection(accepted: Arc<AtomicUsize>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = answer_ids();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut text = serde_json::to_string(&respond(&line, &creds(), &handler)).unwrap();
                text.push('\n');
                let _ = (&stream).write_all(text.as_bytes());
            }
        });
        addr
    }

    #[test]
    fn calls_to_a_peer_reuse_one_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        thread::spawn(move || serve(listener, creds(), answer_ids(), stop));
        for _ in 0..3 {
            let reply = call(addr, &creds(), Call::Heartbeat, Duration::from_secs(2)).unwrap();
            assert!(matches!(reply, Reply::Heartbeat { beat } if beat.lists_caller));
            assert_eq!(idle_count(addr), 1);
        }
    }

    #[test]
    fn a_connection_the_peer_closed_is_replaced_and_the_call_sent_again() {
        let accepted = Arc::new(AtomicUsize::new(0));
        let addr = one_call_per_connection(accepted.clone());
        call(addr, &creds(), Call::Heartbeat, Duration::from_secs(2)).unwrap();
        // The pooled connection is closed on the server's side by now (or soon): the next call
        // finds it ended and goes through on a new connection, alone or in a batch.
        thread::sleep(Duration::from_millis(50));
        call(addr, &creds(), Call::Heartbeat, Duration::from_secs(2)).unwrap();
        thread::sleep(Duration::from_millis(50));
        let replies = call_many(&[addr], &creds(), Call::Heartbeat, Duration::from_secs(2));
        assert!(
            matches!(replies[..], [Ok(Reply::Heartbeat { .. })]),
            "{replies:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_batch_answers_in_order_and_names_the_peer_that_is_down() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = listener.local_addr().unwrap();
        thread::spawn(move || serve(listener, creds(), answer_ids(), Arc::default()));
        // A port nobody listens on: bound, then released.
        let down = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let replies = call_many(
            &[down, up, down],
            &creds(),
            Call::Heartbeat,
            Duration::from_secs(2),
        );
        assert_eq!(replies.len(), 3);
        assert!(
            matches!(&replies[0], Err(Error::Unreachable { addr, .. }) if *addr == down.to_string())
        );
        assert!(matches!(&replies[1], Ok(Reply::Heartbeat { .. })));
        assert!(matches!(&replies[2], Err(Error::Unreachable { .. })));
    }

    #[test]
    fn a_peer_that_is_shutting_down_answers_no_more_calls() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || serve(listener, creds(), answer_ids(), flag));
        call(addr, &creds(), Call::Id, Duration::from_secs(2)).unwrap();
        stop.store(true, Ordering::SeqCst);
        let err = call(addr, &creds(), Call::Id, Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    }

    #[test]
    fn other_protocols_and_secrets_are_refused_on_a_reused_connection_too() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || serve(listener, creds(), answer_ids(), Arc::default()));
        call(addr, &creds(), Call::Id, Duration::from_secs(2)).unwrap();
        let other_secret = Credentials {
            secret: "other".into(),
            ..creds()
        };
        let err = call(addr, &other_secret, Call::Id, Duration::from_secs(2)).unwrap_err();
        assert!(err.to_string().contains("secret mismatch"), "{err}");
        let other_protocol = Credentials {
            protocol: "/ipfscluster/other/rpc".into(),
            ..creds()
        };
        let err = call(addr, &other_protocol, Call::Id, Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, Error::ProtocolNotSupported), "{err}");
    }
}
