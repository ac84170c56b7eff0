//! `cluster-upgrade plan`: gather facts over SSH (read-only), choose the procedure, render it,
//! show it, and save it on request.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::PlanArgs;
use crate::error::Error;
use crate::facts::HostFacts;
use crate::inventory::{Inventory, ReleaseSource, ReleaseSums, Version};
use crate::journal::{write_private_with, JournalError, StateDir};
use crate::plan::{build_plan, build_staged_plan, Plan, PlanError, PlanInputs, Refusal};
use crate::report;

use super::{hosts, inputs};

pub fn plan(args: &PlanArgs) -> Result<(), Error> {
    // A recorded facts file is parsed while the inventory and playbooks load; their errors
    // still come first.
    let (loaded, recorded) = std::thread::scope(|scope| {
        let recorded = (args.facts.as_deref()).map(|path| scope.spawn(|| read_facts(path)));
        let loaded = inputs::load(&args.input);
        let recorded = recorded.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (loaded, recorded)
    });
    let (inventory, playbooks) = loaded?;
    let facts = match recorded {
        Some(facts) => facts?,
        None => hosts::gather_facts(&inventory, &args.ssh)?,
    };
    let run_id = run_id();
    let plan = make_plan(PlanInputs {
        inventory: &inventory,
        playbooks: &playbooks,
        facts: &facts,
        requested: args.procedure,
        run_id: &run_id,
    });
    let plan = match plan {
        Ok(plan) => plan,
        Err(PlanError::Refused(refusal)) => {
            report::print(&report::render_facts(&facts));
            return Err(PlanError::Refused(refusal).into());
        }
        Err(other) => return Err(other.into()),
    };
    if !args.json {
        report::print(&report::render_plan(&plan));
    }
    // Serialized once, streamed into the state folder; stdout and `--out` get the same bytes.
    let state = StateDir::for_inventory(&args.input.inventory, args.state_dir.as_deref());
    state.create()?;
    let latest = state.latest_plan();
    write_plan(&latest, &plan)?;
    // Freeing a large plan string by string takes a noticeable share of the run; the process
    // ends right after this command, which frees it at once.
    std::mem::forget(plan);
    let saved = || {
        std::fs::File::open(&latest).map_err(|source| JournalError::Io {
            path: latest.clone(),
            source,
        })
    };
    if args.json {
        report::print_from(&mut saved()?);
    }
    if let Some(out) = &args.out {
        let mut file = saved()?;
        write_private_with(out, |to| std::io::copy(&mut file, to).map(drop))?;
        report::note(&format!("plan saved to {}", out.display()));
    }
    Ok(())
}

pub(super) fn read_facts(path: &Path) -> Result<Vec<HostFacts>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::FactsFile {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::FactsFile {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Saves `plan` as JSON, streamed: a large cluster's plan is never one string. Compact: plan
/// files are read by `apply` and by tools (`jq` shows them indented); people read `plan`'s text
/// view. Indenting the deeply nested steps made a third of a large plan's bytes.
pub(super) fn write_plan(path: &Path, plan: &Plan) -> Result<(), Error> {
    write_private_with(path, |out| {
        serde_json::to_writer(&mut *out, plan)?;
        out.write_all(b"\n")
    })?;
    Ok(())
}

/// A run ID that sorts by time: `YYYYMMDDTHHMMSSZ-xxxx`.
pub(super) fn run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    // The sub-second suffix keeps two plans made in the same second apart.
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z-{:04x}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_micros() % 0x10000
    )
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

/// Plans the upgrade; a jump that needs an intermediate release (0.9 → 1.x) is planned in two
/// stages through the newest 0.10.x the release source offers, or refused when it has none.
pub(super) fn make_plan(inputs: PlanInputs<'_>) -> Result<Plan, PlanError> {
    match build_plan(inputs) {
        Err(PlanError::Refused(Refusal::UnsupportedJump { from, to, format })) => {
            match intermediate_inventory(inputs.inventory) {
                Some(hop) => build_staged_plan(inputs, &hop),
                None => Err(PlanError::Refused(Refusal::IntermediateMissing {
                    from,
                    to,
                    format,
                    looked_in: release_source_text(inputs.inventory),
                })),
            }
        }
        other => other,
    }
}

/// The inventory with its target replaced by the newest 0.10.x release its source offers.
fn intermediate_inventory(inventory: &Inventory) -> Option<Inventory> {
    let is_hop = |v: &Version| v.major == 0 && v.minor == 10;
    let version = match &inventory.cluster.releases {
        ReleaseSource::Local { path, .. } => std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<Version>().ok())
            .filter(|v| is_hop(v) && path.join(v.to_string()).join("SHA256SUMS").is_file())
            .max()?,
        ReleaseSource::Url { sha256, .. } => sha256.keys().copied().filter(is_hop).max()?,
    };
    let mut hop = inventory.clone();
    hop.cluster.target_version = version;
    if let ReleaseSource::Local { path, sums } = &mut hop.cluster.releases {
        let text =
            std::fs::read_to_string(path.join(version.to_string()).join("SHA256SUMS")).ok()?;
        *sums = ReleaseSums::from_sha256sums(&text).ok()?;
    }
    Some(hop)
}

fn release_source_text(inventory: &Inventory) -> String {
    match &inventory.cluster.releases {
        ReleaseSource::Local { path, .. } => path.display().to_string(),
        ReleaseSource::Url { .. } => "the inventory's sha256 list".to_string(),
    }
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
