//! kubo (the IPFS daemon) on a host of a real lab, always over SSH: a real 1.x peer only
//! becomes ready once it reaches its IPFS daemon, and a pin only completes (PINNED) when the
//! daemon has the blocks.
//!
//! kubo runs offline (`daemon --offline`: no swarm, no network), initialised with the `test`
//! profile (no bootstrap peers, no mDNS, no NAT port mapping) and with its RPC API on the host's
//! own loopback address, under the same service manager as the peer (the wrapper's `ipfs-svc`
//! link, or `ipfs.service` on a systemd host).

use crate::lab::remote::Job;
use std::time::Duration;

use super::error::{LabError, Result};
use super::peer::Peer;
use super::quote;
use super::real::KUBO_FILE;
use super::remote::{Input, DEFAULT_TIMEOUT};
use super::service::Service;
use super::wrapper;

/// How long kubo may take to answer its API after `ipfs-svc start`.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// The folder (in the host's home) holding the blocks of the lab's pins.
const PINS_DIR: &str = ".lab-pins";

fn ipfs(peer: &Peer) -> String {
    quote::word(&peer.on_host.bin(KUBO_FILE))
}

fn repo(peer: &Peer) -> String {
    quote::word(&peer.on_host.ipfs_repo.display().to_string())
}

/// Writes kubo's unit (and, for the wrapper, the `ipfs-svc` link to it; the release is
/// installed with `Peer::install_files`).
pub fn write_unit(peer: &Peer) -> Result<()> {
    let kubo = &peer.on_host.kubo;
    let mut script = vec!["set -e".to_string()];
    if let Service::Wrapper { cmd, .. } = kubo {
        script.push(format!(
            "ln -sf {} {}",
            wrapper::FILE_NAME,
            quote::word(&cmd.display().to_string())
        ));
    }
    script.push(kubo.write_unit_script(&peer.on_host.kubo_exec(), &["network.target"]));
    peer.remote
        .run("write kubo unit", &script.join("\n"))
        .map(|_| ())
}

/// `ipfs init --profile test`, then the API on `api` and no gateway or swarm listener.
pub fn init(peer: &Peer, api: &str) -> Result<()> {
    let (ipfs, repo) = (ipfs(peer), repo(peer));
    let config = |args: &str| format!("{ipfs} --repo-dir {repo} config {args}");
    let script = [
        "set -e".to_string(),
        format!("{ipfs} --repo-dir {repo} init --profile test >/dev/null"),
        config(&format!("Addresses.API {}", quote::word(api))),
        config("--json Addresses.Gateway '[]'"),
        config("--json Addresses.Swarm '[]'"),
    ]
    .into_iter()
    .chain(peer.on_host.kubo.own_script(&peer.on_host.ipfs_repo))
    .collect::<Vec<_>>()
    .join("\n");
    peer.remote.run("ipfs init", &script).map(|_| ())
}

/// Starts kubo and waits, on the host, until its API answers; returns how long that took
/// there (measured on the host, so SSH round trips are not counted).
pub fn start(peer: &Peer, api: &str) -> Result<Duration> {
    let svc = peer.on_host.kubo.script("start", &[], "");
    let tries = START_LIMIT.as_millis() / 50;
    let script = format!(
        "start=$(date +%s%N)\n\
         {svc} >/dev/null || exit 1\n\
         tries=0\n\
         until {ipfs} --api {api} id >/dev/null 2>&1; do\n\
         tries=$((tries + 1))\n\
         if [ $tries -ge {tries} ]; then echo 'kubo did not answer its API within {limit} s' >&2; {log} | tail -n 5 >&2; exit 1; fi\n\
         sleep 0.05\n\
         done\n\
         echo $(( ($(date +%s%N) - start) / 1000 ))",
        ipfs = ipfs(peer),
        api = quote::word(api),
        limit = START_LIMIT.as_secs(),
        log = peer.on_host.kubo.log_script(),
    );
    let output = peer.remote.run_with(Job {
        step: "start kubo",
        script: &script,
        input: Input::Nothing,
        timeout: START_LIMIT + Duration::from_secs(10),
    })?;
    let micros: u64 = output.stdout.trim().parse().map_err(|_| LabError::Parse {
        host: peer.name.clone(),
        step: "start kubo".into(),
        detail: output.stdout.clone(),
    })?;
    Ok(Duration::from_micros(micros))
}

/// Writes the blocks of pins `0..count` (`cluster-lab pin <i>\n` each) and adds them to kubo
/// without pinning them (the cluster pins them); returns their CIDs, by index.
pub fn add_blocks(peer: &Peer, api: &str, count: usize) -> Result<Vec<String>> {
    let dir = peer.on_host.home.join(PINS_DIR).display().to_string();
    let script = format!(
        "set -e\nrm -rf {dir} && mkdir -p {dir}\n\
         i=0; while [ $i -lt {count} ]; do printf 'cluster-lab pin %d\\n' $i >{dir}/$i; i=$((i + 1)); done\n\
         cd {dir}/.. && {ipfs} --api {api} add -r --pin=false --cid-version 0 {name}",
        dir = quote::word(&dir),
        ipfs = ipfs(peer),
        api = quote::word(api),
        name = PINS_DIR,
    );
    let output = peer.remote.run_with(Job {
        step: "ipfs add",
        script: &script,
        input: Input::Nothing,
        timeout: DEFAULT_TIMEOUT,
    })?;
    parse_added(&output.stdout, count).map_err(|detail| LabError::Parse {
        host: peer.name.clone(),
        step: "ipfs add".into(),
        detail,
    })
}

/// The CIDs of `ipfs add -r` lines `added <cid> .lab-pins/<index>`, by index.
fn parse_added(text: &str, count: usize) -> std::result::Result<Vec<String>, String> {
    let mut cids = vec![None; count];
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("added"), Some(cid), Some(path)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let index = path
            .strip_prefix(PINS_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|i| i.parse::<usize>().ok());
        if let Some(slot) = index.and_then(|i| cids.get_mut(i)) {
            *slot = Some(cid.to_string());
        }
    }
    cids.into_iter()
        .enumerate()
        .map(|(i, cid)| cid.ok_or_else(|| format!("no CID for block {i} in: {text}")))
        .collect()
}

/// The resident memory (kB) of the host's peer and of its kubo daemon (their PIDs from their
/// services).
pub fn rss_kb(peer: &Peer) -> Result<(Option<u64>, Option<u64>)> {
    let rss = |service: &Service| {
        format!(
            "pid=$({}) && sed -n 's/^VmRSS:[^0-9]*\\([0-9]*\\).*/\\1/p' /proc/\"$pid\"/status 2>/dev/null || echo",
            service.main_pid_script()
        )
    };
    let script = format!(
        "{}\n{}",
        rss(&peer.on_host.service),
        rss(&peer.on_host.kubo)
    );
    let output = peer.remote.run("memory", &script)?;
    let mut values = output.stdout.lines().map(|l| l.trim().parse::<u64>().ok());
    Ok((values.next().flatten(), values.next().flatten()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_give_the_cids_by_index() {
        let out = "added QmB .lab-pins/1\nadded QmA .lab-pins/0\nadded QmDir .lab-pins\n";
        assert_eq!(parse_added(out, 2).unwrap(), ["QmA", "QmB"]);
        let missing = parse_added("added QmA .lab-pins/0\n", 2).unwrap_err();
        assert!(missing.contains("no CID for block 1"), "{missing}");
    }
}
