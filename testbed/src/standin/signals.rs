//! SIGTERM/SIGINT/SIGHUP handling of the daemon (`handleSignals`): the first asks for a clean
//! shutdown, the second warns, the third exits at once (255 up to 0.11, 1 in 1.x).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::logging;
use crate::release::Release;

/// Installs the handlers; `shutdown` becomes true on the first signal.
pub fn install(release: &Release) -> std::io::Result<Arc<AtomicBool>> {
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    let forced_exit = if release.major >= 1 { 1 } else { 255 };
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    thread::spawn(move || {
        let mut count = 0;
        for _ in signals.forever() {
            count += 1;
            match count {
                1 => {
                    logging::info("service", "Received signal, shutting down cleanly");
                    flag.store(true, Ordering::SeqCst);
                }
                2 => logging::error(
                    "service",
                    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     Shutdown is taking too long! Press Ctrl-c 1 more times to force quit.\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
                ),
                _ => std::process::exit(forced_exit),
            }
        }
    });
    Ok(shutdown)
}
