//! The REST API of the daemon (`api.restapi`), with the real routes and JSON field names.

use std::sync::Arc;

use serde_json::{json, Value};

use super::consensus::Node;
use super::error::Error;
use super::http::{Request, Response};
use super::logging;
use super::pin::{Pin, Shape};
use super::rpc::PeerStatus;
use super::state::Op;
use crate::release::Era;

/// `state.ErrNotFound` (1.x).
pub const PIN_NOT_FOUND: &str = "pin is not part of the pinset";

/// Answers one REST request.
pub fn handle(node: &Arc<Node>, req: &Request) -> Response {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["id"]) => ok(own_id(node)),
        // The health check that basic auth lets through (1.x).
        ("GET", ["health"]) if node.release().major >= 1 => Response::json(204, String::new()),
        ("GET", ["version"]) => ok(version(node)),
        ("GET", ["peers"]) => ok(Value::Array(peers(node))),
        ("DELETE", ["peers", id]) => match node.commit(Op::RemovePeer { id: id.to_string() }) {
            Ok(()) => Response::json(204, String::new()),
            Err(err) => error(500, &err),
        },
        ("POST", ["pins", cid]) => {
            let name = req.query.get("name").cloned().unwrap_or_default();
            let pin = match Pin::everywhere(cid, &name) {
                Ok(pin) => pin,
                Err(err) => return error(400, &err),
            };
            match node.commit(Op::Pin { pin: pin.clone() }) {
                Ok(()) => ok(Shape::of(node.release()).to_json(&pin)),
                Err(err) => error(500, &err),
            }
        }
        // 1.x looks the pin up first (`PinGet`): 404 and `state.ErrNotFound`.
        ("DELETE", ["pins", cid])
            if node.release().era() == Era::Modern && !node.state().pins.contains_key(*cid) =>
        {
            Response::json(
                404,
                json!({"code": 404, "message": PIN_NOT_FOUND}).to_string(),
            )
        }
        ("DELETE", ["pins", cid]) => match node.commit(Op::Unpin {
            cid: cid.to_string(),
        }) {
            Ok(()) => ok(json!({"cid": cid})),
            Err(err) => error(500, &err),
        },
        ("GET", ["allocations"]) => {
            let shape = Shape::of(node.release());
            ok(Value::Array(
                node.state()
                    .pin_list()
                    .iter()
                    .map(|p| shape.to_json(p))
                    .collect(),
            ))
        }
        ("GET", ["allocations", cid]) => match node.state().pins.get(*cid) {
            Some(pin) => ok(Shape::of(node.release()).to_json(pin)),
            None => not_pinned(),
        },
        ("GET", ["pins"]) => ok(Value::Array(statuses(node, None))),
        ("GET", ["pins", cid]) => match statuses(node, Some(cid)).pop() {
            Some(status) => ok(status),
            None => not_pinned(),
        },
        _ => Response::json(
            404,
            json!({"code": 404, "message": "not found"}).to_string(),
        ),
    }
}

fn ok(value: Value) -> Response {
    Response::json(200, value.to_string())
}

fn error(code: u16, err: &Error) -> Response {
    logging::error("restapi", &err.to_string());
    Response::json(
        code,
        json!({"code": code, "message": err.to_string()}).to_string(),
    )
}

fn not_pinned() -> Response {
    Response::json(
        404,
        json!({"code": 404, "message": "cid is not part of the global state"}).to_string(),
    )
}

fn version(node: &Node) -> Value {
    let release = node.release();
    // The JSON key became lowercase in 0.10.1.
    if (release.major, release.minor, release.patch) < (0, 10, 1) {
        json!({"Version": release.version})
    } else {
        json!({"version": release.version})
    }
}

/// The `api.ID` object of a peer as described by its status.
fn id_json(node: &Node, status: &PeerStatus) -> Value {
    let others: Vec<String> = status
        .peerset
        .iter()
        .filter(|(id, _)| **id != status.id)
        .map(|(id, addr)| node.full_addr(addr, id))
        .collect();
    json!({
        "id": status.id,
        "addresses": status.addresses,
        "cluster_peers": status.peerset.keys().collect::<Vec<_>>(),
        "cluster_peers_addresses": others,
        "version": status.version,
        "commit": "",
        "rpc_protocol_version": status.rpc_protocol,
        "error": "",
        "ipfs": {"id": "", "addresses": [], "error": ""},
        "peername": status.peername,
    })
}

fn error_id_json(id: &str, message: &str) -> Value {
    json!({
        "id": id, "addresses": [], "cluster_peers": [], "cluster_peers_addresses": [],
        "version": "", "commit": "", "rpc_protocol_version": "", "error": message,
        "ipfs": {"id": "", "addresses": [], "error": ""}, "peername": "",
    })
}

fn own_id(node: &Arc<Node>) -> Value {
    id_json(node, &node.status())
}

/// Every member of this peer's peerset; unreachable or incompatible ones carry an `error`.
fn peers(node: &Arc<Node>) -> Vec<Value> {
    let state = node.state();
    let others: Vec<(&String, &String)> = state
        .peerset
        .iter()
        .filter(|(id, _)| *id != node.id())
        .collect();
    let mut answers = node.ask_all(&others).into_iter();
    state
        .peerset
        .keys()
        .map(|id| {
            if id == node.id() {
                return own_id(node);
            }
            match answers.next() {
                Some(Ok(status)) => id_json(node, &status),
                Some(Err(err)) => error_id_json(id, &err.to_string()),
                None => error_id_json(id, "no answer"),
            }
        })
        .collect()
}

/// `GlobalPinInfo` objects: each member's view, `cluster_error` where it cannot be asked.
fn statuses(node: &Arc<Node>, only: Option<&str>) -> Vec<Value> {
    let state = node.state();
    let shape = Shape::of(node.release());
    let others: Vec<(&String, &String)> = state
        .peerset
        .iter()
        .filter(|(id, _)| *id != node.id())
        .collect();
    let mut answers = node.ask_all(&others).into_iter();
    let members: Vec<(String, Result<String, String>)> = state
        .peerset
        .keys()
        .map(|id| {
            let view = if id == node.id() {
                Ok(node.status().peername)
            } else {
                match answers.next() {
                    Some(answer) => answer.map(|s| s.peername).map_err(|e| e.to_string()),
                    None => Err("no answer".to_string()),
                }
            };
            (id.clone(), view)
        })
        .collect();
    let now = logging::timestamp();
    let modern = node.release().era() == Era::Modern;
    state
        .pin_list()
        .iter()
        .filter(|pin| only.is_none_or(|cid| cid == pin.cid))
        .map(|pin| {
            let cid = shape.to_json(pin)["cid"].clone();
            let peer_map: serde_json::Map<String, Value> = members
                .iter()
                .map(|(id, view)| {
                    let (peername, status, error) = match view {
                        Ok(name) => (name.clone(), "pinned", String::new()),
                        Err(err) => (String::new(), "cluster_error", err.clone()),
                    };
                    let info = if modern {
                        json!({
                            "peername": peername, "ipfs_peer_id": "", "status": status,
                            "timestamp": now, "error": error, "attempt_count": 0,
                            "priority_pin": false,
                        })
                    } else {
                        json!({
                            "cid": cid, "peer": id, "peername": peername, "status": status,
                            "timestamp": now, "error": error, "attempt_count": 0,
                            "priority_pin": false,
                        })
                    };
                    (id.clone(), info)
                })
                .collect();
            if modern {
                // 1.x `GlobalPinInfo`: the pin's own fields next to the peer map.
                json!({
                    "cid": cid, "name": pin.name, "allocations": pin.allocations,
                    "origins": [], "created": now, "metadata": null, "peer_map": peer_map,
                })
            } else {
                json!({"cid": cid, "name": pin.name, "peer_map": peer_map})
            }
        })
        .collect()
}
