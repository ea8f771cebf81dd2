//! Fires per second through the enqueue script, beside redis-benchmark's pipelined LPUSH on the
//! same (private) redis-server in the same run. Run with `scripts/bench-redis-queue`.
//!
//! Workload: 10,000 distinct jobs (the worst case for the script: one history list and one
//! cursor per fire, nothing shared), one-minute slots, enqueued by one caller in batches of
//! `BATCH` fires (split by the crate into script calls of its default size), as a leader does
//! at a busy minute boundary. Task encoding in Rust is inside the timed section.
//!
//! `BENCH_ROUTES=1`: every job names its own IronFunctions route (10,000 distinct routes, each
//! resolved with three config variables of its app and two of its own), and tasks are built
//! from them, as a node with `--resolve-routes` does.
//!
//! Also printed: Redis's own time in the script per fire (INFO commandstats), the push-only
//! floor (the same tasks through a script that only LPUSHes them: the ceiling of any enqueue
//! script on this server), and, for context, LPUSH of task-sized (500-byte) values.
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
/// About the size of the bench's tasks, for the context figure.
const TASK_BYTES: usize = 500;
/// Fewer requests for those: 400,000 × 500 bytes is already 200 MB in the list.
const LPUSH_TASK_SIZED_REQUESTS: &str = "400000";

/// redis-benchmark's pipelined LPUSH rate; `value_bytes` is its `-d` (3 by default).
fn lpush_rate(server: &RedisServer, value_bytes: usize, requests: &str) -> f64 {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-P", "16", "-t", "lpush", "-n", requests, "-q"])
        .args(["-d", &value_bytes.to_string()])
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
    println!("redis-benchmark -d {value_bytes}: {line}");
    rate
}

#[tokio::main]
async fn main() {
    let server = RedisServer::start().unwrap();
    let lpush = lpush_rate(&server, 3, LPUSH_REQUESTS);
    // Context only (the goal is against the default 3-byte values): LPUSH of task-sized values.
    let lpush_task_sized = lpush_rate(&server, TASK_BYTES, LPUSH_TASK_SIZED_REQUESTS);
    let _ = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
        .send_packed_command(&redis::cmd("FLUSHALL"))
        .await
        .unwrap();

    evalsha_usec(&server).await;
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
    let routes = std::env::var("BENCH_ROUTES").is_ok_and(|v| v == "1");
    let path = |i: usize| {
        if routes {
            format!("/fn-{i}")
        } else {
            "/fn".to_string()
        }
    };
    let settings = TaskSettings {
        default_image: Some("iron/hello".into()),
        node: "bench".into(),
        routes: routes.then(|| {
            let mut r = redis_queue::Routes::default();
            let app = [
                ("DB_URL", "postgres://db:5432/app"),
                ("api-key", "k"),
                ("shared", "app"),
            ];
            for i in 0..JOBS {
                let own = [
                    ("ROUTE_SETTING", format!("r{i}")),
                    ("shared", "route".into()),
                ];
                let task = redis_queue::RouteTask::new(
                    format!("acme/fn-{i}:1"),
                    app.iter().copied(),
                    own.iter().map(|(k, v)| (*k, v.as_str())),
                    45,
                    20,
                );
                r.insert(
                    "app",
                    &path(i),
                    redis_queue::RouteState::Found(Arc::new(task)),
                );
            }
            println!("tasks built from {} resolved routes", r.len());
            Arc::new(r)
        }),
        ..TaskSettings::default()
    };
    let jobs: Vec<_> = (0..JOBS)
        .map(|i| {
            let spec = format!(
                r#"{{"id":"job-{i}","function":{{"app":"app","path":"{}","headers":["Content-Type: application/json"],"body":"{{\"n\":{i}}}"}},"frequency":"* * * * *"}}"#,
                path(i)
            );
            Arc::new(JobSpec::from_json(spec.as_bytes()).unwrap().validate().unwrap())
        })
        .collect();
    // BENCH_FIRES_PER_ENQUEUE=n splits each batch into enqueue calls of n fires.
    let per_enqueue = std::env::var("BENCH_FIRES_PER_ENQUEUE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BATCH)
        .max(1);
    if per_enqueue != BATCH {
        println!("fires per enqueue call: {per_enqueue}");
    }
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
        // One enqueue per `per_enqueue` fires, awaited in turn (as a caller that sends its
        // fires in small batches does); by default the whole batch at once.
        for part in batch.chunks(per_enqueue) {
            let out = q.enqueue(part, 1, &settings, slot).await.unwrap();
            let BatchOutcome::Done(o) = out else {
                panic!("fenced")
            };
            assert!(o.iter().all(|o| *o == FireOutcome::Enqueued));
            total += o.len();
        }
        elapsed += start.elapsed();
    }
    let script_us = evalsha_usec(&server).await;
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
    println!(
        "enqueue script: {total} fires in {elapsed:.2?}: {rate:.0} fires/s; in Redis {:.2} us/fire",
        script_us / total as f64
    );
    let floor = push_only_floor(&server, &jobs, &settings, t0).await;
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "ratio (script fires/s / pipelined LPUSH/s): {:.2}",
        rate / lpush
    );
    println!("ratio of the push-only floor: {:.2}", floor / lpush);
    println!(
        "context: fires/s / LPUSH/s of {TASK_BYTES}-byte values: {:.2}",
        rate / lpush_task_sized
    );
}

/// Total microseconds Redis spent in EVALSHA since the last reset (INFO commandstats), then
/// resets the statistics.
async fn evalsha_usec(server: &RedisServer) -> f64 {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("usec=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

/// The ceiling for any enqueue script on this server: the same tasks, the same call size
/// (500), through a script that does nothing but LPUSH them (no dedupe, cursor, history or
/// fence). Answers its rate in tasks/s.
async fn push_only_floor(
    server: &RedisServer,
    jobs: &[Arc<cron_core::Job>],
    settings: &TaskSettings,
    t0: chrono::DateTime<Utc>,
) -> f64 {
    const PUSH_ONLY: &str = "redis.call('LPUSH', KEYS[1], unpack(ARGV)) return #ARGV";
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(PUSH_ONLY)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut total = 0usize;
    let mut elapsed = std::time::Duration::ZERO;
    for round in 0..ROUNDS {
        let slot = t0 + chrono::Duration::minutes(round as i64);
        let start = Instant::now();
        // Encoding is timed here too, as in the enqueue, and calls go out in pipelines.
        let mut pipe = redis::pipe();
        for chunk in jobs[..BATCH].chunks(500) {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&sha).arg(1).arg("queue0");
            for j in chunk {
                let f = Fire::scheduled(j.spec.id.as_str().into(), slot, FireKind::Scheduled);
                cmd.arg(redis_queue::encode_task(j, &f, 1, settings, slot).unwrap());
            }
            pipe.add_command(cmd);
        }
        let _: Vec<i64> = pipe.query_async(&mut conn).await.unwrap();
        elapsed += start.elapsed();
        total += BATCH;
    }
    let us = evalsha_usec(server).await;
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "push-only floor: {total} tasks in {elapsed:.2?}: {rate:.0} tasks/s; in Redis {:.2} us/task",
        us / total as f64
    );
    rate
}
