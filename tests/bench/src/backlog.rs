//! Scenario 1b: the release into a standing backlog. N every-minute jobs whose slots fall in
//! the same second, staged by the leader, released at the slot into a `queue0` that already
//! holds B tasks the runners have not taken (they are behind: no consumer runs while it is
//! measured). B = 0 is the same measurement without a backlog.
//!
//! Arrival is read from the queue's length: from before the leader stages the window until
//! every fire is there, `LLEN queue0` is asked back to back, and the k-th task of the burst
//! reached the queue when an answer first counted B + k tasks (no one pops, so the length only
//! grows by what cronnode pushes). A length above B before the slot fails the run (a task
//! early). Then a consumer drains the queue, and every fire of the window must be there
//! exactly once.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cluster::{job_spec, Cluster};
use crate::consumer::{now_us, Consumer, Rec};
use crate::lateness::{check_once, wait_until_s};
use crate::procs::Bins;
use crate::stats::{summary, Summary};

/// Quiet time between "all jobs loaded" and the measured slot, seconds.
const SETTLE: i64 = 5;
/// Seconds before the slot at which the backlog is in place and the length watched (the
/// leader stages 2 s ahead).
const WATCH_AHEAD_S: i64 = 3;
/// How long after the slot every task must have arrived.
const ARRIVAL_LIMIT: Duration = Duration::from_secs(30);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Jobs (tasks in the burst).
    pub n: usize,
    /// Tasks waiting in `queue0` at the slot.
    pub backlog: usize,
    /// In the queue − slot, per task of the burst, ms.
    pub seen: Summary,
    /// Time from writing the jobs to the leader having them all, s.
    pub load_s: f64,
    /// What the leader's log says of the slot's release: whether it was prepared ahead, and
    /// how long the preparation took (ms).
    pub prepared: Option<(bool, f64)>,
}

/// Runs one measurement.
pub async fn run(bins: &Bins, n: usize, backlog: usize) -> Result<Outcome> {
    let cluster = Cluster::start(bins, 1).await?;
    let leader = cluster.wait_leader(Duration::from_secs(60)).await?;
    let url = cluster.redis.url();
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    let now_s = || now_us() / 1_000_000;
    let est_load = 4 + (n as i64) / 4000;
    let burst_sec = (now_s() + est_load + SETTLE + WATCH_AHEAD_S + 2).rem_euclid(60);
    let specs = (0..n)
        .map(|i| {
            job_spec(
                &format!("j{i:07}"),
                &format!("{burst_sec} * * * * *"),
                "bench",
            )
        })
        .collect();
    let t_load = std::time::Instant::now();
    cluster.put_jobs(specs).await?;
    cluster
        .wait_jobs(leader, n, Duration::from_secs(900))
        .await?;
    cluster.wait_idle(leader, Duration::from_secs(300)).await?;
    let load_s = t_load.elapsed().as_secs_f64();

    let mut slot = now_s() + SETTLE + WATCH_AHEAD_S;
    while slot.rem_euclid(60) != burst_sec {
        slot += 1;
    }
    // The runners' backlog, in place before the leader stages the burst.
    wait_until_s(slot - WATCH_AHEAD_S).await;
    let filler = serde_json::json!({"id": "backlog", "payload": "x".repeat(400)}).to_string();
    let mut left = backlog;
    while left > 0 {
        let k = left.min(1000);
        let _: () = redis::cmd("LPUSH")
            .arg("queue0")
            .arg(vec![filler.as_str(); k])
            .query_async(&mut conn)
            .await?;
        left -= k;
    }

    // The length, back to back, until the whole burst is in.
    let slot_us = slot * 1_000_000;
    let deadline = slot_us + ARRIVAL_LIMIT.as_micros() as i64;
    let mut samples: Vec<(i64, usize)> = Vec::new();
    let mut early = 0usize;
    loop {
        let len: usize = redis::cmd("LLEN")
            .arg("queue0")
            .query_async(&mut conn)
            .await?;
        let t = now_us();
        if t < slot_us && len > backlog {
            early = early.max(len - backlog);
        }
        if samples.last().is_none_or(|(_, l)| *l != len) {
            samples.push((t, len));
        }
        if len >= backlog + n || t > deadline {
            break;
        }
    }
    if early > 0 {
        bail!("{early} tasks were in the queue before their slot");
    }
    let mut arrivals = Vec::with_capacity(n);
    let mut k = 1;
    for (t, len) in &samples {
        while k <= n && *len >= backlog + k {
            arrivals.push((*t - slot_us) as f64 / 1000.0);
            k += 1;
        }
    }
    if arrivals.len() < n {
        bail!(
            "{} of {n} tasks reached the queue within {ARRIVAL_LIMIT:?} of the slot",
            arrivals.len()
        );
    }

    // Every fire of the slot exactly once (the fillers are not cronnode's tasks).
    let consumer = Consumer::start(&url).await?;
    let lo = slot * 1000;
    let in_slot = move |r: &Rec| r.kind == "scheduled" && r.slot_ms == Some(lo);
    let all = consumer
        .wait_until(Duration::from_secs(60), |v| {
            v.iter().filter(|r| in_slot(r)).count() >= n
        })
        .await;
    check_once(&consumer.select(in_slot), n, all)?;
    let log =
        strip_ansi(&std::fs::read_to_string(cluster.nodes[leader].log_path()).unwrap_or_default());
    Ok(Outcome {
        n,
        backlog,
        seen: summary(arrivals),
        load_s,
        prepared: prepared_line(&log, slot),
    })
}

/// The text without its terminal colour sequences (`ESC [ ... m`: the node's pretty log).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// From the leader's log line `release prepared slot=… prepared=… took=…` of `slot`: whether
/// it was prepared and how long that took, in ms.
fn prepared_line(log: &str, slot: i64) -> Option<(bool, f64)> {
    let stamp = chrono::DateTime::from_timestamp(slot, 0)?
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let line = log
        .lines()
        .find(|l| l.contains("release prepared") && l.contains(&stamp))?;
    let field = |name: &str| {
        line.split_whitespace().find_map(|w| {
            w.strip_prefix(name)
                .map(|v| v.trim_matches('"').to_string())
        })
    };
    let prepared = field("prepared=")? == "true";
    let took = field("took=")?;
    let ms = if let Some(v) = took.strip_suffix("ms") {
        v.parse().ok()?
    } else if let Some(v) = took.strip_suffix("µs") {
        v.parse::<f64>().ok()? / 1000.0
    } else {
        took.strip_suffix('s')?.parse::<f64>().ok()? * 1000.0
    };
    Some((prepared, ms))
}
