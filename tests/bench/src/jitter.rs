//! Scenario 1c: N jobs whose slots fall in the same second, with a jitter: how the tasks
//! spread over the jitter's window (tasks per second), and their lateness against each one's
//! jittered instant (computed here by cron-core, as every node computes it).
//!
//! The case is 10,000 midnight jobs with `jitter: 5m`; the run uses an hourly schedule
//! whose slot is a minute or so after loading (a jitter bound is the schedule's shortest
//! interval, an hour here, a day at midnight: the same 5-minute spread either way), so it
//! takes minutes, not a day. Every measured slot must arrive exactly once, or the run fails.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::cluster::{job_spec, Cluster};
use crate::consumer::{now_us, Consumer, Rec};
use crate::lateness::{check_once, load_jobs};
use crate::procs::Bins;
use crate::stats::{summary, Summary};

/// Quiet time between "all jobs loaded" and the slot.
const SETTLE_S: i64 = 10;
/// How long after the window a task may still arrive before it counts as missing.
const DRAIN: Duration = Duration::from_secs(60);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Jobs.
    pub n: usize,
    /// The jitter, seconds.
    pub jitter_s: i64,
    /// Tasks enqueued in each second of the window (by `created_at`), from the slot on.
    pub per_second: Vec<usize>,
    /// `created_at` − the slot's jittered instant, ms.
    pub late: Summary,
    /// When the consumer first counted it in the queue − the jittered instant, ms.
    pub seen: Summary,
    /// Time from writing the jobs to the leader having them all, s.
    pub load_s: f64,
}

/// Runs one measurement: `n` jobs, all at one instant, `jitter_s` seconds of jitter.
pub async fn run(bins: &Bins, n: usize, jitter_s: i64) -> Result<Outcome> {
    let cluster = Cluster::start(bins, 1).await?;
    let consumer = Consumer::start(&cluster.redis.url()).await?;
    let leader = cluster.wait_leader(Duration::from_secs(60)).await?;

    let now_s = now_us() / 1_000_000;
    let est_load = 4 + (n as i64) / 4000;
    let slot_s = now_s + est_load + SETTLE_S + 5;
    let (minute, second) = (slot_s / 60 % 60, slot_s % 60);
    let jitter = format!("{jitter_s}s");
    let mut jobs = HashMap::new();
    let specs = (0..n)
        .map(|i| {
            let mut spec = job_spec(
                &format!("j{i:07}"),
                &format!("{second} {minute} * * * *"),
                "bench",
            );
            spec["jitter"] = json!(jitter);
            let job = cron_core::JobSpec::from_json(spec.to_string().as_bytes())
                .and_then(cron_core::JobSpec::validate)
                .map_err(|e| anyhow::anyhow!("bench job: {e}"))?;
            jobs.insert(job.spec.id.clone(), job);
            Ok(spec)
        })
        .collect::<Result<Vec<_>>>()?;
    let load_s = load_jobs(&cluster, leader, specs).await?;
    if now_us() / 1_000_000 > slot_s - 2 {
        bail!("loading {n} jobs took {load_s:.1} s, past the slot: raise est_load");
    }
    let slot_ms = slot_s * 1000;
    let in_window = move |r: &Rec| r.kind == "scheduled" && r.slot_ms == Some(slot_ms);
    let wait = Duration::from_secs((slot_s - now_us() / 1_000_000 + jitter_s).max(0) as u64);
    let all = consumer
        .wait_until(wait + DRAIN, |v| {
            v.iter().filter(|r| in_window(r)).count() >= n
        })
        .await;
    let recs = consumer.select(in_window);
    check_once(&recs, n, all)?;

    let mut per_second = vec![0usize; jitter_s.max(1) as usize + 1];
    let (mut late, mut seen) = (Vec::new(), Vec::new());
    for r in &recs {
        let job = jobs.get(&r.job).context("a task of an unknown job")?;
        let slot = chrono::DateTime::from_timestamp(slot_s, 0).context("slot")?;
        let due_ms = job.fire_at(slot).timestamp_millis();
        let created = r.created_ms.context("a task without created_at")?;
        late.push((created - due_ms) as f64);
        seen.push(r.seen_us as f64 / 1000.0 - due_ms as f64);
        let sec = ((created - slot_ms) / 1000).clamp(0, per_second.len() as i64 - 1);
        per_second[sec as usize] += 1;
    }
    Ok(Outcome {
        n,
        jitter_s,
        per_second,
        late: summary(late),
        seen: summary(seen),
        load_s,
    })
}

/// The section's markdown.
pub fn report(o: &Outcome) -> String {
    let window = &o.per_second[..o.per_second.len() - 1];
    let busy = window.iter().filter(|c| **c > 0).count();
    let max = window.iter().copied().max().unwrap_or(0);
    let min = window.iter().copied().min().unwrap_or(0);
    let mean = o.n as f64 / window.len().max(1) as f64;
    let per_minute: Vec<String> = window
        .chunks(60)
        .map(|c| c.iter().sum::<usize>().to_string())
        .collect();
    format!(
        "| jobs | jitter | tasks per second over the window: mean / min / max (seconds with a task) | per minute | created_at − jittered instant p50 / p99 / max (ms) | in the queue − jittered instant p50 / p99 / max (ms) | jobs loaded in (s) |\n\
         |---:|---:|---|---|---|---|---:|\n\
         | {} | {}s | {:.1} / {} / {} ({busy} of {}) | {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.1} |\n",
        o.n,
        o.jitter_s,
        mean,
        min,
        max,
        window.len(),
        per_minute.join(", "),
        o.late.p50,
        o.late.p99,
        o.late.max,
        o.seen.p50,
        o.seen.p99,
        o.seen.max,
        o.load_s
    )
}
