//! The differential suite: every scenario runs against the stand-in and against the real
//! ipfs-cluster binaries of the same version (1.0.8 and 1.1.6, with a real kubo), and the
//! observations are compared fact by fact. The suite writes `docs/fidelity.md` and fails when
//! a fact cluster-upgrade relies on differs, or when any other difference has no reason in
//! `KNOWN_DIFFERENCES`.
//!
//! Needs the real releases (`scripts/real-releases`); without them it fails and says so.
//!
//!     cargo test -p cluster-testbed --test it fidelity

use crate::fidelity_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::fidelity_support::kubo::Kubo;
use crate::fidelity_support::normalise::{json_shape, json_values};
use crate::fidelity_support::table::{markdown, rows};
use crate::fidelity_support::{
    http_exchange, log_messages, markers, real_releases, Bed, Flavor, Out,
};

const VERSIONS: &[&str] = &["1.0.8", "1.1.6"];

/// Differences that cluster-upgrade does not rely on, keyed by a part of the fact's name.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "service.json sections",
        "the stand-in writes only the sections it reads (cluster, consensus, api, datastore); \
         the real file also has ipfs_connector, pin_tracker, monitor, allocator, informer, observations",
    ),
    (
        "init stderr",
        "the real config loader logs with a caller column and more lines; the stand-in prints the same \
         \"written to\" lines",
    ),
    (
        "datastore files",
        "pebble's own files (MANIFEST, LOCK, *.log …) are not modelled; the stand-in keeps its state \
         in one file of the pebble/ folder",
    ),
    (
        PANICKED,
        "an intermittent crash of the real 1.x `state` commands after they did their work (exit 2, \
         \"panic: pebble: closed\": a goroutine still writing to the closed store, seen in export \
         and import); the stand-in does not crash",
    ),
    (
        "id text on",
        "the real peer lists its IPFS daemon's ID and addresses under `> IPFS:`; the stand-in has \
         no IPFS daemon (the first line and the IPFS ERROR check are compared on their own)",
    ),
    (
        "state export: stderr",
        "the real datastore libraries (pebble, go-ds-crdt, hashicorp raft) log lines of their own; the service's own lines are the same",
    ),
    (
        "state cleanup: stderr",
        "the real datastore libraries (pebble, go-ds-crdt, hashicorp raft) log lines of their own; the service's own lines are the same",
    ),
    (
        "ssl_cert_file set: daemon stderr",
        "the stand-in does not model TLS: it refuses to start with any ssl_cert_file/ssl_key_file \
         (rather than serve plain HTTP where HTTPS was asked for); the real one loads the key pair, \
         here missing",
    ),
    (
        "state import: stderr",
        "the real datastore libraries (pebble, go-ds-crdt, hashicorp raft) log lines of their own; the service's own lines are the same",
    ),
];

/// What a scenario is run with.
#[derive(Debug, Clone, Copy)]
struct Job {
    scenario: Scenario,
    version: &'static str,
    consensus: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Init,
    Single,
    Pair,
    Lonely,
    Mixed,
    InPlace,
    Pebble,
    Auth,
}

impl Job {
    fn label(&self) -> String {
        let name = match self.scenario {
            Scenario::Init => "init",
            Scenario::Single => "one peer",
            Scenario::Pair => "two peers",
            Scenario::Lonely => "--bootstrap to a stopped peer",
            Scenario::Mixed => "1.0.8 + 1.1.6 peers",
            Scenario::InPlace => "1.0.8 → 1.1.6 in place",
            Scenario::Pebble => "pebble format 1 (as 1.0.5 – 1.0.7 wrote) → 1.1.6",
            Scenario::Auth => "REST API basic auth",
        };
        match self.scenario {
            Scenario::Init => format!("{} {name}", self.version),
            Scenario::Mixed | Scenario::InPlace | Scenario::Pebble => {
                format!("{} {name}", self.consensus)
            }
            _ => format!("{} {} {name}", self.version, self.consensus),
        }
    }

    fn run(&self, bed: &Bed) {
        let label = self.label();
        let fact = |what: &str, relied: bool, value: &str| {
            bed.fact(&format!("{label}: {what}"), relied, value)
        };
        match self.scenario {
            Scenario::Init => init(bed, self.version, &fact),
            Scenario::Single => single(bed, self.version, self.consensus, &fact),
            Scenario::Pair => pair(bed, self.version, self.consensus, &fact),
            Scenario::Lonely => lonely(bed, self.version, self.consensus, &fact),
            Scenario::Mixed => mixed(bed, self.consensus, &fact),
            Scenario::InPlace => in_place(bed, self.consensus, &fact),
            Scenario::Pebble => pebble(bed, &fact),
            Scenario::Auth => basic_auth(bed, self.version, &fact),
        }
    }
}

type FactFn<'a> = dyn Fn(&str, bool, &str) + 'a;

fn code(out: &Out) -> String {
    out.code_text()
}

/// `init` with each consensus (and the default), `--version`, and a state export before the
/// first start.
fn init(bed: &Bed, version: &str, fact: &FactFn<'_>) {
    let out = bed.service_version(version);
    fact(
        "--version",
        true,
        &format!("{} {}", code(&out), out.stdout.trim()),
    );
    let out = bed.ctl_version(version);
    fact(
        "ctl --version",
        true,
        &format!("{} {}", code(&out), out.stdout.trim()),
    );
    for consensus in ["crdt", "raft", "(default)"] {
        let peer = bed.peer(&format!("init-{}", consensus.trim_matches(['(', ')'])));
        let args: Vec<&str> = match consensus {
            "(default)" => vec!["init"],
            c => vec!["init", "--consensus", c],
        };
        let out = bed.service(version, &peer, &args);
        let what = |w: &str| format!("init {consensus}: {w}");
        fact(&what("exit code"), true, &code(&out));
        fact(&what("stdout"), false, out.stdout.trim());
        fact(&what("init stderr"), false, &log_messages(&out.stderr));
        fact(&what("files"), true, &peer.files());
        let config = peer.service_json();
        let keys = |v: &serde_json::Value| -> String {
            v.as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| "(none)".into())
        };
        let mut sections: Vec<String> = keys(&config).split(' ').map(String::from).collect();
        sections.sort();
        fact(&what("service.json sections"), false, &sections.join(" "));
        fact(&what("consensus key"), true, &keys(&config["consensus"]));
        fact(&what("datastore key"), true, &keys(&config["datastore"]));
        fact(
            &what("listen_multiaddress"),
            true,
            &json_shape(&config["cluster"]["listen_multiaddress"].to_string()),
        );
        fact(
            &what("leave_on_shutdown"),
            true,
            &config["cluster"]["leave_on_shutdown"].to_string(),
        );
        let out = offline(on(bed, version, &peer), &["state", "export"], fact);
        fact(
            &what("state export before a start: exit code"),
            true,
            &code(&out),
        );
        fact(
            &what("state export before a start: stdout"),
            true,
            out.stdout.trim(),
        );
        fact(&what("files after that export"), true, &peer.files());
    }
}

/// The CIDs of `pin ls --enc=json`, sorted.
fn pinned(bed: &Bed, version: &str, peer: &fidelity_support::Peer) -> String {
    let out = bed.ctl(version, peer, &["--enc=json", "pin", "ls"]);
    let mut cids: Vec<String> = json_values(&out.stdout)
        .iter()
        .filter_map(|v| v["cid"].as_str().map(String::from))
        .collect();
    cids.sort();
    format!("{} [{}]", code(&out), cids.join(" "))
}

/// The peer IDs of `peers ls --enc=json`, sorted.
fn peer_ids(bed: &Bed, version: &str, peer: &fidelity_support::Peer) -> String {
    let out = bed.ctl(version, peer, &["--enc=json", "peers", "ls"]);
    let mut ids: Vec<String> = json_values(&out.stdout)
        .iter()
        .filter_map(|v| v["id"].as_str().map(|id| bed.norm(id)))
        .collect();
    ids.sort();
    format!("{} [{}]", code(&out), ids.join(" "))
}

const START_MARKERS: &[&str] = &[
    "Initializing. For verbose output",
    "listening on:",
    "** IPFS Cluster is READY **",
];
const STOP_MARKERS: &[&str] = &[
    "peer no longer in peerset. Initiating shutdown",
    "shutting down Cluster",
];

/// One peer through its life: start, the API, pins, state commands while running, stop,
/// export → cleanup → import, `daemon --upgrade`, `peers rm` of itself.
fn single(bed: &Bed, version: &str, consensus: &str, fact: &FactFn<'_>) {
    let a = bed.peer("a");
    bed.init(version, &a, consensus);
    let mut daemon = bed.ready(version, &a, &[]);
    fact(
        "start log",
        true,
        &markers(&daemon.log_text(), START_MARKERS),
    );
    fact("files while running", true, &a.files());
    let mut second = bed.start(version, &a, &[]);
    let exit = second.wait_exit(Duration::from_secs(20));
    fact("a second daemon: exit code", true, &format!("{exit:?}"));
    fact(
        "a second daemon: last line",
        true,
        second.log_text().lines().last().unwrap_or(""),
    );

    let out = bed.ctl(version, &a, &["--enc=json", "id"]);
    fact("id --enc=json: exit code", true, &code(&out));
    fact("id --enc=json: shape", true, &json_shape(&out.stdout));
    let id = json_values(&out.stdout).pop().unwrap_or_default();
    let field = |key: &str| id[key].to_string();
    fact("id: version", true, &field("version"));
    fact(
        "id: rpc_protocol_version",
        true,
        &field("rpc_protocol_version"),
    );
    fact("id: peername", true, &field("peername"));
    fact("id: cluster_peers", true, &field("cluster_peers"));
    fact("id: addresses", true, &field("addresses"));

    text_probes(on(bed, version, &a), fact);
    let out = bed.ctl(version, &a, &["--enc=json", "peers", "ls"]);
    fact("peers ls --enc=json: exit code", true, &code(&out));
    fact("peers ls --enc=json: shape", true, &json_shape(&out.stdout));

    let cids = &bed.cids;
    for cid in &cids[..3] {
        let out = bed.ctl(version, &a, &["pin", "add", cid]);
        fact("pin add: exit code", true, &code(&out));
    }
    let all_pinned = bed.eventually(Duration::from_secs(40), || {
        let out = bed.ctl(version, &a, &["--enc=json", "status"]);
        let values = json_values(&out.stdout);
        values.len() == 3
            && values.iter().all(|v| {
                v["peer_map"]
                    .as_object()
                    .is_some_and(|m| m.values().all(|p| p["status"] == "pinned"))
            })
    });
    fact("status: every pin PINNED", true, &all_pinned.to_string());
    let out = bed.ctl(version, &a, &["--enc=json", "pin", "ls"]);
    fact("pin ls --enc=json: exit code", true, &code(&out));
    fact("pin ls --enc=json: shape", true, &json_shape(&out.stdout));
    let out = bed.ctl(version, &a, &["pin", "ls"]);
    let mut first: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split(' ').next())
        .filter(|w| !w.is_empty())
        .collect();
    first.sort();
    fact(
        "pin ls: first column (the health gate's pinset)",
        true,
        &format!("{} {}", code(&out), first.join(" ")),
    );
    let out = bed.ctl(version, &a, &["--enc=json", "status"]);
    fact("status --enc=json: exit code", true, &code(&out));
    fact("status --enc=json: shape", true, &json_shape(&out.stdout));
    let out = bed.ctl(version, &a, &["status", &cids[0]]);
    fact("status <cid>: exit code", true, &code(&out));
    fact("status text", false, out.stdout.trim());

    let out = bed.service(version, &a, &["state", "export"]);
    fact("state export while running: exit code", true, &code(&out));
    fact(
        "state export while running: stderr",
        true,
        &log_messages(&out.stderr),
    );

    for args in [["state", "cleanup", "-f"], ["state", "import", "-f"]] {
        let out = bed.service(version, &a, &args);
        let what = format!("{} while running", args[..2].join(" "));
        fact(&format!("{what}: exit code"), true, &code(&out));
        fact(&format!("{what}: stderr"), true, &log_messages(&out.stderr));
    }
    fact(
        "pins after state commands while running",
        true,
        &pinned(bed, version, &a),
    );

    let out = bed.ctl(version, &a, &["pin", "rm", &cids[2]]);
    fact("pin rm: exit code", true, &code(&out));
    let out = bed.ctl(version, &a, &["pin", "rm", &cids[3]]);
    fact("pin rm of a CID not pinned: exit code", true, &code(&out));
    fact(
        "pin rm of a CID not pinned: output",
        false,
        &format!("{}{}", out.stdout.trim(), out.stderr.trim()),
    );
    fact("pin ls after pin rm", true, &pinned(bed, version, &a));

    let out = bed.ctl(version, &a, &["peers", "rm", &a.id()]);
    fact("peers rm of the last peer: exit code", true, &code(&out));
    fact(
        "peers rm of the last peer: output",
        false,
        &format!("{}{}", out.stdout.trim(), out.stderr.trim()),
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = bed.ctl(version, &a, &["--enc=json", "id"]);
    fact("peer answers after peers rm of itself", true, &code(&out));

    let exit = daemon.term();
    fact("SIGTERM: exit code", true, &format!("{exit:?}"));
    fact(
        "log on stop",
        false,
        &markers(&daemon.log_text(), STOP_MARKERS),
    );
    fact("files after stop", true, &a.files());
    let out = bed.ctl(version, &a, &["--enc=json", "id"]);
    fact("id of a stopped peer: exit code", true, &code(&out));
    fact(
        "id of a stopped peer: output",
        false,
        &format!("{} ⏎ {}", out.stdout.trim(), log_messages(&out.stderr)),
    );

    let export: PathBuf = bed.dir.path().join("export.json");
    let export_text = export.display().to_string();
    let out = offline(
        on(bed, version, &a),
        &["state", "export", "-f", &export_text],
        fact,
    );
    fact("state export: exit code", true, &code(&out));
    let text = std::fs::read_to_string(&export).unwrap_or_default();
    fact("state export: shape", true, &json_shape(&text));
    fact(
        "state export: lines",
        true,
        &text.lines().count().to_string(),
    );
    let out = offline(on(bed, version, &a), &["state", "export"], fact);
    fact("state export: stderr", false, &log_messages(&out.stderr));
    let out = offline(on(bed, version, &a), &["state", "cleanup", "-f"], fact);
    fact("state cleanup: exit code", true, &code(&out));
    fact("state cleanup: stderr", false, &log_messages(&out.stderr));
    fact("files after cleanup", true, &a.files());
    let out = offline(on(bed, version, &a), &["state", "export"], fact);
    fact(
        "state export after cleanup",
        true,
        &format!("{} {}", code(&out), out.stdout.trim()),
    );
    let out = offline(
        on(bed, version, &a),
        &["state", "import", "-f", &export_text],
        fact,
    );
    fact("state import: exit code", true, &code(&out));
    fact("state import: stderr", false, &log_messages(&out.stderr));
    let out = offline(on(bed, version, &a), &["state", "export"], fact);
    fact(
        "state export after import: same pins",
        true,
        &same_lines(&out.stdout, &text).to_string(),
    );
    fact("files after import", true, &a.files());

    let mut daemon = bed.start(version, &a, &["--upgrade"]);
    fact("daemon --upgrade: READY", true, &daemon.ready().to_string());
    fact("daemon --upgrade: pins", true, &pinned(bed, version, &a));
    let exit = daemon.term();
    fact(
        "daemon --upgrade: SIGTERM exit code",
        true,
        &format!("{exit:?}"),
    );
}

/// One peer of a bed, with the release its commands run.
#[derive(Clone, Copy)]
struct On<'a> {
    bed: &'a Bed,
    version: &'a str,
    peer: &'a fidelity_support::Peer,
}

fn on<'a>(bed: &'a Bed, version: &'a str, peer: &'a fidelity_support::Peer) -> On<'a> {
    On { bed, version, peer }
}

/// What the tool's health gate reads as text: `version`, the first line of `id` (`Sees N other
/// peers`) and whether `id` reports an IPFS error.
fn text_probes(on: On<'_>, fact: &FactFn<'_>) {
    let (bed, version, peer, who) = (on.bed, on.version, on.peer, &on.peer.name);
    let out = bed.ctl(version, peer, &["version"]);
    fact(
        &format!("ctl version on {who}"),
        true,
        &format!("{} {}", code(&out), out.stdout.trim()),
    );
    let out = bed.ctl(version, peer, &["id"]);
    fact(
        &format!("id text on {who}: first line"),
        true,
        &format!("{} {}", code(&out), out.stdout.lines().next().unwrap_or("")),
    );
    fact(
        &format!("id text on {who}: > IPFS ERROR"),
        true,
        &out.stdout.contains("> IPFS ERROR").to_string(),
    );
    fact(&format!("id text on {who}"), false, out.stdout.trim());
}

/// A `state` command of a stopped peer. Real 1.x sometimes panics at the end of one (exit 2,
/// "panic: pebble: closed": a goroutine still writing to the closed store) after it did its
/// work: that is recorded as a fact of its own and the command is run once more.
fn offline(on: On<'_>, args: &[&str], fact: &FactFn<'_>) -> Out {
    let (bed, version, peer) = (on.bed, on.version, on.peer);
    let out = bed.service(version, peer, args);
    let panicked = out.code == Some(2) && out.stderr.contains("panic:");
    fact(
        &format!("{}: {PANICKED}", args[..2].join(" ")),
        false,
        &panicked.to_string(),
    );
    if panicked {
        bed.service(version, peer, args)
    } else {
        out
    }
}

/// The name of the rows of [`offline`].
const PANICKED: &str = "panicked (then run again)";

/// Whether two exports hold the same pins (compared by CID, whatever the order).
fn same_lines(one: &str, two: &str) -> bool {
    let cids = |text: &str| {
        let mut c: Vec<String> = json_values(text)
            .iter()
            .filter_map(|v| v["cid"].as_str().map(String::from))
            .collect();
        c.sort();
        c
    };
    !cids(one).is_empty() && cids(one) == cids(two)
}

/// Two peers: `--bootstrap`, replication, restarts (all at once, one at a time), `peers rm`.
fn pair(bed: &Bed, version: &str, consensus: &str, fact: &FactFn<'_>) {
    let (a, b) = (bed.peer("a"), bed.peer("b"));
    bed.init(version, &a, consensus);
    bed.init(version, &b, consensus);
    let da = bed.ready(version, &a, &[]);
    let db = bed.start(version, &b, &["--bootstrap", &a.maddr()]);
    fact("--bootstrap: READY", true, &db.ready().to_string());
    let both = |bed: &Bed| {
        bed.eventually(Duration::from_secs(20), || {
            peer_ids(bed, version, &a).contains("<id:b>")
                && peer_ids(bed, version, &b).contains("<id:a>")
        })
    };
    fact("both peers list both", true, &both(bed).to_string());
    fact("peers ls on a", true, &peer_ids(bed, version, &a));
    text_probes(on(bed, version, &b), fact);
    let cid = bed.cids[0].clone();
    let out = bed.ctl(version, &a, &["pin", "add", &cid]);
    fact("pin add on a: exit code", true, &code(&out));
    let replicated = bed.eventually(Duration::from_secs(20), || {
        pinned(bed, version, &b).contains(&cid)
    });
    fact("pin replicated to b", true, &replicated.to_string());
    fact("files of b", true, &b.files());

    // Restart all at once.
    let (mut da, mut db) = (da, db);
    let stops = format!("{:?} {:?}", da.term(), db.term());
    fact("stop both: exit codes", true, &stops);
    let da = bed.start(version, &a, &[]);
    let db = bed.start(version, &b, &[]);
    fact(
        "restart all at once: READY",
        true,
        &format!("{} {}", da.ready(), db.ready()),
    );
    fact("restart all at once: peers", true, &both(bed).to_string());
    fact(
        "restart all at once: pins on b",
        true,
        &pinned(bed, version, &b),
    );

    // Restart one at a time.
    let (mut da, mut db) = (da, db);
    let _ = da.term();
    let da = bed.start(version, &a, &[]);
    let a_ready = da.ready();
    let _ = db.term();
    let db = bed.start(version, &b, &[]);
    fact(
        "restart one at a time: READY",
        true,
        &format!("{a_ready} {}", db.ready()),
    );
    fact("restart one at a time: peers", true, &both(bed).to_string());
    fact(
        "restart one at a time: pins on a",
        true,
        &pinned(bed, version, &a),
    );

    // b down: what a's `peers ls` says after a few seconds (two ping intervals are 2 s).
    let mut db = db;
    let _ = db.term();
    std::thread::sleep(Duration::from_secs(4));
    let out = bed.ctl(version, &a, &["--enc=json", "peers", "ls"]);
    let mut listed: Vec<String> = json_values(&out.stdout)
        .iter()
        .map(|v| {
            let id = bed.norm(v["id"].as_str().unwrap_or_default());
            let failed = v["error"].as_str().is_some_and(|e| !e.is_empty());
            if failed {
                format!("{id} (error)")
            } else {
                id
            }
        })
        .collect();
    listed.sort();
    fact(
        "b stopped: peers ls on a",
        true,
        &format!("{} {}", code(&out), listed.join(" ")),
    );
    let db = bed.start(version, &b, &[]);
    fact("b restarted: READY", true, &db.ready().to_string());

    // Remove b.
    let out = bed.ctl(version, &a, &["peers", "rm", &b.id()]);
    fact("peers rm b: exit code", true, &code(&out));
    fact(
        "peers rm b: output",
        false,
        &format!("{}{}", out.stdout.trim(), out.stderr.trim()),
    );
    let (da, mut db) = (da, db);
    let b_left = db.wait_exit(Duration::from_secs(15));
    fact(
        "peers rm b: b exits by itself",
        true,
        &format!("{b_left:?}"),
    );
    fact(
        "peers rm b: log of b",
        true,
        &markers(&db.log_text(), STOP_MARKERS),
    );
    fact("files of b after peers rm", true, &b.files());
    let _ = db.term();

    // b joins again with --bootstrap (how the tool's bootstrap procedure brings peers back).
    let db = bed.start(version, &b, &["--bootstrap", &a.maddr()]);
    fact(
        "b rejoins with --bootstrap: READY",
        true,
        &db.ready().to_string(),
    );
    fact(
        "b rejoins: both peers list both",
        true,
        &both(bed).to_string(),
    );
    let back = bed.eventually(Duration::from_secs(15), || {
        pinned(bed, version, &b).contains(&cid)
    });
    fact("b rejoins: the pin is on b", true, &back.to_string());

    // b loses its state (`state cleanup`) and starts without --bootstrap.
    let mut db = db;
    let _ = db.term();
    fact("files of b after the rejoin and a stop", true, &b.files());
    let snapshots = fidelity_support::Peer {
        dir: b.dir.join("raft/snapshots"),
        ..b.clone()
    };
    fact(
        "snapshots in b's raft folder",
        true,
        &(snapshots.files() != "(none)").to_string(),
    );
    let out = offline(on(bed, version, &b), &["state", "cleanup", "-f"], fact);
    fact("cleanup of b: exit code", true, &code(&out));
    fact("files of b after cleanup", true, &b.files());
    let db = bed.start(version, &b, &[]);
    fact("b after cleanup: READY", true, &db.ready().to_string());
    let synced = bed.eventually(Duration::from_secs(15), || {
        pinned(bed, version, &b).contains(&cid)
    });
    fact(
        "b after cleanup: gets the pin back",
        true,
        &synced.to_string(),
    );
    fact(
        "b after cleanup: peers ls on b",
        true,
        &peer_ids(bed, version, &b),
    );
    let (mut da, mut db) = (da, db);
    let _ = (da.term(), db.term());
}

/// `--bootstrap` to a peer that is not running.
fn lonely(bed: &Bed, version: &str, consensus: &str, fact: &FactFn<'_>) {
    let (a, b) = (bed.peer("a"), bed.peer("b"));
    bed.init(version, &a, consensus);
    bed.init(version, &b, consensus);
    let mut db = bed.start(version, &b, &["--bootstrap", &a.maddr()]);
    // wait_for_leader_timeout is 5 s: a raft peer gives up after 10 s.
    let exit = db.wait_exit(Duration::from_secs(15));
    fact("exits by itself within 15 s", true, &format!("{exit:?}"));
    let lines = [
        "** IPFS Cluster is READY **",
        "bootstrap to",
        "consensus start timed out",
    ];
    // The real peer bootstraps and waits for IPFS at the same time: either line may come first.
    let log = db.log_text();
    let found: Vec<&str> = lines.iter().copied().filter(|l| log.contains(l)).collect();
    fact("log lines (any order)", true, &found.join(" + "));
    fact("files", true, &b.files());
    let api = bed.ctl(version, &b, &["--enc=json", "id"]);
    fact("its API answers", true, &(api.code == Some(0)).to_string());
    db.signal();
    let exit = db.wait_exit(Duration::from_secs(5));
    fact("one SIGTERM: exit within 5 s", true, &format!("{exit:?}"));
    if exit.is_none() {
        db.signal();
        std::thread::sleep(Duration::from_millis(300));
        db.signal();
        let exit = db.wait_exit(Duration::from_secs(10));
        fact("three SIGTERMs: exit", true, &format!("{exit:?}"));
    }
}

/// The upgrade itself: a 1.0.8 cluster stopped, its binaries swapped, started as 1.1.6 on the
/// same folders (all at once), as the standard procedure does.
fn in_place(bed: &Bed, consensus: &str, fact: &FactFn<'_>) {
    let (old, new) = ("1.0.8", "1.1.6");
    let (a, b) = (bed.peer("a"), bed.peer("b"));
    bed.init(old, &a, consensus);
    bed.init(old, &b, consensus);
    let da = bed.ready(old, &a, &[]);
    let db = bed.ready(old, &b, &["--bootstrap", &a.maddr()]);
    // A real CRDT write made right after a join can miss the new peer until the next
    // rebroadcast (its pubsub mesh forms later): pin once both peers list both.
    let joined = bed.eventually(Duration::from_secs(20), || {
        peer_ids(bed, old, &a).contains("<id:b>") && peer_ids(bed, old, &b).contains("<id:a>")
    });
    fact("1.0.8 cluster: peers", true, &joined.to_string());
    let cid = bed.cids[2].clone();
    let _ = bed.ctl(old, &a, &["pin", "add", &cid]);
    let replicated = bed.eventually(Duration::from_secs(20), || {
        pinned(bed, old, &b).contains(&cid)
    });
    fact("1.0.8 cluster: pin on both", true, &replicated.to_string());
    let (mut da, mut db) = (da, db);
    fact(
        "1.0.8 stopped: exit codes",
        true,
        &format!("{:?} {:?}", da.term(), db.term()),
    );
    fact("1.0.8 stopped: files of a", true, &a.files());
    let da = bed.start(new, &a, &[]);
    let db = bed.start(new, &b, &[]);
    fact(
        "1.1.6 on the 1.0.8 folders: READY",
        true,
        &format!("{} {}", da.ready(), db.ready()),
    );
    let log = da.log_text();
    fact(
        "1.1.6 on the 1.0.8 folders: an ERROR in a's log",
        false,
        &log.lines().any(|l| l.contains("\tERROR\t")).to_string(),
    );
    // A real crdt peer lists another only once that peer's ping metric arrived (seconds after
    // both are ready; on a busy machine "Sees 0 other peers" for a while): the text probes
    // compare the settled cluster, as cluster-upgrade's readiness waits do.
    let both = bed.eventually(Duration::from_secs(20), || {
        peer_ids(bed, new, &a).contains("<id:b>") && peer_ids(bed, new, &b).contains("<id:a>")
    });
    fact("1.1.6 on the 1.0.8 folders: peers", true, &both.to_string());
    text_probes(on(bed, new, &a), fact);
    fact(
        "1.1.6 on the 1.0.8 folders: pins on a",
        true,
        &pinned(bed, new, &a),
    );
    fact(
        "1.1.6 on the 1.0.8 folders: pins on b",
        true,
        &pinned(bed, new, &b),
    );
    let (mut da, mut db) = (da, db);
    let _ = (da.term(), db.term());
    fact("1.1.6 stopped: files of a", true, &a.files());
    let out = offline(on(bed, new, &a), &["state", "export"], fact);
    fact(
        "1.1.6 state export of the 1.0.8 state",
        true,
        &format!("{} {}", code(&out), json_shape(&out.stdout)),
    );
}

/// The `format_major_version` of a peer's pebble store as the facts probe reads it (the
/// newest `OPTIONS-*` file), and the format of its `marker.format-version.*` file.
fn pebble_formats(peer: &fidelity_support::Peer) -> (String, String) {
    let store = peer.dir.join("pebble");
    let names: Vec<String> = std::fs::read_dir(&store)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let options = names
        .iter()
        .filter(|n| n.starts_with("OPTIONS-"))
        .max()
        .and_then(|newest| std::fs::read_to_string(store.join(newest)).ok())
        .and_then(|text| {
            let (_, rest) = text.split_once("format_major_version=")?;
            Some(rest.lines().next()?.trim().to_string())
        })
        .unwrap_or_else(|| "(none)".into());
    let marker = names
        .iter()
        .filter_map(|n| n.strip_prefix("marker.format-version."))
        .filter_map(|rest| rest.rsplit('.').next()?.parse::<u32>().ok())
        .max()
        .map_or_else(|| "(none)".into(), |f| f.to_string());
    (options, marker)
}

fn set_pebble_format(peer: &fidelity_support::Peer, format: u32) {
    let mut cfg = peer.service_json();
    cfg["datastore"]["pebble"]["pebble_options"]["format_major_version"] = format.into();
    std::fs::write(
        peer.dir.join("service.json"),
        serde_json::to_string_pretty(&cfg).expect("config serializes"),
    )
    .expect("service.json written");
}

/// A pebble store in format 1, as 1.0.5 – 1.0.7 made them (here: 1.0.8 with
/// `format_major_version` 1), met by 1.1.6 without and with the raise on 1.0.8 first
/// (ADR 0009; the stand-in's rules in `standin::pebble`).
fn pebble(bed: &Bed, fact: &FactFn<'_>) {
    let (old, new) = ("1.0.8", "1.1.6");
    let a = bed.peer("a");
    bed.init(old, &a, "crdt");
    fact(
        "1.0.8 init: format_major_version",
        true,
        a.service_json()["datastore"]["pebble"]["pebble_options"]["format_major_version"]
            .to_string()
            .as_str(),
    );
    set_pebble_format(&a, 1);
    let mut da = bed.ready(old, &a, &[]);
    let warned = |log: &str, format: u32| {
        log.contains(&format!(
            "Pebble's format_major_version is set to {format}, but newest version is 16."
        ))
        .to_string()
    };
    fact(
        "1.0.8 at format 1: warns",
        false,
        &warned(&da.log_text(), 1),
    );
    let cid = bed.cids[0].clone();
    let out = bed.ctl(old, &a, &["pin", "add", &cid]);
    fact("1.0.8 at format 1: pin add", true, &code(&out));
    let _ = da.term();
    let (options, marker) = pebble_formats(&a);
    fact("1.0.8 at format 1: store OPTIONS format", true, &options);
    fact("1.0.8 at format 1: store format marker", false, &marker);

    let last_line = |out: &Out| out.stderr.lines().last().unwrap_or("").to_string();
    let out = bed.service(new, &a, &["daemon"]);
    fact("1.1.6 on the format-1 config: exit code", true, &code(&out));
    fact(
        "1.1.6 on the format-1 config: last line",
        true,
        &last_line(&out),
    );
    set_pebble_format(&a, 13);
    let out = bed.service(new, &a, &["daemon"]);
    fact("1.1.6 on the format-1 store: exit code", true, &code(&out));
    fact(
        "1.1.6 on the format-1 store: last line",
        true,
        &last_line(&out),
    );
    let (options, _) = pebble_formats(&a);
    fact("1.1.6 refused: store OPTIONS format", true, &options);

    let mut da = bed.ready(old, &a, &[]);
    fact(
        "1.0.8 at format 13: warns",
        false,
        &warned(&da.log_text(), 13),
    );
    let _ = da.term();
    let (options, marker) = pebble_formats(&a);
    fact("1.0.8 at format 13: store OPTIONS format", true, &options);
    fact("1.0.8 at format 13: store format marker", false, &marker);
    let mut da = bed.start(new, &a, &[]);
    fact(
        "1.1.6 on the raised store: READY",
        true,
        &da.ready().to_string(),
    );
    fact(
        "1.1.6 on the raised store: pins",
        true,
        &pinned(bed, new, &a),
    );
    let _ = da.term();
}

/// Sets `api.restapi.KEY` of a peer's `service.json`.
fn set_restapi(peer: &fidelity_support::Peer, key: &str, value: serde_json::Value) {
    let mut cfg = peer.service_json();
    cfg["api"]["restapi"][key] = value;
    std::fs::write(
        peer.dir.join("service.json"),
        serde_json::to_string_pretty(&cfg).expect("config serializes"),
    )
    .expect("service.json written");
}

/// How a ctl call of the basic-auth scenario gives credentials: a name, the environment, the
/// flags before `id`, and whether cluster-upgrade relies on its exit code.
type AuthCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
    bool,
);

const AUTH_CASES: &[AuthCase] = &[
    ("no credentials", &[], &[], true),
    (
        "wrong credentials, --force-http",
        &[],
        &["--basic-auth", "admin:wrong", "--force-http"],
        true,
    ),
    (
        "--basic-auth admin:s3cret --force-http",
        &[],
        &["--basic-auth", "admin:s3cret", "--force-http"],
        true,
    ),
    (
        "CLUSTER_CREDENTIALS=admin:s3cret --force-http",
        &[("CLUSTER_CREDENTIALS", "admin:s3cret")],
        &["--force-http"],
        true,
    ),
    (
        "--basic-auth admin:s3cret without --force-http",
        &[],
        &["--basic-auth", "admin:s3cret"],
        false,
    ),
    (
        "--basic-auth admin:s3cret without --force-http, GOLOG_LOG_LEVEL=warn",
        &[("GOLOG_LOG_LEVEL", "warn")],
        &["--basic-auth", "admin:s3cret"],
        false,
    ),
    ("--https without credentials", &[], &["--https"], false),
];

/// A crdt peer whose REST API asks for basic auth (`api.restapi.basic_auth_credentials`): the
/// API's own answers, then `id` with each way of giving (or not giving) credentials — none,
/// wrong ones, `--basic-auth`, `CLUSTER_CREDENTIALS`, without `--force-http` (basic auth
/// implies HTTPS, which the plain-HTTP API cannot speak), `--https` —, then the config checks:
/// an empty credentials map and TLS files.
fn basic_auth(bed: &Bed, version: &str, fact: &FactFn<'_>) {
    let a = bed.peer("a");
    bed.init(version, &a, "crdt");
    set_restapi(
        &a,
        "basic_auth_credentials",
        serde_json::json!({"admin": "s3cret"}),
    );
    let mut daemon = bed.ready(version, &a, &[]);
    let show = ["Www-Authenticate"];
    for (what, request, headers) in [
        ("GET /id without credentials", "GET /id", &[][..]),
        (
            "GET /id with wrong credentials",
            "GET /id",
            &["Authorization: Basic YWRtaW46d3Jvbmc="][..],
        ),
        ("GET /health without credentials", "GET /health", &[][..]),
    ] {
        fact(
            &format!("API: {what}"),
            false,
            &http_exchange(&a, request, headers, &show),
        );
    }
    for enc in ["json", "text"] {
        for (name, env, flags, relied) in AUTH_CASES {
            let mut args = vec!["--enc", enc];
            args.extend(flags.iter());
            args.push("id");
            let out = bed.ctl_env(version, &a, (env, &args));
            let what = |w: &str| format!("--enc {enc} id, {name}: {w}");
            fact(&what("exit code"), *relied, &code(&out));
            match (out.code, enc) {
                (Some(0), "json") => {
                    let id = json_values(&out.stdout).pop().unwrap_or_default();
                    fact(&what("stdout parses, its id"), true, &id["id"].to_string());
                }
                (Some(0), _) => fact(
                    &what("stdout first line"),
                    false,
                    out.stdout.lines().next().unwrap_or(""),
                ),
                _ => fact(&what("stdout"), false, out.stdout.trim()),
            }
            fact(&what("stderr"), false, &log_messages(&out.stderr));
        }
    }
    let _ = daemon.term();

    set_restapi(&a, "basic_auth_credentials", serde_json::json!({}));
    let out = bed.service(version, &a, &["daemon"]);
    fact(
        "basic_auth_credentials {}: daemon exit code",
        false,
        &code(&out),
    );
    fact(
        "basic_auth_credentials {}: daemon stderr",
        false,
        &log_messages(&out.stderr),
    );
    set_restapi(&a, "basic_auth_credentials", serde_json::Value::Null);
    set_restapi(&a, "ssl_cert_file", "cert.pem".into());
    set_restapi(&a, "ssl_key_file", "key.pem".into());
    let out = bed.service(version, &a, &["daemon"]);
    fact("ssl_cert_file set: daemon exit code", false, &code(&out));
    fact(
        "ssl_cert_file set: daemon stderr",
        false,
        &log_messages(&out.stderr),
    );
}

/// A 1.0.8 and a 1.1.6 peer in one cluster, and each ctl against the other's service.
fn mixed(bed: &Bed, consensus: &str, fact: &FactFn<'_>) {
    let (old, new) = ("1.0.8", "1.1.6");
    let (a, b) = (bed.peer("a"), bed.peer("b"));
    bed.init(old, &a, consensus);
    bed.init(new, &b, consensus);
    let mut da = bed.ready(old, &a, &[]);
    let mut db = bed.start(new, &b, &["--bootstrap", &a.maddr()]);
    fact(
        "1.1.6 --bootstrap to 1.0.8: READY",
        true,
        &db.ready().to_string(),
    );
    let both = bed.eventually(Duration::from_secs(20), || {
        peer_ids(bed, old, &a).contains("<id:b>") && peer_ids(bed, new, &b).contains("<id:a>")
    });
    fact("both peers list both", true, &both.to_string());
    let cid = bed.cids[1].clone();
    let out = bed.ctl(new, &b, &["pin", "add", &cid]);
    fact("pin add on 1.1.6: exit code", true, &code(&out));
    let replicated = bed.eventually(Duration::from_secs(20), || {
        pinned(bed, old, &a).contains(&cid)
    });
    fact("pin replicated to 1.0.8", true, &replicated.to_string());
    for (ctl, svc, peer) in [(old, new, &b), (new, old, &a)] {
        for args in [
            vec!["--enc=json", "id"],
            vec!["--enc=json", "peers", "ls"],
            vec!["--enc=json", "pin", "ls"],
            vec!["--enc=json", "status"],
        ] {
            let out = bed.ctl(ctl, peer, &args);
            let what = format!("ctl {ctl} → service {svc}: {}", args[1..].join(" "));
            fact(&format!("{what}: exit code"), true, &code(&out));
            fact(&format!("{what}: shape"), true, &json_shape(&out.stdout));
        }
    }
    let _ = (da.term(), db.term());
}

fn jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for version in VERSIONS {
        jobs.push(Job {
            scenario: Scenario::Init,
            version,
            consensus: "",
        });
        for consensus in ["crdt", "raft"] {
            for scenario in [Scenario::Single, Scenario::Pair, Scenario::Lonely] {
                jobs.push(Job {
                    scenario,
                    version,
                    consensus,
                });
            }
        }
    }
    for consensus in ["crdt", "raft"] {
        for scenario in [Scenario::Mixed, Scenario::InPlace] {
            jobs.push(Job {
                scenario,
                version: "1.1.6",
                consensus,
            });
        }
    }
    jobs.push(Job {
        scenario: Scenario::Pebble,
        version: "1.1.6",
        consensus: "crdt",
    });
    // Last, so that the other jobs keep their slots (and CIDs).
    for version in VERSIONS {
        jobs.push(Job {
            scenario: Scenario::Auth,
            version,
            consensus: "crdt",
        });
    }
    jobs
}

#[test]
fn the_stand_in_behaves_as_the_real_binaries_where_cluster_upgrade_looks() {
    let started = Instant::now();
    let (releases, kubo_dir) = real_releases(VERSIONS).unwrap_or_else(|err| {
        panic!("the fidelity suite needs the real binaries: {err}\nbuild them with scripts/real-releases")
    });
    let jobs = jobs();
    let kubo = Kubo::start(&kubo_dir, jobs.len() * fidelity_support::kubo::PINS)
        .expect("the suite's kubo starts");
    // Each job runs both flavors at once; a few jobs at a time keep two cores responsive.
    // The longest scenarios first, so that the last ones to finish are short.
    let mut order: Vec<(usize, Job)> = jobs.iter().copied().enumerate().collect();
    order.sort_by_key(|(_, job)| match job.scenario {
        Scenario::Pair => 0,
        Scenario::InPlace | Scenario::Pebble => 1,
        Scenario::Lonely => 2,
        Scenario::Single => 3,
        Scenario::Mixed | Scenario::Auth => 4,
        Scenario::Init => 5,
    });
    let queue = std::sync::Mutex::new(order.into_iter());
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| loop {
                    let Some((slot, job)) = queue.lock().expect("queue").next() else {
                        break;
                    };
                    let run = |flavor| {
                        let began = Instant::now();
                        let bed = Bed::new(flavor, &kubo, Some(releases.clone()), slot);
                        job.run(&bed);
                        eprintln!(
                            "{flavor:?} {}: {:.1} s",
                            job.label(),
                            began.elapsed().as_secs_f64()
                        );
                        bed.facts()
                    };
                    let run = &run;
                    let (standin, real) = std::thread::scope(|inner| {
                        let s = inner.spawn(move || run(Flavor::Standin));
                        let r = inner.spawn(move || run(Flavor::Real));
                        (
                            s.join()
                                .unwrap_or_else(|_| panic!("stand-in {}", job.label())),
                            r.join().unwrap_or_else(|_| panic!("real {}", job.label())),
                        )
                    });
                    done.lock().expect("done").push((job, standin, real));
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a scenario panicked (see above)");
        }
    });
    let results: Vec<(Job, Vec<_>, Vec<_>)> = done.into_inner().expect("done");
    let reasons: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    let mut all = Vec::new();
    for job in &jobs {
        let (_, standin, real) = results
            .iter()
            .find(|(j, _, _)| j.label() == job.label())
            .expect("every job ran");
        all.extend(rows(standin, real, &reasons));
    }
    let elapsed = started.elapsed();
    let header = format!(
        "# Fidelity of the stand-in: the same scenarios against the stand-in and the real binaries\n\n\
         Generated by the test `the_stand_in_behaves_as_the_real_binaries_where_cluster_upgrade_looks` \
         in `testbed/tests/it/fidelity.rs` (`cargo test -p cluster-testbed --test it fidelity`); do not \
         edit by hand. Real binaries: ipfs-cluster {} and kubo {}, as built by \
         `scripts/real-releases`, run as local processes on 127.x addresses. \
         IDs, addresses, paths and times are replaced by names (`<id:a>`, `<ip:a>`, `<dir:a>`, \
         `<time>`); JSON is compared by field names and types (`{{name:type}}`). \
         Last run took {} s.",
        VERSIONS.join(" and "),
        kubo_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        elapsed.as_secs()
    );
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/fidelity.md");
    std::fs::write(&doc, markdown(&all, &header)).expect("docs/fidelity.md written");
    let failures: Vec<String> = all.iter().filter_map(|r| r.failure()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows differ where they must not (see docs/fidelity.md):\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
