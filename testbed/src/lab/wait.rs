//! Polling with a deadline: every wait of the lab ends.

use std::time::{Duration, Instant};

use super::error::{LabError, Result};

/// Calls `probe` every `interval` until it returns `Some`, an error, or `limit` passes.
pub fn until<T>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if start.elapsed() >= limit {
            return Err(LabError::WaitTimeout {
                what: what.to_string(),
                seconds: limit.as_secs(),
            });
        }
        std::thread::sleep(interval);
    }
}

/// Parses the Go-style durations the lab passes to the peers (`500ms`, `3s`, `1m`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number * 60)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1h"), None);
    }

    #[test]
    fn a_wait_ends() {
        let mut calls = 0;
        let err = until(
            "nothing",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || {
                calls += 1;
                Ok(None::<()>)
            },
        );
        assert!(matches!(err, Err(LabError::WaitTimeout { .. })));
        assert!(calls >= 2);
        assert_eq!(
            until("now", Duration::ZERO, Duration::ZERO, || Ok(Some(7))).unwrap(),
            7
        );
    }
}
