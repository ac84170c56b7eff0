//! Parses the probe's output into [`HostFacts`]. Pure: unit-tested on recorded outputs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::{Consensus, HostFacts, Lease, PeerError, Peerset, Pinset, StoredState};
use crate::inventory::{HostName, Version};

/// One `@@ name` block of the probe output and the exit status of its command.
#[derive(Debug, Default)]
struct Section {
    body: String,
    rc: Option<i32>,
}

/// The message of a 401 the ctl printed (`--enc json`: `{"code": 401, "message": "…"}`).
fn api_refusal(body: &str) -> Option<String> {
    let start = body.find('{')?;
    let error: Value = serde_json::Deserializer::from_str(&body[start..])
        .into_iter::<Value>()
        .next()?
        .ok()?;
    (error["code"] == 401).then(|| {
        error["message"]
            .as_str()
            .unwrap_or("unauthorized")
            .to_string()
    })
}

/// Builds the facts of `host` from the probe's stdout. `address` is the host's SSH address,
/// used to choose among the peer's listen addresses the one to bootstrap to.
pub fn parse_probe_output(host: &HostName, address: &str, output: &str) -> HostFacts {
    let sections = split_sections(output);
    let ok = |name: &str| {
        sections
            .get(name)
            .filter(|s| s.rc == Some(0))
            .map(|s| s.body.as_str())
    };
    let mut facts = HostFacts::of(host.clone());

    facts.service_version = ok("service_version").and_then(version_from_banner);

    if let Some(id) = ok("id").and_then(|body| serde_json::from_str::<Value>(body).ok()) {
        facts.running = true;
        facts.peer_id = str_field(&id, "id");
        facts.peername = str_field(&id, "peername");
        facts.rpc_protocol = str_field(&id, "rpc_protocol_version");
        facts.peerset = Some(Peerset::from_ids(&string_list(&id, "cluster_peers")));
        facts.multiaddr = choose_multiaddr(&string_list(&id, "addresses"), address);
        // The health probe asks the binary only when the peer does not answer.
        if facts.service_version.is_none() {
            facts.service_version =
                str_field(&id, "version").and_then(|v| Version::from_reported(&v).ok());
        }
    }
    facts.api_refused = sections
        .get("id")
        .filter(|s| s.rc != Some(0))
        .and_then(|s| api_refusal(&s.body));
    if let Some(body) = ok("peers") {
        facts.peer_errors = peer_errors(body);
        facts.listed_peers = listed_peers(body);
    }
    if let Some(body) = ok("pebble") {
        // The newest OPTIONS file of the store: `  format_major_version=16` (pebble writes one
        // at every open, after raising the store to the configured format).
        facts.pebble_store_format = body
            .split_once("format_major_version=")
            .and_then(|(_, n)| n.trim().parse().ok());
    }
    if let Some(body) = ok("ctl_version") {
        // `ipfs-cluster-ctl version 1.1.6` (older: `ipfs-cluster-ctl version 0.9.0`).
        facts.ctl_version = body
            .split_whitespace()
            .last()
            .and_then(|v| Version::from_reported(v).ok());
    }
    if let Some(section) = sections.get("unit") {
        // Asked of systemd hosts only; a failed `systemctl show` is a unit that cannot be
        // driven (its LoadState unknown).
        facts.unit = Some(match section.rc {
            Some(0) => super::parse_unit(&section.body),
            _ => super::UnitFacts {
                load_state: format!("unknown (systemctl show: {})", section.body.trim()),
                ..super::UnitFacts::default()
            },
        });
    }
    if let Some(body) = ok("followers") {
        facts.followers = followers(body);
    }
    if let Some(body) = ok("lease") {
        facts.lease = parse_lease(body);
    }
    if let Some(body) = ok("free") {
        // `df -Pk`: filesystem, 1024-blocks, used, available, capacity, mount point.
        facts.free_kib = body
            .split_whitespace()
            .nth(3)
            .and_then(|available| available.parse().ok());
    }
    if let Some(body) = ok("pins") {
        facts.pins = Some(Pinset::from_cids(
            json_items(body).iter().filter_map(cid_of),
        ));
    }
    if let Some(body) = ok("config") {
        for (key, value) in config_fields(body) {
            match key {
                "leave_on_shutdown" => facts.leave_on_shutdown = value.parse().ok(),
                "wait_for_leader_timeout" => facts.wait_for_leader_timeout = Some(value),
                "id" if facts.peer_id.is_none() && !value.is_empty() => facts.peer_id = Some(value),
                "listen_multiaddress" => facts.listen_multiaddress = listen_address(&value),
                "raft" => facts.consensus = Some(Consensus::Raft),
                "crdt" => facts.consensus = Some(Consensus::Crdt),
                "pebble" | "badger" | "badger3" | "leveldb" => {
                    facts.datastore = Some(key.to_string())
                }
                "format_major_version" => facts.pebble_format = value.parse().ok(),
                "rebroadcast_interval" => facts.rebroadcast_interval = go_duration(&value),
                _ => {}
            }
        }
    }
    if sections.contains_key("container") {
        let printed = |name: &str| {
            let section = sections.get(name);
            match section.filter(|s| s.rc == Some(0)) {
                Some(s) => Ok(s.body.as_str()),
                None => Err(section.map_or("", |s| s.body.as_str())),
            }
        };
        facts.container = Some(super::container::read_container(
            super::container::ContainerOutput {
                container: printed("container"),
                image: printed("image"),
                env: ok("container_env").unwrap_or_default(),
            },
        ));
    }
    if let Some(body) = ok("states") {
        facts.stored_states = stored_states(body);
        let live = facts.stored_states.iter().find(|s| s.folder == "raft");
        facts.has_snapshot = live.is_some_and(|s| s.snapshot.is_some());
        // Only releases up to 0.10 put a format byte first; later ones start with the body.
        if facts
            .service_version
            .is_some_and(|v| v.state_format().is_some())
        {
            facts.state_format = live.and_then(|s| s.first_byte);
        }
        facts.state_backups = facts
            .stored_states
            .iter()
            .filter(|s| s.backup_number().is_some())
            .map(|s| s.folder.clone())
            .collect();
    }
    facts
}

/// The follower names of the `followers` section, one per line, sorted.
fn followers(body: &str) -> Vec<String> {
    let mut names: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "*")
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The `"key": value` fields of the `config` section: one per NUL-ended match (`grep -z`, so a
/// list may span lines), or one per line (probes of older versions of this tool).
fn config_fields(body: &str) -> Vec<(&str, String)> {
    let entries: Vec<&str> = if body.contains('\0') {
        body.split('\0').collect()
    } else {
        body.lines().collect()
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let (key, value) = entry.trim().split_once(':')?;
            Some((
                key.trim().trim_matches('"'),
                value.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

/// A Go `time.Duration` as Go prints it (`1m0s`, `5s`, `1.5s`, `300ms`, `1h2m3s`); `None` for
/// anything else.
fn go_duration(text: &str) -> Option<std::time::Duration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// The address `cluster.listen_multiaddress` names: the value itself, or in a list (the 1.x
/// default: TCP and QUIC) the first TCP address, which `--bootstrap` can dial.
fn listen_address(value: &str) -> Option<String> {
    if value.starts_with('/') {
        return Some(value.to_string());
    }
    let addresses: Vec<&str> = value
        .split('"')
        .map(str::trim)
        .filter(|a| a.starts_with('/'))
        .collect();
    addresses
        .iter()
        .find(|a| a.contains("/tcp/"))
        .or(addresses.first())
        .map(|a| a.to_string())
}

/// The peers that a `peers ls` section of a probe's output reports with an error, and every
/// peer ID it lists.
pub fn parse_peers(output: &str) -> (Vec<PeerError>, Vec<String>) {
    split_sections(output)
        .get("peers")
        .filter(|s| s.rc == Some(0))
        .map_or_else(Default::default, |s| {
            (peer_errors(&s.body), listed_peers(&s.body))
        })
}

/// A lease file's content; a file that is there but unreadable is a lease of an unknown run
/// (it still keeps other runs away).
pub fn parse_lease(body: &str) -> Option<Lease> {
    let text = body.trim();
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).unwrap_or_else(|_| Lease {
        run_id: "(unreadable lease file)".to_string(),
        controller: String::new(),
        state_dir: String::new(),
        started_unix: 0,
    }))
}

fn listed_peers(body: &str) -> Vec<String> {
    let mut ids: Vec<String> = json_items(body)
        .iter()
        .filter_map(|peer| str_field(peer, "id"))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn peer_errors(body: &str) -> Vec<PeerError> {
    json_items(body)
        .iter()
        .filter_map(|peer| {
            let error = str_field(peer, "error")?;
            Some(PeerError {
                peer_id: str_field(peer, "id").unwrap_or_default(),
                error,
            })
        })
        .collect()
}

/// The `states` section: `folder F` lines, `snapshot F NAME` lines for every snapshot with a
/// non-empty `state.bin`, then after `bytes` the first byte of each of those files, in the same
/// order. Each folder keeps its newest snapshot (see `StoredState::snapshot_position`).
fn stored_states(body: &str) -> Vec<StoredState> {
    let mut states: Vec<StoredState> = Vec::new();
    let mut snapshots: Vec<(String, String)> = Vec::new();
    let mut lines = body.lines();
    for line in lines.by_ref() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("folder"), Some(folder), None) => states.push(StoredState {
                folder: folder.to_string(),
                snapshot: None,
                first_byte: None,
            }),
            (Some("snapshot"), Some(folder), Some(name)) => {
                snapshots.push((folder.to_string(), name.to_string()))
            }
            (Some("bytes"), None, None) => break,
            _ => {}
        }
    }
    let bytes: Vec<Option<u8>> = lines.map(|l| l.trim().parse().ok()).collect();
    for (index, (folder, name)) in snapshots.into_iter().enumerate() {
        let Some(state) = states.iter_mut().find(|s| s.folder == folder) else {
            continue;
        };
        let candidate = StoredState {
            folder,
            snapshot: Some(name),
            first_byte: bytes.get(index).copied().flatten(),
        };
        let newer = match (candidate.snapshot_position(), state.snapshot_position()) {
            (Some(new), Some(old)) => new > old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if newer {
            *state = candidate;
        }
    }
    states
}

/// The CIDs of the `pins` section of a probe's stdout, when it ran.
pub fn listed_cids(output: &str) -> Option<std::collections::BTreeSet<String>> {
    let sections = split_sections(output);
    let pins = sections.get("pins").filter(|s| s.rc == Some(0))?;
    Some(json_items(&pins.body).iter().filter_map(cid_of).collect())
}

/// The pinset of a pin listing or a state export: a JSON array (≤ 0.14) or a stream of JSON
/// objects (NDJSON exports from 0.11, ctl lists from 1.0), CIDs as strings or `{"/": cid}`.
pub fn pinset_of_listing(body: &str) -> Pinset {
    Pinset::from_cids(json_items(body).iter().filter_map(cid_of))
}

/// The body of the section `name` of a probe's output and its command's exit status (`None`:
/// no such section, or it never ended).
pub fn section(output: &str, name: &str) -> Option<(String, Option<i32>)> {
    split_sections(output)
        .remove(name)
        .map(|section| (section.body, section.rc))
}

fn split_sections(output: &str) -> BTreeMap<String, Section> {
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, Section)> = None;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("@@ ") {
            if let Some(code) = rest.strip_prefix("rc ") {
                if let Some((name, mut section)) = current.take() {
                    section.rc = code.trim().parse().ok();
                    sections.insert(name, section);
                }
            } else {
                current = Some((rest.trim().to_string(), Section::default()));
            }
        } else if let Some((_, section)) = current.as_mut() {
            section.body.push_str(line);
            section.body.push('\n');
        }
    }
    sections
}

/// `ipfs-cluster-service version 0.10.1+git…` → 0.10.1.
fn version_from_banner(body: &str) -> Option<Version> {
    body.split_whitespace()
        .rev()
        .find_map(|word| Version::from_reported(word).ok())
}

fn str_field(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn string_list(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// ctl prints lists as one JSON array up to 0.14 and as a stream of objects from 1.0.
fn json_items(body: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for value in serde_json::Deserializer::from_str(body).into_iter::<Value>() {
        match value {
            Ok(Value::Array(values)) => items.extend(values),
            Ok(other) => items.push(other),
            Err(_) => break,
        }
    }
    items
}

/// A pin's CID: a string from 1.0, `{"/": cid}` before.
fn cid_of(pin: &Value) -> Option<String> {
    match pin.get("cid")? {
        Value::String(cid) => Some(cid.clone()),
        Value::Object(map) => map.get("/").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn choose_multiaddr(addresses: &[String], address: &str) -> Option<String> {
    let wanted = format!("/ip4/{address}/");
    addresses
        .iter()
        .find(|a| a.starts_with(&wanted))
        .or_else(|| addresses.iter().find(|a| !a.starts_with("/ip4/127.0.0.1/")))
        .or_else(|| addresses.first())
        .cloned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const RUNNING_010: &str = r#"@@ service_version
ipfs-cluster-service version 0.10.1+git3c0f1a2
@@ rc 0
@@ id
{"id":"QmA","peername":"h1","addresses":["/ip4/127.0.0.1/tcp/9096/ipfs/QmA","/ip4/127.9.9.2/tcp/9096/ipfs/QmA"],"cluster_peers":["QmB","QmA"],"rpc_protocol_version":"/ipfscluster/0.10/rpc","version":"0.10.1"}
@@ rc 0
@@ peers
[{"id":"QmA","error":""},{"id":"QmB","error":"protocol not supported"}]
@@ rc 0
@@ pins
[{"cid":{"/":"QmY"},"name":""},{"cid":{"/":"QmX"},"name":""}]
@@ rc 0
@@ config
"leave_on_shutdown": false
"wait_for_leader_timeout": "15s"
"id": "QmA"
@@ rc 0
@@ states
folder raft
snapshot raft 1-11-1690000000000
snapshot raft 1-12-1700000000000
folder raft.old.0
snapshot raft.old.0 1-9-1690000000000
folder raft.old.1
bytes
   5
   6
   5
@@ rc 0
"#;

    #[test]
    fn reads_every_fact_of_a_running_peer() {
        let facts = parse_probe_output(&"h1".into(), "127.9.9.2", RUNNING_010);
        assert_eq!(facts.service_version, Some(Version::new(0, 10, 1)));
        assert!(facts.running);
        assert_eq!(facts.peer_id.as_deref(), Some("QmA"));
        assert_eq!(facts.peerset, Some(Peerset::from_ids(&["QmA", "QmB"])));
        assert_eq!(
            facts.multiaddr.as_deref(),
            Some("/ip4/127.9.9.2/tcp/9096/ipfs/QmA")
        );
        assert_eq!(
            facts.peer_errors,
            vec![PeerError {
                peer_id: "QmB".into(),
                error: "protocol not supported".into()
            }]
        );
        assert_eq!(
            facts.pins,
            Some(Pinset::from_cids(["QmX".to_string(), "QmY".to_string()]))
        );
        assert_eq!(facts.leave_on_shutdown, Some(false));
        assert_eq!(facts.wait_for_leader_timeout.as_deref(), Some("15s"));
        assert_eq!(facts.state_format, Some(6));
        assert!(facts.has_snapshot);
        assert_eq!(facts.state_backups, vec!["raft.old.0", "raft.old.1"]);
        assert_eq!(facts.stored_states.len(), 3);
        assert_eq!(
            facts.stored_states[1].snapshot.as_deref(),
            Some("1-9-1690000000000")
        );
        assert_eq!(facts.stored_states[1].first_byte, Some(5));
        assert_eq!(facts.stored_states[1].backup_number(), Some(0));
        assert_eq!(
            facts.stored_states[0].snapshot_position(),
            Some((12, 1, 1_700_000_000_000))
        );
        assert_eq!(
            facts.stored_states[2],
            StoredState {
                folder: "raft.old.1".into(),
                snapshot: None,
                first_byte: None
            }
        );
    }

    #[test]
    fn the_health_probe_takes_the_version_a_running_peer_reports() {
        let output = "@@ id\n{\"id\":\"QmA\",\"version\":\"0.10.1+git3c0f1a2\",\"cluster_peers\":[\"QmA\"]}\n@@ rc 0\n";
        let facts = parse_probe_output(&"h1".into(), "127.9.9.2", output);
        assert_eq!(facts.service_version, Some(Version::new(0, 10, 1)));
        // The binary's banner wins when both are there (planning asks both).
        let both =
            format!("@@ service_version\nipfs-cluster-service version 0.9.0\n@@ rc 0\n{output}");
        let facts = parse_probe_output(&"h1".into(), "127.9.9.2", &both);
        assert_eq!(facts.service_version, Some(Version::new(0, 9, 0)));
    }

    #[test]
    fn a_stopped_peer_keeps_its_listen_address_from_the_config() {
        let output = "@@ config\n\"listen_multiaddress\": \"/ip4/0.0.0.0/tcp/9096\"\n\"id\": \"QmZ\"\n@@ rc 0\n";
        let facts = parse_probe_output(&"h2".into(), "127.9.9.3", output);
        assert_eq!(
            facts.listen_multiaddress.as_deref(),
            Some("/ip4/0.0.0.0/tcp/9096")
        );
        assert_eq!(facts.peer_id.as_deref(), Some("QmZ"));
    }

    #[test]
    fn followers_are_named_sorted_and_absent_ones_leave_the_list_empty() {
        let output = "@@ followers\nmirror\narchive\n\n@@ rc 0\n";
        let facts = parse_probe_output(&"h1".into(), "127.9.9.2", output);
        assert_eq!(facts.followers, ["archive", "mirror"]);
        let none = parse_probe_output(&"h1".into(), "127.9.9.2", "@@ followers\n@@ rc 0\n");
        assert!(none.followers.is_empty());
        // A failed section says nothing.
        let failed = parse_probe_output(&"h1".into(), "127.9.9.2", "@@ followers\nx\n@@ rc 1\n");
        assert!(failed.followers.is_empty());
    }

    #[test]
    fn a_pebble_datastore_gives_its_backend_and_format_and_ctl_its_version() {
        // As `grep -z -o` prints the datastore section of a 1.1.6 `init`'s service.json.
        let body = "\"crdt\": {\0\"rebroadcast_interval\": \"1m0s\"\0\"pebble\": {\0\"format_major_version\": 24\0\n";
        let output = format!(
            "@@ config\n{body}@@ rc 0\n@@ ctl_version\nipfs-cluster-ctl version 1.1.6\n@@ rc 0\n\
             @@ pebble\n  format_major_version=1\n@@ rc 0\n"
        );
        let facts = parse_probe_output(&"h1".into(), "127.9.9.2", &output);
        assert_eq!(facts.datastore.as_deref(), Some("pebble"));
        assert_eq!(facts.pebble_format, Some(24));
        assert_eq!(facts.rebroadcast_interval, Some(Duration::from_secs(60)));
        assert_eq!(
            facts.pebble_store_format,
            Some(1),
            "the store on disk, not the config"
        );
        assert_eq!(facts.ctl_version, Some(Version::new(1, 1, 6)));
        let badger = "@@ config\n\"badger3\": {\0\n@@ rc 0\n";
        let facts = parse_probe_output(&"h1".into(), "127.9.9.2", badger);
        assert_eq!(facts.datastore.as_deref(), Some("badger3"));
        assert_eq!(facts.pebble_format, None);
    }

    #[test]
    fn go_durations_read_as_go_prints_them() {
        let secs = |s: f64| Some(Duration::from_secs_f64(s));
        assert_eq!(go_duration("1m0s"), secs(60.0));
        assert_eq!(go_duration("5s"), secs(5.0));
        assert_eq!(go_duration("1.5s"), secs(1.5));
        assert_eq!(go_duration("300ms"), secs(0.3));
        assert_eq!(go_duration("1h2m3s"), secs(3723.0));
        for bad in ["", "5", "s", "5 s", "1d", "-1s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_real_1x_config_gives_its_consensus_and_first_tcp_listen_address() {
        // What `grep -z -o` prints for a 1.x service.json written by a default `init` (the
        // listen address is a list spanning lines) and its identity.json: NUL-ended matches.
        let body = "\"listen_multiaddress\": [\n      \"/ip4/0.0.0.0/udp/9096/quic\",\n      \"/ip4/0.0.0.0/tcp/9096\"\n    ]\0\
                    \"leave_on_shutdown\": false\0\"crdt\": {\0\"id\": \"12D3KooWA\"\0\n";
        let output = format!("@@ config\n{body}@@ rc 0\n");
        let facts = parse_probe_output(&"h1".into(), "127.9.9.2", &output);
        assert_eq!(facts.consensus, Some(Consensus::Crdt));
        assert_eq!(
            facts.listen_multiaddress.as_deref(),
            Some("/ip4/0.0.0.0/tcp/9096")
        );
        assert_eq!(facts.leave_on_shutdown, Some(false));
        assert_eq!(facts.peer_id.as_deref(), Some("12D3KooWA"));
        let raft = "@@ config\n\"listen_multiaddress\": \"/ip4/127.1.1.2/tcp/9096\"\0\"raft\": {\0\"wait_for_leader_timeout\": \"3s\"\0\n@@ rc 0\n";
        let facts = parse_probe_output(&"h1".into(), "127.1.1.2", raft);
        assert_eq!(facts.consensus, Some(Consensus::Raft));
        assert_eq!(
            facts.listen_multiaddress.as_deref(),
            Some("/ip4/127.1.1.2/tcp/9096")
        );
        assert_eq!(facts.wait_for_leader_timeout.as_deref(), Some("3s"));
    }

    /// The real ctl's `--enc json` output for a 401 (docs/fidelity.md, basic auth scenario).
    #[test]
    fn a_401_from_the_rest_api_says_the_credentials_are_wrong_not_that_the_peer_is_down() {
        let refused = "@@ id\n{\n    \"code\": 401,\n    \"message\": \"unauthorized: no auth provided\"\n}\n@@ rc 2\n";
        let facts = parse_probe_output(&"h1".into(), "127.1.1.2", refused);
        assert!(!facts.running);
        assert_eq!(
            facts.api_refused.as_deref(),
            Some("unauthorized: no auth provided")
        );
        let why = facts.not_running();
        assert!(
            why.starts_with("h1 does not answer: its REST API refused ipfs-cluster-ctl (401 unauthorized: no auth provided)")
                && why.contains("api_auth"),
            "{why}"
        );
        let down = "@@ id\nAn error occurred:\n  Code: 0\n  Message: connection refused\n@@ rc 1\n";
        let facts = parse_probe_output(&"h1".into(), "127.1.1.2", down);
        assert_eq!(facts.api_refused, None);
        assert_eq!(facts.not_running(), "h1 is not running");
    }

    #[test]
    fn exports_of_every_era_give_the_same_pinset() {
        let old = "[\n    {\n        \"cid\": \"QmA\"\n    },\n    {\n        \"cid\": \"QmB\"\n    }\n]\n";
        let v010 = "[{\"cid\": {\"/\": \"QmB\"}}, {\"cid\": {\"/\": \"QmA\"}}]";
        let ndjson = "{\"cid\":{\"/\":\"QmA\"}}\n{\"cid\":{\"/\":\"QmB\"}}\n";
        assert_eq!(pinset_of_listing(old), pinset_of_listing(v010));
        assert_eq!(pinset_of_listing(old), pinset_of_listing(ndjson));
        assert_eq!(pinset_of_listing(old).count, 2);
    }

    #[test]
    fn a_stopped_peer_is_not_running_but_keeps_its_id_from_the_config() {
        let output = "@@ service_version\nipfs-cluster-service version 0.9.0\n@@ rc 0\n\
                      @@ id\nAn error occurred:\n  Code: 0\n  Message: connection refused\n@@ rc 1\n\
                      @@ config\n\"id\": \"QmZ\"\n@@ rc 0\n\
                      @@ states\nfolder raft\nsnapshot raft 1-3-1\nbytes\n 5\n@@ rc 0\n";
        let facts = parse_probe_output(&"h2".into(), "127.9.9.3", output);
        assert!(!facts.running);
        assert_eq!(facts.peer_id.as_deref(), Some("QmZ"));
        assert_eq!(facts.peerset, None, "a stopped peer reports no peerset");
        assert_eq!(facts.state_format, Some(5));
        assert_eq!(facts.pins, None);
    }

    #[test]
    fn modern_pin_streams_and_string_cids_are_read() {
        let output = "@@ service_version\nipfs-cluster-service version 1.1.6\n@@ rc 0\n\
                      @@ pins\n{\n  \"cid\": \"bafyA\"\n}\n{\n  \"cid\": \"bafyB\"\n}\n@@ rc 0\n\
                      @@ states\nfolder raft\nsnapshot raft 1-3-1\nbytes\n 123\n@@ rc 0\n";
        let facts = parse_probe_output(&"h3".into(), "127.9.9.4", output);
        assert_eq!(facts.pins.unwrap().count, 2);
        assert_eq!(
            facts.state_format, None,
            "1.x snapshots carry no format byte"
        );
    }

    #[test]
    fn pinset_hash_ignores_order_and_detects_a_lost_pin() {
        let a = Pinset::from_cids(["b".to_string(), "a".to_string()]);
        let b = Pinset::from_cids(["a".to_string(), "b".to_string()]);
        let c = Pinset::from_cids(["a".to_string()]);
        assert_eq!(a, b);
        assert_ne!(a.hash, c.hash);
    }
}
