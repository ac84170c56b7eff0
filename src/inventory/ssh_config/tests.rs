//! The resolver on small configs written to a temporary home (the comparison with the real
//! `ssh -G` is in `tests/it/ssh_config.rs`).

use super::*;

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn context(&self) -> Context {
        Context {
            home: self.dir.path().to_path_buf(),
            local_user: "op".into(),
            env: |_| None,
        }
    }

    fn resolve(&self, text: &str, host: &str) -> Resolved {
        let path = self.write("config", text);
        SshConfig::load(&path, self.context())
            .unwrap()
            .resolve(host)
            .unwrap()
    }
}

#[test]
fn the_first_value_wins_and_identity_files_accumulate() {
    let home = Home::new();
    let found = home.resolve(
        "Host peer1\n  HostName 10.0.0.1\n  IdentityFile ~/.ssh/a\nHost *\n  HostName other\n  Port 2222\n  IdentityFile b_%h\n",
        "peer1",
    );
    assert_eq!(found.hostname, "10.0.0.1");
    assert_eq!(found.port.unwrap().value, 2222);
    let files: Vec<_> = found
        .identity_files
        .iter()
        .map(|f| f.value.as_str())
        .collect();
    assert_eq!(files, ["~/.ssh/a", "b_%h"]);
    let paths: Vec<_> = found
        .identity_paths
        .iter()
        .map(|f| f.value.clone())
        .collect();
    assert_eq!(
        paths,
        [home.dir.path().join(".ssh/a"), PathBuf::from("b_10.0.0.1")]
    );
}

#[test]
fn match_sees_the_host_name_and_user_resolved_so_far() {
    let home = Home::new();
    let text = "Host p*\n  HostName %h.LAN\n  User admin\nMatch host *.lan user admin\n  Port 1\nMatch !originalhost p2\n  Port 2\nMatch all\n  Port 3\n";
    assert_eq!(home.resolve(text, "p1").port.unwrap().value, 1);
    assert_eq!(home.resolve(text, "p1").hostname, "p1.lan");
    assert_eq!(home.resolve(text, "q").port.unwrap().value, 2);
    let found = home.resolve(text, "q");
    assert_eq!(found.port.unwrap().at.line, 7);
}

#[test]
fn an_include_inside_a_block_that_does_not_apply_never_matches() {
    let home = Home::new();
    home.write(".ssh/conf.d/1.conf", "Host *\n  User from-include\n");
    let text = "Host other\n  Include conf.d/*.conf\nHost *\n  User fallback\n";
    assert_eq!(home.resolve(text, "peer").user.unwrap().value, "fallback");
    assert_eq!(
        home.resolve(text, "other").user.unwrap().value,
        "from-include"
    );
}

#[test]
fn proxy_jump_none_and_chains() {
    let home = Home::new();
    let text = "Host direct\n  ProxyJump none\nHost *\n  ProxyJump admin@bastion:2200,inner\n";
    assert!(home.resolve("Host x\n", "direct").jump().is_none());
    let direct = home.resolve(text, "direct");
    assert_eq!(direct.proxy_jump.unwrap().value, Jump::Direct);
    let jumped = home.resolve(text, "peer");
    let Some(Setting {
        value: Jump::Via(chain),
        ..
    }) = jumped.jump()
    else {
        panic!("a chain");
    };
    assert_eq!(chain.to_string(), "admin@bastion:2200,inner");
}

#[test]
fn errors_name_the_file_and_line() {
    let home = Home::new();
    let path = home.write("config", "Host a\n  Port x\n");
    let error = SshConfig::load(&path, home.context()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}:2: bad port number `x`", path.display())
    );
    let path = home.write("config", "\nMatch exec \"true\"\n");
    let error = SshConfig::load(&path, home.context()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:2: `Match exec`", path.display())),
        "{error}"
    );
    let path = home.write("config", "Host a\n  IdentityFile %C\n");
    let config = SshConfig::load(&path, home.context()).unwrap();
    assert!(config.resolve("b").is_ok());
    let error = config.resolve("a").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:2: cannot expand `%C`", path.display())),
        "{error}"
    );
}

#[test]
fn an_included_file_others_can_write_is_refused_as_ssh_refuses_it() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let included = home.write(".ssh/extra.conf", "Host *\n  User x\n");
    let path = home.write("config", "Include extra.conf\n");
    assert!(SshConfig::load(&path, home.context()).is_ok());
    std::fs::set_permissions(&included, std::fs::Permissions::from_mode(0o666)).unwrap();
    let error = SshConfig::load(&path, home.context()).unwrap_err();
    assert!(
        error.to_string().starts_with(&format!(
            "bad owner or permissions on {}",
            included.display()
        )),
        "{error}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    std::fs::set_permissions(&included, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(
        SshConfig::load(&path, home.context()).is_ok(),
        "-F files are not checked"
    );
    assert!(SshConfig::load_default(&path, home.context()).is_err());
}

#[test]
fn canonicalize_hostname_is_refused_where_it_applies() {
    let home = Home::new();
    let path = home.write(
        "config",
        "Host canon\n  CanonicalizeHostname yes\nHost *\n  CanonicalizeHostname no\n",
    );
    let config = SshConfig::load(&path, home.context()).unwrap();
    assert!(config.resolve("other").is_ok());
    let error = config.resolve("canon").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}:2: CanonicalizeHostname (ssh would look the name up and read the config again) is not supported; refusing to guess where ssh would connect", path.display())
    );
}
