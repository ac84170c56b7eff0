//! Starting the hosts' sshds, all at once.

use std::thread;

use crate::sshd::SshdSpec;

use super::error::{LabError, Result};

/// Writes the config and host key of every sshd and starts them in parallel. Returns their
/// PIDs in the order given; if any fails, the ones that started are stopped again.
pub fn start_all(hosts: &[(String, SshdSpec)]) -> Result<Vec<u32>> {
    let results: Vec<Result<u32>> = thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|(name, spec)| s.spawn(move || start_one(name, spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sshd start thread panicked"))
            .collect()
    });
    if results.iter().all(|r| r.is_ok()) {
        return Ok(results.into_iter().map(|r| r.expect("checked")).collect());
    }
    let mut first_error = None;
    for result in results {
        match result {
            Ok(pid) => crate::sshd::stop_pid(pid, std::time::Duration::from_secs(2)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.expect("one failed"))
}

/// Prepares and starts one host's sshd; keeps its host key if it has one (restarts).
pub fn start_one(name: &str, spec: &SshdSpec) -> Result<u32> {
    let fail = |source| LabError::SshdStart {
        host: name.to_string(),
        source,
    };
    spec.prepare().map_err(fail)?;
    let server = spec.start().map_err(fail)?;
    Ok(server.detach())
}
