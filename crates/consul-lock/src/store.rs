//! The job store: one job spec as JSON per key `<prefix>/jobs/<id>`, written with
//! check-and-set, and a watch that hands the scheduler the current set of valid jobs.
//!
//! - Every id is checked ([`check_id`]) before a key is built from it, so no id makes a key
//!   outside the prefix. `created_at`/`updated_at` are set here, never taken from the caller.
//! - A job's `version` is its key's ModifyIndex; writes go through txn `cas` so the answer
//!   carries the new version (a PUT answers only `true`).
//! - Entries that fail validation (written by hand in the Consul UI, say) are reported with
//!   their key and error in [`JobSet::invalid`] while the valid ones load.
//!
//! The watch is in `store_watch.rs`. Must not: schedule anything (cron-core's planner does).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Job, JobError, JobSpec};

use crate::error::ConsulError;
use crate::http::Consul;
use crate::kv::{KvEntry, Query, TxnOutcome};

/// Attempts of an update without a version when another writer keeps winning.
const UPDATE_ATTEMPTS: usize = 5;

/// A job as stored, validated, with its version.
#[derive(Debug, Clone)]
pub struct StoredJob {
    /// The validated job (its spec carries `created_at`/`updated_at`).
    pub job: Arc<Job>,
    /// The key's ModifyIndex: pass it to [`JobStore::update`] for check-and-set.
    pub version: u64,
}

/// A stored entry that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// The full Consul key.
    pub key: String,
    /// Why it was refused.
    pub error: String,
}

/// Every job under the prefix at one Consul index.
#[derive(Debug, Clone, Default)]
pub struct JobSet {
    /// The valid jobs by id.
    pub jobs: BTreeMap<String, StoredJob>,
    /// The entries that failed validation, by key.
    pub invalid: Vec<InvalidEntry>,
    /// The Consul index of the read (0 before the first read of a watch).
    pub index: u64,
}

/// Why a job store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The spec (or the id) was refused; nothing was written.
    #[error("invalid job: {0}")]
    Invalid(#[from] JobError),
    /// The id cannot name a key.
    #[error("invalid job id {id:?}: {reason}")]
    BadId {
        /// The id given.
        id: String,
        /// What is allowed.
        reason: String,
    },
    /// The job exists (create), or changed since the version given (update).
    #[error("conflict on job {id:?}: {message}")]
    Conflict {
        /// The job id.
        id: String,
        /// What happened.
        message: String,
    },
    /// No such job.
    #[error("job {0:?} not found")]
    NotFound(String),
    /// The stored entry does not validate (written by hand?).
    #[error("stored job at {key} is invalid: {error}")]
    Stored {
        /// The full key.
        key: String,
        /// Why.
        error: String,
    },
    /// Consul failed.
    #[error(transparent)]
    Consul(#[from] ConsulError),
}

/// File extensions Consul (1.21.5 and later) refuses at the end of a KV key, because proxies
/// may cache such paths. A job id ending in one could never be stored.
const CONSUL_REFUSED_EXTENSIONS: &[&str] = &[
    "js", "css", "htm", "html", "xml", "json", "txt", "log", "php", "asp", "jsp", "cgi", "pl",
    "py", "rb", "sh", "exe", "dll", "bat", "cmd", "com", "scr", "vbs", "pdf", "doc", "docx", "xls",
    "xlsx", "ppt", "pptx", "zip", "rar", "tar", "gz", "7z", "bz2", "jpg", "jpeg", "png", "gif",
    "svg", "ico", "bmp", "mp3", "mp4", "avi", "mov", "wmv", "flv", "swf", "woff", "woff2", "ttf",
    "eot", "otf",
];

/// Checks a job id: cron-core's rule (`[A-Za-z0-9_.-]{1,128}`, no leading `.`, no `..`), which
/// also keeps every key inside the prefix, plus Consul's own refusal of some key endings.
pub fn check_id(id: &str) -> Result<(), StoreError> {
    cron_core::job::check_id(id).map_err(|e| StoreError::BadId {
        id: id.to_string(),
        reason: e.to_string(),
    })?;
    if let Some((_, ext)) = id.rsplit_once('.') {
        if CONSUL_REFUSED_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            return Err(StoreError::BadId {
                id: id.to_string(),
                reason: format!("Consul refuses keys ending in \".{ext}\"; choose another id"),
            });
        }
    }
    Ok(())
}

/// The job store under one prefix. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobStore {
    pub(crate) consul: Consul,
    /// `<prefix>/jobs/`.
    pub(crate) dir: String,
}

impl JobStore {
    /// A store under `<prefix>/jobs/` (`prefix` as in [`crate::LockSettings::prefix`], checked
    /// by its `validate`; slashes around it are trimmed).
    pub fn new(consul: Consul, prefix: impl AsRef<str>) -> JobStore {
        let prefix = prefix.as_ref().trim_matches('/');
        JobStore {
            consul,
            dir: format!("{prefix}/jobs/"),
        }
    }

    /// The key of a job (after [`check_id`]).
    pub fn key(&self, id: &str) -> Result<String, StoreError> {
        check_id(id)?;
        Ok(format!("{}{id}", self.dir))
    }

    /// Creates a job; `Conflict` if one with the same id exists.
    pub async fn create(&self, mut spec: JobSpec) -> Result<StoredJob, StoreError> {
        let key = self.key(&spec.id)?;
        let now = Utc::now();
        spec.created_at = Some(now);
        spec.updated_at = Some(now);
        let job = spec.validate()?;
        match self.consul.kv_cas(&key, &encode(&job.spec), 0).await? {
            TxnOutcome::Written(e) => Ok(StoredJob {
                job: Arc::new(job),
                version: e.modify_index,
            }),
            TxnOutcome::Refused(what) => Err(StoreError::Conflict {
                id: job.spec.id.clone(),
                message: format!("it already exists ({what})"),
            }),
        }
    }

    /// Replaces a job. With `version`, only if the job is still at that version (`Conflict`
    /// otherwise); without, whatever its version. `NotFound` if it does not exist.
    pub async fn update(
        &self,
        mut spec: JobSpec,
        version: Option<u64>,
    ) -> Result<StoredJob, StoreError> {
        let key = self.key(&spec.id)?;
        let id = spec.id.clone();
        for _ in 0..UPDATE_ATTEMPTS {
            let (current, _) = self.consul.kv_get(&key, Query::now()).await?;
            let Some(current) = current else {
                return Err(StoreError::NotFound(id));
            };
            if let Some(v) = version {
                if v != current.modify_index {
                    return Err(stale(&id, v, current.modify_index));
                }
            }
            let now = Utc::now();
            spec.created_at = created_at(&current.value).or(Some(now));
            spec.updated_at = Some(now);
            let job = spec.clone().validate()?;
            match self
                .consul
                .kv_cas(&key, &encode(&job.spec), current.modify_index)
                .await?
            {
                TxnOutcome::Written(e) => {
                    return Ok(StoredJob {
                        job: Arc::new(job),
                        version: e.modify_index,
                    })
                }
                TxnOutcome::Refused(what) if version.is_some() => {
                    return Err(StoreError::Conflict {
                        id,
                        message: format!(
                            "it changed since version {} ({what})",
                            current.modify_index
                        ),
                    })
                }
                // Another writer won between our read and write: read again.
                TxnOutcome::Refused(_) => continue,
            }
        }
        Err(StoreError::Conflict {
            id,
            message: format!("other writers kept changing it ({UPDATE_ATTEMPTS} attempts)"),
        })
    }

    /// Deletes a job; `false` if it did not exist.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let key = self.key(id)?;
        let (current, _) = self.consul.kv_get(&key, Query::now()).await?;
        if current.is_none() {
            return Ok(false);
        }
        self.consul.kv_delete(&key).await?;
        Ok(true)
    }

    /// Reads one job; a stored entry that fails validation is `StoreError::Stored`.
    pub async fn get(&self, id: &str) -> Result<Option<StoredJob>, StoreError> {
        let key = self.key(id)?;
        let (entry, _) = self.consul.kv_get(&key, Query::now()).await?;
        match entry {
            None => Ok(None),
            Some(e) => decode_entry(&self.dir, &e)
                .map(Some)
                .map_err(|error| StoreError::Stored { key, error }),
        }
    }

    /// Reads every job under the prefix.
    pub async fn list(&self) -> Result<JobSet, StoreError> {
        let (entries, index) = self.consul.kv_list(&self.dir, Query::now()).await?;
        Ok(job_set(&self.dir, &entries, index))
    }
}

fn stale(id: &str, asked: u64, current: u64) -> StoreError {
    StoreError::Conflict {
        id: id.to_string(),
        message: format!("version {asked} is stale: the job is at version {current}"),
    }
}

fn encode(spec: &JobSpec) -> Vec<u8> {
    // A JobSpec is plain data: serialising it cannot fail.
    serde_json::to_vec(spec).unwrap_or_default()
}

/// The `created_at` of a stored value, read loosely (the stored value may be invalid).
fn created_at(value: &[u8]) -> Option<DateTime<Utc>> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    serde_json::from_value(v.get("created_at")?.clone()).ok()
}

/// Validates one stored entry under `dir`.
fn decode_entry(dir: &str, e: &KvEntry) -> Result<StoredJob, String> {
    let id = e.key.strip_prefix(dir).unwrap_or(&e.key);
    check_id(id).map_err(|err| format!("the key does not name a job: {err}"))?;
    let spec = JobSpec::from_json(&e.value).map_err(|err| err.to_string())?;
    if spec.id != id {
        return Err(format!(
            "id {:?} does not match the key's id {id:?}",
            spec.id
        ));
    }
    let job = spec.validate().map_err(|err| err.to_string())?;
    Ok(StoredJob {
        job: Arc::new(job),
        version: e.modify_index,
    })
}

/// Builds the set from a recursive read: valid jobs, and every other entry reported.
pub(crate) fn job_set(dir: &str, entries: &[KvEntry], index: u64) -> JobSet {
    let mut set = JobSet {
        index,
        ..JobSet::default()
    };
    for e in entries {
        // A "folder" made in the Consul UI: an empty key ending in `/`.
        if e.key.ends_with('/') && e.value.is_empty() {
            continue;
        }
        match decode_entry(dir, e) {
            Ok(job) => {
                set.jobs.insert(job.job.spec.id.clone(), job);
            }
            Err(error) => set.invalid.push(InvalidEntry {
                key: e.key.clone(),
                error,
            }),
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_the_prefix() {
        for bad in [
            "",
            "../leader",
            "a/b",
            ".hidden",
            "a..b",
            "a%2F..",
            "x y",
            "ä",
        ] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["report", "a.b-c_d", "A1"] {
            check_id(good).unwrap();
        }
        assert!(check_id(&"a".repeat(129)).is_err());
    }

    fn entry(key: &str, value: &str, index: u64) -> KvEntry {
        KvEntry {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            flags: 0,
            session: None,
            lock_index: 0,
            create_index: index,
            modify_index: index,
        }
    }

    #[test]
    fn invalid_entries_are_reported_with_key_and_error() {
        let ok = r#"{"id":"a","function":{"app":"x","path":"/f"},"frequency":"@hourly"}"#;
        let entries = vec![
            entry("p/jobs/", "", 1),
            entry("p/jobs/a", ok, 5),
            entry("p/jobs/b", "{not json", 6),
            entry("p/jobs/c", ok, 7),
            entry("p/jobs/d/e", ok, 8),
        ];
        let set = job_set("p/jobs/", &entries, 9);
        assert_eq!(set.index, 9);
        assert_eq!(set.jobs.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(set.jobs["a"].version, 5);
        let keys: Vec<_> = set.invalid.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, vec!["p/jobs/b", "p/jobs/c", "p/jobs/d/e"]);
        assert!(
            set.invalid[1].error.contains("does not match"),
            "{:?}",
            set.invalid[1]
        );
    }
}
