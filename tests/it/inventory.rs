//! Inventory loading, as the operator sees it: every error names `file:line:column`, and a valid
//! inventory yields hosts with variables layered global < group < host < command line.

use std::path::{Path, PathBuf};

use cluster_upgrade::inventory::{Identity, Inventory, InventoryError, ReleaseFile, ReleaseSource};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inventory")
        .join(name)
}

fn load(name: &str) -> Result<Inventory, InventoryError> {
    private_key_fixture();
    Inventory::load(&fixture(name), &[])
}

use crate::support::private_key_fixture;

fn strip_folder(message: &str) -> String {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory");
    message.replace(&format!("{}/", folder.display()), "")
}

/// Loads a fixture that must fail and returns its message, with the fixture folder cut off so
/// positions read `name.yaml:L:C`.
fn error_of(name: &str) -> String {
    let error = load(name).expect_err("the fixture is invalid");
    strip_folder(&error.to_string())
}

#[test]
fn a_valid_inventory_loads_with_defaults_and_resolved_paths() {
    let inventory = load("valid.yaml").unwrap();
    assert_eq!(inventory.cluster.name, "lab");
    assert_eq!(inventory.cluster.target_version.to_string(), "0.10.1");
    assert_eq!(inventory.ssh.known_hosts, fixture("known_hosts"));
    assert!(inventory.ssh.accept_new_host_keys);
    assert_eq!(inventory.ssh.connect_timeout.get().as_secs(), 5);
    assert_eq!(inventory.ssh.command_timeout.get().as_secs(), 120);
    assert_eq!(
        inventory.ssh.max_concurrency, None,
        "0 means every host at once"
    );

    let names: Vec<_> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["h1", "h2", "h3"]);
    let h1 = inventory.host("h1").unwrap();
    assert_eq!(
        (h1.user.as_str(), h1.port.get()),
        ("root", 2222),
        "defaults apply"
    );
    assert_eq!(h1.identity, Identity::File(fixture("id_test")));
    let h2 = inventory.host("h2").unwrap();
    assert_eq!(
        (h2.user.as_str(), h2.port.get()),
        ("ipfs", 2200),
        "host settings win over defaults"
    );
    assert_eq!(
        inventory.host("h3").unwrap().address.as_str(),
        "peer3.example.org"
    );
}

#[test]
fn strict_booleans_keep_no_as_a_string() {
    let inventory = load("valid.yaml").unwrap();
    assert_eq!(
        inventory.host("h1").unwrap().vars.get("flag"),
        Some(&json!("NO"))
    );
}

#[test]
fn vars_layer_global_then_groups_in_host_order_then_host_then_command_line() {
    let inventory = load("valid.yaml").unwrap();
    // h1 lists [eu, canary]: canary comes last and wins.
    assert_eq!(
        inventory.host("h1").unwrap().vars.str("layer"),
        Some("canary")
    );
    // h2 lists [canary, eu]: eu wins.
    assert_eq!(inventory.host("h2").unwrap().vars.str("layer"), Some("eu"));
    assert_eq!(
        inventory.host("h2").unwrap().vars.str("api"),
        Some("/ip4/127.0.0.3/tcp/9094")
    );
    assert_eq!(inventory.host("h2").unwrap().vars.str("region"), Some("eu"));
    // h3 is in no group; its own value wins over the global one.
    assert_eq!(
        inventory.host("h3").unwrap().vars.str("layer"),
        Some("host")
    );
    assert_eq!(
        inventory.host("h3").unwrap().vars.str("bin_dir"),
        Some("/usr/local/bin")
    );

    let overrides = [("layer".to_string(), "cli".to_string())];
    let inventory = Inventory::load(&fixture("valid.yaml"), &overrides).unwrap();
    assert!(
        inventory
            .hosts
            .iter()
            .all(|h| h.vars.str("layer") == Some("cli")),
        "the command line wins everywhere"
    );
}

#[test]
fn api_auth_names_where_the_credentials_are_on_the_host_and_never_holds_them() {
    let error = error_of("api_auth_secret.yaml");
    assert!(
        error.starts_with("api_auth_secret.yaml:22:7: host `h2`: invalid vars.api_auth `…`: unknown key(s) password, user"),
        "{error}"
    );
    assert!(
        error.contains("put `user:password` in a file on the host"),
        "{error}"
    );
    assert!(
        !error.contains("hunter2"),
        "the secret is not repeated: {error}"
    );

    let valid = Inventory::load(&fixture("valid.yaml"), &[]).unwrap();
    let auth = cluster_upgrade::inventory::ApiAuth::of(&valid.hosts[0].vars).unwrap();
    assert_eq!(
        auth,
        cluster_upgrade::inventory::ApiAuth::plain(),
        "none: plain HTTP"
    );
    let overridden = Inventory::load(
        &fixture("valid.yaml"),
        &[("api_auth".to_string(), "/f".to_string())],
    )
    .unwrap_err()
    .to_string();
    assert!(
        overridden.contains("--var api_auth: `api_auth` is a map"),
        "{overridden}"
    );
}

#[test]
fn command_line_overrides_must_be_identifiers_and_not_reserved() {
    let bad = [
        ("bin-dir".to_string(), "x".to_string()),
        ("anchor".to_string(), "x".to_string()),
    ];
    let error = Inventory::load(&fixture("valid.yaml"), &bad).unwrap_err();
    assert_eq!(error.errors().len(), 2);
    assert!(error.to_string().contains("--var bin-dir"), "{error}");
    assert!(
        error.to_string().contains("--var anchor: reserved"),
        "{error}"
    );
}

#[test]
fn local_release_source_reads_the_target_sums() {
    let inventory = load("valid.yaml").unwrap();
    let ReleaseSource::Local { path, sums } = &inventory.cluster.releases else {
        panic!("local source")
    };
    assert_eq!(path, &fixture("releases"));
    assert_eq!(
        sums.service.as_str(),
        "6051bac99eae9deec9f32c121cd9a06a2cb1559ccf6ad49cf661c39cef1c5e4d"
    );
    let ctl = inventory.cluster.target_file(ReleaseFile::Ctl);
    assert_eq!(
        ctl.local_path,
        Some(fixture("releases/0.10.1/ipfs-cluster-ctl"))
    );
    assert_eq!(
        ctl.sha256.as_str(),
        "af1c101bef35710fa8dbe1cd777532a72d624eab5b9073cfb2ced8099d104224"
    );
}

#[test]
fn unknown_key_names_its_position() {
    let message = error_of("unknown_key.yaml");
    assert!(
        message.starts_with("unknown_key.yaml:8:5: unknown field `adress`, expected one of"),
        "{message}"
    );
}

#[test]
fn wrong_type_names_its_position() {
    let message = error_of("wrong_type.yaml");
    assert!(message.starts_with("wrong_type.yaml:10:11: "), "{message}");
}

#[test]
fn duplicate_host_names_both_positions() {
    let message = error_of("duplicate_host.yaml");
    assert_eq!(
        message,
        "duplicate_host.yaml:13:11: duplicate host name `h1` (first defined at duplicate_host.yaml:9:11)"
    );
}

#[test]
fn missing_target_version_names_its_section() {
    let message = error_of("missing_field.yaml");
    assert!(
        message.contains("missing field `target_version`"),
        "{message}"
    );
    assert!(message.starts_with("missing_field.yaml:2:3: "), "{message}");
}

#[test]
fn missing_address_names_the_host_entry() {
    let message = error_of("missing_address.yaml");
    assert_eq!(message, "missing_address.yaml:8:5: missing field `address`");
}

#[test]
fn unreadable_identity_file_names_host_and_position() {
    let message = error_of("missing_identity.yaml");
    assert!(
        message.starts_with("missing_identity.yaml:10:20: host `h1`: cannot read identity file "),
        "{message}"
    );
    assert!(message.contains("keys/does-not-exist"), "{message}");
}

#[test]
fn an_error_that_many_hosts_share_is_said_once_with_the_other_hosts_named() {
    let message = error_of("missing_default_identity.yaml");
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 2, "{message}");
    assert!(
        lines[0].starts_with(
            "missing_default_identity.yaml:10:18: host `h1`: cannot read identity file "
        ) && lines[0].contains("keys/not-here")
            && lines[0].ends_with("(os error 2); the same for h2, h4, h5, h6"),
        "{message}"
    );
    assert!(
        lines[1].starts_with(
            "missing_default_identity.yaml:14:52: host `h3`: cannot read identity file "
        ) && lines[1].contains("keys/nor-here"),
        "{message}"
    );
}

#[test]
fn unknown_group_names_host_group_and_position() {
    let message = error_of("unknown_group.yaml");
    assert_eq!(
        message,
        "unknown_group.yaml:13:18: host `h1`: unknown group `us` (defined groups: eu)"
    );
}

#[test]
fn several_problems_are_reported_together() {
    let error = load("several.yaml").unwrap_err();
    let lines: Vec<String> = error
        .errors()
        .iter()
        .map(|e| strip_folder(&e.to_string()))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].starts_with("several.yaml:2:19: invalid cluster.target_version `0.10`"),
        "{}",
        lines[0]
    );
    assert!(lines.iter().any(
        |l| l.starts_with("several.yaml:8:14: host `h1`: invalid hosts[].address `999.0.0.1`")
    ));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("several.yaml:10:11: host `h1`: invalid port `0`")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("several.yaml:11:11: invalid hosts[].name `h 2`")));
}

#[test]
fn url_source_needs_a_sha256_for_the_target() {
    let message = error_of("url_without_sha.yaml");
    assert!(
        message.contains("no sha256 entry for target version 1.1.6"),
        "{message}"
    );
    assert!(message.starts_with("url_without_sha.yaml:7:"), "{message}");
}

#[test]
fn local_source_needs_the_target_files() {
    let message = error_of("local_missing_version.yaml");
    assert!(
        message.starts_with("local_missing_version.yaml:5:11: local release folder "),
        "{message}"
    );
    assert!(
        message.contains("1.1.6/ lacks ipfs-cluster-service, ipfs-cluster-ctl, SHA256SUMS"),
        "{message}"
    );
}

#[test]
fn yaml_syntax_errors_name_their_position() {
    let message = error_of("syntax.yaml");
    assert!(message.starts_with("syntax.yaml:"), "{message}");
    let position = message.split(':').nth(1).unwrap();
    assert!(position.parse::<u32>().unwrap() >= 3, "{message}");
}

#[test]
fn reserved_variable_names_are_refused() {
    let message = error_of("reserved_var.yaml");
    assert!(
        message.contains("host `h1`: invalid variable name `host`: reserved"),
        "{message}"
    );
}

#[test]
fn the_shipped_example_validates() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml");
    let inventory = Inventory::load(&example, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(inventory.hosts.len(), 3);
    assert_eq!(inventory.cluster.releases.kind(), "url");
    assert!(inventory
        .hosts
        .iter()
        .all(|h| h.identity == Identity::Agent));
    assert!(inventory
        .hosts
        .iter()
        .all(|h| h.vars.str("service_manager") == Some("systemd")));
}

#[test]
fn become_layers_host_over_its_last_group_over_defaults_and_none_turns_it_off() {
    let inventory = load("become.yaml").expect("valid");
    let become_users: Vec<(String, Option<String>)> = inventory
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                h.become_user.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    assert_eq!(
        become_users,
        vec![
            ("h1".into(), Some("root".into())),
            ("h2".into(), None),
            ("h3".into(), Some("ipfs".into())),
            ("h4".into(), Some("root".into())),
        ]
    );
}

#[test]
fn an_unsupported_become_method_or_user_is_refused_with_its_position() {
    let message = error_of("become_su.yaml");
    assert!(
        message.contains("become_su.yaml:16:") && message.contains("invalid become.method `su`"),
        "{message}"
    );
    assert!(message.contains("expected `sudo` or `none`"), "{message}");
    assert!(
        message.contains("become_su.yaml:19:")
            && message.contains("invalid become.user `not a user`"),
        "{message}"
    );
}
