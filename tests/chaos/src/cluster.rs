//! The cluster under test: a Consul (the dev agent, or an external agent), one redis-server
//! with `appendonly yes`, and three cronnode processes on loopback, plus the probes the faults
//! and the checker need (who leads, with which session; the fence; the queues).
//!
//! It owns the processes it starts and nothing else: against an external Consul it only reads
//! and writes under its own KV prefix and destroys sessions of its own nodes. Start at
//! [`Cluster::start`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::checker::{FenceSample, JobUnderTest, Task};
use crate::http::Http;
use crate::procs::{free_port, Proc};
use crate::servers::Servers;
use crate::tasks::{decode, list_name, PRIORITIES};
use crate::Timings;
use redis_queue::queue::{Queue, QueueConfig};
use redis_queue::test_server::{RedisServer, ServerOptions};

/// The nodes' names.
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// cronnode's KV prefix against the dev agent (its default, so the defaults are what is tested).
pub const DEV_KV_PREFIX: &str = "cronnode";
/// The platform's queue prefix (IronFunctions' default: empty).
pub const QUEUE_PREFIX: &str = "";
/// The image every task gets (never run: nothing consumes the queues during a run).
pub const IMAGE: &str = "chaos/noop";
/// How often the fence sampler reads the fence and the list lengths.
const FENCE_SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// How long a started process may take to answer.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Poll interval of every wait loop.
const POLL: Duration = Duration::from_millis(100);

/// Where Consul is and what the harness may do to it.
pub enum ConsulSide {
    /// The dev agent, started and owned by the harness.
    Dev(Box<Proc>),
    /// An external agent at this URL: only the API, and the operator's stop/start commands.
    External,
    /// A real three-server cluster, started and owned by the harness (node `i` talks to
    /// server `i`).
    Servers(Box<Servers>),
}

/// Which Consul a run uses.
#[derive(Debug, Clone)]
pub enum ConsulChoice {
    /// The workspace's dev agent (the default).
    Dev,
    /// An agent at this URL, not the harness's.
    External(String),
    /// Three servers of this Consul binary, the harness's own.
    Servers(PathBuf),
}

/// One cronnode process.
pub struct Node {
    /// Its node name (also its Consul service ID suffix).
    pub name: String,
    /// Its HTTP API base URL.
    pub api: String,
    /// The process.
    pub proc: Proc,
}

/// Who holds the lock right now.
#[derive(Debug, Clone)]
pub struct LeaderNow {
    /// The holder's node name (from the lock value).
    pub node: String,
    /// The lock session.
    pub session: String,
    /// The lock key's ModifyIndex (the term's token, unless the value was rewritten).
    pub index: u64,
}

/// The running cluster.
pub struct Cluster {
    /// The HTTP client shared by every probe.
    pub http: Http,
    /// Consul's base URL.
    pub consul_url: String,
    /// cronnode's KV prefix: the default against the dev agent, one of this run's own against
    /// an external agent (so that the run never touches anyone else's keys).
    pub prefix: String,
    /// The Consul side.
    pub consul: ConsulSide,
    /// redis-server (`appendonly yes`, `appendfsync always`), on the same port across restarts.
    pub redis: RedisServer,
    /// Redis URL.
    pub redis_url: String,
    /// The three nodes.
    pub nodes: Vec<Node>,
    /// Samples taken by the fence sampler.
    fences: Arc<Mutex<Vec<FenceSample>>>,
    sampler: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Starts Consul (unless external), Redis and the three nodes, and waits for a leader.
    pub async fn start(
        bin_dir: &Path,
        run_dir: &Path,
        choice: ConsulChoice,
        timings: &Timings,
    ) -> Result<Cluster> {
        let http = Http::new();
        let prefix = if matches!(choice, ConsulChoice::External(_)) {
            format!("cronnode-chaos-{}", Utc::now().format("%Y%m%dT%H%M%S"))
        } else {
            DEV_KV_PREFIX.to_string()
        };
        let (consul_url, consul) = match choice {
            ConsulChoice::External(url) => {
                (url.trim_end_matches('/').to_string(), ConsulSide::External)
            }
            ConsulChoice::Servers(binary) => {
                let servers = Servers::start(&binary, run_dir, &http).await?;
                (servers.any_url()?, ConsulSide::Servers(Box::new(servers)))
            }
            ConsulChoice::Dev => {
                let port = free_port()?;
                let data = run_dir.join("consul-data");
                std::fs::create_dir_all(&data)?;
                let mut proc = Proc::new(
                    "consul-dev",
                    &bin_dir.join("consul-dev"),
                    args(&[
                        "--listen",
                        &format!("127.0.0.1:{port}"),
                        "--node",
                        "chaos-consul",
                        "--data-dir",
                        &data.to_string_lossy(),
                    ]),
                    run_dir,
                );
                proc.start()?;
                (
                    format!("http://127.0.0.1:{port}"),
                    ConsulSide::Dev(Box::new(proc)),
                )
            }
        };
        wait_for(&format!("Consul at {consul_url}"), START_LIMIT, || async {
            // Any answer from the KV endpoint (200, or 404 before the first leader) means up.
            let r = http
                .get(&format!("{consul_url}/v1/kv/{prefix}/leader"))
                .await?;
            if r.status == 404 {
                Ok(())
            } else {
                r.ok().map(|_| ())
            }
        })
        .await?;

        // appendfsync always: every acknowledged write is on disk before the reply, so a killed
        // (or crashed-machine) redis-server loses nothing the daemon was told had succeeded.
        let redis = tokio::task::block_in_place(|| {
            RedisServer::start_with(ServerOptions {
                appendonly: true,
                fsync_always: true,
                password: None,
            })
        })?;
        let redis_url = redis.url();
        wait_redis(&redis_url).await?;

        let mut nodes = Vec::new();
        for (i, name) in NODES.into_iter().enumerate() {
            // A node talks to its own agent: with a cluster of servers, server `i`.
            let agent_url = match &consul {
                ConsulSide::Servers(s) => s.servers[i].url.clone(),
                _ => consul_url.clone(),
            };
            let port = free_port()?;
            let listen = format!("127.0.0.1:{port}");
            let proc = Proc::new(
                name,
                &bin_dir.join("cronnode"),
                args(&[
                    "run",
                    "--consul",
                    &agent_url,
                    "--redis",
                    &redis_url,
                    "--listen",
                    &listen,
                    "--node",
                    name,
                    "--session-ttl",
                    &format!("{}s", timings.session_ttl.as_secs()),
                    "--lock-delay",
                    &format!("{}ms", timings.lock_delay.as_millis()),
                    "--default-image",
                    IMAGE,
                    "--resolve-routes",
                    "false",
                    "--prefix",
                    &prefix,
                ]),
                run_dir,
            );
            nodes.push(Node {
                name: name.to_string(),
                api: format!("http://{listen}"),
                proc,
            });
        }
        let mut cluster = Cluster {
            http,
            consul_url,
            prefix,
            consul,
            redis,
            redis_url,
            nodes,
            fences: Arc::default(),
            sampler: None,
        };
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i).await?;
        }
        cluster.wait_leader(START_LIMIT).await?;
        cluster.sampler = Some(tokio::spawn(sample_fence(
            cluster.redis_url.clone(),
            cluster.fences.clone(),
        )));
        Ok(cluster)
    }

    /// Starts node `i` and waits until its API answers `/health`.
    pub async fn start_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        node.proc.start()?;
        let url = format!("{}/health", node.api);
        let http = self.http.clone();
        wait_for(&format!("{} /health", node.name), START_LIMIT, || async {
            http.get(&url).await?.ok().map(|_| ())
        })
        .await
        .with_context(|| format!("see {}", node.proc.log().display()))
    }

    /// The index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| anyhow!("the lock names {name:?}, which is not one of this run's nodes"))
    }

    /// Where the harness's own Consul requests go: the agent, or a live server (never a
    /// frozen or killed one, so a probe cannot hang on the fault it measures).
    pub fn api_url(&self) -> String {
        match &self.consul {
            ConsulSide::Servers(s) => s.any_url().unwrap_or_else(|_| self.consul_url.clone()),
            _ => self.consul_url.clone(),
        }
    }

    /// Who holds the lock, read from Consul (`None` when nobody does). From a cluster of
    /// servers the read is `?stale` (any live server answers from its own replica, so it does
    /// not wait on a frozen Raft leader; a replica lags by milliseconds).
    pub async fn leader(&self) -> Result<Option<LeaderNow>> {
        let stale = if matches!(self.consul, ConsulSide::Servers(_)) {
            "?stale"
        } else {
            ""
        };
        let url = format!("{}/v1/kv/{}/leader{stale}", self.api_url(), self.prefix);
        let response = self.http.get(&url).await?;
        if response.status == 404 {
            return Ok(None);
        }
        let entries = response.ok()?.json()?;
        let entry = entries.get(0).ok_or_else(|| anyhow!("empty KV answer"))?;
        let Some(session) = entry.get("Session").and_then(Value::as_str) else {
            return Ok(None);
        };
        let value = entry
            .get("Value")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("lock key without a value"))?;
        let value = base64::engine::general_purpose::STANDARD.decode(value)?;
        let holder: Value = serde_json::from_slice(&value)?;
        let node = holder
            .get("node")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("lock value names no node: {holder}"))?;
        Ok(Some(LeaderNow {
            node: node.to_string(),
            session: session.to_string(),
            index: entry
                .get("ModifyIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        }))
    }

    /// Waits until a running node of this run holds the lock and `accept` agrees;
    /// `what` names the wait in the error.
    pub async fn wait_leader_where(
        &mut self,
        what: &str,
        limit: Duration,
        accept: impl Fn(&LeaderNow) -> bool,
    ) -> Result<LeaderNow> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(leader)) = self.leader().await {
                if accept(&leader) {
                    if let Ok(i) = self.node_index(&leader.node) {
                        if self.nodes[i].proc.is_running() {
                            return Ok(leader);
                        }
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no leader {what} within {limit:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until a running node other than `not` holds the lock.
    pub async fn wait_leader_not(&mut self, not: &str, limit: Duration) -> Result<LeaderNow> {
        self.wait_leader_where(&format!("other than {not}"), limit, |l| l.node != not)
            .await
    }

    /// Waits until a running node of this run holds the lock.
    pub async fn wait_leader(&mut self, limit: Duration) -> Result<LeaderNow> {
        self.wait_leader_where("at all", limit, |_| true).await
    }

    /// Registers a job through node `via`'s API; returns what the checker needs.
    pub async fn create_job(&self, via: usize, spec: &Value) -> Result<JobUnderTest> {
        let id = spec
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("job spec without id"))?;
        let frequency = spec
            .get("frequency")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("job spec without frequency"))?;
        let schedule = cron_core::Schedule::parse(frequency, None)
            .map_err(|e| anyhow!("cron-core refuses {frequency:?}: {e}"))?;
        let url = format!("{}/v1/cronjobs", self.nodes[via].api);
        let answer = self.http.post_json(&url, spec).await?.ok()?;
        let received = Utc::now();
        let body = answer.json()?;
        // The store's own creation instant is the start of the job's window; the harness's
        // clock after the answer is a safe stand-in only if the API does not say.
        let created = body
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map_or(received, |t| t.with_timezone(&Utc));
        Ok(JobUnderTest {
            id: id.to_string(),
            schedule,
            created,
        })
    }

    /// Waits until every job's cursor has reached its last slot at or before `end` (the
    /// leader has enqueued the whole window), or `limit` passes; a slow catch-up on a loaded
    /// machine then shows as lateness, not as missing slots. Answers what is still behind.
    pub async fn wait_caught_up(
        &self,
        jobs: &[JobUnderTest],
        end: DateTime<Utc>,
        limit: Duration,
    ) -> Result<Option<String>> {
        let last: Vec<(String, i64)> = jobs
            .iter()
            .filter_map(|j| last_slot(j, end).map(|s| (j.id.clone(), s.timestamp())))
            .collect();
        let queue = Queue::connect(QueueConfig::new(self.redis_url.clone())).await?;
        let probe = || {
            let queue = queue.clone();
            let last = last.clone();
            async move {
                let ids: Vec<&str> = last.iter().map(|(id, _)| id.as_str()).collect();
                let cursors = queue.cursors(&ids).await?;
                for (job, slot) in &last {
                    if cursors.get(job).is_none_or(|c| c.timestamp() < *slot) {
                        bail!("{job} not enqueued up to {slot}");
                    }
                }
                Ok(())
            }
        };
        match wait_for("catch-up of the window", limit, probe).await {
            Ok(()) => Ok(None),
            Err(e) => Ok(Some(format!("{e:#}"))),
        }
    }

    /// The node's `cronnode_fires_total` for one outcome (`fenced`, `duplicate`, ...), from its
    /// `/metrics`; `None` when the node does not answer or has no such series yet.
    pub async fn fires_counted(&self, i: usize, outcome: &str) -> Option<u64> {
        let url = format!("{}/metrics", self.nodes[i].api);
        let body = self.http.get(&url).await.ok()?.ok().ok()?.body;
        let text = String::from_utf8_lossy(&body);
        let label = format!("\"{outcome}\"");
        let total = text
            .lines()
            .filter(|l| l.starts_with("cronnode_fires_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(total as u64)
    }

    /// Stops every node gracefully, then the fence sampler.
    pub async fn stop_nodes(&mut self) -> Result<()> {
        // The nodes resign through Consul: every server must be there.
        if let ConsulSide::Servers(s) = &mut self.consul {
            for i in 0..s.servers.len() {
                if s.servers[i].frozen {
                    s.thaw(i)?;
                }
                if s.servers[i].down {
                    s.restart(i)?;
                }
            }
        }
        for node in &mut self.nodes {
            node.proc.signal("CONT").ok();
            node.proc.stop().await?;
        }
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
        if matches!(self.consul, ConsulSide::External) {
            // The run's own prefix only: the jobs and the (released) lock key.
            let url = format!("{}/v1/kv/{}?recurse", self.consul_url, self.prefix);
            self.http.send(hyper::Method::DELETE, &url, None).await.ok();
        }
        Ok(())
    }

    /// Every task on the queues in push order, the entries that did not decode, and the fence
    /// samples.
    pub async fn collect(&self) -> Result<(Vec<Task>, Vec<String>, Vec<FenceSample>)> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut tasks = Vec::new();
        let mut bad = Vec::new();
        for p in PRIORITIES {
            let list = list_name(QUEUE_PREFIX, p);
            let mut raw: Vec<String> = redis::cmd("LRANGE")
                .arg(&list)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            // LPUSH puts the newest at the head: reverse to get push order.
            raw.reverse();
            for (seq, entry) in raw.iter().enumerate() {
                match decode(&list, seq, entry) {
                    Ok(task) => tasks.push(task),
                    Err(e) => bad.push(e),
                }
            }
        }
        let delayed: i64 = redis::cmd("HLEN")
            .arg(format!("{QUEUE_PREFIX}delayed_jobs"))
            .query_async(&mut conn)
            .await?;
        if delayed > 0 {
            bad.push(format!(
                "{delayed} delayed tasks, but no job of the run has a delay"
            ));
        }
        let fences = self.fences.lock().map(|f| f.clone()).unwrap_or_default();
        Ok((tasks, bad, fences))
    }

    /// The log files of the run, for a failure message.
    pub fn logs(&self) -> Vec<PathBuf> {
        let mut logs: Vec<PathBuf> = self
            .nodes
            .iter()
            .map(|n| n.proc.log().to_path_buf())
            .collect();
        match &self.consul {
            ConsulSide::Dev(p) => logs.push(p.log().to_path_buf()),
            ConsulSide::Servers(s) => logs.extend(s.logs()),
            ConsulSide::External => {}
        }
        logs
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
    }
}

/// Waits until redis-server answers PING.
pub async fn wait_redis(url: &str) -> Result<()> {
    let url = url.to_string();
    wait_for(&format!("Redis at {url}"), START_LIMIT, || {
        let url = url.clone();
        async move {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        }
    })
    .await
}

/// Reads the fence, then every list's length, until aborted. Errors (Redis down during its
/// fault) skip a sample.
async fn sample_fence(url: String, out: Arc<Mutex<Vec<FenceSample>>>) {
    let mut queue = None;
    loop {
        tokio::time::sleep(FENCE_SAMPLE_EVERY).await;
        if queue.is_none() {
            queue = Queue::connect(QueueConfig::new(url.clone())).await.ok();
        }
        let Some(q) = queue.as_ref() else { continue };
        // The order is the point: the lengths are read after the fence answered, so every
        // push at or past a length happened under that fence or a higher one.
        let (fence, depths) = match q.fence().await {
            Ok(Some(fence)) => match q.queue_depths().await {
                Ok(depths) => (fence, depths),
                Err(_) => continue,
            },
            Ok(None) => continue,
            Err(_) => {
                // A new client next time, in case this one does not recover by itself.
                queue = None;
                continue;
            }
        };
        // After the answer: the fence was at least this high by then.
        let at = Utc::now();
        let lens = PRIORITIES
            .iter()
            .zip(depths.queues)
            .map(|(&p, len)| (list_name(QUEUE_PREFIX, p), len as usize))
            .collect::<BTreeMap<_, _>>();
        if let Ok(mut v) = out.lock() {
            v.push(FenceSample { fence, at, lens });
        }
    }
}

/// Retries `probe` every [`POLL`] until it succeeds or `limit` passes.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match probe().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() > deadline {
            return Err(last.context(format!("{what} not ready within {limit:?}")));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The last slot of `job` at or before `end`.
fn last_slot(job: &JobUnderTest, end: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut at = job.created;
    let mut last = None;
    while let Some(next) = job.schedule.next_after(at) {
        if next > end {
            break;
        }
        last = Some(next);
        at = next;
    }
    last
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// The job specs of a run: per-second and every-few-seconds schedules, 6-field and `@every`,
/// all with catch-up `all` and a window longer than any fault.
pub fn job_specs(window: &str) -> Vec<Value> {
    [
        ("chaos-every-second", "* * * * * *"),
        ("chaos-every-3s", "*/3 * * * * *"),
        ("chaos-every-2s", "@every 2s"),
        ("chaos-every-7s", "@every 7s"),
        ("chaos-odd-seconds", "1-59/2 * * * * *"),
    ]
    .iter()
    .map(|(id, frequency)| job_spec(id, frequency, window))
    .collect()
}

/// One job spec of the run.
pub fn job_spec(id: &str, frequency: &str, window: &str) -> Value {
    json!({
        "id": id,
        "function": {"app": "chaos", "path": format!("/{id}"), "body": "{}"},
        "frequency": frequency,
        "catchup": {"policy": "all", "window": window},
        "description": "registered by the chaos suite",
    })
}
