//! The stand-in for raft: a small leader-based replication that reproduces what an operator
//! observes, without real elections.
//!
//! Every tick each peer asks the members of its peerset for their status. The reachable set
//! is this peer plus the members that answer on the same RPC protocol and secret and list this
//! peer in their own peerset. When it is a strict majority of the peerset, the leader is the
//! reachable member with the highest (term, index) of its last entry, ties going to the lowest
//! peer ID, so every peer computes the same leader from the same facts.
//!
//! Safety follows raft's core rules, so that an acknowledged write is never lost:
//! * a peer that finds itself leader takes a term higher than any it has seen, and its
//!   entries carry that term; peers refuse entries of a term lower than one they have seen;
//! * a follower takes only the entry that directly extends its own state (checked by applying
//!   it and comparing with the leader's resulting state), so each index gets one entry;
//! * a write succeeds only when a majority holds it; the leader holds it tentatively while
//!   replicating and rolls back on failure.
//!
//! Followers behind the leader (or holding an uncommitted entry) pull its whole state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use super::logging;
use super::multiaddr::Multiaddr;
use super::raftlog;
use super::rpc::{self, Call, Credentials, PeerStatus, Reply};
use super::snapshot;
use super::state::{ClusterState, Entry, Op};
use crate::release::{Era, Release};

/// How often peers check on each other (small clusters; see `tick_interval`).
pub const TICK: Duration = Duration::from_millis(100);
/// How long a write keeps retrying while there is no usable leader.
const LEADER_WAIT: Duration = Duration::from_secs(3);
const PING_TIMEOUT: Duration = Duration::from_millis(700);
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a node needs to know about itself.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub release: Release,
    pub peer_id: String,
    pub peername: String,
    pub secret: String,
    /// Cluster listen address, transport part only (`/ip4/…/tcp/…`).
    pub cluster_addr: String,
    pub raft_dir: PathBuf,
}

#[derive(Debug)]
struct Inner {
    state: ClusterState,
    /// Digest of `state`, kept up to date by `set_state`.
    digest: String,
    leader: Option<String>,
    /// The highest term seen.
    current_term: u64,
    /// The term this peer leads in, while it is the leader.
    leader_term: Option<u64>,
    /// A commit of this peer is replicating: it takes no other entries meanwhile.
    committing: bool,
    /// Joining with `--bootstrap` and not yet part of a cluster: never elects anyone.
    staging: bool,
    /// Whether `raft.db` holds entries newer than the last snapshot.
    log_dirty: bool,
}

impl Inner {
    fn set_state(&mut self, state: ClusterState) {
        self.digest = digest(&state);
        self.current_term = self.current_term.max(state.term);
        self.state = state;
    }
}

fn digest(state: &ClusterState) -> String {
    let bytes = serde_json::to_vec(state).expect("state serializes");
    Sha256::digest(&bytes)
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One peer's consensus component.
#[derive(Debug)]
pub struct Node {
    settings: NodeSettings,
    creds: Credentials,
    inner: Mutex<Inner>,
    /// Serializes commits on the leader.
    commit_lock: Mutex<()>,
    stop: Arc<AtomicBool>,
}

/// Clears `committing` however a commit ends.
struct CommittingGuard<'a>(&'a Node);

impl Drop for CommittingGuard<'_> {
    fn drop(&mut self) {
        self.0.inner().committing = false;
    }
}

impl Node {
    /// A node starting from `state` (already replayed from disk).
    pub fn new(
        settings: NodeSettings,
        state: ClusterState,
        staging: bool,
        log_dirty: bool,
    ) -> Arc<Node> {
        let creds = Credentials {
            protocol: settings.release.rpc_protocol(),
            secret: settings.secret.clone(),
            peer_id: settings.peer_id.clone(),
        };
        let mut inner = Inner {
            state: ClusterState::default(),
            digest: String::new(),
            leader: None,
            current_term: 0,
            leader_term: None,
            committing: false,
            staging,
            log_dirty,
        };
        inner.set_state(state);
        Arc::new(Node {
            settings,
            creds,
            inner: Mutex::new(inner),
            commit_lock: Mutex::new(()),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn id(&self) -> &str {
        &self.settings.peer_id
    }

    /// The cluster listen address (transport part).
    pub fn cluster_addr(&self) -> &str {
        &self.settings.cluster_addr
    }

    pub fn release(&self) -> &Release {
        &self.settings.release
    }

    /// The cluster address with the era's peer-ID suffix.
    pub fn full_addr(&self, transport: &str, id: &str) -> String {
        let proto = match self.settings.release.era() {
            Era::Raft010 => "ipfs",
            Era::Modern => "p2p",
        };
        format!("{transport}/{proto}/{id}")
    }

    pub fn state(&self) -> ClusterState {
        self.inner().state.clone()
    }

    /// Ready means: part of a cluster that has a leader.
    pub fn has_leader(&self) -> bool {
        let inner = self.inner();
        inner.leader.is_some() && !inner.staging
    }

    /// Whether this peer was removed from the peerset it belonged to.
    pub fn is_removed(&self) -> bool {
        let inner = self.inner();
        !inner.staging && !inner.state.peerset.contains_key(&self.settings.peer_id)
    }

    /// This peer's answer to the `ID` call.
    pub fn status(&self) -> PeerStatus {
        let inner = self.inner();
        PeerStatus {
            id: self.settings.peer_id.clone(),
            peername: self.settings.peername.clone(),
            version: self.settings.release.version.clone(),
            rpc_protocol: self.creds.protocol.clone(),
            addresses: vec![self.full_addr(&self.settings.cluster_addr, &self.settings.peer_id)],
            peerset: inner.state.peerset.clone(),
            term: inner.state.term,
            index: inner.state.index,
            staging: inner.staging,
            current_term: inner.current_term,
            digest: inner.digest.clone(),
        }
    }

    /// Calls another peer by its cluster multiaddr.
    pub fn call(&self, addr: &str, call: Call, timeout: Duration) -> Result<Reply> {
        let socket: SocketAddr = Multiaddr::parse(addr)?.socket_addr()?;
        rpc::call(socket, &self.creds, call, timeout)
    }

    /// The status of another member, as `peers ls` shows it.
    pub fn peer_status(&self, addr: &str) -> Result<PeerStatus> {
        match self.call(addr, Call::Id, PING_TIMEOUT)? {
            Reply::Id { status } => Ok(status),
            _ => Err(Error::Remote {
                message: "unexpected reply".into(),
            }),
        }
    }

    /// The status of several members, asked in parallel.
    pub fn ask_all(&self, members: &[(&String, &String)]) -> Vec<Result<PeerStatus>> {
        thread::scope(|scope| {
            let asks: Vec<_> = members
                .iter()
                .map(|(_, addr)| scope.spawn(move || self.peer_status(addr)))
                .collect();
            asks.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Remote {
                            message: "status thread panicked".into(),
                        })
                    })
                })
                .collect()
        })
    }

    /// Serves one RPC call from another peer.
    pub fn handle(&self, _from: &str, call: Call) -> Result<Reply> {
        match call {
            Call::Id => Ok(Reply::Id {
                status: self.status(),
            }),
            Call::GetState => Ok(Reply::State {
                state: self.state(),
            }),
            Call::Append { entry, state } => Ok(Reply::Ack {
                accepted: self.accept(entry, state)?,
            }),
            Call::Commit { op } => self.commit_as_leader(op).map(|_| Reply::Done),
            Call::PeerAdd { id, addr } => {
                self.commit(Op::AddPeer { id, addr }).map(|_| Reply::Done)
            }
        }
    }

    /// Runs the heartbeat loop until stopped.
    pub fn run_ticker(self: &Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            self.tick();
            thread::sleep(self.tick_interval());
        }
    }

    /// `TICK` for small clusters, longer for big ones: every peer pings every member, so the
    /// load grows with the square of the size and would starve a 2-core machine at 20 peers.
    fn tick_interval(&self) -> Duration {
        let members = self.inner().state.peerset.len().max(1) as u32;
        (TICK * members.div_ceil(4)).min(Duration::from_secs(1))
    }

    /// One round: ping the members, compute the leader, catch up with it.
    pub fn tick(&self) {
        let me = self.settings.peer_id.clone();
        let (peerset, staging, mine, my_digest) = {
            let inner = self.inner();
            (
                inner.state.peerset.clone(),
                inner.staging,
                inner.state.position(),
                inner.digest.clone(),
            )
        };
        if staging || !peerset.contains_key(&me) {
            let mut inner = self.inner();
            inner.leader = None;
            inner.leader_term = None;
            return;
        }
        let mut reachable: Vec<(String, (u64, u64))> = vec![(me.clone(), mine)];
        let mut digests: BTreeMap<String, String> = BTreeMap::new();
        let mut seen_term = 0;
        let others: Vec<(&String, &String)> = peerset.iter().filter(|(id, _)| **id != me).collect();
        for ((id, _), answer) in others.iter().zip(self.ask_all(&others)) {
            match answer {
                Ok(status)
                    if status.id == **id && !status.staging && status.peerset.contains_key(&me) =>
                {
                    seen_term = seen_term.max(status.current_term);
                    digests.insert((*id).clone(), status.digest);
                    reachable.push(((*id).clone(), (status.term, status.index)));
                }
                Ok(_) => {}
                Err(err) => logging::debug("consensus", &format!("{id}: {err}")),
            }
        }
        let leader = choose_leader(reachable, peerset.len());
        if let Some((leader_id, position)) = &leader {
            let behind =
                *position != mine || digests.get(leader_id).is_some_and(|d| *d != my_digest);
            if *leader_id != me && behind {
                if let Err(err) = self.pull_from(&peerset[leader_id]) {
                    logging::debug(
                        "consensus",
                        &format!("could not catch up with {leader_id}: {err}"),
                    );
                }
            }
        }
        let mut inner = self.inner();
        inner.current_term = inner.current_term.max(seen_term);
        let leader = leader.map(|l| l.0);
        if leader.as_deref() == Some(me.as_str()) {
            // A new leadership (or one that another peer's term overtook) takes a fresh term.
            if inner.leader_term.is_none_or(|t| t < inner.current_term) {
                inner.current_term += 1;
                inner.leader_term = Some(inner.current_term);
            }
        } else {
            inner.leader_term = None;
        }
        if inner.leader != leader {
            match &leader {
                Some(id) => logging::info("consensus", &format!("Current Raft Leader: {id}")),
                None => logging::info("consensus", "Raft Leader lost"),
            }
        }
        inner.leader = leader;
    }

    fn pull_from(&self, addr: &str) -> Result<()> {
        let Reply::State { state } = self.call(addr, Call::GetState, PUSH_TIMEOUT)? else {
            return Err(Error::Remote {
                message: "unexpected reply".into(),
            });
        };
        let mut inner = self.inner();
        // Never step back (an append may have overtaken the pull), and never disturb a commit.
        if inner.committing
            || state.position() < inner.state.position()
            || digest(&state) == inner.digest
        {
            return Ok(());
        }
        let entry = Entry {
            term: state.term,
            index: state.index,
            op: Op::Replace {
                state: state.clone(),
            },
        };
        raftlog::append(&self.settings.raft_dir, &entry)?;
        inner.set_state(state);
        inner.log_dirty = true;
        Ok(())
    }

    /// A pushed entry from a leader, with the leader's resulting state. Returns whether it was
    /// taken.
    fn accept(&self, entry: Entry, state: ClusterState) -> Result<bool> {
        let mut inner = self.inner();
        let me = &self.settings.peer_id;
        if entry.term < inner.current_term || inner.committing {
            return Ok(false);
        }
        inner.current_term = entry.term;
        if inner.staging {
            if !state.peerset.contains_key(me) {
                return Ok(false);
            }
            inner.staging = false;
            let logged = Entry {
                term: state.term,
                index: state.index,
                op: Op::Replace {
                    state: state.clone(),
                },
            };
            raftlog::append(&self.settings.raft_dir, &logged)?;
            inner.set_state(state);
            inner.log_dirty = true;
            return Ok(true);
        }
        if entry.index == inner.state.index {
            return Ok(inner.state == state);
        }
        if entry.index != inner.state.index + 1 {
            return Ok(false);
        }
        let mut candidate = inner.state.clone();
        candidate.apply(&entry);
        if candidate != state {
            return Ok(false);
        }
        raftlog::append(&self.settings.raft_dir, &entry)?;
        inner.set_state(candidate);
        inner.log_dirty = true;
        Ok(true)
    }

    /// Commits a write, forwarding it to the leader when this peer is a follower. Leadership
    /// can move while peers learn about a change (a joiner with a lower ID, a restart), so
    /// "no leader" and "no quorum" answers are retried until `LEADER_WAIT` has passed; every
    /// operation is idempotent, which makes the retry safe.
    pub fn commit(&self, op: Op) -> Result<()> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Err(Error::ShuttingDown);
            }
            let (leader, addr) = {
                let inner = self.inner();
                let leader = if inner.staging {
                    None
                } else {
                    inner.leader.clone()
                };
                let addr = leader
                    .as_ref()
                    .and_then(|l| inner.state.peerset.get(l).cloned());
                (leader, addr)
            };
            let attempt = match (leader, addr) {
                (Some(leader), _) if leader == self.settings.peer_id => {
                    self.commit_as_leader(op.clone())
                }
                (Some(_), Some(addr)) => self
                    .call(&addr, Call::Commit { op: op.clone() }, FORWARD_TIMEOUT)
                    .map(|_| ()),
                _ => Err(Error::NoLeader),
            };
            match attempt {
                Err(err) if is_transient(&err) && Instant::now() < deadline => {
                    thread::sleep(TICK / 2)
                }
                other => return other,
            }
        }
    }

    /// Applies a write as the leader: hold it tentatively, replicate, keep it with a majority.
    fn commit_as_leader(&self, op: Op) -> Result<()> {
        let _serial = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let me = self.settings.peer_id.clone();
        let (old, entry, new) = {
            let mut inner = self.inner();
            let term = match inner.leader_term {
                Some(term) if inner.leader.as_deref() == Some(me.as_str()) && !inner.staging => {
                    term
                }
                _ => return Err(Error::NoLeader),
            };
            let old = inner.state.clone();
            match &op {
                Op::RemovePeer { id } if !old.peerset.contains_key(id) => {
                    logging::warn("raft", &format!("{id} is not among raft peers"));
                    return Ok(());
                }
                Op::RemovePeer { id } if *id == me && old.peerset.len() == 1 => {
                    return Err(Error::OnePeer)
                }
                Op::Unpin { cid } if !old.pins.contains_key(cid) => {
                    return Err(Error::Remote {
                        message: format!("{cid} is not part of the global state"),
                    })
                }
                _ => {}
            }
            let entry = Entry {
                term,
                index: old.index + 1,
                op,
            };
            let mut new = old.clone();
            new.apply(&entry);
            inner.committing = true;
            inner.set_state(new.clone());
            (old, entry, new)
        };
        let _committing = CommittingGuard(self);
        let mut targets: BTreeMap<String, String> = old.peerset.clone();
        targets.extend(new.peerset.clone());
        targets.remove(&me);
        let call = Call::Append {
            entry: entry.clone(),
            state: new.clone(),
        };
        // Pushed in parallel: a commit costs one round trip, not one per member.
        let accepted: Vec<bool> = thread::scope(|scope| {
            let pushes: Vec<_> = targets
                .iter()
                .map(|(id, addr)| {
                    let call = call.clone();
                    scope.spawn(move || match self.call(addr, call, PUSH_TIMEOUT) {
                        Ok(Reply::Ack { accepted }) => accepted,
                        Ok(_) => false,
                        Err(err) => {
                            logging::debug("consensus", &format!("replicating to {id}: {err}"));
                            false
                        }
                    })
                })
                .collect();
            pushes
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect()
        });
        let acks = usize::from(new.peerset.contains_key(&me))
            + targets
                .keys()
                .zip(accepted)
                .filter(|(id, ok)| *ok && new.peerset.contains_key(*id))
                .count();
        let mut inner = self.inner();
        if acks * 2 <= new.peerset.len() {
            inner.set_state(old);
            return Err(Error::NoQuorum);
        }
        raftlog::append(&self.settings.raft_dir, &entry)?;
        inner.log_dirty = true;
        Ok(())
    }

    /// Takes a snapshot if anything was committed since the last one (raft refuses to
    /// snapshot "nothing new"), then empties `raft.db`.
    pub fn snapshot_if_dirty(&self) -> Result<bool> {
        let mut inner = self.inner();
        if !inner.log_dirty {
            return Ok(false);
        }
        snapshot::write(
            &self.settings.raft_dir,
            &inner.state,
            &self.settings.release,
        )?;
        raftlog::clear(&self.settings.raft_dir)?;
        inner.log_dirty = false;
        Ok(true)
    }
}

/// The leader among the reachable members (this peer included) of a peerset of `members`:
/// none without a strict majority, else the highest (term, index), ties to the lowest peer ID,
/// so every peer that sees the same facts picks the same leader.
fn choose_leader(
    mut reachable: Vec<(String, (u64, u64))>,
    members: usize,
) -> Option<(String, (u64, u64))> {
    if reachable.len() * 2 <= members {
        return None;
    }
    reachable.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    reachable.into_iter().next()
}

/// Whether an error may go away by itself once the peers agree on a leader again.
fn is_transient(err: &Error) -> bool {
    let transient = |message: &str| {
        [Error::NoLeader.to_string(), Error::NoQuorum.to_string()]
            .iter()
            .any(|m| m == message)
    };
    match err {
        Error::NoLeader | Error::NoQuorum => true,
        Error::Remote { message } => transient(message),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin::pin::Pin;

    fn r(id: &str, index: u64) -> (String, (u64, u64)) {
        (id.to_string(), (1, index))
    }

    #[test]
    fn the_leader_needs_a_strict_majority() {
        assert_eq!(choose_leader(vec![r("a", 1)], 1).unwrap().0, "a");
        assert!(choose_leader(vec![r("a", 1)], 2).is_none());
        assert!(choose_leader(vec![r("a", 1), r("b", 1)], 4).is_none());
        assert!(choose_leader(vec![r("a", 1), r("b", 1)], 3).is_some());
    }

    #[test]
    fn the_most_recent_state_leads_and_ties_go_to_the_lowest_id() {
        assert_eq!(
            choose_leader(vec![r("b", 3), r("a", 3), r("c", 2)], 3)
                .unwrap()
                .0,
            "a"
        );
        assert_eq!(
            choose_leader(vec![r("b", 3), r("a", 2), r("c", 2)], 3)
                .unwrap()
                .0,
            "b"
        );
        let newer_term = ("z".to_string(), (2, 1));
        assert_eq!(
            choose_leader(vec![r("a", 9), newer_term], 2).unwrap().0,
            "z"
        );
    }

    #[test]
    fn transient_errors_are_recognised_across_rpc() {
        assert!(is_transient(&Error::NoLeader));
        assert!(is_transient(&Error::Remote {
            message: Error::NoQuorum.to_string()
        }));
        assert!(!is_transient(&Error::OnePeer));
    }

    fn node(dir: &std::path::Path) -> Arc<Node> {
        let settings = NodeSettings {
            release: Release::modelled("0.10.1").unwrap(),
            peer_id: "c".into(),
            peername: "c".into(),
            secret: String::new(),
            cluster_addr: "/ip4/127.0.0.1/tcp/1".into(),
            raft_dir: dir.to_path_buf(),
        };
        let peerset = ["a", "b", "c"]
            .iter()
            .map(|p| (p.to_string(), String::new()))
            .collect();
        Node::new(
            settings,
            ClusterState {
                peerset,
                term: 1,
                index: 1,
                ..Default::default()
            },
            false,
            false,
        )
    }

    fn push(base: &ClusterState, term: u64, n: usize) -> (Entry, ClusterState) {
        let cid = format!(
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb{}",
            ["dG", "dH", "dJ"][n]
        );
        let entry = Entry {
            term,
            index: base.index + 1,
            op: Op::Pin {
                pin: Pin::everywhere(&cid, "").unwrap(),
            },
        };
        let mut state = base.clone();
        state.apply(&entry);
        (entry, state)
    }

    #[test]
    fn a_follower_takes_one_entry_per_index_and_no_stale_terms() {
        let dir = tempfile::tempdir().unwrap();
        let c = node(dir.path());
        let base = c.state();
        let (x, x_state) = push(&base, 2, 0);
        let (y, y_state) = push(&base, 2, 1);
        assert!(c.accept(x.clone(), x_state.clone()).unwrap());
        assert!(
            !c.accept(y, y_state).unwrap(),
            "a second entry for the same index"
        );
        assert!(
            c.accept(x, x_state.clone()).unwrap(),
            "a repeated push is acknowledged"
        );
        let (stale, stale_state) = push(&x_state, 1, 2);
        assert!(
            !c.accept(stale, stale_state).unwrap(),
            "an entry of an older term"
        );
        let (gap, gap_state) = push(&push(&x_state, 2, 1).1, 2, 2);
        assert!(
            !c.accept(gap, gap_state).unwrap(),
            "an entry that does not extend our state"
        );
        assert_eq!(raftlog::entries(dir.path()).unwrap().len(), 1);
    }
}
