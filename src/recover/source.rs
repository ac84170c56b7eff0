//! Where the recovery takes the state from: per host, what survives on disk (the live `raft/`
//! folder, `raft.old.N` backups, each with or without a snapshot), and the choice among them.
//! Pure: unit-tested on facts.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::facts::{Consensus, HostFacts, Peerset, StoredState};
use crate::inventory::{HostName, Version};

/// Where the surviving state is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// The host's live `raft/` folder holds a snapshot.
    Live,
    /// A `raft.old.N` backup holds a snapshot: it is renamed back to `raft` first.
    Backup { folder: String },
    /// An export made earlier with the old version, on the controller (`--from-export`).
    Export { file: PathBuf },
}

impl Origin {
    /// `raft`, `backup` or `export`: what the playbook's `recovery.source` says.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Live => "raft",
            Origin::Backup { .. } => "backup",
            Origin::Export { .. } => "export",
        }
    }
}

/// The state the recovery restores, and on which host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub host: HostName,
    pub origin: Origin,
    /// The snapshot folder (`<term>-<index>-<unix ms>`) for a live or backup source.
    pub snapshot: Option<String>,
}

/// The chooser's decision, with what it saw on every host and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChoice {
    pub source: Source,
    /// The version installed on the source host: the old version that exports and imports.
    pub from: Version,
    /// One line per host: what state survives there.
    pub findings: Vec<String>,
    /// Why this source.
    pub reason: String,
    pub warnings: Vec<String>,
}

/// Why no recovery can be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoverRefusal {
    #[error("host {host} is unreachable ({reason}); every peer is cleaned and bootstrapped again, so every host must be reachable")]
    Unreachable { host: HostName, reason: String },
    #[error("host {host}: ipfs-cluster-service was not found or did not report its version; check bin_dir for this host")]
    NotInstalled { host: HostName },
    #[error(
        "host {host} runs {current}, newer than the target {target}; downgrades are not supported"
    )]
    Downgrade {
        host: HostName,
        current: Version,
        target: Version,
    },
    #[error("{from} → {to} cannot be done directly: the state is imported with {from}, whose format {format} {to} cannot read. Recover to 0.10.1 first, then upgrade to {to}")]
    UnsupportedJump {
        from: Version,
        to: Version,
        format: u8,
    },
    #[error("no host keeps a raft snapshot, neither in raft/ nor in a raft.old.N backup ({}); give an export made earlier with --from-export FILE", findings.join("; "))]
    NothingSurvives { findings: Vec<String> },
    #[error("every peer is running and sees the whole peerset: there is nothing to recover; use `cluster-upgrade apply` to upgrade")]
    Healthy,
    #[error("the chosen state on {host} ({folder}) has format {format}, but the installed {version} reads format {expected}; export and import need the release that wrote it")]
    FormatMismatch {
        host: HostName,
        folder: String,
        format: u8,
        version: Version,
        expected: u8,
    },
    #[error("host {host}: its peer ID is unknown (neither the running peer nor its config told it), so the others cannot bootstrap to it")]
    NoPeerId { host: HostName },
    #[error("host {host} runs its peer in a Docker container: recover runs `ipfs-cluster-service state …` with the binaries on the host and has no Docker procedure yet; recover it by hand (docs/docker.md)")]
    Docker { host: HostName },
    #[error("host {host} uses crdt consensus: recover rebuilds a raft cluster (raft snapshots, `state cleanup` of raft folders, bootstrapping to one peer) and has no crdt procedure yet")]
    Crdt { host: HostName },
}

/// Chooses the state to restore. With `from_export`, the export is imported on the last host;
/// otherwise a live `raft/` snapshot with the most recent index wins, else the newest
/// `raft.old.N` backup holding a snapshot. Ties go to the later host in inventory order (the
/// docs keep "the last" peer).
pub fn choose_source(
    facts: &[HostFacts],
    target: Version,
    from_export: Option<&PathBuf>,
) -> Result<SourceChoice, RecoverRefusal> {
    for host in facts {
        recoverable(host, target)?;
    }
    refuse_healthy(facts)?;
    let findings: Vec<String> = facts.iter().map(finding).collect();
    let mut warnings: Vec<String> = facts
        .iter()
        .filter(|h| h.running)
        .map(|h| format!("{} is running: it is stopped first, and the state it then writes is not the one chosen here", h.host))
        .collect();
    let (source, reason) = match from_export {
        Some(file) => export_source(facts, file)?,
        None => {
            let chosen = newest_state(facts, &findings)?;
            warnings.extend(newer_backup_warning(facts, &chosen));
            check_format(facts, &chosen)?;
            state_source(&chosen)
        }
    };
    let from = source_version(facts, &source, target)?;
    Ok(SourceChoice {
        source,
        from,
        findings,
        reason,
        warnings,
    })
}

/// A host can take part in a recovery: reachable, installed, not above the target, raft.
fn recoverable(host: &HostFacts, target: Version) -> Result<(), RecoverRefusal> {
    if let Some(reason) = &host.unreachable {
        return Err(RecoverRefusal::Unreachable {
            host: host.host.clone(),
            reason: reason.clone(),
        });
    }
    let version = host
        .service_version
        .ok_or_else(|| RecoverRefusal::NotInstalled {
            host: host.host.clone(),
        })?;
    if version > target {
        return Err(RecoverRefusal::Downgrade {
            host: host.host.clone(),
            current: version,
            target,
        });
    }
    if host.container.is_some() {
        return Err(RecoverRefusal::Docker {
            host: host.host.clone(),
        });
    }
    if host.consensus == Some(Consensus::Crdt) {
        return Err(RecoverRefusal::Crdt {
            host: host.host.clone(),
        });
    }
    Ok(())
}

/// A cluster whose peers all run and see each other needs no recovery.
fn refuse_healthy(facts: &[HostFacts]) -> Result<(), RecoverRefusal> {
    let whole = Peerset::expected(facts);
    let sees_every_peer =
        |h: &HostFacts| h.peerset.as_ref() == Some(&whole) && whole.count == facts.len();
    let healthy = !facts.is_empty()
        && facts
            .iter()
            .all(|h| h.running && sees_every_peer(h) && h.peer_errors.is_empty());
    if healthy {
        Err(RecoverRefusal::Healthy)
    } else {
        Ok(())
    }
}

/// `--from-export FILE`: imported on the last host.
fn export_source(
    facts: &[HostFacts],
    file: &std::path::Path,
) -> Result<(Source, String), RecoverRefusal> {
    let host = facts
        .last()
        .map(|h| h.host.clone())
        .ok_or(RecoverRefusal::NothingSurvives {
            findings: Vec::new(),
        })?;
    let reason = format!("--from-export {} given: it is imported on {host} (the last peer); states on the hosts are not used", file.display());
    let source = Source {
        host,
        origin: Origin::Export {
            file: file.to_path_buf(),
        },
        snapshot: None,
    };
    Ok((source, reason))
}

/// The live snapshot with the most recent index, else the newest backup holding one.
fn newest_state<'a>(
    facts: &'a [HostFacts],
    findings: &[String],
) -> Result<Candidate<'a>, RecoverRefusal> {
    let mut candidates = candidates(facts);
    let live = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.state.backup_number().is_none())
        .max_by_key(|(_, c)| (c.position, c.index))
        .map(|(at, _)| at);
    let backup = || {
        candidates
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| {
                (
                    c.position,
                    std::cmp::Reverse(c.state.backup_number()),
                    c.index,
                )
            })
            .map(|(at, _)| at)
    };
    match live.or_else(backup) {
        Some(at) => Ok(candidates.swap_remove(at)),
        None => Err(RecoverRefusal::NothingSurvives {
            findings: findings.to_vec(),
        }),
    }
}

/// A backup with a higher index than the chosen live state is named: the live one is preferred.
fn newer_backup_warning(facts: &[HostFacts], chosen: &Candidate<'_>) -> Option<String> {
    let index = chosen.position.0;
    let candidates = candidates(facts);
    let newer = candidates
        .iter()
        .filter(|c| c.position.0 > index)
        .max_by_key(|c| c.position)?;
    Some(format!(
        "{} on {} has a higher index ({}) than the chosen state; it is a backup, and the live state is preferred",
        newer.state.folder, newer.host, newer.position.0
    ))
}

/// The chosen state as the recovery's source, with the reason it was chosen.
fn state_source(chosen: &Candidate<'_>) -> (Source, String) {
    let (index, term, _) = chosen.position;
    let (origin, reason) = match chosen.state.backup_number() {
        None => (
            Origin::Live,
            format!(
                "{}'s raft/ holds the live snapshot with the most recent index ({index}, term {term}); live states are preferred to backups",
                chosen.host
            ),
        ),
        Some(_) => (
            Origin::Backup {
                folder: chosen.state.folder.clone(),
            },
            format!(
                "no host has a live raft/ snapshot; {} on {} is the newest backup holding a snapshot (index {index}, term {term}): it is renamed back to raft first",
                chosen.state.folder, chosen.host
            ),
        ),
    };
    let source = Source {
        host: chosen.host.clone(),
        origin,
        snapshot: chosen.state.snapshot.clone(),
    };
    (source, reason)
}

/// The version the source host runs, when its state can reach `target`.
fn source_version(
    facts: &[HostFacts],
    source: &Source,
    target: Version,
) -> Result<Version, RecoverRefusal> {
    let source_facts = facts
        .iter()
        .find(|h| h.host == source.host)
        .expect("the source is one of the hosts");
    if source_facts.peer_id.is_none() {
        return Err(RecoverRefusal::NoPeerId {
            host: source.host.clone(),
        });
    }
    let from = source_facts
        .service_version
        .expect("checked by recoverable");
    if let Some(format) = from
        .state_format()
        .filter(|f| *f < 6 && target.state_format().is_none())
    {
        return Err(RecoverRefusal::UnsupportedJump {
            from,
            to: target,
            format,
        });
    }
    Ok(from)
}

/// A folder holding a snapshot, on some host.
struct Candidate<'a> {
    host: &'a HostName,
    /// Inventory order.
    index: usize,
    state: &'a StoredState,
    /// `(index, term, unix ms)`.
    position: (u64, u64, u64),
}

fn candidates(facts: &[HostFacts]) -> Vec<Candidate<'_>> {
    facts
        .iter()
        .enumerate()
        .flat_map(|(index, host)| {
            host.stored_states.iter().filter_map(move |state| {
                Some(Candidate {
                    host: &host.host,
                    index,
                    state,
                    position: state.snapshot_position()?,
                })
            })
        })
        .collect()
}

/// Where the state format is known (≤ 0.10: the snapshot's first byte), the installed release
/// must be the one that reads it: export refuses an outdated state.
fn check_format(facts: &[HostFacts], chosen: &Candidate<'_>) -> Result<(), RecoverRefusal> {
    let host = &facts[chosen.index];
    let (Some(version), Some(format)) = (host.service_version, chosen.state.first_byte) else {
        return Ok(());
    };
    match version.state_format() {
        Some(expected) if expected != format => Err(RecoverRefusal::FormatMismatch {
            host: host.host.clone(),
            folder: chosen.state.folder.clone(),
            format,
            version,
            expected,
        }),
        _ => Ok(()),
    }
}

/// `h1 (0.9.0, stopped): raft/ missing; raft.old.0 snapshot 3-9-1795607331211 (format 5)`.
fn finding(host: &HostFacts) -> String {
    let version = host
        .service_version
        .map_or_else(|| "?".to_string(), |v| v.to_string());
    let running = if host.running { "running" } else { "stopped" };
    let mut parts = Vec::new();
    if !host.stored_states.iter().any(|s| s.folder == "raft") {
        parts.push("raft/ missing".to_string());
    }
    for state in &host.stored_states {
        let folder = match state.backup_number() {
            None => format!("{}/", state.folder),
            Some(_) => state.folder.clone(),
        };
        parts.push(match &state.snapshot {
            Some(snapshot) => format!(
                "{folder} snapshot {snapshot}{}",
                FormatNote(state.first_byte)
            ),
            None => format!("{folder} without a snapshot"),
        });
    }
    if host.stored_states.is_empty() && host.has_snapshot {
        parts = vec!["raft/ has a snapshot".to_string()];
    }
    format!("{} ({version}, {running}): {}", host.host, parts.join("; "))
}

struct FormatNote(Option<u8>);

impl fmt::Display for FormatNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(byte) if byte < 32 => write!(f, " (format {byte})"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V010: Version = Version::new(0, 10, 1);

    fn stopped(name: &str, states: &[(&str, Option<&str>)]) -> HostFacts {
        HostFacts {
            host: name.into(),
            service_version: Some(Version::new(0, 9, 0)),
            peer_id: Some(format!("Qm{name}")),
            stored_states: states
                .iter()
                .map(|(folder, snapshot)| StoredState {
                    folder: folder.to_string(),
                    snapshot: snapshot.map(str::to_string),
                    first_byte: snapshot.map(|_| 5),
                })
                .collect(),
            ..HostFacts::default()
        }
    }

    #[test]
    fn the_only_backup_with_a_snapshot_is_chosen_and_the_findings_say_why() {
        let facts = vec![
            stopped("h1", &[("raft.old.0", Some("3-9-1795607331211"))]),
            stopped("h2", &[]),
            stopped("h3", &[("raft", None)]),
        ];
        let choice = choose_source(&facts, V010, None).unwrap();
        assert_eq!(choice.source.host, "h1");
        assert_eq!(
            choice.source.origin,
            Origin::Backup {
                folder: "raft.old.0".into()
            }
        );
        assert_eq!(choice.source.snapshot.as_deref(), Some("3-9-1795607331211"));
        assert_eq!(choice.from, Version::new(0, 9, 0));
        assert_eq!(
            choice.findings[0],
            "h1 (0.9.0, stopped): raft/ missing; raft.old.0 snapshot 3-9-1795607331211 (format 5)"
        );
        assert_eq!(choice.findings[1], "h2 (0.9.0, stopped): raft/ missing");
        assert_eq!(
            choice.findings[2],
            "h3 (0.9.0, stopped): raft/ without a snapshot"
        );
        assert!(
            choice
                .reason
                .contains("raft.old.0 on h1 is the newest backup"),
            "{}",
            choice.reason
        );
    }

    #[test]
    fn a_live_snapshot_wins_over_a_newer_backup_with_a_warning() {
        let facts = vec![
            stopped("h1", &[("raft.old.0", Some("3-40-1"))]),
            stopped("h2", &[("raft", Some("2-12-1"))]),
            stopped("h3", &[("raft", Some("2-10-1"))]),
        ];
        let choice = choose_source(&facts, V010, None).unwrap();
        assert_eq!(
            (choice.source.host.as_str(), &choice.source.origin),
            ("h2", &Origin::Live)
        );
        assert!(
            choice.reason.contains("most recent index (12, term 2)"),
            "{}",
            choice.reason
        );
        assert!(
            choice
                .warnings
                .iter()
                .any(|w| w.contains("raft.old.0 on h1 has a higher index (40)")),
            "{:?}",
            choice.warnings
        );
    }

    #[test]
    fn among_backups_the_highest_index_then_the_lowest_number_wins() {
        let facts = vec![
            stopped(
                "h1",
                &[("raft.old.0", Some("1-5-1")), ("raft.old.1", Some("1-7-1"))],
            ),
            stopped(
                "h2",
                &[("raft.old.0", Some("1-7-1")), ("raft.old.3", Some("1-7-1"))],
            ),
            stopped("h3", &[]),
        ];
        let choice = choose_source(&facts, V010, None).unwrap();
        assert_eq!(
            choice.source.origin,
            Origin::Backup {
                folder: "raft.old.0".into()
            }
        );
        assert_eq!(
            choice.source.host, "h2",
            "same index: the newest backup (lowest N), then the later host"
        );
    }

    #[test]
    fn ties_between_live_states_go_to_the_last_host() {
        let facts = vec![
            stopped("h1", &[("raft", Some("1-7-1"))]),
            stopped("h2", &[("raft", Some("1-7-1"))]),
        ];
        assert_eq!(choose_source(&facts, V010, None).unwrap().source.host, "h2");
    }

    #[test]
    fn nothing_surviving_is_refused_unless_an_export_is_given() {
        let facts = vec![stopped("h1", &[("raft", None)]), stopped("h2", &[])];
        let refusal = choose_source(&facts, V010, None).unwrap_err();
        assert!(matches!(refusal, RecoverRefusal::NothingSurvives { .. }));
        assert!(refusal.to_string().contains("--from-export"));
        let file = PathBuf::from("/backups/pins.json");
        let choice = choose_source(&facts, V010, Some(&file)).unwrap();
        assert_eq!(
            choice.source,
            Source {
                host: "h2".into(),
                origin: Origin::Export { file },
                snapshot: None
            }
        );
    }

    #[test]
    fn a_state_the_installed_release_cannot_export_is_refused() {
        let mut facts = vec![stopped("h1", &[("raft.old.0", Some("1-5-1"))])];
        facts[0].service_version = Some(V010);
        let refusal = choose_source(&facts, V010, None).unwrap_err();
        assert!(
            matches!(
                refusal,
                RecoverRefusal::FormatMismatch {
                    format: 5,
                    expected: 6,
                    ..
                }
            ),
            "{refusal}"
        );
    }

    #[test]
    fn a_crdt_cluster_is_refused_as_recover_only_rebuilds_raft_clusters() {
        let mut facts = vec![stopped("h1", &[]), stopped("h2", &[])];
        facts[1].consensus = Some(Consensus::Crdt);
        let export = PathBuf::from("/backups/pins.json");
        assert_eq!(
            choose_source(&facts, V010, Some(&export)),
            Err(RecoverRefusal::Crdt { host: "h2".into() })
        );
    }

    #[test]
    fn a_docker_host_is_refused_when_planned_not_when_checked() {
        let mut facts = vec![
            stopped("h1", &[("raft", Some("1-5-1"))]),
            stopped("h2", &[]),
        ];
        facts[1].container = Some(crate::facts::ContainerFacts::Unreadable {
            reason: "stopped".into(),
        });
        let refusal = choose_source(&facts, V010, None).unwrap_err();
        assert_eq!(refusal, RecoverRefusal::Docker { host: "h2".into() });
        assert!(
            refusal.to_string().contains("Docker container"),
            "{refusal}"
        );
    }

    #[test]
    fn a_healthy_cluster_an_unreachable_host_and_a_direct_jump_are_refused() {
        let mut healthy = vec![
            stopped("h1", &[("raft", Some("1-5-1"))]),
            stopped("h2", &[("raft", Some("1-5-1"))]),
        ];
        for host in &mut healthy {
            host.running = true;
            host.peer_id = Some(format!("Qm{}", host.host));
            host.peerset = Some(Peerset::from_ids(&["Qmh1", "Qmh2"]));
        }
        assert_eq!(
            choose_source(&healthy, V010, None),
            Err(RecoverRefusal::Healthy)
        );

        let mut facts = vec![
            stopped("h1", &[("raft", Some("1-5-1"))]),
            HostFacts::unreachable(&"h2".into(), "connection refused".into()),
        ];
        assert!(matches!(
            choose_source(&facts, V010, None),
            Err(RecoverRefusal::Unreachable { .. })
        ));
        facts.pop();
        let refusal = choose_source(&facts, Version::new(1, 1, 6), None).unwrap_err();
        assert!(
            matches!(refusal, RecoverRefusal::UnsupportedJump { format: 5, .. }),
            "{refusal}"
        );
    }
}
