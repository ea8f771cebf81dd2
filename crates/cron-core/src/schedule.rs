//! The schedule language: crontab (5 or 6 fields), macros, `@every`, and per-job time zones.
//!
//! SKELETON: the cron-core issue implements this module. The public surface below is the
//! contract the other crates build on.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A parsed schedule: an expression and its time zone. Its slots are a pure function of the two.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
}

/// Why an expression, a zone or a duration was refused: names the field, the token and what is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Placeholder until the parser lands.
    #[error("{0}")]
    Invalid(String),
}

impl Schedule {
    /// Parses `expression` in time zone `tz` (IANA name; UTC when `None`).
    pub fn parse(expression: &str, tz: Option<&str>) -> Result<Schedule, ScheduleError> {
        let _ = tz;
        Err(ScheduleError::Invalid(format!(
            "schedule parsing not implemented yet: {expression}"
        )))
    }

    /// The first slot strictly after `after`, or `None` when there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let _ = (after, &self.expression);
        None
    }
}

/// Parses a Go-style duration (`90s`, `1h30m`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, ScheduleError> {
    Err(ScheduleError::Invalid(format!(
        "duration parsing not implemented yet: {text}"
    )))
}
