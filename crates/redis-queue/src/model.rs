//! What a task is made of: the node's settings, and the rules that turn a job's spec into a
//! task's fields (the image, the priority, the `HEADER_*` variables, the kind's wire name).
//!
//! The bottom layer of the crate: pure, and importing nothing of it. Both ways of writing a
//! task (`task::build_task`, the serde reference, and `encode::write_task`, the hot path) take
//! their field values from here, so they cannot disagree on a rule.

use chrono::{DateTime, SecondsFormat, Utc};
use cron_core::{FireKind, Job};

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

/// The stable name of a fire kind on the wire (task and history).
pub fn kind_name(kind: FireKind) -> &'static str {
    match kind {
        FireKind::Scheduled => "scheduled",
        FireKind::CatchUp => "catchup",
        FireKind::Manual => "manual",
        FireKind::Backfill => "backfill",
    }
}

pub(crate) fn kind_from_name(name: &str) -> Option<FireKind> {
    match name {
        "scheduled" => Some(FireKind::Scheduled),
        "catchup" => Some(FireKind::CatchUp),
        "manual" => Some(FireKind::Manual),
        "backfill" => Some(FireKind::Backfill),
        _ => None,
    }
}

/// An instant as the task writes it (RFC3339, milliseconds, `Z`).
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cron_core::JobSpec;

    fn job(function: serde_json::Value) -> Job {
        let spec =
            serde_json::json!({"id": "report", "function": function, "frequency": "@hourly"});
        JobSpec::from_json(spec.to_string().as_bytes())
            .unwrap()
            .validate()
            .unwrap()
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
}
