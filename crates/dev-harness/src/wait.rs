//! Waiting for something to hold: a probe polled every [`POLL_INTERVAL`] until it gives a
//! value or a deadline passes.
//!
//! Deadlines here are generous bounds on a loaded 2-core machine, never a measurement: a test
//! that needs a figure reads it from what it observed, not from how long a wait took. The async
//! forms sleep on tokio's clock, so a test with a paused clock waits in virtual time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Pause between two probes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What a wait was for, and how long it waited in vain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {after:?} waiting for {what}")]
pub struct TimedOut {
    /// What never came (as the caller named it).
    pub what: String,
    /// How long it was waited for.
    pub after: Duration,
}

/// Polls `probe` until it gives `Some`; [`TimedOut`] after `timeout`. Blocks the thread.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(TimedOut {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// [`poll`], panicking with the [`TimedOut`] message: for tests.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll(what, timeout, probe).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls the async `probe` until it gives `Some`; [`TimedOut`] after `timeout` (tokio's clock).
pub async fn poll_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(TimedOut {
                what: what.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`poll_async`], panicking with the [`TimedOut`] message: for tests.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_async(what, timeout, probe).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_that_never_holds_names_what_it_waited_for() {
        let mut calls = 0;
        let e = poll("the moon", Duration::ZERO, || {
            calls += 1;
            None::<()>
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "timed out after 0ns waiting for the moon");
        assert_eq!(calls, 1, "probed once before giving up");
        assert_eq!(poll("three", Duration::from_secs(60), || Some(3)), Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_async_wait_runs_on_tokios_clock() {
        let start = tokio::time::Instant::now();
        let mut n = 0;
        let v = poll_async("the third probe", Duration::from_secs(3600), || {
            n += 1;
            let v = (n == 3).then_some(n);
            async move { v }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        // Two pauses between three probes, in virtual time.
        assert_eq!(start.elapsed(), 2 * POLL_INTERVAL);
        let e = poll_async("never", Duration::from_secs(1), || async { None::<()> })
            .await
            .unwrap_err();
        assert_eq!(e.after, Duration::from_secs(1));
    }
}
