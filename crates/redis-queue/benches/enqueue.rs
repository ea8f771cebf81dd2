//! Fires per second through the enqueue script, beside redis-benchmark's pipelined LPUSH on the
//! same (private) redis-server in the same run. Run with `scripts/bench-redis-queue`.
//!
//! Workload: 10,000 distinct jobs (the worst case for the script: one history list and one
//! cursor per fire, nothing shared), one-minute slots, enqueued by one caller in batches of
//! `BATCH` fires (split by the crate into script calls of its default size), as a leader does
//! at a busy minute boundary. Task encoding in Rust is inside the timed section.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use cron_core::{Fire, FireKind, JobSpec};
use redis_queue::test_server::RedisServer;
use redis_queue::{BatchOutcome, FireOutcome, Queue, QueueConfig, TaskSettings};

const JOBS: usize = 10_000;
const BATCH: usize = 10_000;
const ROUNDS: usize = 20;
const LPUSH_REQUESTS: &str = "2000000";

fn lpush_rate(server: &RedisServer) -> f64 {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-P", "16", "-t", "lpush", "-n", LPUSH_REQUESTS, "-q"])
        .output()
        .expect("redis-benchmark is installed with redis-server");
    let text = String::from_utf8_lossy(&out.stdout);
    // "LPUSH: 612745.12 requests per second, p50=..." (the last \r-separated part)
    let line = text.rsplit('\r').next().unwrap_or(&text).trim().to_string();
    let rate = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("cannot read redis-benchmark output: {text}"));
    println!("redis-benchmark: {line}");
    rate
}

#[tokio::main]
async fn main() {
    let server = RedisServer::start().unwrap();
    let lpush = lpush_rate(&server);
    let _ = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
        .send_packed_command(&redis::cmd("FLUSHALL"))
        .await
        .unwrap();

    let mut q = Queue::connect(QueueConfig::new(server.url()))
        .await
        .unwrap();
    // BENCH_FIRES_PER_CALL=n tries another call size than the default.
    if let Some(n) = std::env::var("BENCH_FIRES_PER_CALL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        q = q.with_fires_per_call(n);
        println!("fires per call: {n}");
    }
    let settings = TaskSettings {
        default_image: Some("iron/hello".into()),
        node: "bench".into(),
        ..TaskSettings::default()
    };
    let jobs: Vec<_> = (0..JOBS)
        .map(|i| {
            let spec = format!(
                r#"{{"id":"job-{i}","function":{{"app":"app","path":"/fn","headers":["Content-Type: application/json"],"body":"{{\"n\":{i}}}"}},"frequency":"* * * * *"}}"#
            );
            Arc::new(JobSpec::from_json(spec.as_bytes()).unwrap().validate().unwrap())
        })
        .collect();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    let mut total = 0usize;
    let mut elapsed = std::time::Duration::ZERO;
    for round in 0..ROUNDS {
        let slot = t0 + chrono::Duration::minutes(round as i64);
        let batch: Vec<_> = jobs
            .iter()
            .take(BATCH)
            .map(|j| {
                let f = Fire::scheduled(j.spec.id.as_str().into(), slot, FireKind::Scheduled);
                (j.clone(), f)
            })
            .collect();
        let start = Instant::now();
        let out = q.enqueue(&batch, 1, &settings, slot).await.unwrap();
        elapsed += start.elapsed();
        let BatchOutcome::Done(o) = out else {
            panic!("fenced")
        };
        assert!(o.iter().all(|o| *o == FireOutcome::Enqueued));
        total += o.len();
    }
    let start = Instant::now();
    let mut bytes = 0;
    for (j, f) in jobs.iter().map(|j| {
        (
            j,
            Fire::scheduled(j.spec.id.as_str().into(), t0, FireKind::Scheduled),
        )
    }) {
        bytes += redis_queue::encode_task(j, &f, 1, &settings, t0)
            .unwrap()
            .len();
    }
    println!(
        "encode only: {JOBS} tasks in {:.2?} ({bytes} bytes)",
        start.elapsed()
    );
    let rate = total as f64 / elapsed.as_secs_f64();
    println!("enqueue script: {total} fires in {elapsed:.2?}: {rate:.0} fires/s");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(
            &mut redis::Client::open(server.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    for l in stats.lines().filter(|l| {
        l.contains("evalsha")
            || l.contains("cmdstat_set")
            || l.contains("lpush")
            || l.contains("zadd")
    }) {
        println!("{l}");
    }
    println!(
        "ratio (script fires/s / pipelined LPUSH/s): {:.2}",
        rate / lpush
    );
}
