//! The slot preview shared by `cronnode next` and the API's `GET /v1/schedule`: the next slots
//! of an expression (also in its zone, each marked when the zone's UTC offset changed since
//! the slot before: a daylight-saving change), and the instant they start after.
//!
//! A leaf: it knows neither the command line nor HTTP; each caller turns its errors into an
//! exit status or an error answer.

use chrono::{DateTime, Offset, SecondsFormat, Utc};
use chrono_tz::Tz;
use cron_core::Schedule;

/// Largest `-n` accepted (by `cronnode next` and by `GET /v1/schedule`).
pub const MAX_PREVIEW: usize = 1000;
/// Default number of slots printed.
pub const DEFAULT_PREVIEW: usize = 5;

/// One previewed slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewSlot {
    /// The slot.
    pub utc: DateTime<Utc>,
    /// The same instant in the schedule's zone, RFC3339 with the zone's offset then.
    pub local: String,
    /// The zone's UTC offset at this slot differs from the one at the slot before (for the
    /// first slot: at `from`): a daylight-saving change happened in between.
    pub offset_changed: bool,
}

/// The next `n` slots of `frequency` in `tz` strictly after `from`.
pub fn preview_slots(
    frequency: &str,
    tz: Option<&str>,
    from: DateTime<Utc>,
    n: usize,
) -> Result<Vec<PreviewSlot>, String> {
    if n == 0 || n > MAX_PREVIEW {
        return Err(format!("n: {n} is out of range 1-{MAX_PREVIEW}"));
    }
    let schedule = Schedule::parse(frequency, tz).map_err(|e| e.to_string())?;
    // The schedule parsed the zone already: this cannot fail, and UTC is right if it did.
    let zone: Tz = schedule.timezone().parse().unwrap_or(Tz::UTC);
    let mut offset = from.with_timezone(&zone).offset().fix();
    Ok(schedule
        .upcoming(from)
        .take(n)
        .map(|utc| {
            let local = utc.with_timezone(&zone);
            let changed = local.offset().fix() != offset;
            offset = local.offset().fix();
            PreviewSlot {
                utc,
                local: local.to_rfc3339_opts(SecondsFormat::Secs, true),
                offset_changed: changed,
            }
        })
        .collect())
}

/// The next `n` slots of `frequency` in `tz` strictly after `from`, as RFC3339 UTC strings.
pub fn preview(
    frequency: &str,
    tz: Option<&str>,
    from: DateTime<Utc>,
    n: usize,
) -> Result<Vec<String>, String> {
    Ok(preview_slots(frequency, tz, from, n)?
        .iter()
        .map(|s| s.utc.to_rfc3339_opts(SecondsFormat::Secs, true))
        .collect())
}

/// Parses an RFC3339 instant, naming the argument when it is not one.
pub fn parse_instant(name: &str, text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{name}: {text:?} is not an RFC3339 instant such as 2026-03-29T01:00:00Z ({e})")
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn daylight_saving_changes_are_marked() {
        // Berlin leaves CET (+01:00) for CEST (+02:00) on 2026-03-29 at 02:00 local.
        let from = parse_instant("from", "2026-03-27T12:00:00Z").unwrap();
        let slots = preview_slots("0 9 * * *", Some("Europe/Berlin"), from, 4).unwrap();
        let local: Vec<&str> = slots.iter().map(|s| s.local.as_str()).collect();
        assert_eq!(
            local,
            [
                "2026-03-28T09:00:00+01:00",
                "2026-03-29T09:00:00+02:00",
                "2026-03-30T09:00:00+02:00",
                "2026-03-31T09:00:00+02:00"
            ]
        );
        let changed: Vec<bool> = slots.iter().map(|s| s.offset_changed).collect();
        assert_eq!(changed, [false, true, false, false]);
        assert_eq!(slots[1].utc.to_rfc3339(), "2026-03-29T07:00:00+00:00");
        // The first slot is compared with the offset at `from`.
        let from = parse_instant("from", "2026-03-29T00:30:00Z").unwrap();
        let slots = preview_slots("0 9 * * *", Some("Europe/Berlin"), from, 1).unwrap();
        assert!(slots[0].offset_changed);
        // UTC never changes; the strings are what `cronnode next` prints.
        let slots = preview_slots("@hourly", None, from, 3).unwrap();
        assert!(slots
            .iter()
            .all(|s| !s.offset_changed && s.local.ends_with('Z')));
        assert_eq!(
            preview("@hourly", None, from, 1).unwrap(),
            ["2026-03-29T01:00:00Z"]
        );
        assert!(preview_slots("@hourly", None, from, 0)
            .unwrap_err()
            .starts_with("n:"));
    }
}
