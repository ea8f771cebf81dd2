//! The job store's watch: a blocking recursive read of `<prefix>/jobs/`, coalesced.
//!
//! Reads start at most once per [`COALESCE_INTERVAL`]: under churn a read returns at once, the
//! loop waits out the rest of the interval, and the next read returns every change of the burst
//! together. The set is published only when Consul's index moved. Errors keep the last set and
//! retry with backoff. The task ends when every receiver is dropped.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use crate::kv::{next_index, Query};
use crate::retry::Backoff;
use crate::store::{job_set, JobSet, JobStore};

/// Shortest time between the starts of two reads of the prefix.
pub const COALESCE_INTERVAL: Duration = Duration::from_secs(1);
/// Wait of the blocking read.
pub const WATCH_WAIT: Duration = Duration::from_secs(120);

impl JobStore {
    /// Watches the jobs (needs a tokio runtime). The receiver starts with an empty set of
    /// index 0, replaced by the first read; then every change, bursts coalesced so that the
    /// prefix is read at most once a second.
    pub fn watch(&self) -> watch::Receiver<JobSet> {
        let (tx, rx) = watch::channel(JobSet::default());
        tokio::spawn(watch_loop(self.clone(), tx));
        rx
    }
}

async fn watch_loop(store: JobStore, tx: watch::Sender<JobSet>) {
    let mut index = 0u64;
    let mut published: Option<u64> = None;
    let mut backoff = Backoff::new();
    let mut next_start = Instant::now();
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep_until(next_start) => {}
        }
        next_start = Instant::now() + COALESCE_INTERVAL;
        let read = tokio::select! {
            _ = tx.closed() => return,
            r = store.consul.kv_list(&store.dir, Query::blocking(index, WATCH_WAIT)) => r,
        };
        match read {
            Ok((entries, idx)) => {
                backoff.reset();
                index = next_index(index, idx);
                if published != Some(idx) {
                    tx.send_replace(job_set(&store.dir, &entries, idx));
                    published = Some(idx);
                }
            }
            Err(e) => {
                warn!(error = %e, "watching the jobs");
                index = 0;
                next_start = Instant::now() + backoff.next_delay().max(COALESCE_INTERVAL);
            }
        }
    }
}
