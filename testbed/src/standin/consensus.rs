//! The stand-in for raft: a small leader-based replication that reproduces what an operator
//! observes, without real elections.
//!
//! Every `TICK` each peer asks the members of its peerset for their status. The reachable set
//! is this peer plus the members that answer on the same RPC protocol and secret and list this
//! peer in their own peerset. When it is a strict majority of the peerset, the leader is the
//! reachable member with the highest (term, index), ties going to the lowest peer ID, so every
//! peer computes the same leader from the same facts. Followers behind the leader pull its whole
//! state. Writes go to the leader, which appends them to `raft.db`, pushes them to the other
//! members and succeeds only with a majority of acknowledgements.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::logging;
use super::multiaddr::Multiaddr;
use super::raftlog;
use super::rpc::{self, Call, Credentials, PeerStatus, Reply};
use super::snapshot;
use super::state::{ClusterState, Entry, Op};
use crate::release::{Era, Release};

/// How often peers check on each other.
pub const TICK: Duration = Duration::from_millis(100);
/// How long a write waits for a leader to appear before failing.
const LEADER_WAIT: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_millis(700);
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The leader among the reachable members (this peer included) of a peerset of `members`:
/// none without a strict majority, else the highest (term, index), ties to the lowest peer ID,
/// so every peer that sees the same facts picks the same leader.
fn choose_leader(mut reachable: Vec<(String, (u64, u64))>, members: usize) -> Option<(String, (u64, u64))> {
    if reachable.len() * 2 <= members {
        return None;
    }
    reachable.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    reachable.into_iter().next()
}

/// Whether an error only says that there is no leader right now.
fn is_leaderless(err: &Error) -> bool {
    match err {
        Error::NoLeader => true,
        Error::Remote { message } => *message == Error::NoLeader.to_string(),
        _ => false,
    }
}

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
    leader: Option<String>,
    /// Joining with `--bootstrap` and not yet part of a cluster: never elects anyone.
    staging: bool,
    /// Whether `raft.db` holds entries newer than the last snapshot.
    log_dirty: bool,
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

impl Node {
    /// A node starting from `state` (already replayed from disk).
    pub fn new(settings: NodeSettings, state: ClusterState, staging: bool, log_dirty: bool) -> Arc<Node> {
        let creds = Credentials {
            protocol: settings.release.rpc_protocol(),
            secret: settings.secret.clone(),
            peer_id: settings.peer_id.clone(),
        };
        Arc::new(Node {
            settings,
            creds,
            inner: Mutex::new(Inner { state, leader: None, staging, log_dirty }),
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
            _ => Err(Error::Remote { message: "unexpected reply".into() }),
        }
    }

    /// Serves one RPC call from another peer.
    pub fn handle(&self, _from: &str, call: Call) -> Result<Reply> {
        match call {
            Call::Id => Ok(Reply::Id { status: self.status() }),
            Call::GetState => Ok(Reply::State { state: self.state() }),
            Call::Append { entry, state } => Ok(Reply::Ack { accepted: self.accept(entry, state)? }),
            Call::Commit { op } => self.commit_as_leader(op).map(|_| Reply::Done),
            Call::PeerAdd { id, addr } => self.commit(Op::AddPeer { id, addr }).map(|_| Reply::Done),
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
        let (peerset, staging, mine) = {
            let inner = self.inner();
            (inner.state.peerset.clone(), inner.staging, inner.state.position())
        };
        if staging || !peerset.contains_key(&me) {
            self.inner().leader = None;
            return;
        }
        let mut reachable: Vec<(String, (u64, u64))> = vec![(me.clone(), mine)];
        let others: Vec<(&String, &String)> = peerset.iter().filter(|(id, _)| **id != me).collect();
        for ((id, _), answer) in others.iter().zip(self.ask_all(&others)) {
            match answer {
                Ok(status) if status.id == **id && !status.staging && status.peerset.contains_key(&me) => {
                    reachable.push(((*id).clone(), (status.term, status.index)));
                }
                Ok(_) => {}
                Err(err) => logging::debug("consensus", &format!("{id}: {err}")),
            }
        }
        let leader = choose_leader(reachable, peerset.len());
        if let Some((leader_id, position)) = &leader {
            if *leader_id != me && *position != mine {
                if let Err(err) = self.pull_from(&peerset[leader_id]) {
                    logging::debug("consensus", &format!("could not catch up with {leader_id}: {err}"));
                }
            }
        }
        let mut inner = self.inner();
        if inner.leader.as_ref() != leader.as_ref().map(|l| &l.0) {
            match &leader {
                Some((id, _)) => logging::info("consensus", &format!("Current Raft Leader: {id}")),
                None => logging::info("consensus", "Raft Leader lost"),
            }
        }
        inner.leader = leader.map(|l| l.0);
    }

    /// The status of several members, asked in parallel.
    pub fn ask_all(&self, members: &[(&String, &String)]) -> Vec<Result<PeerStatus>> {
        thread::scope(|scope| {
            let asks: Vec<_> = members.iter().map(|(_, addr)| scope.spawn(move || self.peer_status(addr))).collect();
            asks.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Remote { message: "status thread panicked".into() })))
                .collect()
        })
    }

    fn pull_from(&self, addr: &str) -> Result<()> {
        let Reply::State { state } = self.call(addr, Call::GetState, PUSH_TIMEOUT)? else {
            return Err(Error::Remote { message: "unexpected reply".into() });
        };
        let mut inner = self.inner();
        // An append may have overtaken the pull; never step back.
        if state.position() <= inner.state.position() {
            return Ok(());
        }
        let entry = Entry { term: state.term, index: state.index, op: Op::Replace { state: state.clone() } };
        raftlog::append(&self.settings.raft_dir, &entry)?;
        inner.state = state;
        inner.log_dirty = true;
        Ok(())
    }

    /// A pushed entry from the leader. Returns whether it was taken.
    fn accept(&self, entry: Entry, state: ClusterState) -> Result<bool> {
        let mut inner = self.inner();
        let me = &self.settings.peer_id;
        if inner.staging {
            if !state.peerset.contains_key(me) {
                return Ok(false);
            }
            inner.staging = false;
        } else if entry.index <= inner.state.index {
            return Ok(entry.index == inner.state.index);
        }
        let logged = if entry.index == inner.state.index + 1 && !matches!(entry.op, Op::Replace { .. }) {
            entry
        } else {
            Entry { term: state.term, index: state.index, op: Op::Replace { state: state.clone() } }
        };
        raftlog::append(&self.settings.raft_dir, &logged)?;
        inner.state = state;
        inner.log_dirty = true;
        Ok(true)
    }

    /// Commits a write, forwarding it to the leader when this peer is a follower. Leadership
    /// can move while peers learn about a change (a joiner with a lower ID, a restart), so
    /// "no leader" answers are retried until `LEADER_WAIT` has passed; every operation is
    /// idempotent, which makes the retry safe.
    pub fn commit(&self, op: Op) -> Result<()> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Err(Error::ShuttingDown);
            }
            let (leader, addr) = {
                let inner = self.inner();
                let leader = if inner.staging { None } else { inner.leader.clone() };
                let addr = leader.as_ref().and_then(|l| inner.state.peerset.get(l).cloned());
                (leader, addr)
            };
            let attempt = match (leader, addr) {
                (Some(leader), _) if leader == self.settings.peer_id => self.commit_as_leader(op.clone()),
                (Some(_), Some(addr)) => self.call(&addr, Call::Commit { op: op.clone() }, FORWARD_TIMEOUT).map(|_| ()),
                _ => Err(Error::NoLeader),
            };
            match attempt {
                Err(err) if is_leaderless(&err) && Instant::now() < deadline => thread::sleep(TICK / 2),
                other => return other,
            }
        }
    }

    /// Applies a write as the leader: replicate to the members, keep it with a majority.
    fn commit_as_leader(&self, op: Op) -> Result<()> {
        let _serial = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let me = self.settings.peer_id.clone();
        let old = {
            let inner = self.inner();
            if inner.leader.as_deref() != Some(me.as_str()) || inner.staging {
                return Err(Error::NoLeader);
            }
            inner.state.clone()
        };
        match &op {
            Op::RemovePeer { id } if !old.peerset.contains_key(id) => {
                logging::warn("raft", &format!("{id} is not among raft peers"));
                return Ok(());
            }
            Op::RemovePeer { id } if *id == me && old.peerset.len() == 1 => return Err(Error::OnePeer),
            Op::Unpin { cid } if !old.pins.contains_key(cid) => {
                return Err(Error::Remote { message: format!("{cid} is not part of the global state") })
            }
            _ => {}
        }
        let entry = Entry { term: old.term.max(1), index: old.index + 1, op };
        let mut new = old.clone();
        new.apply(&entry);
        let mut targets: BTreeMap<String, String> = old.peerset.clone();
        targets.extend(new.peerset.clone());
        targets.remove(&me);
        let call = Call::Append { entry: entry.clone(), state: new.clone() };
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
            pushes.into_iter().map(|h| h.join().unwrap_or(false)).collect()
        });
        let acks = usize::from(new.peerset.contains_key(&me))
            + targets.keys().zip(accepted).filter(|(id, ok)| *ok && new.peerset.contains_key(*id)).count();
        if acks * 2 <= new.peerset.len() {
            return Err(Error::NoQuorum);
        }
        raftlog::append(&self.settings.raft_dir, &entry)?;
        let mut inner = self.inner();
        inner.state = new;
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
        snapshot::write(&self.settings.raft_dir, &inner.state, &self.settings.release)?;
        raftlog::clear(&self.settings.raft_dir)?;
        inner.log_dirty = false;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(choose_leader(vec![r("b", 3), r("a", 3), r("c", 2)], 3).unwrap().0, "a");
        assert_eq!(choose_leader(vec![r("b", 3), r("a", 2), r("c", 2)], 3).unwrap().0, "b");
        let newer_term = ("z".to_string(), (2, 1));
        assert_eq!(choose_leader(vec![r("a", 9), newer_term], 2).unwrap().0, "z");
    }

    #[test]
    fn leaderless_errors_are_recognised_across_rpc() {
        assert!(is_leaderless(&Error::NoLeader));
        assert!(is_leaderless(&Error::Remote { message: Error::NoLeader.to_string() }));
        assert!(!is_leaderless(&Error::OnePeer));
    }
}
