//! The executor's decisions, against a scripted session: what a resume runs again, checks or
//! asks about; `--retry-in-flight`; stopping; and the `wait_until` deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::journal::{RunId, StateDir};
use crate::transport::{CommandOutput, TransportError, Upload};

/// A host that records every command and fails those containing a word of `fails`.
#[derive(Default)]
struct Scripted {
    commands: Mutex<Vec<String>>,
    fails: Vec<&'static str>,
}

impl Session for Scripted {
    async fn run(
        &self,
        command: &str,
        _timeout: Duration,
    ) -> Result<CommandOutput, TransportError> {
        self.commands.lock().unwrap().push(command.to_string());
        let failing = self.fails.iter().any(|word| command.contains(word));
        Ok(CommandOutput {
            stdout: Vec::new(),
            stderr: if failing { b"no".to_vec() } else { Vec::new() },
            exit: crate::transport::Exit::Status(if failing { 1 } else { 0 }),
        })
    }

    async fn upload(&self, _upload: &Upload) -> Result<(), TransportError> {
        Ok(())
    }

    async fn close(&self) -> Result<(), TransportError> {
        Ok(())
    }
}

struct Silent;

impl Reporter for Silent {
    fn step(&self, _header: StepHeader<'_>) {}
    fn host_event(&self, _step: &StepId, _host: &HostName, _event: &StepEvent) {}
}

const HOSTS: [&str; 2] = ["h1", "h2"];

/// A step `id` running `run <id>` on every host, with `check <id>` when `check`.
fn step(id: &str, on_resume: OnResume, check: bool) -> PlannedStep {
    PlannedStep {
        id: id.parse().unwrap(),
        name: id.into(),
        mode: Mode::Parallel,
        destructive: false,
        on_resume,
        takes_quorum: false,
        hosts: HOSTS
            .iter()
            .map(|host| RenderedStep {
                id: id.parse().unwrap(),
                name: id.into(),
                host: host.parse().unwrap(),
                run_on: host.parse().unwrap(),
                mode: Mode::Parallel,
                command: Some(format!("run {id}")),
                upload: None,
                check: check.then(|| format!("check {id}")),
                wait_until: None,
                timeout: None,
                retries: 0,
                on_resume,
                destructive: false,
                backup: None,
                establishes: None,
            })
            .collect(),
    }
}

fn plan(steps: Vec<PlannedStep>) -> Plan {
    Plan::for_tests(&HOSTS, steps)
}

/// What a run did: its outcome, the commands each host got, and the journal's events.
struct Ran {
    outcome: RunOutcome,
    commands: HashMap<String, Vec<String>>,
    events: Vec<Event>,
}

/// Runs `plan` as a resume of a journal that already holds `before`.
async fn run(plan: &Plan, before: Vec<Event>, options: ExecOptions, fails: &[&'static str]) -> Ran {
    run_and_pick(plan, before, (options, fails), Vec::new()).await
}

/// [`run`], then (when the run finished and `pick` names hosts) the plan's on-demand steps on
/// `pick`, as the rolling run's resync does.
async fn run_and_pick(
    plan: &Plan,
    before: Vec<Event>,
    (options, fails): (ExecOptions, &[&'static str]),
    pick: Vec<HostName>,
) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = StateDir::resolve(Some(dir.path()), None).run(&RunId::at(std::time::UNIX_EPOCH));
    run_dir.create().unwrap();
    let mut journal = run_dir.journal().unwrap();
    let records: Vec<Record> = before.into_iter().map(Record::now).collect();
    journal.append_all(&records).unwrap();
    let hosts: HashMap<HostName, Arc<Scripted>> = HOSTS
        .iter()
        .map(|h| {
            let session = Scripted {
                fails: fails.to_vec(),
                ..Scripted::default()
            };
            (h.parse().unwrap(), Arc::new(session))
        })
        .collect();
    let records = RunRecords {
        journal,
        checkpoint: Checkpoint::replay(&records),
        backups: BackupsDir(run_dir.backups_dir()),
    };
    let executor = Executor::new(hosts.clone(), records, Arc::new(Silent), options);
    let mut outcome = executor.run(plan).await.unwrap();
    if outcome == RunOutcome::Finished && !pick.is_empty() {
        outcome = executor
            .run_on_demand(plan, pick, "lacks pins".into())
            .await
            .unwrap();
    }
    drop(executor);
    let commands = hosts
        .iter()
        .map(|(host, s)| (host.to_string(), s.commands.lock().unwrap().clone()))
        .collect();
    let events = run_dir
        .records()
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    Ran {
        outcome,
        commands,
        events,
    }
}

const OPTIONS: ExecOptions = ExecOptions {
    concurrency: 4,
    retry_in_flight: false,
};

fn started(step: &str, host: &str) -> Event {
    Event::StepStarted {
        step: step.parse().unwrap(),
        host: host.parse().unwrap(),
        attempt: 1,
    }
}

fn finished(step: &str, host: &str) -> Event {
    Event::StepFinished {
        step: step.parse().unwrap(),
        host: host.parse().unwrap(),
        by_check: false,
    }
}

#[tokio::test]
async fn a_fresh_run_runs_every_step_on_every_host_in_order() {
    let plan = plan(vec![
        step("a", OnResume::Rerun, false),
        step("b", OnResume::Rerun, false),
    ]);
    let ran = run(&plan, vec![], OPTIONS, &[]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    for host in HOSTS {
        assert_eq!(ran.commands[host], ["run a", "run b"]);
    }
}

#[tokio::test]
async fn a_resume_never_runs_a_finished_step_again() {
    let plan = plan(vec![
        step("a", OnResume::Rerun, false),
        step("b", OnResume::Rerun, false),
    ]);
    let before = vec![
        started("a", "h1"),
        finished("a", "h1"),
        started("a", "h2"),
        finished("a", "h2"),
    ];
    let ran = run(&plan, before, OPTIONS, &[]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    for host in HOSTS {
        assert_eq!(ran.commands[host], ["run b"]);
    }
}

#[tokio::test]
async fn an_in_flight_rerun_step_runs_again_as_its_next_attempt() {
    let plan = plan(vec![step("a", OnResume::Rerun, true)]);
    let ran = run(&plan, vec![started("a", "h1")], OPTIONS, &[]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    assert_eq!(ran.commands["h1"], ["run a"], "rerun: no check first");
    let attempts: Vec<u32> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { host, attempt, .. } if host.as_str() == "h1" => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2]);
}

#[tokio::test]
async fn an_in_flight_check_step_whose_check_passes_is_done_without_running() {
    let plan = plan(vec![step("a", OnResume::Check, true)]);
    let ran = run(&plan, vec![started("a", "h1")], OPTIONS, &[]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    assert_eq!(ran.commands["h1"], ["check a"]);
    assert_eq!(
        ran.commands["h2"],
        ["run a"],
        "a pending host runs the step"
    );
    assert!(ran.events.iter().any(|e| matches!(
        e,
        Event::StepFinished { host, by_check: true, .. } if host.as_str() == "h1"
    )));
}

#[tokio::test]
async fn an_in_flight_check_step_whose_check_fails_runs_again() {
    let plan = plan(vec![step("a", OnResume::Check, true)]);
    let ran = run(&plan, vec![started("a", "h1")], OPTIONS, &["check"]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    assert_eq!(ran.commands["h1"], ["check a", "run a"]);
}

#[tokio::test]
async fn an_in_flight_ask_step_stops_for_the_operator_and_runs_nothing() {
    let plan = plan(vec![
        step("a", OnResume::Ask, true),
        step("b", OnResume::Rerun, false),
    ]);
    let ran = run(&plan, vec![started("a", "h2")], OPTIONS, &[]).await;
    assert_eq!(
        ran.outcome,
        RunOutcome::NeedsOperator {
            step: "a".parse().unwrap(),
            host: "h2".parse().unwrap(),
        }
    );
    assert!(ran.commands["h2"].is_empty());
    assert!(
        !ran.commands["h1"].contains(&"run b".to_string()),
        "nothing after the step"
    );
}

#[tokio::test]
async fn retry_in_flight_treats_ask_as_check() {
    let plan = plan(vec![step("a", OnResume::Ask, true)]);
    let options = ExecOptions {
        retry_in_flight: true,
        ..OPTIONS
    };
    let ran = run(&plan, vec![started("a", "h2")], options, &[]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    assert_eq!(ran.commands["h2"], ["check a"]);
}

#[tokio::test]
async fn a_failed_step_stops_the_run_with_its_hosts_in_order() {
    let plan = plan(vec![
        step("a", OnResume::Rerun, false),
        step("b", OnResume::Rerun, false),
    ]);
    let ran = run(&plan, vec![], OPTIONS, &["run a"]).await;
    let RunOutcome::Failed(failures) = ran.outcome else {
        panic!("{:?}", ran.outcome);
    };
    let hosts: Vec<&str> = failures.iter().map(|f| f.host.as_str()).collect();
    assert_eq!(hosts, HOSTS);
    assert!(failures
        .iter()
        .all(|f| f.step.as_str() == "a" && f.stderr_tail == "no"));
    for host in HOSTS {
        assert_eq!(ran.commands[host], ["run a"], "step b never starts");
    }
}

#[tokio::test]
async fn a_stop_before_the_run_interrupts_it_before_any_step() {
    let plan = plan(vec![step("a", OnResume::Rerun, false)]);
    let dir = tempfile::tempdir().unwrap();
    let run_dir = StateDir::resolve(Some(dir.path()), None).run(&RunId::at(std::time::UNIX_EPOCH));
    run_dir.create().unwrap();
    let session = Arc::new(Scripted::default());
    let sessions: HashMap<HostName, Arc<Scripted>> = HOSTS
        .iter()
        .map(|h| (h.parse().unwrap(), Arc::clone(&session)))
        .collect();
    let records = RunRecords {
        journal: run_dir.journal().unwrap(),
        checkpoint: Checkpoint::default(),
        backups: BackupsDir(run_dir.backups_dir()),
    };
    let executor = Executor::new(sessions, records, Arc::new(Silent), OPTIONS);
    executor.stop_flag().store(true, Ordering::SeqCst);
    assert_eq!(executor.run(&plan).await.unwrap(), RunOutcome::Interrupted);
    assert!(session.commands.lock().unwrap().is_empty());
}

/// A step `w` whose wait runs `probe` every second up to `deadline`, with `fail_when`.
fn waiting(deadline: &str, fail_when: &str) -> PlannedStep {
    let mut waiting = step("w", OnResume::Rerun, false);
    for host in &mut waiting.hosts {
        host.wait_until = Some(crate::procedure::RenderedWait {
            command: "probe".into(),
            interval: "1s".parse().unwrap(),
            deadline: deadline.parse().unwrap(),
            fail_when: Some(fail_when.into()),
            run_on: host.host.clone(),
        });
    }
    waiting
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_never_passes_fails_at_its_deadline() {
    let plan = plan(vec![waiting("5s", "exited alive")]);
    // `fail_when` fails ("alive"): the peer has not exited, so the wait goes on.
    let ran = run(&plan, vec![], OPTIONS, &["probe", "alive"]).await;
    let RunOutcome::Failed(failures) = ran.outcome else {
        panic!("{:?}", ran.outcome);
    };
    assert!(
        failures[0].error.contains("did not pass within 5s"),
        "{}",
        failures[0].error
    );
    let probes = ran.commands["h1"].iter().filter(|c| *c == "probe").count();
    // Probed every second until the deadline, then stopped. (Not the paused clock's elapsed
    // time: while the runner waits on the journal's writer thread, tokio advances the paused
    // clock to the next timer, so under load it may read past the deadline.)
    assert!(
        (4..=6).contains(&probes),
        "probed every second for 5 s, then stopped: {probes}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_whose_fail_when_holds_fails_at_once_not_at_its_deadline() {
    let plan = plan(vec![waiting("5m", "exited")]);
    let ran = run(&plan, vec![], OPTIONS, &["probe"]).await;
    let RunOutcome::Failed(failures) = ran.outcome else {
        panic!("{:?}", ran.outcome);
    };
    let error = &failures[0].error;
    assert!(error.starts_with("`wait_until` gave up after "), "{error}");
    assert!(
        error.contains("s, before its deadline of 5m: its `fail_when` holds"),
        "{error}"
    );
    assert_eq!(
        ran.commands["h1"],
        ["run w", "probe", "exited"],
        "the step's command, one try of the wait, then `fail_when`, and no more"
    );
}

#[test]
fn resume_decisions_per_journal_state_and_on_resume() {
    let run = |attempt, check_first| Decision::Run {
        attempt,
        check_first,
    };
    let in_flight = || HostStepState::InFlight { attempt: 2 };
    assert_eq!(
        resume_decision(HostStepState::Pending, OnResume::Ask, true),
        run(1, false)
    );
    assert_eq!(
        resume_decision(in_flight(), OnResume::Rerun, true),
        run(3, false)
    );
    assert_eq!(
        resume_decision(in_flight(), OnResume::Check, true),
        run(3, true)
    );
    assert_eq!(
        resume_decision(in_flight(), OnResume::Check, false),
        run(3, false),
        "no check to run: run the step"
    );
    assert_eq!(
        resume_decision(in_flight(), OnResume::Ask, true),
        Decision::Ask
    );
    let failed = || HostStepState::Failed {
        attempt: 1,
        error: String::new(),
        stderr_tail: String::new(),
    };
    assert_eq!(
        resume_decision(failed(), OnResume::Rerun, true),
        run(2, true),
        "a failed step may have had its effect: check first"
    );
    assert_eq!(
        resume_decision(failed(), OnResume::Ask, false),
        run(2, false)
    );
    let done = HostStepState::Finished { by_check: false };
    assert_eq!(
        resume_decision(done, OnResume::Rerun, true),
        Decision::AlreadyDone
    );
}

/// A plan with step `a` on both hosts and the on-demand steps `r1`, `r2`, rolled per host.
fn plan_with_on_demand() -> Plan {
    let mut plan = plan(vec![step("a", OnResume::Rerun, false)]);
    for host in HOSTS {
        for id in ["r1", "r2"] {
            let mut step = step(id, OnResume::Rerun, false);
            step.hosts.retain(|h| h.host == host);
            plan.on_demand.push(step);
        }
    }
    plan
}

#[tokio::test]
async fn on_demand_steps_run_only_on_the_picked_hosts_after_the_regular_ones() {
    let plan = plan_with_on_demand();
    let ran = run(&plan, Vec::new(), OPTIONS, &[]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    assert_eq!(ran.commands["h1"], ["run a"]);
    assert_eq!(ran.commands["h2"], ["run a"]);

    let ran = run_and_pick(&plan, Vec::new(), (OPTIONS, &[]), vec!["h2".into()]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    assert_eq!(ran.commands["h1"], ["run a"]);
    assert_eq!(ran.commands["h2"], ["run a", "run r1", "run r2"]);
    let picked = ran
        .events
        .iter()
        .position(|e| matches!(e, Event::OnDemandPicked { hosts, .. } if hosts == &["h2"]))
        .expect("the pick is journalled");
    let first_on_demand = ran
        .events
        .iter()
        .position(|e| matches!(e, Event::StepStarted { step, .. } if step == "r1"))
        .unwrap();
    assert!(picked < first_on_demand, "{:?}", ran.events);
}

#[tokio::test]
async fn a_resumed_run_finishes_the_on_demand_steps_of_the_hosts_its_journal_picked() {
    let plan = plan_with_on_demand();
    let done = |step: &str, host: &str| Event::StepFinished {
        step: step.parse().unwrap(),
        host: host.parse().unwrap(),
        by_check: false,
    };
    let before = vec![
        done("a", "h1"),
        done("a", "h2"),
        Event::OnDemandPicked {
            hosts: vec!["h1".into()],
            why: "lacks pins".into(),
        },
        done("r1", "h1"),
        Event::StepStarted {
            step: "r2".parse().unwrap(),
            host: "h1".parse().unwrap(),
            attempt: 1,
        },
    ];
    let ran = run(&plan, before, OPTIONS, &[]).await;
    assert_eq!(ran.outcome, RunOutcome::Finished);
    assert_eq!(ran.commands["h1"], ["run r2"]);
    assert!(ran.commands["h2"].is_empty(), "{:?}", ran.commands);
}
