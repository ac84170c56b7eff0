//! Finding and stopping the lab's processes by PID.
//!
//! Before a signal is sent, the PID's command line must still mention the lab folder: a PID
//! recorded long ago may now belong to someone else.

use std::fs;
use std::time::Duration;

use crate::sshd::{pid_alive, stop_pid};

/// The command line of a process, arguments joined by spaces; `None` if it is gone.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(text.trim_end().to_string())
}

/// Whether `pid` is alive and its command line contains `marker`.
pub fn is_ours(pid: u32, marker: &str) -> bool {
    pid_alive(pid) && cmdline(pid).is_some_and(|c| c.contains(marker))
}

/// Stops `pid` (SIGTERM, then SIGKILL after `grace`) if it is ours; says whether it was running.
pub fn stop_if_ours(pid: u32, marker: &str, grace: Duration) -> bool {
    if !is_ours(pid, marker) {
        return false;
    }
    stop_pid(pid, grace);
    true
}

/// Sends SIGKILL to `pid` if it is ours; says whether it was running.
pub fn kill_if_ours(pid: u32, marker: &str) -> bool {
    if !is_ours(pid, marker) {
        return false;
    }
    stop_pid(pid, Duration::ZERO);
    true
}

/// Every live process, other than this one, whose command line contains `marker`.
pub fn mentioning(marker: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && pid_alive(pid))
        .filter_map(|pid| {
            cmdline(pid)
                .filter(|c| c.contains(marker))
                .map(|c| (pid, c))
        })
        .collect();
    found.sort();
    found
}
