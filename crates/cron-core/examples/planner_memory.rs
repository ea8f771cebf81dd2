//! Peak memory and timing of the planner with 1,000,000 jobs (BENCHMARKS.md):
//! `cargo run --release -p cron-core --example planner_memory`. Builds the jobs, drives one
//! minute of `due()` second by second (3 minutes; `MINUTES=n` for more), and prints the
//! process's peak resident memory (VmHWM).
#![allow(clippy::unwrap_used)]
// A measuring harness reads the clock; the library never does.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use chrono::{DateTime, Duration};
#[path = "../benches/shared/million_jobs.rs"]
mod million_jobs;

const JOBS: u32 = 1_000_000;

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

fn main() {
    let now = DateTime::parse_from_rfc3339("2026-11-30T09:59:59Z")
        .unwrap()
        .to_utc();
    let t0 = Instant::now();
    // The same workload as the criterion bench.
    let mut p = million_jobs::planner_with_jobs(JOBS, now);
    println!(
        "loaded {} jobs in {:.2?}; {}",
        p.len(),
        t0.elapsed(),
        vm_hwm()
    );
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
    println!("peak: {}", vm_hwm());
}
