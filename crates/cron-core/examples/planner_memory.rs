//! Peak memory and timing of the planner with 1,000,000 jobs (BENCHMARKS.md):
//! `cargo run --release -p cron-core --example planner_memory`. Builds the jobs, drives one
//! minute of `due()` second by second (3 minutes; `MINUTES=n` for more), and prints the
//! process's peak resident memory (VmHWM).
//!
//! It also splits the resident memory between the validated jobs and the planner: the jobs are
//! built in batches, and the growth of the resident set while a batch is built is counted as
//! the jobs', while it is planned as the planner's (page-grained, so only the sum over many
//! batches means something).
#![allow(clippy::unwrap_used)]
// A measuring harness reads the clock; the library never does.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use chrono::{DateTime, Duration};
use cron_core::Planner;
#[path = "../benches/shared/million_jobs.rs"]
mod million_jobs;

const JOBS: u32 = 1_000_000;

/// Jobs built (then planned) at a time: few enough that the batch's vector is negligible.
const BATCH: u32 = 10_000;

/// Resident bytes of the process now.
fn rss() -> i64 {
    let pages: i64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: unknown")
        .to_string()
}

/// CPU time of this thread in nanoseconds: the machine is shared, so wall time alone would
/// count other processes' turns.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn per_job(what: &str, bytes: i64) {
    println!("{what}: {:.0} B/job", bytes as f64 / f64::from(JOBS));
}

fn main() {
    let now = DateTime::parse_from_rfc3339("2026-11-30T09:59:59Z")
        .unwrap()
        .to_utc();
    let t0 = Instant::now();
    // The same workload as the criterion bench, built and planned a batch at a time.
    let mut p = Planner::new();
    let (mut jobs, mut planner) = (0, 0);
    let mut batch = Vec::with_capacity(BATCH as usize);
    for first in (0..JOBS).step_by(BATCH as usize) {
        let a = rss();
        batch.extend((first..first + BATCH).map(million_jobs::job));
        let b = rss();
        for job in batch.drain(..) {
            p.upsert(job, now);
        }
        jobs += b - a;
        planner += rss() - b;
    }
    println!(
        "loaded {} jobs in {:.2?}; {}",
        p.len(),
        t0.elapsed(),
        vm_hwm()
    );
    let start = rss();
    per_job("jobs (Arc<Job> and its strings), resident", jobs);
    per_job("planner after loading, resident", planner);
    let minutes: i64 = std::env::var("MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(3);
    for minute in 0..minutes {
        let base = now + Duration::minutes(minute);
        let t = Instant::now();
        let c = cpu_ns();
        let mut n = 0usize;
        for s in 1..=60 {
            n += p.due(base + Duration::seconds(s)).len();
        }
        let cpu = std::time::Duration::from_nanos(cpu_ns() - c);
        println!(
            "minute {minute}: {n} fires in {:.2?} wall, {cpu:.2?} on CPU",
            t.elapsed()
        );
    }
    per_job("planner after the minutes", planner + rss() - start);
    println!("peak: {}", vm_hwm());
}
