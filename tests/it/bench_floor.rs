//! Row (f) of `bench/run`: `examples/transport_floor` runs the benchmark's commands through the
//! SSH transport alone, one connection per host, and fails when a host cannot be reached.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::{cluster_upgrade, text, Lab};
use cluster_upgrade::inventory::{Identity, Inventory};

/// Built by `cargo test` beside the binaries (examples are compiled with the tests).
fn transport_floor() -> PathBuf {
    cluster_upgrade()
        .parent()
        .unwrap()
        .join("examples/transport_floor")
}

fn floor(inventory: &Inventory, steps: usize, extra: &[&str]) -> Output {
    let Identity::File(key) = &inventory.hosts[0].identity else {
        panic!("the lab's inventory names a key file");
    };
    let mut command = Command::new(transport_floor());
    command
        .arg(&inventory.ssh.known_hosts)
        .arg(key)
        .arg(inventory.hosts[0].user.to_string())
        .arg(steps.to_string());
    for host in &inventory.hosts {
        command.arg(format!("{}:{}", host.address, host.port.get()));
    }
    command.args(extra).output().unwrap()
}

#[test]
fn the_floor_runs_the_steps_over_one_login_per_host_and_reports_a_host_it_cannot_reach() {
    let lab = Lab::up(2, "0.9.0", 0);
    let inventory = Inventory::load(&lab.inventory(), &[]).unwrap();
    let logins =
        |lab: &Lab| ["h1", "h2"].map(|h| lab.sshd_log(h).matches("Accepted publickey").count());
    let before = logins(&lab);
    let out = floor(&inventory, 3, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(logins(&lab), before.map(|n| n + 1), "one login per host");

    // Nothing listens on port 1 of loopback.
    let out = floor(&inventory, 3, &["127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("transport_floor: "),
        "{}",
        text(&out.stderr)
    );
}
