//! One file per subcommand; each returns data or an [`Error`](crate::error::Error), and prints
//! only through the functions of `report`.

mod check;
mod inputs;
mod plan;

pub use check::check;
pub use plan::plan;

use crate::cli::{Cli, Command};
use crate::error::Error;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Check(args) => check(&args),
        Command::Plan(args) => plan(&args),
    }
}
