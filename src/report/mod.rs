//! Everything the user sees: the plan view, the facts table, progress, run summaries. Library
//! code returns data or emits events; only this module turns them into text for the terminal.

mod events;
mod log_file;
mod plan_view;
mod printer;
mod progress;
mod resume_view;
mod run_view;
mod runs_view;
mod table;

pub use events::{emit, JsonProgress, EVENTS_SCHEMA};
pub use log_file::{log_to_file, LogFileWriter};
pub use plan_view::{render_facts, render_plan};
pub use printer::{Answer, Printer, ProgressKind};
pub use progress::{PlainProgress, TerminalProgress};
pub use resume_view::render_resume;
pub use run_view::{render_run, run_json, took, Journalled};
pub use runs_view::{render_prune, render_runs, runs_json, RunLine};

/// Writes a view for people to stdout (to stderr under `--json`), through the [`Printer`].
pub fn print(text: &str) {
    Printer::current().view(text);
}

/// Writes one JSON value as a line on stdout, through the [`Printer`].
pub fn json(value: &serde_json::Value) {
    Printer::current().json_line(value);
}

/// Copies data to stdout from `source` (a saved plan file), without holding it in memory.
pub fn print_from(source: &mut dyn std::io::Read) {
    let mut out = std::io::stdout().lock();
    let _ = std::io::copy(source, &mut out);
    let _ = std::io::Write::flush(&mut out);
}

/// Writes a note for the operator to stderr, through the process's [`Printer`].
pub fn note(text: &str) {
    Printer::current().note(text);
}
