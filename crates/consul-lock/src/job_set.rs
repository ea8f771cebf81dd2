//! The job set: every job of the store at one Consul index, held in 256 shards.
//!
//! A job lives in shard [`shard_of`]`(id)` (the low 8 bits of the 32-bit FNV-1a hash of the
//! id), at `<prefix>/jobs/<xx>/<id>`. [`JobSet`] keeps one `Arc<Shard>` per shard: the watch
//! rebuilds only the shards whose stamp moved and shares the others with the previous set, so
//! cloning a set is one reference count and [`JobSet::changes_since`] skips unchanged shards by
//! pointer. Inside a shard the jobs are a `Vec` sorted by id: a job's id is held once, in its
//! spec (no map key copies it), and a lookup is a binary search.
//!
//! Building a shard from a listing (`decode_shard`) reuses the held [`StoredJob`] of every
//! entry whose ModifyIndex did not change, so only new or changed entries are parsed and
//! validated; the listing itself is dropped once the shard is built.
//!
//! Must not: do I/O (the watch and the store do), or know the HTTP API.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::kv::RawEntry;
use crate::stored_job::{
    decode_entry, is_folder, shard_dir, shard_of, InvalidEntry, StoredJob, SHARDS,
};

/// The jobs of one shard, as read at one stamp.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    /// The ModifyIndex of the shard's stamp the listing was read after (0: no stamp).
    pub(crate) stamp: u64,
    /// Valid jobs, sorted by id, ids unique.
    pub(crate) jobs: Vec<StoredJob>,
    /// Entries that failed validation, by key.
    pub(crate) invalid: Vec<InvalidEntry>,
    /// How many of `jobs` are paused (so `/v1/status` does not walk every job).
    pub(crate) paused: usize,
}

static EMPTY_SHARD: Shard = Shard {
    stamp: 0,
    jobs: Vec::new(),
    invalid: Vec::new(),
    paused: 0,
};

impl Shard {
    fn find(&self, id: &str) -> Option<&StoredJob> {
        self.jobs
            .binary_search_by(|j| j.id().cmp(id))
            .ok()
            .and_then(|i| self.jobs.get(i))
    }
}

/// Every job under the prefix at one Consul index.
///
/// Cloning is O(1) (the shards are shared); two sets of the same watch share every shard that
/// did not change between them.
#[derive(Debug, Clone, Default)]
pub struct JobSet {
    /// [`SHARDS`] shards, or none before the first read.
    shards: Arc<[Arc<Shard>]>,
    /// Keys directly under `<prefix>/jobs/` that are not shard folders (found on full reads).
    strays: Arc<[InvalidEntry]>,
    len: usize,
    invalid: usize,
    paused: usize,
    index: u64,
}

/// One difference between two job sets (see [`JobSet::changes_since`]).
#[derive(Debug, Clone, Copy)]
pub enum JobChange<'a> {
    /// A job the old set did not have.
    Added(&'a StoredJob),
    /// A job whose version moved.
    Changed {
        /// As the old set had it.
        old: &'a StoredJob,
        /// As it is now.
        new: &'a StoredJob,
    },
    /// A job the new set does not have (deleted, or now invalid).
    Removed(&'a StoredJob),
}

impl JobSet {
    /// Assembles a set; `shards` holds [`SHARDS`] shards.
    pub(crate) fn from_parts(
        shards: Vec<Arc<Shard>>,
        strays: Arc<[InvalidEntry]>,
        index: u64,
    ) -> JobSet {
        let len = shards.iter().map(|s| s.jobs.len()).sum();
        let paused = shards.iter().map(|s| s.paused).sum();
        let invalid = shards.iter().map(|s| s.invalid.len()).sum::<usize>() + strays.len();
        JobSet {
            shards: shards.into(),
            strays,
            len,
            invalid,
            paused,
            index,
        }
    }

    /// Shard `i`, or an empty one.
    pub(crate) fn shard(&self, i: usize) -> &Shard {
        self.shards.get(i).map_or(&EMPTY_SHARD, |s| s)
    }

    /// Shard `i` as shared, if the set has been read.
    pub(crate) fn shard_arc(&self, i: usize) -> Option<&Arc<Shard>> {
        self.shards.get(i)
    }

    /// The stray keys of the last full read.
    pub(crate) fn strays(&self) -> &Arc<[InvalidEntry]> {
        &self.strays
    }

    /// How many valid jobs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no valid job.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The Consul index of the read (0 before the first read of a watch).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The job `id`, if valid and present.
    pub fn get(&self, id: &str) -> Option<&StoredJob> {
        self.shard(usize::from(shard_of(id))).find(id)
    }

    /// Every valid job, by shard, then by id.
    pub fn jobs(&self) -> impl Iterator<Item = &StoredJob> {
        self.shards.iter().flat_map(|s| s.jobs.iter())
    }

    /// Every entry that failed validation: those in shard folders (by shard, then key), then
    /// the keys that are not in a shard folder.
    pub fn invalid(&self) -> impl Iterator<Item = &InvalidEntry> {
        self.shards
            .iter()
            .flat_map(|s| s.invalid.iter())
            .chain(self.strays.iter())
    }

    /// How many entries failed validation.
    pub fn invalid_count(&self) -> usize {
        self.invalid
    }

    /// How many valid jobs are paused.
    pub fn paused_count(&self) -> usize {
        self.paused
    }

    /// What differs from `old` (an earlier set of the same watch): unchanged shards are
    /// skipped by pointer, changed shards compared by version. Order: shard, then id.
    pub fn changes_since<'a>(&'a self, old: &'a JobSet) -> impl Iterator<Item = JobChange<'a>> {
        (0..SHARDS)
            .filter(move |&i| match (self.shard_arc(i), old.shard_arc(i)) {
                (Some(new), Some(old)) => !Arc::ptr_eq(new, old),
                _ => true,
            })
            .flat_map(move |i| ShardDiff {
                old: &old.shard(i).jobs,
                new: &self.shard(i).jobs,
            })
    }
}

/// Merges two sorted job lists into their differences.
struct ShardDiff<'a> {
    old: &'a [StoredJob],
    new: &'a [StoredJob],
}

impl<'a> Iterator for ShardDiff<'a> {
    type Item = JobChange<'a>;

    fn next(&mut self) -> Option<JobChange<'a>> {
        loop {
            match (self.old.split_first(), self.new.split_first()) {
                (None, None) => return None,
                (Some((o, rest)), None) => {
                    self.old = rest;
                    return Some(JobChange::Removed(o));
                }
                (None, Some((n, rest))) => {
                    self.new = rest;
                    return Some(JobChange::Added(n));
                }
                // The same allocation (a job the watch reused): equal, without reading ids.
                (Some((o, old_rest)), Some((n, new_rest))) if Arc::ptr_eq(&o.job, &n.job) => {
                    self.old = old_rest;
                    self.new = new_rest;
                }
                (Some((o, old_rest)), Some((n, new_rest))) => match o.id().cmp(n.id()) {
                    Ordering::Less => {
                        self.old = old_rest;
                        return Some(JobChange::Removed(o));
                    }
                    Ordering::Greater => {
                        self.new = new_rest;
                        return Some(JobChange::Added(n));
                    }
                    Ordering::Equal => {
                        self.old = old_rest;
                        self.new = new_rest;
                        if o.version != n.version {
                            return Some(JobChange::Changed { old: o, new: n });
                        }
                    }
                },
            }
        }
    }
}

/// Builds shard `shard` from its listing, reusing `old`'s job wherever the entry's
/// ModifyIndex is the version already held (nothing to parse or validate again).
pub(crate) fn decode_shard(
    dir: &str,
    shard: u8,
    entries: Vec<RawEntry>,
    old: &Shard,
    stamp: u64,
) -> Shard {
    let folder = shard_dir(dir, shard);
    let mut jobs = Vec::with_capacity(entries.len());
    let mut invalid = Vec::new();
    for e in entries {
        if is_folder(&e) && e.key == folder {
            continue;
        }
        let id = e.key.strip_prefix(&folder).unwrap_or(&e.key);
        if let Some(held) = old.find(id).filter(|j| j.version == e.modify_index) {
            jobs.push(held.clone());
            continue;
        }
        match decode_entry(dir, shard, &e) {
            Ok(job) => jobs.push(job),
            Err(error) => invalid.push(InvalidEntry { key: e.key, error }),
        }
    }
    // Consul lists keys in byte order, which is id order; sort anyway rather than trust it.
    if !jobs.is_sorted_by(|a, b| a.id() < b.id()) {
        jobs.sort_unstable_by(|a, b| a.id().cmp(b.id()));
        jobs.dedup_by(|a, b| a.id() == b.id());
    }
    jobs.shrink_to_fit();
    let paused = jobs.iter().filter(|j| j.job.spec.paused).count();
    Shard {
        stamp,
        jobs,
        invalid,
        paused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(key: &str, value: &str, index: u64) -> RawEntry {
        use base64::Engine;
        let value = base64::engine::general_purpose::STANDARD.encode(value);
        serde_json::from_value(serde_json::json!({
            "Key": key, "Value": value, "ModifyIndex": index, "CreateIndex": index,
        }))
        .unwrap()
    }

    fn spec(id: &str) -> String {
        format!(r#"{{"id":"{id}","function":{{"app":"x","path":"/f"}},"frequency":"@hourly"}}"#)
    }

    /// Ids of shard `shard`, found by trying names.
    fn ids_in(shard: u8, n: usize) -> Vec<String> {
        (0..)
            .map(|i| format!("job-{i}"))
            .filter(|id| shard_of(id) == shard)
            .take(n)
            .collect()
    }

    #[test]
    fn a_shard_reuses_unchanged_jobs_and_reports_misplaced_ones() {
        let ids = ids_in(7, 3);
        let dir = "p/jobs/";
        let key = |id: &str| format!("p/jobs/07/{id}");
        let first = decode_shard(
            dir,
            7,
            vec![
                raw("p/jobs/07/", "", 1),
                raw(&key(&ids[0]), &spec(&ids[0]), 5),
                raw(&key(&ids[1]), &spec(&ids[1]), 6),
            ],
            &EMPTY_SHARD,
            9,
        );
        assert_eq!(first.jobs.len(), 2);
        assert!(first.invalid.is_empty());
        let elsewhere = ids_in(8, 1).remove(0);
        let second = decode_shard(
            dir,
            7,
            vec![
                raw(&key(&ids[0]), &spec(&ids[0]), 5),
                raw(&key(&ids[2]), &spec(&ids[2]), 11),
                raw(&key(&elsewhere), &spec(&elsewhere), 12),
            ],
            &first,
            12,
        );
        let kept = second.find(&ids[0]).unwrap();
        assert!(Arc::ptr_eq(&kept.job, &first.find(&ids[0]).unwrap().job));
        assert_eq!(second.invalid.len(), 1);
        assert!(
            second.invalid[0].error.contains("p/jobs/08/"),
            "{:?}",
            second.invalid[0]
        );

        let set = |s: Shard| {
            let mut shards: Vec<Arc<Shard>> =
                (0..SHARDS).map(|_| Arc::new(Shard::default())).collect();
            shards[7] = Arc::new(s);
            JobSet::from_parts(shards, Arc::from(Vec::new()), 1)
        };
        let (a, b) = (set(first), set(second));
        let changes: Vec<String> = b
            .changes_since(&a)
            .map(|c| match c {
                JobChange::Added(j) => format!("+{}", j.id()),
                JobChange::Removed(j) => format!("-{}", j.id()),
                JobChange::Changed { new, .. } => format!("~{}", new.id()),
            })
            .collect();
        // In id order: one removed, one added.
        let mut expected = [(&ids[1], "-"), (&ids[2], "+")];
        expected.sort();
        let expected: Vec<String> = expected.iter().map(|(id, s)| format!("{s}{id}")).collect();
        assert_eq!(changes, expected);
        assert_eq!(b.len(), 2);
        assert_eq!(b.invalid_count(), 1);
        assert!(b.get(&ids[2]).is_some() && b.get(&ids[1]).is_none());
        assert_eq!(b.changes_since(&b).count(), 0);
        assert_eq!(b.changes_since(&JobSet::default()).count(), 2);
    }
}
