//! The user's cache folder, outside any work tree, where the lab keeps what takes long to
//! build and is the same for every lab: the real releases and the systemd hosts' Debian tree.

use std::path::PathBuf;

/// `$CLUSTER_UPGRADE_CACHE`, else `$XDG_CACHE_HOME/cluster-upgrade`, else
/// `~/.cache/cluster-upgrade` (as `scripts/real-releases` computes it).
pub fn root() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    match (var("CLUSTER_UPGRADE_CACHE"), var("XDG_CACHE_HOME")) {
        (Some(cache), _) => PathBuf::from(cache),
        (None, Some(xdg)) => PathBuf::from(xdg).join("cluster-upgrade"),
        (None, None) => PathBuf::from(var("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/cluster-upgrade"),
    }
}
