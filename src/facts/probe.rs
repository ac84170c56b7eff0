//! The read-only probe: one shell script per host, run over the host's SSH connection, whose
//! output is split into `@@ section` blocks. It never prints secrets: from the config files it
//! extracts single fields on the host instead of copying them (they hold the private key and
//! the cluster secret).

use crate::transport::quote::{quote, QuoteError};

/// Where the probe finds the binaries, the config folder and the REST API of one host.
#[derive(Debug, Clone)]
pub struct ProbeVars {
    pub bin_dir: String,
    pub config_dir: String,
    pub api: String,
}

/// The probe script for one host.
pub fn probe_script(vars: &ProbeVars) -> Result<String, QuoteError> {
    let head = format!(
        "bin={}; cfg={}; api={}\n",
        quote(&vars.bin_dir)?,
        quote(&vars.config_dir)?,
        quote(&vars.api)?
    );
    Ok(head + BODY)
}

// Each section ends with `@@ rc N`, the exit status of its command, so the parser can tell
// "not installed" from "empty output".
const BODY: &str = r#"section() { echo "@@ $1"; }
rc() { echo "@@ rc $1"; }
section service_version; "$bin/ipfs-cluster-service" --version 2>&1; rc $?
section ctl_version; "$bin/ipfs-cluster-ctl" --version 2>&1; rc $?
section id; "$bin/ipfs-cluster-ctl" --host "$api" --enc json id 2>&1; rc $?
section peers; "$bin/ipfs-cluster-ctl" --host "$api" --enc json peers ls 2>&1; rc $?
section pins; "$bin/ipfs-cluster-ctl" --host "$api" --enc json pin ls 2>&1; rc $?
section config; grep -o -E '"(leave_on_shutdown|wait_for_leader_timeout|id|listen_multiaddress)": *("[^"]*"|[a-z]+)' "$cfg/service.json" "$cfg/identity.json" 2>/dev/null | sed 's/^[^:]*://'; rc 0
section snapshot; snap=$(ls -1 "$cfg/raft/snapshots" 2>/dev/null | sort -t- -k1,1n -k2,2n | tail -n 1)
if [ -n "$snap" ] && [ -f "$cfg/raft/snapshots/$snap/state.bin" ]; then echo "snapshot $snap"; od -An -tu1 -N1 "$cfg/raft/snapshots/$snap/state.bin"; fi; rc 0
section backups; ls -1d "$cfg"/raft.old.* 2>/dev/null | sed 's|.*/||'; rc 0
section states; for d in "$cfg/raft" "$cfg"/raft.old.*; do [ -d "$d" ] || continue
snap=$(ls -1 "$d/snapshots" 2>/dev/null | sort -t- -k1,1n -k2,2n -k3,3n | tail -n 1); b=
if [ -n "$snap" ] && [ -f "$d/snapshots/$snap/state.bin" ]; then b=$(od -An -tu1 -N1 "$d/snapshots/$snap/state.bin" | tr -d ' '); else snap=; fi
echo "${d##*/} ${snap:--} ${b:--}"; done; rc 0
"#;
