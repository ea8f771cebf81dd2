//! Paging through the job store for the API: [`JobStore::list_page`].
//!
//! A page reads shards in order from the shard of its cursor (`after`), one shard at a time,
//! and walks each in id order: jobs come in (shard, id) order, which is stable across pages.
//! A [`PageFilter`] keeps only some of the entries walked (by app, by a part of the id, by
//! state: active, paused or invalid); the walk and the cursor are the same with or without it.
//! It stops when it holds `limit` jobs, at the end of the last shard, or at the end of a shard
//! once [`PAGE_SCAN_BUDGET`] keys were walked (a filter that matches little must not read the
//! whole store in one request). `next` is then the id to continue after: the last job given,
//! or the last key walked. Only the entries walked are decoded.
//!
//! Must not: hold anything between pages (the cursor is the whole state).

use crate::error::StoreError;
use crate::kv::Query;
use crate::store::JobStore;
use crate::stored_job::{
    check_job_id, decode_entry, is_folder, shard_dir, shard_of, InvalidEntry, StoredJob, SHARDS,
};

/// Jobs per page when the caller does not say.
pub const DEFAULT_PAGE_LIMIT: usize = 1000;
/// Most jobs per page.
pub const MAX_PAGE_LIMIT: usize = 10_000;
/// Keys a page walks before it stops at the end of a shard (about 5 shards at 1,000,000 jobs).
pub const PAGE_SCAN_BUDGET: usize = 2 * MAX_PAGE_LIMIT;

/// The state a page can be filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// A valid job that is not paused.
    Active,
    /// A valid job that is paused.
    Paused,
    /// An entry that fails validation (listed in [`JobPage::invalid`]).
    Invalid,
}

impl EntryState {
    /// Every state, by its name in the API.
    pub const ALL: [(&'static str, EntryState); 3] = [
        ("active", EntryState::Active),
        ("paused", EntryState::Paused),
        ("invalid", EntryState::Invalid),
    ];
}

/// Which of the entries walked a page keeps; the default keeps them all.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageFilter<'a> {
    /// Only the jobs of this app (invalid entries have none, and are kept).
    pub app: Option<&'a str>,
    /// Only the entries whose id (for an invalid entry: the last segment of its key) contains
    /// this, ASCII case ignored.
    pub id_contains: Option<&'a str>,
    /// Only the entries in this state.
    pub state: Option<EntryState>,
}

impl PageFilter<'_> {
    fn keeps_id(&self, id: &str) -> bool {
        self.id_contains
            .is_none_or(|part| id.to_ascii_lowercase().contains(&part.to_ascii_lowercase()))
    }

    fn keeps_job(&self, job: &StoredJob) -> bool {
        let state = if job.job.spec.paused {
            EntryState::Paused
        } else {
            EntryState::Active
        };
        self.state.is_none_or(|s| s == state)
            && self.app.is_none_or(|a| job.job.spec.function.app == a)
            && self.keeps_id(job.id())
    }

    fn keeps_invalid(&self, entry: &InvalidEntry) -> bool {
        let id = entry.key.rsplit('/').next().unwrap_or(&entry.key);
        self.state.is_none_or(|s| s == EntryState::Invalid) && self.keeps_id(id)
    }
}

/// One page of jobs.
#[derive(Debug, Clone, Default)]
pub struct JobPage {
    /// Valid jobs (of the app asked for), in (shard, id) order.
    pub jobs: Vec<StoredJob>,
    /// Entries walked by this page that failed validation; the first page (no `after`) also
    /// has the keys that are not in a shard folder.
    pub invalid: Vec<InvalidEntry>,
    /// Pass it as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

impl JobStore {
    /// A page of at most `limit` (1..=[`MAX_PAGE_LIMIT`]; clamped) jobs after the job id
    /// `after`, only the entries `filter` keeps. A filtered page may hold fewer than `limit`
    /// jobs, even none, and still have a `next`: follow `next` until it is `None`.
    pub async fn list_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &PageFilter<'_>,
    ) -> Result<JobPage, StoreError> {
        if let Some(a) = after {
            check_job_id(a)?;
        }
        let limit = limit.clamp(1, MAX_PAGE_LIMIT);
        let mut page = JobPage::default();
        if after.is_none() {
            page.invalid = self.strays().await?;
            page.invalid.retain(|e| filter.keeps_invalid(e));
        }
        let first = after.map_or(0, |a| usize::from(shard_of(a)));
        let mut walked = 0usize;
        for i in first..SHARDS {
            let shard = i as u8;
            let folder = shard_dir(&self.dir, shard);
            let (entries, _) = self.consul.kv_list_raw(&folder, Query::now()).await?;
            let mut last_key: Option<&str> = None;
            for e in &entries {
                let Some(id) = e.key.strip_prefix(&folder) else {
                    continue;
                };
                if id.is_empty() && is_folder(e) {
                    continue;
                }
                if i == first && after.is_some_and(|a| id <= a) {
                    continue;
                }
                // Only keys that could be a cursor count: the next page must start here.
                if check_job_id(id).is_ok() && shard_of(id) == shard {
                    walked += 1;
                    last_key = Some(id);
                }
                match decode_entry(&self.dir, shard, e) {
                    Ok(job) => {
                        if !filter.keeps_job(&job) {
                            continue;
                        }
                        page.jobs.push(job);
                        if page.jobs.len() == limit {
                            page.next = Some(id.to_string());
                            return Ok(page);
                        }
                    }
                    Err(error) => {
                        let entry = InvalidEntry {
                            key: e.key.clone(),
                            error,
                        };
                        if filter.keeps_invalid(&entry) {
                            page.invalid.push(entry);
                        }
                    }
                }
            }
            if walked >= PAGE_SCAN_BUDGET && i + 1 < SHARDS {
                // The budget can only be reached in a shard that had a cursor key.
                page.next = last_key.map(str::to_string);
                if page.next.is_some() {
                    return Ok(page);
                }
            }
        }
        Ok(page)
    }
}
