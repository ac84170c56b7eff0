//! Playbook variables and their layering: global < group (in the host's group order) < host <
//! command line. A later layer replaces a whole value; maps are not merged key by key, so a host
//! can always say exactly what it means.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::names::VarName;

/// Names the template context already uses at top level (see `procedure::context`); a variable
/// with one of these names would be shadowed, so the inventory refuses it.
pub const RESERVED_VAR_NAMES: &[&str] = &[
    "host", "cluster", "target", "current", "anchor", "release", "run", "rest_api",
];

/// A set of variables. Values are JSON-shaped (strings, numbers, booleans, lists, maps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Vars(BTreeMap<VarName, serde_json::Value>);

impl Vars {
    pub const DEFAULT_BIN_DIR: &'static str = "/usr/local/bin";
    pub const DEFAULT_CONFIG_DIR: &'static str = "~/.ipfs-cluster";
    pub const DEFAULT_API: &'static str = "/ip4/127.0.0.1/tcp/9094";
    /// The container name of the official image's documentation (and the playbooks' default).
    pub const DEFAULT_DOCKER_CONTAINER: &'static str = "ipfs-cluster";

    pub fn new() -> Vars {
        Vars::default()
    }

    /// Sets `name`, replacing any earlier value.
    pub fn insert(&mut self, name: VarName, value: serde_json::Value) {
        self.0.insert(name, value);
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, value)| value)
    }

    /// The value of `name` if it is a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(serde_json::Value::as_str)
    }

    /// `bin_dir`: where the peer's binaries are (the releases' default install folder when the
    /// host does not say).
    pub fn bin_dir(&self) -> &str {
        self.str("bin_dir").unwrap_or(Vars::DEFAULT_BIN_DIR)
    }

    /// `config_dir`: the peer's configuration folder (`ipfs-cluster-service`'s default).
    pub fn config_dir(&self) -> &str {
        self.str("config_dir").unwrap_or(Vars::DEFAULT_CONFIG_DIR)
    }

    /// `api`: the peer's REST API (`ipfs-cluster-ctl`'s default).
    pub fn api(&self) -> &str {
        self.str("api").unwrap_or(Vars::DEFAULT_API)
    }

    /// Whether the peer runs in a Docker container (`service_manager: docker`).
    pub fn is_docker(&self) -> bool {
        self.str("service_manager") == Some("docker")
    }

    /// `docker_container` of a Docker host (its default when unset); `None` on other hosts.
    pub fn docker_container(&self) -> Option<&str> {
        self.is_docker().then(|| {
            self.str("docker_container")
                .unwrap_or(Vars::DEFAULT_DOCKER_CONTAINER)
        })
    }

    /// Applies `layer` on top: its values win.
    pub fn overlay(&mut self, layer: &Vars) {
        for (name, value) in &layer.0 {
            self.0.insert(name.clone(), value.clone());
        }
    }

    /// Layers merged in order, later ones winning.
    pub fn layered<'a>(layers: impl IntoIterator<Item = &'a Vars>) -> Vars {
        let mut merged = Vars::new();
        for layer in layers {
            merged.overlay(layer);
        }
        merged
    }

    pub fn iter(&self) -> impl Iterator<Item = (&VarName, &serde_json::Value)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, serde_json::Value)]) -> Vars {
        let mut vars = Vars::new();
        for (name, value) in pairs {
            vars.insert(name.parse().unwrap(), value.clone());
        }
        vars
    }

    #[test]
    fn later_layers_win_whole_values() {
        let global = vars(&[("a", json!(1)), ("m", json!({"x": 1, "y": 2}))]);
        let group = vars(&[("a", json!(2)), ("b", json!("g"))]);
        let host = vars(&[("m", json!({"x": 9}))]);
        let merged = Vars::layered([&global, &group, &host]);
        assert_eq!(merged.get("a"), Some(&json!(2)));
        assert_eq!(merged.str("b"), Some("g"));
        assert_eq!(merged.get("m"), Some(&json!({"x": 9})));
        assert_eq!(merged.len(), 3);
    }
}
