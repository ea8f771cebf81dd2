//! The one backoff: after any failed Redis call, no Redis call for a while, the pause
//! doubling from [`crate::Config::backoff_start`] up to [`crate::Config::backoff_max`], and
//! back to the start after a call succeeds.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    start: Duration,
    max: Duration,
    /// The pause after the next failure.
    next: Duration,
    /// No Redis call before this.
    until: Option<DateTime<Utc>>,
}

impl Backoff {
    pub(crate) fn new(start: Duration, max: Duration) -> Backoff {
        Backoff {
            start,
            max,
            next: start,
            until: None,
        }
    }

    /// A call failed at `now`: answers how long until the next one.
    pub(crate) fn failed(&mut self, now: DateTime<Utc>) -> Duration {
        let pause = self.next;
        self.until = Some(now + chrono::Duration::from_std(pause).unwrap_or_default());
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// A call succeeded.
    pub(crate) fn succeeded(&mut self) {
        self.next = self.start;
        self.until = None;
    }

    /// No Redis call before this instant (`None`: any time).
    pub(crate) fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    /// Whether a call may be made at `now`.
    pub(crate) fn ready(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| u <= now)
    }

    /// Forgets everything (a new term).
    pub(crate) fn reset(&mut self) {
        self.next = self.start;
        self.until = None;
    }
}
