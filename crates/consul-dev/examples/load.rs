//! Load generator for consul-dev: the pipeline benchmark's two patterns against a release
//! build, with the agent's CPU and memory read from `/proc`.
//!
//! - `churn`: N jobs in the sharded layout (`cronnode/jobs/<xx>/<id>`, stamps in
//!   `cronnode/job-shards/<xx>`), then updates at a fixed rate, each a `GET` of the job and a
//!   `PUT /v1/txn` check-and-set (plus the shard's stamp `set` unless `--watch old`), while two
//!   "nodes" watch as cronnode does: `old` is a blocking recursive read of `cronnode/jobs/`,
//!   `sharded` a blocking read of the stamps and a recursive read of each changed shard, both
//!   re-issued at most once a second.
//! - `bulk`: N jobs loaded with txns of 128 `set`s, 4 in flight (optionally while watchers run),
//!   then a recursive listing of one shard and of the whole prefix, timed, with the agent's RSS.
//!
//! ```sh
//! cargo build --release -p consul-dev --bin consul-dev --example load
//! target/release/examples/load --bin target/release/consul-dev churn --jobs 10000 --rate 1000
//! target/release/examples/load --bin target/release/consul-dev bulk --jobs 1000000
//! ```
//!
//! It starts the agent itself (memory only, a free port) and stops it at the end. Not a test:
//! it prints figures and judges nothing.

use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Shards of the job store (two hex digits).
const SHARDS: usize = 256;
/// Operations per bulk-load txn, and such txns in flight (as the pipeline benchmark loads).
const BULK_OPS: usize = 128;
const BULK_IN_FLIGHT: usize = 4;
/// Shard reads in flight for a sharded watcher.
const SHARD_READS_IN_FLIGHT: usize = 4;
/// Watchers re-issue their blocking read at most this often (cronnode's coalescing).
const WATCH_COALESCE: Duration = Duration::from_secs(1);
/// Linux's USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

#[derive(Parser)]
struct Args {
    /// The consul-dev binary to start.
    #[arg(long)]
    bin: PathBuf,
    /// Start it with this `--data-dir` (default: memory only).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Watch {
    /// No watcher.
    None,
    /// Blocking recursive read of the whole jobs prefix, per node.
    Old,
    /// Blocking read of the shard stamps, then a read of each changed shard, per node.
    Sharded,
    /// Both patterns, per node.
    Both,
}

#[derive(Subcommand)]
enum Mode {
    /// Job updates at a fixed rate while nodes watch.
    Churn {
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value_t = 256)]
        in_flight: usize,
        #[arg(long, value_enum, default_value_t = Watch::Both)]
        watch: Watch,
        /// Watching nodes.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
    },
    /// Bulk load, then listings.
    Bulk {
        #[arg(long, default_value_t = 1_000_000)]
        jobs: usize,
        #[arg(long, value_enum, default_value_t = Watch::None)]
        watch: Watch,
        #[arg(long, default_value_t = 2)]
        nodes: usize,
    },
}

#[derive(Clone)]
struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Bytes) -> Res<(StatusCode, u64, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(Full::new(body))?;
        let resp = self.client.request(req).await?;
        let status = resp.status();
        let index = resp
            .headers()
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, index, body))
    }
}

fn shard_of(i: usize) -> String {
    format!("{:02x}", i % SHARDS)
}

fn job_key(i: usize) -> String {
    format!("cronnode/jobs/{}/job-{i:07}", shard_of(i))
}

fn stamp_key(shard: &str) -> String {
    format!("cronnode/job-shards/{shard}")
}

/// About 200 bytes of job JSON, as the pipeline benchmark stores.
fn job_value(i: usize, version: u64) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let doc = json!({
        "id": format!("job-{i:07}"), "schedule": "* * * * *", "zone": "UTC",
        "app": "bench", "path": "/noop", "paused": false, "version": version,
        "payload": "x".repeat(64),
    });
    b64.encode(doc.to_string())
}

/// The agent's CPU seconds so far (all threads, live or gone) and its RSS and peak RSS in KiB.
fn proc_figures(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (tick(11) + tick(12)) / CLOCK_TICKS_PER_SEC;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kib("VmRSS:"), kib("VmHWM:"))
}

struct Agent {
    child: Child,
    api: Api,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(bin: &PathBuf, data_dir: Option<&PathBuf>) -> Res<Agent> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--node", "load"]);
    if let Some(dir) = data_dir {
        cmd.arg("--data-dir").arg(dir);
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let api = Api {
        client,
        base: format!("http://127.0.0.1:{port}"),
    };
    let agent = Agent { child, api };
    for _ in 0..100 {
        if let Ok((StatusCode::OK, _, _)) = agent
            .api
            .call(Method::GET, "/v1/status/leader", Bytes::new())
            .await
        {
            return Ok(agent);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("consul-dev did not answer within 5 s".into())
}

/// Writes jobs `0..jobs` and every stamp, `BULK_OPS` per txn, `BULK_IN_FLIGHT` in flight.
async fn load(api: &Api, jobs: usize) -> Res<Duration> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(BULK_IN_FLIGHT));
    let mut tasks = Vec::new();
    let stamps: Vec<Value> = (0..SHARDS)
        .map(|s| json!({"KV": {"Verb": "set", "Key": stamp_key(&shard_of(s))}}))
        .collect();
    let mut batches: Vec<Vec<Value>> = stamps.chunks(BULK_OPS).map(<[Value]>::to_vec).collect();
    for from in (0..jobs).step_by(BULK_OPS) {
        let ops = (from..(from + BULK_OPS).min(jobs))
            .map(|i| json!({"KV": {"Verb": "set", "Key": job_key(i), "Value": job_value(i, 0)}}))
            .collect();
        batches.push(ops);
    }
    for ops in batches {
        let permit = gate.clone().acquire_owned().await?;
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let body = Bytes::from(Value::Array(ops).to_string());
            let r = api.call(Method::PUT, "/v1/txn", body).await;
            drop(permit);
            match r {
                Ok((StatusCode::OK, _, _)) => Ok(()),
                Ok((s, _, b)) => Err(format!("txn: {s} {}", String::from_utf8_lossy(&b))),
                Err(e) => Err(format!("txn: {e}")),
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

#[derive(Default)]
struct WatchStats {
    reads: AtomicU64,
    bytes: AtomicU64,
}

/// One node's watcher, until the process ends.
async fn watch(api: Api, pattern: Watch, stats: Arc<WatchStats>) {
    let mut index = 0u64;
    let mut held: HashMap<String, u64> = HashMap::new();
    loop {
        let issued = Instant::now();
        let path = match pattern {
            Watch::Old => "/v1/kv/cronnode/jobs/?recurse",
            _ => "/v1/kv/cronnode/job-shards/?recurse",
        };
        let got = api
            .call(
                Method::GET,
                &format!("{path}&index={index}&wait=60s"),
                Bytes::new(),
            )
            .await;
        let Ok((_, idx, body)) = got else {
            tokio::time::sleep(WATCH_COALESCE).await;
            continue;
        };
        stats.reads.fetch_add(1, Ordering::Relaxed);
        stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        index = idx;
        if pattern == Watch::Sharded {
            let stamps: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
            let mut changed = Vec::new();
            for s in &stamps {
                let key = s["Key"].as_str().unwrap_or("").to_string();
                let mi = s["ModifyIndex"].as_u64().unwrap_or(0);
                if held.insert(key.clone(), mi) != Some(mi) {
                    changed.push(key.rsplit('/').next().unwrap_or("").to_string());
                }
            }
            let gate = Arc::new(Semaphore::new(SHARD_READS_IN_FLIGHT));
            let mut reads = Vec::new();
            for shard in changed {
                let (api, stats, gate) = (api.clone(), stats.clone(), gate.clone());
                reads.push(tokio::spawn(async move {
                    let Ok(_permit) = gate.acquire_owned().await else {
                        return;
                    };
                    let path = format!("/v1/kv/cronnode/jobs/{shard}/?recurse");
                    if let Ok((_, _, body)) = api.call(Method::GET, &path, Bytes::new()).await {
                        stats.reads.fetch_add(1, Ordering::Relaxed);
                        stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                }));
            }
            for r in reads {
                let _ = r.await;
            }
        }
        tokio::time::sleep_until((issued + WATCH_COALESCE).into()).await;
    }
}

fn spawn_watchers(api: &Api, watch_kind: Watch, nodes: usize) -> Arc<WatchStats> {
    let stats = Arc::new(WatchStats::default());
    let patterns: &[Watch] = match watch_kind {
        Watch::None => &[],
        Watch::Old => &[Watch::Old],
        Watch::Sharded => &[Watch::Sharded],
        Watch::Both => &[Watch::Old, Watch::Sharded],
    };
    for _ in 0..nodes {
        for p in patterns {
            tokio::spawn(watch(api.clone(), *p, stats.clone()));
        }
    }
    stats
}

/// One update: read the job, then check-and-set it (with its shard's stamp when `stamp`).
async fn update(api: &Api, i: usize, version: u64, stamp: bool) -> Res<()> {
    let key = job_key(i);
    let (status, _, body) = api
        .call(Method::GET, &format!("/v1/kv/{key}"), Bytes::new())
        .await?;
    if status != StatusCode::OK {
        return Err(format!("GET {key}: {status}").into());
    }
    let entry: Value = serde_json::from_slice(&body)?;
    let index = entry[0]["ModifyIndex"].as_u64().unwrap_or(0);
    let mut ops = vec![json!({"KV": {"Verb": "cas", "Key": key, "Index": index,
        "Value": job_value(i, version)}})];
    if stamp {
        ops.push(json!({"KV": {"Verb": "set", "Key": stamp_key(&shard_of(i))}}));
    }
    let body = Bytes::from(Value::Array(ops).to_string());
    let (status, _, body) = api.call(Method::PUT, "/v1/txn", body).await?;
    if status != StatusCode::OK {
        return Err(format!("txn {key}: {status} {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(())
}

async fn churn(
    agent: &Agent,
    jobs: usize,
    rate: u64,
    seconds: u64,
    in_flight: usize,
    watch_kind: Watch,
    nodes: usize,
) -> Res<()> {
    let api = &agent.api;
    let pid = agent.child.id();
    let took = load(api, jobs).await?;
    println!("loaded {jobs} jobs in {:.1} s", took.as_secs_f64());
    let stats = spawn_watchers(api, watch_kind, nodes);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stamp = watch_kind != Watch::Old;
    let gate = Arc::new(Semaphore::new(in_flight));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let (cpu0, _, _) = proc_figures(pid);
    let reads0 = stats.reads.load(Ordering::Relaxed);
    let bytes0 = stats.bytes.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0u64;
    let mut tasks = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let permit = gate.clone().acquire_owned().await?;
        let (api, latencies, errors) = (api.clone(), latencies.clone(), errors.clone());
        let i = (n as usize) % jobs;
        let version = n / jobs as u64 + 1;
        n += 1;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = update(&api, i, version, stamp).await;
            drop(permit);
            match r {
                Ok(()) => {
                    if let Ok(mut l) = latencies.lock() {
                        l.push(t.elapsed());
                    }
                }
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("update failed: {e}");
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, rss, hwm) = proc_figures(pid);
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let watch_name = match watch_kind {
        Watch::None => "none",
        Watch::Old => "old",
        Watch::Sharded => "sharded",
        Watch::Both => "both",
    };
    println!(
        "churn: jobs {jobs}, asked {rate}/s, watch {watch_name} x{nodes}: {:.0} updates/s done ({} ok, {} errors in {wall:.1} s), latency p50 {:.1} ms p99 {:.1} ms; consul-dev CPU {:.2} cores, RSS {rss} KiB (peak {hwm} KiB); watcher reads {}/s, {:.1} MB/s",
        l.len() as f64 / wall,
        l.len(),
        errors.load(Ordering::Relaxed),
        pct(0.5),
        pct(0.99),
        (cpu1 - cpu0) / wall,
        (stats.reads.load(Ordering::Relaxed) - reads0) as f64 / wall,
        (stats.bytes.load(Ordering::Relaxed) - bytes0) as f64 / wall / 1e6,
    );
    Ok(())
}

async fn bulk(agent: &Agent, jobs: usize, watch_kind: Watch, nodes: usize) -> Res<()> {
    let api = &agent.api;
    let pid = agent.child.id();
    let stats = spawn_watchers(api, watch_kind, nodes);
    let (cpu0, _, _) = proc_figures(pid);
    let took = load(api, jobs).await?.as_secs_f64();
    let (cpu1, rss, hwm) = proc_figures(pid);
    println!(
        "bulk: {jobs} jobs loaded in {took:.1} s ({:.0}/s), consul-dev CPU {:.1} s, RSS {rss} KiB (peak {hwm} KiB), watcher reads {}",
        jobs as f64 / took,
        cpu1 - cpu0,
        stats.reads.load(Ordering::Relaxed),
    );
    for (what, path) in [
        ("one shard", "/v1/kv/cronnode/jobs/00/?recurse"),
        (
            "one shard's keys",
            "/v1/kv/cronnode/jobs/00/?keys&separator=/",
        ),
        ("the shard stamps", "/v1/kv/cronnode/job-shards/?recurse"),
        ("the whole prefix", "/v1/kv/cronnode/jobs/?recurse"),
        ("the whole prefix, keys", "/v1/kv/cronnode/jobs/?keys"),
    ] {
        let (c0, _, _) = proc_figures(pid);
        let t = Instant::now();
        let (status, _, body) = api.call(Method::GET, path, Bytes::new()).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let (c1, rss, hwm) = proc_figures(pid);
        println!(
            "listing {what}: {status}, {} bytes in {ms:.1} ms, consul-dev CPU {:.0} ms, RSS after {rss} KiB (peak {hwm} KiB)",
            body.len(),
            (c1 - c0) * 1000.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args = Args::parse();
    let agent = start(&args.bin, args.data_dir.as_ref()).await?;
    match args.mode {
        Mode::Churn {
            jobs,
            rate,
            seconds,
            in_flight,
            watch,
            nodes,
        } => churn(&agent, jobs, rate, seconds, in_flight, watch, nodes).await,
        Mode::Bulk { jobs, watch, nodes } => bulk(&agent, jobs, watch, nodes).await,
    }
}
