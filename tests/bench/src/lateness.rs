//! Scenario 1 and 2: lateness of N every-minute jobs whose slots fall in the same second, or
//! spread over the minute; and the end-to-end throughput of the same-second burst, beside
//! redis-benchmark's pipelined LPUSH on the same Redis in the same run.
//!
//! One node (the leader), jobs bulk-loaded into Consul KV, the consumer popping from the start.
//! One slot of every job is measured: the first whole window that starts at least
//! [`SETTLE`] after the leader reports every job loaded. Every measured slot must arrive
//! exactly once, or the run fails.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cluster::{job_spec, Cluster};
use crate::consumer::{now_us, Consumer, Rec};
use crate::procs::Bins;
use crate::profile::Profiler;
use crate::stats::{summary, Summary};

/// Quiet time between "all jobs loaded" and the measured window.
/// Seconds before the window's first slot at which measuring starts: cronnode's leader stages
/// fires 2 s ahead of their slot (`LOOKAHEAD`), plus a second of margin.
const STAGE_MARGIN_S: i64 = 3;
const SETTLE: i64 = 5;
/// How long after its window a slot may still arrive before it counts as missing.
const DRAIN: Duration = Duration::from_secs(60);

/// How the jobs' slots are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Every job at the same second of the minute.
    SameSecond,
    /// Job i at second i mod 60.
    Minute,
}

impl Spread {
    /// For tables.
    pub fn label(self) -> &'static str {
        match self {
            Spread::SameSecond => "same second",
            Spread::Minute => "spread over the minute",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Jobs.
    pub n: usize,
    /// Placement.
    pub spread: Spread,
    /// `created_at − slot` (the leader's enqueue instant), ms.
    pub created: Summary,
    /// Consumer receipt − slot (an upper bound of the enqueue instant), ms.
    pub recv: Summary,
    /// First counted in the queue − slot (the tighter upper bound; see consumer.rs), ms.
    pub seen: Summary,
    /// Time from writing the jobs to the leader having them all, s.
    pub load_s: f64,
    /// Burst only: slot to the last task popped, ms.
    pub last_recv_ms: f64,
    /// Leader CPU time during the measured window, s.
    pub cpu_s: f64,
    /// Mean task size in bytes.
    pub task_bytes: usize,
    /// redis-benchmark LPUSH (pipelined) on the same Redis, requests/s (burst runs only).
    pub redis_lpush: Option<f64>,
    /// The profile, when one was taken.
    pub profile: Option<String>,
    /// Tasks on the queue the consumer could not read.
    pub unparsed: u64,
    /// Enqueue script calls in the window, and their mean duration (ms) and size (fires), from
    /// the leader's own metrics.
    pub batches: (f64, f64, f64),
}

/// The leader's batch counters: (calls, seconds, fires).
async fn batch_counters(c: &Cluster, node: usize) -> (f64, f64, f64) {
    let m = |name: &'static str| async move { c.metric(node, name).await.unwrap_or(0.0) };
    (
        m("cronnode_enqueue_batch_duration_seconds_count").await,
        m("cronnode_enqueue_batch_duration_seconds_sum").await,
        m("cronnode_enqueue_batch_size_sum").await,
    )
}

/// Unix seconds now.
fn now_s() -> i64 {
    now_us() / 1_000_000
}

/// Runs one lateness measurement.
pub async fn run(
    bins: &Bins,
    n: usize,
    spread: Spread,
    redis_bench: bool,
    profile: bool,
) -> Result<Outcome> {
    let cluster = Cluster::start(bins, 1).await?;
    let consumer = Consumer::start(&cluster.redis.url()).await?;
    let leader = cluster.wait_leader(Duration::from_secs(60)).await?;

    // The burst's second is picked so that loading has most likely finished by then; if not,
    // the next minute's slot is measured instead.
    let est_load = 4 + (n as i64) / 4000;
    let burst_sec = (now_s() + est_load + SETTLE + 2).rem_euclid(60);
    let specs = (0..n)
        .map(|i| {
            let sec = match spread {
                Spread::SameSecond => burst_sec,
                Spread::Minute => (i % 60) as i64,
            };
            job_spec(&format!("j{i:07}"), &format!("{sec} * * * * *"), "bench")
        })
        .collect();
    let t_load = std::time::Instant::now();
    cluster.put_jobs(specs).await?;
    cluster
        .wait_jobs(leader, n, Duration::from_secs(900))
        .await?;
    cluster.wait_idle(leader, Duration::from_secs(300)).await?;
    let load_s = t_load.elapsed().as_secs_f64();

    let ready = now_s() + SETTLE;
    let (start, len) = match spread {
        Spread::SameSecond => {
            let mut t = ready;
            while t.rem_euclid(60) != burst_sec {
                t += 1;
            }
            (t, 1)
        }
        Spread::Minute => (ready, 60),
    };
    let (lo, hi) = (start * 1000, (start + len) * 1000);
    let in_window =
        move |r: &Rec| r.kind == "scheduled" && r.slot_ms.is_some_and(|s| s >= lo && s < hi);

    let pid = cluster.nodes[leader].running()?.pid();
    // From before the leader stages the window's fires (LOOKAHEAD, 2 s, ahead of the slot),
    // so its CPU, its enqueue/stage calls and the profiles include that work.
    wait_until_s(start - STAGE_MARGIN_S).await;
    let cpu0 = crate::procs::cpu_time(pid)?;
    let b0 = batch_counters(&cluster, leader).await;
    let prof = if profile {
        let d = Duration::from_secs(len as u64 + STAGE_MARGIN_S as u64 + 2);
        Some((
            Profiler::start(pid, &format!("cronnode-{n}-{spread:?}"), d)?,
            Profiler::start(cluster.redis.pid(), &format!("redis-{n}-{spread:?}"), d)?,
        ))
    } else {
        None
    };
    let all = consumer
        .wait_until(Duration::from_secs(len as u64 + 1) + DRAIN, |v| {
            v.iter().filter(|r| in_window(r)).count() >= n
        })
        .await;
    let cpu_s = (crate::procs::cpu_time(pid)? - cpu0).as_secs_f64();
    let b1 = batch_counters(&cluster, leader).await;
    let calls = b1.0 - b0.0;
    let batches = (
        calls,
        (b1.1 - b0.1) * 1000.0 / calls.max(1.0),
        (b1.2 - b0.2) / calls.max(1.0),
    );
    let profile = match prof {
        Some((leader, redis)) => Some(format!(
            "cronnode (leader):\n{}\n\nredis-server:\n{}",
            leader.finish().await?,
            redis.finish().await?
        )),
        None => None,
    };
    let recs = consumer.select(in_window);
    check_once(&recs, n, all)?;

    let created = summary(
        recs.iter()
            .filter_map(|r| Some((r.created_ms? - r.slot_ms?) as f64))
            .collect(),
    );
    let recv = summary(
        recs.iter()
            .filter_map(|r| Some(r.recv_us as f64 / 1000.0 - r.slot_ms? as f64))
            .collect(),
    );
    let seen = summary(
        recs.iter()
            .filter_map(|r| Some(r.seen_us as f64 / 1000.0 - r.slot_ms? as f64))
            .collect(),
    );
    let last_recv = recs.iter().map(|r| r.recv_us).max().unwrap_or(0);
    let task_bytes = recs.iter().map(|r| r.bytes).sum::<usize>() / recs.len().max(1);

    let redis_lpush = if redis_bench {
        Some(redis_benchmark_lpush(cluster.redis.port(), task_bytes).await?)
    } else {
        None
    };
    Ok(Outcome {
        n,
        spread,
        created,
        recv,
        seen,
        load_s,
        last_recv_ms: last_recv as f64 / 1000.0 - lo as f64,
        cpu_s,
        task_bytes,
        redis_lpush,
        profile,
        unparsed: consumer.bad(),
        batches,
    })
}

/// Fails unless every job of the window arrived exactly once, none before its slot.
pub fn check_once(recs: &[Rec], n: usize, all_arrived: bool) -> Result<()> {
    let mut seen = HashSet::new();
    let mut dup = 0;
    for r in recs {
        if !seen.insert((r.job.as_str(), r.slot_ms)) {
            dup += 1;
        }
    }
    // Staged fires must not reach the queue before their slot.
    let early = recs
        .iter()
        .filter(|r| r.slot_ms.is_some_and(|s| r.seen_us < s * 1000))
        .count();
    if early > 0 {
        bail!("{early} tasks were in the queue before their slot");
    }
    if dup > 0 {
        bail!(
            "{dup} duplicate fires (same job and slot) among {} tasks",
            recs.len()
        );
    }
    if !all_arrived || seen.len() != n {
        bail!(
            "{} of {n} fires arrived within {DRAIN:?} of their slot",
            seen.len()
        );
    }
    Ok(())
}

/// Sleeps until the wall clock reaches unix second `t`.
pub async fn wait_until_s(t: i64) {
    let d = t * 1_000_000 - now_us();
    if d > 0 {
        tokio::time::sleep(Duration::from_micros(d as u64)).await;
    }
}

/// `redis-benchmark -t lpush -P 64` with values of `size` bytes on the same server; requests/s.
pub async fn redis_benchmark_lpush(port: u16, size: usize) -> Result<f64> {
    let out = tokio::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "lpush",
            "-P",
            "64",
            "-c",
            "4",
        ])
        .args([
            "-n",
            "300000",
            "-d",
            &size.max(3).to_string(),
            "-q",
            "--csv",
        ])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    // CSV: "test","rps",... ; the LPUSH line's second field.
    let rps = text
        .lines()
        .find(|l| l.starts_with("\"LPUSH"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse::<f64>().ok());
    // The list it filled is not ours to keep.
    let _ = tokio::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "del", "mylist"])
        .output()
        .await;
    match rps {
        Some(r) => Ok(r),
        None => bail!("redis-benchmark printed no LPUSH figure: {text}"),
    }
}
