//! Hosts reachable only through jump hosts (issue 15, item 2): `cluster-lab up --bastion` puts
//! the lab's sshds behind a bastion (or two), and cluster-upgrade goes through them, every
//! hop's host key checked, one jump connection per run.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::support::{snapshot_filters, text, Lab, Test};

/// Bastion `index` of the lab (`lab.json`): its address and its sshd's PID.
fn bastion(lab: &Lab, index: usize) -> (String, u32) {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.path().join("lab.json")).unwrap()).unwrap();
    let record = &state["bastions"][index];
    (
        record["address"].as_str().unwrap().to_string(),
        u32::try_from(record["sshd_pid"].as_u64().unwrap()).unwrap(),
    )
}

fn bastion_logins(lab: &Lab, name: &str) -> usize {
    std::fs::read_to_string(lab.path().join("bastions").join(name).join("sshd/sshd.log"))
        .unwrap_or_default()
        .matches("Accepted publickey")
        .count()
}

fn host_logins(lab: &Lab, host: &str) -> usize {
    lab.sshd_log(host).matches("Accepted publickey").count()
}

/// The lab's SSH port (every host and bastion uses it).
fn ssh_port(lab: &Lab) -> u16 {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.path().join("lab.json")).unwrap()).unwrap();
    u16::try_from(state["ports"]["ssh"].as_u64().unwrap()).unwrap()
}

fn host_address(lab: &Lab, index: usize) -> String {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.path().join("lab.json")).unwrap()).unwrap();
    state["hosts"][index]["address"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The lab's inventory with `proxy_jump` replaced by `line` (`defaults:` level), written
/// beside it as `name`.
fn inventory_with(lab: &Lab, name: &str, line: &str) -> PathBuf {
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let text: String = text
        .lines()
        .map(|l| match l.trim_start().starts_with("proxy_jump:") {
            true => line.to_string(),
            false => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = lab.path().join(name);
    std::fs::write(&path, text + "\n").unwrap();
    path
}

/// An ssh_config naming the hosts `peer1`..`peerN` and the bastion `jump`, and an inventory
/// that names the hosts by those aliases only (no address, port, user, key or chain of its own).
fn aliases(lab: &Lab, peers: usize) -> PathBuf {
    let key = lab.path().join("id_ed25519");
    aliases_as(lab, peers, "root", &key)
}

/// As [`aliases`], with the hosts logged into as `login` (the bastion still as root) and with
/// `key` for every login; the inventory keeps its `become`.
pub(crate) fn aliases_as(lab: &Lab, peers: usize, login: &str, key: &std::path::Path) -> PathBuf {
    let (bastion, _) = bastion(lab, 0);
    let port = ssh_port(lab);
    let dir = lab.path().display().to_string();
    let key = key.display();
    let mut config = String::new();
    for i in 0..peers {
        config.push_str(&format!(
            "Host peer{}\n  HostName {}\n",
            i + 1,
            host_address(lab, i)
        ));
    }
    config.push_str(&format!(
        "Host peer*\n  ProxyJump jump\n  User {login}\nHost jump\n  HostName {bastion}\n\
         Host *\n  Port {port}\n  User root\n  IdentityFile {key}\n  \
         UserKnownHostsFile {dir}/known_hosts\n  StrictHostKeyChecking yes\n"
    ));
    std::fs::write(lab.path().join("aliases.config"), config).unwrap();

    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    let mut out = Vec::new();
    let mut in_defaults = false;
    let mut host = 0;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !line.starts_with(' ') {
            in_defaults = line.starts_with("defaults:");
        }
        if in_defaults && line.starts_with(' ') && !line.trim_start().starts_with("become:") {
            continue;
        }
        if line.starts_with("    ")
            && ["port:", "user:", "identity_file:"]
                .iter()
                .any(|key| trimmed.starts_with(key))
            && !line.starts_with("      ")
        {
            continue;
        }
        if trimmed.starts_with("address:") {
            host += 1;
            out.push(format!("    address: peer{host}"));
            continue;
        }
        if trimmed.starts_with("config: none") {
            out.push("  config: aliases.config".to_string());
            continue;
        }
        out.push(line.to_string());
    }
    let path = lab.path().join("aliases.yaml");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

#[test]
fn hosts_behind_a_bastion_take_no_direct_login_but_one_through_it() {
    let lab = Lab::up_with(3, "0.9.0", 4, &["--bastion"]);
    let (bastion, _) = bastion(&lab, 0);
    // Direct: the hosts' sshd refuse every login that does not come from the bastion.
    let direct = inventory_with(&lab, "direct.yaml", "  proxy_jump: none");
    let out = Test::new()
        .args(["plan".as_ref(), direct.as_os_str()])
        .status(1)
        .run();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("h1 refused login as root"), "{stderr}");
    assert!(
        lab.sshd_log("h1")
            .contains("not allowed because not listed in AllowUsers"),
        "{}",
        lab.sshd_log("h1")
    );
    // Through the bastion: the same hosts, the same key.
    let before = host_logins(&lab, "h1");
    Test::new()
        .args(["plan".as_ref(), lab.inventory().as_os_str()])
        .run();
    assert_eq!(host_logins(&lab, "h1"), before + 1);
    assert!(
        lab.sshd_log("h1")
            .contains(&format!("Accepted publickey for root from {bastion} ")),
        "{}",
        lab.sshd_log("h1")
    );
}

#[test]
fn standard_upgrade_through_a_bastion_with_hosts_named_by_ssh_config_aliases_keeps_every_pin() {
    let lab = Lab::up_with(3, "0.9.0", 30, &["--bastion"]);
    let inventory = aliases(&lab, 3);
    let bastion_before = bastion_logins(&lab, "bastion");
    let hosts_before: Vec<usize> = (1..=3)
        .map(|i| host_logins(&lab, &format!("h{i}")))
        .collect();
    let out = Test::new()
        .args(["apply".as_ref(), inventory.as_os_str(), "--yes".as_ref()])
        .run();
    // One jump connection for the run, shared by the three hosts behind it.
    assert_eq!(bastion_logins(&lab, "bastion"), bastion_before + 1);
    for (i, before) in hosts_before.into_iter().enumerate() {
        assert_eq!(host_logins(&lab, &format!("h{}", i + 1)), before + 1);
    }
    let stdout = text(&out.stdout);
    assert!(stdout.contains("finished"), "{stdout}");
    lab.assert_cluster("0.10.1", 3, 30);
    // The plan records how each host was reached.
    let run = lab.run_dirs().pop().expect("the run's folder");
    let plan = std::fs::read_to_string(run.join("plan.json")).unwrap();
    let (address, _) = bastion(&lab, 0);
    assert!(
        plan.contains(&format!(
            "\"jumps\":[{{\"name\":\"jump\",\"address\":\"{address}\""
        )),
        "{plan}"
    );
}

#[test]
fn standard_upgrade_through_a_chain_of_two_bastions_from_the_inventory() {
    let lab = Lab::up_with(3, "0.9.0", 20, &["--bastions", "2"]);
    // The second bastion is not reachable from here, only from the first.
    let (second, _) = bastion(&lab, 1);
    let address: SocketAddr = format!("{second}:{}", ssh_port(&lab)).parse().unwrap();
    assert!(TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err());

    let plan = Test::new()
        .args(["plan".as_ref(), lab.inventory().as_os_str()])
        .run();
    let view = text(&plan.stdout);
    let logins: String = view
        .lines()
        .skip_while(|line| *line != "Logins:")
        .take_while(|line| !line.starts_with("Procedure:"))
        .map(|line| format!("{line}\n"))
        .collect();
    snapshot_filters().bind(|| insta::assert_snapshot!("plan_view_logins_two_bastions", logins));

    Test::new()
        .args([
            "apply".as_ref(),
            lab.inventory().as_os_str(),
            "--yes".as_ref(),
        ])
        .run();
    lab.assert_cluster("0.10.1", 3, 20);
}

#[test]
fn an_unknown_bastion_key_is_refused_naming_the_hop_and_nothing_changes() {
    let lab = Lab::up_with(3, "0.9.0", 5, &["--bastion"]);
    let (bastion, _) = bastion(&lab, 0);
    let known_hosts = lab.path().join("known_hosts");
    let original = std::fs::read_to_string(&known_hosts).unwrap();
    let kept: String = original
        .lines()
        .filter(|line| !line.starts_with(&format!("[{bastion}]")))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&known_hosts, kept).unwrap();
    let port = ssh_port(&lab);
    let before = bastion_logins(&lab, "bastion");
    let hosts_before = host_logins(&lab, "h1");
    Test::new()
        .args([
            "apply".as_ref(),
            lab.inventory().as_os_str(),
            "--yes".as_ref(),
        ])
        .status(1)
        .stderr_contains(&format!(
            "cannot reach h1 through {bastion} ({bastion}:{port}): host key of {bastion} is unknown"
        ))
        .run();
    // Refused before logging in anywhere.
    assert_eq!(bastion_logins(&lab, "bastion"), before);
    assert_eq!(host_logins(&lab, "h1"), hosts_before);
    // The lab's own ssh needs the key back to check that nothing changed.
    std::fs::write(&known_hosts, original).unwrap();
    lab.assert_cluster("0.9.0", 3, 5);
}

#[test]
fn a_dead_bastion_is_named_and_nothing_changes() {
    let lab = Lab::up_with(3, "0.9.0", 5, &["--bastion"]);
    let (bastion, pid) = bastion(&lab, 0);
    let killed = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let port = ssh_port(&lab);
    let out = Test::new()
        .args([
            "apply".as_ref(),
            lab.inventory().as_os_str(),
            "--yes".as_ref(),
        ])
        .status(1)
        .stderr_contains(&format!(
            "cannot reach h1 through {bastion} ({bastion}:{port})"
        ))
        .run();
    assert!(
        !lab.journal_text().contains("step_started"),
        "{}",
        text(&out.stderr)
    );
    // Nothing changed: the hosts are checked from here, as the bastion is gone.
    for i in 0..3 {
        let address: SocketAddr = format!("{}:{port}", host_address(&lab, i)).parse().unwrap();
        assert!(TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok());
    }
    for host in ["h1", "h2", "h3"] {
        let out = lab.ctl(host, &["--enc", "json", "pin", "ls"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let pins: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<serde_json::Value>()
            .flat_map(|value| match value.expect("JSON pins") {
                serde_json::Value::Array(pins) => pins,
                pin => vec![pin],
            })
            .collect();
        assert_eq!(pins.len(), 5, "{host}: {}", text(&out.stdout));
        let version = std::process::Command::new(lab.home(host).join("bin/ipfs-cluster-service"))
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            text(&version.stdout).contains("0.9.0"),
            "{host}: {}",
            text(&version.stdout)
        );
    }
}
