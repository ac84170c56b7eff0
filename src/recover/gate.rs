//! The final check of a recovery: `apply`'s health (target version, running, whole peerset)
//! and every peer listing exactly the recovered export. Pure.

use crate::facts::{HostFacts, Pinset};
use crate::plan::{health_problems, pinset_problem, Plan};

/// The problems left after a recovery; none means it finished.
pub fn recovery_problems(plan: &Plan, now: &[HostFacts], expected: &Pinset) -> Vec<String> {
    // Peers that ran before the recovery may have listed another pinset: the export is the
    // reference, checked below.
    let mut problems = health_problems(now, plan.choice.to, None);
    for host in now.iter().filter(|h| h.running) {
        problems.extend(pinset_problem(host, expected, |pins| {
            format!(
                "{} lists {} pins (hash {}), but the recovered export holds {} (hash {})",
                host.host,
                pins.count,
                pins.short_hash(),
                expected.count,
                expected.short_hash()
            )
        }));
    }
    problems
}
