//! Scenario 7: beside a peer. Celery beat with the RedBeat scheduler and cronnode fire the same
//! N every-minute schedules (second 0 of every minute) into the same redis-server, one after
//! the other; the same consumer pops both and measures lateness as receipt minus the minute
//! (Celery's messages carry no slot, so both are measured from the consumer's side), and each
//! scheduler process's CPU time and memory over one whole minute holding one slot.
//!
//! The Celery side runs from a virtualenv that scripts/bench makes (celery, celery-redbeat);
//! its app and loader are tests/bench/celery/*.py.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cluster::{job_spec, Cluster};
use crate::consumer::{now_us, Consumer, Rec};
use crate::lateness::wait_until_s;
use crate::procs::{cpu_time, rss_kib, Bins, Proc};
use crate::stats::{summary, Summary};

/// Quiet time before the measured minute.
const LEAD_IN: i64 = 8;
/// The measured minute's end, seconds after its slot (CPU and arrivals are read then).
const WINDOW_END: i64 = 58;

/// One system at one size.
#[derive(Debug, Clone)]
pub struct Row {
    /// "cronnode" or "Celery beat + RedBeat".
    pub system: &'static str,
    /// Schedules.
    pub n: usize,
    /// Receipt − slot, ms.
    pub lateness: Summary,
    /// Fires of the measured slot that had not arrived by slot + 58 s.
    pub missing: usize,
    /// CPU seconds of the scheduler process over the measured minute.
    pub cpu_s: f64,
    /// Scheduler RSS at the end of the minute, KiB.
    pub rss: u64,
    /// Seconds to load the schedules.
    pub load_s: f64,
}

/// The next whole minute at least `LEAD_IN` seconds away.
fn next_minute() -> i64 {
    let t = now_us() / 1_000_000 + LEAD_IN;
    (t + 59) / 60 * 60
}

/// Measures one minute of `pid`'s scheduling: lateness of the slot `m` for `n` fires selected
/// by `pick`, CPU over [m − 4, m + 58] (cronnode stages its fires 2 s before their slot).
async fn minute(
    consumer: &Consumer,
    pid: u32,
    n: usize,
    m: i64,
    pick: impl Fn(&Rec) -> bool,
) -> Result<(Summary, usize, f64, u64)> {
    wait_until_s(m - 4).await;
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("the scheduler process {pid} died before its minute (see its log)");
    }
    let cpu0 = cpu_time(pid)?;
    wait_until_s(m + WINDOW_END).await;
    let cpu = (cpu_time(pid)? - cpu0).as_secs_f64();
    let rss = rss_kib(pid)?.0;
    let recs = consumer.select(pick);
    let lateness = summary(
        recs.iter()
            .map(|r| r.recv_us as f64 / 1000.0 - (m * 1000) as f64)
            .collect(),
    );
    let missing = n.saturating_sub(recs.len());
    Ok((lateness, missing, cpu, rss))
}

/// Runs both systems at each size.
pub async fn run(bins: &Bins, venv: &Path, celery_dir: &Path, sizes: &[usize]) -> Result<Vec<Row>> {
    let venv = venv
        .canonicalize()
        .with_context(|| format!("{}", venv.display()))?;
    let celery_dir = celery_dir
        .canonicalize()
        .with_context(|| format!("{}", celery_dir.display()))?;
    let (venv, celery_dir) = (venv.as_path(), celery_dir.as_path());
    let python = venv.join("bin/python");
    if !python.exists() {
        bail!("{} is missing (scripts/bench makes it)", python.display());
    }
    let mut rows = Vec::new();
    for &n in sizes {
        // cronnode.
        let mut cluster = Cluster::start(bins, 1).await?;
        let consumer = Consumer::start(&cluster.redis.url()).await?;
        let leader = cluster.wait_leader(Duration::from_secs(60)).await?;
        let t = std::time::Instant::now();
        cluster
            .put_jobs(
                (0..n)
                    .map(|i| job_spec(&format!("j{i:07}"), "* * * * *", "bench"))
                    .collect(),
            )
            .await?;
        cluster
            .wait_jobs(leader, n, Duration::from_secs(600))
            .await?;
        cluster.wait_idle(leader, Duration::from_secs(300)).await?;
        let load_s = t.elapsed().as_secs_f64();
        let m = next_minute();
        let pid = cluster.nodes[leader].running()?.pid();
        let (lateness, missing, cpu_s, rss) = minute(&consumer, pid, n, m, |r| {
            r.kind == "scheduled" && r.slot_ms == Some(m * 1000)
        })
        .await?;
        rows.push(Row {
            system: "cronnode",
            n,
            lateness,
            missing,
            cpu_s,
            rss,
            load_s,
        });
        eprintln!(
            "peer: cronnode {n}: p99 {:.1} ms, cpu {cpu_s:.2} s",
            lateness.p99
        );
        for node in &mut cluster.nodes {
            if let Some(mut p) = node.proc.take() {
                p.kill();
            }
        }
        drop(consumer);

        // Celery beat + RedBeat on the same Redis.
        let consumer = Consumer::start(&cluster.redis.url()).await?;
        let t = std::time::Instant::now();
        let st = Command::new(&python)
            .arg("load.py")
            .arg(n.to_string())
            .current_dir(celery_dir)
            .env("BENCH_REDIS", cluster.redis.url())
            .status()
            .context("loading the RedBeat schedules")?;
        if !st.success() {
            bail!("load.py failed");
        }
        let load_s = t.elapsed().as_secs_f64();
        let mut cmd = Command::new(venv.join("bin/celery"));
        cmd.args([
            "-A",
            "benchapp",
            "beat",
            "-S",
            "redbeat.RedBeatScheduler",
            "--loglevel",
            "WARNING",
        ])
        .current_dir(celery_dir)
        .env("BENCH_REDIS", cluster.redis.url());
        let beat = Proc::spawn(&format!("celery-beat-{n}"), cluster.path(), cmd)?;
        let m = next_minute();
        let (lateness, missing, cpu_s, rss) = minute(&consumer, beat.pid(), n, m, |r| {
            r.kind == "celery"
                && r.recv_us >= m * 1_000_000
                && r.recv_us < (m + WINDOW_END) * 1_000_000
        })
        .await?;
        rows.push(Row {
            system: "Celery beat + RedBeat",
            n,
            lateness,
            missing,
            cpu_s,
            rss,
            load_s,
        });
        eprintln!(
            "peer: celery {n}: p99 {:.1} ms, missing {missing}, cpu {cpu_s:.2} s",
            lateness.p99
        );
        drop(beat);
    }
    Ok(rows)
}
