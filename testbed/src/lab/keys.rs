//! The lab's user key, the hosts' authorized_keys and the lab's known_hosts.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::sshd::{generate_key, SshdSpec};

use super::error::{LabError, Result};
use super::layout::Layout;

/// Generates `DIR/id_ed25519` (mode 0600) and the `authorized_keys` every host's sshd reads.
pub fn make_user_key(layout: &Layout) -> Result<()> {
    let identity = layout.identity();
    generate_key(&identity, "cluster-lab").map_err(LabError::io("generating key", &identity))?;
    fs::set_permissions(&identity, fs::Permissions::from_mode(0o600))
        .map_err(LabError::io("protecting", &identity))?;
    let public = identity.with_extension("pub");
    let key = fs::read_to_string(&public).map_err(LabError::io("reading", &public))?;
    let authorized = layout.authorized_keys();
    fs::write(&authorized, key).map_err(LabError::io("writing", &authorized))?;
    // sshd reads it as the login user, who must be able to.
    fs::set_permissions(&authorized, fs::Permissions::from_mode(0o644))
        .map_err(LabError::io("protecting", &authorized))
}

/// Writes `DIR/known_hosts` with one `[address]:port key` line per sshd, and one more for
/// `[address]:relay_port` when a delaying relay stands in front of them (`up --rtt`): the same
/// key, reached through the relay's port.
pub fn write_known_hosts(
    layout: &Layout,
    specs: &[&SshdSpec],
    relay_port: Option<u16>,
) -> Result<()> {
    let mut text = String::new();
    for spec in specs {
        let through_relay = relay_port.map(|port| SshdSpec {
            port,
            ..(*spec).clone()
        });
        for spec in std::iter::once(*spec).chain(through_relay.as_ref()) {
            let line = spec
                .known_hosts_line()
                .map_err(LabError::io("reading host key in", spec.dir.clone()))?;
            text.push_str(&line);
            text.push('\n');
        }
    }
    let path = layout.known_hosts();
    fs::write(&path, text).map_err(LabError::io("writing", &path))
}
