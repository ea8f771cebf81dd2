//! Go-style durations (`90s`, `1h30m`, `1.5h`, `500ms`): the `@every` argument and the catch-up
//! window. Pure text to [`Duration`]; no calendar, no zone.

use std::time::Duration;

use super::ScheduleError;

/// The units Go's `time.ParseDuration` accepts, in nanoseconds.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Longest duration accepted: far beyond any window or period we allow, small enough that no
/// arithmetic on it overflows.
const MAX_NANOS: u128 = 100 * 365 * 24 * 3_600_000_000_000;

/// Parses a Go-style duration (`90s`, `1h30m`, `1.5h`, `500ms`, `0`). Negative durations and
/// bare numbers other than `0` are refused.
pub fn parse_duration(text: &str) -> Result<Duration, ScheduleError> {
    let bad = |why: &str| ScheduleError::Duration {
        text: text.to_string(),
        message: why.to_string(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("is empty; expected e.g. 90s, 1h30m, 500ms"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(bad("is negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad("expected a number before each unit (e.g. 1h30m)"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                bad("a number needs a unit (ns, us, ms, s, m, h)")
            } else {
                bad(&format!(
                    "unknown unit {unit:?}; allowed: ns, us, ms, s, m, h"
                ))
            });
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad("is too long"))?
        };
        let mut part = int.checked_mul(scale).ok_or_else(|| bad("is too long"))?;
        // Fractions are exact to the nanosecond; digits beyond that are dropped, as Go does.
        let mut unit_scale = scale;
        for d in frac.bytes().take(30) {
            unit_scale /= 10;
            part += u128::from(d - b'0') * unit_scale;
        }
        total = total.checked_add(part).ok_or_else(|| bad("is too long"))?;
        if total > MAX_NANOS {
            return Err(bad("is too long (at most 100 years)"));
        }
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad("is too long"))?;
    // `total % 1e9` is below 1e9, so it always fits.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("90s"), Duration::from_secs(90));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("2h45m30.5s"), Duration::from_millis(9_930_500));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("1us"), Duration::from_micros(1));
        assert_eq!(d("168h"), Duration::from_secs(7 * 86400));
    }

    #[test]
    fn refusals_say_why() {
        let e = |s| parse_duration(s).unwrap_err().to_string();
        assert_eq!(
            e("10"),
            "duration \"10\": a number needs a unit (ns, us, ms, s, m, h)"
        );
        assert_eq!(
            e("5d"),
            "duration \"5d\": unknown unit \"d\"; allowed: ns, us, ms, s, m, h"
        );
        assert_eq!(e("-1s"), "duration \"-1s\": is negative");
        assert_eq!(
            e(""),
            "duration \"\": is empty; expected e.g. 90s, 1h30m, 500ms"
        );
        assert!(e("h").contains("expected a number"));
        assert!(e("1..5s").contains("expected a number"));
        assert!(e("999999999999h").contains("too long"));
    }
}
