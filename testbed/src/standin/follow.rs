//! `ipfs-cluster-follow NAME init|run|list`: a CRDT peer in follower mode (≥ 0.11).
//!
//! The real `init` takes the URL of a configuration template that names the cluster's secret
//! and trusted peers, and `run` fetches it again at every start. The stand-in's `init` takes
//! the multiaddr of one trusted peer (with `/p2p/<id>`) and the secret from `CLUSTER_SECRET`,
//! and writes the follower's folder `<base>/NAME/` (`-c <base>`, else
//! `$HOME/.ipfs-cluster-follow`): `service.json` with `cluster.follower_mode` and
//! `consensus.crdt.trusted_peers`, `identity.json`, and the trusted peer in `peerstore`.
//! `run` is the daemon of `ipfs-cluster-service` on that folder (see `consensus::crdt` for
//! what follower mode changes); its API is the REST API on
//! `api.restapi.http_listen_multiaddress`, where the real follower listens on the unix socket
//! `NAME/api-socket`. `list` asks the running follower for its pinset and prints one
//! `CID NAME` line per pin.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::args::{self, switch, value, Flag};
use super::config::{
    ConsensusKind, Datastore, RawService, ServiceConfig, IDENTITY_JSON, SERVICE_JSON,
};
use super::error::Error;
use super::identity::Identity;
use super::multiaddr::Multiaddr;
use super::service::{fail, usage_error, Context};
use super::{daemon, http, logging};
use crate::release::{Era, Release};

const GLOBAL_FLAGS: &[Flag] = &[
    value(&["config", "c"]),
    switch(&["version", "v"]),
    switch(&["help", "h"]),
];

const USAGE: &str = "USAGE:\n   ipfs-cluster-follow [global options] <clusterName> init <trusted peer multiaddr>\n   \
                     ipfs-cluster-follow [global options] <clusterName> run\n   \
                     ipfs-cluster-follow [global options] <clusterName> list\n\n\
                     GLOBAL OPTIONS:\n   --config value, -c value  path to the followers configuration and data folder (default: ~/.ipfs-cluster-follow)\n";

/// Runs `ipfs-cluster-follow` with `args`; returns the exit code.
pub fn run(release: &Release, args: Vec<String>) -> i32 {
    let global = match args::parse(&args, GLOBAL_FLAGS, true) {
        Ok(parsed) => parsed,
        Err(err) => return usage_error(release, &err),
    };
    if global.has("version") {
        println!("ipfs-cluster-follow version {}", release.version);
        return 0;
    }
    if release.era() != Era::Modern {
        eprintln!(
            "ipfs-cluster-follow: release {} has no followers",
            release.version
        );
        return 1;
    }
    let positionals = &global.positionals;
    let (Some(name), Some(command)) = (positionals.first(), positionals.get(1)) else {
        print!("{USAGE}");
        return if global.has("help") { 0 } else { 1 };
    };
    let ctx = Context {
        release: release.clone(),
        config_dir: base_dir(global.value("config")).join(name),
        force: false,
    };
    match (command.as_str(), &positionals[2..]) {
        ("init", [peer]) => match init(&ctx, name, peer) {
            Ok(()) => 0,
            Err(err) => fail("initializing configuration", &err),
        },
        ("run", []) => {
            if !ctx.config_dir.join(SERVICE_JSON).exists() {
                return fail(
                    "loading configurations",
                    &Error::NoFollowerConfig {
                        name: name.clone(),
                        path: ctx.config_dir.clone(),
                    },
                );
            }
            daemon::run(&ctx, &[])
        }
        ("list", []) => match list(&ctx.config_dir) {
            Ok(lines) => {
                lines.iter().for_each(|line| println!("{line}"));
                0
            }
            Err(err) => fail("listing pins", &err),
        },
        _ => {
            print!("{USAGE}");
            1
        }
    }
}

/// The followers' base folder: `-c`, else `$HOME/.ipfs-cluster-follow`.
fn base_dir(flag: Option<&str>) -> PathBuf {
    if let Some(dir) = flag {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".ipfs-cluster-follow")
}

/// Writes the follower's folder, trusting the peer at `peer`.
fn init(ctx: &Context, name: &str, peer: &str) -> Result<(), Error> {
    let maddr = Multiaddr::parse(peer)?;
    let Some(trusted) = maddr.peer_id.clone() else {
        return Err(Error::MissingPeerId {
            addr: peer.to_string(),
        });
    };
    let dir = &ctx.config_dir;
    let service_json = dir.join(SERVICE_JSON);
    if service_json.exists() {
        return Err(Error::ConfigExists { path: service_json });
    }
    let secret = std::env::var("CLUSTER_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or(Error::NoFollowerSecret)?;
    fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let datastore = Datastore::fresh(&ctx.release, ctx.release.default_datastore());
    let mut raw = RawService::fresh_modern(secret, ConsensusKind::Crdt, &datastore);
    raw.cluster.peername = name.to_string();
    raw.cluster
        .other
        .insert("follower_mode".into(), Value::Bool(true));
    if let Some(crdt) = raw.consensus.crdt.as_mut() {
        crdt["cluster_name"] = Value::from(name);
        crdt["trusted_peers"] = Value::from(vec![trusted]);
    }
    raw.apply_env();
    raw.save(&service_json)?;
    logging::info(
        "config",
        &format!("configuration written to {}", service_json.display()),
    );
    let identity_json = dir.join(IDENTITY_JSON);
    if !identity_json.exists() {
        Identity::generate(&ctx.release).save(&identity_json)?;
    }
    let peerstore = dir.join("peerstore");
    fs::write(&peerstore, format!("{peer}\n")).map_err(Error::io(&peerstore))?;
    Ok(())
}

/// The pins of the running follower, one `CID NAME` line each.
fn list(dir: &Path) -> Result<Vec<String>, Error> {
    let cfg = ServiceConfig::load(dir)?;
    let addr = cfg.rest_listen.socket_addr()?;
    let (status, body) = http::request(addr, "GET", "/allocations", Duration::from_secs(10))
        .map_err(|source| Error::Unreachable {
            addr: addr.to_string(),
            source,
        })?;
    if status != 200 {
        return Err(Error::Remote { message: body });
    }
    Ok(pins_of(&body))
}

/// `CID NAME` of each pin of an `/allocations` answer (a JSON array or NDJSON).
fn pins_of(body: &str) -> Vec<String> {
    let values: Vec<Value> = match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(items)) => items,
        _ => body
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
    };
    values
        .iter()
        .filter_map(|pin| {
            let cid = match &pin["cid"] {
                Value::String(cid) => cid.clone(),
                other => other["/"].as_str()?.to_string(),
            };
            let name = pin["name"].as_str().unwrap_or("");
            Some(format!("{cid} {name}").trim_end().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::pins_of;

    #[test]
    fn pins_are_read_from_arrays_and_ndjson_of_either_cid_shape() {
        let array = r#"[{"cid":"QmA","name":"a"},{"cid":{"/":"QmB"},"name":""}]"#;
        assert_eq!(pins_of(array), ["QmA a", "QmB"]);
        let ndjson = "{\"cid\":{\"/\":\"QmC\"},\"name\":\"c\"}\n{\"cid\":\"QmD\"}\n";
        assert_eq!(pins_of(ndjson), ["QmC c", "QmD"]);
    }
}
