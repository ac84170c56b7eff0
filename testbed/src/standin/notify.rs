//! systemd readiness: from 1.0.7 the daemon sends `READY=1` to `$NOTIFY_SOCKET` once ready,
//! so `Type=notify` units work.

use std::os::unix::net::UnixDatagram;

use crate::release::Release;

/// Whether `release` notifies systemd.
pub fn supported(release: &Release) -> bool {
    (release.major, release.minor, release.patch) >= (1, 0, 7)
}

/// Sends `READY=1` if a notify socket is configured; failures are only logged by the caller.
pub fn ready() -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let path = path.to_string_lossy().into_owned();
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.send_to_addr(b"READY=1", &addr)?;
    } else {
        socket.send_to(b"READY=1", &path)?;
    }
    Ok(true)
}
