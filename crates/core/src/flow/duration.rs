//! Durations as admins write them in flow files: `5s`, `500ms`, `2m`, `1h30m`.
//!
//! Owns the text form and its parsing only. It knows nothing of where a duration is used,
//! so limits that depend on the use (a timeout must not be zero, ...) live with the checks.

use std::fmt;
use std::time::Duration;

/// The hint shown with every malformed duration, so admins learn the form from the error.
pub const DURATION_FORMS: &str = "a duration like 5s or 500ms";

/// A duration that could not be read. `found` is the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {DURATION_FORMS}, found '{found}'")]
pub struct DurationError {
    pub found: String,
    /// A short suggestion when the mistake is recognisable (a number without a unit).
    pub help: Option<String>,
}

/// Reads `1h30m`, `2m`, `5s`, `500ms` and combinations of them, largest unit first.
/// Units: `h`, `m`, `s`, `ms`; each at most once; whole numbers only.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |help: Option<String>| DurationError {
        found: text.to_owned(),
        help,
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(fail(None));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(Some(format!(
            "add a unit: {s}s for seconds, {s}ms for milliseconds"
        ))));
    }
    // Rank of the last unit seen: units must come largest first and only once.
    let mut last_rank = u8::MAX;
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail(None));
        }
        let (number, after) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| fail(None))?;
        let (rank, unit_ms, after) = if let Some(a) = after.strip_prefix("ms") {
            (0u8, 1u64, a)
        } else if let Some(a) = after.strip_prefix('h') {
            (3, 3_600_000, a)
        } else if let Some(a) = after.strip_prefix('m') {
            (2, 60_000, a)
        } else if let Some(a) = after.strip_prefix('s') {
            (1, 1_000, a)
        } else {
            return Err(fail(None));
        };
        if rank >= last_rank {
            return Err(fail(Some(
                "write each unit once, largest first, as in 1h30m".to_owned(),
            )));
        }
        last_rank = rank;
        let ms = value.checked_mul(unit_ms).ok_or_else(|| fail(None))?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| fail(None))?;
        rest = after;
    }
    Ok(total)
}

/// Prints a duration in the same form the parser reads, e.g. `1h30m`, `500ms`, `0s`.
pub struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_ms = self.0.as_millis();
        if total_ms == 0 {
            return f.write_str("0s");
        }
        let h = total_ms / 3_600_000;
        let m = (total_ms / 60_000) % 60;
        let s = (total_ms / 1_000) % 60;
        let ms = total_ms % 1_000;
        for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
            if v != 0 {
                write!(f, "{v}{unit}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn reads_the_documented_forms() {
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1m30s250ms"), Duration::from_millis(90_250));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok(" 3s "), Duration::from_secs(3));
    }

    #[test]
    fn rejects_with_a_message_that_shows_the_form() {
        let e = parse_duration("5 secs").unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a duration like 5s or 500ms, found '5 secs'"
        );
        assert_eq!(e.help, None);
        let e = parse_duration("5").unwrap_err();
        assert_eq!(
            e.help.as_deref(),
            Some("add a unit: 5s for seconds, 5ms for milliseconds")
        );
        for bad in ["", "s", "5x", "1.5s", "-5s", "5sm", "30m1h", "5s5s", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn huge_numbers_fail_instead_of_overflowing() {
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["1h30m", "500ms", "5s", "2m", "1m30s250ms", "0s"] {
            assert_eq!(DisplayDuration(ok(s)).to_string(), s);
        }
    }
}
