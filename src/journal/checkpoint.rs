//! Replaying the journal into a checkpoint: where every (step, host) stands. Pure.

use std::collections::BTreeMap;

use super::record::{Event, Record};
use crate::inventory::{HostName, Sha256};
use crate::procedure::StepId;

/// Where one step stands on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStepState {
    /// Never started.
    Pending,
    /// Started, never recorded as finished or failed: the run died while it ran.
    InFlight {
        attempt: u32,
    },
    Finished {
        by_check: bool,
    },
    Failed {
        attempt: u32,
        error: String,
        stderr_tail: String,
    },
}

/// The state of a run, replayed from its journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// By step, then host: looked up with plain names, no key built per lookup.
    states: BTreeMap<StepId, BTreeMap<HostName, HostStepState>>,
    pub finished: bool,
    /// How many times each (step, host) was recorded finished: more than one would mean a
    /// finished step ran twice (tests check this).
    finish_counts: BTreeMap<(StepId, HostName), u32>,
    /// State exports saved on the controller: host, file name, digest.
    pub backups: Vec<(HostName, String, Sha256)>,
    pub last_stop: Option<String>,
    pub runs: u32,
    /// `runs abandon` was run: it is never resumed.
    pub abandoned: bool,
    /// The hosts picked for the plan's on-demand steps, in the order they run (a host once).
    pub on_demand: Vec<HostName>,
}

impl Checkpoint {
    pub fn replay(records: &[Record]) -> Checkpoint {
        let mut checkpoint = Checkpoint::default();
        for record in records {
            checkpoint.apply(&record.event);
        }
        checkpoint
    }

    pub fn apply(&mut self, event: &Event) {
        let key = |step: &StepId, host: &HostName| (step.clone(), host.clone());
        let states = &mut self.states;
        let mut set = |step: &StepId, host: &HostName, state: HostStepState| {
            states
                .entry(step.clone())
                .or_default()
                .insert(host.clone(), state);
        };
        match event {
            Event::RunStarted { .. } => {
                self.runs += 1;
                self.finished = false;
            }
            Event::StepStarted {
                step,
                host,
                attempt,
            } => set(step, host, HostStepState::InFlight { attempt: *attempt }),
            Event::StepFinished {
                step,
                host,
                by_check,
            } => {
                set(
                    step,
                    host,
                    HostStepState::Finished {
                        by_check: *by_check,
                    },
                );
                *self.finish_counts.entry(key(step, host)).or_default() += 1;
            }
            Event::StepFailed {
                step,
                host,
                error,
                stderr_tail,
            } => {
                let attempt = match self.state(step, host) {
                    HostStepState::InFlight { attempt } => attempt,
                    _ => 1,
                };
                self.states.entry(step.clone()).or_default().insert(
                    host.clone(),
                    HostStepState::Failed {
                        attempt,
                        error: error.clone(),
                        stderr_tail: stderr_tail.clone(),
                    },
                );
            }
            Event::Backup { host, file, sha256 } => {
                self.backups
                    .push((host.clone(), file.clone(), sha256.clone()))
            }
            Event::RunFinished => self.finished = true,
            Event::RunStopped { reason } => self.last_stop = Some(reason.clone()),
            Event::StepReset { step, host, .. } => {
                if let Some(hosts) = self.states.get_mut(step.as_str()) {
                    hosts.remove(host.as_str());
                }
                self.finish_counts.remove(&key(step, host));
            }
            Event::RunAbandoned { .. } => self.abandoned = true,
            Event::LeaseTakenOver { .. } => {}
            Event::OnDemandPicked { hosts, .. } => {
                for host in hosts {
                    if !self.on_demand.contains(host) {
                        self.on_demand.push(host.clone());
                    }
                }
            }
        }
    }

    pub fn state(&self, step: &StepId, host: &HostName) -> HostStepState {
        self.states
            .get(step.as_str())
            .and_then(|hosts| hosts.get(host.as_str()))
            .cloned()
            .unwrap_or(HostStepState::Pending)
    }

    /// The (step, host) pairs recorded as finished more than once.
    pub fn finished_twice(&self) -> Vec<(StepId, HostName)> {
        self.finish_counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether anything was started yet.
    pub fn is_fresh(&self) -> bool {
        self.states.is_empty()
    }

    /// Neither finished nor abandoned: a run that `apply` (or `recover`) resumes.
    pub fn is_unfinished(&self) -> bool {
        !self.finished && !self.abandoned
    }

    /// Forgets that `step` ran on `host` (see [`Event::StepReset`]).
    pub fn reset(&mut self, step: &StepId, host: &HostName) {
        self.apply(&Event::StepReset {
            step: step.clone(),
            host: host.clone(),
            reason: String::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(step: &str, host: &str) -> Record {
        Record::now(Event::StepStarted {
            step: step.parse().unwrap(),
            host: host.parse().unwrap(),
            attempt: 1,
        })
    }
    fn finished(step: &str, host: &str) -> Record {
        Record::now(Event::StepFinished {
            step: step.parse().unwrap(),
            host: host.parse().unwrap(),
            by_check: false,
        })
    }

    #[test]
    fn replay_gives_each_step_its_last_state() {
        let records = vec![
            Record::now(Event::RunStarted {
                pid: 1,
                resumed: false,
            }),
            started("stop", "h1"),
            started("stop", "h2"),
            finished("stop", "h1"),
            Record::now(Event::StepFailed {
                step: "stop".into(),
                host: "h2".into(),
                error: "exit 1".into(),
                stderr_tail: "boom".into(),
            }),
            started("swap", "h1"),
        ];
        let checkpoint = Checkpoint::replay(&records);
        assert_eq!(
            checkpoint.state(&"stop".into(), &"h1".into()),
            HostStepState::Finished { by_check: false }
        );
        assert!(
            matches!(checkpoint.state(&"stop".into(), &"h2".into()), HostStepState::Failed { ref stderr_tail, .. } if stderr_tail == "boom")
        );
        assert_eq!(
            checkpoint.state(&"swap".into(), &"h1".into()),
            HostStepState::InFlight { attempt: 1 }
        );
        assert_eq!(
            checkpoint.state(&"swap".into(), &"h2".into()),
            HostStepState::Pending
        );
        assert!(!checkpoint.finished);
        assert!(checkpoint.finished_twice().is_empty());
    }

    #[test]
    fn a_reset_step_is_pending_again_and_an_abandoned_run_is_not_unfinished() {
        let mut checkpoint = Checkpoint::replay(&[
            started("export", "h1"),
            finished("export", "h1"),
            Record::now(Event::StepReset {
                step: "export".into(),
                host: "h1".into(),
                reason: "backup gone".into(),
            }),
            started("export", "h1"),
            finished("export", "h1"),
        ]);
        assert!(checkpoint.finished_twice().is_empty());
        assert!(checkpoint.is_unfinished());
        checkpoint.apply(&Event::RunAbandoned { by: "me".into() });
        assert!(!checkpoint.is_unfinished());
        checkpoint.reset(&"export".into(), &"h1".into());
        assert_eq!(
            checkpoint.state(&"export".into(), &"h1".into()),
            HostStepState::Pending
        );
    }

    #[test]
    fn a_step_finished_twice_is_reported() {
        let checkpoint = Checkpoint::replay(&[
            started("a", "h1"),
            finished("a", "h1"),
            started("a", "h1"),
            finished("a", "h1"),
        ]);
        assert_eq!(checkpoint.finished_twice(), vec![("a".into(), "h1".into())]);
    }
}
