//! Reading the job store's set: [`JobStore::list`] (every shard once) and the watch (a blocking
//! read of the shard stamps, then only the shards whose stamp moved).
//!
//! One pass: a blocking recursive read of `<prefix>/job-shards/` (the 256 stamps, a few bytes
//! each); for every stamp whose ModifyIndex differs from the one its held shard was read at,
//! one recursive read of `<prefix>/jobs/<xx>/` ([`SHARD_READS_IN_FLIGHT`] at a time), decoding
//! only the entries whose ModifyIndex changed. The first pass, and the pass after an error,
//! read every shard and look for keys that are not in a shard folder (`?keys&separator=/` of
//! `<prefix>/jobs/`). A shard is read after the stamps, so it is at least as new as the stamp
//! it is filed under; a write in between moves the stamp again and the next pass reads it.
//!
//! Passes start at most once per [`COALESCE_INTERVAL`]: under churn a read returns at once, the
//! loop waits out the rest of the interval, and the next pass takes every change of the burst
//! together. A set is published only when a shard was read. Errors keep the last set and retry
//! with backoff (a full pass). The task ends when every receiver is dropped. At steady state
//! with no change the watch has one blocking read outstanding and sends nothing else.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::warn;

use crate::error::StoreError;
use crate::job_set::{decode_shard, JobSet, Shard};
use crate::kv::{next_index, Query, RawEntry};
use crate::retry::Backoff;
use crate::store::JobStore;
use crate::stored_job::{check_job_id, shard_dir, shard_of, InvalidEntry, SHARDS};

/// Shortest time between the starts of two passes.
pub const COALESCE_INTERVAL: Duration = Duration::from_secs(1);
/// Wait of the blocking read of the stamps.
pub const WATCH_WAIT: Duration = Duration::from_secs(120);
/// Shard reads in flight at once (a full pass reads all 256).
pub const SHARD_READS_IN_FLIGHT: usize = 8;

impl JobStore {
    /// Reads every job: all 256 shards and the stray keys (at startup, or for a test; the API
    /// pages with [`JobStore::list_page`], a node reads its watch).
    pub async fn list(&self) -> Result<JobSet, StoreError> {
        let (stamps, index) = self.consul.kv_list_raw(&self.stamps, Query::now()).await?;
        let set = self
            .read_shards(&JobSet::default(), &stamps, index, true)
            .await?;
        Ok(set.unwrap_or_default())
    }

    /// Watches the jobs (needs a tokio runtime). The receiver starts with an empty set of
    /// index 0, replaced by the first full read; then every change, bursts coalesced so that a
    /// pass starts at most once a second. Clone the receiver to share one watch.
    pub fn watch(&self) -> watch::Receiver<JobSet> {
        let (tx, rx) = watch::channel(JobSet::default());
        tokio::spawn(watch_loop(self.clone(), tx));
        rx
    }

    /// Reads the shards whose stamp in `stamps` moved since `held` (all of them when `full`,
    /// plus the stray keys) and returns the new set, or `None` when nothing moved.
    pub(crate) async fn read_shards(
        &self,
        held: &JobSet,
        stamps: &[RawEntry],
        index: u64,
        full: bool,
    ) -> Result<Option<JobSet>, StoreError> {
        let mut stamp_of = vec![0u64; SHARDS];
        for e in stamps {
            if let Some(i) = e
                .key
                .strip_prefix(&self.stamps)
                .and_then(parse_shard)
                .map(usize::from)
            {
                stamp_of[i] = e.modify_index;
            }
        }
        let moved: Vec<usize> = (0..SHARDS)
            .filter(|&i| full || held.shard_arc(i).is_none() || held.shard(i).stamp != stamp_of[i])
            .collect();
        if moved.is_empty() {
            return Ok(None);
        }
        let strays: Arc<[InvalidEntry]> = if full {
            self.strays().await?.into()
        } else {
            held.strays().clone()
        };
        let mut shards: Vec<Arc<Shard>> = (0..SHARDS)
            .map(|i| held.shard_arc(i).cloned().unwrap_or_default())
            .collect();
        let mut reads = JoinSet::new();
        let mut pending = moved.into_iter();
        loop {
            while reads.len() < SHARD_READS_IN_FLIGHT {
                let Some(i) = pending.next() else { break };
                let (store, old, stamp) = (self.clone(), shards[i].clone(), stamp_of[i]);
                reads.spawn(async move {
                    let shard = i as u8;
                    let dir = shard_dir(&store.dir, shard);
                    let (entries, _) = store.consul.kv_list_raw(&dir, Query::now()).await?;
                    let built = decode_shard(&store.dir, shard, entries, &old, stamp);
                    Ok::<_, StoreError>((i, built))
                });
            }
            let Some(done) = reads.join_next().await else {
                break;
            };
            let (i, built) = done.map_err(|e| {
                StoreError::Consul(crate::ConsulError::Config(format!("shard read task: {e}")))
            })??;
            shards[i] = Arc::new(built);
        }
        Ok(Some(JobSet::from_parts(shards, strays, index)))
    }

    /// The keys directly under `<prefix>/jobs/` that are not shard folders: jobs of the
    /// unsharded layout of older builds, or written by hand. One `?keys&separator=/` read.
    pub(crate) async fn strays(&self) -> Result<Vec<InvalidEntry>, StoreError> {
        let keys = self.consul.kv_keys(&self.dir, "/").await?;
        Ok(keys
            .into_iter()
            .filter_map(|key| {
                let rest = key.strip_prefix(&self.dir)?;
                let is_shard = rest.strip_suffix('/').and_then(parse_shard).is_some();
                if rest.is_empty() || is_shard {
                    return None;
                }
                let home = match check_job_id(rest) {
                    Ok(()) => shard_dir(&self.dir, shard_of(rest)),
                    Err(_) => format!("{}<xx>/", self.dir),
                };
                let error = format!(
                    "not in a shard folder: a job must be in its shard folder {home} \
                     ({}<xx>/, xx the two hex digits of its shard); a job written by an older \
                     cronnode under {}<id> is not loaded: re-create it through the API and \
                     delete this key",
                    self.dir, self.dir
                );
                Some(InvalidEntry { key, error })
            })
            .collect())
    }
}

/// `"0a"` → 10: exactly two lowercase hex digits.
fn parse_shard(s: &str) -> Option<u8> {
    let ok = s.len() == 2 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u8::from_str_radix(s, 16).ok()).flatten()
}

async fn watch_loop(store: JobStore, tx: watch::Sender<JobSet>) {
    let mut index = 0u64;
    let mut held = JobSet::default();
    let mut full = true;
    let mut backoff = Backoff::new();
    let mut next_start = Instant::now();
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep_until(next_start) => {}
        }
        next_start = Instant::now() + COALESCE_INTERVAL;
        let pass = async {
            let (stamps, idx) = store
                .consul
                .kv_list_raw(&store.stamps, Query::blocking(index, WATCH_WAIT))
                .await?;
            let set = store.read_shards(&held, &stamps, idx, full).await?;
            Ok::<_, StoreError>((set, idx))
        };
        let result = tokio::select! {
            _ = tx.closed() => return,
            r = pass => r,
        };
        match result {
            Ok((set, idx)) => {
                backoff.reset();
                index = next_index(index, idx);
                full = false;
                if let Some(set) = set {
                    held = set;
                    tx.send_replace(held.clone());
                }
            }
            Err(e) => {
                warn!(error = %e, "watching the jobs");
                index = 0;
                full = true;
                next_start = Instant::now() + backoff.next_delay().max(COALESCE_INTERVAL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_are_two_lowercase_hex_digits() {
        assert_eq!(parse_shard("0a"), Some(10));
        assert_eq!(parse_shard("ff"), Some(255));
        for bad in ["0A", "a", "100", "g0", "+1", ""] {
            assert_eq!(parse_shard(bad), None, "{bad}");
        }
    }
}
