//! Inventories whose hosts are ssh_config aliases: what the config contributes, what the
//! inventory and the command line override, and what is refused (ProxyJump, unsupported
//! `Match`), each error naming its file and line.

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
        known_hosts: Some(setup.path("cli_kh")),
        ..setup.dash_f()
    };
    let inventory = setup.load_with(hosts, overrides).unwrap();
    assert_eq!(inventory.ssh.known_hosts, setup.path("cli_kh"));
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

#[test]
fn a_host_behind_proxy_jump_is_refused_never_connected_to_directly() {
    let setup = Setup::new("Host peer1\n  User u\n  ProxyJump admin@bastion:2222,inner\n");
    let error = setup.error("hosts:\n  - name: a\n    address: peer1\n");
    assert_eq!(
        error,
        "inventory.yaml:12:14: host `a`: the ssh_config says to connect through `admin@bastion:2222,inner` (ssh_config:3); ProxyJump is not supported yet, and connecting directly instead is refused; reach the host directly (`ProxyJump none` for it) or wait for ProxyJump support"
    );
    let setup = Setup::new("Host peer1\n  User u\n  ProxyJump none\n  ProxyCommand nc %h %p\n");
    let error = setup.error("hosts:\n  - name: a\n    address: peer1\n");
    assert!(
        error.contains("(ssh_config:4); ProxyCommand is not supported yet"),
        "{error}"
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
