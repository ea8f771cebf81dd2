//! A benchmark cluster: one redis-server, one consul-dev, N cronnode nodes each behind its own
//! counting proxy to Consul, and helpers to load jobs and to watch the nodes.
//!
//! Jobs are written straight into Consul KV with `/v1/txn` (128 sets per call) because the API
//! creates one job per request, which would make loading 1,000,000 jobs take longer than the
//! benchmark itself; the stored form and the keys are the job store's own (a JobSpec as JSON
//! under `cronnode/jobs/<shard>/<id>`, plus the shard stamps), so the leader sees exactly what
//! the API would have written.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use hyper::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

use consul_lock::{Consul, ConsulConfig, JobStore};

use crate::http::Http;
use crate::procs::{Bins, ConsulDev, Node};
use crate::proxy::Proxy;
use dev_harness::{FunctionsApi, Location, RedisServer, Route, ServerOptions};

/// Operations per `/v1/txn` call (Consul's limit since 1.14).
const TXN_OPS: usize = 128;
/// Transactions in flight while loading.
const TXN_PARALLEL: usize = 4;
/// Failed reads of the job set after which waiting for it stops.
const WATCH_FAILURES: usize = 3;

/// A log line without its colour codes.
fn strip_ansi(l: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in l.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// CPU share (of one core, over one second) under which a node counts as idle.
const IDLE_SHARE: f64 = 0.2;
/// cronnode's default KV prefix.
pub const PREFIX: &str = "cronnode";

/// `BENCH_ROUTES=N`: the nodes build tasks from IronFunctions routes (a stand-in API,
/// `dev_harness::FunctionsApi`), and the jobs name N distinct routes of the app `bench`
/// (`/fn-0`..), by a hash of their id. Unset: one route, not resolved (`--resolve-routes false`).
pub const ROUTES_ENV: &str = "BENCH_ROUTES";

/// The number of distinct routes of a routes-resolved run (`None`: routes not resolved).
pub fn routes() -> Option<u32> {
    std::env::var(ROUTES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
}

/// A job's route path: `/fn`, or one of [`routes`] by a hash (FNV-1a) of its id.
fn route_of(id: &str) -> String {
    match routes() {
        None => "/fn".to_string(),
        Some(n) => {
            let h = id.bytes().fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            format!("/fn-{}", h % n)
        }
    }
}

/// What a benchmark job looks like.
pub fn job_spec(id: &str, frequency: &str, body: &str) -> Value {
    json!({
        "id": id,
        "function": {"app": "bench", "path": route_of(id), "body": body},
        "frequency": frequency,
    })
}

/// A running cluster. Dropping it stops every process and removes the temp dir.
pub struct Cluster {
    /// The nodes (index = node number).
    pub nodes: Vec<Node>,
    /// One counting proxy per node, same index.
    pub proxies: Vec<Proxy>,
    /// The agent.
    pub consul: ConsulDev,
    /// The queue: no persistence (the benchmark measures the scheduler, not the disk), its
    /// files and log in `dir`'s `redis/`.
    pub redis: RedisServer,
    /// HTTP pool.
    pub http: Http,
    /// Logs and Redis' dir (kept when `BENCH_KEEP` is set).
    pub dir: TempDir,
    /// The IronFunctions stand-in of a routes-resolved run ([`ROUTES_ENV`]), serving while the
    /// cluster lives.
    pub _functions: Option<FunctionsApi>,
}

impl Cluster {
    /// Starts Redis, consul-dev and `n` nodes (not waiting for a leader).
    pub async fn start(bins: &Bins, n: usize) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("cronnode-bench-")
            .tempdir()?;
        let at = Location {
            dir: Some(dir.path().join("redis")),
            ..Location::default()
        };
        let redis =
            tokio::task::spawn_blocking(|| RedisServer::start_at(at, ServerOptions::default()))
                .await??;
        let consul = ConsulDev::start(bins, dir.path()).await?;
        let functions = match routes() {
            None => None,
            Some(n) => {
                let f = FunctionsApi::start()?;
                f.put_app(
                    "bench",
                    Some(&[("DB_URL", "postgres://db:5432/bench"), ("api-key", "k")]),
                );
                for i in 0..n {
                    let mut r = Route::new(&format!("bench/fn-{i}:1"));
                    r.config = [("ROUTE_SETTING".to_string(), format!("r{i}"))].into();
                    f.put_route("bench", &format!("/fn-{i}"), r);
                }
                Some(f)
            }
        };
        let mut nodes = Vec::new();
        let mut proxies = Vec::new();
        for i in 0..n {
            let proxy = Proxy::start(consul.port).await?;
            let mut node = Node::new(
                bins,
                dir.path(),
                &format!("n{i}"),
                &proxy.url(),
                &redis.url(),
            )?;
            node.functions_url = functions.as_ref().map(FunctionsApi::url);
            node.start().await?;
            nodes.push(node);
            proxies.push(proxy);
        }
        Ok(Cluster {
            nodes,
            proxies,
            consul,
            redis,
            http: Http::new(),
            dir,
            _functions: functions,
        })
    }

    /// The run's directory (logs).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Scrapes one node's `/metrics` (never touches Consul).
    pub async fn metric(&self, node: usize, name: &str) -> Result<f64> {
        let text = self
            .http
            .get(&format!("{}/metrics", self.nodes[node].api()))
            .await?;
        let text = String::from_utf8_lossy(&text);
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .with_context(|| format!("metric {name} missing on node {node}"))
    }

    /// The index of the node whose metrics say it leads, if exactly one does.
    pub async fn leader(&self) -> Option<usize> {
        let mut found = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if n.proc.is_none() {
                continue;
            }
            if let Ok(v) = self.metric(i, "cronnode_is_leader").await {
                if v == 1.0 {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(i);
                }
            }
        }
        found
    }

    /// Waits for a leader.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(i) = self.leader().await {
                return Ok(i);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "no leader after {timeout:?} (logs in {})",
            self.path().display()
        )
    }

    /// Waits until `node` reports `n` valid jobs loaded.
    pub async fn wait_jobs(&self, node: usize, n: usize, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut last = -1.0;
        while Instant::now() < deadline {
            if let Ok(v) = self.metric(node, "cronnode_jobs_loaded").await {
                last = v;
                if v as usize == n {
                    return Ok(start.elapsed());
                }
            }
            // A node that keeps failing to read the job set will never get there: say why.
            let log = std::fs::read_to_string(self.nodes[node].log_path()).unwrap_or_default();
            let failures: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("watching the jobs"))
                .collect();
            if failures.len() >= WATCH_FAILURES {
                let why = failures.last().map(|l| strip_ansi(l)).unwrap_or_default();
                bail!(
                    "node {node} cannot read the job set ({} failed reads; the last: {why})",
                    failures.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("node {node} has {last} jobs loaded, not {n}, after {timeout:?}")
    }

    /// Waits until `node`'s process uses less than [`IDLE_SHARE`] of a core over a second:
    /// the `jobs_loaded` gauge is set when a job set arrives, before the leader has planned
    /// it and read its cursors, which takes seconds at 100,000 jobs.
    pub async fn wait_idle(&self, node: usize, timeout: Duration) -> Result<()> {
        let pid = self.nodes[node].running()?.pid();
        let deadline = Instant::now() + timeout;
        let mut last = crate::procs::cpu_time(pid)?;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = crate::procs::cpu_time(pid)?;
            if (now - last).as_secs_f64() < IDLE_SHARE {
                return Ok(());
            }
            last = now;
        }
        bail!("node {node} still busy after {timeout:?}")
    }

    /// Writes `specs` into Consul KV as the job store lays them out (`JobStore::key`, one
    /// folder per shard), `TXN_OPS` operations per transaction, `TXN_PARALLEL` at a time. The
    /// jobs are written shard by shard and each transaction also sets the stamp of the shards
    /// it wrote (`JobStore::stamp_key`, a value naming the write), as the store's own writes do: that is what wakes the
    /// nodes' watches, which then read only those shards.
    pub async fn put_jobs(&self, specs: Vec<Value>) -> Result<()> {
        let store = JobStore::new(
            Consul::new(ConsulConfig::new(self.consul.url())).context("consul client")?,
            PREFIX,
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut keyed = Vec::with_capacity(specs.len());
        for s in &specs {
            let id = s["id"].as_str().unwrap_or("");
            let key = store.key(id).with_context(|| format!("job id {id:?}"))?;
            let stamp = store
                .stamp_key(id)
                .with_context(|| format!("job id {id:?}"))?;
            keyed.push((stamp, key, b64.encode(s.to_string())));
        }
        keyed.sort_unstable();
        // Sorted by shard, so a transaction spans few shards: each one's jobs plus the stamps
        // of the shards they are in, at most `TXN_OPS` operations.
        let mut txns = Vec::new();
        let mut ops: Vec<Value> = Vec::new();
        for (i, (shard_stamp, key, value)) in keyed.iter().enumerate() {
            ops.push(json!({"KV": {"Verb": "set", "Key": key, "Value": value}}));
            let last_of_shard = keyed.get(i + 1).is_none_or(|(s, _, _)| s != shard_stamp);
            if last_of_shard || ops.len() + 1 == TXN_OPS {
                // Consul leaves a key's ModifyIndex alone when a set writes the value it
                // already holds, so each stamp names the write (as the store's own do).
                let stamp = b64.encode(format!("load {key}"));
                ops.push(json!({"KV": {"Verb": "set", "Key": shard_stamp, "Value": stamp}}));
                if ops.len() + 2 > TXN_OPS || i + 1 == keyed.len() {
                    txns.push(serde_json::to_vec(&std::mem::take(&mut ops))?);
                }
            }
        }
        let url = format!("{}/v1/txn", self.consul.url());
        let mut txns = txns.into_iter();
        loop {
            let mut set = tokio::task::JoinSet::new();
            for body in txns.by_ref().take(TXN_PARALLEL) {
                let http = self.http.clone();
                let url = url.clone();
                set.spawn(async move {
                    let (st, body) = http.call(Method::PUT, &url, Some(body)).await?;
                    if !st.is_success() {
                        bail!("txn: {st}: {}", String::from_utf8_lossy(&body));
                    }
                    Ok(())
                });
            }
            if set.is_empty() {
                return Ok(());
            }
            while let Some(r) = set.join_next().await {
                r??;
            }
        }
    }
}
