//! The processes a benchmark runs: consul-dev, cronnode nodes (and Celery beat), each on a free
//! loopback port, each with its log in the run's temp dir; redis-server is dev-harness's
//! `RedisServer` (see `cluster.rs`).
//!
//! Owns starting, signalling and reading /proc (RSS, CPU time) of the children. Every child is
//! killed when its handle drops, so a failing benchmark leaves nothing behind. Must not know
//! what a benchmark measures.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a child may take to open its port.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port (bound, then released: a small race we accept in a benchmark).
fn free_port() -> Result<u16> {
    dev_harness::free_port().context("binding a free port")
}

/// A child process, killed (SIGKILL) on drop.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    /// Spawns `cmd` with its output going to `<dir>/<name>.log`.
    pub fn spawn(name: &str, dir: &Path, mut cmd: Command) -> Result<Proc> {
        let log = File::create(dir.join(format!("{name}.log")))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc { child: Some(child) })
    }

    /// The process id (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `true` while the process runs.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGTERM (graceful stop) without waiting.
    pub fn term(&self) -> Result<()> {
        signal(self.pid(), "TERM")
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `timeout` for the process to exit; `true` if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.alive() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Resident memory now and at its peak, in KiB (VmRSS, VmHWM).
    pub fn rss_kib(&self) -> Result<(u64, u64)> {
        rss_kib(self.pid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `SIG<sig>` to `pid` with kill(1) (no libc dependency for one syscall).
pub fn signal(pid: u32, sig: &str) -> Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if !st.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// VmRSS and VmHWM of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// utime + stime of `pid` (clock ticks of 1/100 s, as Linux reports them).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields count from the last ')'.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After ')': state is field 0, utime 11, stime 12.
    Ok(Duration::from_millis((ticks(11) + ticks(12)) * 10))
}

/// Waits until something accepts connections on `port`.
pub async fn wait_port(port: u16) -> Result<()> {
    let what = format!("something to listen on 127.0.0.1:{port}");
    dev_harness::poll_async(&what, START_TIMEOUT, || async move {
        let connected = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        connected.ok().map(drop)
    })
    .await?;
    Ok(())
}

/// Where the benchmark's binaries are (target/release).
#[derive(Clone, Debug)]
pub struct Bins {
    /// Directory holding `cronnode` and `consul-dev`.
    pub dir: PathBuf,
}

impl Bins {
    fn path(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        if !p.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p {name}`",
                p.display()
            );
        }
        Ok(p)
    }
}

/// A consul-dev agent.
pub struct ConsulDev {
    /// Its process.
    pub proc: Proc,
    /// Its port.
    pub port: u16,
}

impl ConsulDev {
    /// Starts one, in memory.
    pub async fn start(bins: &Bins, dir: &Path) -> Result<ConsulDev> {
        let port = free_port()?;
        let mut cmd = Command::new(bins.path("consul-dev")?);
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--node", "bench"])
            .env("RUST_LOG", "warn");
        let proc = Proc::spawn("consul-dev", dir, cmd)?;
        wait_port(port).await?;
        Ok(ConsulDev { proc, port })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// One cronnode daemon.
pub struct Node {
    /// Its process (None while stopped).
    pub proc: Option<Proc>,
    /// Node name.
    pub name: String,
    /// API port.
    pub port: u16,
    /// The Consul URL it is given (a counting proxy's, usually).
    pub consul_url: String,
    redis_url: String,
    bins: Bins,
    dir: PathBuf,
    /// Starts so far (log files are numbered by it).
    starts: u32,
    /// IronFunctions' API when tasks are built from routes (`--resolve-routes`).
    pub functions_url: Option<String>,
}

/// Extra environment for the cronnode processes, `K=V K=V` (diagnostic runs only).
pub const NODE_ENV: &str = "BENCH_NODE_ENV";
/// Session TTL the benchmark's nodes run with (the design's default).
pub const SESSION_TTL: Duration = Duration::from_secs(10);
/// Lock delay the benchmark's nodes run with (the design's default).
pub const LOCK_DELAY: Duration = Duration::from_secs(1);

impl Node {
    /// A node that is not started yet.
    pub fn new(
        bins: &Bins,
        dir: &Path,
        name: &str,
        consul_url: &str,
        redis_url: &str,
    ) -> Result<Node> {
        Ok(Node {
            proc: None,
            name: name.to_string(),
            port: free_port()?,
            consul_url: consul_url.to_string(),
            redis_url: redis_url.to_string(),
            bins: bins.clone(),
            dir: dir.to_path_buf(),
            starts: 0,
            functions_url: None,
        })
    }

    /// Starts (or restarts) the daemon and waits for its API.
    pub async fn start(&mut self) -> Result<()> {
        self.starts += 1;
        let mut cmd = Command::new(self.bins.path("cronnode")?);
        cmd.args([
            "run",
            "--consul",
            &self.consul_url,
            "--redis",
            &self.redis_url,
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--node",
            &self.name,
            "--session-ttl",
            &format!("{}s", SESSION_TTL.as_secs()),
            "--lock-delay",
            &format!("{}s", LOCK_DELAY.as_secs()),
            "--default-image",
            "bench/fn:latest",
        ])
        // The backlog scenario reads the leader's `release prepared` line (debug).
        .env("RUST_LOG", "info,cronnode::leader::redis=debug");
        match &self.functions_url {
            Some(url) => cmd.args(["--resolve-routes", "true", "--functions-url", url]),
            None => cmd.args(["--resolve-routes", "false"]),
        };
        // Diagnostics only (e.g. MALLOC_ARENA_MAX=2 to tell live data from allocator slack).
        if let Ok(extra) = std::env::var(NODE_ENV) {
            for kv in extra.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    cmd.env(k, v);
                }
            }
        }
        let log = format!("cronnode-{}-{}", self.name, self.starts);
        self.proc = Some(Proc::spawn(&log, &self.dir, cmd)?);
        wait_port(self.port).await
    }

    /// The log of the current (or last) start.
    pub fn log_path(&self) -> PathBuf {
        self.dir
            .join(format!("cronnode-{}-{}.log", self.name, self.starts))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The running process.
    pub fn running(&self) -> Result<&Proc> {
        self.proc
            .as_ref()
            .with_context(|| format!("node {} is not running", self.name))
    }
}
