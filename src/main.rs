//! The `cluster-upgrade` binary: parse arguments, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

use cluster_upgrade::cli::Cli;
use cluster_upgrade::command;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match command::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cluster_upgrade::error::chain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Warnings always reach stderr; `-v` adds debug and `-vv` trace logs. ANSI escapes in remote
/// output are not passed through (tracing-subscriber ≥ 0.3.20 escapes them).
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLUSTER_UPGRADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("cluster_upgrade={level},warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
