//! Human-written durations (`500ms`, `10s`, `2m`, `1h30m`) used by the inventory and playbooks.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written with units. Serializes back to the same notation so a saved plan reads
/// like the playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration(Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a duration like 500ms, 10s, 2m or 1h30m")]
pub struct DurationError;

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(millis))
    }

    /// The duration itself.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<HumanDuration> for Duration {
    fn from(duration: HumanDuration) -> Duration {
        duration.0
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<HumanDuration, DurationError> {
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(DurationError);
        }
        let mut total_ms: u64 = 0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or(DurationError)?;
            if digits == 0 {
                return Err(DurationError);
            }
            let amount: u64 = rest[..digits].parse().map_err(|_| DurationError)?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(DurationError),
            };
            rest = &rest[unit_len..];
            total_ms = amount
                .checked_mul(scale)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or(DurationError)?;
        }
        Ok(HumanDuration::from_millis(total_ms))
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = DurationError;
    fn try_from(text: String) -> Result<HumanDuration, DurationError> {
        text.parse()
    }
}

impl From<HumanDuration> for String {
    fn from(duration: HumanDuration) -> String {
        duration.to_string()
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let (h, m, s, rest_ms) = (
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1_000 % 60,
            ms % 1_000,
        );
        for (amount, unit) in [(h, "h"), (m, "m"), (s, "s"), (rest_ms, "ms")] {
            if amount > 0 {
                write!(f, "{amount}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(
            "500ms".parse::<HumanDuration>().unwrap().get(),
            Duration::from_millis(500)
        );
        assert_eq!(
            "10s".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(10)
        );
        assert_eq!(
            "2m".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(120)
        );
        assert_eq!(
            "1h30m".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(5400)
        );
        for bad in ["", "10", "s", "10 s", "1.5s", "10sec", "-1s"] {
            assert!(
                bad.parse::<HumanDuration>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn displays_back_in_the_same_notation() {
        for text in ["500ms", "10s", "2m", "1h30m", "1m0s500ms"] {
            let parsed: HumanDuration = text.parse().unwrap();
            let again: HumanDuration = parsed.to_string().parse().unwrap();
            assert_eq!(parsed, again);
        }
        assert_eq!(HumanDuration::from_secs(90).to_string(), "1m30s");
    }
}
