//! # chaos: cronnode's fault-tolerance suite
//!
//! The design promises that no scheduled call is lost and none is made twice, across crashes,
//! pauses and outages. This crate shows it instead of assuming it: a harness breaks a real
//! three-node cluster on purpose, and a checker reads what reached the queues.
//!
//! - [`cluster`]: starts the dev Consul agent (or points at an external one), a redis-server
//!   with `appendonly yes`, and three `cronnode run` processes on loopback, and probes them;
//! - [`faults`]: the seven faults (kill -9, SIGSTOP past 2×TTL, SIGTERM, Consul refusing,
//!   session invalidated, Redis killed, rolling restart), and five of the Consul servers;
//! - [`servers`]: a real three-server Consul of the harness's own (`CHAOS_CONSUL_BIN`);
//! - [`checker`]: pure; every slot of every job exactly once, nothing pushed under the fence,
//!   failover and lateness figures; start reading there;
//! - [`tasks`]: decoding the task JSON the daemon pushes;
//! - [`run`]: the whole sequence, used by the short test (`tests/short.rs`, part of
//!   `scripts/test`) and by the soak binary (`scripts/chaos --minutes N`).
//!
//! **Architecture Invariant:** the suite never edits the daemon's state behind its back: it
//! only uses what an operator or a failing machine could do (signals, the Consul API, the dev
//! agent's fault endpoints, killing Redis). It never reads the daemon's memory, only the queues.
//!
//! This is a test harness, not a library others build on: errors are `anyhow` with context,
//! because every one of them ends the run with a message for a human.
#![deny(missing_docs)]

pub mod checker;
pub mod cluster;
pub mod faults;
pub mod http;
pub mod procs;
pub mod servers;
pub mod tasks;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;

use crate::checker::{Evidence, Report};
use crate::cluster::{job_specs, Cluster, ConsulChoice, ConsulSide};
use crate::faults::{Fault, Injected, ALL, SERVER_FAULTS};

/// Environment variable: the address (URL) of an external Consul agent to run against.
pub const CONSUL_ENV: &str = "CHAOS_CONSUL_ADDR";
/// Environment variable: a directory holding prebuilt `cronnode` and `consul-dev` binaries.
pub const BIN_DIR_ENV: &str = "CHAOS_BIN_DIR";
/// Environment variable: a Consul binary; the run then starts its own three-server cluster
/// of it and adds the server faults.
pub const CONSUL_BIN_ENV: &str = "CHAOS_CONSUL_BIN";

/// How long the end of a run waits for the leader to have enqueued every slot of the window.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(60);

/// The timings of a run.
#[derive(Debug, Clone)]
pub struct Timings {
    /// The nodes' session TTL.
    pub session_ttl: Duration,
    /// The nodes' lock-delay.
    pub lock_delay: Duration,
    /// Time after registering the jobs before the first fault.
    pub warmup: Duration,
    /// Time left to recover after each fault.
    pub recovery: Duration,
    /// How long the leader stays stopped (at least until a successor leads, and > 2×TTL).
    pub pause: Duration,
    /// How long Consul refuses connections (and a Consul server stays frozen, or two stay
    /// down).
    pub consul_outage: Duration,
    /// How long a killed Consul server stays down.
    pub server_down: Duration,
    /// How long redis-server stays dead.
    pub redis_down: Duration,
    /// Time between two nodes of the rolling restart.
    pub rolling_gap: Duration,
    /// Time after the end of the window before the nodes stop, for late slots to arrive.
    pub settle: Duration,
    /// The jobs' catch-up window: longer than any fault.
    pub catchup_window: &'static str,
}

impl Timings {
    /// The short form, for `cargo test`: faults at full strength, recovery shortened.
    pub fn short() -> Timings {
        Timings {
            session_ttl: Duration::from_secs(10),
            lock_delay: Duration::from_secs(1),
            warmup: Duration::from_secs(5),
            recovery: Duration::from_secs(5),
            pause: Duration::from_secs(25),
            consul_outage: Duration::from_secs(30),
            server_down: Duration::from_secs(20),
            redis_down: Duration::from_secs(3),
            rolling_gap: Duration::from_secs(2),
            settle: Duration::from_secs(5),
            catchup_window: "10m",
        }
    }

    /// The soak: longer recovery and outages.
    pub fn soak() -> Timings {
        Timings {
            warmup: Duration::from_secs(20),
            recovery: Duration::from_secs(30),
            pause: Duration::from_secs(30),
            redis_down: Duration::from_secs(10),
            rolling_gap: Duration::from_secs(10),
            settle: Duration::from_secs(10),
            ..Timings::short()
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The timings.
    pub timings: Timings,
    /// Keep injecting rounds of the seven faults until this much time has passed (at least one
    /// round); `None` runs one round.
    pub duration: Option<Duration>,
    /// Where the logs and data of the run go.
    pub run_dir: PathBuf,
    /// Prebuilt binaries; built with cargo when `None`.
    pub bin_dir: Option<PathBuf>,
    /// Which Consul.
    pub consul: ConsulChoice,
}

impl RunConfig {
    /// A run configured from the environment ([`CONSUL_ENV`], [`BIN_DIR_ENV`]).
    pub fn from_env(timings: Timings, duration: Option<Duration>, run_dir: PathBuf) -> RunConfig {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        RunConfig {
            timings,
            duration,
            run_dir,
            bin_dir: var(BIN_DIR_ENV).map(PathBuf::from),
            consul: match (var(CONSUL_ENV), var(CONSUL_BIN_ENV)) {
                (Some(a), _) if a.contains("://") => ConsulChoice::External(a),
                (Some(a), _) => ConsulChoice::External(format!("http://{a}")),
                (None, Some(bin)) => ConsulChoice::Servers(PathBuf::from(bin)),
                (None, None) => ConsulChoice::Dev,
            },
        }
    }
}

/// What a run came to.
#[derive(Debug)]
pub struct Outcome {
    /// The checker's report.
    pub report: Report,
    /// Problems of the harness itself (a fault that could not be injected or recovered from).
    pub errors: Vec<String>,
    /// The log files.
    pub logs: Vec<PathBuf>,
}

impl Outcome {
    /// Whether the run passed: the checker is satisfied and the harness did its whole job.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.report.passed()
    }
}

/// Prints a progress line with the time.
fn progress(line: &str) {
    eprintln!("[chaos {}] {line}", Utc::now().format("%H:%M:%S%.3f"));
}

/// Runs the harness and the checker.
pub async fn run(cfg: &RunConfig) -> Result<Outcome> {
    std::fs::create_dir_all(&cfg.run_dir)?;
    let bin_dir = match &cfg.bin_dir {
        Some(dir) => dir.clone(),
        None => build_binaries()?,
    };
    let t = &cfg.timings;
    progress(&format!("run directory {}", cfg.run_dir.display()));
    let mut cluster = Cluster::start(&bin_dir, &cfg.run_dir, cfg.consul.clone(), t)
        .await
        .context("the cluster did not start")?;
    let mut faults: Vec<Fault> = ALL.to_vec();
    if let ConsulSide::Servers(s) = &cluster.consul {
        progress(&format!(
            "three Consul servers: {}, raft_multiplier {}",
            s.version, s.raft_multiplier
        ));
        faults.extend(SERVER_FAULTS);
    }
    let started = tokio::time::Instant::now();
    let mut evidence = Evidence::default();
    for (i, spec) in job_specs(t.catchup_window).iter().enumerate() {
        let job = cluster.create_job(i % cluster.nodes.len(), spec).await?;
        evidence.jobs.push(job);
    }
    progress(&format!("{} jobs registered", evidence.jobs.len()));
    tokio::time::sleep(t.warmup).await;

    let mut errors = Vec::new();
    'rounds: loop {
        for &fault in &faults {
            progress(&format!("injecting: {}", fault.name()));
            match fault.inject(&mut cluster, t, &mut evidence.jobs).await {
                Ok(Injected::Done(record)) => {
                    progress(&format!("recovered: {} ({})", record.name, record.note));
                    evidence.faults.push(record);
                }
                Ok(Injected::Skipped(reason)) => {
                    progress(&format!("skipped: {reason}"));
                    if !evidence.skipped.contains(&reason) {
                        evidence.skipped.push(reason);
                    }
                }
                Err(e) => {
                    progress(&format!("FAILED: {}: {e:#}", fault.name()));
                    errors.push(format!("{}: {e:#}", fault.name()));
                    break 'rounds;
                }
            }
            tokio::time::sleep(t.recovery).await;
        }
        match cfg.duration {
            Some(d) if started.elapsed() < d => continue,
            _ => break,
        }
    }

    evidence.end = Utc::now();
    tokio::time::sleep(t.settle).await;
    if let Some(behind) = cluster
        .wait_caught_up(&evidence.jobs, evidence.end, CATCH_UP_LIMIT)
        .await?
    {
        progress(&format!(
            "the cursors did not reach the end of the window: {behind}"
        ));
    }
    progress("stopping the nodes");
    cluster.stop_nodes().await?;
    let (tasks, undecodable, fences) = cluster.collect().await?;
    evidence.tasks = tasks;
    evidence.undecodable = undecodable;
    evidence.fences = fences;
    let report = checker::check(&evidence);
    Ok(Outcome {
        report,
        errors,
        logs: cluster.logs(),
    })
}

/// Builds `cronnode` and `consul-dev` (debug) in this workspace and returns their directory.
fn build_binaries() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    progress("cargo build -p cronnode -p consul-dev");
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "cronnode", "-p", "consul-dev"])
        .current_dir(&workspace)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build -p cronnode -p consul-dev failed: {status}");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    Ok(target.join("debug"))
}
