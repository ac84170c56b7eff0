//! Gathers the facts of every host at once (bounded), one SSH connection per host, one probe
//! command per connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::model::HostFacts;
use super::parse::parse_probe_output;
use super::probe::{probe_script, ProbeVars};
use crate::transport::{Connector, Session, Target};

/// One host to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub target: Target,
    pub vars: ProbeVars,
}

/// Probes every host, at most `limit` at a time, and returns their facts in the given order.
/// A host that cannot be reached (connection, host key, login, probe failure) gets facts that
/// say why, instead of failing the others.
pub async fn gather<C>(
    connector: Arc<C>,
    hosts: Vec<ProbeTarget>,
    limit: usize,
    timeout: Duration,
) -> Vec<HostFacts>
where
    C: Connector + 'static,
    C::Session: 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    let count = hosts.len();
    for (index, host) in hosts.into_iter().enumerate() {
        let connector = Arc::clone(&connector);
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            (index, probe_one(connector.as_ref(), &host, timeout).await)
        });
    }
    let mut facts: Vec<Option<HostFacts>> = vec![None; count];
    while let Some(joined) = tasks.join_next().await {
        let (index, host_facts) = joined.expect("probe task panicked");
        facts[index] = Some(host_facts);
    }
    facts
        .into_iter()
        .map(|f| f.expect("every host probed"))
        .collect()
}

async fn probe_one<C: Connector>(
    connector: &C,
    host: &ProbeTarget,
    timeout: Duration,
) -> HostFacts {
    let session = match connector.connect(&host.target).await {
        Ok(session) => session,
        Err(err) => return HostFacts::unreachable(&host.target.name, crate::error::chain(&err)),
    };
    let facts = probe_session(&session, host, timeout).await;
    let _ = session.close().await;
    facts
}

/// Probes one host over an open session (apply re-probes over the sessions it runs steps on).
pub async fn probe_session<S: Session>(
    session: &S,
    host: &ProbeTarget,
    timeout: Duration,
) -> HostFacts {
    let name = &host.target.name;
    let script = match probe_script(&host.vars) {
        Ok(script) => script,
        Err(err) => return HostFacts::unreachable(name, err.to_string()),
    };
    tracing::debug!(host = %name, "probing");
    match session.run(&script, timeout).await {
        Ok(output) => parse_probe_output(name, &host.target.address, &output.stdout_text()),
        Err(err) => HostFacts::unreachable(name, crate::error::chain(&err)),
    }
}
