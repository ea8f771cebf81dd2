//! The schedule language: crontab (5 or 6 fields), macros, `@every`, and per-job time zones.
//!
//! - 5 fields `minute hour day-of-month month day-of-week` with crontab(5) meanings (day of
//!   week 0-7, 0 and 7 = Sunday; names JAN-DEC, SUN-SAT), `*`, ranges, steps, lists, `L`,
//!   `L-n`, `LW`, `nW` in day of month, `nL` and `n#k` in day of week; a leading 6th field is
//!   the second. The Vixie rule: when both day fields are restricted (neither starts with
//!   `*`), a day matches if either matches.
//! - Macros `@yearly @annually @monthly @weekly @daily @midnight @hourly`.
//! - `@every <duration>` (whole seconds, at least 1 s): slots at whole multiples of the period
//!   since the Unix epoch, whatever the zone, so every node agrees.
//! - `@at <RFC 3339 instant with offset>` (dkron's spelling): one slot, at that instant
//!   (truncated to the whole second); the zone changes nothing.
//! - A time zone (IANA, UTC by default). Daylight saving: a local time inside a gap fires once,
//!   at the first instant after the gap; a local time that happens twice fires once, at its
//!   first occurrence; slots that land on the same instant are one slot.
//!
//! Slots are whole seconds and a pure function of (expression, zone). Parsing lives in
//! [`fields`] (checks, errors, translation to saffron) and [`calendar`] (the compiled form and
//! the search); start at [`Schedule::parse`] and [`Schedule::next_after`].

mod calendar;
mod duration;
mod fields;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use calendar::{Calendar, Civil};
pub use duration::parse_duration;
use fields::FieldDef;

/// The shortest `@every` period.
pub const MIN_EVERY_SECS: u64 = 1;

/// How many consecutive local candidates [`Schedule::next_after`] may reject (all of them inside
/// a repeated hour, whose first occurrence is already past) before giving up: a fold lasts at
/// most a few hours, which is 10,800 one-second slots per hour.
const MAX_FOLD_CANDIDATES: u32 = 200_000;

/// A parsed schedule: the compiled form of an expression in its time zone. Its slots are a
/// pure function of the two. It does not keep the expression as written (a job's is its spec's
/// `frequency`): a validated job holds one, and a million jobs should not hold their expression
/// twice. Small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    slots: Slots,
}

/// The compiled schedule (32 bytes): the planner keeps one beside each job and computes next
/// slots without chasing pointers. The zone sits inside each variant (in [`Calendar`] for
/// cron) so that it takes the calendar's padding instead of a word of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slots {
    Cron(Calendar),
    /// `@every`: whole multiples of the period since the epoch, whatever the zone (kept only
    /// to report it).
    Every {
        period: u64,
        tz: Tz,
    },
    /// `@at`: one slot, at this Unix second (the zone kept only to report it).
    At {
        at: i64,
        tz: Tz,
    },
}

/// Why an expression, a zone or a duration was refused: names the field, the token and what is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A crontab field has a bad token.
    #[error("{field}: {message}")]
    Field {
        /// `second`, `minute`, `hour`, `day of month`, `month` or `day of week`.
        field: &'static str,
        /// The offending token as written.
        token: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The expression has the wrong number of fields or is not a known form.
    #[error("{0}")]
    Form(String),
    /// The time zone is not an IANA zone name.
    #[error("unknown time zone {0:?} (expected an IANA name such as Europe/Berlin)")]
    UnknownZone(String),
    /// A duration (`@every`, a catch-up window) did not parse.
    #[error("duration {text:?}: {message}")]
    Duration {
        /// The duration as written.
        text: String,
        /// What is wrong.
        message: String,
    },
}

fn macro_expansion(name: &str) -> Option<&'static str> {
    Some(match name {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Parses a zone name; `None` is UTC.
pub(crate) fn parse_zone(tz: Option<&str>) -> Result<Tz, ScheduleError> {
    match tz {
        None => Ok(Tz::UTC),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| ScheduleError::UnknownZone(name.to_string())),
    }
}

impl Schedule {
    /// Parses `expression` in time zone `tz` (IANA name; UTC when `None`).
    pub fn parse(expression: &str, tz: Option<&str>) -> Result<Schedule, ScheduleError> {
        let tz = parse_zone(tz)?;
        let text = expression.trim();
        let every = text
            .get(..6)
            .filter(|p| p.eq_ignore_ascii_case("@every"))
            .map(|_| &text[6..]);
        let at = text
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("@at"))
            .map(|_| &text[3..]);
        let slots = if let Some(rest) = every {
            Slots::Every {
                period: parse_every(rest)?,
                tz,
            }
        } else if let Some(rest) = at {
            Slots::At {
                at: parse_at(rest)?,
                tz,
            }
        } else if text.starts_with('@') {
            let lower = text.to_ascii_lowercase();
            let Some(exp) = macro_expansion(&lower) else {
                return Err(ScheduleError::Form(format!(
                    "unknown macro {text:?} (allowed: @yearly @annually @monthly @weekly @daily \
                     @midnight @hourly @every <duration> @at <RFC 3339 instant>)"
                )));
            };
            Slots::Cron(compile(exp, tz)?)
        } else {
            Slots::Cron(compile(text, tz)?)
        };
        // Day fields repeat every 400 years: no slot in the first 400 means none ever.
        if !matches!(slots, Slots::At { .. }) && slots.next_after(0).is_none() {
            return Err(ScheduleError::Form(format!(
                "{text:?} never fires: no date matches its day and month fields"
            )));
        }
        Ok(Schedule { slots })
    }

    /// The IANA name of the schedule's zone (`UTC` by default).
    pub fn timezone(&self) -> &'static str {
        self.slots.tz().name()
    }

    /// The slots strictly after `after`, in order (what `cronnode next` prints).
    pub fn upcoming(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut t = after;
        std::iter::from_fn(move || {
            t = self.next_after(t)?;
            Some(t)
        })
    }

    pub(crate) fn slots(&self) -> Slots {
        self.slots
    }

    /// The instant of a one-shot schedule (`@at`), `None` for a recurring one.
    pub fn one_shot(&self) -> Option<DateTime<Utc>> {
        match self.slots {
            Slots::At { at, .. } => DateTime::from_timestamp(at, 0),
            _ => None,
        }
    }

    /// A lower bound of the time between two consecutive slots, in seconds, as read on the
    /// clock of the schedule's zone; `None` for a one-shot (it has no two slots).
    ///
    /// `@every`: the period. A crontab: the shortest distance between two matching times of
    /// day, counting the step from the day's last to the next day's first as if the next day
    /// matched (a bound, exact for every schedule that fires on two consecutive days). A
    /// daylight-saving change can bring two slots closer on the real clock than on the local
    /// one; [`crate::Job::fire_at`] caps a jittered offset at the real distance to the next
    /// slot for that.
    pub fn shortest_interval(&self) -> Option<u64> {
        match self.slots {
            Slots::Every { period, .. } => Some(period),
            Slots::Cron(cal) => Some(cal.shortest_interval()),
            Slots::At { .. } => None,
        }
    }

    /// The first slot strictly after `after`, or `None` when there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Slots are whole seconds: the first candidate is the next whole second.
        DateTime::from_timestamp(self.slots.next_after(after.timestamp())?, 0)
    }
}

impl Slots {
    fn tz(&self) -> Tz {
        match self {
            Slots::Cron(cal) => cal.tz,
            Slots::Every { tz, .. } | Slots::At { tz, .. } => *tz,
        }
    }

    /// The first slot strictly after `after_secs`, in Unix seconds.
    pub(crate) fn next_after(&self, after_secs: i64) -> Option<i64> {
        match self {
            Slots::Every { period, .. } => {
                let p = i64::try_from(*period).ok()?;
                after_secs.div_euclid(p).checked_add(1)?.checked_mul(p)
            }
            Slots::At { at, .. } => (*at > after_secs).then_some(*at),
            Slots::Cron(cal) => {
                if cal.tz == Tz::UTC {
                    let start = civil_of(after_secs.checked_add(1)?)?;
                    Some(timestamp_of_civil(cal.next_match(start)?))
                } else {
                    next_in_zone(cal, after_secs)
                }
            }
        }
    }
}

/// The first slot strictly after `after_secs` of `cal` in its (non-UTC) zone, by the
/// daylight-saving rules of the module docs.
fn next_in_zone(cal: &Calendar, after_secs: i64) -> Option<i64> {
    let tz = cal.tz;
    let first = DateTime::from_timestamp(after_secs.checked_add(1)?, 0)?;
    let mut local = first.with_timezone(&tz).naive_local();
    for _ in 0..MAX_FOLD_CANDIDATES {
        let m = cal.next_match(civil_of_naive(local))?;
        let naive = naive_of_civil(m)?;
        let instant = match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.timestamp(),
            // Fires once, at the first occurrence.
            LocalResult::Ambiguous(a, b) => a.timestamp().min(b.timestamp()),
            // Inside a gap: the first instant after it.
            LocalResult::None => gap_end(tz, naive)?,
        };
        if instant > after_secs {
            return Some(instant);
        }
        // A repeated local time whose first occurrence is already past: try the next one.
        local = naive.checked_add_signed(chrono::Duration::seconds(1))?;
    }
    None
}

/// The first instant whose local time in `tz` is at or after `naive`, a time inside a gap: the
/// instant the clocks jumped.
fn gap_end(tz: Tz, naive: NaiveDateTime) -> Option<i64> {
    let as_utc = naive.and_utc().timestamp();
    // Offsets are within ±26 h, so the transition lies within this interval.
    let (mut lo, mut hi) = (as_utc - 30 * 3600, as_utc + 30 * 3600);
    let local_at = |t: i64| -> Option<NaiveDateTime> {
        Some(
            DateTime::from_timestamp(t, 0)?
                .with_timezone(&tz)
                .naive_local(),
        )
    };
    if local_at(hi)? < naive {
        return None;
    }
    // Smallest t in (lo, hi] with local(t) >= naive.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_at(mid)? >= naive {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

fn parse_every(rest: &str) -> Result<u64, ScheduleError> {
    let arg = rest.trim();
    if arg.is_empty() || !rest.starts_with(char::is_whitespace) {
        return Err(ScheduleError::Form(
            "@every needs a duration, e.g. @every 90s or @every 1h30m".into(),
        ));
    }
    let d = parse_duration(arg)?;
    if d.subsec_nanos() != 0 || d.as_secs() < MIN_EVERY_SECS {
        return Err(ScheduleError::Duration {
            text: arg.to_string(),
            message: format!("@every needs a whole number of seconds, at least {MIN_EVERY_SECS}s"),
        });
    }
    Ok(d.as_secs())
}

/// The instant of `@at <instant>`: RFC 3339 with an offset (`Z` or `+01:00`), so that it means
/// the same on every node whatever the job's zone.
fn parse_at(rest: &str) -> Result<i64, ScheduleError> {
    let arg = rest.trim();
    if arg.is_empty() || !rest.starts_with(char::is_whitespace) {
        return Err(ScheduleError::Form(
            "@at needs an instant, e.g. @at 2026-12-24T18:00:00+01:00".into(),
        ));
    }
    DateTime::parse_from_rfc3339(arg)
        .map(|t| t.timestamp())
        .map_err(|e| {
            ScheduleError::Form(format!(
                "@at {arg:?}: {e}; expected an RFC 3339 instant with an offset, e.g. \
                 2026-12-24T18:00:00+01:00 or 2026-12-24T17:00:00Z"
            ))
        })
}

fn compile(text: &str, tz: Tz) -> Result<Calendar, ScheduleError> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (second, rest) = match parts.len() {
        5 => (None, &parts[..]),
        6 => (Some(parts[0]), &parts[1..]),
        n => {
            return Err(ScheduleError::Form(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a \
                 leading second), found {n} in {text:?}"
            )))
        }
    };
    let defs: [&FieldDef; 5] = [
        &fields::MINUTE,
        &fields::HOUR,
        &fields::DAY_OF_MONTH,
        &fields::MONTH,
        &fields::DAY_OF_WEEK,
    ];
    let mut translated = Vec::with_capacity(5);
    for (def, field) in defs.iter().zip(rest) {
        translated.push(fields::check_field(def, field)?);
    }
    let expr: saffron::parse::CronExpr = translated.join(" ").parse().map_err(|_| {
        ScheduleError::Form(format!(
            "{text:?} is not a crontab expression saffron accepts"
        ))
    })?;
    let seconds = match second {
        Some(s) => {
            let s = fields::check_field(&fields::SECOND, s)?;
            let e: saffron::parse::CronExpr = format!("{s} * * * *").parse().map_err(|_| {
                ScheduleError::Form(format!("second field {s:?} is not accepted by saffron"))
            })?;
            Some(e)
        }
        None => None,
    };
    Ok(Calendar::compile(
        &expr,
        tz,
        seconds.as_ref(),
        rest[2].starts_with('*'),
        rest[4].starts_with('*'),
    ))
}

/// The UTC civil time of Unix second `ts` (H. Hinnant's `civil_from_days`): plain integer
/// arithmetic, as this is on the planner's hot path.
fn civil_of(ts: i64) -> Option<Civil> {
    let days = ts.div_euclid(86_400);
    let secs = u32::try_from(ts.rem_euclid(86_400)).ok()?;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).ok()?;
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).ok()?;
    let year = i32::try_from(yoe + era * 400 + i64::from(month <= 2)).ok()?;
    Some(Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
    })
}

fn civil_of_naive(n: NaiveDateTime) -> Civil {
    Civil {
        year: n.year(),
        month: n.month(),
        day: n.day(),
        hour: n.hour(),
        minute: n.minute(),
        second: n.second(),
    }
}

fn naive_of_civil(c: Civil) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(c.year, c.month, c.day)?.and_hms_opt(c.hour, c.minute, c.second)
}

fn timestamp_of_civil(c: Civil) -> i64 {
    calendar::days_from_civil(c.year, c.month, c.day) * 86_400
        + i64::from(c.hour * 3600 + c.minute * 60 + c.second)
}

#[cfg(test)]
mod tests;
