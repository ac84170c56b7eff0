//! One file per subcommand; each returns data or an [`Error`](crate::error::Error), and prints
//! only through the functions of `report`.

mod apply;
mod check;
mod hosts;
mod inputs;
mod open_files;
mod plan;
mod recover;
mod run;
mod status;

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
    }
}
