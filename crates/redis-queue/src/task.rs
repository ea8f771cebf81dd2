//! The IronFunctions task: what one fire becomes on the platform's queue.
//!
//! Owns the JSON an async runner reserves (see docs/ironfunctions-mq.md): `id` is the fire id,
//! `image` is required, `created_at` is always an RFC3339 string, and `env_vars` mimic an HTTP
//! POST to the route. An extra `cron` object tells where the call came from; runners ignore
//! unknown fields. Also owns the history entry's wire form, built here so the enqueue script
//! does no JSON work.
//!
//! Must not do I/O: [`encode_task`] is a pure function of its arguments (time is `now`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind, Job};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::encode::{rfc3339, write_task};

/// The functions base URL used in `REQUEST_URL` when none is configured.
pub const DEFAULT_FUNCTIONS_URL: &str = "http://127.0.0.1:8080";
/// The run timeout (seconds) sent when the job names none: the runner's own default.
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
/// The hot-function idle timeout (seconds) sent with every task: the runner's default.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 30;
/// The highest priority the runners poll (queue0..queue2).
pub const MAX_PRIORITY: u8 = 2;

/// Node-wide settings that go into every task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    /// The functions server's base URL; `REQUEST_URL` is this plus `/r/<app><path>`.
    pub functions_url: String,
    /// The image used for a job that names none. Without it such a job is refused.
    pub default_image: Option<String>,
    /// This node's name, recorded in the task's `cron` object and in the history.
    pub node: String,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            functions_url: DEFAULT_FUNCTIONS_URL.to_string(),
            default_image: None,
            node: String::new(),
        }
    }
}

/// Why a job cannot be turned into a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// Neither the job nor the node names a container image; the runner needs one.
    #[error(
        "job {job}: function.image is required: the job names no image and no default image \
         is configured (set one, or give the job a function.image)"
    )]
    NoImage {
        /// The job id.
        job: String,
    },
    /// A priority the runners never poll.
    #[error("job {job}: function.priority {priority} is not allowed (0, 1 or 2)")]
    Priority {
        /// The job id.
        job: String,
        /// The refused priority.
        priority: u8,
    },
    /// A header line that is not `Name: value`.
    #[error("job {job}: function.headers: {line:?} is not a `Name: value` line")]
    Header {
        /// The job id.
        job: String,
        /// The refused line.
        line: String,
    },
}

impl TaskSettings {
    /// Checks that every task of `job` can be built (an image, a polled priority, headers that
    /// parse). Call it when a job is created or updated, so a bad job is refused up front.
    pub fn check_job(&self, job: &Job) -> Result<(), TaskError> {
        self.image_for(job)?;
        check_priority(job)?;
        headers_env(job)?;
        Ok(())
    }

    pub(crate) fn image_for<'a>(&'a self, job: &'a Job) -> Result<&'a str, TaskError> {
        let named = job.spec.function.image.as_deref().filter(|s| !s.is_empty());
        named
            .or(self.default_image.as_deref().filter(|s| !s.is_empty()))
            .ok_or_else(|| TaskError::NoImage {
                job: job.spec.id.clone(),
            })
    }
}

pub(crate) fn check_priority(job: &Job) -> Result<u8, TaskError> {
    let priority = job.spec.function.priority;
    if priority > MAX_PRIORITY {
        return Err(TaskError::Priority {
            job: job.spec.id.clone(),
            priority,
        });
    }
    Ok(priority)
}

/// `HEADER_<NAME>` variables, as the functions server makes them from a request: the name
/// upper-cased with `-` → `_`; repeated names joined with `, ` like Go's http.Header.
pub(crate) fn headers_env(job: &Job) -> Result<Vec<(String, String)>, TaskError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in &job.spec.function.headers {
        let bad = || TaskError::Header {
            job: job.spec.id.clone(),
            line: line.clone(),
        };
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        let key = format!("HEADER_{}", name.to_ascii_uppercase().replace('-', "_"));
        let value = value.trim().to_string();
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(&value);
            }
            None => out.push((key, value)),
        }
    }
    Ok(out)
}

/// The task as the runner reads it. Field names are the wire format; do not rename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The fire id (the call id).
    pub id: String,
    /// The app.
    pub app_name: String,
    /// The route path.
    pub path: String,
    /// The container image to run.
    pub image: String,
    /// 0, 1 or 2.
    pub priority: u8,
    /// The function's stdin (the job's body).
    pub payload: String,
    /// Run timeout in seconds.
    pub timeout: u32,
    /// Hot-function idle timeout in seconds.
    pub idle_timeout: u32,
    /// Seconds the task waited in the delayed set (absent for immediate tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
    /// When the task was made (RFC3339 with milliseconds; never null).
    pub created_at: String,
    /// The call's environment: `METHOD`, `ROUTE`, `REQUEST_URL`, `HEADER_*`.
    pub env_vars: BTreeMap<String, String>,
    /// Where the call came from (ignored by runners).
    pub cron: CronMeta,
}

/// The `cron` object of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronMeta {
    /// The job id.
    pub job_id: String,
    /// The scheduled instant (RFC3339).
    pub slot: String,
    /// The leader's fencing token.
    pub token: u64,
    /// `scheduled`, `catchup` or `manual`.
    pub kind: String,
    /// The node that enqueued it.
    pub node: String,
}

/// The stable name of a fire kind on the wire (task and history).
pub fn kind_name(kind: FireKind) -> &'static str {
    match kind {
        FireKind::Scheduled => "scheduled",
        FireKind::CatchUp => "catchup",
        FireKind::Manual => "manual",
    }
}

fn kind_from_name(name: &str) -> Option<FireKind> {
    match name {
        "scheduled" => Some(FireKind::Scheduled),
        "catchup" => Some(FireKind::CatchUp),
        "manual" => Some(FireKind::Manual),
        _ => None,
    }
}

/// Builds the task of `fire` (a slot of `job`) as the runner will read it.
pub fn build_task(
    job: &Job,
    fire: &Fire,
    token: u64,
    settings: &TaskSettings,
    now: DateTime<Utc>,
) -> Result<Task, TaskError> {
    let f = &job.spec.function;
    let image = settings.image_for(job)?.to_string();
    let priority = check_priority(job)?;
    let mut env: BTreeMap<String, String> = headers_env(job)?.into_iter().collect();
    env.insert("METHOD".into(), "POST".into());
    env.insert("ROUTE".into(), f.path.clone());
    let base = settings.functions_url.trim_end_matches('/');
    env.insert(
        "REQUEST_URL".into(),
        format!("{base}/r/{}{}", f.app, f.path),
    );
    // Ours wins over a job's own User-Agent: the platform must be able to tell cron calls apart.
    env.insert(
        "HEADER_USER_AGENT".into(),
        format!(
            "cronnode/{} (job {})",
            env!("CARGO_PKG_VERSION"),
            job.spec.id
        ),
    );
    Ok(Task {
        id: fire.fire_id.to_string(),
        app_name: f.app.clone(),
        path: f.path.clone(),
        image,
        priority,
        payload: f.body.clone(),
        timeout: f.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS),
        idle_timeout: DEFAULT_IDLE_TIMEOUT_SECS,
        delay: f.delay.filter(|d| *d > 0),
        created_at: rfc3339(now),
        env_vars: env,
        cron: CronMeta {
            job_id: job.spec.id.clone(),
            slot: rfc3339(fire.slot),
            token,
            kind: kind_name(fire.kind).to_string(),
            node: settings.node.clone(),
        },
    })
}

/// The task JSON of `fire`, exactly as it is pushed onto the queue.
pub fn encode_task(
    job: &Job,
    fire: &Fire,
    token: u64,
    settings: &TaskSettings,
    now: DateTime<Utc>,
) -> Result<String, TaskError> {
    let mut out = Vec::with_capacity(512);
    write_task(
        &mut out,
        job,
        fire,
        token,
        settings,
        &rfc3339(now),
        &rfc3339(fire.slot),
    )?;
    // Built only from &str pieces and ASCII, so always UTF-8.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// One enqueued fire, as kept in the job's capped history (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The scheduled instant.
    pub slot: DateTime<Utc>,
    /// When it was enqueued (the enqueuing leader's clock, as in the task's `created_at`).
    pub enqueued_at: DateTime<Utc>,
    /// The fire id (the task's `id`).
    pub fire_id: Uuid,
    /// The fencing token it was enqueued under.
    pub token: u64,
    /// The node that enqueued it.
    pub node: String,
    /// Scheduled, catch-up or manual.
    pub kind: FireKind,
}

/// The stored form of a [`HistoryEntry`].
#[derive(Serialize, Deserialize)]
/// Instants as unix seconds and milliseconds: about half the bytes of RFC3339 strings, and
/// the script copies every entry.
struct HistoryWire {
    #[serde(with = "chrono::serde::ts_seconds")]
    slot: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    enqueued_at: DateTime<Utc>,
    fire_id: Uuid,
    token: u64,
    node: String,
    kind: String,
}

impl HistoryEntry {
    /// The entry recorded when `fire` is enqueued.
    pub fn new(fire: &Fire, token: u64, node: &str, now: DateTime<Utc>) -> HistoryEntry {
        HistoryEntry {
            slot: fire.slot,
            enqueued_at: now,
            fire_id: fire.fire_id,
            token,
            node: node.to_string(),
            kind: fire.kind,
        }
    }

    /// The stored JSON.
    pub fn to_json(&self) -> String {
        let wire = HistoryWire {
            slot: self.slot,
            enqueued_at: self.enqueued_at,
            fire_id: self.fire_id,
            token: self.token,
            node: self.node.clone(),
            kind: kind_name(self.kind).to_string(),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Parses a stored entry; `None` when it is not one of ours.
    pub fn from_json(bytes: &[u8]) -> Option<HistoryEntry> {
        let wire: HistoryWire = serde_json::from_slice(bytes).ok()?;
        Some(HistoryEntry {
            slot: wire.slot,
            enqueued_at: wire.enqueued_at,
            fire_id: wire.fire_id,
            token: wire.token,
            node: wire.node,
            kind: kind_from_name(&wire.kind)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cron_core::JobSpec;

    fn job(function: serde_json::Value) -> Job {
        let spec =
            serde_json::json!({"id": "report", "function": function, "frequency": "@hourly"});
        JobSpec::from_json(spec.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
    }

    #[test]
    fn headers_become_env_vars_like_the_functions_server_makes_them() {
        let j = job(serde_json::json!({"app": "a", "path": "/p", "image": "i",
            "headers": ["Content-Type: application/json", "x-multi: 1", "X-Multi: 2",
                        "User-Agent: mine", "X-Empty:"]}));
        let fire = Fire::scheduled("report".into(), at(), FireKind::CatchUp);
        let t = build_task(&j, &fire, 9, &TaskSettings::default(), at()).unwrap();
        assert_eq!(t.env_vars["HEADER_CONTENT_TYPE"], "application/json");
        assert_eq!(t.env_vars["HEADER_X_MULTI"], "1, 2");
        assert_eq!(t.env_vars["HEADER_X_EMPTY"], "");
        assert!(t.env_vars["HEADER_USER_AGENT"].starts_with("cronnode/"));
        assert_eq!(t.env_vars["REQUEST_URL"], "http://127.0.0.1:8080/r/a/p");
        assert_eq!(t.cron.kind, "catchup");
        assert_eq!(t.created_at, "2026-03-29T01:00:00.000Z");
        assert_eq!(t.id, fire.fire_id.to_string());
    }

    #[test]
    fn bad_jobs_are_refused_with_the_reason() {
        let s = TaskSettings::default();
        let no_image = job(serde_json::json!({"app": "a", "path": "/p"}));
        assert!(matches!(
            s.check_job(&no_image),
            Err(TaskError::NoImage { .. })
        ));
        // cron-core refuses such a job too; the encoder must not trust that.
        let mut bad_header = job(serde_json::json!({"app": "a", "path": "/p", "image": "i"}));
        bad_header.spec.function.headers = vec!["no colon here".into()];
        let err = s.check_job(&bad_header).unwrap_err();
        assert!(err.to_string().contains("no colon here"), "{err}");
        let mut high = job(serde_json::json!({"app": "a", "path": "/p", "image": "i"}));
        high.spec.function.priority = 3;
        assert!(matches!(
            s.check_job(&high),
            Err(TaskError::Priority { priority: 3, .. })
        ));
    }

    #[test]
    fn history_entries_round_trip() {
        let fire = Fire::manual("report".into(), at());
        let e = HistoryEntry::new(&fire, 42, "node-a", at());
        assert_eq!(HistoryEntry::from_json(e.to_json().as_bytes()), Some(e));
        assert_eq!(HistoryEntry::from_json(b"not json"), None);
    }
}
