//! Progress of `apply`: on a terminal, one spinner per host, or for a cluster larger than a
//! screen one line of counts for the step with the failures above it; plain lines otherwise.
//! Both write to stderr, so stdout stays for data; neither blocks the work: indicatif draws at
//! its own pace, and plain lines go through a queue to a writer thread, so a slow or stalled
//! stderr (a pipe nobody reads) never holds a host's step.

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{Reporter, StepEvent, StepHeader};
use crate::inventory::HostName;
use crate::procedure::StepId;

/// Plain lines: `[3/9] Stop every peer`, then one line per host event.
pub struct PlainProgress {
    lines: Mutex<Option<Sender<String>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// When each host's current step started, for the time a finished or failed one took.
    started: Mutex<HashMap<HostName, std::time::Instant>>,
}

impl PlainProgress {
    /// Lines are written to `out` by a thread of their own, in the order they were queued.
    pub fn new(out: impl Write + Send + 'static) -> PlainProgress {
        let (sender, receiver) = channel::<String>();
        let writer = std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(out);
            while let Ok(line) = receiver.recv() {
                let _ = writeln!(out, "{line}");
                // Write what is queued in one go, then show it.
                while let Ok(line) = receiver.try_recv() {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
        });
        PlainProgress {
            lines: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            started: Mutex::new(HashMap::new()),
        }
    }

    /// Writes what is still queued and stops the writer.
    pub fn finish(&self) {
        self.lines.lock().expect("progress lock").take();
        if let Some(writer) = self.writer.lock().expect("progress lock").take() {
            let _ = writer.join();
        }
    }

    fn line(&self, line: String) {
        if let Some(lines) = self.lines.lock().expect("progress lock").as_ref() {
            let _ = lines.send(line);
        }
    }
}

impl Drop for PlainProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Reporter for PlainProgress {
    fn step(&self, header: StepHeader<'_>) {
        let StepHeader {
            index,
            total,
            id,
            name,
        } = header;
        self.line(format!("[{index}/{total}] {name} ({id})"));
    }

    fn host_event(&self, _step: &StepId, host: &HostName, event: &StepEvent) {
        let mut started = self.started.lock().expect("progress lock");
        let took = match event {
            StepEvent::Started { .. } => {
                started.insert(host.clone(), std::time::Instant::now());
                None
            }
            StepEvent::Finished | StepEvent::Failed { .. } => started
                .remove(host)
                .map(|at| super::run_view::took(at.elapsed())),
            _ => None,
        };
        drop(started);
        match took {
            Some(took) => self.line(format!("  {host}: {} ({took})", describe(event))),
            None => self.line(format!("  {host}: {}", describe(event))),
        }
    }
}

/// Up to this many hosts get a spinner each; more would not fit a screen (and a thousand
/// spinners would each tick on a thread of their own).
pub const SPINNERS_UP_TO: usize = 24;

/// With the summary line, failures printed in full per step; the others are only counted.
const FAILURES_SHOWN: usize = 10;

/// Spinners on a terminal: one per host showing its current step, or, for more hosts than
/// [`SPINNERS_UP_TO`], one for the step with the hosts counted by state.
pub struct TerminalProgress {
    view: View,
    step: Mutex<String>,
}

enum View {
    PerHost(HashMap<HostName, ProgressBar>),
    Summary {
        bar: ProgressBar,
        tally: Mutex<Tally>,
    },
}

impl TerminalProgress {
    pub fn new(hosts: &[HostName]) -> TerminalProgress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let spinner = |prefix_width: usize| {
            ProgressStyle::with_template(&format!(
                "{{spinner}} {{prefix:<{prefix_width}}}  [{{elapsed}}] {{wide_msg}}"
            ))
            .expect("valid template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
        };
        let view = if hosts.len() <= SPINNERS_UP_TO {
            let style = spinner(hosts.iter().map(|h| h.len()).max().unwrap_or(4));
            let bars = hosts
                .iter()
                .map(|host| {
                    let bar = multi.add(
                        ProgressBar::new_spinner()
                            .with_style(style.clone())
                            .with_prefix(host.to_string()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.set_message("waiting");
                    (host.clone(), bar)
                })
                .collect();
            View::PerHost(bars)
        } else {
            let bar = multi.add(
                ProgressBar::new_spinner()
                    .with_style(spinner(5))
                    .with_prefix(format!("{} hosts", hosts.len())),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message("waiting");
            View::Summary {
                bar,
                tally: Mutex::new(Tally::default()),
            }
        };
        TerminalProgress {
            view,
            step: Mutex::new(String::new()),
        }
    }

    /// Stops the spinners, leaving their last line on screen.
    pub fn finish(&self) {
        match &self.view {
            View::PerHost(bars) => bars.values().for_each(ProgressBar::finish),
            View::Summary { bar, .. } => bar.finish(),
        }
    }
}

impl Reporter for TerminalProgress {
    fn step(&self, header: StepHeader<'_>) {
        let title = format!("[{}/{}] {}", header.index, header.total, header.name);
        if let View::Summary { bar, tally } = &self.view {
            let mut tally = tally.lock().expect("progress lock");
            // The finished step's counts stay in the scrollback; the bar moves on.
            if tally.seen() > 0 {
                let previous = self.step.lock().expect("progress lock").clone();
                bar.println(format!("{previous}: {}", tally.summary()));
            }
            *tally = Tally::default();
            bar.set_message(format!("{title}: starting"));
        }
        *self.step.lock().expect("progress lock") = title;
    }

    fn host_event(&self, _step: &StepId, host: &HostName, event: &StepEvent) {
        let step = self.step.lock().expect("progress lock").clone();
        match &self.view {
            View::PerHost(bars) => {
                if let Some(bar) = bars.get(host.as_str()) {
                    bar.set_message(format!("{step}: {}", describe(event)));
                }
            }
            View::Summary { bar, tally } => {
                let mut tally = tally.lock().expect("progress lock");
                tally.record(host.as_str(), event);
                if let StepEvent::Failed { error, .. } = event {
                    // The first few failures of a step in full; the rest are counted (and
                    // listed by `status`).
                    if tally.count(HostState::Failed) <= FAILURES_SHOWN {
                        bar.println(format!("{step}: {host}: FAILED: {error}"));
                    }
                }
                bar.set_message(format!("{step}: {}", tally.summary()));
            }
        }
    }
}

/// Where each host of the current step is, counted: pure, so the summary line is tested
/// without a terminal.
#[derive(Debug, Default)]
pub struct Tally {
    hosts: HashMap<String, HostState>,
    /// Hosts per state, kept as events come (a summary per event must not count them all).
    counts: [usize; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostState {
    Done,
    Running,
    Waiting,
    Failed,
}

impl Tally {
    pub fn record(&mut self, host: &str, event: &StepEvent) {
        let state = match event {
            StepEvent::Started { .. } => HostState::Running,
            StepEvent::Waiting => HostState::Waiting,
            StepEvent::AlreadyDone | StepEvent::DoneByCheck | StepEvent::Finished => {
                HostState::Done
            }
            StepEvent::Failed { .. } => HostState::Failed,
        };
        if let Some(before) = self.hosts.insert(host.to_string(), state) {
            self.counts[before as usize] -= 1;
        }
        self.counts[state as usize] += 1;
    }

    fn seen(&self) -> usize {
        self.hosts.len()
    }

    fn count(&self, state: HostState) -> usize {
        self.counts[state as usize]
    }

    /// `812 done, 185 running, 3 failed` (states with no host left out; past the failures
    /// printed in full, a pointer to `status`).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (HostState::Done, "done"),
            (HostState::Running, "running"),
            (HostState::Waiting, "waiting"),
            (HostState::Failed, "failed"),
        ]
        .iter()
        .map(|(state, word)| (self.count(*state), word))
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}"))
        .collect();
        let failed = self.count(HostState::Failed);
        if parts.is_empty() {
            "starting".to_string()
        } else if failed > FAILURES_SHOWN {
            format!(
                "{} ({} failures not shown: `cluster-upgrade status`)",
                parts.join(", "),
                failed - FAILURES_SHOWN
            )
        } else {
            parts.join(", ")
        }
    }
}

fn describe(event: &StepEvent) -> String {
    match event {
        StepEvent::AlreadyDone => "already done (journal)".to_string(),
        StepEvent::Started { attempt: 1 } => "running".to_string(),
        StepEvent::Started { attempt } => format!("running (attempt {attempt})"),
        StepEvent::DoneByCheck => "already done (check passed)".to_string(),
        StepEvent::Waiting => "waiting".to_string(),
        StepEvent::Finished => "done".to_string(),
        StepEvent::Failed { error, .. } => format!("FAILED: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_summary_counts_each_host_once_in_its_latest_state() {
        let mut tally = Tally::default();
        assert_eq!(tally.summary(), "starting");
        for host in ["a", "b", "c", "d"] {
            tally.record(host, &StepEvent::Started { attempt: 1 });
        }
        tally.record("a", &StepEvent::Finished);
        tally.record(
            "b",
            &StepEvent::Failed {
                error: "exit 1".into(),
                stderr_tail: String::new(),
            },
        );
        tally.record("c", &StepEvent::Started { attempt: 2 });
        tally.record("e", &StepEvent::AlreadyDone);
        assert_eq!(tally.summary(), "2 done, 2 running, 1 failed");
        tally.record("d", &StepEvent::Waiting);
        assert_eq!(tally.summary(), "2 done, 1 running, 1 waiting, 1 failed");
        for i in 0..12 {
            tally.record(
                &format!("f{i}"),
                &StepEvent::Failed {
                    error: "x".into(),
                    stderr_tail: String::new(),
                },
            );
        }
        assert_eq!(
            tally.summary(),
            "2 done, 1 running, 1 waiting, 13 failed (3 failures not shown: `cluster-upgrade status`)"
        );
    }

    /// A writer that stalls until released, like a pipe nobody reads.
    #[derive(Clone)]
    struct Stalled {
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, released) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = released.wait(open).unwrap();
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_does_not_hold_the_work_and_loses_no_line() {
        let out = Stalled {
            gate: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
            written: Arc::new(Mutex::new(Vec::new())),
        };
        let progress = PlainProgress::new(out.clone());
        // Far more than a pipe buffer holds; every call returns while the writer is stuck.
        for i in 0..20_000 {
            progress.host_event(
                &"s".into(),
                &format!("h{i}").parse().unwrap(),
                &StepEvent::Finished,
            );
        }
        assert!(out.written.lock().unwrap().is_empty());
        *out.gate.0.lock().unwrap() = true;
        out.gate.1.notify_all();
        progress.finish();
        let text = String::from_utf8(out.written.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        assert_eq!(text.lines().last(), Some("  h19999: done"));
    }
}
