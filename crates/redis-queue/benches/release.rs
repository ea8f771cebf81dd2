//! What staging buys at the slot: Redis's own time (INFO commandstats) to stage 10,000 fires
//! (the fenced, deduplicated work, done ahead of the slot) and to release them into the queue
//! (the work left at the slot), per task. Run with `cargo bench -p redis-queue --bench release`.
//!
//! The release is measured into an empty queue (the staging list becomes the queue: RENAME),
//! into a queue with a small backlog (the backlog moves behind the staged tasks, then RENAME),
//! and into one with a backlog larger than the burst (the staged tasks move in chunks: LRANGE,
//! a variadic LPUSH, LTRIM), beside a variant that moves them one by one with RPOPLPUSH (the
//! alternative that was not chosen), and the prepared release into a standing backlog of
//! 9,500 (the tasks read and queued in a MULTI before the slot; only EXEC at the slot), on the
//! same server in the same run.
//!
//! Wall-clock figures move with the machine's load. For instructions instead, run the server
//! under callgrind (a `redis-server` wrapper first in `PATH` that execs `valgrind
//! --tool=callgrind --toggle-collect=evalShaCommand --toggle-collect=evalCommand
//! redis-server "$@"`) with `BENCH_CALLGRIND=1 BENCH_ROUNDS=1`: the bench dumps the counters
//! after each phase (`callgrind_control -d <phase>`), one file per phase.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use cron_core::{Fire, FireKind, Job, JobSpec};
use redis::aio::MultiplexedConnection;
use redis_queue::test_server::RedisServer;
use redis_queue::{BatchOutcome, Queue, QueueConfig, ReleaseOutcome, StageFire, TaskSettings};

const JOBS: usize = 10_000;
const ROUNDS: i64 = 5;
/// Tasks already in the queue at the slot: a consumer a little behind…
const SMALL_BACKLOG: usize = 100;
/// …and one far behind (more than the burst).
const LARGE_BACKLOG: usize = 20_000;
/// The standing backlog of the issue's case (runners behind by about a second's burst).
const STANDING_BACKLOG: usize = 9_500;

/// Replaces queue0 with `len` task-sized entries.
async fn backlog(conn: &mut MultiplexedConnection, len: usize) {
    let _: () = redis::cmd("DEL")
        .arg("queue0")
        .query_async(conn)
        .await
        .unwrap();
    let task = "x".repeat(480);
    for chunk in (0..len).collect::<Vec<_>>().chunks(1000) {
        let _: () = redis::cmd("LPUSH")
            .arg("queue0")
            .arg(vec![task.as_str(); chunk.len()])
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// Dumps callgrind's counters (when the server runs under it) with `phase` as the reason.
fn dump(phase: &str) {
    if std::env::var_os("BENCH_CALLGRIND").is_some() {
        let _ = std::process::Command::new("callgrind_control")
            .args(["-d", phase])
            .output();
    }
}

/// The release script's layout, moving task by task with RPOPLPUSH (for comparison only).
const ONE_BY_ONE_LUA: &str = r"
local budget = tonumber(ARGV[2])
local out = {1}
for l = 1, #KEYS - 5 do
  local key = KEYS[5 + l]
  local q = KEYS[3 + tonumber(ARGV[1 + 2 * l])]
  local n = redis.call('LLEN', key)
  local m = math.min(n, budget)
  for _ = 1, m do redis.call('RPOPLPUSH', key, q) end
  budget = budget - m
  out[#out + 1] = m
  out[#out + 1] = (m == n) and 1 or 0
  if m == n then redis.call('ZREM', KEYS[2], ARGV[2 + 2 * l]) end
end
return out
";

async fn usec(conn: &mut MultiplexedConnection, cmd: &str) -> f64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{cmd}:");
    stats
        .lines()
        .filter(|l| l.starts_with(&prefix))
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

async fn stage(q: &Queue, jobs: &[Arc<Job>], slot: DateTime<Utc>, s: &TaskSettings) -> Duration {
    let batch: Vec<_> = jobs
        .iter()
        .map(|j| StageFire {
            job: j.clone(),
            fire: Fire::scheduled(j.spec.id.as_str().into(), slot, FireKind::Scheduled),
            version: 1,
        })
        .collect();
    let start = Instant::now();
    let out = q.stage(&batch, 1, s, slot).await.unwrap();
    assert!(matches!(out, BatchOutcome::Done(_)));
    start.elapsed()
}

async fn release(q: &Queue, slot: DateTime<Utc>) -> (Duration, u64) {
    let start = Instant::now();
    let ReleaseOutcome::Done(r) = q.release(1, slot).await.unwrap() else {
        panic!("fenced")
    };
    (start.elapsed(), r.iter().map(|s| s.tasks).sum())
}

#[tokio::main]
async fn main() {
    let server = RedisServer::start().unwrap();
    // Generous: under callgrind a 5,000-task script call takes seconds.
    let cfg =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(120)));
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap();
    let q = Queue::connect(QueueConfig::new(server.url()))
        .await
        .unwrap();
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
    let n = JOBS as f64;
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    dump("setup");
    for round in 0..rounds {
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        usec(&mut conn, "evalsha").await;
        let base = t0 + chrono::Duration::minutes(round * 4);

        // 1. Into an empty queue.
        let took = stage(&q, &jobs, base, &settings).await;
        let stage_us = usec(&mut conn, "evalsha").await;
        dump("stage");
        let (rel, moved) = release(&q, base).await;
        assert_eq!(moved, JOBS as u64);
        let rel_us = usec(&mut conn, "evalsha").await;
        dump("release-empty");
        println!(
            "round {round}: stage {took:.2?} ({:.2} us/fire in Redis); release into an empty queue {rel:.2?} ({:.3} us/task in Redis)",
            stage_us / n,
            rel_us / n
        );

        // 2. Into a queue with a small backlog: the backlog moves behind the staged tasks.
        let slot = base + chrono::Duration::minutes(1);
        stage(&q, &jobs, slot, &settings).await;
        backlog(&mut conn, SMALL_BACKLOG).await;
        usec(&mut conn, "evalsha").await;
        dump("stage");
        let (rel, moved) = release(&q, slot).await;
        assert_eq!(moved, JOBS as u64);
        let rel_us = usec(&mut conn, "evalsha").await;
        dump("release-small-backlog");
        println!(
            "round {round}: release into a queue holding {SMALL_BACKLOG} tasks {rel:.2?} ({:.3} us/task in Redis)",
            rel_us / n
        );

        // 3. Into a queue with a large backlog: the staged tasks move, in chunks.
        let slot = base + chrono::Duration::minutes(2);
        stage(&q, &jobs, slot, &settings).await;
        backlog(&mut conn, LARGE_BACKLOG).await;
        usec(&mut conn, "evalsha").await;
        dump("stage");
        let (rel, moved) = release(&q, slot).await;
        assert_eq!(moved, JOBS as u64);
        let rel_us = usec(&mut conn, "evalsha").await;
        dump("release-chunks");
        println!(
            "round {round}: release into a queue holding {LARGE_BACKLOG} tasks (LRANGE+LPUSH+LTRIM) {rel:.2?} ({:.3} us/task in Redis)",
            rel_us / n
        );

        // 4. The same, one by one (RPOPLPUSH), through the same layout.
        let slot = base + chrono::Duration::minutes(3);
        stage(&q, &jobs, slot, &settings).await;
        backlog(&mut conn, LARGE_BACKLOG).await;
        let member = format!("{}:0", slot.timestamp());
        usec(&mut conn, "eval").await;
        dump("stage");
        let start = Instant::now();
        loop {
            let out: Vec<i64> = redis::cmd("EVAL")
                .arg(ONE_BY_ONE_LUA)
                .arg(6)
                .arg("{cronnode}:fence")
                .arg("{cronnode}:staging")
                .arg("queue0")
                .arg("queue1")
                .arg("queue2")
                .arg(format!("{{cronnode}}:staging:{member}"))
                .arg(1)
                .arg(redis_queue::RELEASE_TASKS_PER_CALL)
                .arg(0)
                .arg(&member)
                .query_async(&mut conn)
                .await
                .unwrap();
            if out.get(2) == Some(&1) {
                break;
            }
        }
        let took = start.elapsed();
        let one_us = usec(&mut conn, "eval").await;
        dump("release-one-by-one");
        println!(
            "round {round}: release into a queue holding {LARGE_BACKLOG} tasks one by one (RPOPLPUSH) {took:.2?} ({:.3} us/task in Redis)",
            one_us / n
        );

        // 5. Into a standing backlog, with the script (the shorter side moves), then prepared.
        let slot = base + chrono::Duration::minutes(4);
        stage(&q, &jobs, slot, &settings).await;
        backlog(&mut conn, STANDING_BACKLOG).await;
        usec(&mut conn, "evalsha").await;
        let (rel, moved) = release(&q, slot).await;
        assert_eq!(moved, JOBS as u64);
        let script_us = usec(&mut conn, "evalsha").await;
        let slot = base + chrono::Duration::minutes(5);
        stage(&q, &jobs, slot, &settings).await;
        backlog(&mut conn, STANDING_BACKLOG).await;
        let prepared = q
            .prepare_release(1, slot)
            .await
            .unwrap()
            .expect("a backlog: prepared");
        usec(&mut conn, "exec").await;
        dump("prepare");
        let start = Instant::now();
        let ReleaseOutcome::Done(r) = q.release_prepared(Some(prepared), 1, slot).await.unwrap()
        else {
            panic!("fenced")
        };
        let took = start.elapsed();
        assert_eq!(r.iter().map(|s| s.tasks).sum::<u64>(), JOBS as u64);
        let exec_us = usec(&mut conn, "exec").await;
        dump("release-prepared");
        println!(
            "round {round}: release into a standing backlog of {STANDING_BACKLOG}: script {rel:.2?} ({script_us:.0} us in Redis); prepared {took:.2?} (EXEC {exec_us:.0} us in Redis)"
        );
    }
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
