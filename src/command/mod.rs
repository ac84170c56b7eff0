//! One file per subcommand; each returns data or an [`Error`](crate::error::Error), and prints
//! only through the functions of `report`.

mod apply;
mod begin;
mod check;
mod inputs;
mod migrate;
mod plan;
mod plan_file;
mod preflight;
mod recover;
mod resume;
mod rollback;
mod run;
mod runs;
mod state;
mod status;

use crate::cli::Settings;
use crate::error::Error;

/// Runs a command with its settings.
pub fn run(settings: Settings) -> Result<(), Error> {
    match settings {
        Settings::Check(input) => check::check(&input),
        Settings::Plan(settings) => plan::plan(&settings),
        Settings::Apply(settings) => apply::apply(&settings),
        Settings::Status(settings) => status::status(&settings),
        Settings::Recover(settings) => recover::recover(&settings),
        Settings::Migrate(settings) => migrate::migrate(&settings),
        Settings::Rollback(settings) => rollback::rollback(&settings),
        Settings::Runs(place) => runs::list(&place),
        Settings::Abandon(settings) => runs::abandon(&settings),
        Settings::Prune(settings) => runs::prune(&settings),
    }
}
