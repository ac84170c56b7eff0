//! Progress of `apply`: one spinner per host on a terminal, plain lines otherwise. Both write
//! to stderr, so stdout stays for data; neither blocks the work (indicatif draws at its own pace).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{Reporter, StepEvent};

/// Plain lines: `[3/9] Stop every peer`, then one line per host event.
#[derive(Debug, Default)]
pub struct PlainProgress {
    out: Mutex<()>,
}

impl Reporter for PlainProgress {
    fn step(&self, index: usize, total: usize, id: &str, name: &str) {
        let _guard = self.out.lock();
        let _ = writeln!(std::io::stderr(), "[{index}/{total}] {name} ({id})");
    }

    fn host_event(&self, _step: &str, host: &str, event: &StepEvent) {
        let _guard = self.out.lock();
        let _ = writeln!(std::io::stderr(), "  {host}: {}", describe(event));
    }
}

/// One spinner per host showing its current step.
pub struct TerminalProgress {
    bars: HashMap<String, ProgressBar>,
    step: Mutex<String>,
}

impl TerminalProgress {
    pub fn new(hosts: &[String]) -> TerminalProgress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = hosts.iter().map(String::len).max().unwrap_or(4);
        let style =
            ProgressStyle::with_template(&format!("{{spinner}} {{prefix:<{width}}}  {{wide_msg}}"))
                .expect("valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let bars = hosts
            .iter()
            .map(|host| {
                let bar = multi.add(
                    ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_prefix(host.clone()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar.set_message("waiting");
                (host.clone(), bar)
            })
            .collect();
        TerminalProgress {
            bars,
            step: Mutex::new(String::new()),
        }
    }

    /// Stops the spinners, leaving their last line on screen.
    pub fn finish(&self) {
        for bar in self.bars.values() {
            bar.finish();
        }
    }
}

impl Reporter for TerminalProgress {
    fn step(&self, index: usize, total: usize, _id: &str, name: &str) {
        *self.step.lock().expect("progress lock") = format!("[{index}/{total}] {name}");
    }

    fn host_event(&self, _step: &str, host: &str, event: &StepEvent) {
        if let Some(bar) = self.bars.get(host) {
            let step = self.step.lock().expect("progress lock").clone();
            bar.set_message(format!("{step}: {}", describe(event)));
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
        StepEvent::Failed { error } => format!("FAILED: {error}"),
    }
}
