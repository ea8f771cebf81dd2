//! What a seed makes happen: the jobs, the operators' API requests and the fault schedule, all
//! drawn up front from the seed (so a failing seed prints its schedule), at any instant.
//!
//! Must not look at the cluster's state: the schedule is blind, as real faults are. (Which
//! node is "the leader" for a fault aimed at it is decided when the fault strikes.)

use chrono::TimeDelta;

use crate::rng::Rng;
use crate::world::{Micros, MS, SEC};

/// A job of the run at its start: id, schedule, priority.
pub const STATIC_JOBS: [(&str, &str, u8); 5] = [
    ("every-second", "* * * * * *", 0),
    ("every-3s", "*/3 * * * * *", 1),
    ("odd-seconds", "1-59/2 * * * * *", 0),
    ("every-7s", "@every 7s", 2),
    ("minutely", "0 * * * * *", 1),
];
/// Schedules the churned jobs move between.
pub const CHURN_SCHEDULES: [&str; 5] = [
    "*/2 * * * * *",
    "*/5 * * * * *",
    "@every 3s",
    "10-50/4 * * * * *",
    "* * * * * *",
];
/// Jobs that are paused, changed, deleted, re-created and run by hand during the run.
pub const CHURN_JOBS: usize = 3;

/// What an operator asks a node's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `POST /v1/cronjobs/{id}/pause`.
    Pause,
    /// `POST /v1/cronjobs/{id}/resume`.
    Resume,
    /// `PUT /v1/cronjobs/{id}`: a new body, and maybe the schedule at this index.
    Replace {
        /// `Some(i)`: `CHURN_SCHEDULES[i]`.
        schedule: Option<usize>,
    },
    /// `DELETE /v1/cronjobs/{id}`.
    Delete,
    /// `POST /v1/cronjobs` (the churn slot gets a new job, under a new id, if it has none).
    Create {
        /// `CHURN_SCHEDULES[i]`.
        schedule: usize,
    },
    /// `POST /v1/cronjobs/{id}/run`.
    Run,
}

/// A fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9, restarted after `down`.
    Crash {
        /// Which node (`None`: the leader when it strikes).
        node: Option<usize>,
        /// How long it stays dead.
        down: Micros,
    },
    /// SIGTERM (resign), restarted after `down`.
    Stop {
        /// Which node (`None`: the leader).
        node: Option<usize>,
        /// How long it stays stopped.
        down: Micros,
    },
    /// SIGSTOP for `paused`, then SIGCONT.
    Pause {
        /// Which node (`None`: the leader).
        node: Option<usize>,
        /// How long.
        paused: Micros,
    },
    /// redis-server down for `down` (nothing lost: appendfsync always).
    RedisDown {
        /// How long.
        down: Micros,
    },
    /// No node reaches Consul for `down` (its servers keep their clocks).
    ConsulOutage {
        /// How long.
        down: Micros,
    },
    /// One node cannot reach Consul for `down`.
    ConsulPartition {
        /// Which node (`None`: the leader).
        node: Option<usize>,
        /// How long.
        down: Micros,
    },
    /// An operator invalidates the leader's session (the Consul UI's Invalidate).
    Invalidate,
    /// One node's wall clock jumps by `by`.
    ClockStep {
        /// Which node (`None`: the leader).
        node: Option<usize>,
        /// The step.
        by: TimeDelta,
    },
}

impl Fault {
    /// A short name for counts.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::Stop { .. } => "graceful stop",
            Fault::Pause { .. } => "pause",
            Fault::RedisDown { .. } => "redis down",
            Fault::ConsulOutage { .. } => "consul outage",
            Fault::ConsulPartition { .. } => "consul partition",
            Fault::Invalidate => "session invalidated",
            Fault::ClockStep { .. } => "clock step",
        }
    }
}

/// How often things happen.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Mean time between faults.
    pub fault_every: Micros,
    /// Mean time between API requests.
    pub request_every: Micros,
    /// Per call: its request lost (nothing applied; the client times out).
    pub lost_request: f64,
    /// Per call: its answer lost (applied; the client times out).
    pub lost_answer: f64,
    /// Per call: its answer late (0.2 to 8 s).
    pub late_answer: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            fault_every: 90 * SEC,
            request_every: 25 * SEC,
            lost_request: 0.003,
            lost_answer: 0.003,
            late_answer: 0.01,
        }
    }
}

/// The schedule of a run: (instant, what), in order.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Faults.
    pub faults: Vec<(Micros, Fault)>,
    /// API requests: (instant, entry node, churn job slot, request).
    pub requests: Vec<(Micros, usize, usize, Request)>,
}

/// Exponentially spread gaps of mean `mean`.
fn gap(rng: &mut Rng, mean: Micros) -> Micros {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((-(1.0 - u).ln()) * mean as f64) as Micros + MS
}

fn node(rng: &mut Rng, nodes: usize) -> Option<usize> {
    // Most faults aim at the leader: that is where they hurt.
    (!rng.chance(0.6)).then(|| rng.index(nodes))
}

/// Draws the schedule of faults and requests between `from` and `until`.
pub fn draw(rng: &mut Rng, rates: &Rates, nodes: usize, from: Micros, until: Micros) -> Schedule {
    let mut s = Schedule::default();
    let mut t = from + gap(rng, rates.fault_every);
    while t < until {
        let secs = |rng: &mut Rng, lo: u64, hi: u64| rng.range(lo * 1000, hi * 1000) * MS;
        let fault = match rng.range(0, 100) {
            0..=19 => Fault::Crash {
                node: node(rng, nodes),
                down: secs(rng, 1, 90),
            },
            20..=29 => Fault::Stop {
                node: node(rng, nodes),
                down: secs(rng, 1, 30),
            },
            30..=49 => Fault::Pause {
                node: node(rng, nodes),
                paused: secs(rng, 1, 45),
            },
            50..=61 => Fault::RedisDown {
                down: secs(rng, 1, 30),
            },
            62..=69 => Fault::ConsulOutage {
                down: secs(rng, 2, 45),
            },
            70..=79 => Fault::ConsulPartition {
                node: node(rng, nodes),
                down: secs(rng, 2, 45),
            },
            80..=89 => Fault::Invalidate,
            _ => {
                let ms = rng.range(100, 45_000) as i64;
                let by = if rng.chance(0.5) { ms } else { -ms };
                Fault::ClockStep {
                    node: node(rng, nodes),
                    by: TimeDelta::milliseconds(by),
                }
            }
        };
        s.faults.push((t, fault));
        t += gap(rng, rates.fault_every);
    }
    let mut t = from + gap(rng, rates.request_every);
    while t < until {
        let req = match rng.range(0, 100) {
            0..=19 => Request::Pause,
            20..=39 => Request::Resume,
            40..=59 => Request::Replace {
                schedule: rng.chance(0.5).then(|| rng.index(CHURN_SCHEDULES.len())),
            },
            60..=69 => Request::Delete,
            70..=79 => Request::Create {
                schedule: rng.index(CHURN_SCHEDULES.len()),
            },
            _ => Request::Run,
        };
        s.requests
            .push((t, rng.index(nodes), rng.index(CHURN_JOBS), req));
        t += gap(rng, rates.request_every);
    }
    s
}
