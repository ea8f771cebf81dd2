//! # sim: a deterministic simulation of a whole cronnode cluster
//!
//! Several nodes, each running i13a's leader-term state machine (crates/leader-term) behind a
//! driver, an election with Consul's rules on consul-dev's own state module, a model of
//! redis-queue's scripts, one simulated clock and a seeded schedule of faults and operator
//! requests; at the end the chaos suite's checker (tests/checker) judges what reached the
//! queues. A seed is a whole run: the same seed replays bit for bit (`scripts/sim --seed N`).
//!
//! Nothing here is async, reads a clock or the OS, or iterates a hash map: time is a number of
//! microseconds, randomness comes from the seed, and events happen in the order of their
//! instant, then of their making.
//!
//! ## Layout
//!
//! - [`run`] (this file): one seed, from the first job to the verdict. Start reading here.
//! - [`world`]: the clock, the event queue, the network and each call's fate;
//! - [`node`]: a node: its election, its job watch, the machine and its driver;
//! - [`election`]: the client side of the election (consul-lock's rules, as a state machine);
//! - [`consul`]: the server side (consul-dev's state: sessions, TTLs, checks, lock-delay);
//! - [`redis_model`]: redis-queue's scripts, in memory (kept honest by redis-queue's
//!   differential test);
//! - [`api`]: operators and the nodes' HTTP API (job changes told to the leader, manual runs);
//! - [`workload`]: the jobs, the requests and the fault schedule a seed draws;
//! - [`faults`]: what each fault does; [`evidence`]: what the checker is given;
//! - [`rng`]: the seeded generator.
#![deny(missing_docs)]

pub mod api;
pub mod consul;
pub mod election;
pub mod evidence;
pub mod faults;
pub mod node;
pub mod redis_model;
pub mod rng;
pub mod workload;
#[allow(missing_docs)]
pub mod world;

use std::time::Duration;

use checker::Report;

use crate::workload::{Rates, Schedule};
use crate::world::{Ev, Heal, Micros, World, SEC};

/// What a run simulates.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Simulated time of a run.
    pub duration: Micros,
    /// The last part of the run, without faults or requests: every fault is lifted at its
    /// start, and slots owed up to then must have reached the queues by the end.
    pub settle: Micros,
    /// The session TTL (and the service check's).
    pub ttl: Micros,
    /// The session's lock-delay.
    pub lock_delay: Micros,
    /// How often things go wrong.
    pub rates: Rates,
    /// Whether clock-step faults strike (off: every node keeps the true clock; the rest of
    /// the seed's schedule is unchanged).
    pub clock_steps: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: 3,
            duration: 3600 * SEC,
            settle: 4 * 60 * SEC,
            ttl: 10 * SEC,
            lock_delay: SEC,
            rates: Rates::default(),
            clock_steps: true,
        }
    }
}

impl Config {
    /// The TTL as Consul takes it.
    pub fn ttl_duration(&self) -> Duration {
        Duration::from_micros(self.ttl)
    }

    /// The lock-delay as Consul takes it.
    pub fn lock_delay_duration(&self) -> Duration {
        Duration::from_micros(self.lock_delay)
    }
}

/// What one seed came to.
#[derive(Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The checker's verdict.
    pub report: Report,
    /// The faults and requests the seed drew.
    pub schedule: Schedule,
    /// Counters.
    pub stats: world::Stats,
    /// The digest of what reached the queues (equal on every replay of the seed).
    pub digest: u64,
}

impl Outcome {
    /// Whether the cluster kept every promise.
    pub fn passed(&self) -> bool {
        self.report.passed()
    }
}

/// Runs one seed.
pub fn run(seed: u64, cfg: Config) -> Outcome {
    run_traced(seed, cfg, None)
}

/// Runs one seed, printing what happens to `trace` (a job id, or `*`) as it happens.
pub fn run_traced(seed: u64, cfg: Config, trace: Option<String>) -> Outcome {
    let mut w = World::new(cfg, seed);
    w.trace = trace;
    let mut rng = w.rng.fork();
    api::create_static_jobs(&mut w);
    for n in 0..cfg.nodes {
        let at = rng.range(0, 3 * SEC);
        w.at(at, Ev::Heal(Heal::Restart(n)));
    }
    let heal_at = cfg.duration.saturating_sub(cfg.settle);
    let schedule = workload::draw(&mut rng, &cfg.rates, cfg.nodes, 30 * SEC, heal_at);
    for (t, f) in &schedule.faults {
        w.at(*t, Ev::Fault(*f));
    }
    for (t, node, slot, req) in &schedule.requests {
        w.at(
            *t,
            Ev::Request {
                node: *node,
                slot: *slot,
                req: *req,
            },
        );
    }
    w.at(heal_at, Ev::Heal(Heal::All));
    w.run_until(cfg.duration);
    let digest = evidence::digest(&w);
    let evidence = evidence::collect(&mut w, heal_at);
    let report = checker::check(&evidence);
    Outcome {
        seed,
        report,
        schedule,
        stats: w.stats,
        digest,
    }
}
