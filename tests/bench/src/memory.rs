//! Scenario 3: resident memory of the leader with 10,000, 100,000 and 1,000,000 jobs loaded.
//!
//! One node; jobs added in steps to the same cluster (daily schedules spread over the day, so a
//! few fire during the run, as in life). RSS is read from /proc after the leader reports every
//! job loaded and a settling pause; the baseline is the same process with no jobs. Consul's and
//! Redis' own memory are shown beside it, never counted in the per-job figure.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cluster::{job_spec, Cluster};
use crate::procs::{rss_kib, Bins};

/// Pause after loading before reading RSS (the watch's last read, allocator settling).
const SETTLE: Duration = Duration::from_secs(5);

/// One step's figures.
#[derive(Debug, Clone)]
pub struct Step {
    /// Jobs loaded.
    pub jobs: usize,
    /// Leader VmRSS, KiB.
    pub rss: u64,
    /// Leader VmHWM (peak), KiB.
    pub hwm: u64,
    /// (rss − baseline) / jobs, bytes.
    pub per_job: f64,
    /// consul-dev RSS, KiB.
    pub consul_rss: u64,
    /// redis-server RSS, KiB.
    pub redis_rss: u64,
    /// Seconds from the first write of this step to the leader having every job.
    pub load_s: f64,
}

/// The whole measurement.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Leader RSS with no jobs, KiB.
    pub baseline: u64,
    /// Steps.
    pub steps: Vec<Step>,
    /// The step that could not be measured, and why.
    pub failed: Option<(usize, String)>,
}

/// A daily schedule spread over the day by `i`.
fn daily(i: usize) -> String {
    format!("{} {} {} * * *", i % 60, (i / 60) % 60, (i / 3600) % 24)
}

/// Measures with the job counts in `sizes` (ascending).
pub async fn run(bins: &Bins, sizes: &[usize]) -> Result<Outcome> {
    let cluster = Cluster::start(bins, 1).await?;
    let leader = cluster.wait_leader(Duration::from_secs(60)).await?;
    tokio::time::sleep(SETTLE).await;
    let pid = cluster.nodes[leader].running()?.pid();
    let baseline = rss_kib(pid)?.0;
    let mut steps = Vec::new();
    let mut have = 0;
    for &n in sizes {
        let t = Instant::now();
        let specs = (have..n)
            .map(|i| job_spec(&format!("j{i:07}"), &daily(i), "bench"))
            .collect();
        cluster.put_jobs(specs).await?;
        let loaded = match cluster
            .wait_jobs(leader, n, Duration::from_secs(1800))
            .await
        {
            Ok(_) => cluster.wait_idle(leader, Duration::from_secs(600)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = loaded {
            let (rss, hwm) = rss_kib(pid)?;
            let why = format!(
                "{e:#} (leader RSS then {rss} KiB, peak {hwm} KiB; consul-dev RSS {} KiB)",
                cluster.consul.proc.rss_kib()?.0
            );
            eprintln!("memory: {n} jobs: not measured: {why}");
            return Ok(Outcome {
                baseline,
                steps,
                failed: Some((n, why)),
            });
        }
        let load_s = t.elapsed().as_secs_f64();
        have = n;
        tokio::time::sleep(SETTLE).await;
        let (rss, hwm) = rss_kib(pid)?;
        steps.push(Step {
            jobs: n,
            rss,
            hwm,
            per_job: (rss.saturating_sub(baseline) * 1024) as f64 / n as f64,
            consul_rss: cluster.consul.proc.rss_kib()?.0,
            redis_rss: rss_kib(cluster.redis.pid())?.0,
            load_s,
        });
        eprintln!("memory: {n} jobs: leader RSS {rss} KiB (loaded in {load_s:.1} s)");
    }
    Ok(Outcome {
        baseline,
        steps,
        failed: None,
    })
}
