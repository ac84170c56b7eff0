//! Live traffic against a lab's REST APIs while an upgrade runs: a writer that adds a pin every
//! 50 ms (to the first peer that takes it) and a poller that asks every peer's API every 50 ms.
//! Plain HTTP/1.1 over TCP, the same for the stand-in and the real `ipfs-cluster-service`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(50);
/// How long a request may take before its peer counts as not answering. A stopped peer is
/// refused at once; a running one answers `/id` in milliseconds, but the test machine runs
/// other tests' clusters on the same two cores, and a real peer's `/id` asks its IPFS daemon
/// too: with the two real rolling tests side by side on a loaded machine, a live peer now and
/// then took over 0.8 s (about one sample in 2,000, counted `TimedOut`). Clients wait longer
/// (`ipfs-cluster-ctl` has no timeout unless given one); 3 s still tells a hung peer from a
/// slow one.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The REST API address of every host of the lab in `dir` (its `lab.json`).
pub fn lab_apis(dir: &Path) -> Vec<SocketAddr> {
    let lab: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("lab.json")).expect("lab.json")).unwrap();
    let port = lab["ports"]["api"].as_u64().expect("ports.api") as u16;
    lab["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let address = h["address"].as_str().unwrap();
            SocketAddr::new(address.parse().unwrap(), port)
        })
        .collect()
}

/// One request; the status code and body, or `None` when the peer did not answer in time.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, String)> {
    request(addr, method, path).ok()
}

/// Why a peer did not answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoAnswer {
    /// Nothing listens: the connection was refused (the peer is down).
    Refused,
    /// It did not connect or answer within the timeout (down, hung or slow).
    TimedOut,
    /// It answered something other than a 200.
    Status(u16),
    /// Another failure (a reset, a garbled answer).
    Other,
}

/// One request: the status code and body, or why there was none.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String), NoAnswer> {
    use std::io::ErrorKind;
    let kind = |e: std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused => NoAnswer::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => NoAnswer::TimedOut,
        _ => NoAnswer::Other,
    };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(kind)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(kind)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(kind)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(kind)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(kind)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(NoAnswer::Other)?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((code, body))
}

/// An identity CIDv1 (raw codec) of `data`: its block is the CID itself, so every IPFS daemon
/// can pin it at once, offline.
pub fn identity_cid(data: &[u8]) -> String {
    let mut bytes = vec![0x01, 0x55, 0x00, data.len() as u8];
    bytes.extend_from_slice(data);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::from("b");
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            out.push(alphabet[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(alphabet[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// What the poller saw.
#[derive(Debug, Default)]
pub struct Polls {
    pub samples: usize,
    /// The fewest peers that answered in one sample.
    pub fewest_answering: usize,
    /// Samples in which not every peer answered.
    pub degraded: usize,
    /// The samples with the fewest peers answering (up to ten): when, and who did not answer
    /// and why, for the failure message.
    pub worst: Vec<Sample>,
    /// How often a peer did not answer, by why.
    pub silences: std::collections::BTreeMap<String, usize>,
}

/// One sample in which some peer did not answer.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Since the poller started.
    pub at: Duration,
    /// The peers (their API addresses) that did not answer, why, and after how long.
    pub silent: Vec<(SocketAddr, NoAnswer, Duration)>,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {:.1}s:", self.at.as_secs_f64())?;
        for (api, why, after) in &self.silent {
            write!(f, " {api} {why:?} after {} ms;", after.as_millis())?;
        }
        Ok(())
    }
}

pub struct Traffic {
    stop: Arc<AtomicBool>,
    writer: JoinHandle<(Vec<String>, usize)>,
    poller: JoinHandle<Polls>,
}

impl Traffic {
    pub fn start(apis: Vec<SocketAddr>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, apis) = (Arc::clone(&stop), apis.clone());
            std::thread::spawn(move || write_pins(&apis, &stop))
        };
        let poller = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || poll(&apis, &stop))
        };
        Traffic {
            stop,
            writer,
            poller,
        }
    }

    /// Stops both; the pins whose add was acknowledged, the adds refused, and the polls.
    pub fn stop(self) -> (Vec<String>, usize, Polls) {
        self.stop.store(true, Ordering::SeqCst);
        let (acked, refused) = self.writer.join().unwrap();
        (acked, refused, self.poller.join().unwrap())
    }
}

fn write_pins(apis: &[SocketAddr], stop: &AtomicBool) -> (Vec<String>, usize) {
    let (mut acked, mut refused) = (Vec::new(), 0);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let cid = identity_cid(format!("rolling write {n}").as_bytes());
        n += 1;
        // The first peer that takes it: one of them may be restarting.
        let taken = apis
            .iter()
            .any(|api| matches!(http(*api, "POST", &format!("/pins/{cid}")), Some((200, _))));
        if taken {
            acked.push(cid);
        } else {
            refused += 1;
        }
        std::thread::sleep(EVERY.saturating_sub(started.elapsed()));
    }
    (acked, refused)
}

fn poll(apis: &[SocketAddr], stop: &AtomicBool) -> Polls {
    let mut polls = Polls {
        fewest_answering: apis.len(),
        ..Polls::default()
    };
    let begun = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let silent: Vec<(SocketAddr, NoAnswer, Duration)> = apis
            .iter()
            .filter_map(|api| {
                let asked = Instant::now();
                match request(*api, "GET", "/id") {
                    Ok((200, _)) => None,
                    Ok((code, _)) => Some((*api, NoAnswer::Status(code), asked.elapsed())),
                    Err(why) => Some((*api, why, asked.elapsed())),
                }
            })
            .collect();
        let answering = apis.len() - silent.len();
        polls.samples += 1;
        if answering < polls.fewest_answering {
            polls.worst.clear();
        }
        polls.fewest_answering = polls.fewest_answering.min(answering);
        for (_, why, _) in &silent {
            *polls.silences.entry(format!("{why:?}")).or_default() += 1;
        }
        if !silent.is_empty() {
            polls.degraded += 1;
            if answering == polls.fewest_answering && polls.worst.len() < 10 {
                polls.worst.push(Sample {
                    at: started - begun,
                    silent,
                });
            }
        }
        std::thread::sleep(EVERY.saturating_sub(started.elapsed()));
    }
    polls
}

/// Waits (up to a minute: CRDT peers sync in the background) until every peer lists every one
/// of `cids`; the CIDs some peer still lacks when time is up.
pub fn missing_anywhere(apis: &[SocketAddr], cids: &[String]) -> Vec<(SocketAddr, String)> {
    missing_anywhere_within(apis, cids, Duration::from_secs(60))
}

/// As [`missing_anywhere`], waiting up to `patience`.
pub fn missing_anywhere_within(
    apis: &[SocketAddr],
    cids: &[String],
    patience: Duration,
) -> Vec<(SocketAddr, String)> {
    let deadline = Instant::now() + patience;
    loop {
        let missing: Vec<(SocketAddr, String)> = apis
            .iter()
            .flat_map(|api| {
                let listed = http(*api, "GET", "/allocations").map_or(String::new(), |(_, b)| b);
                cids.iter()
                    .filter(move |cid| !listed.contains(cid.as_str()))
                    .map(move |cid| (*api, cid.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs `upgrade` while a writer and a poller hit the `apis`, prints what they saw (as
/// `label`), and checks it: the poller ran, at every sample at least N−1 peers answered, the
/// writer kept writing, and every acknowledged pin is on every peer afterwards. Returns the
/// upgrade's output for its own checks.
pub fn under_traffic(
    label: &str,
    apis: &[SocketAddr],
    upgrade: impl FnOnce() -> std::process::Output,
) -> std::process::Output {
    let (out, acked) = under_traffic_acked(label, apis, upgrade);
    let missing = missing_anywhere(apis, &acked);
    assert!(missing.is_empty(), "acknowledged pins missing: {missing:?}");
    out
}

/// As [`under_traffic`], without the last check: the upgrade's output and the pins whose add
/// was acknowledged.
pub fn under_traffic_acked(
    label: &str,
    apis: &[SocketAddr],
    upgrade: impl FnOnce() -> std::process::Output,
) -> (std::process::Output, Vec<String>) {
    let traffic = Traffic::start(apis.to_vec());
    let out = upgrade();
    let (acked, refused, polls) = traffic.stop();
    let peers = apis.len();
    eprintln!(
        "{label}: poller {} samples, fewest answering {} of {peers}, {} samples with a peer down (no answer: {:?}); writer {} pins acknowledged, {} refused",
        polls.samples,
        polls.fewest_answering,
        polls.degraded,
        polls.silences,
        acked.len(),
        refused
    );
    assert!(polls.samples >= 10, "the poller ran: {polls:?}");
    let worst: Vec<String> = polls.worst.iter().map(Sample::to_string).collect();
    assert!(
        polls.fewest_answering + 1 >= peers,
        "at every sample at least N-1 peers answered: {} samples, fewest answering {} of {peers}, {} degraded; the worst:\n{}",
        polls.samples,
        polls.fewest_answering,
        polls.degraded,
        worst.join("\n")
    );
    assert!(
        polls.degraded > 0,
        "the poller saw a peer down while it restarted"
    );
    assert!(
        acked.len() >= 10,
        "the writer kept writing: {}",
        acked.len()
    );
    (out, acked)
}

#[test]
fn identity_cids_are_base32_cidv1_raw() {
    // As `printf hello | ipfs add -n --inline --raw-leaves --cid-version 1` prints it.
    assert_eq!(identity_cid(b"hello"), "bafkqablimvwgy3y");
}
