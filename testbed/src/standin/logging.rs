//! The daemon's log lines on stderr, shaped like go-log's console output
//! (`<time>\t<LEVEL>\t<component>\t<message>`) so that tests and the lab can grep the same
//! texts as on a real peer. This is the only place the service writes logs from.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity of a log line, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    /// go-log's `fatal` (also stands for `dpanic` and `panic`): as a threshold, it hides errors.
    Fatal,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
}

/// Writes one log line (messages may span several lines, like the real banners).
pub fn log(level: Level, component: &str, message: &str) {
    // One write call per line group so lines of concurrent threads do not interleave.
    let line = format!(
        "{}\t{}\t{}\t{}\n",
        timestamp(),
        level.label(),
        component,
        message
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(component: &str, message: &str) {
    log(Level::Info, component, message);
}

pub fn warn(component: &str, message: &str) {
    log(Level::Warn, component, message);
}

pub fn error(component: &str, message: &str) {
    log(Level::Error, component, message);
}

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns debug lines on (`--debug`, `--loglevel debug`).
pub fn enable_debug() {
    DEBUG.store(true, Ordering::Relaxed);
}

pub fn debug(component: &str, message: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        log(Level::Debug, component, message);
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// RFC 3339 UTC time with milliseconds, computed without a date crate.
pub fn timestamp() -> String {
    let ms = unix_millis();
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_416), (2025, 11, 24));
    }
}
