//! `cargo bench -p cron-core`: next-slot computations per second, and the planner producing
//! every fire of one minute with 1,000,000 jobs. Peak memory is measured by the
//! `planner_memory` example (see BENCHMARKS.md), not here: criterion's own allocations would
//! blur it.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use cron_core::{Planner, Schedule};

#[path = "shared/million_jobs.rs"]
mod million_jobs;

const EXPRESSIONS: &[&str] = &[
    "*/5 * * * *",
    "0 9 * * 1-5",
    "30 2 1,15 * *",
    "0 0 L * *",
    "15 10 * * 5#3",
    "0 */2 * JAN-JUN MON,FRI",
    "* * * * *",
    "0 0 29 2 *",
];

fn next_slot(c: &mut Criterion) {
    let start = DateTime::parse_from_rfc3339("2026-11-26T20:31:10Z")
        .unwrap()
        .to_utc();
    let mut g = c.benchmark_group("next_after");
    for (name, tz) in [
        ("5-field UTC", None),
        ("5-field Europe/Berlin", Some("Europe/Berlin")),
    ] {
        let schedules: Vec<_> = EXPRESSIONS
            .iter()
            .map(|e| Schedule::parse(e, tz).unwrap())
            .collect();
        g.throughput(Throughput::Elements(schedules.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for s in &schedules {
                    black_box(s.next_after(black_box(start)));
                }
            })
        });
    }
    g.finish();
}

/// 1,000,000 jobs that all fire once a minute (see `shared/million_jobs.rs`).
fn million_jobs(now: DateTime<Utc>) -> Planner {
    million_jobs::planner_with_jobs(1_000_000, now)
}

fn planner_minute(c: &mut Criterion) {
    // A Monday morning: every shape above fires in every minute.
    let now = DateTime::parse_from_rfc3339("2026-11-30T09:59:59Z")
        .unwrap()
        .to_utc();
    let mut p = million_jobs(now);
    let mut g = c.benchmark_group("planner 1M jobs");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(std::time::Duration::from_secs(20))
        .throughput(Throughput::Elements(1_000_000));
    let mut minute = 0i64;
    // One iteration: due() at each second of the next minute, 1,000,000 fires in all.
    g.bench_function("every fire of one minute", |b| {
        b.iter(|| {
            let base = now + Duration::minutes(minute);
            minute += 1;
            let mut n = 0usize;
            for s in 1..=60 {
                n += p.due(base + Duration::seconds(s)).len();
            }
            assert_eq!(n, 1_000_000);
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, next_slot, planner_minute);
criterion_main!(benches);
