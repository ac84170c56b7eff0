//! The lease a run takes on every host before its first step and gives back after its last
//! (`<config_dir>/.cluster-upgrade.lease`): one run per cluster at a time, whatever state
//! directory or machine it runs from. Taken with a hard link, which fails when a lease exists,
//! so two runs starting together never both hold a host.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::facts::{parse_lease, Lease, ProbeVars, LEASE_FILE};
use crate::inventory::HostName;
use crate::transport::quote::{quote, QuoteError};
use crate::transport::Session;

/// How long one host's lease command may take.
pub(super) const LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// The lease to take, and which other runs' leases may be replaced.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub lease: Lease,
    /// Run ids whose lease is replaced rather than respected: `--take-over RUN_ID`, and runs
    /// this state directory knows to be finished or abandoned.
    pub replaceable: Vec<String>,
}

/// What happened on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lease was free and is ours now.
    Taken,
    /// We held it already (a resumed run).
    Ours,
    /// It was held by a replaceable run; it is ours now.
    Replaced(Lease),
    /// Another run holds it: nothing was changed.
    HeldBy(Lease),
    /// The lease command could not run.
    Failed(String),
}

/// The shell path of a host's lease file.
fn lease_path(vars: &ProbeVars) -> Result<String, QuoteError> {
    quote(&format!("{}/{LEASE_FILE}", vars.config_dir))
}

/// `case` patterns matching a lease of one of `run_ids` (run ids are plain words).
fn run_patterns(run_ids: &[&str]) -> Result<String, QuoteError> {
    run_ids
        .iter()
        .map(|id| Ok(format!("*{}*", quote(&format!("\"run_id\":\"{id}\""))?)))
        .collect::<Result<Vec<_>, _>>()
        .map(|patterns| patterns.join("|"))
}

/// The script that takes the lease on one host: create it exclusively; else keep it if ours,
/// replace it if replaceable, or print who holds it.
pub(super) fn claim_script(vars: &ProbeVars, request: &LeaseRequest) -> Result<String, QuoteError> {
    let lease = serde_json::to_string(&request.lease).expect("a lease serializes");
    let ours = run_patterns(&[&request.lease.run_id])?;
    let replaceable: Vec<&str> = request.replaceable.iter().map(String::as_str).collect();
    let replace_arm = if replaceable.is_empty() {
        String::new()
    } else {
        format!(
            "  {}) mv -f \"$t\" \"$l\" && echo 'lease replaced' && printf '%s\\n' \"$cur\" && exit 0 ;;\n",
            run_patterns(&replaceable)?
        )
    };
    Ok(format!(
        "l={path}; t=\"$l.$$.tmp\"\n\
         printf '%s\\n' {lease} >\"$t\" || exit 1\n\
         if ln \"$t\" \"$l\" 2>/dev/null; then rm -f \"$t\"; echo 'lease taken'; exit 0; fi\n\
         cur=$(cat \"$l\" 2>/dev/null)\n\
         case \"$cur\" in\n  {ours}) rm -f \"$t\"; echo 'lease ours'; exit 0 ;;\n{replace_arm}esac\n\
         rm -f \"$t\"; echo 'lease held'; printf '%s\\n' \"$cur\"\n",
        path = lease_path(vars)?,
        lease = quote(&lease)?,
    ))
}

/// The script that gives a lease back, only if it is ours.
pub(super) fn release_script(vars: &ProbeVars, run_id: &str) -> Result<String, QuoteError> {
    Ok(format!(
        "l={}; case \"$(cat \"$l\" 2>/dev/null)\" in {}) rm -f \"$l\" ;; esac",
        lease_path(vars)?,
        run_patterns(&[run_id])?
    ))
}

pub(super) fn claim_of(stdout: &str) -> Claim {
    let (first, rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
    let holder = || parse_lease(rest).unwrap_or_else(|| parse_lease("?").expect("a lease"));
    match first.trim() {
        "lease taken" => Claim::Taken,
        "lease ours" => Claim::Ours,
        "lease replaced" => Claim::Replaced(holder()),
        "lease held" => Claim::HeldBy(holder()),
        other => Claim::Failed(format!("unexpected answer `{other}`")),
    }
}

/// The claim on each host, by name.
pub type Claims = HashMap<HostName, Claim>;

/// One host's session and probe settings.
pub type LeaseHost<S> = (HostName, Arc<S>, ProbeVars);

/// Takes the lease on every host at once; the claims by host name. When any host is held by
/// another run, the leases this call took are given back before it returns.
pub async fn claim_all<S: Session + 'static>(
    hosts: &[LeaseHost<S>],
    request: &LeaseRequest,
) -> HashMap<HostName, Claim> {
    let mut tasks = JoinSet::new();
    for (name, session, vars) in hosts {
        let (name, session) = (name.clone(), Arc::clone(session));
        let script = claim_script(vars, request);
        tasks.spawn(async move {
            let claim = match script {
                Err(error) => Claim::Failed(error.to_string()),
                Ok(script) => match session.run(&script, LEASE_TIMEOUT).await {
                    Ok(output) if output.success() => claim_of(&output.stdout_text()),
                    Ok(output) => Claim::Failed(output.stderr_text().trim().to_string()),
                    Err(error) => Claim::Failed(crate::message::chain(&error)),
                },
            };
            (name, claim)
        });
    }
    let mut claims = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, claim) = joined.expect("lease task panicked");
        claims.insert(name, claim);
    }
    let refused = claims
        .values()
        .any(|c| matches!(c, Claim::HeldBy(_) | Claim::Failed(_)));
    if refused {
        let taken: Vec<LeaseHost<S>> = hosts
            .iter()
            .filter(|(name, _, _)| claims.get(name) == Some(&Claim::Taken))
            .cloned()
            .collect();
        release_all(&taken, &request.lease.run_id).await;
    }
    claims
}

/// Gives the lease back on every host where `run_id` holds it.
pub async fn release_all<S: Session + 'static>(hosts: &[LeaseHost<S>], run_id: &str) {
    let mut tasks = JoinSet::new();
    for (name, session, vars) in hosts {
        let (name, session) = (name.clone(), Arc::clone(session));
        let script = release_script(vars, run_id);
        tasks.spawn(async move {
            let result = match script {
                Ok(script) => session
                    .run(&script, LEASE_TIMEOUT)
                    .await
                    .map(drop)
                    .map_err(|e| crate::message::chain(&e)),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = result {
                tracing::warn!(host = %name, %error, "could not give the lease back");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> ProbeVars {
        ProbeVars {
            bin_dir: "/b".into(),
            config_dir: "/var/lib/my cluster".into(),
            api: "/ip4/127.0.0.1/tcp/9094".into(),
            ctl_env: String::new(),
            ctl_flags: String::new(),
            systemd_unit: None,
            docker_container: None,
            docker_env: String::new(),
        }
    }

    fn lease(run_id: &str) -> Lease {
        Lease {
            run_id: run_id.into(),
            controller: "root@ctl".into(),
            state_dir: "/s".into(),
            started_unix: 1,
        }
    }

    /// Runs a script with `sh` in a temporary config folder: the real shell semantics.
    fn sh(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn a_lease_is_taken_once_kept_by_its_run_and_refused_to_others_until_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        let vars = ProbeVars {
            config_dir: dir.path().to_str().unwrap().into(),
            ..vars()
        };
        let request = |run: &str, replaceable: &[&str]| LeaseRequest {
            lease: lease(run),
            replaceable: replaceable.iter().map(|s| s.to_string()).collect(),
        };
        let claim = |run: &str, replaceable: &[&str]| {
            claim_of(&sh(
                &claim_script(&vars, &request(run, replaceable)).unwrap()
            ))
        };
        assert_eq!(claim("20261204T000000Z-0001", &[]), Claim::Taken);
        assert_eq!(claim("20261204T000000Z-0001", &[]), Claim::Ours);
        assert_eq!(
            claim("20261204T000000Z-0002", &[]),
            Claim::HeldBy(lease("20261204T000000Z-0001"))
        );
        // Only the named run's lease is replaced.
        assert_eq!(
            claim("20261204T000000Z-0002", &["20261204T000000Z-0009"]),
            Claim::HeldBy(lease("20261204T000000Z-0001"))
        );
        assert_eq!(
            claim("20261204T000000Z-0002", &["20261204T000000Z-0001"]),
            Claim::Replaced(lease("20261204T000000Z-0001"))
        );
        // Giving back is only done by the holder.
        sh(&release_script(&vars, "20261204T000000Z-0001").unwrap());
        assert_eq!(
            claim("20261204T000000Z-0003", &[]),
            Claim::HeldBy(lease("20261204T000000Z-0002"))
        );
        sh(&release_script(&vars, "20261204T000000Z-0002").unwrap());
        assert_eq!(claim("20261204T000000Z-0003", &[]), Claim::Taken);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(
            leftovers.len(),
            1,
            "only the lease file remains: {leftovers:?}"
        );
    }

    #[test]
    fn paths_and_leases_are_quoted() {
        let script = claim_script(
            &vars(),
            &LeaseRequest {
                lease: lease("20261204T000000Z-0001"),
                replaceable: vec![],
            },
        )
        .unwrap();
        assert!(
            script.starts_with("l='/var/lib/my cluster/.cluster-upgrade.lease';"),
            "{script}"
        );
    }
}
