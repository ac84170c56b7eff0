//! The floor under `cluster-upgrade apply` in `bench/run` (row f): the same SSH transport, one
//! connection per host, every host at once, the K benchmark commands in turn on each host, and
//! nothing else: no facts probe, no plan, no journal, no final check. What `apply` takes on top
//! of this is the price of its safety; what this takes is mostly the hosts' sshd.
//!
//! Usage: transport_floor KNOWN_HOSTS KEY_FILE USER STEPS ADDRESS:PORT...
//! Runs `echo step 1` ... `echo step STEPS` on each host; exits non-zero if any fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cluster_upgrade::transport::{Identity, SshOptions, SshSession, Target};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [known_hosts, key, user, steps, hosts @ ..] = args.as_slice() else {
        eprintln!("usage: transport_floor KNOWN_HOSTS KEY_FILE USER STEPS ADDRESS:PORT...");
        return ExitCode::from(2);
    };
    let Ok(steps) = steps.parse::<usize>() else {
        eprintln!("transport_floor: STEPS must be a number, not {steps:?}");
        return ExitCode::from(2);
    };
    let options = SshOptions::new(known_hosts);
    let mut runs = tokio::task::JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let Some((address, port)) = host
            .rsplit_once(':')
            .and_then(|(a, p)| Some((a, p.parse().ok()?)))
        else {
            eprintln!("transport_floor: {host:?} is not ADDRESS:PORT");
            return ExitCode::from(2);
        };
        let target = Target {
            jumps: Vec::new(),
            become_user: None,
            name: format!("h{}", i + 1).parse().expect("a host name"),
            address: address.to_string(),
            port,
            user: user.clone(),
            identity: Identity::File(PathBuf::from(key)),
        };
        let options = options.clone();
        runs.spawn(async move {
            let session = SshSession::connect(&target, &options)
                .await
                .map_err(|e| e.to_string())?;
            for step in 1..=steps {
                let command = format!("echo step {step}");
                let output = session
                    .run(&command, COMMAND_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                if !output.success() {
                    return Err(format!(
                        "{}: `{command}` ended with {:?}",
                        target.name, output.exit
                    ));
                }
            }
            session.close().await.map_err(|e| e.to_string())
        });
    }
    let mut failed = false;
    while let Some(joined) = runs.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(e.to_string()));
        if let Err(err) = result {
            eprintln!("transport_floor: {err}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
