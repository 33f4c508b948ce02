//! Durations on the command line: humantime (`1m30s`, `250ms`) or a bare number of seconds.

use std::time::Duration;

/// The longest duration accepted anywhere, so that every value fits Redis' millisecond counters.
const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration that may be zero (`--wait`, `--min-hold`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err("negative durations are not allowed".into());
    }
    let duration = match text.parse::<f64>() {
        // flock(1) and timeout(1) take plain seconds; so do we.
        Ok(seconds) if seconds.is_finite() => {
            Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' is out of range"))?
        }
        _ => humantime::parse_duration(text)
            .map_err(|e| format!("expected a duration like 30s, 1m30s or 250ms ({e})"))?,
    };
    if duration > MAX {
        return Err(format!("'{text}' is longer than the maximum of 365 days"));
    }
    Ok(duration)
}

/// Parses a duration that must be at least a millisecond (`--ttl`, `--heartbeat`, `--kill-after`).
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(duration)
}

/// Formats a duration for people: `3m12s`, `450ms`, to the precision that matters.
pub fn human(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = if ms < 10_000 {
        // Below ten seconds a tenth is still worth showing.
        return format!("{:.1}s", duration.as_secs_f64());
    } else {
        duration.as_secs()
    };
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_humantime_and_plain_seconds() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage_negative_zero_and_huge() {
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert!(parse_duration("-1").unwrap_err().contains("negative"));
        assert!(parse_duration("400d").unwrap_err().contains("maximum"));
        assert!(parse_duration("1e30").is_err());
        assert!(parse_positive("0s").unwrap_err().contains("at least"));
        assert!(parse_positive("0").is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human(Duration::from_millis(450)), "450ms");
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human(Duration::from_secs(192)), "3m12s");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_secs(90061)), "1d1h1m1s");
    }
}
