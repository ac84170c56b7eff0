//! The `peerstore` file (≥ 0.4): one peer multiaddr per line, read at start to find the
//! addresses of `init_peerset` members and rewritten with the known peers on clean shutdown.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::error::{Error, Result};
use super::multiaddr::Multiaddr;

/// Peer ID → transport address of every parseable line.
pub fn read(config_dir: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(config_dir.join("peerstore")).unwrap_or_default();
    text.lines()
        .filter_map(|line| Multiaddr::parse(line).ok())
        .filter_map(|m| m.peer_id.clone().map(|id| (id, m.transport)))
        .collect()
}

/// Rewrites the file with full multiaddrs.
pub fn write(config_dir: &Path, addrs: &[String]) -> Result<()> {
    let path = config_dir.join("peerstore");
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    fs::write(&path, text).map_err(Error::io(&path))
}
