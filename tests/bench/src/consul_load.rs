//! Scenario 4: requests per minute each node sends Consul at steady state, with 100 and with
//! 10,000 jobs (the goal: the same for both).
//!
//! Two nodes, each behind its own counting proxy. After the jobs are loaded and a settling
//! pause, the proxies' counts are taken over a window and scaled to a minute. The jobs are
//! every-minute jobs spread over the minute, so the leader enqueues all the while.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;

use crate::cluster::{job_spec, Cluster};
use crate::procs::Bins;
use crate::proxy::diff;

/// Pause after loading (the watch's coalesced read, registration) before counting.
const SETTLE: Duration = Duration::from_secs(5);

/// Counts for one job-set size.
#[derive(Debug, Clone)]
pub struct Row {
    /// Jobs.
    pub jobs: usize,
    /// Leader: requests per minute, and by endpoint over the window.
    pub leader_rpm: f64,
    /// Leader's requests by endpoint over the window.
    pub leader_by: BTreeMap<String, u64>,
    /// Follower: requests per minute.
    pub follower_rpm: f64,
    /// Follower's requests by endpoint over the window.
    pub follower_by: BTreeMap<String, u64>,
    /// Counting window, s.
    pub window_s: u64,
}

/// Measures with each size of `sizes` (ascending), `window` long each.
pub async fn run(bins: &Bins, sizes: &[usize], window: Duration) -> Result<Vec<Row>> {
    let cluster = Cluster::start(bins, 2).await?;
    let leader = cluster.wait_leader(Duration::from_secs(60)).await?;
    let follower = 1 - leader;
    let mut rows = Vec::new();
    let mut have = 0;
    for &n in sizes {
        let specs = (have..n)
            .map(|i| {
                job_spec(
                    &format!("j{i:07}"),
                    &format!("{} * * * * *", i % 60),
                    "bench",
                )
            })
            .collect();
        cluster.put_jobs(specs).await?;
        cluster
            .wait_jobs(leader, n, Duration::from_secs(600))
            .await?;
        cluster.wait_idle(leader, Duration::from_secs(300)).await?;
        have = n;
        tokio::time::sleep(SETTLE).await;
        let l0 = cluster.proxies[leader].counts.snapshot();
        let f0 = cluster.proxies[follower].counts.snapshot();
        tokio::time::sleep(window).await;
        let (lt, lby) = diff(&cluster.proxies[leader].counts.snapshot(), &l0);
        let (ft, fby) = diff(&cluster.proxies[follower].counts.snapshot(), &f0);
        let per_min = 60.0 / window.as_secs_f64();
        rows.push(Row {
            jobs: n,
            leader_rpm: lt as f64 * per_min,
            leader_by: lby,
            follower_rpm: ft as f64 * per_min,
            follower_by: fby,
            window_s: window.as_secs(),
        });
        eprintln!("consul load: {n} jobs: leader {lt}, follower {ft} requests in {window:?}");
    }
    Ok(rows)
}
