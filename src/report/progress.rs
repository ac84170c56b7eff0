//! Progress of `apply`: one spinner per host on a terminal, plain lines otherwise. Both write
//! to stderr, so stdout stays for data; neither blocks the work: indicatif draws at its own
//! pace, and plain lines go through a queue to a writer thread, so a slow or stalled stderr
//! (a pipe nobody reads) never holds a host's step.

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{Reporter, StepEvent};

/// Plain lines: `[3/9] Stop every peer`, then one line per host event.
pub struct PlainProgress {
    lines: Mutex<Option<Sender<String>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
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
    fn step(&self, index: usize, total: usize, id: &str, name: &str) {
        self.line(format!("[{index}/{total}] {name} ({id})"));
    }

    fn host_event(&self, _step: &str, host: &str, event: &StepEvent) {
        self.line(format!("  {host}: {}", describe(event)));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

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
            progress.host_event("s", &format!("h{i}"), &StepEvent::Finished);
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
