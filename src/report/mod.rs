//! Everything the user sees: the plan view, the facts table. Library code returns data; only
//! this module turns it into text for the terminal.

mod plan_view;
mod table;

pub use plan_view::{render_facts, render_plan};
