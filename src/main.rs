//! The `cluster-upgrade` binary: parse arguments, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

use cluster_upgrade::cli::Cli;
use cluster_upgrade::command;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let json = cli.json_output();
    match command::run(cli.settings()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = cluster_upgrade::error::chain(&error);
            eprintln!("error: {message}");
            if json {
                // `--json` prints JSON in every outcome: the error too, on stdout.
                let value = serde_json::json!({
                    "error": message,
                    "kind": error.kind(),
                    "exit_code": error.exit_code(),
                });
                println!("{value}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Warnings always reach stderr; `-v` adds debug and `-vv` trace logs. A run's log file gets
/// debug logs too. ANSI escapes in remote output are escaped (tracing-subscriber ≥ 0.3.20).
fn init_logging(verbose: u8) {
    use tracing_subscriber::filter::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    cluster_upgrade::report::set_verbose(verbose > 0);
    let level = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let terminal = EnvFilter::try_from_env("CLUSTER_UPGRADE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("cluster_upgrade={level},warn")));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(terminal),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(cluster_upgrade::report::LogFileWriter)
                .with_filter(EnvFilter::new("cluster_upgrade=debug,warn")),
        )
        .init();
}
