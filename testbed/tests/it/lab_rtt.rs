//! Issue 19: the delaying relay (`cluster_testbed::delay`) and `cluster-lab up --rtt`, which
//! puts it in front of every host.

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use cluster_testbed::delay::{self, Delay, Route, Rules};

use crate::lab_support::{alive, assert_healthy, ok, Lab};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An echo server on a free loopback port, serving connections until the test ends.
fn echo_server() -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let std::net::SocketAddr::V4(address) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// A relay (in this process) in front of `server`, with `delay`; returns its address.
fn relay_to(server: SocketAddrV4, delay: Delay) -> SocketAddrV4 {
    let rules = Rules {
        delay,
        routes: vec![Route {
            listen: "127.0.0.1:0".parse().unwrap(),
            dial: server,
        }],
    };
    delay::start(&rules).unwrap()[0]
}

fn ping(stream: &mut TcpStream) {
    stream.write_all(b"p").unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"p");
}

#[test]
fn a_ping_pong_over_the_relay_takes_the_round_trip_time() {
    let rtt = ms(20);
    let relay = relay_to(echo_server(), Delay::parse("20ms", None).unwrap());
    let start = Instant::now();
    let mut stream = TcpStream::connect(relay).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(ms(10_000))).unwrap();
    ping(&mut stream);
    // The handshake (the server sees the connection 1.5 RTT later) and the first round trip.
    let first = start.elapsed();
    assert!(first >= rtt * 2, "first ping after {first:?}");

    const N: u32 = 10;
    let start = Instant::now();
    for _ in 0..N {
        ping(&mut stream);
    }
    let took = start.elapsed();
    assert!(took >= rtt * N, "{N} round trips in {took:?}");
    // Functional, not a speed target: a loaded machine may add a lot, but not ten RTTs each.
    assert!(took < rtt * N * 10, "{N} round trips in {took:?}");
    eprintln!("first ping {first:?}, then {N} round trips of {rtt:?} in {took:?}");
}

#[test]
fn chunks_keep_their_order_under_jitter() {
    // One-way delays anywhere between 0 and 10 ms: a later chunk often draws a shorter one.
    let delay = Delay::parse("10ms", Some("10ms")).unwrap();
    let relay = relay_to(echo_server(), delay);
    let stream = TcpStream::connect(relay).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(ms(20_000))).unwrap();
    const COUNT: u32 = 2000;
    let mut sender = stream.try_clone().unwrap();
    let sending = thread::spawn(move || {
        for i in 0..COUNT {
            sender.write_all(&i.to_be_bytes()).unwrap();
            // Apart, so that the relay reads most of them as chunks of their own.
            if i % 4 == 0 {
                thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let mut receiver = stream;
    let start = Instant::now();
    for i in 0..COUNT {
        let mut number = [0u8; 4];
        receiver.read_exact(&mut number).unwrap();
        assert_eq!(u32::from_be_bytes(number), i, "chunk {i} out of order");
    }
    sending.join().unwrap();
    eprintln!("{COUNT} numbered chunks in order in {:?}", start.elapsed());
}

#[test]
fn the_end_of_a_stream_is_delayed_and_passed_on() {
    let relay = relay_to(echo_server(), Delay::parse("20ms", None).unwrap());
    let mut stream = TcpStream::connect(relay).unwrap();
    stream.set_read_timeout(Some(ms(10_000))).unwrap();
    stream.write_all(b"last words").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    // The echo server closes once it read our end; the relay passes its end back after ours.
    stream.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"last words");
}

/// A host as the lab's inventory describes it: (address, port).
fn inventory_hosts(dir: &Path) -> Vec<(String, u16)> {
    let text = std::fs::read_to_string(dir.join("inventory.yaml")).unwrap();
    let mut hosts = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(address) = line.strip_prefix("    address: ") {
            let port = lines.next().unwrap().strip_prefix("    port: ").unwrap();
            hosts.push((address.trim_matches('"').to_string(), port.parse().unwrap()));
        }
    }
    hosts
}

/// `ssh` to `address:port` with the lab's key and known_hosts only, strictly checked.
fn ssh(lab: &Lab, (address, port): &(String, u16), extra: &[&str], command: &str) -> Output {
    let user = lab.lab_json()["user"].as_str().unwrap().to_string();
    Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.path().join("known_hosts").display()
        ))
        .arg("-i")
        .arg(lab.path().join("id_ed25519"))
        .arg("-p")
        .arg(port.to_string())
        .args(extra)
        .arg(format!("{user}@{address}"))
        .arg(command)
        .output()
        .unwrap()
}

#[test]
fn a_lab_with_an_rtt_is_reached_through_the_relay_by_its_inventory() {
    let rtt = ms(40);
    let lab = Lab::up(2, "0.10.1", 0, &["--rtt", "40ms"]);
    assert!(lab.up_stdout.contains("delaying relay (RTT 40ms) on port"));
    let state = lab.lab_json();
    let ssh_port = state["ports"]["ssh"].as_u64().unwrap() as u16;
    let relay_port = state["latency"]["port"].as_u64().unwrap() as u16;
    let relay_pid = state["latency"]["relay_pid"].as_u64().unwrap() as u32;
    assert_eq!(state["latency"]["delay"]["rtt"], 40_000);
    assert_ne!(relay_port, ssh_port);
    assert!(alive(relay_pid));

    // The inventory names the relay, known_hosts has each key under both ports.
    let hosts = inventory_hosts(lab.path());
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts.iter().all(|(_, port)| *port == relay_port),
        "{hosts:?}"
    );
    let known_hosts = std::fs::read_to_string(lab.path().join("known_hosts")).unwrap();
    assert_eq!(known_hosts.lines().count(), 4, "{known_hosts}");
    for (address, _) in &hosts {
        for port in [ssh_port, relay_port] {
            assert!(
                known_hosts.contains(&format!("[{address}]:{port} ssh-ed25519 ")),
                "{known_hosts}"
            );
        }
    }

    // A fresh connection through the relay: the handshake, key exchange, authentication and
    // the command's channel are several round trips.
    let host = &hosts[0];
    let start = Instant::now();
    let out = ssh(&lab, host, &[], "echo through");
    let fresh = start.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "through");
    assert!(
        fresh >= rtt * 5,
        "a fresh ssh through the relay took {fresh:?}"
    );

    // Over an open connection, one trivial command still takes a round trip at least.
    let socket = lab.path().join("hosts/rtt-master");
    let socket_opt = format!("ControlPath={}", socket.display());
    let master = ssh(
        &lab,
        host,
        &[
            "-f",
            "-N",
            "-M",
            "-o",
            &socket_opt,
            "-o",
            "ControlPersist=yes",
        ],
        "",
    );
    assert!(master.status.success(), "{master:?}");
    let over_master = ["-o", "ControlMaster=no", "-o", &socket_opt];
    let mut round_trips = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let out = ssh(&lab, host, &over_master, "true");
        round_trips.push(start.elapsed());
        assert!(out.status.success(), "{out:?}");
    }
    let _ = ssh(&lab, host, &["-O", "exit", "-o", &socket_opt], "");
    assert!(
        round_trips.iter().all(|t| *t >= rtt),
        "commands over an open connection: {round_trips:?}"
    );
    eprintln!("fresh ssh {fresh:?}; over an open connection {round_trips:?} (RTT {rtt:?})");

    // status reads the hosts directly and checks the path through the relay.
    let status = lab.status();
    assert_healthy(&status, 2, "0.10.1", 0);
    assert!(status.iter().all(|s| s["relay"] == true), "{status:#?}");
    let text = String::from_utf8(ok(lab.run("status", &[])).stdout).unwrap();
    assert!(text.lines().all(|l| l.contains("relay ok")), "{text}");

    let before = lab.recorded_pids();
    let down = ok(lab.run("down", &[]));
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(said.contains("and the delaying relay"), "{said}");
    assert!(!alive(relay_pid), "the relay survived down");
    for pid in before {
        assert!(!alive(pid), "pid {pid} survived down");
    }
    assert_eq!(
        lab.lab_json()["latency"]["relay_pid"],
        serde_json::Value::Null
    );
    // A second down finds nothing, and a status says the relay is gone.
    down_and_assert_clean_after_down(&lab);
}

/// After `down`: nothing of the lab is left, and `down` again stops nothing.
fn down_and_assert_clean_after_down(lab: &Lab) {
    let again = String::from_utf8(ok(lab.run("down", &[])).stdout).unwrap();
    assert!(
        again.contains("stopped 0 peer(s), 0 sshd(s), 0 other process(es)\n"),
        "{again}"
    );
    let left = crate::lab_support::processes_mentioning(lab.path());
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

#[test]
fn rtt_is_refused_for_labs_behind_bastions_and_jitter_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    let base = ["up", "--dir", dir, "--peers", "1", "--version", "0.10.1"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        crate::lab_support::cluster_lab(&args)
    };
    let bastion = run(&["--rtt", "20ms", "--bastion"]);
    assert!(!bastion.status.success());
    assert!(String::from_utf8_lossy(&bastion.stderr).contains("cannot be used with"));
    let jitter = run(&["--rtt", "20ms", "--jitter", "30ms"]);
    assert!(!jitter.status.success());
    let stderr = String::from_utf8_lossy(&jitter.stderr);
    assert!(
        stderr.contains("--jitter 30ms exceeds --rtt 20ms"),
        "{stderr}"
    );
    let unit = run(&["--rtt", "20"]);
    assert!(String::from_utf8_lossy(&unit.stderr).contains("not a duration"));
    // Nothing was started.
    assert!(!Path::new(dir).join("lab.json").exists());
}
