//! The million-job workload, shared by the criterion bench and the `planner_memory` example so
//! the two measure the same thing: jobs that all fire once a minute, spread over its 60 seconds
//! and a few shapes (6- and 5-field, a weekday range, a zone).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{JobSpec, Planner};

/// A planner holding `n` such jobs, planned from `now`.
pub fn planner_with_jobs(n: u32, now: DateTime<Utc>) -> Planner {
    let mut p = Planner::new();
    for k in 0..n {
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
        p.upsert(Arc::new(job), now);
    }
    p
}
