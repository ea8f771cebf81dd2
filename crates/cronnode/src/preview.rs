//! The slot preview shared by `cronnode next` and the API's `GET /v1/schedule`: the next slots
//! of an expression, and the instant they start after.
//!
//! A leaf: it knows neither the command line nor HTTP; each caller turns its errors into an
//! exit status or an error answer.

use chrono::{DateTime, SecondsFormat, Utc};
use cron_core::Schedule;

/// Largest `-n` accepted (by `cronnode next` and by `GET /v1/schedule`).
pub const MAX_PREVIEW: usize = 1000;
/// Default number of slots printed.
pub const DEFAULT_PREVIEW: usize = 5;

/// The next `n` slots of `frequency` in `tz` strictly after `from`, as RFC3339 UTC strings.
pub fn preview(
    frequency: &str,
    tz: Option<&str>,
    from: DateTime<Utc>,
    n: usize,
) -> Result<Vec<String>, String> {
    if n == 0 || n > MAX_PREVIEW {
        return Err(format!("n: {n} is out of range 1-{MAX_PREVIEW}"));
    }
    let schedule = Schedule::parse(frequency, tz).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(n);
    let mut at = from;
    while out.len() < n {
        match schedule.next_after(at) {
            Some(slot) => {
                out.push(slot.to_rfc3339_opts(SecondsFormat::Secs, true));
                at = slot;
            }
            None => break,
        }
    }
    Ok(out)
}

/// Parses an RFC3339 instant, naming the argument when it is not one.
pub fn parse_instant(name: &str, text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{name}: {text:?} is not an RFC3339 instant such as 2026-03-29T01:00:00Z ({e})")
        })
}
