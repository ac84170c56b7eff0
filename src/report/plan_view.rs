//! The human-readable plan: facts table, procedure and reasons, steps, downtime, backups.

use std::fmt::Write;

use super::table;
use crate::facts::HostFacts;
use crate::inventory::{describe_jumps, HostName};
use crate::plan::{Plan, ProcedureKind, Reach};
use crate::procedure::Mode;

/// The facts table, one row per host.
pub fn render_facts(facts: &[HostFacts]) -> String {
    let header = [
        "HOST", "VERSION", "RUNNING", "PEER ID", "SEES", "PROTOCOL", "STATE", "PINS", "LEAVE",
        "NOTE",
    ];
    let rows: Vec<Vec<String>> = facts
        .iter()
        .map(|f| {
            let dash = || "-".to_string();
            vec![
                f.host.to_string(),
                f.service_version.map_or_else(dash, |v| v.to_string()),
                if f.is_reachable() {
                    yes_no(f.running)
                } else {
                    dash()
                },
                f.peer_id.as_deref().map_or_else(dash, short_id),
                match &f.peerset {
                    Some(peerset) if f.running => peerset.count.to_string(),
                    _ => dash(),
                },
                f.rpc_protocol.clone().unwrap_or_else(dash),
                state_text(f).unwrap_or_else(dash),
                f.pins.as_ref().map_or_else(dash, |p| p.count.to_string()),
                f.leave_on_shutdown.map_or_else(dash, yes_no),
                note(f),
            ]
        })
        .collect();
    table::render(&header, &rows)
}

/// How a peer keeps its state: consensus, raft state format, datastore and pebble format
/// (`raft format 5`, `crdt pebble/24`), as far as known.
fn state_text(f: &HostFacts) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    parts.extend(f.consensus.map(|c| c.name().to_string()));
    parts.extend(f.state_format.map(|n| format!("format {n}")));
    parts.extend(f.datastore.as_ref().map(|store| match f.pebble_format {
        Some(format) => format!("{store}/{format}"),
        None => store.clone(),
    }));
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// How every host is logged into, one line per host: `user@address:port`, and the jump hosts
/// it is reached through, first to last (`through a → b`).
pub fn render_logins(reach: &Reach) -> String {
    let width = reach
        .hosts
        .iter()
        .map(|host| host.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for host in &reach.hosts {
        let address = match host.address.as_str().contains(':') {
            true => format!("[{}]", host.address),
            false => host.address.to_string(),
        };
        let _ = write!(
            out,
            "{:width$}  {}@{}:{}",
            host.name.as_str(),
            host.user,
            address,
            host.port
        );
        if !host.jumps.is_empty() {
            let _ = write!(out, " through {}", describe_jumps(&host.jumps));
        }
        if let Some(user) = &host.become_user {
            let _ = write!(out, ", as {user} with sudo");
        }
        out.push('\n');
    }
    out
}

/// The whole plan as text.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let choice = &plan.choice;
    let _ = writeln!(
        out,
        "Cluster {}: {} → {}\n",
        plan.cluster, choice.from, choice.to
    );
    out.push_str(&render_facts(&plan.facts));
    let _ = writeln!(out, "\nLogins:");
    for line in render_logins(&plan.reach).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "\nProcedure: {}", choice.procedure);
    for reason in &choice.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    match (&choice.anchor, choice.procedure) {
        (Some(anchor), ProcedureKind::Recover) => {
            let _ = writeln!(out, "  The state is restored on {anchor}, which is upgraded alone; the other peers are cleaned, upgraded and bootstrapped to it.");
        }
        (Some(anchor), ProcedureKind::Migrate) => {
            let _ = writeln!(out, "  The export is imported on {anchor}, which starts first; the other peers start clean and sync from it.");
        }
        (Some(anchor), _) => {
            let _ = writeln!(out, "  The state is kept on {anchor}; the other peers are removed, upgraded and bootstrapped to it.");
        }
        (None, _) => {}
    }
    for warning in &choice.warnings {
        let _ = writeln!(out, "WARNING: {warning}");
    }
    let _ = writeln!(out, "\nSteps:");
    let rolling = rolling_hosts(plan);
    let mut index = 0;
    for step in &plan.steps {
        // A rolling group is shown once, as rendered for its first host.
        let rolled = step.mode == Mode::Rolling;
        if rolled && step.hosts.first().map(|h| &h.host) != rolling.first().copied() {
            continue;
        }
        let how = match (step.mode, step.hosts.len()) {
            (Mode::Rolling, _) => "rolling, each peer in turn:",
            (_, 1) => "on",
            (Mode::Parallel, _) => "in parallel on",
            (Mode::Serial, _) => "one host after another on",
        };
        let hosts: Vec<&str> = if rolled {
            rolling.iter().map(|h| h.as_str()).collect()
        } else {
            step.hosts.iter().map(|h| h.host.as_str()).collect()
        };
        let hosts = host_list(&hosts, plan.facts.len());
        let marker = if step.destructive {
            " [destructive]"
        } else {
            ""
        };
        index += 1;
        let _ = writeln!(out, "{index:>3}. {}{marker} ({how} {})", step.name, hosts);
        if let Some(first) = step.hosts.first() {
            if let Some(upload) = &first.upload {
                let _ = writeln!(
                    out,
                    "       upload {} → {}",
                    upload.from.display(),
                    upload.to
                );
            }
            if let Some(command) = &first.command {
                let _ = writeln!(out, "       $ {}", first_line(command));
            }
            if let Some(wait) = &first.wait_until {
                let _ = writeln!(
                    out,
                    "       wait until (every {}, up to {}): {}",
                    wait.interval,
                    wait.deadline,
                    first_line(&wait.command)
                );
                if let Some(fail_when) = &wait.fail_when {
                    let _ = writeln!(out, "         gives up when: {}", first_line(fail_when));
                }
            }
        }
    }
    render_on_demand(&mut out, plan);
    let _ = writeln!(out, "\nExpected downtime: {}", plan.expected_downtime);
    let _ = writeln!(out, "Backups:");
    for backup in &plan.backups {
        let _ = writeln!(out, "  - {backup}");
    }
    out
}

/// The on-demand steps, once each (as rendered for their first host), with the hosts they
/// may run on.
fn render_on_demand(out: &mut String, plan: &Plan) {
    let Some(first) = plan.on_demand.first().and_then(|s| s.hosts.first()) else {
        return;
    };
    let mut hosts: Vec<&str> = Vec::new();
    for host in plan.on_demand.iter().flat_map(|s| &s.hosts) {
        if !hosts.contains(&host.host.as_str()) {
            hosts.push(host.host.as_str());
        }
    }
    let _ = writeln!(
        out,
        "\nOnly if a peer still lacks pins the others list after the last step (resync; one \
         peer at a time, only while some peer lacks none, never a peer holding a pin such a peer \
         lacks; on {}):",
        host_list(&hosts, plan.facts.len())
    );
    let steps = plan
        .on_demand
        .iter()
        .filter(|s| s.hosts.iter().any(|h| h.host == first.host));
    for (index, step) in steps.enumerate() {
        let marker = if step.destructive {
            " [destructive]"
        } else {
            ""
        };
        let _ = writeln!(out, "  {}. {}{marker}", index + 1, step.name);
    }
}

/// The hosts of the plan's rolling steps, in the order they are rolled.
fn rolling_hosts(plan: &Plan) -> Vec<&HostName> {
    let mut hosts: Vec<&HostName> = Vec::new();
    for step in plan.steps.iter().filter(|s| s.mode == Mode::Rolling) {
        for host in &step.hosts {
            if !hosts.contains(&&host.host) {
                hosts.push(&host.host);
            }
        }
    }
    hosts
}

/// A step's hosts, in their order; a long list is cut to its first and last names (a plan of
/// a thousand hosts would otherwise print a thousand names per step).
pub(super) fn host_list(hosts: &[&str], plan_hosts: usize) -> String {
    const LISTED_UP_TO: usize = 8;
    match hosts {
        _ if hosts.len() <= LISTED_UP_TO => hosts.join(", "),
        [first, second, third, .., last] if hosts.len() == plan_hosts => {
            format!(
                "all {} hosts: {first}, {second}, {third}, …, {last}",
                hosts.len()
            )
        }
        [first, second, third, .., last] => {
            format!(
                "{} hosts: {first}, {second}, {third}, …, {last}",
                hosts.len()
            )
        }
        _ => hosts.join(", "),
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

/// Peer IDs are long; the tail is what operators compare.
fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 14 {
        id.to_string()
    } else {
        format!(
            "{}…{}",
            chars[..4].iter().collect::<String>(),
            chars[chars.len() - 6..].iter().collect::<String>()
        )
    }
}

fn note(facts: &HostFacts) -> String {
    if let Some(reason) = &facts.unreachable {
        return format!("unreachable: {reason}");
    }
    let mut parts = Vec::new();
    if !facts.peer_errors.is_empty() {
        parts.push(format!("{} peer(s) with errors", facts.peer_errors.len()));
    }
    if !facts.followers.is_empty() {
        parts.push(format!("followers: {}", facts.followers.join(", ")));
    }
    parts.join("; ")
}

fn first_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or_default().to_string();
    if lines.next().is_some() {
        first + " …"
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_the_followers_after_the_peer_errors() {
        let mut facts = HostFacts::of("h1".parse().unwrap());
        assert_eq!(note(&facts), "");
        facts.followers = vec!["archive".into(), "mirror".into()];
        assert_eq!(note(&facts), "followers: archive, mirror");
        facts.peer_errors = vec![crate::facts::PeerError {
            peer_id: "QmB".into(),
            error: "protocol not supported".into(),
        }];
        assert_eq!(
            note(&facts),
            "1 peer(s) with errors; followers: archive, mirror"
        );
    }

    #[test]
    fn a_long_host_list_is_cut_to_its_ends_and_counted() {
        let names: Vec<String> = (1..=1000).map(|i| format!("h{i}")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(host_list(&all[..3], 1000), "h1, h2, h3");
        assert_eq!(host_list(&all[..8], 1000), "h1, h2, h3, h4, h5, h6, h7, h8");
        assert_eq!(
            host_list(&all, 1000),
            "all 1000 hosts: h1, h2, h3, …, h1000"
        );
        assert_eq!(
            host_list(&all[1..], 1000),
            "999 hosts: h2, h3, h4, …, h1000"
        );
    }
}
