//! How long each step took, from the journal's timestamps: from its first start on any host to
//! its last end (finished or failed) on any host, summed over the runs of a resumed run.

use std::collections::HashMap;
use std::time::Duration;

use super::{Event, Record};
use crate::procedure::StepId;

/// Per step, the time it ran; and the time the whole run ran (its spans, resumes summed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepTimes {
    steps: HashMap<StepId, Duration>,
    pub run: Duration,
}

impl StepTimes {
    pub fn from_records(records: &[Record]) -> StepTimes {
        let mut spans: HashMap<&StepId, (u64, u64)> = HashMap::new();
        let mut times = StepTimes::default();
        let mut run_since: Option<u64> = None;
        let mut last: u64 = 0;
        for record in records {
            let at = record.at_ms;
            match &record.event {
                Event::RunStarted { .. } => {
                    if let Some(since) = run_since {
                        times.run += Duration::from_millis(last.saturating_sub(since));
                    }
                    // A resume: close the spans of the run before.
                    for (step, (from, to)) in spans.drain() {
                        *times.steps.entry(step.clone()).or_default() +=
                            Duration::from_millis(to.saturating_sub(from));
                    }
                    run_since = Some(at);
                }
                Event::StepStarted { step, .. } => {
                    spans.entry(step).or_insert((at, at));
                }
                Event::StepFinished { step, .. } | Event::StepFailed { step, .. } => {
                    if let Some(span) = spans.get_mut(step) {
                        span.1 = span.1.max(at);
                    }
                }
                _ => {}
            }
            last = at;
        }
        for (step, (from, to)) in spans {
            *times.steps.entry(step.clone()).or_default() +=
                Duration::from_millis(to.saturating_sub(from));
        }
        if let Some(since) = run_since {
            times.run += Duration::from_millis(last.saturating_sub(since));
        }
        times
    }

    /// The time `step` ran, when it ran at all.
    pub fn step(&self, step: &StepId) -> Option<Duration> {
        self.steps.get(step).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::HostName;

    fn at(at_ms: u64, event: Event) -> Record {
        Record { at_ms, event }
    }

    fn started(step: &str, host: &str) -> Event {
        Event::StepStarted {
            step: step.parse().unwrap(),
            host: host.parse::<HostName>().unwrap(),
            attempt: 1,
        }
    }

    fn finished(step: &str, host: &str) -> Event {
        Event::StepFinished {
            step: step.parse().unwrap(),
            host: host.parse::<HostName>().unwrap(),
            by_check: false,
        }
    }

    #[test]
    fn a_step_lasts_from_its_first_start_to_its_last_end_and_resumes_add_up() {
        let records = [
            at(
                1_000,
                Event::RunStarted {
                    pid: 1,
                    resumed: false,
                },
            ),
            at(1_100, started("a", "h1")),
            at(1_200, started("a", "h2")),
            at(1_900, finished("a", "h2")),
            at(2_100, finished("a", "h1")),
            at(2_200, started("b", "h1")),
            // Killed here; resumed later.
            at(
                9_000,
                Event::RunStarted {
                    pid: 2,
                    resumed: true,
                },
            ),
            at(9_100, started("b", "h1")),
            at(9_600, finished("b", "h1")),
        ];
        let times = StepTimes::from_records(&records);
        assert_eq!(
            times.step(&"a".parse().unwrap()),
            Some(Duration::from_millis(1_000))
        );
        assert_eq!(
            times.step(&"b".parse().unwrap()),
            Some(Duration::from_millis(500))
        );
        assert_eq!(times.step(&"c".parse().unwrap()), None);
        assert_eq!(times.run, Duration::from_millis(1_200 + 600));
    }
}
