//! `bench`: whole-pipeline benchmarks of cronnode, run by scripts/bench.
//!
//! Every scenario starts its own processes (redis-server, consul-dev, cronnode nodes, Celery
//! beat) on free loopback ports and measures from the outside: a consumer popping the queue
//! (what the platform's runners see), counting proxies in front of Consul, /proc for memory and
//! CPU, the nodes' /metrics for who leads. The binaries under test are the release builds; of
//! the workspace it links only consul-lock, for the job store's key layout (the bulk loader
//! writes jobs as the store does), and dev-harness, for its redis-server.
//!
//! - `bench quick`: a smoke run for the test command (a couple of minutes); fails loudly when
//!   the pipeline loses, doubles or cannot fail over.
//! - `bench full --out FILE`: every scenario at the issue's sizes; writes the report's tables
//!   section by section (a late failure keeps the earlier sections).
//!
//! Start reading at [`full`]; each scenario is one module: [`lateness`] (1, 2), [`backlog`]
//! (1b), [`memory`] (3), [`consul_load`] (4), [`failover`] (5), [`churn`] (6), [`peer`] (7),
//! [`console`] (8).

mod backlog;
mod churn;
mod cluster;
mod console;
mod consul_load;
mod consumer;
mod failover;
mod http;
mod jitter;
mod lateness;
mod memory;
mod peer;
mod procs;
mod profile;
mod proxy;
mod report;
mod stats;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::lateness::Spread;
use crate::procs::Bins;

#[derive(Parser)]
#[command(name = "bench", about = "Whole-pipeline benchmarks of cronnode")]
struct Cli {
    /// Directory of the release binaries (cronnode, consul-dev).
    #[arg(long, default_value = "target/release", global = true)]
    bin_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The smoke run (a couple of minutes).
    Quick,
    /// The report's run.
    Full(Box<FullArgs>),
}

#[derive(clap::Args)]
struct FullArgs {
    /// Where the markdown goes (appended section by section).
    #[arg(long)]
    out: PathBuf,
    /// Sections to run (lateness,jitter,backlog,memory,consul,failover,churn,peer,console); all
    /// when absent.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Job counts of the lateness runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000, 100_000])]
    lateness_sizes: Vec<usize>,
    /// Slot placements of the lateness runs (same, minute).
    #[arg(long, value_delimiter = ',', default_values_t = ["same".to_string(), "minute".to_string()])]
    lateness_spreads: Vec<String>,
    /// Job count of the jitter run (all at one instant).
    #[arg(long, default_value_t = 10_000)]
    jitter_jobs: usize,
    /// Jitter of the jitter run, seconds.
    #[arg(long, default_value_t = 300)]
    jitter_secs: i64,
    /// Job count of the standing-backlog runs (all in one second).
    #[arg(long, default_value_t = 10_000)]
    backlog_jobs: usize,
    /// Tasks already waiting in queue0 at the slot, one run each (0: the same measurement
    /// without a backlog).
    #[arg(long, value_delimiter = ',', default_values_t = [0usize, 9_500, 10_000])]
    backlog_sizes: Vec<usize>,
    /// Job counts of the memory steps.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000, 1_000_000])]
    memory_sizes: Vec<usize>,
    /// Job counts of the Consul load runs.
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 10_000])]
    consul_sizes: Vec<usize>,
    /// Counting window of the Consul load runs, seconds.
    #[arg(long, default_value_t = 60)]
    consul_window: u64,
    /// Failover rounds of each kind.
    #[arg(long, default_value_t = 10)]
    failover_rounds: usize,
    /// Churn: updates per second.
    #[arg(long, default_value_t = 1000)]
    churn_rate: usize,
    /// Churn: seconds.
    #[arg(long, default_value_t = 60)]
    churn_secs: u64,
    /// Churn: every-minute jobs.
    #[arg(long, default_value_t = 10_000)]
    churn_jobs: usize,
    /// Schedule counts of the peer runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000])]
    peer_sizes: Vec<usize>,
    /// Jobs in the store when the console's first page is timed.
    #[arg(long, default_value_t = 100_000)]
    console_jobs: usize,
    /// The virtualenv holding celery and celery-redbeat.
    #[arg(long, default_value = "target/bench-venv")]
    venv: PathBuf,
    /// The Celery app and loader.
    #[arg(long, default_value = "tests/bench/celery")]
    celery_dir: PathBuf,
    /// Profile the leader during the largest same-second burst (perf).
    #[arg(long)]
    profile: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let bins = Bins { dir: cli.bin_dir };
    let run = async {
        match cli.cmd {
            Cmd::Quick => quick(&bins).await,
            Cmd::Full(args) => full(&bins, &args).await,
        }
    };
    // On SIGINT/SIGTERM the run is dropped, and with it every child process it started.
    let r = tokio::select! {
        r = run => r,
        s = stop_signal() => Err(anyhow::anyhow!("stopped by {s}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT or SIGTERM; names it.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// The smoke run: every part of the pipeline once, small; an error on any loss or double.
async fn quick(bins: &Bins) -> Result<()> {
    let t = Instant::now();
    println!("machine: {}; load {}", report::machine(), report::load());
    let l = lateness::run(bins, 1_000, Spread::SameSecond, false, false).await?;
    if l.unparsed > 0 {
        bail!(
            "{} tasks on the queue could not be read as IronFunctions tasks",
            l.unparsed
        );
    }
    println!(
        "1,000 jobs in one second: every fire once; lateness\n{}",
        report::lateness(std::slice::from_ref(&l))
    );
    let f = failover::run(bins, 1, 1, 100).await?;
    println!("failover\n{}", report::failover(&f));
    if f.doubled > 0 || f.missing > 0 {
        bail!(
            "failover lost {} or doubled {} probe slots",
            f.missing,
            f.doubled
        );
    }
    let c = churn::run(bins, 1_000, 100, 10).await?;
    println!("churn\n{}", report::churn(&c));
    if c.errors > 0 || c.never > 0 {
        bail!(
            "churn: {} failed updates, {} updates never took effect",
            c.errors,
            c.never
        );
    }
    println!("bench quick: ok in {:.0} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Appends `text` to the report file.
fn emit(out: &PathBuf, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;
    f.write_all(text.as_bytes())?;
    print!("{text}");
    Ok(())
}

/// Every scenario at the issue's sizes, each section written as soon as it is measured.
async fn full(bins: &Bins, a: &FullArgs) -> Result<()> {
    let want = |s: &str| a.only.is_empty() || a.only.iter().any(|o| o == s);
    let section = |title: &str, t: Instant| {
        format!(
            "\n### {title}\n\nLoad average (1 min) at the end: {}; took {:.0} s.\n\n",
            report::load(),
            t.elapsed().as_secs_f64()
        )
    };
    let mut failed = Vec::new();

    if want("lateness") {
        let t = Instant::now();
        let mut rows = Vec::new();
        let biggest = a.lateness_sizes.iter().copied().max().unwrap_or(0);
        let mut profiles = Vec::new();
        for &n in &a.lateness_sizes {
            for spread in [Spread::SameSecond, Spread::Minute] {
                let name = if spread == Spread::SameSecond {
                    "same"
                } else {
                    "minute"
                };
                if !a.lateness_spreads.iter().any(|s| s == name) {
                    continue;
                }
                let same = spread == Spread::SameSecond;
                let prof = a.profile && n == biggest;
                match lateness::run(bins, n, spread, same, prof).await {
                    Ok(mut o) => {
                        eprintln!(
                            "lateness {n} {}: p99 {:.1} ms",
                            spread.label(),
                            o.created.p99
                        );
                        if let Some(p) = o.profile.take() {
                            profiles.push((n, spread.label(), p));
                        }
                        rows.push(o);
                    }
                    Err(e) => failed.push(format!("lateness {n} {}: {e:#}", spread.label())),
                }
            }
        }
        let mut s = section("1. Lateness (enqueue instant − slot)", t);
        s.push_str(&report::lateness(&rows));
        s.push_str("\n### 2. Throughput (same-second bursts)\n\n");
        s.push_str(&report::throughput(&rows));
        for (n, label, p) in profiles {
            let _ = write!(s, "\nFlat CPU profiles of the leader and of redis-server during the {n}-job run, {label} (perf, self time; full reports in target/bench/profiles/):\n\n```\n{p}\n```\n");
        }
        emit(&a.out, &s)?;
    }
    if want("jitter") {
        let t = Instant::now();
        match jitter::run(bins, a.jitter_jobs, a.jitter_secs).await {
            Ok(o) => {
                eprintln!(
                    "jitter {}: created_at − jittered p99 {:.1} ms",
                    o.n, o.late.p99
                );
                emit(
                    &a.out,
                    &(section("1c. Jitter spread (same instant, jitter)", t) + &jitter::report(&o)),
                )?;
            }
            Err(e) => failed.push(format!("jitter: {e:#}")),
        }
    }
    if want("backlog") {
        let t = Instant::now();
        let mut rows = Vec::new();
        for &b in &a.backlog_sizes {
            match backlog::run(bins, a.backlog_jobs, b).await {
                Ok(o) => {
                    eprintln!("backlog {b}: p99 {:.1} ms", o.seen.p99);
                    rows.push(o);
                }
                Err(e) => failed.push(format!("backlog {b}: {e:#}")),
            }
        }
        emit(
            &a.out,
            &(section("1b. Release into a standing backlog", t) + &report::backlog(&rows)),
        )?;
    }
    if want("memory") {
        let t = Instant::now();
        match memory::run(bins, &a.memory_sizes).await {
            Ok(m) => emit(
                &a.out,
                &(section("3. Leader memory", t) + &report::memory(&m)),
            )?,
            Err(e) => failed.push(format!("memory: {e:#}")),
        }
    }
    if want("consul") {
        let t = Instant::now();
        match consul_load::run(bins, &a.consul_sizes, Duration::from_secs(a.consul_window)).await {
            Ok(r) => emit(
                &a.out,
                &(section("4. Consul load at steady state", t) + &report::consul_load(&r)),
            )?,
            Err(e) => failed.push(format!("consul load: {e:#}")),
        }
    }
    if want("failover") {
        let t = Instant::now();
        match failover::run(bins, a.failover_rounds, a.failover_rounds, 1_000).await {
            Ok(f) => emit(&a.out, &(section("5. Failover", t) + &report::failover(&f)))?,
            Err(e) => failed.push(format!("failover: {e:#}")),
        }
    }
    if want("churn") {
        let t = Instant::now();
        match churn::run(bins, a.churn_jobs, a.churn_rate, a.churn_secs).await {
            Ok(c) => emit(&a.out, &(section("6. Churn", t) + &report::churn(&c)))?,
            Err(e) => failed.push(format!("churn: {e:#}")),
        }
    }
    if want("peer") {
        let t = Instant::now();
        match peer::run(bins, &a.venv, &a.celery_dir, &a.peer_sizes).await {
            Ok(r) => emit(
                &a.out,
                &(section("7. Beside Celery beat + RedBeat", t) + &report::peer(&r)),
            )?,
            Err(e) => failed.push(format!("peer: {e:#}")),
        }
    }
    if want("console") {
        let t = Instant::now();
        match console::run(bins, a.console_jobs).await {
            Ok(o) => emit(
                &a.out,
                &(section("8. The web console's first page", t) + &report::console(&o)),
            )?,
            Err(e) => failed.push(format!("console: {e:#}")),
        }
    }
    if !failed.is_empty() {
        let mut s = String::from("\n### Runs that failed\n\n");
        for f in &failed {
            let _ = writeln!(s, "- {f}");
        }
        emit(&a.out, &s)?;
        bail!("{} section(s) failed", failed.len());
    }
    Ok(())
}
