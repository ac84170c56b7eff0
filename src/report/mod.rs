//! Everything the user sees: the plan view, the facts table, progress, run summaries. Library
//! code returns data or emits events; only this module turns them into text for the terminal.

mod log_file;
mod plan_view;
mod progress;
mod resume_view;
mod run_view;
mod runs_view;
mod table;

use std::io::Write;

pub use log_file::{log_to_file, set_verbose, verbose, LogFileWriter};
pub use plan_view::{render_facts, render_plan};
pub use progress::{PlainProgress, TerminalProgress};
pub use resume_view::render_resume;
pub use run_view::render_run;
pub use runs_view::{render_runs, RunLine};

/// Writes data to stdout (a closed pipe, as with `| head`, is not an error worth a panic).
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Copies data to stdout from `source` (a saved plan file), without holding it in memory.
pub fn print_from(source: &mut dyn std::io::Read) {
    let mut out = std::io::stdout().lock();
    let _ = std::io::copy(source, &mut out);
    let _ = out.flush();
}

/// Writes a note for the operator to stderr, leaving stdout to data.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
