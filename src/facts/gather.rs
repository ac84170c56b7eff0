//! Gathers the facts of every host: one SSH connection per host, one probe command per
//! connection, all hosts at once; `peers ls`, whose cost grows with the cluster, on one host.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::model::HostFacts;
use super::parse::{parse_peers, parse_probe_output};
use super::probe::{peers_script, probe_script, ProbeScope, ProbeVars};
use crate::message::chain;
use crate::transport::{Connector, Session, Target, TransportError};

/// One host to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub target: Target,
    pub vars: ProbeVars,
}

/// A host's open session, or why it could not be opened (shared: every probe of the host
/// reports it).
pub type Connection<S> = Result<Arc<S>, Arc<TransportError>>;

/// Connects to every host, at most `limit` at a time, in the given order. A host that cannot be
/// reached (connection, host key, login) gets the reason instead of failing the others.
pub async fn connect_all<C>(
    connector: Arc<C>,
    hosts: &[ProbeTarget],
    limit: usize,
) -> Vec<Connection<C::Session>>
where
    C: Connector + 'static,
    C::Session: 'static,
{
    each_connected(connector, hosts, limit, |_, _, _| async {})
        .await
        .into_iter()
        .map(|(connection, ())| connection)
        .collect()
}

/// Connects to every host (at most `limit` at a time) and runs `then` on each host as soon as
/// its connection is up or failed; results in the given order.
async fn each_connected<C, T, F, Fut>(
    connector: Arc<C>,
    hosts: &[ProbeTarget],
    limit: usize,
    then: F,
) -> Vec<(Connection<C::Session>, T)>
where
    C: Connector + 'static,
    C::Session: 'static,
    T: Send + 'static,
    F: Fn(usize, ProbeTarget, Connection<C::Session>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    for (index, host) in hosts.iter().enumerate() {
        let connector = Arc::clone(&connector);
        let permits = Arc::clone(&permits);
        let host = host.clone();
        let then = then.clone();
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            let connection = connector
                .connect(&host.target)
                .await
                .map(Arc::new)
                .map_err(Arc::new);
            let result = then(index, host, connection.clone()).await;
            (index, connection, result)
        });
    }
    let mut results: Vec<Option<(Connection<C::Session>, T)>> =
        (0..hosts.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, connection, result) = joined.expect("connect task panicked");
        results[index] = Some((connection, result));
    }
    results
        .into_iter()
        .map(|r| r.expect("every host connected or failed"))
        .collect()
}

/// What to probe and how long one probe may take.
#[derive(Debug, Clone)]
pub struct Probing {
    pub scope: ProbeScope,
    pub timeout: Duration,
    /// A script per host (by index) run right after its probe, in the same command.
    pub then: Option<Then>,
}

/// Scripts run on each host right after its probe, in the same command, so in the same round
/// trip (by host index): `apply --yes` takes the hosts' lease this way (docs/adr/0023). Their
/// output comes back apart from the facts, which stay what the read-only probe found.
pub type Then = Arc<Vec<String>>;

/// What a host's `then` script printed (stdout and stderr) when it ran and exited 0, or why it
/// did not (its output, or why the probe failed).
pub type ThenOutput = Result<String, String>;

/// Probes every host over its connection, all at once, and returns their facts in the given
/// order. `peers ls` runs on the first host; if its peer is unreachable or not running, again on
/// the first one that runs, so that the facts name the peers the cluster cannot reach.
pub async fn probe_all<S: Session + 'static>(
    connections: &[Connection<S>],
    hosts: &[ProbeTarget],
    scope: ProbeScope,
    timeout: Duration,
) -> Vec<HostFacts> {
    let mut tasks = JoinSet::new();
    for (index, (connection, host)) in connections.iter().zip(hosts).enumerate() {
        let connection = connection.clone();
        let host = host.clone();
        tasks.spawn(async move {
            let facts = match &connection {
                Ok(session) => {
                    let probing = Probing {
                        scope,
                        timeout,
                        then: None,
                    };
                    probe_host(session.as_ref(), &host, index, &probing).await.0
                }
                Err(error) => HostFacts::unreachable(&host.target.name, chain(error.as_ref())),
            };
            (index, facts)
        });
    }
    let mut facts: Vec<Option<HostFacts>> = vec![None; hosts.len()];
    while let Some(joined) = tasks.join_next().await {
        let (index, host_facts) = joined.expect("probe task panicked");
        facts[index] = Some(host_facts);
    }
    let mut facts: Vec<HostFacts> = facts
        .into_iter()
        .map(|f| f.expect("every host probed"))
        .collect();
    peers_elsewhere(connections, hosts, &mut facts, timeout).await;
    facts
}

/// What [`connect_and_probe`] found: each host's connection, facts, and what its `then`
/// script printed (`None` without one), in the given order.
pub struct Probed<S> {
    pub connections: Vec<Connection<S>>,
    pub facts: Vec<HostFacts>,
    pub then: Vec<Option<ThenOutput>>,
}

/// Connects to every host and probes it as soon as its connection is up (no host waits for
/// the slowest connection), at most `limit` hosts at a time; `peers ls` as in [`probe_all`].
pub async fn connect_and_probe<C>(
    connector: Arc<C>,
    hosts: &[ProbeTarget],
    limit: usize,
    probing: Probing,
) -> Probed<C::Session>
where
    C: Connector + 'static,
    C::Session: 'static,
{
    let timeout = probing.timeout;
    let probing = Arc::new(probing);
    let probed = each_connected(connector, hosts, limit, move |index, host, connection| {
        let probing = Arc::clone(&probing);
        async move {
            match &connection {
                Ok(session) => probe_host(session.as_ref(), &host, index, &probing).await,
                Err(error) => {
                    let why = chain(error.as_ref());
                    let then = probing.then.as_ref().map(|_| Err(why.clone()));
                    (HostFacts::unreachable(&host.target.name, why), then)
                }
            }
        }
    })
    .await;
    let mut connections = Vec::with_capacity(probed.len());
    let mut facts = Vec::with_capacity(probed.len());
    let mut then = Vec::with_capacity(probed.len());
    for (connection, (host_facts, host_then)) in probed {
        connections.push(connection);
        facts.push(host_facts);
        then.push(host_then);
    }
    peers_elsewhere(&connections, hosts, &mut facts, timeout).await;
    Probed {
        connections,
        facts,
        then,
    }
}

/// The first host's probe includes `peers ls`; the host's `then` script follows the probe.
async fn probe_host<S: Session>(
    session: &S,
    host: &ProbeTarget,
    index: usize,
    probing: &Probing,
) -> (HostFacts, Option<ThenOutput>) {
    let scope = if index == 0 {
        probing.scope.with_peers()
    } else {
        probing.scope
    };
    match probing.then.as_ref().and_then(|then| then.get(index)) {
        None => (
            probe_session(session, host, scope, probing.timeout).await,
            None,
        ),
        Some(then) => {
            let (facts, output) = probe_then(session, host, scope, (then, probing.timeout)).await;
            (facts, Some(output))
        }
    }
}

/// Probes one host and runs `then` right after, in the same command: `then` runs in a
/// subshell of its own (its `exit` ends only itself) and its output comes back as the
/// `then` section.
async fn probe_then<S: Session>(
    session: &S,
    host: &ProbeTarget,
    scope: ProbeScope,
    (then, timeout): (&str, Duration),
) -> (HostFacts, ThenOutput) {
    let name = &host.target.name;
    let script = match probe_script(&host.vars, scope) {
        Ok(script) => script + &format!("section then; ( {then}\n) 2>&1; rc $?\n"),
        Err(err) => {
            return (
                HostFacts::unreachable(name, err.to_string()),
                Err(err.to_string()),
            )
        }
    };
    match session.run(&script, timeout).await {
        Ok(output) => {
            let stdout = output.stdout_text();
            let facts = parse_probe_output(name, &host.target.address, &stdout);
            let then = match super::parse::section(&stdout, "then") {
                Some((body, Some(0))) => Ok(body),
                Some((body, _)) => Err(body.trim().to_string()),
                None => Err(format!(
                    "the probe ended before its last part: {}",
                    output.stderr_text().trim()
                )),
            };
            (facts, then)
        }
        Err(err) => {
            let why = chain(&err);
            (HostFacts::unreachable(name, why.clone()), Err(why))
        }
    }
}

/// When the first host's peer could not answer `peers ls`, asks the first peer that runs.
async fn peers_elsewhere<S: Session>(
    connections: &[Connection<S>],
    hosts: &[ProbeTarget],
    facts: &mut [HostFacts],
    timeout: Duration,
) {
    if facts.first().is_none_or(|f| f.running) {
        return;
    }
    if let Some(index) = facts.iter().position(|f| f.running) {
        if let Ok(session) = &connections[index] {
            (facts[index].peer_errors, facts[index].listed_peers) =
                probe_peers(session.as_ref(), &hosts[index], timeout).await;
        }
    }
}

/// Probes one host over an open session.
pub async fn probe_session<S: Session>(
    session: &S,
    host: &ProbeTarget,
    scope: ProbeScope,
    timeout: Duration,
) -> HostFacts {
    let name = &host.target.name;
    let script = match probe_script(&host.vars, scope) {
        Ok(script) => script,
        Err(err) => return HostFacts::unreachable(name, err.to_string()),
    };
    let started = std::time::Instant::now();
    let facts = match session.run(&script, timeout).await {
        Ok(output) => {
            let stdout = output.stdout_text();
            let mut facts = parse_probe_output(name, &host.target.address, &stdout);
            if scope.cids {
                facts.listed_cids = super::parse::listed_cids(&stdout).map(std::sync::Arc::new);
            }
            facts
        }
        Err(err) => HostFacts::unreachable(name, chain(&err)),
    };
    tracing::trace!(host = %name, ?scope, elapsed = ?started.elapsed(), "probed host");
    facts
}

/// `peers ls` alone on one host: the peers it reports with an error, and every peer it lists
/// (none if it cannot run).
async fn probe_peers<S: Session>(
    session: &S,
    host: &ProbeTarget,
    timeout: Duration,
) -> (Vec<super::model::PeerError>, Vec<String>) {
    let Ok(script) = peers_script(&host.vars) else {
        return Default::default();
    };
    match session.run(&script, timeout).await {
        Ok(output) => parse_peers(&output.stdout_text()),
        Err(err) => {
            tracing::warn!(host = %host.target.name, error = %chain(&err), "peers ls failed");
            Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    //! `probe_all` over fake sessions that answer like a peer: running or stopped.

    use std::sync::Mutex;

    use super::*;
    use crate::transport::{CommandOutput, Exit, Identity, TransportError, Upload};

    struct FakePeer {
        running: bool,
        scripts: Mutex<Vec<String>>,
    }

    impl Session for FakePeer {
        async fn run(
            &self,
            command: &str,
            _timeout: Duration,
        ) -> Result<CommandOutput, TransportError> {
            self.scripts.lock().unwrap().push(command.to_string());
            let mut out = String::new();
            if command.contains("section id;") {
                out += if self.running {
                    "@@ id\n{\"id\":\"QmSelf\",\"cluster_peers\":[\"QmSelf\"]}\n@@ rc 0\n"
                } else {
                    "@@ id\nconnection refused\n@@ rc 1\n"
                };
            }
            if command.contains("peers ls") {
                out += if self.running {
                    "@@ peers\n[{\"id\":\"QmGone\",\"error\":\"dial backoff\"}]\n@@ rc 0\n"
                } else {
                    "@@ peers\nconnection refused\n@@ rc 1\n"
                };
            }
            Ok(CommandOutput {
                stdout: out.into_bytes(),
                stderr: Vec::new(),
                exit: Exit::Status(0),
            })
        }

        async fn upload(&self, _upload: &Upload) -> Result<(), TransportError> {
            Ok(())
        }

        async fn close(&self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    fn host(name: &str) -> ProbeTarget {
        ProbeTarget {
            target: Target {
                jumps: Vec::new(),
                become_user: None,
                name: name.into(),
                address: "127.0.0.1".into(),
                port: 22,
                user: "u".into(),
                identity: Identity::Agent,
            },
            vars: ProbeVars {
                bin_dir: "/usr/local/bin".into(),
                config_dir: "/c".into(),
                api: "/ip4/127.0.0.1/tcp/9094".into(),
                ctl_env: String::new(),
                ctl_flags: String::new(),
                systemd_unit: None,
                docker_container: None,
                docker_env: String::new(),
            },
        }
    }

    fn peer(running: bool) -> Connection<FakePeer> {
        Ok(Arc::new(FakePeer {
            running,
            scripts: Mutex::new(Vec::new()),
        }))
    }

    fn peers_ls_runs(connection: &Connection<FakePeer>) -> usize {
        let session = connection.as_ref().unwrap();
        let scripts = session.scripts.lock().unwrap();
        scripts.iter().filter(|s| s.contains("peers ls")).count()
    }

    #[tokio::test]
    async fn peers_ls_runs_on_one_host_only_the_first_that_runs() {
        let hosts = [host("h1"), host("h2"), host("h3")];
        let refused = TransportError::Connect {
            host: "h1".into(),
            address: "127.0.0.1:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let connections = vec![Err(Arc::new(refused)), peer(true), peer(true)];
        let facts = probe_all(
            &connections,
            &hosts,
            ProbeScope::FULL,
            Duration::from_secs(1),
        )
        .await;
        assert!(facts[0].unreachable.as_deref().unwrap().contains("refused"));
        assert_eq!(peers_ls_runs(&connections[1]), 1);
        assert_eq!(peers_ls_runs(&connections[2]), 0);
        assert_eq!(facts[1].peer_errors.len(), 1);
        assert!(facts[2].peer_errors.is_empty());
    }

    #[tokio::test]
    async fn a_stopped_first_peer_hands_peers_ls_to_the_first_running_one() {
        let hosts = [host("h1"), host("h2"), host("h3")];
        let connections = vec![peer(false), peer(true), peer(true)];
        let facts = probe_all(
            &connections,
            &hosts,
            ProbeScope::HEALTH,
            Duration::from_secs(1),
        )
        .await;
        assert!(!facts[0].running && facts[1].running);
        assert_eq!(
            facts[1].peer_errors[0].peer_id, "QmGone",
            "the first running peer reports the peers it cannot reach"
        );
        assert_eq!(
            (
                peers_ls_runs(&connections[1]),
                peers_ls_runs(&connections[2])
            ),
            (1, 0)
        );
    }
}
