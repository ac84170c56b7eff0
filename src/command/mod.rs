//! One file per subcommand; each returns data or an [`Error`](crate::error::Error), and prints
//! only through the functions of `report`.

mod apply;
mod check;
mod hosts;
mod inputs;
mod open_files;
mod plan;
mod plan_file;
mod preflight;
mod recover;
mod resume;
mod run;
mod runs;
mod state;
mod status;

pub use plan_file::PlanFileError;

use crate::cli::{Cli, Command};
use crate::error::Error;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Check(args) => check::check(&args),
        Command::Plan(args) => plan::plan(&args),
        Command::Apply(args) => apply::apply(&args),
        Command::Status(args) => status::status(&args),
        Command::Recover(args) => recover::recover(&args),
        Command::Runs(args) => runs::runs(&args),
    }
}
