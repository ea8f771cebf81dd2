//! Scenario 6: job updates through the API (`PUT /v1/cronjobs/{id}`, alternating between the
//! two nodes) at a fixed rate while 10,000 every-minute jobs fire; lateness of the fires, and
//! how long an update takes to show in the tasks.
//!
//! Ten probe jobs fire every second; each gets one update a second whose body is a rising
//! version `v<seq>`. An update has taken effect when a task of that probe carries that version
//! or a later one: the time reported is that task's `created_at` minus the update's 200
//! answer, an upper bound (the probe fires once a second, so the bound is up to 1 s loose).
//! The other updates rewrite the body of a random every-minute job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use hyper::Method;
use tokio::sync::Semaphore;

use crate::cluster::{job_spec, Cluster};
use crate::consumer::{now_us, Consumer};
use crate::procs::Bins;
use crate::stats::{summary, Summary};

/// Probe jobs (each updated once a second).
const PROBES: usize = 10;
/// Updates in flight at most.
const IN_FLIGHT: usize = 256;
/// Update ticks per second.
const TICKS: u64 = 100;

/// What the run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every-minute jobs.
    pub jobs: usize,
    /// Asked updates per second.
    pub rate: usize,
    /// Answered 2xx per second, over the run.
    pub achieved: f64,
    /// Non-2xx or failed updates.
    pub errors: usize,
    /// API latency of an update, ms.
    pub api: Summary,
    /// Lateness (created_at − slot) of fires during the churn, ms.
    pub lateness: Summary,
    /// Time for an update to show in the probe's tasks, ms (upper bound).
    pub effect: Summary,
    /// Probe updates never seen in a task.
    pub never: usize,
    /// Seconds of churn.
    pub secs: u64,
    /// One example of a failed update, for the report.
    pub first_error: Option<String>,
    /// CPU used during the churn, in cores (CPU seconds / seconds), by process.
    pub cpu: Vec<(String, f64)>,
}

/// CPU times of the cluster's processes and of this harness, by name.
fn cpu_times(c: &Cluster) -> Vec<(String, std::time::Duration)> {
    let mut out = Vec::new();
    for n in &c.nodes {
        if let Some(p) = &n.proc {
            out.push((
                format!("cronnode {}", n.name),
                crate::procs::cpu_time(p.pid()).unwrap_or_default(),
            ));
        }
    }
    out.push((
        "consul-dev".into(),
        crate::procs::cpu_time(c.consul.proc.pid()).unwrap_or_default(),
    ));
    out.push((
        "redis".into(),
        crate::procs::cpu_time(c.redis.pid()).unwrap_or_default(),
    ));
    out.push((
        "bench (load generator)".into(),
        crate::procs::cpu_time(std::process::id()).unwrap_or_default(),
    ));
    out
}

/// Runs `rate` updates/s for `secs` over `jobs` every-minute jobs.
pub async fn run(bins: &Bins, jobs: usize, rate: usize, secs: u64) -> Result<Outcome> {
    let cluster = Cluster::start(bins, 2).await?;
    let consumer = Consumer::start(&cluster.redis.url()).await?;
    let leader = cluster.wait_leader(Duration::from_secs(60)).await?;
    let mut specs: Vec<_> = (0..jobs)
        .map(|i| {
            job_spec(
                &format!("j{i:07}"),
                &format!("{} * * * * *", i % 60),
                "bench",
            )
        })
        .collect();
    specs.extend((0..PROBES).map(|p| job_spec(&format!("probe{p}"), "* * * * * *", "v0")));
    cluster.put_jobs(specs).await?;
    cluster
        .wait_jobs(leader, jobs + PROBES, Duration::from_secs(600))
        .await?;
    cluster.wait_idle(leader, Duration::from_secs(300)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let apis: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
    let sem = Arc::new(Semaphore::new(IN_FLIGHT));
    let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errs = Arc::new(Mutex::new((0usize, None::<String>)));
    let acks = Arc::new(Mutex::new(Vec::<(usize, u64, i64)>::new()));
    let cpu0 = cpu_times(&cluster);
    let start_us = now_us();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / TICKS));
    let per_tick = rate as u64 / TICKS;
    let mut seq = 0u64;
    let mut set = tokio::task::JoinSet::new();
    for t in 0..secs * TICKS {
        tick.tick().await;
        for k in 0..per_tick {
            seq += 1;
            // Every tenth tick carries one probe update: ten probes, one update each a second.
            let probe = (k == 0 && t % (TICKS / PROBES as u64) == 0)
                .then(|| ((t / (TICKS / PROBES as u64)) as usize) % PROBES);
            let (id, body) = match probe {
                Some(p) => (format!("probe{p}"), format!("v{seq}")),
                None => (
                    format!("j{:07}", (seq * 7919) as usize % jobs.max(1)),
                    format!("u{seq}"),
                ),
            };
            let freq = match probe {
                Some(_) => "* * * * * *".to_string(),
                None => format!("{} * * * * *", ((seq * 7919) as usize % jobs.max(1)) % 60),
            };
            let spec = job_spec(&id, &freq, &body);
            let url = format!("{}/v1/cronjobs/{id}", apis[(seq as usize) % apis.len()]);
            let (http, sem, lat, errs, acks) = (
                cluster.http.clone(),
                sem.clone(),
                lat.clone(),
                errs.clone(),
                acks.clone(),
            );
            let Ok(permit) = sem.acquire_owned().await else {
                break;
            };
            set.spawn(async move {
                let t = now_us();
                let r = http
                    .call(Method::PUT, &url, Some(spec.to_string().into_bytes()))
                    .await;
                let done = now_us();
                drop(permit);
                match r {
                    Ok((st, _)) if st.is_success() => {
                        if let Ok(mut v) = lat.lock() {
                            v.push((done - t) as f64 / 1000.0);
                        }
                        if let Some(p) = probe {
                            if let Ok(mut a) = acks.lock() {
                                a.push((p, seq, done / 1000));
                            }
                        }
                    }
                    other => {
                        if let Ok(mut e) = errs.lock() {
                            e.0 += 1;
                            if e.1.is_none() {
                                e.1 = Some(match other {
                                    Ok((st, b)) => format!("{st}: {}", String::from_utf8_lossy(&b)),
                                    Err(e) => e.to_string(),
                                });
                            }
                        }
                    }
                }
            });
        }
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    let end_us = now_us();
    let secs_run = (end_us - start_us) as f64 / 1e6;
    let cpu = cpu_times(&cluster)
        .into_iter()
        .zip(cpu0)
        .map(|((name, t1), (_, t0))| (name, (t1.saturating_sub(t0)).as_secs_f64() / secs_run))
        .collect();
    // Let the last updates reach the probes' tasks.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let (lo, hi) = (start_us / 1000, end_us / 1000);
    let lateness = summary(
        consumer
            .select(|r| r.kind == "scheduled" && r.slot_ms.is_some_and(|s| s >= lo && s < hi))
            .iter()
            .filter_map(|r| Some((r.queued_ms() - r.slot_ms?) as f64))
            .collect(),
    );
    // Per probe: (in the queue at, version) of its tasks.
    let mut seen: HashMap<usize, Vec<(i64, u64)>> = HashMap::new();
    for r in consumer.select(|r| r.job.starts_with("probe")) {
        let p = r.job["probe".len()..]
            .parse::<usize>()
            .unwrap_or(usize::MAX);
        let v = r
            .payload
            .strip_prefix('v')
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        seen.entry(p).or_default().push((r.queued_ms(), v));
    }
    let mut effect = Vec::new();
    let mut never = 0;
    for (p, v, ack) in acks.lock().map(|a| a.clone()).unwrap_or_default() {
        let first = seen
            .get(&p)
            .and_then(|s| s.iter().filter(|(_, k)| *k >= v).map(|(c, _)| *c).min());
        match first {
            Some(c) => effect.push((c - ack) as f64),
            None => never += 1,
        }
    }
    let api = summary(lat.lock().map(|v| v.clone()).unwrap_or_default());
    let (errors, first_error) = errs.lock().map(|e| e.clone()).unwrap_or((0, None));
    Ok(Outcome {
        jobs,
        rate,
        achieved: api.n as f64 / ((end_us - start_us) as f64 / 1e6),
        errors,
        api,
        lateness,
        effect: summary(effect),
        never,
        secs,
        first_error,
        cpu,
    })
}
