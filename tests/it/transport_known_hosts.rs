//! The known_hosts matcher against files written and read by the real OpenSSH tools:
//! `ssh-keygen -H` hashes entries, `ssh-keygen -F` is the reference for which lines match.

use std::fs;
use std::path::Path;
use std::process::Command;

use cluster_upgrade::transport::known_hosts::{
    append, fingerprint, CertMatch, KnownHosts, Line, Match,
};
use russh::keys::ssh_key::{Certificate, PublicKey};

fn keygen(dir: &Path, name: &str, kind: &str) -> PublicKey {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    PublicKey::from_openssh(&fs::read_to_string(path.with_extension("pub")).unwrap()).unwrap()
}

fn openssh(key: &PublicKey) -> String {
    PublicKey::new(key.key_data().clone(), "")
        .to_openssh()
        .unwrap()
}

/// Line numbers `ssh-keygen -F NAME` reports as matching (it prints `# Host NAME found: line N`).
fn ssh_keygen_finds(path: &Path, name: &str) -> Vec<usize> {
    let out = Command::new("ssh-keygen")
        .arg("-F")
        .arg(name)
        .arg("-f")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("# Host {name} found: line ")))
        .map(|n| n.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

fn at(path: &Path, number: usize) -> Line {
    Line {
        path: path.to_path_buf(),
        number,
    }
}

#[test]
fn hashed_file_from_ssh_keygen_matches_the_same_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ecdsa"),
    );
    let path = dir.path().join("known_hosts");
    fs::write(
        &path,
        format!(
            "node1.example.org {}\n[10.1.2.3]:2222 {}\n",
            openssh(&a),
            openssh(&b)
        ),
    )
    .unwrap();
    let hashed = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(hashed.status.success());
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.lines().all(|l| l.starts_with("|1|")), "{text}");

    let kh = KnownHosts::load(&path).unwrap();
    assert_eq!(
        kh.check("node1.example.org", 22, &a),
        Match::Trusted { at: at(&path, 1) }
    );
    assert_eq!(
        kh.check("10.1.2.3", 2222, &b),
        Match::Trusted { at: at(&path, 2) }
    );
    assert_eq!(kh.check("10.1.2.3", 22, &b), Match::Unknown);
    assert_eq!(kh.check("node2.example.org", 22, &a), Match::Unknown);
    assert!(matches!(
        kh.check("node1.example.org", 22, &b),
        Match::Changed { at, .. } if at.number == 1
    ));
}

#[test]
fn the_same_lines_match_as_for_ssh_keygen_find() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k", "ed25519");
    let k = openssh(&key);
    let path = dir.path().join("known_hosts");
    let lines = [
        "# comment".to_string(),
        String::new(),
        format!("node1,node2 {k}"),
        format!("node?.lab,!node9.lab\t{k}"),
        format!("[10.0.0.*]:2222 {k}"),
        format!("*.example.org,!bad.example.org {k}"),
        format!("10.0.0.1 {k}"),
    ];
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let kh = KnownHosts::load(&path).unwrap();
    let cases = [
        ("node1", 22),
        ("node2", 22),
        ("node3", 22),
        ("node5.lab", 22),
        ("node9.lab", 22),
        ("node10.lab", 22),
        ("10.0.0.7", 2222),
        ("10.0.0.7", 22),
        ("10.0.0.1", 22),
        ("10.0.0.1", 2222),
        ("www.example.org", 22),
        ("bad.example.org", 22),
    ];
    for (host, port) in cases {
        let name = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let reference = ssh_keygen_finds(&path, &name);
        let ours = match kh.check(host, port, &key) {
            Match::Trusted { at } => vec![at.number],
            Match::Unknown => vec![],
            other => panic!("{name}: {other:?}"),
        };
        // ssh-keygen lists every matching line; we report the first.
        assert_eq!(
            ours.first(),
            reference.first(),
            "{name}: ssh-keygen found {reference:?}"
        );
    }
}

#[test]
fn appended_entries_are_found_by_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k", "ed25519");
    let path = dir.path().join("known_hosts");
    append(&path, "10.9.8.7", 2200, &key).unwrap();
    append(&path, "node7", 22, &key).unwrap();
    assert_eq!(ssh_keygen_finds(&path, "[10.9.8.7]:2200"), vec![1]);
    assert_eq!(ssh_keygen_finds(&path, "node7"), vec![2]);
}

#[test]
fn fingerprint_matches_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let key = keygen(dir.path(), kind, kind);
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(dir.path().join(format!("{kind}.pub")))
            .output()
            .unwrap();
        let reference = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        assert_eq!(fingerprint(&key), reference, "{kind}");
    }
}

/// Signs `dir/host.pub` with `dir/ca` (`ssh-keygen -s`): a host certificate unless `user`, for
/// `principals`, valid for `validity` (`-V`).
fn sign(dir: &Path, principals: &str, validity: &str, user: bool) -> Certificate {
    let mut command = Command::new("ssh-keygen");
    command.args(["-q", "-s"]).arg(dir.join("ca"));
    if !user {
        command.arg("-h");
    }
    let status = command
        .args(["-I", "test-cert", "-n", principals, "-V", validity])
        .arg(dir.join("host.pub"))
        .status()
        .unwrap();
    assert!(status.success());
    let text = fs::read_to_string(dir.join("host-cert.pub")).unwrap();
    Certificate::from_openssh(text.trim()).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_host_certificate_is_trusted_only_from_its_authority_for_its_principals_while_valid() {
    let dir = tempfile::tempdir().unwrap();
    let ca = keygen(dir.path(), "ca", "ed25519");
    let other_ca = keygen(dir.path(), "other-ca", "ed25519");
    keygen(dir.path(), "host", "ed25519");
    let path = dir.path().join("known_hosts");
    let known = |text: &str| KnownHosts::parse(&path, text);
    let ca_line = format!("@cert-authority 10.0.0.* {}\n", openssh(&ca));
    let trusted = known(&format!("# a comment\n{ca_line}"));
    assert!(trusted.has_authority_for("10.0.0.5", 22));
    assert!(!trusted.has_authority_for("10.1.0.5", 22));

    let cert = sign(dir.path(), "10.0.0.5,peer1", "-5m:+1h", false);
    assert_eq!(
        trusted.check_certificate(("10.0.0.5", 22), &cert, now()),
        CertMatch::Trusted { at: at(&path, 2) }
    );
    let refused = |verdict: CertMatch, part: &str| match verdict {
        CertMatch::Refused { why } => assert!(why.contains(part), "{why}"),
        other => panic!("trusted: {other:?}"),
    };
    // Another host the authority covers, not a principal of the certificate.
    refused(
        trusted.check_certificate(("10.0.0.6", 22), &cert, now()),
        "names the principals [10.0.0.5, peer1], not 10.0.0.6",
    );
    // A host no authority line covers; another authority; a plain key line is no authority.
    refused(
        trusted.check_certificate(("10.1.0.5", 22), &cert, now()),
        "no @cert-authority line covers 10.1.0.5",
    );
    let others = known(&format!("@cert-authority * {}\n", openssh(&other_ca)));
    refused(
        others.check_certificate(("10.0.0.5", 22), &cert, now()),
        "which no @cert-authority line for 10.0.0.5 trusts",
    );
    let plain = known(&format!("10.0.0.5 {}\n", openssh(&ca)));
    refused(
        plain.check_certificate(("10.0.0.5", 22), &cert, now()),
        "no @cert-authority line covers",
    );
    // Expired; a user certificate; a revoked authority.
    let old = sign(dir.path(), "10.0.0.5", "20200101:20200102", false);
    refused(
        trusted.check_certificate(("10.0.0.5", 22), &old, now()),
        "not now",
    );
    let user = sign(dir.path(), "10.0.0.5", "-5m:+1h", true);
    refused(
        trusted.check_certificate(("10.0.0.5", 22), &user, now()),
        "a user certificate",
    );
    let revoked = known(&format!("{ca_line}@revoked * {}\n", openssh(&ca)));
    refused(
        revoked.check_certificate(("10.0.0.5", 22), &cert, now()),
        &format!("is revoked ({}:2)", path.display()),
    );
}
