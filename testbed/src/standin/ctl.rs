//! `ipfs-cluster-ctl`: a REST client of the daemon with the real commands, output formats and
//! exit codes (0 success, 1 no response, 2 the API answered with an error).
//!
//! Unknown commands, including the singular `peer` that old docs use, end like urfave/cli v1:
//! "No help topic for 'peer'" and exit code 3. (1.1.6 maps application errors to 1; we keep
//! 3 for every release so a procedure that uses `peer rm` fails visibly with a distinct code.)

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::args::{self, switch, value, Flag};
use super::auth;
use super::http::{self, TlsAnswer};
use super::logging::{self, Level};
use super::multiaddr::Multiaddr;
use super::pin::pretty;
use crate::release::{Era, Release};

const GLOBAL_FLAGS: &[Flag] = &[
    value(&["host", "l"]),
    value(&["encoding", "enc"]),
    value(&["timeout", "t"]),
    switch(&["https", "s"]),
    switch(&["no-check-certificate"]),
    value(&["basic-auth"]),
    switch(&["force-http", "f"]),
    switch(&["debug", "d"]),
    value(&["secret"]),
    switch(&["version", "v"]),
    switch(&["help", "h"]),
];
const PIN_ADD_FLAGS: &[Flag] = &[
    value(&["name", "n"]),
    value(&["replication", "r"]),
    switch(&["no-status", "ns"]),
    switch(&["wait", "w"]),
];
const DEFAULT_HOST: &str = "/ip4/127.0.0.1/tcp/9094";

/// How the ctl prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Text,
    Json,
}

/// A failed call: HTTP code 0 means there was no response.
#[derive(Debug)]
struct ApiError {
    code: u16,
    message: String,
}

struct Client {
    hosts: Vec<SocketAddr>,
    timeout: Duration,
    /// `--https` (or implied by `--basic-auth`): the stand-in has no TLS, so such a request
    /// gets as far as Go's client gets against a plain HTTP server (see [`http::tls_hello`]).
    https: bool,
    /// The `Authorization` header of `--basic-auth` / `CLUSTER_CREDENTIALS`.
    authorization: Option<String>,
    /// Which log levels the ctl prints (go-log's, see [`Ctl::from_globals`]).
    log_level: Level,
}

impl Client {
    fn call(&self, method: &str, target: &str) -> Result<Option<Value>, ApiError> {
        let mut last = ApiError {
            code: 0,
            message: "no hosts".into(),
        };
        for host in &self.hosts {
            let scheme = if self.https { "https" } else { "http" };
            // Go's `url.Error`: `Get "http://host/path": cause`.
            let failed = |cause: String| ApiError {
                code: 0,
                message: format!(
                    "{} \"{scheme}://{host}{target}\": {cause}",
                    go_method(method)
                ),
            };
            if self.https {
                last = failed(match http::tls_hello(*host, self.timeout) {
                    Ok(TlsAnswer::Http) => "http: server gave HTTP response to HTTPS client".into(),
                    Ok(TlsAnswer::Closed) => "EOF".into(),
                    Ok(TlsAnswer::Other) => {
                        "the stand-in ctl does not model TLS: cannot talk to an HTTPS server".into()
                    }
                    Err(err) => go_io_error(host, &err),
                });
                continue;
            }
            let headers: Vec<(&str, &str)> = self
                .authorization
                .iter()
                .map(|a| ("Authorization", a.as_str()))
                .collect();
            let outgoing = http::Outgoing {
                method,
                target,
                headers: &headers,
            };
            match http::request_with(*host, &outgoing, self.timeout) {
                Ok((status, body)) if status < 300 => {
                    return Ok(serde_json::from_str(&body).ok());
                }
                Ok((status, body)) => {
                    let message = serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(String::from))
                        .unwrap_or(body);
                    return Err(ApiError {
                        code: status,
                        message,
                    });
                }
                Err(err) => last = failed(go_io_error(host, &err)),
            }
        }
        // The load-balancing client gives up after one try per host.
        if self.log_level <= Level::Error {
            logging::error(
                "apiclient",
                &format!(
                    "reached maximum number of retries without success, retries: {}",
                    self.hosts.len()
                ),
            );
        }
        Err(last)
    }
}

/// How Go's `url.Error` names a method ("Get", "Post", "Delete").
fn go_method(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Go's text of a connection failure, where the stand-in knows it.
fn go_io_error(host: &SocketAddr, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {host}: connect: connection refused")
        }
        _ => err.to_string(),
    }
}

/// go-log's level of the ctl's loggers: `--debug`, else `GOLOG_LOG_LEVEL`, else error.
fn log_level(debug: bool) -> Level {
    if debug {
        return Level::Debug;
    }
    match std::env::var("GOLOG_LOG_LEVEL")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        // dpanic, panic and fatal hide even errors.
        "dpanic" | "panic" | "fatal" => Level::Fatal,
        _ => Level::Error,
    }
}

/// `checkErr`: a failure that is no API answer, on stderr, exit 1.
fn check_err(doing: &str, message: &str) -> i32 {
    eprintln!("error {doing}: {message}");
    1
}

/// Runs `ipfs-cluster-ctl` with `args`; returns the exit code.
pub fn run(release: &Release, args: Vec<String>) -> i32 {
    let global = match args::parse(&args, GLOBAL_FLAGS, true) {
        Ok(p) => p,
        Err(err) => {
            eprintln!("Incorrect Usage: {err}");
            return 0;
        }
    };
    if global.has("version") {
        println!("ipfs-cluster-ctl version {}", release.version);
        return 0;
    }
    let ctl = match Ctl::from_globals(release, &global) {
        Ok(ctl) => ctl,
        Err((doing, message)) => return check_err(doing, &message),
    };
    let words: Vec<&str> = global.positionals.iter().map(String::as_str).collect();
    ctl.dispatch(&words, global.has("help"))
}

impl<'a> Ctl<'a> {
    /// The ctl the global flags describe (`--enc`, `--host`, `--timeout`, `--https`,
    /// `--basic-auth` or `CLUSTER_CREDENTIALS`, `--force-http`), or what `checkErr` says.
    fn from_globals(
        release: &'a Release,
        global: &args::Parsed,
    ) -> std::result::Result<Ctl<'a>, (&'static str, String)> {
        let log_level = log_level(global.has("debug"));
        let mut https = global.has("https");
        let credentials = global
            .value("basic-auth")
            .map(String::from)
            .or_else(|| std::env::var("CLUSTER_CREDENTIALS").ok())
            .unwrap_or_default();
        let (user, password) = auth::parse_credentials(&credentials);
        if !user.is_empty() && !https && !global.has("force-http") {
            if log_level <= Level::Warn {
                logging::warn(
                    "cluster-ctl",
                    "SSL automatically enabled with basic auth credentials. Set \"force-http\" to disable",
                );
            }
            https = true;
        }
        let encoding = match global.value("encoding").unwrap_or("text") {
            "text" => Encoding::Text,
            "json" => Encoding::Json,
            _ => return Err(("", "unsupported encoding".into())),
        };
        let mut hosts = Vec::new();
        for host in global.value("host").unwrap_or(DEFAULT_HOST).split(',') {
            let addr = Multiaddr::parse(host)
                .and_then(|m| m.socket_addr())
                .map_err(|err| ("parsing host multiaddress", err.to_string()))?;
            hosts.push(addr);
        }
        let timeout = global
            .value("timeout")
            .and_then(|t| t.parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(120);
        Ok(Ctl {
            release,
            encoding,
            client: Client {
                hosts,
                timeout: Duration::from_secs(timeout),
                https,
                // The Go client sends credentials only with a user name.
                authorization: (!user.is_empty()).then(|| auth::authorization(&user, &password)),
                log_level,
            },
        })
    }

    /// Runs the command the positional `words` name; its exit code.
    fn dispatch(&self, words: &[&str], help_flag: bool) -> i32 {
        let ctl = self;
        match words {
            [] => {
                print!("{}", help());
                if help_flag {
                    0
                } else {
                    1
                }
            }
            ["help" | "h"] => {
                print!("{}", help());
                0
            }
            ["id", ..] => ctl.finish(ctl.client.call("GET", "/id"), |v| ctl.print_ids(&[v], true)),
            ["version", ..] => ctl.version(),
            ["peers", "ls", ..] => ctl.finish(ctl.client.call("GET", "/peers"), |v| {
                ctl.print_ids(&as_list(v), false)
            }),
            ["peers", "rm", id, ..] => {
                ctl.finish(ctl.client.call("DELETE", &format!("/peers/{id}")), |_| {})
            }
            ["pin", "add", rest @ ..] => ctl.pin_add(rest),
            ["pin", "rm", cid, ..] => {
                ctl.finish(ctl.client.call("DELETE", &format!("/pins/{cid}")), |_| {})
            }
            // urfave checks arguments inside the action: a missing one fails before a request.
            ["peers", "rm"] => check_err(
                "parsing peer ID",
                "failed to parse peer ID: invalid cid: cid too short",
            ),
            ["pin", "rm"] => ctl.no_cid(),
            ["pin", "ls"] => ctl.finish(ctl.client.call("GET", "/allocations"), |v| {
                ctl.print_pins(&as_list(v))
            }),
            ["pin", "ls", cid, ..] => ctl.finish(
                ctl.client.call("GET", &format!("/allocations/{cid}")),
                |v| ctl.print_pins(&[v]),
            ),
            ["status"] => ctl.finish(ctl.client.call("GET", "/pins"), |v| {
                ctl.print_statuses(&as_list(v))
            }),
            ["status", cids @ ..] => ctl.status(cids),
            [other, ..] => {
                // urfave's help fallback for unknown commands (also "peers"/"pin" without a
                // known subcommand), exit 3.
                let topic = if matches!(*other, "peers" | "pin") {
                    words.get(1).copied().unwrap_or(other)
                } else {
                    other
                };
                eprintln!("No help topic for '{topic}'");
                3
            }
        }
    }
}

fn help() -> String {
    // The flag lines as the real `--help` prints them (urfave aligns the usage column per
    // group of lines, and the two-line usage of --basic-auth breaks that alignment).
    "NAME:\n   ipfs-cluster-ctl - CLI for IPFS Cluster (stand-in)\n\nCOMMANDS:\n   id       Retrieve peer information\n   \
     peers    List and manage IPFS Cluster peers (ls, rm)\n   pin      Pin and unpin and list items in IPFS Cluster (add, rm, ls)\n   \
     status   Retrieve the status of tracked items\n   version  Retrieve cluster version\n\nGLOBAL OPTIONS:\n   \
     --host value, -l value         Cluster's HTTP or LibP2P-HTTP API endpoint (default: \"/ip4/127.0.0.1/tcp/9094\")\n   \
     --https, -s                    use https to connect to the API\n   \
     --no-check-certificate         do not verify server TLS certificate. only valid with --https flag\n   \
     --encoding value, --enc value  output format encoding [text, json] (default: \"text\")\n   \
     --basic-auth value             <username>[:<password>] specify BasicAuth credentials for server that\n\
     requires authorization. implies --https, which you can disable with --force-http [$CLUSTER_CREDENTIALS]\n   \
     --force-http, -f  force HTTP. only valid when using BasicAuth\n   \
     --version, -v     print the version\n"
        .to_string()
}

fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn cid_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other["/"].as_str().unwrap_or_default().to_string(),
    }
}

fn print_error(encoding: Encoding, err: &ApiError) {
    match encoding {
        Encoding::Json => println!(
            "{}",
            pretty(&json!({"code": err.code, "message": err.message}))
        ),
        // `textFormatPrintError` prints on stdout.
        Encoding::Text => println!(
            "An error occurred:\n  Code: {}\n  Message: {}",
            err.code, err.message
        ),
    }
}

struct Ctl<'a> {
    release: &'a Release,
    encoding: Encoding,
    client: Client,
}

impl Ctl<'_> {
    /// Prints a result with `print` or the error; returns the exit code.
    fn finish(&self, result: Result<Option<Value>, ApiError>, print: impl FnOnce(Value)) -> i32 {
        match result {
            Ok(value) => {
                print(value.unwrap_or(Value::Null));
                0
            }
            Err(err) => {
                print_error(self.encoding, &err);
                if err.code == 0 {
                    1
                } else {
                    2
                }
            }
        }
    }

    /// `pin add`/`pin rm` without a CID: the client refuses the empty path `/ipfs/`, an error
    /// that is no `api.Error`.
    fn no_cid(&self) -> i32 {
        if self.client.log_level <= Level::Error {
            logging::error("apiclient", "could not cast error into api.Error");
        }
        check_err(
            "",
            "invalid path \"/ipfs/\": path does not have enough components",
        )
    }

    /// Lists print as one array up to 0.14 and as a stream of objects from 1.0.
    fn print_json_list(&self, items: &[Value]) {
        if self.release.major >= 1 {
            for item in items {
                println!("{}", pretty(item));
            }
        } else {
            println!("{}", pretty(&Value::Array(items.to_vec())));
        }
    }

    fn print_ids(&self, ids: &[Value], single: bool) {
        if self.encoding == Encoding::Json {
            if single {
                println!("{}", pretty(&ids[0]));
            } else {
                self.print_json_list(ids);
            }
            return;
        }
        for id in ids {
            let error = id["error"].as_str().unwrap_or_default();
            let peer = id["id"].as_str().unwrap_or_default();
            if !error.is_empty() {
                println!("{peer} | ERROR: {error}");
                continue;
            }
            let seen = id["cluster_peers"]
                .as_array()
                .map_or(0, Vec::len)
                .saturating_sub(1);
            println!(
                "{peer} | {} | Sees {seen} other peers",
                id["peername"].as_str().unwrap_or_default()
            );
            println!("  > Addresses:");
            for addr in id["addresses"].as_array().into_iter().flatten() {
                println!("    - {}", addr.as_str().unwrap_or_default());
            }
            println!(
                "  > IPFS: {}",
                id["ipfs"]["id"].as_str().unwrap_or_default()
            );
        }
    }

    fn version(&self) -> i32 {
        let result = self.client.call("GET", "/version");
        self.finish(result, |v| {
            let version = v
                .get("version")
                .or_else(|| v.get("Version"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            match self.encoding {
                Encoding::Text => println!("{version}"),
                Encoding::Json => {
                    let r = self.release;
                    let key = if (r.major, r.minor, r.patch) < (0, 10, 1) {
                        "Version"
                    } else {
                        "version"
                    };
                    println!("{}", pretty(&json!({ key: version })));
                }
            }
        })
    }

    fn pin_add(&self, rest: &[&str]) -> i32 {
        let owned: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        let parsed = match args::parse(&owned, PIN_ADD_FLAGS, false) {
            Ok(p) => p,
            Err(err) => {
                eprintln!("Incorrect Usage: {err}");
                return 0;
            }
        };
        let Some(cid) = parsed.positionals.first() else {
            return self.no_cid();
        };
        let name = http::percent_encode(parsed.value("name").unwrap_or(""));
        let added = self
            .client
            .call("POST", &format!("/pins/{cid}?name={name}"));
        if let Err(err) = added {
            return self.finish(Err(err), |_| {});
        }
        if parsed.has("no-status") {
            return 0;
        }
        self.finish(self.client.call("GET", &format!("/pins/{cid}")), |v| {
            self.print_statuses(&[v])
        })
    }

    fn status(&self, cids: &[&str]) -> i32 {
        let mut found = Vec::new();
        for cid in cids {
            match self.client.call("GET", &format!("/pins/{cid}")) {
                Ok(value) => found.extend(value),
                Err(err) => return self.finish(Err(err), |_| {}),
            }
        }
        self.print_statuses(&found);
        0
    }

    fn print_pins(&self, pins: &[Value]) {
        if self.encoding == Encoding::Json {
            return self.print_json_list(pins);
        }
        for pin in pins {
            let repl = if pin["replication_factor_min"].as_i64().unwrap_or(-1) < 0 {
                "Repl. Factor: -1 | Allocations: [everywhere]".to_string()
            } else {
                format!(
                    "Repl. Factor: {}--{} | Allocations: {}",
                    pin["replication_factor_min"],
                    pin["replication_factor_max"],
                    pin["allocations"]
                )
            };
            let mode = if pin["max_depth"].as_i64().unwrap_or(-1) == 0 {
                "Direct"
            } else {
                "Recursive"
            };
            let exp = if self.release.major >= 1 {
                " | Exp: ∞"
            } else {
                ""
            };
            println!(
                "{} | {} | PIN | {repl} | {mode} | Metadata: no{exp}",
                cid_text(&pin["cid"]),
                pin["name"].as_str().unwrap_or_default()
            );
        }
    }

    fn print_statuses(&self, statuses: &[Value]) {
        if self.encoding == Encoding::Json {
            return self.print_json_list(statuses);
        }
        let modern = self.release.era() == Era::Modern;
        for status in statuses {
            let name = status["name"].as_str().unwrap_or_default();
            if modern && name.is_empty() {
                println!("{}:", cid_text(&status["cid"]));
            } else {
                println!("{} | {name}:", cid_text(&status["cid"]));
            }
            for (peer, info) in status["peer_map"].as_object().into_iter().flatten() {
                let name = info["peername"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(peer);
                let state = info["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let error = info["error"]
                    .as_str()
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                let width = if modern { 20 } else { 16 };
                println!(
                    "    > {name:<width$} : {state}{error} | {} | Attempts: 0 | Priority: false",
                    info["timestamp"].as_str().unwrap_or_default()
                );
            }
        }
    }
}
