//! Inventories whose hosts are ssh_config aliases: what the config contributes, what the
//! inventory and the command line override (`proxy_jump` over `ProxyJump` too), and what is
//! refused (ProxyCommand, unsupported `Match`), each error naming its file and line.

use std::path::{Path, PathBuf};

use cluster_upgrade::inventory::{Identity, Inventory, InventoryError, Overrides, SshOverrides};

const CLUSTER: &str = r#"cluster:
  target_version: "1.1.6"
  releases:
    source: url
    url: "https://dist.example.org/{{ version }}/{{ file }}"
    sha256:
      "1.1.6":
        ipfs-cluster-service: 1111111111111111111111111111111111111111111111111111111111111111
        ipfs-cluster-ctl: 2222222222222222222222222222222222222222222222222222222222222222
"#;

/// A folder with an inventory, an ssh_config and a private key (`key`, mode 0600).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(ssh_config: &str) -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key_fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory/id_test");
        let key = dir.path().join("key");
        std::fs::copy(key_fixture, &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = ssh_config.replace("KEY", &key.display().to_string());
        std::fs::write(dir.path().join("ssh_config"), text).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Loads `rest` (after the cluster section) with `-F ssh_config` unless `overrides` says
    /// otherwise.
    fn load_with(&self, rest: &str, overrides: SshOverrides) -> Result<Inventory, InventoryError> {
        let text = format!("{CLUSTER}{rest}");
        let overrides = Overrides {
            vars: Vec::new(),
            ssh: overrides,
        };
        Inventory::from_text_with(&self.path("inventory.yaml"), &text, &overrides)
    }

    fn load(&self, rest: &str) -> Result<Inventory, InventoryError> {
        self.load_with(rest, self.dash_f())
    }

    fn dash_f(&self) -> SshOverrides {
        SshOverrides {
            ssh_config: Some(self.path("ssh_config")),
            ..SshOverrides::default()
        }
    }

    fn error(&self, rest: &str) -> String {
        let error = self.load(rest).expect_err("refused");
        error
            .to_string()
            .replace(&format!("{}/", self.dir.path().display()), "")
    }
}

const PEERS: &str = "Host peer1
  HostName 10.9.0.1
Host peer2
  HostName 10.9.0.2
Host peer*
  HostName 10.9.9.9
  User admin
  Port 2201
  IdentityFile ~/.ssh/does-not-exist-for-this-test
  IdentityFile KEY
Host *
  UserKnownHostsFile KNOWN other_file
  StrictHostKeyChecking accept-new
  ConnectTimeout 25
";

#[test]
fn an_alias_takes_host_name_port_user_and_the_first_readable_key_from_ssh_config() {
    let setup = Setup::new(&PEERS.replace(
        "Host peer1\n  HostName 10.9.0.1",
        "Host peer1\n  HostName 10.9.0.1\n  HostName ignored",
    ));
    let inventory = setup
        .load("hosts:\n  - name: a\n    address: peer1\n  - name: b\n    address: peer2\n    port: 22\n    user: root\n")
        .unwrap();
    let a = inventory.host("a").unwrap();
    assert_eq!(
        (a.address.as_str(), a.port.get(), a.user.as_str()),
        ("10.9.0.1", 2201, "admin")
    );
    assert_eq!(a.identity, Identity::File(setup.path("key")));
    let b = inventory.host("b").unwrap();
    assert_eq!(
        (b.address.as_str(), b.port.get(), b.user.as_str()),
        ("10.9.0.2", 22, "root"),
        "the inventory's values win over the ssh_config's"
    );
    assert_eq!(inventory.ssh.known_hosts, PathBuf::from("KNOWN"));
    assert_eq!(
        inventory.ssh.more_known_hosts,
        vec![PathBuf::from("other_file")],
        "every UserKnownHostsFile is read"
    );
    assert!(inventory.ssh.accept_new_host_keys);
    assert_eq!(inventory.ssh.connect_timeout.get().as_secs(), 25);
}

#[test]
fn the_inventory_and_the_command_line_win_over_run_wide_ssh_config_settings() {
    let setup = Setup::new(PEERS);
    let hosts = "hosts:\n  - name: a\n    address: peer1\n";
    let ssh = "ssh:\n  known_hosts: kh\n  accept_new_host_keys: false\n  connect_timeout: 3s\n";
    let inventory = setup.load(&format!("{ssh}{hosts}")).unwrap();
    assert_eq!(inventory.ssh.known_hosts, setup.path("kh"));
    assert!(!inventory.ssh.accept_new_host_keys);
    assert_eq!(inventory.ssh.connect_timeout.get().as_secs(), 3);
    let overrides = SshOverrides {
        known_hosts: vec![setup.path("cli_kh")],
        ..setup.dash_f()
    };
    let inventory = setup.load_with(hosts, overrides).unwrap();
    assert_eq!(inventory.ssh.known_hosts, setup.path("cli_kh"));
    assert!(inventory.ssh.more_known_hosts.is_empty());

    let ssh = "ssh:\n  known_hosts: [kh, ~/team_kh]\n";
    let inventory = setup.load(&format!("{ssh}{hosts}")).unwrap();
    assert_eq!(inventory.ssh.known_hosts, setup.path("kh"));
    let home = PathBuf::from(std::env::var_os("HOME").unwrap());
    assert_eq!(inventory.ssh.more_known_hosts, vec![home.join("team_kh")]);
    let overrides = SshOverrides {
        known_hosts: vec![setup.path("cli_kh"), setup.path("cli_kh2")],
        ..setup.dash_f()
    };
    let inventory = setup.load_with(hosts, overrides).unwrap();
    assert_eq!(inventory.ssh.known_hosts, setup.path("cli_kh"));
    assert_eq!(inventory.ssh.more_known_hosts, vec![setup.path("cli_kh2")]);

    for (text, shown) in [("[]", ""), ("[kh, \"\"]", "kh, ")] {
        let error = setup
            .load(&format!("ssh:\n  known_hosts: {text}\n{hosts}"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ssh.known_hosts") && error.contains(&format!("`{shown}`")),
            "{error}"
        );
    }
}

#[test]
fn ssh_config_none_and_the_inventory_setting_choose_the_file() {
    let setup = Setup::new(PEERS);
    let hosts = "hosts:\n  - name: a\n    address: peer1\n    user: u\n";
    let ignored = SshOverrides {
        ssh_config: Some(PathBuf::from("none")),
        ..SshOverrides::default()
    };
    let inventory = setup.load_with(hosts, ignored.clone()).unwrap();
    assert_eq!(inventory.host("a").unwrap().address.as_str(), "peer1");
    let from_inventory = format!("ssh:\n  config: ssh_config\n{hosts}");
    let inventory = setup
        .load_with(&from_inventory, SshOverrides::default())
        .unwrap();
    assert_eq!(inventory.host("a").unwrap().address.as_str(), "10.9.0.1");
    let inventory = setup.load_with(&from_inventory, ignored).unwrap();
    assert_eq!(
        inventory.host("a").unwrap().address.as_str(),
        "peer1",
        "the command line's none wins over the inventory's file"
    );
}

/// Each host's chain as `name=user@address:port` hops.
fn chains(inventory: &Inventory) -> Vec<(String, Vec<String>)> {
    inventory
        .hosts
        .iter()
        .map(|host| {
            let hops = host
                .jumps
                .iter()
                .map(|hop| format!("{}={}", hop.name, hop.login()))
                .collect();
            (host.name.to_string(), hops)
        })
        .collect()
}

const JUMPS: &str = "Host peer1
  HostName 10.9.0.1
  User u
  ProxyJump admin@bastion:2222,inner
Host peer2
  HostName 10.9.0.2
  User u
Host bastion
  HostName 10.8.0.1
  IdentityFile KEY
Host inner
  HostName 10.8.0.2
  User ops
  Port 2200
";

#[test]
fn a_host_behind_proxy_jump_goes_through_every_hop_resolved_as_ssh_j_does() {
    let setup = Setup::new(JUMPS);
    let inventory = setup
        .load("hosts:\n  - name: a\n    address: peer1\n  - name: b\n    address: peer2\n")
        .unwrap();
    assert_eq!(
        chains(&inventory),
        [
            (
                "a".to_string(),
                vec![
                    "bastion=admin@10.8.0.1:2222".to_string(),
                    "inner=ops@10.8.0.2:2200".to_string()
                ]
            ),
            ("b".to_string(), vec![])
        ]
    );
    let host = inventory.host("a").unwrap();
    assert_eq!(
        host.jumps[0].identity,
        Identity::File(setup.path("key")),
        "the hop's own IdentityFile"
    );
    assert_eq!(
        host.jumps[1].identity,
        Identity::Agent,
        "a hop the config gives no key uses the host's (here the agent)"
    );
}

#[test]
fn the_inventorys_proxy_jump_wins_over_the_ssh_configs_host_then_groups_then_defaults() {
    let setup = Setup::new(JUMPS);
    let rest = "defaults:
  proxy_jump: bastion
groups:
  - name: far
    proxy_jump: root@10.7.0.1:22,inner
  - name: near
hosts:
  - name: a
    address: peer1
  - name: b
    address: peer2
    groups: [near, far]
  - name: c
    address: peer2
    port: 23
    proxy_jump: none
  - name: d
    address: peer1
    port: 24
    groups: [far]
    proxy_jump: 10.6.0.1:2022
";
    let inventory = setup.load(rest).unwrap();
    // A hop neither the chain nor the config gives a user logs in as the local user, as ssh.
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert_eq!(
        chains(&inventory),
        [
            ("a".to_string(), vec![format!("bastion={me}@10.8.0.1:22")]),
            (
                "b".to_string(),
                vec![
                    "10.7.0.1=root@10.7.0.1:22".to_string(),
                    "inner=ops@10.8.0.2:2200".to_string()
                ]
            ),
            ("c".to_string(), vec![]),
            (
                "d".to_string(),
                vec![format!("10.6.0.1={me}@10.6.0.1:2022")]
            ),
        ]
    );
}

#[test]
fn bad_chains_and_proxy_commands_are_refused_naming_the_hop() {
    let setup = Setup::new(JUMPS);
    let error = setup.error("hosts:\n  - name: a\n    address: peer2\n    proxy_jump: \"u@,x\"\n");
    assert_eq!(
        error,
        "inventory.yaml:13:17: host `a`: proxy_jump: `u@` is not [user@]host[:port]"
    );
    let setup = Setup::new("Host peer1\n  User u\n  ProxyJump none\n  ProxyCommand nc %h %p\n");
    let error = setup.error("hosts:\n  - name: a\n    address: peer1\n");
    assert_eq!(
        error,
        "inventory.yaml:12:14: host `a`: the ssh_config says to connect through `nc %h %p` (ssh_config:4); ProxyCommand is not supported, and connecting directly instead is refused; reach the host directly (`ProxyJump none` for it) or through jump hosts (`ProxyJump`, or `proxy_jump` in the inventory)"
    );
    let setup =
        Setup::new("Host peer1\n  User u\n  ProxyJump hop\nHost hop\n  ProxyCommand nc %h %p\n");
    let error = setup.error("hosts:\n  - name: a\n    address: peer1\n");
    assert_eq!(
        error,
        "ssh_config:3:1: host `a`: proxy_jump: jump host `hop`: the ssh_config says to reach it through ProxyCommand `nc %h %p` (ssh_config:5), which is not supported"
    );
}

#[test]
fn ssh_config_errors_name_file_and_line() {
    let setup = Setup::new("Host *\n  User u\n\nMatch localuser root\n  Port 1\n");
    assert_eq!(
        setup.error("hosts:\n  - name: a\n    address: peer1\n"),
        "ssh_config: ssh_config:4: `Match localuser` is not supported (only host, originalhost, user and all); refusing to guess"
    );
    let setup = Setup::new(
        "Host peer1\n  User u\nHost peer2\n  User u\n  UserKnownHostsFile ~/elsewhere\n",
    );
    let error =
        setup.error("hosts:\n  - name: a\n    address: peer1\n  - name: b\n    address: peer2\n");
    assert!(
        error.starts_with("ssh_config:5: ssh_config gives host `b` UserKnownHostsFile"),
        "{error}"
    );
    let setup = Setup::new("Host peer1\n  User bad:user\n");
    let error = setup.error("hosts:\n  - name: a\n    address: peer1\n");
    assert!(
        error.starts_with("ssh_config:2:1: host `a`: invalid User (ssh_config) `bad:user`"),
        "{error}"
    );
}

#[test]
fn new_host_keys_are_accepted_only_when_every_host_says_so_and_the_longest_timeout_wins() {
    let setup = Setup::new(
        "Host peer1\n  StrictHostKeyChecking accept-new\n  ConnectTimeout 5\nHost peer2\n  StrictHostKeyChecking no\n  ConnectTimeout 40\nHost *\n  User u\n",
    );
    let both = "hosts:\n  - name: a\n    address: peer1\n  - name: b\n    address: peer2\n";
    let inventory = setup.load(both).unwrap();
    assert!(inventory.ssh.accept_new_host_keys);
    assert_eq!(inventory.ssh.connect_timeout.get().as_secs(), 40);
    let mixed = format!("{both}  - name: c\n    address: peer3\n");
    let inventory = setup.load(&mixed).unwrap();
    assert!(
        !inventory.ssh.accept_new_host_keys,
        "one host left strict keeps the run strict"
    );
}
