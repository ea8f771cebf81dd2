//! The slot preview shared by `cronnode next` and the API's `GET /v1/schedule`: the next slots
//! of an expression (also in its zone, each marked when the zone's UTC offset changed since
//! the slot before: a daylight-saving change), and the instant they start after.
//!
//! A leaf: it knows neither the command line nor HTTP; each caller turns its errors into an
//! exit status or an error answer.

use chrono::{DateTime, Offset, SecondsFormat, Utc};
use chrono_tz::Tz;
use cron_core::{Job, JobSpec};

/// Largest `-n` accepted (by `cronnode next` and by `GET /v1/schedule`).
pub const MAX_PREVIEW: usize = 1000;
/// Default number of slots printed.
pub const DEFAULT_PREVIEW: usize = 5;

/// A job's life and spread for a preview: what `cronnode next --jitter --start-at --end-at
/// --id` and `GET /v1/schedule?jitter=&start_at=&end_at=&id=` take. The jitter's offsets depend
/// on the job id, so a preview with a jitter names the job.
#[derive(Debug, Clone, Default)]
pub struct Life<'a> {
    /// The job id the offsets are drawn for (`preview` when absent).
    pub id: Option<&'a str>,
    /// `jitter`, as in a job spec.
    pub jitter: Option<&'a str>,
    /// `start_at`, as in a job spec.
    pub start_at: Option<&'a str>,
    /// `end_at`, as in a job spec.
    pub end_at: Option<&'a str>,
}

/// The job a preview is about: the expression, the zone and the life, validated by cron-core
/// as a job spec would be (so its errors are the spec's: `jitter: ...`, `end_at: ...`).
fn preview_job(frequency: &str, tz: Option<&str>, life: &Life) -> Result<Job, String> {
    // Built from JSON, as a user's spec is: the preview takes whatever a spec takes, and
    // names no field of the spec it does not need.
    let mut spec = serde_json::json!({
        "id": life.id.unwrap_or("preview"),
        "function": {"app": "preview", "path": "/preview"},
        "frequency": frequency,
    });
    for (name, value) in [
        ("timezone", tz),
        ("jitter", life.jitter),
        ("start_at", life.start_at),
        ("end_at", life.end_at),
    ] {
        if let Some(v) = value {
            spec[name] = serde_json::Value::String(v.to_string());
        }
    }
    let spec = JobSpec::from_json(spec.to_string().as_bytes()).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| match e {
        // The expression's own errors read as before (`frequency: ` is implied).
        cron_core::JobError::Schedule(e) => e.to_string(),
        e => e.to_string(),
    })
}

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
    /// The instant the slot runs at, with the job's jitter (`None` without one).
    pub runs_at: Option<DateTime<Utc>>,
}

/// The next `n` slots of `frequency` in `tz` strictly after `from`, inside `life`'s start and
/// end, each with its jittered instant when `life` has a jitter.
pub fn preview_slots(
    frequency: &str,
    tz: Option<&str>,
    life: &Life,
    from: DateTime<Utc>,
    n: usize,
) -> Result<Vec<PreviewSlot>, String> {
    if n == 0 || n > MAX_PREVIEW {
        return Err(format!("n: {n} is out of range 1-{MAX_PREVIEW}"));
    }
    let job = preview_job(frequency, tz, life)?;
    // The schedule parsed the zone already: this cannot fail, and UTC is right if it did.
    let zone: Tz = job.schedule.timezone().parse().unwrap_or(Tz::UTC);
    let mut offset = from.with_timezone(&zone).offset().fix();
    let jittered = job.jitter().is_some();
    let mut t = from;
    Ok(std::iter::from_fn(|| {
        t = job.next_after(t)?;
        Some(t)
    })
    .take(n)
    .map(|utc| {
        let local = utc.with_timezone(&zone);
        let changed = local.offset().fix() != offset;
        offset = local.offset().fix();
        PreviewSlot {
            utc,
            local: local.to_rfc3339_opts(SecondsFormat::Secs, true),
            offset_changed: changed,
            runs_at: jittered.then(|| job.fire_at(utc)),
        }
    })
    .collect())
}

/// The next `n` slots of `frequency` in `tz` strictly after `from`, as RFC3339 UTC strings;
/// with a jitter, each followed by ` runs at <instant with milliseconds>`.
pub fn preview(
    frequency: &str,
    tz: Option<&str>,
    life: &Life,
    from: DateTime<Utc>,
    n: usize,
) -> Result<Vec<String>, String> {
    Ok(preview_slots(frequency, tz, life, from, n)?
        .iter()
        .map(|s| {
            let slot = s.utc.to_rfc3339_opts(SecondsFormat::Secs, true);
            match s.runs_at {
                Some(at) => format!(
                    "{slot} runs at {}",
                    at.to_rfc3339_opts(SecondsFormat::Millis, true)
                ),
                None => slot,
            }
        })
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
        let slots = preview_slots(
            "0 9 * * *",
            Some("Europe/Berlin"),
            &Life::default(),
            from,
            4,
        )
        .unwrap();
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
        let slots = preview_slots(
            "0 9 * * *",
            Some("Europe/Berlin"),
            &Life::default(),
            from,
            1,
        )
        .unwrap();
        assert!(slots[0].offset_changed);
        // UTC never changes; the strings are what `cronnode next` prints.
        let slots = preview_slots("@hourly", None, &Life::default(), from, 3).unwrap();
        assert!(slots
            .iter()
            .all(|s| !s.offset_changed && s.local.ends_with('Z')));
        assert_eq!(
            preview("@hourly", None, &Life::default(), from, 1).unwrap(),
            ["2026-03-29T01:00:00Z"]
        );
        assert!(preview_slots("@hourly", None, &Life::default(), from, 0)
            .unwrap_err()
            .starts_with("n:"));
    }

    #[test]
    fn life_and_jitter_show_in_the_preview() {
        let from = parse_instant("from", "2026-12-01T00:00:00Z").unwrap();
        let life = Life {
            id: Some("report"),
            jitter: Some("5m"),
            start_at: Some("2026-12-03T00:00:00+00:00"),
            end_at: Some("2026-12-04T00:00:00Z"),
        };
        let lines = preview("0 0 * * *", None, &life, from, 5).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("2026-12-03T00:00:00Z runs at 2026-12-03T00:0"));
        assert!(lines[1].starts_with("2026-12-04T00:00:00Z runs at 2026-12-04T00:0"));
        // Pure: the same lines every time.
        assert_eq!(preview("0 0 * * *", None, &life, from, 5).unwrap(), lines);
        let once = preview(
            "@at 2026-12-24T18:00:00+01:00",
            None,
            &Life::default(),
            from,
            5,
        );
        assert_eq!(once.unwrap(), ["2026-12-24T17:00:00Z"]);
        let e = preview(
            "* * * * *",
            None,
            &Life {
                jitter: Some("5m"),
                ..Life::default()
            },
            from,
            1,
        )
        .unwrap_err();
        assert!(
            e.starts_with("jitter: 5m is longer than the shortest interval"),
            "{e}"
        );
        // An expression's errors read as they always did.
        let e = preview("0 24 * * *", None, &Life::default(), from, 1).unwrap_err();
        assert!(e.starts_with("hour:"), "{e}");
    }
}
