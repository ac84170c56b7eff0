//! A peer's REST API behind basic auth (and HTTPS): `api_auth` names where the credentials are
//! on the host, every ctl call reads them there, and no file the tool writes holds them.
//! Stand-in peers here; the real 1.1.6 behind basic auth and HTTPS in `real_e2e`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{assert_success, run, text, Lab};

/// The password of the lab's REST APIs: it must never appear in what the tool writes.
pub const PASSWORD: &str = "s3cret-api-7f2c91";
const USER: &str = "admin";

/// An HTTPS certificate of the REST APIs: (certificate, key), self-signed.
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn make(dir: &Path) -> Tls {
        let tls = Tls {
            cert: dir.join("api-cert.pem"),
            key: dir.join("api-key.pem"),
        };
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&tls.key)
            .arg("-out")
            .arg(&tls.cert)
            .output()
            .expect("openssl (scripts/setup installs it)");
        assert_success(&out, "openssl req -x509");
        tls
    }
}

/// Restarts every peer of `lab` with `basic_auth_credentials` (and HTTPS with `tls`), writes
/// the credentials file the hosts share (they share this machine) and waits until every peer
/// answers with the credentials and sees the others. Returns the credentials file.
pub fn protect_apis(lab: &Lab, tls: Option<&Tls>) -> PathBuf {
    let credentials = lab.path().join("api-credentials");
    std::fs::write(&credentials, format!("{USER}:{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(
        &credentials,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let names = lab.host_names();
    for host in &names {
        let svc = lab.home(host).join("bin/ipfs-cluster-svc");
        assert_success(
            &lab.ssh(host, &format!("{} stop", svc.display())),
            "ipfs-cluster-svc stop",
        );
        let config = lab.home(host).join(".ipfs-cluster/service.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        let rest = &mut json["api"]["restapi"];
        rest["basic_auth_credentials"] = serde_json::json!({ USER: PASSWORD });
        if let Some(tls) = tls {
            rest["ssl_cert_file"] = tls.cert.display().to_string().into();
            rest["ssl_key_file"] = tls.key.display().to_string().into();
        }
        std::fs::write(&config, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        assert_success(
            &lab.ssh(host, &format!("{} start", svc.display())),
            "ipfs-cluster-svc start",
        );
    }
    let flags: &[&str] = if tls.is_some() {
        &["--https", "--no-check-certificate"]
    } else {
        &["--force-http"]
    };
    lab.wait_for(
        "every peer answering with credentials",
        Duration::from_secs(120),
        |lab| {
            names.iter().all(|host| {
                let out = ctl_with_credentials(lab, host, flags, &["--enc", "json", "id"]);
                let id: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
                out.status.success()
                    && id["cluster_peers"].as_array().map_or(0, Vec::len) == names.len()
            })
        },
    );
    credentials
}

/// The lab host's ctl with the credentials in `CLUSTER_CREDENTIALS` (test set-up only).
pub fn ctl_with_credentials(lab: &Lab, host: &str, flags: &[&str], args: &[&str]) -> Output {
    Command::new(lab.home(host).join("bin/ipfs-cluster-ctl"))
        .env("CLUSTER_CREDENTIALS", format!("{USER}:{PASSWORD}"))
        .args(["--host", &lab.api(host)])
        .args(flags)
        .args(args)
        .output()
        .expect("run ipfs-cluster-ctl")
}

/// Adds `api_auth` to the inventory's global vars.
pub fn set_api_auth(lab: &Lab, yaml: &str) {
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let anchor = "vars:\n  service_manager: lab\n";
    assert!(inventory.contains(anchor), "{inventory}");
    let indented: String = yaml.lines().map(|l| format!("    {l}\n")).collect();
    let updated = inventory.replacen(anchor, &format!("{anchor}  api_auth:\n{indented}"), 1);
    std::fs::write(lab.inventory(), updated).unwrap();
}

/// Every file under `dir` that holds `needle`.
pub fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn an_api_behind_basic_auth_is_refused_at_plan_without_api_auth_and_upgraded_with_it_leaving_no_secret(
) {
    let lab = Lab::up(3, "1.0.8", 20);
    let credentials = protect_apis(&lab, None);
    let inventory = lab.inventory();
    let inventory = inventory.to_str().unwrap();

    // Without api_auth the probes get 401: the plan refuses, naming the hosts and why.
    let out = run(&["plan", inventory]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("h1 does not answer: its REST API refused ipfs-cluster-ctl (401 unauthorized: no auth provided)"),
        "{all}"
    );

    set_api_auth(
        &lab,
        &format!("credentials_file: {}\nhttps: false", credentials.display()),
    );
    let out = run(&["apply", inventory, "--yes"]);
    assert_success(&out, "apply with api_auth");
    let target = {
        let id = ctl_with_credentials(&lab, "h1", &["--force-http"], &["--enc", "json", "id"]);
        let id: serde_json::Value = serde_json::from_slice(&id.stdout).unwrap();
        id["version"].as_str().unwrap().to_string()
    };
    assert_ne!(target, "1.0.8", "the cluster was upgraded");
    for host in lab.host_names() {
        let out = ctl_with_credentials(
            &lab,
            &host,
            &["--force-http"],
            &["--enc", "json", "pin", "ls"],
        );
        assert_success(&out, "pin ls");
        let pins = text(&out.stdout).matches("\"cid\"").count();
        assert_eq!(pins, 20, "{host} kept every pin");
    }

    // The plan records where the credentials are, never what they are.
    let state = lab.path().join(".cluster-upgrade");
    assert!(
        !files_holding(&state, &credentials.display().to_string()).is_empty(),
        "the plan names the credentials file"
    );
    assert_eq!(files_holding(&state, PASSWORD), Vec::<PathBuf>::new());
    for output in [&out.stdout, &out.stderr] {
        assert!(!text(output).contains(PASSWORD));
    }
}
