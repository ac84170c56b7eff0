//! The stand-in for raft: a small leader-based replication that reproduces what an operator
//! observes, with raft's safety rules but a simpler choice of the leader.
//!
//! On its tick a peer asks the members of its peerset for their status (a follower whose leader
//! still leads asks only the leader: see `Node::leader_still_leads`). The reachable set
//! is this peer plus the members that answer on the same RPC protocol and secret and list this
//! peer in their own peerset. When it is a strict majority of the peerset, the *chosen* peer is
//! the reachable member with the highest (term, index) of its last entry, ties going to the
//! lowest peer ID, so every peer computes the same choice from the same facts. Followers send
//! writes to the chosen peer.
//!
//! The choice alone does not make a leader: views differ while peers start, stop and catch up,
//! and two peers that both believe they lead would lose acknowledged writes. So, as in raft:
//! * The chosen peer becomes leader of a new term only with the votes of a majority. A peer
//!   votes at most once per term (it records the highest term it has seen in `raft/term`
//!   before answering, so a restart does not make it forget), and only for a candidate whose
//!   last entry is at least as recent as its own.
//! * Every entry carries its leader's term; a peer refuses any call of a term lower than the
//!   highest it has seen, and a higher term makes a leader step down. So one term has at most
//!   one leader, and (term, index) names at most one entry: a leader whose write failed drops
//!   the entry *and* its term, and must win a new term before writing again.
//! * A follower takes an entry only when its own last entry is the one the leader's log has
//!   just before it (raft's log matching, with one entry per message). Otherwise the leader
//!   sends its whole state instead (raft's snapshot install): that is how joiners, restarted
//!   peers and peers holding uncommitted entries of an older term are caught up. The leader
//!   also does so on its tick for members whose last entry differs from its own.
//! * A write is acknowledged only when a majority of the new peerset holds it. Any later
//!   leader needed votes from a majority, one of which holds the entry and votes only for a
//!   candidate at least as recent, so every later leader has it (raft's leader completeness).
//!
//! A caught-up follower thus receives one small entry per write; the whole state travels only
//! to a follower that is behind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::config::ConsensusKind;
use super::error::{Error, Result};
use super::logging;
use super::multiaddr::Multiaddr;
use super::pin::Pin;
use super::raftlog;
use super::rpc::{self, Call, Credentials, Heartbeat, PeerStatus, Reply};
use super::snapshot;
use super::state::{ClusterState, Entry, Op};
use crate::release::{Era, Release};

mod crdt;

/// How often peers check on each other (small clusters; see `tick_interval`).
pub const TICK: Duration = Duration::from_millis(100);
/// How long a write keeps retrying while there is no usable leader.
const LEADER_WAIT: Duration = Duration::from_secs(3);
const PING_TIMEOUT: Duration = Duration::from_millis(700);
/// How long `peers ls` (and `status`) wait for the other members' answers, as the real
/// `Cluster.peersWithFilter` does (15 s): a member that has not answered by then is listed
/// with an error. A dead member fails at once (connection refused); only a slow one takes long.
const PEERS_TIMEOUT: Duration = Duration::from_secs(15);
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
    /// Raft or CRDT (see `crdt` for the latter).
    pub kind: ConsensusKind,
    /// A CRDT peer's datastore folder (where its pinset is saved).
    pub datastore_dir: PathBuf,
    /// How long a CRDT peer counts a peer whose last ping metric came in.
    pub metric_ttl: Duration,
    /// How often a CRDT peer sends its pinset to the peers whose pinset differs.
    pub rebroadcast: Duration,
    /// A CRDT follower (`cluster.follower_mode`): pulls the pinset of the peers it knows (its
    /// trusted peers), sends no metrics, refuses writes.
    pub follower: bool,
}

#[derive(Debug)]
struct Inner {
    state: ClusterState,
    /// Counts changes of `state` made by other peers (appends, installs), so that a commit in
    /// flight knows whether the tentative state it set is still the one in place.
    generation: u64,
    /// The chosen peer (see the module notes): where writes go.
    leader: Option<String>,
    /// The highest term seen (persisted in `raft/term` whenever it grows).
    current_term: u64,
    /// The term this peer won the votes of, while it leads in it.
    leader_term: Option<u64>,
    /// Joining with `--bootstrap` and not yet part of a cluster: never elects anyone.
    staging: bool,
    /// Whether `raft.db` holds entries newer than the last snapshot.
    log_dirty: bool,
    /// CRDT only: the pinset, the peers known (ID → transport address) and when each last
    /// sent its ping metric.
    crdt: crdt::View,
}

/// One peer's consensus component.
#[derive(Debug)]
pub struct Node {
    settings: NodeSettings,
    creds: Credentials,
    inner: Mutex<Inner>,
    /// Serializes commits (and catch-ups) on the leader.
    commit_lock: Mutex<()>,
    /// Writes waiting for the leader's next replication round, with where their result goes:
    /// concurrent writes share one round trip to the followers.
    queue: Mutex<Vec<(Op, Sender<Result<()>>)>>,
    stop: Arc<AtomicBool>,
}

/// What puts the leader's state back when a tentative entry fails.
enum Undo {
    Pin(String, Option<Pin>),
    Peers(BTreeMap<String, String>),
    All(Box<ClusterState>),
}

/// A round of writes applied tentatively by the leader, to be pushed and then committed or
/// undone.
struct Staged {
    round: Round,
    /// The (term, index) before the round.
    prev: (u64, u64),
    entries: Vec<Entry>,
    /// What undoes each write, with the state's position before it and whether its last entry
    /// was a configuration change.
    undo: Vec<(Undo, (u64, u64), bool)>,
    /// Every member (id → address) the entries go to: old and new peerset, without this peer.
    targets: BTreeMap<String, String>,
    new_peerset: BTreeMap<String, String>,
    waiting: Vec<Sender<Result<()>>>,
}

/// The leader's term and the commit generation a replication belongs to: a state is only sent
/// while both are still current.
#[derive(Debug, Clone, Copy)]
struct Round {
    term: u64,
    generation: u64,
}

impl Undo {
    fn of(state: &ClusterState, op: &Op) -> Undo {
        match op {
            Op::Pin { pin } => Undo::Pin(pin.cid.clone(), state.pins.get(&pin.cid).cloned()),
            Op::Unpin { cid } => Undo::Pin(cid.clone(), state.pins.get(cid).cloned()),
            Op::AddPeer { .. } | Op::RemovePeer { .. } | Op::Bootstrap { .. } => {
                Undo::Peers(state.peerset.clone())
            }
            Op::Replace { .. } => Undo::All(Box::new(state.clone())),
        }
    }

    /// Puts the state back as it was at `position`, whose last entry changed the peerset when
    /// `config_last`.
    fn restore(self, state: &mut ClusterState, position: (u64, u64), config_last: bool) {
        match self {
            Undo::Pin(cid, Some(pin)) => {
                state.pins.insert(cid, pin);
            }
            Undo::Pin(cid, None) => {
                state.pins.remove(&cid);
            }
            Undo::Peers(peerset) => state.peerset = peerset,
            Undo::All(old) => *state = *old,
        }
        (state.term, state.index) = position;
        state.config_last = config_last;
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
        let current_term = state.term.max(raftlog::saved_term(&settings.raft_dir));
        let inner = Inner {
            state,
            generation: 0,
            leader: None,
            current_term,
            leader_term: None,
            staging,
            log_dirty,
            crdt: crdt::View::default(),
        };
        Arc::new(Node {
            settings,
            creds,
            inner: Mutex::new(inner),
            commit_lock: Mutex::new(()),
            queue: Mutex::new(Vec::new()),
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

    /// The consensus this peer runs.
    pub fn kind(&self) -> ConsensusKind {
        self.settings.kind
    }

    /// The pinset and peerset (a CRDT peer's peerset: itself and the peers whose ping metric
    /// is valid).
    pub fn state(&self) -> ClusterState {
        match self.settings.kind {
            ConsensusKind::Raft => self.inner().state.clone(),
            ConsensusKind::Crdt => self.crdt_state(),
        }
    }

    /// Ready means: part of a cluster that has a leader (a CRDT peer is ready at once).
    pub fn has_leader(&self) -> bool {
        if self.settings.kind == ConsensusKind::Crdt {
            return true;
        }
        let inner = self.inner();
        inner.leader.is_some() && !inner.staging
    }

    /// Whether this peer was removed from the peerset it belonged to (never, with CRDT).
    pub fn is_removed(&self) -> bool {
        if self.settings.kind == ConsensusKind::Crdt {
            return false;
        }
        let inner = self.inner();
        !inner.staging && !inner.state.peerset.contains_key(&self.settings.peer_id)
    }

    /// This peer's answer to the `ID` call.
    pub fn status(&self) -> PeerStatus {
        let peerset = self.state().peerset;
        let inner = self.inner();
        PeerStatus {
            id: self.settings.peer_id.clone(),
            peername: self.settings.peername.clone(),
            version: self.settings.release.version.clone(),
            rpc_protocol: self.creds.protocol.clone(),
            addresses: vec![self.full_addr(&self.settings.cluster_addr, &self.settings.peer_id)],
            peerset,
            term: inner.state.term,
            index: inner.state.index,
            staging: inner.staging,
            current_term: inner.current_term,
        }
    }

    /// Calls another peer by its cluster multiaddr.
    pub fn call(&self, addr: &str, call: Call, timeout: Duration) -> Result<Reply> {
        let socket: SocketAddr = Multiaddr::parse(addr)?.socket_addr()?;
        rpc::call(socket, &self.creds, call, timeout)
    }

    /// The status of several members, asked all at once (within `PEERS_TIMEOUT`).
    pub fn ask_all(&self, members: &[(&String, &String)]) -> Vec<Result<PeerStatus>> {
        self.ask_many(members, (Call::Id, PEERS_TIMEOUT), |reply| match reply {
            Reply::Id { status } => Some(status),
            _ => None,
        })
    }

    /// The heartbeats of several members, asked all at once (within `PING_TIMEOUT`).
    fn heartbeats(&self, members: &[(&String, &String)]) -> Vec<Result<Heartbeat>> {
        self.ask_many(
            members,
            (Call::Heartbeat, PING_TIMEOUT),
            |reply| match reply {
                Reply::Heartbeat { beat } => Some(beat),
                _ => None,
            },
        )
    }

    /// A question to several members at once (within its timeout), and the part of each reply
    /// that `pick` wants; any other reply is an error.
    fn ask_many<T>(
        &self,
        members: &[(&String, &String)],
        (call, timeout): (Call, Duration),
        pick: impl Fn(Reply) -> Option<T>,
    ) -> Vec<Result<T>> {
        self.call_many(members, call, timeout)
            .into_iter()
            .map(|reply| pick(reply?).ok_or_else(unexpected_reply))
            .collect()
    }

    /// Calls several members (id, cluster multiaddr) at once; the answers in their order.
    fn call_many(
        &self,
        members: &[(&String, &String)],
        call: Call,
        timeout: Duration,
    ) -> Vec<Result<Reply>> {
        let addrs: Vec<Result<SocketAddr>> = members
            .iter()
            .map(|(_, addr)| Multiaddr::parse(addr)?.socket_addr())
            .collect();
        let valid: Vec<SocketAddr> = addrs
            .iter()
            .filter_map(|a| a.as_ref().ok().copied())
            .collect();
        let mut replies = rpc::call_many(&valid, &self.creds, call, timeout).into_iter();
        addrs
            .into_iter()
            .map(|addr| match addr {
                Ok(_) => replies.next().expect("one reply per address"),
                Err(err) => Err(err),
            })
            .collect()
    }

    /// This peer's answer to the `Heartbeat` call from `caller`.
    fn heartbeat(&self, caller: &str) -> Heartbeat {
        let inner = self.inner();
        Heartbeat {
            id: self.settings.peer_id.clone(),
            staging: inner.staging,
            lists_caller: inner.state.peerset.contains_key(caller),
            term: inner.state.term,
            index: inner.state.index,
            current_term: inner.current_term,
            leading: !inner.staging
                && inner.leader_term == Some(inner.current_term)
                && inner.leader.as_deref() == Some(self.settings.peer_id.as_str()),
        }
    }

    /// Serves one RPC call from another peer.
    pub fn handle(&self, from: &str, call: Call) -> Result<Reply> {
        match call {
            Call::Id => Ok(Reply::Id {
                status: self.status(),
            }),
            Call::Heartbeat => Ok(Reply::Heartbeat {
                beat: self.heartbeat(from),
            }),
            Call::Vote {
                term,
                last_term,
                last_index,
            } => Ok(Reply::Vote {
                granted: self.vote(term, (last_term, last_index))?,
            }),
            Call::Append {
                term,
                prev_term,
                prev_index,
                entries,
            } => Ok(Reply::Ack {
                accepted: self.append(term, (prev_term, prev_index), entries)?,
            }),
            Call::Install { term, state } => Ok(Reply::Ack {
                accepted: self.install(term, state)?,
            }),
            Call::Commit { op } => self.commit_as_leader(op).map(|_| Reply::Done),
            Call::PeerAdd { id, addr } if self.settings.kind == ConsensusKind::Crdt => {
                self.learn(&id, &addr);
                Ok(Reply::Done)
            }
            Call::PeerAdd { id, addr } => {
                self.commit(Op::AddPeer { id, addr }).map(|_| Reply::Done)
            }
            Call::Gossip { ping } => self.gossip_from(from, ping),
            Call::Merge { state } => self.merge_from(&state),
            Call::Pull => self.pull_from(),
        }
    }

    /// Runs the heartbeat loop until stopped.
    pub fn run_ticker(self: &Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            self.tick();
            thread::sleep(self.tick_interval());
        }
    }

    /// `TICK` for small clusters, longer for big ones: the leader (and every peer while there
    /// is none) pings every member, and a round of 200 calls a tenth of a second apart would
    /// keep a 2-core machine busy.
    fn tick_interval(&self) -> Duration {
        let members = match self.settings.kind {
            ConsensusKind::Raft => self.inner().state.peerset.len().max(1),
            ConsensusKind::Crdt => self.inner().crdt.known.len() + 1,
        } as u32;
        (TICK * members.div_ceil(4)).min(Duration::from_secs(1))
    }

    /// Raises the highest term seen; a leader of a lower term steps down. The term is recorded
    /// before anything is done in it.
    fn raise_term(&self, inner: &mut Inner, term: u64) -> Result<()> {
        if term > inner.current_term {
            raftlog::save_term(&self.settings.raft_dir, term)?;
            inner.current_term = term;
            inner.leader_term = None;
        }
        Ok(())
    }

    /// One round: ping the members, compute the chosen peer; the chosen peer wins a term if
    /// it has none and brings the members that are behind up to date.
    pub fn tick(&self) {
        if self.settings.kind == ConsensusKind::Crdt {
            return self.crdt_tick();
        }
        let me = self.settings.peer_id.clone();
        let (peerset, staging, mine) = {
            let inner = self.inner();
            (
                inner.state.peerset.clone(),
                inner.staging,
                inner.state.position(),
            )
        };
        if staging || !peerset.contains_key(&me) {
            let mut inner = self.inner();
            inner.leader = None;
            inner.leader_term = None;
            return;
        }
        if self.leader_still_leads(&me, &peerset) {
            return;
        }
        let mut reachable: Vec<(String, (u64, u64))> = vec![(me.clone(), mine)];
        let mut seen_term = 0;
        let others: Vec<(&String, &String)> = peerset.iter().filter(|(id, _)| **id != me).collect();
        for ((id, _), answer) in others.iter().zip(self.heartbeats(&others)) {
            match answer {
                Ok(beat) if beat.id == **id && !beat.staging && beat.lists_caller => {
                    seen_term = seen_term.max(beat.current_term);
                    reachable.push(((*id).clone(), (beat.term, beat.index)));
                }
                Ok(_) => {}
                Err(err) => logging::debug("consensus", &format!("{id}: {err}")),
            }
        }
        let chosen = choose_leader(reachable.clone(), peerset.len()).map(|l| l.0);
        let chosen_me = chosen.as_deref() == Some(me.as_str());
        {
            let mut inner = self.inner();
            if let Err(err) = self.raise_term(&mut inner, seen_term) {
                logging::error("consensus", &err.to_string());
            }
            if !chosen_me {
                inner.leader_term = None;
            }
            if inner.leader != chosen {
                match &chosen {
                    Some(id) => logging::info("consensus", &format!("Current Raft Leader: {id}")),
                    None => logging::info("consensus", "Raft Leader lost"),
                }
            }
            inner.leader = chosen;
        }
        if chosen_me {
            if self.inner().leader_term.is_none() {
                self.campaign(&peerset);
            }
            self.catch_up(&peerset, mine, &reachable);
        }
    }

    /// A follower's tick while its leader leads: it asks the leader alone, as in raft only the
    /// leader talks to every peer, so the heartbeats of a cluster grow with its size and not
    /// with its square (200 peers asking each other every second starve a 2-core machine).
    /// Whether the leader still leads in the highest term this peer has seen (raised to the
    /// leader's), still lists this peer and is not staging; anything else (no leader known, no
    /// answer, a leader that stepped down) takes the full round, which chooses again. The
    /// leader's own full round still sees every member: a member that comes back ahead of it, or
    /// with a lower ID at the same entry, makes it step down, and then its followers choose.
    fn leader_still_leads(&self, me: &str, peerset: &BTreeMap<String, String>) -> bool {
        let (leader, current_term) = {
            let inner = self.inner();
            (inner.leader.clone(), inner.current_term)
        };
        let Some(member) = leader
            .as_deref()
            .filter(|id| *id != me)
            .and_then(|id| peerset.get_key_value(id))
        else {
            return false;
        };
        let Some(Ok(beat)) = self.heartbeats(&[member]).pop() else {
            return false;
        };
        let leads = beat.id == *member.0
            && beat.leading
            && !beat.staging
            && beat.lists_caller
            && beat.current_term >= current_term;
        if leads {
            let mut inner = self.inner();
            if let Err(err) = self.raise_term(&mut inner, beat.current_term) {
                logging::error("consensus", &err.to_string());
            }
        }
        leads
    }

    /// Asks the members for their votes in a new term; leads in it with a majority.
    fn campaign(&self, peerset: &BTreeMap<String, String>) {
        let me = &self.settings.peer_id;
        let (term, last) = {
            let mut inner = self.inner();
            let term = inner.current_term + 1;
            if let Err(err) = self.raise_term(&mut inner, term) {
                logging::error("consensus", &err.to_string());
                return;
            }
            (term, inner.state.position())
        };
        let call = Call::Vote {
            term,
            last_term: last.0,
            last_index: last.1,
        };
        let targets: Vec<(&String, &String)> = peerset.iter().filter(|(id, _)| *id != me).collect();
        let granted = 1 + self
            .call_all(&targets, &call)
            .into_iter()
            .filter(|reply| matches!(reply, Ok(Reply::Vote { granted: true })))
            .count();
        let mut inner = self.inner();
        let still = inner.current_term == term
            && inner.state.position() == last
            && inner.leader.as_deref() == Some(me.as_str());
        if still && granted * 2 > peerset.len() {
            inner.leader_term = Some(term);
            logging::debug("consensus", &format!("leading in term {term}"));
        }
    }

    /// Sends the whole state to the reachable members whose last entry differs from ours.
    fn catch_up(
        &self,
        peerset: &BTreeMap<String, String>,
        mine: (u64, u64),
        reachable: &[(String, (u64, u64))],
    ) {
        let behind: Vec<(&String, &String)> = reachable
            .iter()
            .filter(|(_, position)| *position != mine)
            .filter_map(|(id, _)| peerset.get_key_value(id))
            .collect();
        if behind.is_empty() {
            return;
        }
        // A commit in flight brings them up to date itself.
        let Ok(_serial) = self.commit_lock.try_lock() else {
            return;
        };
        let call = {
            let inner = self.inner();
            let Some(term) = inner.leader_term else {
                return;
            };
            if inner.state.position() != mine || term != inner.current_term {
                return;
            }
            Call::Install {
                term,
                state: inner.state.clone(),
            }
        };
        for ((id, _), reply) in behind.iter().zip(self.call_all(&behind, &call)) {
            if let Err(err) = reply {
                logging::debug("consensus", &format!("catching up {id}: {err}"));
            }
        }
    }

    /// Makes the same call to several members in parallel.
    fn call_all(&self, targets: &[(&String, &String)], call: &Call) -> Vec<Result<Reply>> {
        self.call_many(targets, call.clone(), PUSH_TIMEOUT)
    }

    /// A candidate's request for this peer's vote in `term`.
    fn vote(&self, term: u64, last: (u64, u64)) -> Result<bool> {
        let mut inner = self.inner();
        if inner.staging || term <= inner.current_term {
            return Ok(false);
        }
        self.raise_term(&mut inner, term)?;
        Ok(last >= inner.state.position())
    }

    /// Entries from the leader of `term`, to go after our last entry `prev`. Returns whether
    /// they were taken; the leader sends its whole state when they were not.
    fn append(&self, term: u64, prev: (u64, u64), entries: Vec<Entry>) -> Result<bool> {
        let mut inner = self.inner();
        if term < inner.current_term {
            return Ok(false);
        }
        self.raise_term(&mut inner, term)?;
        let Some(last) = entries.last() else {
            return Ok(false);
        };
        if inner.staging {
            return Ok(false);
        }
        let position = inner.state.position();
        if position == (last.term, last.index) {
            return Ok(true);
        }
        if position != prev {
            return Ok(false);
        }
        raftlog::append_all(&self.settings.raft_dir, &entries)?;
        for entry in &entries {
            inner.state.apply(entry);
        }
        inner.generation += 1;
        inner.log_dirty = true;
        Ok(true)
    }

    /// The whole state of the leader of `term`. Returns whether it was taken.
    fn install(&self, term: u64, state: ClusterState) -> Result<bool> {
        let mut inner = self.inner();
        if term < inner.current_term {
            return Ok(false);
        }
        self.raise_term(&mut inner, term)?;
        if inner.staging {
            if !state.peerset.contains_key(&self.settings.peer_id) {
                return Ok(false);
            }
            inner.staging = false;
        } else if inner.state.position() == state.position() {
            return Ok(true);
        }
        let entry = Entry {
            term: state.term,
            index: state.index,
            op: Op::Replace { state },
        };
        raftlog::append(&self.settings.raft_dir, &entry)?;
        let Op::Replace { state } = entry.op else {
            unreachable!("built above")
        };
        inner.state = state;
        inner.generation += 1;
        inner.log_dirty = true;
        Ok(true)
    }

    /// Commits a write, forwarding it to the leader when this peer is a follower. Leadership
    /// can move while peers learn about a change (a joiner with a lower ID, a restart), so
    /// "no leader" and "no quorum" answers are retried until `LEADER_WAIT` has passed; every
    /// operation is idempotent, which makes the retry safe.
    pub fn commit(&self, op: Op) -> Result<()> {
        if self.settings.kind == ConsensusKind::Crdt {
            return self.crdt_commit(op);
        }
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

    /// Applies a write as the leader. The write joins the queue; whoever holds the commit lock
    /// next replicates everything queued in one round (see `commit_round`).
    fn commit_as_leader(&self, op: Op) -> Result<()> {
        let (done, result) = mpsc::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((op, done));
        let _serial = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        // A round run by another writer may have taken this write already.
        if let Ok(result) = result.try_recv() {
            return result;
        }
        let queued = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        // Pins and unpins share a round; a peerset change has a round of its own, as raft
        // changes its configuration one peer at a time.
        let mut rounds: Vec<Vec<(Op, Sender<Result<()>>)>> = Vec::new();
        for (op, done) in queued {
            let pins_only = |round: &Vec<(Op, _)>| {
                round
                    .iter()
                    .all(|(op, _)| matches!(op, Op::Pin { .. } | Op::Unpin { .. }))
            };
            match rounds.last_mut() {
                Some(round)
                    if pins_only(round) && matches!(op, Op::Pin { .. } | Op::Unpin { .. }) =>
                {
                    round.push((op, done))
                }
                _ => rounds.push(vec![(op, done)]),
            }
        }
        for round in rounds {
            self.commit_round(round);
        }
        result.try_recv().unwrap_or(Err(Error::NoLeader))
    }

    /// One replication round of the leader: hold the entries tentatively, replicate them, keep
    /// them with a majority; otherwise drop them together with the term.
    fn commit_round(&self, writes: Vec<(Op, Sender<Result<()>>)>) {
        let Some(mut staged) = self.stage(writes) else {
            return;
        };
        let acks = self.push(&staged);
        let result = self.settle(&mut staged, acks);
        for done in staged.waiting {
            let _ = done.send(match &result {
                Ok(()) => Ok(()),
                Err(Error::NoQuorum) => Err(Error::NoQuorum),
                Err(err) => Err(Error::Remote {
                    message: err.to_string(),
                }),
            });
        }
    }

    /// Applies the writes to the leader's state, tentatively (with what undoes each), and
    /// answers at once those refused; `None` when this peer is not the leader (every write is
    /// answered "no leader") or nothing is left to commit.
    fn stage(&self, writes: Vec<(Op, Sender<Result<()>>)>) -> Option<Staged> {
        let me = self.settings.peer_id.clone();
        let mut inner = self.inner();
        let term = match inner.leader_term {
            Some(term)
                if term == inner.current_term
                    && inner.leader.as_deref() == Some(me.as_str())
                    && !inner.staging =>
            {
                term
            }
            _ => {
                for (_, done) in writes {
                    let _ = done.send(Err(Error::NoLeader));
                }
                return None;
            }
        };
        let prev = inner.state.position();
        let mut targets = inner.state.peerset.clone();
        let (mut entries, mut undo, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for (op, done) in writes {
            let state = &inner.state;
            let refusal = match &op {
                Op::RemovePeer { id } if !state.peerset.contains_key(id) => {
                    logging::warn("raft", &format!("{id} is not among raft peers"));
                    Some(Ok(()))
                }
                Op::RemovePeer { id } if *id == me && state.peerset.len() == 1 => {
                    Some(Err(Error::OnePeer))
                }
                Op::Unpin { cid } if !state.pins.contains_key(cid) => Some(Err(Error::Remote {
                    message: format!("{cid} is not part of the global state"),
                })),
                _ => None,
            };
            if let Some(result) = refusal {
                let _ = done.send(result);
                continue;
            }
            undo.push((Undo::of(state, &op), state.position(), state.config_last));
            let entry = Entry {
                term,
                index: state.index + 1,
                op,
            };
            inner.state.apply(&entry);
            entries.push(entry);
            waiting.push(done);
        }
        if entries.is_empty() {
            return None;
        }
        targets.extend(inner.state.peerset.clone());
        targets.remove(&me);
        Some(Staged {
            round: Round {
                term,
                generation: inner.generation,
            },
            prev,
            entries,
            undo,
            targets,
            new_peerset: inner.state.peerset.clone(),
            waiting,
        })
    }

    /// Pushes the staged entries to every member at once (a round costs one round trip, not
    /// one per member); the acknowledgements that count (this peer's own included).
    fn push(&self, staged: &Staged) -> usize {
        let call = Call::Append {
            term: staged.round.term,
            prev_term: staged.prev.0,
            prev_index: staged.prev.1,
            entries: staged.entries.clone(),
        };
        let members: Vec<(&String, &String)> = staged.targets.iter().collect();
        let accepted: Vec<bool> = thread::scope(|scope| {
            let pushes: Vec<_> = members
                .iter()
                .map(|(id, addr)| {
                    let call = call.clone();
                    let round = staged.round;
                    scope.spawn(move || self.replicate((id, addr), call, round))
                })
                .collect();
            pushes
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect()
        });
        let me = &self.settings.peer_id;
        usize::from(staged.new_peerset.contains_key(me))
            + members
                .iter()
                .zip(accepted)
                .filter(|((id, _), ok)| *ok && staged.new_peerset.contains_key(*id))
                .count()
    }

    /// Commits the round with a quorum of `acks` (the log appended), or undoes it without one.
    fn settle(&self, staged: &mut Staged, acks: usize) -> Result<()> {
        let mut inner = self.inner();
        let untouched = inner.generation == staged.round.generation;
        if acks * 2 <= staged.new_peerset.len() {
            if untouched {
                for (undo, position, config_last) in
                    std::mem::take(&mut staged.undo).into_iter().rev()
                {
                    undo.restore(&mut inner.state, position, config_last);
                }
            }
            // (term, index) must name one entry only: the next write needs a new term.
            inner.leader_term = None;
            Err(Error::NoQuorum)
        } else if untouched {
            raftlog::append_all(&self.settings.raft_dir, &staged.entries).map(|()| {
                inner.log_dirty = true;
            })
        } else {
            Ok(())
        }
    }

    /// Sends the entries to a member (its id and address); if the member is behind, the whole state instead (the
    /// tentative state of this commit, while no other leader has replaced it).
    fn replicate(&self, (id, addr): (&str, &str), call: Call, round: Round) -> bool {
        let Round { term, generation } = round;
        match self.call(addr, call, PUSH_TIMEOUT) {
            Ok(Reply::Ack { accepted: true }) => return true,
            Ok(_) => {}
            Err(err) => {
                logging::debug("consensus", &format!("replicating to {id}: {err}"));
                return false;
            }
        }
        let state = {
            let inner = self.inner();
            if inner.generation != generation || inner.current_term != term {
                return false;
            }
            inner.state.clone()
        };
        match self.call(addr, Call::Install { term, state }, PUSH_TIMEOUT) {
            Ok(Reply::Ack { accepted }) => accepted,
            Ok(_) => false,
            Err(err) => {
                logging::debug("consensus", &format!("sending the state to {id}: {err}"));
                false
            }
        }
    }

    /// Takes a snapshot if anything was committed since the last one (raft refuses to
    /// snapshot "nothing new"), then empties `raft.db`.
    pub fn snapshot_if_dirty(&self) -> Result<bool> {
        if self.settings.kind == ConsensusKind::Crdt {
            return Ok(false);
        }
        let mut inner = self.inner();
        if !inner.log_dirty {
            return Ok(false);
        }
        // From 1.0 (hashicorp/raft 1.x, verified against the real binaries): no snapshot while
        // the last entry is a configuration change; the entries stay in raft.db.
        if inner.state.config_last && self.settings.release.major >= 1 {
            return Err(Error::ConfigurationPending {
                index: inner.state.index,
            });
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

fn unexpected_reply() -> Error {
    Error::Remote {
        message: "unexpected reply".into(),
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
            kind: ConsensusKind::Raft,
            datastore_dir: dir.to_path_buf(),
            metric_ttl: Duration::from_secs(30),
            rebroadcast: Duration::from_secs(60),
            follower: false,
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

    fn pin_entry(term: u64, index: u64, n: usize) -> Entry {
        let cid = format!(
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb{}",
            ["dG", "dH", "dJ", "dK"][n]
        );
        Entry {
            term,
            index,
            op: Op::Pin {
                pin: Pin::everywhere(&cid, "").unwrap(),
            },
        }
    }

    /// Five peers serving their RPC on loopback, each counting the heartbeats it answered;
    /// nobody ticks them but the test.
    struct Five {
        nodes: Vec<Arc<Node>>,
        served: Vec<Arc<std::sync::atomic::AtomicUsize>>,
        _dirs: Vec<tempfile::TempDir>,
    }

    impl Five {
        fn start() -> Five {
            let listeners: Vec<std::net::TcpListener> = (0..5)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            let peerset: BTreeMap<String, String> = listeners
                .iter()
                .enumerate()
                .map(|(n, l)| {
                    let port = l.local_addr().unwrap().port();
                    (
                        format!("p{n}"),
                        format!("/ip4/127.0.0.1/tcp/{port}/ipfs/p{n}"),
                    )
                })
                .collect();
            let (mut nodes, mut served, mut dirs) = (Vec::new(), Vec::new(), Vec::new());
            for (n, listener) in listeners.into_iter().enumerate() {
                let dir = tempfile::tempdir().unwrap();
                let port = listener.local_addr().unwrap().port();
                let node = Node::new(
                    NodeSettings {
                        release: Release::modelled("0.10.1").unwrap(),
                        peer_id: format!("p{n}"),
                        peername: format!("p{n}"),
                        secret: String::new(),
                        cluster_addr: format!("/ip4/127.0.0.1/tcp/{port}"),
                        raft_dir: dir.path().to_path_buf(),
                        kind: ConsensusKind::Raft,
                        datastore_dir: dir.path().to_path_buf(),
                        metric_ttl: Duration::from_secs(30),
                        rebroadcast: Duration::from_secs(60),
                        follower: false,
                    },
                    ClusterState {
                        peerset: peerset.clone(),
                        term: 1,
                        index: 1,
                        ..Default::default()
                    },
                    false,
                    false,
                );
                let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let handler: rpc::Handler = {
                    let (node, count) = (Arc::clone(&node), Arc::clone(&count));
                    Arc::new(move |from: &str, call: Call| {
                        if matches!(call, Call::Heartbeat) {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        node.handle(from, call)
                    })
                };
                let (creds, stop) = (node.credentials().clone(), node.stop_flag());
                thread::spawn(move || rpc::serve(listener, creds, handler, stop));
                nodes.push(node);
                served.push(count);
                dirs.push(dir);
            }
            Five {
                nodes,
                served,
                _dirs: dirs,
            }
        }

        /// Every live peer ticks once; the heartbeats each answered meanwhile.
        fn round(&self, live: &[usize]) -> Vec<usize> {
            for count in &self.served {
                count.store(0, Ordering::SeqCst);
            }
            for &n in live {
                self.nodes[n].tick();
            }
            self.served
                .iter()
                .map(|c| c.load(Ordering::SeqCst))
                .collect()
        }

        /// The leader every live peer follows, once they agree and it leads in a term.
        fn settled_leader(&self, live: &[usize]) -> Option<usize> {
            let leaders: std::collections::BTreeSet<Option<String>> = live
                .iter()
                .map(|&n| self.nodes[n].inner().leader.clone())
                .collect();
            let leaders: Vec<Option<String>> = leaders.into_iter().collect();
            let [Some(leader)] = &leaders[..] else {
                return None;
            };
            let n: usize = leader.trim_start_matches('p').parse().unwrap();
            (live.contains(&n) && self.nodes[n].inner().leader_term.is_some()).then_some(n)
        }

        fn settle(&self, live: &[usize]) -> usize {
            for _ in 0..10 {
                if let Some(leader) = self.settled_leader(live) {
                    return leader;
                }
                self.round(live);
            }
            panic!("no leader after 10 rounds");
        }
    }

    #[test]
    fn followers_of_a_leader_ask_only_it_so_heartbeats_grow_with_the_cluster_not_its_square() {
        let five = Five::start();
        let all = [0, 1, 2, 3, 4];
        assert_eq!(five.settle(&all), 0, "ties go to the lowest ID");
        let served = five.round(&all);
        assert_eq!(
            served,
            [4, 1, 1, 1, 1],
            "the leader answers each follower; each follower, the leader's round"
        );

        // The leader dies: its followers notice on their next tick, ask everyone and choose.
        five.nodes[0].stop_flag().store(true, Ordering::SeqCst);
        let live = [1, 2, 3, 4];
        assert_eq!(five.settle(&live), 1);
        assert_eq!(five.round(&live)[1..], [3, 1, 1, 1]);
    }

    #[test]
    fn a_follower_takes_only_entries_that_extend_its_log_and_no_stale_terms() {
        let dir = tempfile::tempdir().unwrap();
        let c = node(dir.path());
        assert!(c.append(2, (1, 1), vec![pin_entry(2, 2, 0)]).unwrap());
        assert!(
            c.append(2, (1, 1), vec![pin_entry(2, 2, 0)]).unwrap(),
            "a repeated push is acknowledged"
        );
        assert!(
            !c.append(2, (1, 1), vec![pin_entry(3, 2, 1)]).unwrap(),
            "another entry for an index it holds: the leader must send its state"
        );
        assert!(
            !c.append(2, (2, 3), vec![pin_entry(2, 4, 2)]).unwrap(),
            "an entry that does not extend our log"
        );
        assert!(
            !c.append(1, (2, 2), vec![pin_entry(1, 3, 2)]).unwrap(),
            "an entry of an older term"
        );
        assert_eq!(raftlog::entries(dir.path()).unwrap().len(), 1);
        assert_eq!(c.state().pins.len(), 1);
    }

    #[test]
    fn one_vote_per_term_only_for_recent_enough_candidates_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let c = node(dir.path());
        assert!(c.vote(5, (1, 1)).unwrap());
        assert!(!c.vote(5, (1, 1)).unwrap(), "a second vote in term 5");
        assert!(!c.vote(6, (1, 0)).unwrap(), "a candidate missing our entry");
        assert!(
            !c.append(5, (1, 1), vec![pin_entry(5, 2, 0)]).unwrap(),
            "after seeing term 6, term 5 is stale"
        );
        assert_eq!(raftlog::saved_term(dir.path()), 6);
        let restarted = node(dir.path());
        assert!(
            !restarted.vote(6, (1, 1)).unwrap(),
            "a restart does not forget the term"
        );
        assert!(restarted.vote(7, (1, 1)).unwrap());
    }

    #[test]
    fn the_whole_state_replaces_a_log_that_diverged() {
        let dir = tempfile::tempdir().unwrap();
        let c = node(dir.path());
        // An entry of a leader of term 2 that never reached a majority...
        assert!(c.append(2, (1, 1), vec![pin_entry(2, 2, 0)]).unwrap());
        // ...is replaced by the state of the leader of term 3.
        let mut leader = c.state();
        leader.term = 1;
        leader.index = 1;
        leader.pins.clear();
        leader.apply(&pin_entry(3, 2, 1));
        assert!(!c.append(3, (1, 1), vec![pin_entry(3, 2, 1)]).unwrap());
        assert!(c.install(3, leader.clone()).unwrap());
        assert_eq!(c.state(), leader);
        assert!(
            !c.install(2, ClusterState::default()).unwrap(),
            "stale term"
        );
        // Replaying the log gives the same state.
        let mut replayed = ClusterState::default();
        for entry in raftlog::entries(dir.path()).unwrap() {
            replayed.apply(&entry);
        }
        assert_eq!(replayed.pins, leader.pins);
    }

    #[test]
    fn a_failed_write_is_undone_exactly() {
        let mut state = ClusterState {
            term: 1,
            index: 1,
            ..Default::default()
        };
        state.apply(&pin_entry(1, 2, 0));
        let before = state.clone();
        for (n, op) in [
            pin_entry(2, 3, 0).op,
            pin_entry(2, 3, 1).op,
            Op::Unpin {
                cid: before.pins.keys().next().unwrap().clone(),
            },
            Op::AddPeer {
                id: "z".into(),
                addr: "/ip4/127.0.0.9/tcp/9096".into(),
            },
        ]
        .into_iter()
        .enumerate()
        {
            let undo = Undo::of(&state, &op);
            state.apply(&Entry {
                term: 2,
                index: 3,
                op,
            });
            assert_ne!(state, before, "op {n}");
            undo.restore(&mut state, before.position(), before.config_last);
            assert_eq!(state, before, "op {n}");
        }
    }
}
