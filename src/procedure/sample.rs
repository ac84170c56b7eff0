//! One host per distinct variable set: the hosts that `plan`, `apply` and `recover` render every
//! playbook for before connecting (`check` renders them for every host).
//!
//! Templates branch on the values hosts share (group settings such as `service_manager`) and
//! paste the ones each host has for itself (paths, addresses). Two hosts with the same variable
//! names, the same kinds of value, and the same values wherever a value is shared with another
//! host, render alike but for pasted text: one of them stands for both.

use std::collections::{HashMap, HashSet};

use crate::inventory::Host;

/// Positions (in inventory order) of one host per distinct variable set, never `anchor` as the
/// representative (steps `on: others` skip it), plus every host that `always` names.
pub(super) fn one_per_variable_set(
    hosts: &[Host],
    anchor: usize,
    always: impl Fn(&Host) -> bool,
) -> Vec<usize> {
    // How many hosts have each (name, value): a value held by one host only is its own.
    let texts: Vec<Vec<(&str, String)>> = hosts
        .iter()
        .map(|host| {
            host.vars
                .iter()
                .map(|(name, value)| (name.as_str(), value.to_string()))
                .collect()
        })
        .collect();
    // Sized up front: growing it while counting 10,000 hosts' values rehashes every key again.
    let mut holders: HashMap<(&str, &str), usize> =
        HashMap::with_capacity(texts.iter().map(Vec::len).sum());
    for (name, text) in texts.iter().flatten() {
        *holders.entry((name, text.as_str())).or_default() += 1;
    }
    let mut seen = HashSet::new();
    let mut chosen = Vec::new();
    for (index, (host, vars)) in hosts.iter().zip(&texts).enumerate() {
        let key: Vec<(&str, &str)> = vars
            .iter()
            .zip(host.vars.iter())
            .map(|((name, text), (_, value))| {
                let shared = holders[&(*name, text.as_str())] > 1;
                (*name, if shared { text.as_str() } else { kind(value) })
            })
            .collect();
        let first = index != anchor && seen.insert(key);
        if first || index == anchor || always(host) {
            chosen.push(index);
        }
    }
    chosen
}

/// A stand-in for a value that only one host has.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "\0null",
        serde_json::Value::Bool(_) => "\0bool",
        serde_json::Value::Number(_) => "\0number",
        serde_json::Value::String(_) => "\0string",
        serde_json::Value::Array(_) => "\0list",
        serde_json::Value::Object(_) => "\0map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

    fn inventory(hosts: &[(&str, &str)]) -> Inventory {
        let sha = "0".repeat(64);
        let mut text = format!(
            "cluster:\n  name: t\n  target_version: \"0.10.1\"\n  releases:\n    source: url\n    \
             url: \"https://example.org/{{{{ version }}}}/{{{{ file }}}}\"\n    sha256:\n      \"0.10.1\":\n        \
             ipfs-cluster-service: {sha}\n        ipfs-cluster-ctl: {sha}\n\
             ssh:\n  known_hosts: /dev/null\ndefaults:\n  user: u\n\
             vars:\n  service_manager: systemd\nhosts:\n"
        );
        for (index, (name, vars)) in hosts.iter().enumerate() {
            text.push_str(&format!(
                "  - name: {name}\n    address: 127.0.0.{}\n    vars: {vars}\n",
                index + 1
            ));
        }
        Inventory::from_text(std::path::Path::new("inventory.yaml"), &text, &[])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hosts_differing_only_in_their_own_paths_are_one_variable_set() {
        let inventory = inventory(&[
            ("h1", "{bin_dir: /a/bin}"),
            ("h2", "{bin_dir: /b/bin}"),
            ("h3", "{bin_dir: /c/bin}"),
            ("h4", "{bin_dir: /d/bin}"),
        ]);
        // h1 stands for h1..h3; h4 is the anchor, always rendered.
        assert_eq!(one_per_variable_set(&inventory.hosts, 3, |_| false), [0, 3]);
    }

    #[test]
    fn a_shared_value_another_host_lacks_or_a_missing_variable_makes_a_new_set() {
        let inventory = inventory(&[
            ("h1", "{bin_dir: /a/bin, service_manager: docker}"),
            ("h2", "{bin_dir: /b/bin, service_manager: docker}"),
            ("h3", "{bin_dir: /c/bin}"),
            ("h4", "{}"),
            ("h5", "{bin_dir: [1]}"),
            ("h6", "{bin_dir: /f/bin}"),
        ]);
        let chosen = one_per_variable_set(&inventory.hosts, 5, |h| h.name.as_str() == "h2");
        // h1: docker; h2: named; h3: systemd with a path; h4: no bin_dir; h5: a list.
        assert_eq!(chosen, [0, 1, 2, 3, 4, 5]);
    }
}
