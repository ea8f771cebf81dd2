//! A job's life and spread: `start_at`, `end_at`, what state a job past its slots is in, and
//! the jittered instant of a slot.
//!
//! - **Start and end.** A slot `s` is the job's when `start_at <= s <= end_at` (either bound
//!   may be absent). They bound the *nominal* slots: a jittered last slot may run after
//!   `end_at`, by less than the jitter.
//! - **Jitter.** Slot `s` runs at `s + offset`, `offset` in `[0, jitter)`, taken from the
//!   slot's fire id (a name-based UUID of job id and slot, so every node and every version
//!   computes the same offset), in milliseconds. The fire id stays that of the nominal slot:
//!   a jittered slot is still one slot, deduplicated as before. A jitter longer than the
//!   schedule's shortest interval is refused, because two slots could then run out of order
//!   (`Schedule::shortest_interval`); where a daylight-saving change brings two slots closer
//!   than that on the real clock, the offset is drawn below the real distance to the next
//!   slot, so the order holds everywhere.
//! - **State.** [`Job::state`]: waiting for `start_at`, active, ended (no slot after now),
//!   done (a one-shot that fired), due or missed (a one-shot whose instant passed unfired,
//!   inside or beyond its catch-up window).
//!
//! Pure: every call takes the instant it is about.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::field;
use crate::{Job, JobError, JobSpec, Schedule};

/// The longest jitter: a day (the dedupe marks outlive a slot by the catch-up window plus a
/// day, and a jittered slot is marked when it runs, so this keeps every mark alive as long as
/// a slot can still be tried).
pub const MAX_JITTER: Duration = Duration::from_secs(24 * 3600);

/// The most slots one backfill request may name (`POST /v1/cronjobs/{id}/backfill`).
pub const MAX_BACKFILL_SLOTS: usize = 10_000;

/// How far beyond its catch-up window a backfill may reach into a job's past. A slot is
/// exactly-once only while its dedupe mark lives, and a mark lives for the job's catch-up
/// window plus a day from the moment the slot was enqueued (redis-queue's `dedupe_ttl`),
/// which is at or after the slot: so every slot younger than window + 24 h that was ever
/// enqueued still has its mark. An hour of that day is kept back for clock skew between the
/// API node and Redis and for the time the request waits for the leader.
pub const BACKFILL_REACH_BEYOND_WINDOW: Duration = Duration::from_secs(23 * 3600);

/// Why a backfill range was refused: the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RangeError {
    /// `from` or `to`.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// The parsed `jitter`, `start_at` and `end_at` of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Life {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    /// In milliseconds; 0 for none.
    jitter_ms: u64,
}

/// Where a job is in its life, at an instant (what `GET` and `jobs list` show as `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// `start_at` is still to come.
    Waiting,
    /// It has slots to come.
    Active,
    /// It has no slot after now (`end_at` passed, or its last slot did).
    Ended,
    /// A one-shot that fired.
    Done,
    /// A one-shot whose instant passed and that has not fired yet: a leader fires it, by its
    /// catch-up policy, until its catch-up window closes.
    Due,
    /// A one-shot that never fired, its catch-up window closed.
    Missed,
}

impl JobState {
    /// The name the API and the CLI show.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Active => "active",
            JobState::Ended => "ended",
            JobState::Done => "done",
            JobState::Due => "due",
            JobState::Missed => "missed",
        }
    }
}

fn instant(name: &'static str, text: &str) -> Result<DateTime<Utc>, JobError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            field(
                name,
                format!(
                    "{text:?} is not an RFC 3339 instant with an offset ({e}); e.g. \
                     2026-12-24T18:00:00+01:00 or 2026-12-24T17:00:00Z"
                ),
            )
        })
}

/// A whole number of seconds as a duration the job spec accepts (`1h30m`, `45s`).
pub(crate) fn fmt_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl Life {
    /// Checks and parses the spec's life fields; `None` when it has none.
    pub(crate) fn parse(
        spec: &JobSpec,
        schedule: &Schedule,
    ) -> Result<Option<Box<Life>>, JobError> {
        let start = spec
            .start_at
            .as_deref()
            .map(|t| instant("start_at", t))
            .transpose()?;
        let end = spec
            .end_at
            .as_deref()
            .map(|t| instant("end_at", t))
            .transpose()?;
        if let (Some(s), Some(e)) = (start, end) {
            if e < s {
                return Err(field(
                    "end_at",
                    format!(
                        "{} is before start_at {}: a schedule cannot end before it starts",
                        e.to_rfc3339(),
                        s.to_rfc3339()
                    ),
                ));
            }
        }
        let jitter_ms = match spec.jitter.as_deref() {
            None => 0,
            Some(text) => jitter_ms(text, spec, schedule)?,
        };
        if start.is_none() && end.is_none() && jitter_ms == 0 {
            return Ok(None);
        }
        Ok(Some(Box::new(Life {
            start,
            end,
            jitter_ms,
        })))
    }
}

fn jitter_ms(text: &str, spec: &JobSpec, schedule: &Schedule) -> Result<u64, JobError> {
    let d = crate::schedule::parse_duration(text).map_err(|e| field("jitter", e.to_string()))?;
    if d > MAX_JITTER {
        return Err(field(
            "jitter",
            format!("{text} is longer than the limit of 24h"),
        ));
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(field(
            "jitter",
            format!("{text} is not a whole number of milliseconds"),
        ));
    }
    if let Some(shortest) = schedule.shortest_interval() {
        if d > Duration::from_secs(shortest) {
            let most = fmt_secs(shortest);
            return Err(field(
                "jitter",
                format!(
                    "{text} is longer than the shortest interval between two slots of {:?} \
                     ({most}): a later slot could then run before an earlier one; give at \
                     most {most}",
                    spec.frequency
                ),
            ));
        }
    }
    Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Job {
    /// No slot before this instant (`start_at`).
    pub fn start_at(&self) -> Option<DateTime<Utc>> {
        self.life.as_ref().and_then(|l| l.start)
    }

    /// No slot after this instant (`end_at`).
    pub fn end_at(&self) -> Option<DateTime<Utc>> {
        self.life.as_ref().and_then(|l| l.end)
    }

    /// The jitter, when the job has one.
    pub fn jitter(&self) -> Option<Duration> {
        self.life
            .as_ref()
            .filter(|l| l.jitter_ms > 0)
            .map(|l| Duration::from_millis(l.jitter_ms))
    }

    /// The job's first slot strictly after `after`, inside its life (the schedule's slots
    /// between `start_at` and `end_at`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(life) = &self.life else {
            return self.schedule.next_after(after);
        };
        // The first slot at or after the start is the first one after the second before it.
        let from = match life.start {
            Some(s) if s > after => s - chrono::Duration::nanoseconds(1),
            _ => after,
        };
        self.schedule
            .next_after(from)
            .filter(|t| life.end.is_none_or(|e| *t <= e))
    }

    /// Whether `slot` is one of the job's slots.
    pub fn has_slot(&self, slot: DateTime<Utc>) -> bool {
        self.next_after(slot - chrono::Duration::seconds(1)) == Some(slot)
    }

    /// The instant `slot` runs at: the slot plus its jitter offset (the slot itself without a
    /// jitter). Strictly before the next slot's instant, so jitter never reorders slots.
    pub fn fire_at(&self, slot: DateTime<Utc>) -> DateTime<Utc> {
        let jitter = self.life.as_ref().map_or(0, |l| l.jitter_ms);
        if jitter == 0 {
            return slot;
        }
        let bound = match self.schedule.next_after(slot) {
            Some(next) => jitter.min(u64::try_from((next - slot).num_milliseconds()).unwrap_or(1)),
            None => jitter,
        };
        let id = crate::fire::fire_id(&self.spec.id, slot);
        let b = id.as_bytes();
        // Bytes 9-15 of a version-5 UUID are SHA-1 output untouched by the version and variant
        // bits: uniform, and the same on every node.
        let h = u64::from_be_bytes([0, b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        let offset = i64::try_from(h % bound.max(1)).unwrap_or(0);
        slot + chrono::Duration::milliseconds(offset)
    }

    /// The earliest instant a backfill may start at, at `now` (see
    /// [`BACKFILL_REACH_BEYOND_WINDOW`]).
    pub fn backfill_floor(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let reach = self
            .catchup_window
            .saturating_add(BACKFILL_REACH_BEYOND_WINDOW);
        now - chrono::Duration::from_std(reach).unwrap_or_default()
    }

    /// The job's slots in `[from, to]` for a backfill at `now`: the range must be ordered,
    /// end at or before `now` (slots to come are the scheduler's), start at or after
    /// [`Job::backfill_floor`] (older slots have no dedupe mark left, so one already fired
    /// could fire again), and hold at most [`MAX_BACKFILL_SLOTS`].
    pub fn backfill_slots(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, RangeError> {
        let err = |field, message: String| Err(RangeError { field, message });
        let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if to < from {
            return err("to", format!("{} is before from {}", text(to), text(from)));
        }
        if to > now {
            return err(
                "to",
                format!(
                    "{} is in the future (now {}): slots to come are the scheduler's",
                    text(to),
                    text(now)
                ),
            );
        }
        let floor = self.backfill_floor(now);
        if from < floor {
            return err(
                "from",
                format!(
                    "{} is older than {} (the job's catch-up window plus 23h): a slot that old \
                     has no dedupe mark left, so one that already fired could fire again",
                    text(from),
                    text(floor)
                ),
            );
        }
        let mut slots = Vec::new();
        let mut t = from - chrono::Duration::nanoseconds(1);
        while let Some(s) = self.next_after(t).filter(|s| *s <= to) {
            if slots.len() == MAX_BACKFILL_SLOTS {
                return err(
                    "to",
                    format!(
                        "the range holds more than {MAX_BACKFILL_SLOTS} slots of the job; \
                         split it into several requests"
                    ),
                );
            }
            slots.push(s);
            t = s;
        }
        Ok(slots)
    }

    /// Whether no slot of the job can be fired any more at `now`, not even by a catch-up: the
    /// last one is older than the catch-up window. Such a job costs the leader nothing.
    pub fn finished(&self, now: DateTime<Utc>) -> bool {
        let window = chrono::Duration::from_std(self.catchup_window).unwrap_or_default();
        self.next_after(now - window - chrono::Duration::seconds(1))
            .is_none()
    }

    /// Where the job is in its life at `now`, given its last enqueued slot (`last_start`, the
    /// cursor).
    pub fn state(&self, now: DateTime<Utc>, last_start: Option<DateTime<Utc>>) -> JobState {
        if let Some(at) = self.schedule.one_shot() {
            if !self.has_slot(at) {
                // Outside its own start/end: it never fires.
                return JobState::Ended;
            }
            if at > now {
                return JobState::Active;
            }
            if last_start.is_some_and(|l| l >= at) {
                return JobState::Done;
            }
            return if self.finished(now) {
                JobState::Missed
            } else {
                JobState::Due
            };
        }
        match self.next_after(now) {
            None => JobState::Ended,
            Some(_) if self.start_at().is_some_and(|s| s > now) => JobState::Waiting,
            Some(_) => JobState::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_print_as_durations() {
        assert_eq!(fmt_secs(0), "0s");
        assert_eq!(fmt_secs(60), "1m");
        assert_eq!(fmt_secs(5400), "1h30m");
        assert_eq!(fmt_secs(86_400), "24h");
        assert_eq!(fmt_secs(3661), "1h1m1s");
    }
}
