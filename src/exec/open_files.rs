//! Open files: `apply` keeps one SSH connection per host for the whole run, so it needs about
//! one file descriptor per host, and Linux's usual soft limit (1024) is below what a cluster of
//! a thousand hosts takes. The soft limit is raised to the hard one, as Go programs do at start;
//! a run that still does not fit is refused before any host is contacted, with the fix.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use super::connected::ConnectError;

/// Descriptors besides the connections: stdio, the journal and log files, the runtime's epoll
/// and wakers, the ssh-agent socket, known_hosts and key files being read, uploads.
pub const RESERVED: u64 = 64;

/// What to do about the limit for `hosts` connections.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The soft limit is enough.
    Keep,
    /// Raise the soft limit to this (the hard limit).
    Raise(u64),
    /// Even the hard limit is too low.
    Refuse { needed: u64, hard: u64 },
}

/// Pure: the decision for `hosts` connections under the soft and hard limits (`None`:
/// unlimited).
pub fn decide(hosts: usize, soft: Option<u64>, hard: Option<u64>) -> Decision {
    let needed = hosts as u64 + RESERVED;
    match (soft, hard) {
        (None, _) => Decision::Keep,
        (Some(soft), _) if soft >= needed => Decision::Keep,
        (Some(_), Some(hard)) if hard < needed => Decision::Refuse { needed, hard },
        (Some(_), Some(hard)) => Decision::Raise(hard),
        (Some(_), None) => Decision::Raise(needed.max(65_536)),
    }
}

/// Makes room for `hosts` connections, or says why it cannot.
pub fn make_room(hosts: usize) -> Result<(), ConnectError> {
    let limit = getrlimit(Resource::Nofile);
    match decide(hosts, limit.current, limit.maximum) {
        Decision::Keep => Ok(()),
        Decision::Raise(to) => {
            let raised = Rlimit {
                current: Some(to),
                maximum: limit.maximum,
            };
            setrlimit(Resource::Nofile, raised).map_err(|e| ConnectError::OpenFiles {
                hosts,
                needed: hosts as u64 + RESERVED,
                limit: limit.current.unwrap_or(0),
                why: format!("raising the soft limit to {to} failed: {e}"),
            })?;
            tracing::debug!(from = ?limit.current, to, "raised the open files limit");
            Ok(())
        }
        Decision::Refuse { needed, hard } => Err(ConnectError::OpenFiles {
            hosts,
            needed,
            limit: hard,
            why: "that is the hard limit".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soft_limit_with_room_is_kept() {
        assert_eq!(decide(20, Some(1024), Some(4096)), Decision::Keep);
        assert_eq!(decide(5000, None, None), Decision::Keep);
    }

    #[test]
    fn a_soft_limit_too_low_is_raised_to_the_hard_one() {
        assert_eq!(
            decide(1000, Some(1024), Some(524_288)),
            Decision::Raise(524_288)
        );
        assert_eq!(decide(961, Some(1024), Some(2048)), Decision::Raise(2048));
    }

    #[test]
    fn a_hard_limit_too_low_refuses_with_what_is_needed() {
        assert_eq!(
            decide(3000, Some(1024), Some(2048)),
            Decision::Refuse {
                needed: 3064,
                hard: 2048
            }
        );
    }
}
