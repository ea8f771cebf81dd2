//! The job store: one job spec as JSON per key `<prefix>/jobs/<shard>/<id>`, written with
//! check-and-set, plus a stamp per shard that every write moves.
//!
//! - `<shard>` is [`shard_of`]`(id)` as two lowercase hex digits (256 shards, see
//!   `stored_job.rs`, which also checks every id before a key is built from it). Each shard has
//!   a stamp key `<prefix>/job-shards/<shard>`; every write (create, update, delete) is ONE
//!   Consul txn of the job's operation (`cas`, or `delete-cas`) and a `set` of the stamp, so
//!   the stamp's ModifyIndex moves whenever a job of its shard changes and the watch re-reads
//!   only that shard. The stamp's value names the write (`create <id>`, `update <id> <from>`,
//!   `delete <id> <from>`): Consul skips a `set` that changes nothing, and keeps the
//!   ModifyIndex then, so a constant value would not move the stamp.
//! - `created_at`/`updated_at` are set here, never taken from the caller.
//! - A job's `version` is its key's ModifyIndex; the txn answer carries the new version.
//! - Entries that fail validation (written by hand, or in the wrong folder) are reported with
//!   their key and error while the valid ones load; keys directly under `<prefix>/jobs/` (the
//!   unsharded layout of older builds) are reported too, by full reads.
//!
//! The set is in `job_set.rs`; reading it (`list`, the watch) in `store_watch.rs`, API paging
//! in `store_page.rs`: they extend [`JobStore`] and this file uses none of them.
//! Must not: schedule anything (cron-core's planner does).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::JobSpec;

use crate::error::{ConsulError, StoreError};
use crate::http::Consul;
use crate::kv::{KvOp, Query, TxnResults};
use crate::stored_job::{check_job_id, decode_value, shard_dir, shard_of, StoredJob};

/// Attempts of an update without a version, or of a delete, when another writer keeps winning.
const UPDATE_ATTEMPTS: usize = 5;
/// Largest stored job (its JSON value). A write is one txn, and Consul takes at most 512 KiB
/// in a txn request (`txn_max_req_len`), values base64-encoded (4/3): 380 KiB leaves room for
/// the keys and the stamp. A larger job is refused before Consul is asked, with
/// [`StoreError::TooLarge`], instead of a txn error that looks like an outage.
pub const MAX_JOB_BYTES: usize = 380 * 1024;

/// The job store under one prefix. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobStore {
    pub(crate) consul: Consul,
    /// `<prefix>/jobs/`.
    pub(crate) dir: String,
    /// `<prefix>/job-shards/`.
    pub(crate) stamps: String,
}

/// What a write does to the job, for [`JobStore::write`].
enum Write<'a> {
    Create(&'a [u8]),
    Update(&'a [u8], u64),
    Delete(u64),
}

impl JobStore {
    /// A store under `<prefix>/jobs/` (`prefix` as in [`crate::LockSettings::prefix`], checked
    /// by its `validate`; slashes around it are trimmed).
    pub fn new(consul: Consul, prefix: impl AsRef<str>) -> JobStore {
        let prefix = prefix.as_ref().trim_matches('/');
        JobStore {
            consul,
            dir: format!("{prefix}/jobs/"),
            stamps: format!("{prefix}/job-shards/"),
        }
    }

    /// The key of a job: `<prefix>/jobs/<shard>/<id>` (after [`check_job_id`]).
    pub fn key(&self, id: &str) -> Result<String, StoreError> {
        check_job_id(id)?;
        Ok(format!("{}{id}", shard_dir(&self.dir, shard_of(id))))
    }

    /// The stamp key of a job's shard: `<prefix>/job-shards/<shard>` (after [`check_job_id`]).
    /// A writer that bypasses the store must `set` it in the same txn as the job, to a value
    /// that differs from its current one (Consul does not move the ModifyIndex of a `set` that
    /// changes nothing), or the watches never see the write.
    pub fn stamp_key(&self, id: &str) -> Result<String, StoreError> {
        check_job_id(id)?;
        Ok(format!("{}{:02x}", self.stamps, shard_of(id)))
    }

    /// The job's operation and its shard's stamp in one txn (`Refused`: the check-and-set
    /// lost).
    async fn write(&self, id: &str, what: Write<'_>) -> Result<TxnResults, StoreError> {
        let key = self.key(id)?;
        let stamp_key = self.stamp_key(id)?;
        let (op, stamp) = match what {
            Write::Create(value) => (
                KvOp::Cas {
                    key: &key,
                    value,
                    index: 0,
                },
                format!("create {id}"),
            ),
            Write::Update(value, from) => (
                KvOp::Cas {
                    key: &key,
                    value,
                    index: from,
                },
                format!("update {id} {from}"),
            ),
            Write::Delete(from) => (
                KvOp::DeleteCas {
                    key: &key,
                    index: from,
                },
                format!("delete {id} {from}"),
            ),
        };
        let stamp = KvOp::Set {
            key: &stamp_key,
            value: stamp.as_bytes(),
        };
        Ok(match op {
            // Consul's `delete-cas` of a key that is already gone succeeds: the check makes
            // a delete that lost a race a refusal, so exactly one of two deletes says it
            // deleted.
            KvOp::DeleteCas { key, index } => {
                let check = KvOp::CheckIndex { key, index };
                self.consul.kv_txn(&[check, op, stamp]).await?
            }
            op => self.consul.kv_txn(&[op, stamp]).await?,
        })
    }

    /// Whether `spec` fits in one write once stored (its timestamps set): `TooLarge` if not.
    /// The store checks every write with it; a caller may check before anything else.
    pub fn check_size(spec: &JobSpec) -> Result<(), StoreError> {
        let mut stamped = spec.clone();
        let now = Utc::now();
        stamped.created_at = stamped.created_at.or(Some(now));
        stamped.updated_at = Some(now);
        fits(&stamped, &encode(&stamped))
    }

    /// Creates a job; `Conflict` if one with the same id exists.
    pub async fn create(&self, mut spec: JobSpec) -> Result<StoredJob, StoreError> {
        self.key(&spec.id)?;
        let now = Utc::now();
        spec.created_at = Some(now);
        spec.updated_at = Some(now);
        let job = spec.validate()?;
        let value = encode(&job.spec);
        fits(&job.spec, &value)?;
        match self.write(&job.spec.id, Write::Create(&value)).await? {
            TxnResults::Applied(entries) => Ok(StoredJob {
                version: written_version(&entries)?,
                job: Arc::new(job),
            }),
            TxnResults::Refused(what) => Err(StoreError::Conflict {
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
            let value = encode(&job.spec);
            fits(&job.spec, &value)?;
            match self
                .write(&id, Write::Update(&value, current.modify_index))
                .await?
            {
                TxnResults::Applied(entries) => {
                    return Ok(StoredJob {
                        version: written_version(&entries)?,
                        job: Arc::new(job),
                    })
                }
                TxnResults::Refused(what) if version.is_some() => {
                    return Err(StoreError::Conflict {
                        id,
                        message: format!(
                            "it changed since version {} ({what})",
                            current.modify_index
                        ),
                    })
                }
                // Another writer won between our read and write: read again.
                TxnResults::Refused(_) => continue,
            }
        }
        Err(StoreError::Conflict {
            id,
            message: format!("other writers kept changing it ({UPDATE_ATTEMPTS} attempts)"),
        })
    }

    /// Deletes a job, valid or not; `false` if it did not exist, also when a concurrent delete
    /// took it first. The delete is a `check-index` and a `delete-cas` at the version just
    /// read (with the stamp in the same txn); when the job changed in between, it is read and
    /// deleted again.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let key = self.key(id)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let (current, _) = self.consul.kv_get(&key, Query::now()).await?;
            let Some(current) = current else {
                return Ok(false);
            };
            match self.write(id, Write::Delete(current.modify_index)).await? {
                TxnResults::Applied(_) => return Ok(true),
                TxnResults::Refused(_) => continue,
            }
        }
        Err(StoreError::Conflict {
            id: id.to_string(),
            message: format!("other writers kept changing it ({UPDATE_ATTEMPTS} attempts)"),
        })
    }

    /// Reads one job; a stored entry that fails validation is `StoreError::Stored`.
    pub async fn get(&self, id: &str) -> Result<Option<StoredJob>, StoreError> {
        let key = self.key(id)?;
        let (entry, _) = self.consul.kv_get(&key, Query::now()).await?;
        match entry {
            None => Ok(None),
            Some(e) => decode_value(&self.dir, shard_of(id), &e.key, &e.value, e.modify_index)
                .map(Some)
                .map_err(|error| StoreError::Stored { key, error }),
        }
    }
}

/// The version a txn gave the job: the ModifyIndex of its first result (the job's `cas`).
fn written_version(entries: &[crate::kv::KvEntry]) -> Result<u64, StoreError> {
    entries.first().map(|e| e.modify_index).ok_or_else(|| {
        StoreError::Consul(ConsulError::Decode {
            endpoint: "PUT /v1/txn".to_string(),
            message: "a write without a KV result".to_string(),
        })
    })
}

fn stale(id: &str, asked: u64, current: u64) -> StoreError {
    StoreError::Conflict {
        id: id.to_string(),
        message: format!("version {asked} is stale: the job is at version {current}"),
    }
}

fn fits(spec: &JobSpec, value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_JOB_BYTES {
        return Err(StoreError::TooLarge {
            id: spec.id.clone(),
            bytes: value.len(),
            limit: MAX_JOB_BYTES,
        });
    }
    Ok(())
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
