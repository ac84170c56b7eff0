//! The `cluster-upgrade` binary: parse arguments, set up logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

use cluster_upgrade::cli::{self, Cli, Invocation};
use cluster_upgrade::command;
use cluster_upgrade::report::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json_output();
    let printer = Printer::detect(cli.verbose > 0, json).install();
    init_logging(cli.verbose, printer);
    let settings = match cli.invocation() {
        Invocation::Run(settings) => *settings,
        Invocation::Completions(shell) => {
            // Through the printer: a closed pipe (`| head`) is not worth a panic.
            printer.data(&cli::completions(shell));
            return ExitCode::SUCCESS;
        }
        Invocation::Man(dir) => {
            return match cli::write_man_pages(&dir) {
                Ok(pages) => {
                    printer.note(&format!(
                        "wrote {} man pages into {}",
                        pages.len(),
                        dir.display()
                    ));
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    printer.note(&format!(
                        "error: {}: cannot write the man pages: {error}",
                        dir.display()
                    ));
                    ExitCode::from(cluster_upgrade::error::exit::INVALID_INPUT)
                }
            };
        }
    };
    match command::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = cluster_upgrade::error::chain(&error);
            printer.note(&format!("error: {message}"));
            if json {
                // `--json` prints JSON in every outcome: the error too, on stdout.
                let value = serde_json::json!({
                    "error": message,
                    "kind": error.kind(),
                    "exit_code": error.exit_code(),
                });
                printer.data(&format!("{value}\n"));
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Warnings always reach stderr; `-v` adds debug and `-vv` trace logs. A run's log file gets
/// debug logs too. ANSI escapes in remote output are escaped (tracing-subscriber ≥ 0.3.20);
/// the logs themselves are coloured only on a terminal without `NO_COLOR` (the printer's call).
fn init_logging(verbose: u8, printer: Printer) {
    use tracing_subscriber::filter::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

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
                .with_ansi(printer.colour())
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
