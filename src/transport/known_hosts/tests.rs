//! Unit tests of the matcher on hand-written lines; files written by the real OpenSSH tools
//! are covered in tests/transport_known_hosts.rs.

use super::*;
use std::process::Command;

fn keygen(dir: &Path, name: &str, kind: &str) -> PublicKey {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "test", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    PublicKey::from_openssh(&fs::read_to_string(path.with_extension("pub")).unwrap()).unwrap()
}

fn line(hosts: &str, key: &PublicKey) -> String {
    format!(
        "{hosts} {}",
        PublicKey::new(key.key_data().clone(), "")
            .to_openssh()
            .unwrap()
    )
}

struct Keys {
    _dir: tempfile::TempDir,
    a: PublicKey,
    b: PublicKey,
    ecdsa: PublicKey,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let b = keygen(dir.path(), "b", "ed25519");
    let ecdsa = keygen(dir.path(), "c", "ecdsa");
    Keys {
        _dir: dir,
        a,
        b,
        ecdsa,
    }
}

fn at(number: usize) -> Line {
    Line {
        path: "/test/known_hosts".into(),
        number,
    }
}

fn parse(text: &str) -> KnownHosts {
    KnownHosts::parse(Path::new("/test/known_hosts"), text)
}

#[test]
fn plain_name_port_22_and_bracketed_port() {
    let k = keys();
    let kh = parse(&format!(
        "{}\n{}\n",
        line("node1", &k.a),
        line("[10.0.0.1]:2222", &k.b)
    ));
    assert_eq!(kh.check("node1", 22, &k.a), Match::Trusted { at: at(1) });
    assert_eq!(kh.check("NODE1", 22, &k.a), Match::Trusted { at: at(1) });
    assert_eq!(kh.check("node1", 2200, &k.a), Match::Unknown);
    assert_eq!(
        kh.check("10.0.0.1", 2222, &k.b),
        Match::Trusted { at: at(2) }
    );
    assert_eq!(kh.check("10.0.0.1", 22, &k.b), Match::Unknown);
}

#[test]
fn comments_blank_lines_tabs_and_comma_lists() {
    let k = keys();
    let text = format!(
        "# a comment\n\n   \n{}\n\tnode2,10.0.0.2\t{}\n",
        "node9 garbage-type AAAA",
        line("", &k.a).trim().replace(' ', "\t")
    );
    let kh = parse(&text);
    assert_eq!(kh.check("10.0.0.2", 22, &k.a), Match::Trusted { at: at(5) });
    assert_eq!(kh.check("node2", 22, &k.a), Match::Trusted { at: at(5) });
    assert_eq!(kh.check("node9", 22, &k.a), Match::Unknown);
}

#[test]
fn wildcards_and_negation() {
    let k = keys();
    let kh = parse(&format!(
        "{}\n",
        line("[10.0.0.*]:2222,!10.0.0.13,![10.0.0.13]:2222", &k.a)
    ));
    assert_eq!(
        kh.check("10.0.0.7", 2222, &k.a),
        Match::Trusted { at: at(1) }
    );
    assert_eq!(kh.check("10.0.0.13", 2222, &k.a), Match::Unknown);
    assert_eq!(kh.check("10.0.1.7", 2222, &k.a), Match::Unknown);
    let kh = parse(&format!("{}\n", line("node?", &k.a)));
    assert_eq!(kh.check("node7", 22, &k.a), Match::Trusted { at: at(1) });
    assert_eq!(kh.check("node17", 22, &k.a), Match::Unknown);
}

#[test]
fn revoked_wins_over_a_trusting_line() {
    let k = keys();
    let kh = parse(&format!(
        "{}\n@revoked {}\n",
        line("node1", &k.a),
        line("*", &k.a)
    ));
    assert_eq!(kh.check("node1", 22, &k.a), Match::Revoked { at: at(2) });
    assert!(kh.key_types("node1", 22).is_empty());
    // Revocation does not depend on the line's host patterns.
    let kh = parse(&format!(
        "{}\n@revoked\t{}\n",
        line("node1", &k.a),
        line("elsewhere", &k.a)
    ));
    assert_eq!(kh.check("node1", 22, &k.a), Match::Revoked { at: at(2) });
}

#[test]
fn cert_authority_lines_do_not_trust_plain_keys() {
    let k = keys();
    let kh = parse(&format!("@cert-authority {}\n", line("*", &k.a)));
    assert_eq!(kh.check("node1", 22, &k.a), Match::Unknown);
    let kh = parse(&format!("@unknown-marker {}\n", line("*", &k.a)));
    assert_eq!(kh.check("node1", 22, &k.a), Match::Unknown);
}

#[test]
fn changed_key_same_type_and_other_type() {
    let k = keys();
    let kh = parse(&format!(
        "{}\n{}\n",
        line("node1", &k.ecdsa),
        line("node1", &k.a)
    ));
    assert_eq!(
        kh.check("node1", 22, &k.b),
        Match::Changed {
            at: at(2),
            known_types: vec![k.ecdsa.algorithm(), k.a.algorithm()]
        }
    );
    let kh = parse(&format!("{}\n", line("node1", &k.ecdsa)));
    assert_eq!(
        kh.check("node1", 22, &k.a),
        Match::Changed {
            at: at(1),
            known_types: vec![k.ecdsa.algorithm()]
        }
    );
}

#[test]
fn key_types_are_deduplicated_in_file_order() {
    let k = keys();
    let kh = parse(&format!(
        "{}\n{}\n{}\n",
        line("n", &k.a),
        line("n", &k.ecdsa),
        line("n", &k.b)
    ));
    assert_eq!(
        kh.key_types("n", 22),
        vec![k.a.algorithm(), k.ecdsa.algorithm()]
    );
}

#[test]
fn append_writes_bracketed_entry_and_fixes_missing_newline() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/known_hosts");
    assert_eq!(append(&path, "10.0.0.1", 2222, &k.a).unwrap(), 1);
    fs::write(&path, fs::read_to_string(&path).unwrap() + "# no newline").unwrap();
    assert_eq!(append(&path, "node1", 22, &k.b).unwrap(), 3);
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], line("[10.0.0.1]:2222", &k.a));
    assert_eq!(lines[2], line("node1", &k.b));
    let kh = KnownHosts::load(&path).unwrap();
    let at = |number| Line {
        path: path.clone(),
        number,
    };
    assert_eq!(
        kh.check("10.0.0.1", 2222, &k.a),
        Match::Trusted { at: at(1) }
    );
    assert_eq!(kh.check("node1", 22, &k.b), Match::Trusted { at: at(3) });
}

#[test]
fn missing_file_is_empty_and_fingerprint_is_openssh_style() {
    let k = keys();
    let kh = KnownHosts::load(Path::new("/nonexistent/known_hosts")).unwrap();
    assert_eq!(kh.check("node1", 22, &k.a), Match::Unknown);
    let fp = fingerprint(&k.a);
    assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
}

#[test]
fn indexed_names_and_patterns_are_found_together_in_file_order() {
    let k = keys();
    let kh = parse(&format!(
        "{}\n{}\n{}\n{}\n",
        line("node?", &k.ecdsa),
        line("Node1,node2", &k.b),
        line("other", &k.a),
        line("!node3,node*", &k.a),
    ));
    // node1: line 1 (pattern), line 2 (plain names, indexed, mixed case), line 4 (pattern).
    assert_eq!(
        kh.key_types("node1", 22),
        vec![k.ecdsa.algorithm(), k.b.algorithm()],
        "in file order across both kinds"
    );
    assert_eq!(kh.check("node1", 22, &k.a), Match::Trusted { at: at(4) });
    assert_eq!(kh.check("NODE2", 22, &k.b), Match::Trusted { at: at(2) });
    assert_eq!(
        kh.check("node22", 22, &k.b),
        Match::Changed {
            at: at(4),
            known_types: vec![k.a.algorithm()],
        }
    );
    assert_eq!(
        kh.check("node3", 22, &k.a),
        Match::Changed {
            at: at(1),
            known_types: vec![k.ecdsa.algorithm()],
        },
        "the negated line does not count for node3"
    );
}

#[test]
fn a_key_accepted_during_the_run_is_known_to_the_rest_of_it() {
    let k = keys();
    let mut kh = parse(&line("other", &k.a));
    assert_eq!(kh.check("10.0.0.9", 2222, &k.b), Match::Unknown);
    kh.add_appended(2, ("10.0.0.9", 2222), &k.b);
    assert_eq!(
        kh.check("10.0.0.9", 2222, &k.b),
        Match::Trusted { at: at(2) }
    );
    assert_eq!(
        kh.check("10.0.0.9", 2222, &k.a),
        Match::Changed {
            at: at(2),
            known_types: vec![k.b.algorithm()],
        }
    );
    assert_eq!(
        kh.check("10.0.0.9", 22, &k.b),
        Match::Unknown,
        "another port"
    );
}

#[test]
fn several_files_are_one_set_of_lines_and_new_keys_go_to_the_first() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let (first, second, third) = (
        dir.path().join("known_hosts"),
        dir.path().join("known_hosts2"),
        dir.path().join("absent"),
    );
    fs::write(&first, format!("{}\n", line("node1", &k.a))).unwrap();
    fs::write(
        &second,
        format!(
            "# team file\n{}\n@revoked {}\n",
            line("node2", &k.ecdsa),
            line("*", &k.b)
        ),
    )
    .unwrap();
    let kh = KnownHosts::load_all(&[first.clone(), second.clone(), third]).unwrap();
    let at = |path: &PathBuf, number| Line {
        path: path.clone(),
        number,
    };
    assert_eq!(
        kh.check("node1", 22, &k.a),
        Match::Trusted { at: at(&first, 1) }
    );
    assert_eq!(
        kh.check("node2", 22, &k.ecdsa),
        Match::Trusted { at: at(&second, 2) },
        "a line of the second file trusts"
    );
    assert_eq!(
        kh.check("node2", 22, &k.a),
        Match::Changed {
            at: at(&second, 2),
            known_types: vec![k.ecdsa.algorithm()],
        },
        "a host the second file lists with another key has changed"
    );
    assert_eq!(
        kh.check("node1", 22, &k.b),
        Match::Revoked { at: at(&second, 3) },
        "a key the second file revokes is refused for a host the first file lists"
    );
    assert_eq!(kh.path(), first.as_path(), "new keys go to the first file");
    assert_eq!(kh.paths().len(), 3, "a missing file reads as empty");
    assert_eq!(
        kh.describe(),
        format!(
            "{}, {}, {}",
            first.display(),
            second.display(),
            dir.path().join("absent").display()
        )
    );
}
