//! The million-job workload, shared by the criterion bench and the `planner_memory` example so
//! the two measure the same thing: jobs that all fire once a minute, spread over its 60 seconds
//! and a few shapes (6- and 5-field, a weekday range, a zone).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Job, JobSpec, Planner};

/// Job number `k` of the workload, validated.
pub fn job(k: u32) -> Arc<Job> {
    let (freq, tz) = match k % 4 {
        0 => (format!("{} * * * * *", k % 60), "UTC"),
        1 => (format!("{} */1 * * * *", k % 60), "UTC"),
        2 => (format!("{} * * * * 1-5", k % 60), "UTC"),
        _ => ("* * * * *".to_string(), "Europe/Berlin"),
    };
    let json = format!(
        r#"{{"id":"job-{k}","function":{{"app":"app","path":"/fn"}},"frequency":"{freq}","timezone":"{tz}"}}"#
    );
    let job = JobSpec::from_json(json.as_bytes())
        .expect("the workload's JSON is well formed")
        .validate()
        .expect("the workload's jobs are valid");
    Arc::new(job)
}

/// A planner holding `n` such jobs, planned from `now`.
#[allow(dead_code)] // the example builds its planner itself, to measure each part
pub fn planner_with_jobs(n: u32, now: DateTime<Utc>) -> Planner {
    let mut p = Planner::new();
    for k in 0..n {
        p.upsert(job(k), now);
    }
    p
}
