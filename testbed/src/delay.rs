//! A delaying TCP relay: what stands for a wide-area network between the controller and a
//! lab's hosts (`cluster-lab up --rtt`, issue 19; this kernel has no netem).
//!
//! Each route listens on an address and, for every connection, dials another one. Every chunk
//! read from one side is written to the other half a round trip later (± half the jitter), and
//! never before the chunk ahead of it: a byte stream keeps its order. The server side is dialled
//! one and a half round trips after the client connected, as TCP's handshake (SYN, SYN-ACK, then
//! the ACK carrying the client's first bytes) would let it see the connection; the client's
//! `connect` itself returns at once, and its first bytes wait for the dial.
//!
//! Limits (docs/benchmarks.md): the delay is per chunk (what one `read` returned), not per
//! packet; there is no bandwidth limit, no loss and no reordering; the relay's own CPU shares
//! the machine. Each connection takes four threads (per direction, a reader that stamps each
//! chunk with its release time and a writer that sleeps until then), all blocking: nothing
//! polls.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The most bytes one chunk holds (one `read`).
const CHUNK: usize = 32 * 1024;

/// Chunks queued per direction before the reader waits (backpressure, as a TCP window).
const QUEUE: usize = 256;

/// Stack of the relay's threads: they hold no large buffers on it.
const STACK: usize = 64 * 1024;

/// The simulated network between the controller and every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delay {
    /// The round-trip time; half of it each way.
    #[serde(with = "micros")]
    pub rtt: Duration,
    /// The width of the uniform spread around each one-way delay (± half of it).
    #[serde(with = "micros")]
    pub jitter: Duration,
}

/// Why `--rtt` or `--jitter` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DelayError {
    #[error("{option} {text:?} is not a duration like 50ms, 0.1s or 0")]
    NotADuration { option: &'static str, text: String },
    #[error("--jitter {jitter:?} exceeds --rtt {rtt:?}: a one-way delay would be negative")]
    JitterAboveRtt { jitter: Duration, rtt: Duration },
}

impl Delay {
    /// Parses `--rtt` and `--jitter` (Go-style durations: `50ms`, `0.1s`); jitter ≤ RTT.
    pub fn parse(rtt: &str, jitter: Option<&str>) -> Result<Delay, DelayError> {
        let duration = |option, text: &str| {
            crate::standin::duration::parse(text).ok_or_else(|| DelayError::NotADuration {
                option,
                text: text.to_string(),
            })
        };
        let rtt = duration("--rtt", rtt)?;
        let jitter = jitter.map_or(Ok(Duration::ZERO), |j| duration("--jitter", j))?;
        if jitter > rtt {
            return Err(DelayError::JitterAboveRtt { jitter, rtt });
        }
        Ok(Delay { rtt, jitter })
    }

    /// One way: half the RTT, moved by `unit` (in [0, 1)) within ± half the jitter.
    pub fn one_way(&self, unit: f64) -> Duration {
        let half = self.rtt.as_secs_f64() / 2.0;
        let spread = self.jitter.as_secs_f64() * (unit.clamp(0.0, 1.0) - 0.5);
        Duration::from_secs_f64((half + spread).max(0.0))
    }

    /// How long after the client connected the server sees the connection: three one-way
    /// trips (SYN, SYN-ACK, ACK), one `unit` each.
    pub fn handshake(&self, units: [f64; 3]) -> Duration {
        units.iter().map(|&u| self.one_way(u)).sum()
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RTT {}", millis(self.rtt))?;
        if !self.jitter.is_zero() {
            write!(f, " ± {}", millis(self.jitter / 2))?;
        }
        Ok(())
    }
}

/// `50ms`, `2.5ms`.
fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms.fract() == 0.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms}ms")
    }
}

/// Durations as whole microseconds in JSON (`lab.json`, the relay's rules).
mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

/// The release times of one direction's chunks: each leaves its delay after it arrived, but
/// never before the chunk ahead of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    last: Instant,
}

impl Schedule {
    /// No chunk leaves before `at` (the server side exists only from the dial on).
    pub fn starting(at: Instant) -> Schedule {
        Schedule { last: at }
    }

    /// When a chunk that arrived at `arrived` and is to be delayed by `delay` leaves.
    pub fn release(&mut self, arrived: Instant, delay: Duration) -> Instant {
        self.last = self.last.max(arrived + delay);
        self.last
    }
}

/// One listening address and where its connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub listen: SocketAddrV4,
    pub dial: SocketAddrV4,
}

/// What a relay process serves: its routes, all through the same simulated network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub delay: Delay,
    pub routes: Vec<Route>,
}

/// Binds every route's listener and relays in background threads, which run as long as this
/// process does. Returns the bound addresses, in the order of the routes (port 0 is resolved).
pub fn start(rules: &Rules) -> io::Result<Vec<SocketAddrV4>> {
    let mut bound = Vec::new();
    let mut listeners = Vec::new();
    for route in &rules.routes {
        let listener = TcpListener::bind(route.listen)
            .map_err(|e| io::Error::new(e.kind(), format!("listening on {}: {e}", route.listen)))?;
        let std::net::SocketAddr::V4(address) = listener.local_addr()? else {
            unreachable!("bound to an IPv4 address");
        };
        bound.push(address);
        listeners.push((listener, route.dial));
    }
    for (listener, dial) in listeners {
        let delay = rules.delay;
        spawn(move || accept_loop(&listener, dial, delay))?;
    }
    Ok(bound)
}

/// Binds every route, prints `ready` on stdout, then relays until killed.
pub fn serve(rules: &Rules) -> io::Result<()> {
    start(rules)?;
    println!("ready");
    io::stdout().flush()?;
    loop {
        thread::park();
    }
}

fn spawn(work: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .stack_size(STACK)
        .spawn(work)
        .map(|_| ())
}

fn accept_loop(listener: &TcpListener, dial: SocketAddrV4, delay: Delay) {
    loop {
        match listener.accept() {
            Ok((client, _)) => {
                // Out of threads: this connection is dropped, the next may fare better.
                let _ = spawn(move || connection(client, dial, delay));
            }
            // Out of file descriptors, say: wait rather than spin.
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A bit of one data stream on its way.
struct Chunk {
    release: Instant,
    /// Empty: the end of the stream (FIN), delayed like data.
    bytes: Vec<u8>,
}

fn connection(client: TcpStream, dial: SocketAddrV4, delay: Delay) {
    let mut random = Random::new();
    let dial_at = Instant::now() + delay.handshake([random.unit(), random.unit(), random.unit()]);
    let _ = client.set_nodelay(true);
    let (Ok(client_in), Ok(client_out)) = (client.try_clone(), client.try_clone()) else {
        return;
    };
    let (to_server, from_client) = mpsc::sync_channel(QUEUE);
    if spawn(move || reader(client_in, &to_server, Schedule::starting(dial_at), delay)).is_err() {
        return;
    }
    sleep_until(dial_at);
    let server = match TcpStream::connect(dial) {
        Ok(server) => server,
        Err(_) => {
            // As a refused connection: the client sees its stream end.
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let (Ok(server_in), Ok(server_shut)) = (server.try_clone(), server.try_clone()) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (to_client, from_server) = mpsc::sync_channel(QUEUE);
    let back = Schedule::starting(Instant::now());
    let started = spawn(move || reader(server_in, &to_client, back, delay))
        .and_then(|()| spawn(move || writer(&from_server, client_out, &server_shut)));
    if started.is_err() {
        let _ = server.shutdown(Shutdown::Both);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    writer(&from_client, server, &client);
}

/// Reads `from` until its end, queueing every chunk with its release time.
fn reader(mut from: TcpStream, queue: &SyncSender<Chunk>, mut schedule: Schedule, delay: Delay) {
    let mut random = Random::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(n) => n,
            Err(_) => 0,
        };
        let release = schedule.release(Instant::now(), delay.one_way(random.unit()));
        let chunk = Chunk {
            release,
            bytes: buf[..n].to_vec(),
        };
        if queue.send(chunk).is_err() || n == 0 {
            return;
        }
    }
}

/// Writes every chunk to `to` at its release time; at the end of the stream, shuts `to` for
/// writing. When `to` fails, stops reading `from` (its reader then ends).
fn writer(queue: &Receiver<Chunk>, mut to: TcpStream, from: &TcpStream) {
    for chunk in queue {
        sleep_until(chunk.release);
        if chunk.bytes.is_empty() {
            break;
        }
        if to.write_all(&chunk.bytes).is_err() {
            let _ = from.shutdown(Shutdown::Read);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// xorshift64*: jitter needs spread, not secrecy. Seeded from std's random hasher keys.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Random(hasher.finish() | 1)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rtt_and_jitter_parse_as_durations() {
        assert_eq!(
            Delay::parse("50ms", None),
            Ok(Delay {
                rtt: ms(50),
                jitter: Duration::ZERO
            })
        );
        assert_eq!(
            Delay::parse("0.1s", Some("5ms")),
            Ok(Delay {
                rtt: ms(100),
                jitter: ms(5)
            })
        );
        assert_eq!(Delay::parse("0", None).unwrap().rtt, Duration::ZERO);
        assert!(matches!(
            Delay::parse("50", None),
            Err(DelayError::NotADuration {
                option: "--rtt",
                ..
            })
        ));
        assert!(matches!(
            Delay::parse("50ms", Some("fast")),
            Err(DelayError::NotADuration {
                option: "--jitter",
                ..
            })
        ));
        assert_eq!(
            Delay::parse("10ms", Some("20ms")),
            Err(DelayError::JitterAboveRtt {
                jitter: ms(20),
                rtt: ms(10)
            })
        );
        assert_eq!(
            Delay::parse("50ms", Some("5ms")).unwrap().to_string(),
            "RTT 50ms ± 2.5ms"
        );
        assert_eq!(Delay::parse("20ms", None).unwrap().to_string(), "RTT 20ms");
    }

    #[test]
    fn a_one_way_delay_is_half_the_rtt_within_half_the_jitter() {
        let delay = Delay {
            rtt: ms(50),
            jitter: ms(10),
        };
        assert_eq!(delay.one_way(0.0), ms(20));
        assert_eq!(delay.one_way(0.5), ms(25));
        assert_eq!(delay.one_way(1.0), ms(30));
        assert_eq!(delay.handshake([0.5; 3]), ms(75));
        let steady = Delay {
            rtt: ms(40),
            jitter: Duration::ZERO,
        };
        assert_eq!(steady.one_way(0.9), ms(20));
        // Jitter as large as the RTT: never negative.
        let wild = Delay {
            rtt: ms(10),
            jitter: ms(10),
        };
        assert_eq!(wild.one_way(0.0), Duration::ZERO);
    }

    #[test]
    fn a_chunk_never_leaves_before_the_one_ahead_of_it() {
        let t0 = Instant::now();
        let mut schedule = Schedule::starting(t0 + ms(30));
        // Before the dial: held until it.
        assert_eq!(schedule.release(t0, ms(10)), t0 + ms(30));
        // A long delay, then a short one that would overtake it: it waits.
        assert_eq!(schedule.release(t0 + ms(31), ms(20)), t0 + ms(51));
        assert_eq!(schedule.release(t0 + ms(32), ms(1)), t0 + ms(51));
        // Later arrivals leave their own delay after they arrived.
        assert_eq!(schedule.release(t0 + ms(60), ms(5)), t0 + ms(65));
    }

    #[test]
    fn release_times_never_decrease_under_random_jitter() {
        let delay = Delay {
            rtt: ms(20),
            jitter: ms(20),
        };
        let mut random = Random::new();
        let t0 = Instant::now();
        let mut schedule = Schedule::starting(t0);
        let mut last = t0;
        for i in 0..10_000u64 {
            let arrived = t0 + Duration::from_micros(i * 100);
            let unit = random.unit();
            assert!((0.0..1.0).contains(&unit));
            let release = schedule.release(arrived, delay.one_way(unit));
            assert!(release >= last && release >= arrived, "chunk {i}");
            assert!(release <= arrived + ms(20) + ms(20), "chunk {i}");
            last = release;
        }
    }

    #[test]
    fn rules_keep_microseconds_in_json() {
        let rules = Rules {
            delay: Delay::parse("50ms", Some("5ms")).unwrap(),
            routes: vec![Route {
                listen: "127.1.2.2:2322".parse().unwrap(),
                dial: "127.1.2.2:2222".parse().unwrap(),
            }],
        };
        let text = serde_json::to_string(&rules).unwrap();
        assert!(text.contains("\"rtt\":50000,\"jitter\":5000"), "{text}");
        assert_eq!(serde_json::from_str::<Rules>(&text).unwrap(), rules);
    }
}
