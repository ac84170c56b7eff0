//! A run's identifier, `YYYYMMDDTHHMMSSZ-xxxx`: it names the run's directory under `runs/`, so
//! only that exact shape is accepted (a plan file saying `"run_id": "../../x"` is refused when it
//! is read, never joined to a path).

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// `20261204T175237Z-1a2b`: UTC time of the plan, then four hex digits that keep two plans of
/// one second apart. Sorts by time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// Why a run id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a run id (expected YYYYMMDDTHHMMSSZ-xxxx, as `cluster-upgrade plan` makes them)"
)]
pub struct RunIdError(pub String);

impl RunId {
    /// A new id for a plan made at `now`.
    pub fn at(now: SystemTime) -> RunId {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = now.as_secs();
        let (days, rest) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days as i64);
        RunId(format!(
            "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z-{:04x}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60,
            now.subsec_micros() % 0x10000
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RunId {
    type Err = RunIdError;
    fn from_str(text: &str) -> Result<RunId, RunIdError> {
        let bytes = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
        let valid = bytes.len() == 21
            && digits(0..8)
            && bytes[8] == b'T'
            && digits(9..15)
            && bytes[15] == b'Z'
            && bytes[16] == b'-'
            && bytes[17..]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        if valid {
            Ok(RunId(text.to_string()))
        } else {
            Err(RunIdError(text.chars().take(80).collect()))
        }
    }
}

impl TryFrom<String> for RunId {
    type Error = RunIdError;
    fn try_from(text: String) -> Result<RunId, RunIdError> {
        text.parse()
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
/// `2026-12-04 17:52:37 UTC` for a Unix time.
pub fn utc_text(unix: u64) -> String {
    let (days, rest) = (unix / 86_400, unix % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn a_generated_id_reads_back_and_sorts_by_time() {
        let early = RunId::at(UNIX_EPOCH + Duration::from_secs(1_796_400_000));
        let late = RunId::at(UNIX_EPOCH + Duration::from_secs(1_796_400_001));
        assert_eq!(early.as_str().parse::<RunId>().unwrap(), early);
        assert!(early < late);
        assert!(early.as_str().starts_with("20261204T"), "{early}");
    }

    #[test]
    fn anything_but_the_generated_shape_is_refused() {
        for bad in [
            "",
            "../../../../tmp/x",
            "20261204T175237Z-1a2b/..",
            "20261204T175237Z-1A2B",
            "20261204T175237Z_1a2b",
            "2026120xT175237Z-1a2b",
            "20261204T175237Z-1a2b3",
        ] {
            assert!(bad.parse::<RunId>().is_err(), "{bad}");
        }
        assert!("20261204T175237Z-1a2b".parse::<RunId>().is_ok());
        let error = serde_json::from_str::<RunId>("\"../x\"").unwrap_err();
        assert!(error.to_string().contains("is not a run id"), "{error}");
    }
}
