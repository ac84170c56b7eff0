//! Everything the user sees: the plan view, the facts table. Library code returns data; only
//! this module turns it into text for the terminal.

mod plan_view;
mod table;

use std::io::Write;

pub use plan_view::{render_facts, render_plan};

/// Writes data to stdout (a closed pipe, as with `| head`, is not an error worth a panic).
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes a note for the operator to stderr, leaving stdout to data.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
