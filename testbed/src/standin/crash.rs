//! A peer that crashes as it starts, modelled deterministically.
//!
//! With the real 1.0.8 and 1.1.6 this is a race: `NewCluster` gives the REST API its RPC client
//! before consensus gets its own, and an API request in between panics on a nil
//! `*rpc.Client` in go-libp2p-gorpc's `makeCall`; the daemon exits with Go's status 2 (seen
//! once in a loaded lab, README "real lab"). The stand-in has no race to lose:
//! `cluster-lab fault crash-at-start HOST` writes [`MARKER`] into the peer's config folder, and
//! the next start of a 1.x stand-in (whichever release it runs) takes the marker, logs the
//! panic as Go prints it and exits 2. What it models is the outcome a service manager and
//! cluster-upgrade see (a peer that started, then exited), not the race.

use std::fs;
use std::path::Path;

/// The marker file in the peer's config folder (`<home>/.ipfs-cluster/`): "the next start
/// crashes".
pub const MARKER: &str = "standin-crash-at-start";

/// The exit status of a Go program that panicked.
pub const GO_PANIC_STATUS: i32 = 2;

/// What the real peer printed when it crashed (the first lines of Go's panic report).
const PANIC: &str = "panic: runtime error: invalid memory address or nil pointer dereference\n\
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]\n\
\n\
goroutine 1 [running]:\n\
github.com/libp2p/go-libp2p-gorpc.(*Client).makeCall(0x0, {0x0, 0x0})";

/// Writes the marker into `config_dir` (the lab's fault).
pub fn arm(config_dir: &Path) -> std::io::Result<()> {
    fs::write(config_dir.join(MARKER), "")
}

/// Whether this start crashes: takes the marker in `config_dir` if there is one, so only one
/// start crashes.
pub(crate) fn take(config_dir: &Path) -> bool {
    fs::remove_file(config_dir.join(MARKER)).is_ok()
}

/// Prints the panic to stderr, as Go does, and returns the status to exit with.
pub(crate) fn crash() -> i32 {
    eprintln!("{PANIC}");
    GO_PANIC_STATUS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_marker_crashes_one_start_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take(dir.path()), "no marker: the start goes on");
        arm(dir.path()).unwrap();
        assert!(take(dir.path()), "armed: this start crashes");
        assert!(
            !take(dir.path()),
            "the marker was taken: the next start goes on"
        );
    }
}
