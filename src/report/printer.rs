//! The one printer: decides where output goes. Data on stdout, notes, logs and progress on
//! stderr; progress bars only on a terminal and never with `-v`; colour (ANSI) only on a
//! terminal and never with `NO_COLOR`; the confirmation prompt asked on stderr and read from
//! stdin, and only when stdin is a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::OnceLock;

/// What the printer knows of where it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printer {
    /// stderr is a terminal (not a file or a pipe).
    pub stderr_terminal: bool,
    /// stdin is a terminal: a question can be asked.
    pub stdin_terminal: bool,
    /// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
    pub no_color: bool,
    /// `-v`: logs go to stderr, so no progress bars over them.
    pub verbose: bool,
    /// `--json`: stdout carries JSON only; views for people go to stderr.
    pub json: bool,
}

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKind {
    /// Spinners or a summary bar, redrawn in place (a terminal, not verbose).
    Bars,
    /// One plain line per event (a file, a pipe, or `-v`).
    Lines,
    /// One JSON object per event on stdout (`--json`).
    Json,
}

/// The operator's answer to a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// No terminal to ask on (stdin is a file or a pipe): nobody can say yes.
    NoTerminal,
}

static PRINTER: OnceLock<Printer> = OnceLock::new();

impl Printer {
    /// The printer of this process, from its standard streams and environment.
    pub fn detect(verbose: bool, json: bool) -> Printer {
        Printer {
            stderr_terminal: std::io::stderr().is_terminal(),
            stdin_terminal: std::io::stdin().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            verbose,
            json,
        }
    }

    /// Sets the printer of this process (once, at start; later calls keep the first).
    pub fn install(self) -> Printer {
        *PRINTER.get_or_init(|| self)
    }

    /// The printer of this process (detected without `-v` if none was installed).
    pub fn current() -> Printer {
        *PRINTER.get_or_init(|| Printer::detect(false, false))
    }

    /// ANSI colour in what goes to stderr (logs included).
    pub fn colour(&self) -> bool {
        self.stderr_terminal && !self.no_color
    }

    pub fn progress(&self) -> ProgressKind {
        if self.json {
            ProgressKind::Json
        } else if self.stderr_terminal && !self.verbose {
            ProgressKind::Bars
        } else {
            ProgressKind::Lines
        }
    }

    /// Writes data to stdout (a closed pipe, as with `| head`, is not an error worth a panic).
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Writes a view for people (a plan, a table): on stdout, or on stderr when stdout carries
    /// JSON.
    pub fn view(&self, text: &str) {
        if self.json {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        } else {
            self.data(text);
        }
    }

    /// Writes one JSON value as a line on stdout.
    pub fn json_line(&self, value: &serde_json::Value) {
        self.data(&format!("{value}\n"));
    }

    /// Writes a note for the operator to stderr, leaving stdout to data.
    pub fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// Asks `question` on stderr and reads the answer from stdin; only "y" or "yes" is yes.
    pub fn ask(&self, question: &str) -> Answer {
        if !self.stdin_terminal {
            return Answer::NoTerminal;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question} [y/N] ");
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        Answer::of(&answer)
    }
}

impl Answer {
    /// What a typed line means.
    pub fn of(line: &str) -> Answer {
        match line.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Answer::Yes,
            _ => Answer::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer(stderr_terminal: bool, no_color: bool, verbose: bool) -> Printer {
        Printer {
            stderr_terminal,
            stdin_terminal: true,
            no_color,
            verbose,
            json: false,
        }
    }

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(printer(true, false, false).colour());
        assert!(
            printer(true, false, true).colour(),
            "-v logs on a terminal keep colour"
        );
        assert!(!printer(true, true, false).colour());
        assert!(
            !printer(false, false, false).colour(),
            "a file or pipe gets no ANSI"
        );
        assert!(
            !printer(false, false, true).colour(),
            "-v logs to a file get no ANSI"
        );
    }

    #[test]
    fn bars_only_on_a_terminal_without_verbose_logs() {
        assert_eq!(printer(true, false, false).progress(), ProgressKind::Bars);
        assert_eq!(printer(true, true, false).progress(), ProgressKind::Bars);
        assert_eq!(printer(true, false, true).progress(), ProgressKind::Lines);
        assert_eq!(printer(false, false, false).progress(), ProgressKind::Lines);
        let json = Printer {
            json: true,
            ..printer(true, false, false)
        };
        assert_eq!(
            json.progress(),
            ProgressKind::Json,
            "--json: events, not bars"
        );
    }

    #[test]
    fn only_y_or_yes_is_yes() {
        for yes in ["y", "Y", "yes", "YES", " Yes\n"] {
            assert_eq!(Answer::of(yes), Answer::Yes, "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "sure", "y e s"] {
            assert_eq!(Answer::of(no), Answer::No, "{no:?}");
        }
    }

    #[test]
    fn without_a_terminal_nobody_is_asked() {
        let printer = Printer {
            stdin_terminal: false,
            ..printer(true, false, false)
        };
        assert_eq!(printer.ask("Apply?"), Answer::NoTerminal);
    }
}
