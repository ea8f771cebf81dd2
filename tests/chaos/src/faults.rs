//! The faults, injected one at a time, each returning what the checker needs to measure it
//! (when it started, when it was lifted, what the harness saw): the seven of every run, and,
//! against the harness's own three-server Consul, five of the servers ([`SERVER_FAULTS`]).
//!
//! Each fault waits for the cluster to be whole again before it returns (a leader that is one
//! of the run's running nodes); the caller then leaves the recovery time. A fault must never
//! touch a process or a session that is not the run's own.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;

use crate::checker::{FaultRecord, JobUnderTest};
use crate::cluster::{job_spec, wait_redis, Cluster, ConsulSide};
use crate::servers::Servers;
use crate::Timings;

/// How long a new leader may take after a fault: 2×TTL + lock-delay, plus room for a loaded
/// 2-core machine.
fn failover_limit(t: &Timings) -> Duration {
    t.session_ttl * 2 + t.lock_delay + Duration::from_secs(30)
}

/// How long the harness watches a woken leader before reading its metrics.
const WAKE_OBSERVATION: Duration = Duration::from_secs(3);

/// The faults, in the order the issue lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the leader, then restart it; while nobody leads, a job is added through a
    /// follower's API.
    KillLeader,
    /// SIGSTOP of the leader for longer than 2×TTL, then SIGCONT.
    PauseLeader,
    /// SIGTERM of the leader (graceful), then restart it.
    TermLeader,
    /// Consul unreachable for a while (the dev agent refuses connections).
    ConsulOutage,
    /// The leader's session destroyed by hand, as the Consul UI's Invalidate button does.
    InvalidateSession,
    /// redis-server killed (-9) and restarted on the same port and data.
    RedisRestart,
    /// Every node restarted, one at a time.
    RollingRestart,
    /// The Raft leader among the Consul servers frozen (SIGSTOP), then continued.
    FreezeRaftLeader,
    /// The cronnode leader's own Consul server frozen while it is the Raft leader (the harness
    /// first hands the lock to the node of the Raft leader's server if needed).
    FreezeLeadersRaftServer,
    /// The Raft leader killed (-9), restarted later.
    KillRaftLeader,
    /// The cronnode leader's own Consul server killed (-9), restarted later.
    KillLeadersServer,
    /// Two of the three servers killed (no quorum), restarted later.
    QuorumLost,
}

/// All seven, in order.
pub const ALL: [Fault; 7] = [
    Fault::KillLeader,
    Fault::PauseLeader,
    Fault::TermLeader,
    Fault::ConsulOutage,
    Fault::InvalidateSession,
    Fault::RedisRestart,
    Fault::RollingRestart,
];

/// The faults of the Consul servers, run after the seven against the harness's own cluster.
pub const SERVER_FAULTS: [Fault; 5] = [
    Fault::FreezeRaftLeader,
    Fault::FreezeLeadersRaftServer,
    Fault::KillRaftLeader,
    Fault::KillLeadersServer,
    Fault::QuorumLost,
];

/// What injecting a fault came to.
pub enum Injected {
    /// Injected and recovered from.
    Done(FaultRecord),
    /// Not possible in this setting, with the reason.
    Skipped(String),
}

impl Fault {
    /// The fault's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill -9 leader",
            Fault::PauseLeader => "SIGSTOP leader > 2xTTL",
            Fault::TermLeader => "SIGTERM leader",
            Fault::ConsulOutage => "Consul unreachable",
            Fault::InvalidateSession => "leader session invalidated",
            Fault::RedisRestart => "redis-server kill -9 + restart",
            Fault::RollingRestart => "rolling restart",
            Fault::FreezeRaftLeader => "Raft leader frozen",
            Fault::FreezeLeadersRaftServer => "leader's server (Raft leader) frozen",
            Fault::KillRaftLeader => "Raft leader kill -9",
            Fault::KillLeadersServer => "leader's server kill -9",
            Fault::QuorumLost => "quorum lost (2 of 3 servers)",
        }
    }

    /// Injects the fault and waits until the cluster has a leader again. Jobs the fault
    /// registers along the way (see [`Fault::KillLeader`]) are added to `jobs`.
    pub async fn inject(
        self,
        c: &mut Cluster,
        t: &Timings,
        jobs: &mut Vec<JobUnderTest>,
    ) -> Result<Injected> {
        if matches!(self, Fault::FreezeLeadersRaftServer) {
            lock_to_raft_leaders_node(c, t).await?;
        }
        let leader = c.wait_leader(failover_limit(t)).await?;
        let li = c.node_index(&leader.node)?;
        let mut started = Utc::now();
        let (lifted, note) = match self {
            Fault::KillLeader => {
                c.nodes[li].proc.kill9().await?;
                // While nobody leads, an operator adds a job through a follower: its slots
                // from its creation on belong to whoever leads next.
                let id = format!("chaos-born-leaderless-{}", started.timestamp());
                let spec = job_spec(&id, "*/2 * * * * *", t.catchup_window);
                let via = (li + 1) % c.nodes.len();
                let born = c.create_job(via, &spec).await?;
                jobs.push(born);
                let next = c.wait_leader_not(&leader.node, failover_limit(t)).await?;
                c.start_node(li).await?;
                (
                    started,
                    format!("{} killed, {id} added meanwhile, {} took over", leader.node, next.node),
                )
            }
            Fault::PauseLeader => {
                c.nodes[li].proc.signal("STOP")?;
                let next = c.wait_leader_not(&leader.node, failover_limit(t)).await;
                let paused_for = t.pause.saturating_sub(elapsed(started));
                tokio::time::sleep(paused_for).await;
                c.nodes[li].proc.signal("CONT")?;
                let lifted = Utc::now();
                let next = next.context("no successor while the leader was paused")?;
                // Evidence, not the verdict (the checker reads the queues): did the woken
                // leader try to push and meet the fence, or notice its loss first?
                tokio::time::sleep(WAKE_OBSERVATION).await;
                let fenced = c.fires_counted(li, "fenced").await.map_or_else(
                    || "its metrics did not answer".to_string(),
                    |n| format!("{n} of its fires refused by the fence after waking"),
                );
                (
                    lifted,
                    format!(
                        "{} paused {:.0} s, {} took over; {fenced}",
                        leader.node,
                        secs_between(started, lifted),
                        next.node
                    ),
                )
            }
            Fault::TermLeader => {
                let clean = c.nodes[li].proc.stop().await?;
                let next = c.wait_leader_not(&leader.node, failover_limit(t)).await?;
                c.start_node(li).await?;
                let how = if clean { "exited" } else { "had to be killed after the grace period" };
                (started, format!("{} {how}, {} took over", leader.node, next.node))
            }
            Fault::ConsulOutage => match &mut c.consul {
                ConsulSide::Dev(_) => {
                    let secs = t.consul_outage.as_secs();
                    let url = format!("{}/_dev/fault/refuse?duration={secs}s", c.consul_url);
                    c.http.put(&url).await?.ok()?;
                    tokio::time::sleep(t.consul_outage).await;
                    let lifted = Utc::now();
                    let next = c.wait_leader(failover_limit(t)).await?;
                    (lifted, format!("refused {secs} s, then {} leads", next.node))
                }
                ConsulSide::Servers(servers) => {
                    // Every server frozen: each node's agent stops answering.
                    for i in 0..servers.servers.len() {
                        servers.freeze(i)?;
                    }
                    tokio::time::sleep(t.consul_outage).await;
                    for i in 0..servers.servers.len() {
                        servers.thaw(i)?;
                    }
                    let lifted = Utc::now();
                    let next = c.wait_leader(failover_limit(t) * 2).await?;
                    let secs = t.consul_outage.as_secs();
                    (lifted, format!("every server frozen {secs} s, then {} leads", next.node))
                }
                ConsulSide::External => match external_outage_commands() {
                    Some((stop, start)) => {
                        run_shell(&stop).await?;
                        tokio::time::sleep(t.consul_outage).await;
                        run_shell(&start).await?;
                        let lifted = Utc::now();
                        let next = c.wait_leader(failover_limit(t) * 2).await?;
                        (lifted, format!("`{stop}` then `{start}`, then {} leads", next.node))
                    }
                    None => {
                        return Ok(Injected::Skipped(format!(
                            "{}: an external agent is not the harness's to break; set {STOP_ENV} and {START_ENV} to commands that stop and start it",
                            self.name()
                        )))
                    }
                },
            },
            Fault::InvalidateSession => {
                let url = format!("{}/v1/session/destroy/{}", c.api_url(), leader.session);
                c.http.put(&url).await?.ok()?;
                let next = c
                    .wait_leader_where("with a new session", failover_limit(t), |l| {
                        l.session != leader.session
                    })
                    .await?;
                (
                    started,
                    format!("session of {} destroyed, {} leads", leader.node, next.node),
                )
            }
            Fault::RedisRestart => {
                // SIGKILL: no shutdown, no final fsync; the append-only file is all there is.
                tokio::task::block_in_place(|| c.redis.kill());
                tokio::time::sleep(t.redis_down).await;
                tokio::task::block_in_place(|| c.redis.restart())?;
                wait_redis(&c.redis_url).await?;
                let lifted = Utc::now();
                (
                    lifted,
                    format!("down {:.0} s, {} led", secs_between(started, lifted), leader.node),
                )
            }
            Fault::RollingRestart => {
                let mut order = Vec::new();
                let mut leader_hit = None;
                for i in 0..c.nodes.len() {
                    // Failover is measured from the first stop of the node leading then,
                    // not from the restarts of followers before it.
                    let leads = c.leader().await.ok().flatten();
                    if leader_hit.is_none() && leads.is_some_and(|l| l.node == c.nodes[i].name) {
                        started = Utc::now();
                        leader_hit = Some(c.nodes[i].name.clone());
                    }
                    let clean = c.nodes[i].proc.stop().await?;
                    if !clean {
                        bail!("{} did not stop within the grace period", c.nodes[i].name);
                    }
                    c.start_node(i).await?;
                    c.wait_leader(failover_limit(t)).await?;
                    order.push(c.nodes[i].name.clone());
                    tokio::time::sleep(t.rolling_gap).await;
                }
                let lifted = Utc::now();
                let next = c.wait_leader(failover_limit(t)).await?;
                let hit = leader_hit.map_or_else(
                    || "the leader was never among them".to_string(),
                    |n| format!("measured from stopping {n}"),
                );
                (
                    lifted,
                    format!("{} restarted in turn, {hit}, {} leads", order.join(", "), next.node),
                )
            }
            Fault::FreezeRaftLeader
            | Fault::FreezeLeadersRaftServer
            | Fault::KillRaftLeader
            | Fault::KillLeadersServer
            | Fault::QuorumLost => {
                let raft = raft_leader(c).await?;
                let (lifted, note) = self.break_servers(c, t, li, raft).await?;
                (lifted, format!("cronnode leader {} on s{}; {note}", leader.node, li + 1))
            }
        };
        c.wait_leader(failover_limit(t) * 2).await?;
        Ok(Injected::Done(FaultRecord {
            name: self.name().to_string(),
            started,
            lifted,
            note,
        }))
    }
}

impl Fault {
    /// The server faults: `leader` is the cronnode leader's node (and server) index, `raft`
    /// the Raft leader's server. Returns when the fault was lifted, and what was done.
    async fn break_servers(
        self,
        c: &mut Cluster,
        t: &Timings,
        leader: usize,
        raft: usize,
    ) -> Result<(chrono::DateTime<Utc>, String)> {
        let leader_node = c.nodes[leader].name.clone();
        match self {
            Fault::FreezeRaftLeader | Fault::FreezeLeadersRaftServer => {
                if self == Fault::FreezeLeadersRaftServer && raft != leader {
                    bail!(
                        "the cronnode leader is on s{}, the Raft leader is s{}",
                        leader + 1,
                        raft + 1
                    );
                }
                servers_of(c)?.freeze(raft)?;
                let frozen_at = tokio::time::Instant::now();
                // Whether the cronnode leader changes is the point: on the frozen server it
                // must; elsewhere it need not.
                let next = if raft == leader {
                    Some(successor(c, t, &leader_node).await?)
                } else {
                    None
                };
                tokio::time::sleep(t.consul_outage.saturating_sub(frozen_at.elapsed())).await;
                servers_of(c)?.thaw(raft)?;
                let lifted = Utc::now();
                let what = match next {
                    Some((node, after)) => {
                        format!("{node} led {:.1} s into the freeze", after.as_secs_f64())
                    }
                    None => "the cronnode leader was on another server".to_string(),
                };
                let secs = t.consul_outage.as_secs();
                Ok((
                    lifted,
                    format!("Raft leader s{} frozen {secs} s; {what}", raft + 1),
                ))
            }
            Fault::KillRaftLeader | Fault::KillLeadersServer => {
                let victim = if self == Fault::KillRaftLeader {
                    raft
                } else {
                    leader
                };
                servers_of(c)?.kill(victim).await?;
                let next = if victim == leader {
                    Some(successor(c, t, &leader_node).await?)
                } else {
                    None
                };
                tokio::time::sleep(t.server_down).await;
                servers_of(c)?.restart(victim)?;
                let lifted = Utc::now();
                let what = match next {
                    Some((node, after)) => format!("{node} led {:.1} s after", after.as_secs_f64()),
                    None => "the cronnode leader was on another server".to_string(),
                };
                let role = if victim == raft {
                    "the Raft leader"
                } else {
                    "a follower"
                };
                Ok((
                    lifted,
                    format!(
                        "s{} ({role}) killed, restarted {} s later; {what}",
                        victim + 1,
                        t.server_down.as_secs()
                    ),
                ))
            }
            Fault::QuorumLost => {
                let victims: Vec<usize> = (0..NODE_COUNT).filter(|&i| i != leader).collect();
                for &v in &victims {
                    servers_of(c)?.kill(v).await?;
                }
                tokio::time::sleep(t.consul_outage).await;
                for &v in &victims {
                    servers_of(c)?.restart(v)?;
                }
                let lifted = Utc::now();
                let names: Vec<String> = victims.iter().map(|v| format!("s{}", v + 1)).collect();
                Ok((
                    lifted,
                    format!(
                        "{} killed for {} s",
                        names.join(" and "),
                        t.consul_outage.as_secs()
                    ),
                ))
            }
            _ => bail!("{} is not a server fault", self.name()),
        }
    }
}

/// Waits for a node other than `not` to lead; returns it and how long that took.
async fn successor(c: &mut Cluster, t: &Timings, not: &str) -> Result<(String, Duration)> {
    let waited = tokio::time::Instant::now();
    let next = c.wait_leader_not(not, failover_limit(t) * 2).await?;
    Ok((next.node, waited.elapsed()))
}

/// The number of nodes (and of servers).
const NODE_COUNT: usize = crate::cluster::NODES.len();

/// The index of the server that leads Raft.
async fn raft_leader(c: &Cluster) -> Result<usize> {
    match &c.consul {
        ConsulSide::Servers(s) => s
            .raft_leader(&c.http)
            .await?
            .context("no Raft leader among the servers"),
        _ => bail!("server faults need the harness's own Consul servers (CHAOS_CONSUL_BIN)"),
    }
}

fn servers_of(c: &mut Cluster) -> Result<&mut Servers> {
    match &mut c.consul {
        ConsulSide::Servers(s) => Ok(s),
        _ => bail!("server faults need the harness's own Consul servers (CHAOS_CONSUL_BIN)"),
    }
}

/// Makes the node whose server leads Raft hold the lock: when another node leads, its
/// followers other than that one are paused (SIGSTOP), the leader stopped gracefully so the
/// lock is handed over, then everything resumes and restarts. Only signals to the run's own
/// processes.
async fn lock_to_raft_leaders_node(c: &mut Cluster, t: &Timings) -> Result<()> {
    let raft = raft_leader(c).await?;
    let leader = c.wait_leader(failover_limit(t)).await?;
    let li = c.node_index(&leader.node)?;
    if li == raft {
        return Ok(());
    }
    let others: Vec<usize> = (0..NODE_COUNT).filter(|&i| i != li && i != raft).collect();
    for &o in &others {
        c.nodes[o].proc.signal("STOP")?;
    }
    let handed = async {
        c.nodes[li].proc.stop().await?;
        let want = c.nodes[raft].name.clone();
        c.wait_leader_where(&format!("on {want}"), failover_limit(t), |l| l.node == want)
            .await
    }
    .await;
    for &o in &others {
        c.nodes[o].proc.signal("CONT")?;
    }
    c.start_node(li).await?;
    handed?;
    // The new term pushes before the fault starts, so that the fault's failover is measured
    // from the freeze, not from this hand-over.
    tokio::time::sleep(t.recovery).await;
    Ok(())
}

/// Stops an external Consul agent for the outage fault (run with `sh -c`).
pub const STOP_ENV: &str = "CHAOS_CONSUL_STOP";
/// Starts it again.
pub const START_ENV: &str = "CHAOS_CONSUL_START";

fn external_outage_commands() -> Option<(String, String)> {
    let stop = std::env::var(STOP_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())?;
    let start = std::env::var(START_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())?;
    Some((stop, start))
}

async fn run_shell(command: &str) -> Result<()> {
    let status = tokio::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .await
        .with_context(|| format!("cannot run `{command}`"))?;
    if !status.success() {
        bail!("`{command}` failed: {status}");
    }
    Ok(())
}

fn elapsed(since: chrono::DateTime<Utc>) -> Duration {
    (Utc::now() - since).to_std().unwrap_or_default()
}

fn secs_between(a: chrono::DateTime<Utc>, b: chrono::DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}
