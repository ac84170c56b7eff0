//! Reading what `ipfs-cluster-service` and `ipfs-cluster-ctl` print.

use serde::Deserialize;

use crate::release::Release;

/// The part of `ipfs-cluster-ctl --enc json id` the lab uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PeerId {
    pub id: String,
    /// Peer IDs of the consensus peerset, self included.
    #[serde(default)]
    pub cluster_peers: Vec<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub peername: String,
    /// The peer's IPFS daemon as the peer reaches it (real 1.x peers).
    #[serde(default)]
    pub ipfs: Option<IpfsId>,
}

/// The `ipfs` part of `id`: the daemon's peer ID, or why the peer cannot reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IpfsId {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub error: String,
}

impl PeerId {
    /// The peer reaches its IPFS daemon (what a real 1.x peer waits for before it is ready).
    pub fn reaches_ipfs(&self) -> bool {
        self.ipfs
            .as_ref()
            .is_some_and(|ipfs| !ipfs.id.is_empty() && ipfs.error.is_empty())
    }
}

/// Parses `id --enc json`.
pub fn parse_id(text: &str) -> Result<PeerId, String> {
    serde_json::from_str(text.trim()).map_err(|e| format!("{e}: {}", excerpt(text)))
}

/// The CIDs of `pin ls --enc json`: one JSON array up to 0.14, a stream of JSON objects from
/// 1.0; a CID is a string, or `{"/": "Qm…"}` in 0.10–0.14.
pub fn pin_cids(text: &str) -> Result<Vec<String>, String> {
    let mut cids = Vec::new();
    let cid_of = |pin: &serde_json::Value| {
        let cid = &pin["cid"];
        cid.as_str()
            .or_else(|| cid["/"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        match value.map_err(|e| format!("{e}: {}", excerpt(text)))? {
            serde_json::Value::Array(items) => cids.extend(items.iter().map(cid_of)),
            serde_json::Value::Null => {}
            pin => cids.push(cid_of(&pin)),
        }
    }
    Ok(cids)
}

/// The CIDs that `status --local --enc json` reports PINNED on the peer (a stream of objects,
/// each with a `peer_map` of one entry per peer).
pub fn pinned_cids(text: &str) -> Result<Vec<String>, String> {
    let mut cids = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        let value = value.map_err(|e| format!("{e}: {}", excerpt(text)))?;
        let items = match value {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Null => continue,
            item => vec![item],
        };
        for item in items {
            let pinned = item["peer_map"].as_object().is_some_and(|map| {
                !map.is_empty() && map.values().all(|p| p["status"] == "pinned")
            });
            if let (true, Some(cid)) = (pinned, item["cid"].as_str()) {
                cids.push(cid.to_string());
            }
        }
    }
    Ok(cids)
}

/// Counts the pins of `pin ls --enc json` (see [`pin_cids`]).
pub fn count_pins(text: &str) -> Result<usize, String> {
    pin_cids(text).map(|cids| cids.len())
}

/// The release named by `ipfs-cluster-service --version` (`ipfs-cluster-service version 0.10.1+git…`).
pub fn parse_version(text: &str) -> Option<String> {
    let word = text.split_whitespace().last()?;
    Release::parse(word).map(|r| r.version)
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_counted_in_both_list_shapes() {
        assert_eq!(
            count_pins("[\n {\"cid\": \"a\"},\n {\"cid\": \"b\"}\n]\n"),
            Ok(2)
        );
        assert_eq!(
            count_pins("{\n \"cid\": \"a\"\n}\n{\n \"cid\": \"b\"\n}\n{\"cid\":\"c\"}"),
            Ok(3)
        );
        assert_eq!(count_pins("[]"), Ok(0));
        assert_eq!(count_pins(""), Ok(0));
        assert!(count_pins("An error occurred").is_err());
        assert_eq!(
            pin_cids(r#"[{"cid": {"/": "QmA"}}, {"cid": "QmB"}]"#),
            Ok(vec!["QmA".to_string(), "QmB".to_string()])
        );
    }

    #[test]
    fn versions_and_ids_parse() {
        assert_eq!(
            parse_version("ipfs-cluster-service version 0.10.1+git1234\n").as_deref(),
            Some("0.10.1")
        );
        assert_eq!(
            parse_version("ipfs-cluster-service version 1.1.6").as_deref(),
            Some("1.1.6")
        );
        assert_eq!(parse_version(""), None);
        let id = parse_id(r#"{"id":"Qm1","addresses":[],"cluster_peers":["Qm1","Qm2"],"version":"0.10.1","rpc_protocol_version":"/ipfscluster/0.10/rpc","peername":"h1"}"#).unwrap();
        assert_eq!(id.cluster_peers.len(), 2);
        assert_eq!(id.peername, "h1");
        assert!(!id.reaches_ipfs(), "the stand-in reports no IPFS daemon");
        let real = r#"{"id":"12D3A","cluster_peers":["12D3A"],"ipfs":{"id":"12D3K","addresses":[],"error":""}}"#;
        assert!(parse_id(real).unwrap().reaches_ipfs());
        let waiting = r#"{"id":"12D3A","ipfs":{"id":"","error":"dial tcp: connection refused"}}"#;
        assert!(!parse_id(waiting).unwrap().reaches_ipfs());
    }

    #[test]
    fn only_pins_pinned_everywhere_they_are_tracked_count_as_pinned() {
        let status = r#"{"cid":"QmA","peer_map":{"12D3A":{"status":"pinned"}}}
{"cid":"QmB","peer_map":{"12D3A":{"status":"pin_error","error":"context deadline exceeded"}}}
{"cid":"QmC","peer_map":{"12D3A":{"status":"pinning"}}}"#;
        assert_eq!(pinned_cids(status).unwrap(), ["QmA"]);
        assert!(pinned_cids("An error occurred").is_err());
    }
}
