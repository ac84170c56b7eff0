//! `cluster-upgrade plan`: gather facts over SSH (read-only), choose the procedure, render it,
//! show it, and save it on request.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{PlanArgs, SshArgs};
use crate::error::Error;
use crate::facts::{gather, HostFacts, ProbeTarget, ProbeVars};
use crate::inventory::{Identity as InventoryIdentity, Inventory};
use crate::plan::{build_plan, Plan, PlanError, PlanInputs};
use crate::report;
use crate::transport::{HostKeyPolicy, Identity, SshConnector, SshOptions, Target};

use super::inputs;

/// How long the read-only probe of one host may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn plan(args: &PlanArgs) -> Result<(), Error> {
    let (inventory, playbooks) = inputs::load(&args.input)?;
    let facts = match &args.facts {
        Some(path) => read_facts(path)?,
        None => probe(&inventory, &args.ssh)?,
    };
    let run_id = run_id();
    let plan = build_plan(PlanInputs { inventory: &inventory, playbooks: &playbooks, facts: &facts, requested: args.procedure, run_id: &run_id });
    let plan = match plan {
        Ok(plan) => plan,
        Err(PlanError::Refused(refusal)) => {
            report::print(&report::render_facts(&facts));
            return Err(PlanError::Refused(refusal).into());
        }
        Err(other) => return Err(other.into()),
    };
    if args.json {
        report::print(&plan_json(&plan));
    } else {
        report::print(&report::render_plan(&plan));
    }
    if let Some(out) = &args.out {
        write_private(out, plan_json(&plan).as_bytes())?;
        report::note(&format!("plan saved to {}", out.display()));
    }
    Ok(())
}

/// Probes every host of the inventory at once (bounded by the concurrency setting).
fn probe(inventory: &Inventory, ssh: &SshArgs) -> Result<Vec<HostFacts>, Error> {
    let options = SshOptions {
        known_hosts: ssh.known_hosts.clone().unwrap_or_else(|| inventory.ssh.known_hosts.clone()),
        policy: if ssh.accept_new_host_keys || inventory.ssh.accept_new_host_keys { HostKeyPolicy::AcceptNew } else { HostKeyPolicy::Strict },
        connect_timeout: inventory.ssh.connect_timeout.into(),
        ..SshOptions::new(inventory.ssh.known_hosts.clone())
    };
    let limit = ssh.concurrency.or(inventory.ssh.max_concurrency).map_or(inventory.hosts.len(), |n| n.get());
    let targets = inventory
        .hosts
        .iter()
        .map(|host| ProbeTarget {
            target: Target {
                name: host.name.to_string(),
                address: host.address.to_string(),
                port: host.port.get(),
                user: host.user.to_string(),
                identity: match &host.identity {
                    InventoryIdentity::File(path) => Identity::File(path.clone()),
                    InventoryIdentity::Agent => Identity::Agent,
                },
            },
            vars: ProbeVars {
                bin_dir: host.vars.str("bin_dir").unwrap_or("/usr/local/bin").to_string(),
                config_dir: host.vars.str("config_dir").unwrap_or("~/.ipfs-cluster").to_string(),
                api: host.vars.str("api").unwrap_or("/ip4/127.0.0.1/tcp/9094").to_string(),
            },
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Error::Runtime)?;
    let connector = Arc::new(SshConnector::new(options));
    Ok(runtime.block_on(gather(connector, targets, limit, PROBE_TIMEOUT)))
}

fn read_facts(path: &Path) -> Result<Vec<HostFacts>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::FactsFile { path: path.to_path_buf(), source: e.into() })?;
    serde_json::from_str(&text).map_err(|e| Error::FactsFile { path: path.to_path_buf(), source: e.into() })
}

fn plan_json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("a plan serializes") + "\n"
}

/// Writes a file readable by the user only: plans name hosts, paths and peer IDs.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// A run ID that sorts by time: `YYYYMMDDTHHMMSSZ`.
fn run_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
