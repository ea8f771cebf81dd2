//! A job as stored: its key layout (256 shards), the id check every key is built after, and
//! the decoding of a KV entry into a [`StoredJob`].
//!
//! A job lives at `<prefix>/jobs/<xx>/<id>`, `xx` = [`shard_of`]`(id)` in two lowercase hex
//! digits (the low 8 bits of the 32-bit FNV-1a hash of the id). Every id is checked
//! ([`check_job_id`]) before a key is built from it, so no id makes a key outside the prefix.
//!
//! The store's writes (`store.rs`), its set (`job_set.rs`), its watch (`store_watch.rs`) and
//! its pages (`store_page.rs`) all build on this file, which depends on none of them.
//! Must not: do I/O.

use std::sync::Arc;

use cron_core::{Job, JobSpec};

use crate::error::StoreError;
use crate::kv::RawEntry;

/// A job as stored, validated, with its version.
#[derive(Debug, Clone)]
pub struct StoredJob {
    /// The validated job (its spec carries `created_at`/`updated_at`).
    pub job: Arc<Job>,
    /// The key's ModifyIndex: pass it to [`crate::JobStore::update`] for check-and-set.
    pub version: u64,
}

impl StoredJob {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.job.spec.id
    }
}

/// A stored entry that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// The full Consul key.
    pub key: String,
    /// Why it was refused.
    pub error: String,
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
pub fn check_job_id(id: &str) -> Result<(), StoreError> {
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

/// Shards of the job store: `<prefix>/jobs/00/` to `<prefix>/jobs/ff/`.
pub const SHARDS: usize = 256;

/// The shard of a job id: the low 8 bits of the 32-bit FNV-1a hash of its bytes. Part of the
/// stored layout: changing it would strand every stored job in the wrong folder.
pub fn shard_of(id: &str) -> u8 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let hash = id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME));
    (hash & 0xff) as u8
}

/// `<dir><xx>/`: the folder of shard `shard` under `dir` (`<prefix>/jobs/`).
pub(crate) fn shard_dir(dir: &str, shard: u8) -> String {
    format!("{dir}{shard:02x}/")
}

/// Whether a key below a shard folder is the folder itself (an empty "folder" key made in the
/// Consul UI), which is no entry at all.
pub(crate) fn is_folder(e: &RawEntry) -> bool {
    e.key.ends_with('/') && e.value.as_deref().is_none_or(str::is_empty)
}

/// Validates one listed entry of shard `shard` under `dir` (`<prefix>/jobs/`).
pub(crate) fn decode_entry(dir: &str, shard: u8, e: &RawEntry) -> Result<StoredJob, String> {
    decode_value(dir, shard, &e.key, &e.value_bytes()?, e.modify_index)
}

/// Validates the value of `key` in shard `shard` under `dir`.
pub(crate) fn decode_value(
    dir: &str,
    shard: u8,
    key: &str,
    value: &[u8],
    version: u64,
) -> Result<StoredJob, String> {
    let folder = shard_dir(dir, shard);
    let id = key.strip_prefix(&folder).unwrap_or(key);
    check_job_id(id).map_err(|err| format!("the key does not name a job: {err}"))?;
    let home = shard_of(id);
    if home != shard {
        return Err(format!(
            "job {id:?} is in the wrong shard folder: it must be in its shard folder \
             {}; re-create it through the API",
            shard_dir(dir, home)
        ));
    }
    let spec = JobSpec::from_json(value).map_err(|err| err.to_string())?;
    if spec.id != id {
        return Err(format!(
            "id {:?} does not match the key's id {id:?}",
            spec.id
        ));
    }
    let job = spec.validate().map_err(|err| err.to_string())?;
    Ok(StoredJob {
        job: Arc::new(job),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_is_fnv1a_low_byte() {
        // FNV-1a 32 of "" is the offset basis 0x811c9dc5; of "a" 0xe40c292c.
        assert_eq!(shard_of(""), 0xc5);
        assert_eq!(shard_of("a"), 0x2c);
        assert_eq!(shard_dir("p/jobs/", 0x0a), "p/jobs/0a/");
    }

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
            assert!(check_job_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["report", "a.b-c_d", "A1"] {
            check_job_id(good).unwrap();
        }
        assert!(check_job_id(&"a".repeat(129)).is_err());
    }
}
