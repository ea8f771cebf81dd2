//! Scenario 5: failover, graceful (SIGTERM to the leader) and crash (SIGKILL).
//!
//! Two nodes, a probe job firing every second and a background of every-minute jobs. A round:
//! note the leader's token from its latest probe task, signal the leader, and time until
//! (a) the other node's metrics say it leads, (b) the first task carrying a newer token is
//! enqueued (its `created_at`): that is the failover time reported. The stopped node is
//! restarted as a follower before the next round. At the end every probe slot of the whole run
//! must be in the queue exactly once (catch-up fills the gap; nothing is doubled).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cluster::{job_spec, Cluster};
use crate::consumer::{now_us, Consumer, Rec};
use crate::procs::Bins;

/// The probe job's id.
const PROBE: &str = "probe";
/// Longest wait for a successor's first task.
const MAX_WAIT: Duration = Duration::from_secs(90);

/// How the leader is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SIGTERM: resign (release, destroy the session), then exit.
    Graceful,
    /// SIGKILL: the session dies by its check's TTL.
    Crash,
}

/// One round's figures (ms from the signal).
#[derive(Debug, Clone)]
pub struct Round {
    /// How.
    pub kind: Kind,
    /// Until the successor's metrics said it leads.
    pub lock_ms: f64,
    /// Until the successor's first enqueue (up to a second later than its start when no
    /// probe slot was missed: it waits for the next slot).
    pub enqueue_ms: f64,
    /// The worst lateness (created_at − slot) of a probe slot the successor enqueued in its
    /// first seconds: what a job saw of the failover.
    pub worst_slot_ms: f64,
}

impl Round {
    /// The figure judged against the goal: the later of the successor leading and the worst
    /// slot it had to catch up.
    pub fn judged_ms(&self) -> f64 {
        self.lock_ms.max(self.worst_slot_ms)
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Rounds in order.
    pub rounds: Vec<Round>,
    /// Probe slots over the run, missing ones, doubled ones.
    pub probe_slots: usize,
    /// Probe slots never enqueued.
    pub missing: usize,
    /// Probe slots enqueued more than once.
    pub doubled: usize,
}

/// Runs `graceful` graceful rounds, then `crash` crash rounds, with `background` other jobs.
pub async fn run(bins: &Bins, graceful: usize, crash: usize, background: usize) -> Result<Outcome> {
    let mut cluster = Cluster::start(bins, 2).await?;
    let consumer = Consumer::start(&cluster.redis.url()).await?;
    let first = cluster.wait_leader(Duration::from_secs(60)).await?;
    let mut specs = vec![job_spec(PROBE, "* * * * * *", "probe")];
    specs.extend((0..background).map(|i| {
        job_spec(
            &format!("j{i:07}"),
            &format!("{} * * * * *", i % 60),
            "bench",
        )
    }));
    let n = specs.len();
    cluster.put_jobs(specs).await?;
    cluster
        .wait_jobs(first, n, Duration::from_secs(300))
        .await?;
    cluster.wait_idle(first, Duration::from_secs(300)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start_ms = now_us() / 1000;

    let mut rounds = Vec::new();
    let plan = std::iter::repeat_n(Kind::Graceful, graceful)
        .chain(std::iter::repeat_n(Kind::Crash, crash));
    for kind in plan {
        let leader = cluster.wait_leader(Duration::from_secs(60)).await?;
        let other = 1 - leader;
        // The leader's token, from a probe task it enqueued in the last 3 seconds.
        let since = now_us() / 1000 - 500;
        if !consumer
            .wait_until(Duration::from_secs(10), |v| {
                v.iter().any(|r| r.job == PROBE && r.queued_ms() >= since)
            })
            .await
        {
            bail!(
                "the leader enqueues no probe task (logs in {})",
                cluster.path().display()
            );
        }
        let token = consumer
            .select(|r| r.job == PROBE)
            .iter()
            .map(|r| r.token)
            .max()
            .unwrap_or(0);

        let t0_us = now_us();
        match kind {
            Kind::Graceful => cluster.nodes[leader].running()?.term()?,
            Kind::Crash => {
                if let Some(mut p) = cluster.nodes[leader].proc.take() {
                    p.kill();
                }
            }
        }
        let t0 = t0_us as f64 / 1000.0;
        let mut lock_ms = f64::NAN;
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        let mut first_new: Option<i64> = None;
        while tokio::time::Instant::now() < deadline {
            if lock_ms.is_nan()
                && cluster
                    .metric(other, "cronnode_is_leader")
                    .await
                    .unwrap_or(0.0)
                    == 1.0
            {
                lock_ms = now_us() as f64 / 1000.0 - t0;
            }
            first_new = consumer
                .select(|r| r.token > token)
                .iter()
                .map(Rec::queued_ms)
                .min();
            if first_new.is_some() && !lock_ms.is_nan() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Some(first_new) = first_new else {
            bail!("{kind:?} failover: no task with a token above {token} within {MAX_WAIT:?} (logs in {})", cluster.path().display());
        };
        // The successor's catch-up and its first slots are in the queue a moment later.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let worst_slot_ms = consumer
            .select(|r| {
                r.job == PROBE
                    && r.token > token
                    && r.slot_ms.is_some_and(|s| s <= first_new + 1000)
            })
            .iter()
            .filter_map(|r| Some((r.queued_ms() - r.slot_ms?) as f64))
            .fold(0.0, f64::max);
        let round = Round {
            kind,
            lock_ms,
            enqueue_ms: first_new as f64 - t0,
            worst_slot_ms,
        };
        eprintln!(
            "failover {kind:?}: leads after {:.0} ms, first enqueue {:.0} ms, worst slot {:.0} ms late",
            round.lock_ms, round.enqueue_ms, round.worst_slot_ms
        );
        rounds.push(round);

        // Bring the old leader back as a follower.
        if let Some(p) = cluster.nodes[leader].proc.as_mut() {
            if !p.wait_exit(Duration::from_secs(30)) {
                bail!("node {leader} did not exit within 30 s of SIGTERM");
            }
        }
        cluster.nodes[leader].proc = None;
        cluster.nodes[leader].start().await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Every probe slot of the run, exactly once.
    let end_ms = now_us() / 1000 - 2000;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut slots: BTreeMap<i64, usize> = BTreeMap::new();
    for r in consumer.select(|r| r.job == PROBE) {
        if let Some(s) = r.slot_ms {
            *slots.entry(s).or_default() += 1;
        }
    }
    let first_slot = (start_ms / 1000 + 1) * 1000;
    let mut missing = 0;
    let mut doubled = 0;
    let mut total = 0;
    let mut s = first_slot;
    while s < end_ms {
        total += 1;
        match slots.get(&s).copied().unwrap_or(0) {
            0 => missing += 1,
            1 => {}
            _ => doubled += 1,
        }
        s += 1000;
    }
    Ok(Outcome {
        rounds,
        probe_slots: total,
        missing,
        doubled,
    })
}
