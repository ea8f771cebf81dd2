//! The simulated world: one clock, one queue of events, the network between the nodes and the
//! two servers, and the seeded fates of every call.
//!
//! Owns time (`Micros` since the run's start; every event gets an instant of its own, at least
//! a microsecond after the one before, so "before" and "after" are never a tie), the event
//! queue (ordered by instant, then by the order events were made: no hash order anywhere), and
//! each call's fate: answered after a latency, its request lost, its answer lost, or its answer
//! late. A paused node's events wait and are handled, in a seeded shuffled order, when it
//! resumes; a crashed node's are dropped. Must not decide what a node does (node.rs, the
//! machine), what an operator does (api.rs), or what fails when (workload.rs, faults.rs).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use cron_core::Job;
use leader_term::{Action, Command, Outcome, Reply};

use crate::consul::Consul;
use crate::election::{Purpose, Rep, Req};
use crate::node::Node;
use crate::redis_model::RedisModel;
use crate::rng::Rng;
use crate::workload::{Fault, Rates, Request};
use crate::Config;

/// Simulated time: microseconds since the run's start.
pub type Micros = u64;
/// A millisecond.
pub const MS: Micros = 1_000;
/// A second.
pub const SEC: Micros = 1_000_000;

/// How long a client waits for Redis before giving up (`redis_queue::queue::RESPONSE_TIMEOUT`).
pub const REDIS_TIMEOUT: Micros = 30 * SEC;
/// How long a client waits for Consul (`consul_lock::http::REQUEST_TIMEOUT`).
pub const CONSUL_TIMEOUT: Micros = 10 * SEC;

/// A call's fate, drawn when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Answered; the answer takes this long to come back.
    Answered(Micros),
    /// The request never arrives.
    LostRequest,
    /// Applied, but the answer never comes back.
    LostAnswer,
}

/// Something that happens at an instant.
#[derive(Debug)]
pub enum Ev {
    /// A node's timers (election and machine); only the wake-up at the node's `wake_at` counts
    /// (an earlier one, superseded, is dropped).
    Wake { node: usize, inc: u64, at: Micros },
    /// A Consul call reaches the server.
    ConsulCall {
        node: usize,
        inc: u64,
        purpose: Purpose,
        epoch: u64,
        req: Req,
        sent: Micros,
        fate: Fate,
    },
    /// A Consul answer reaches its node.
    ConsulAnswer {
        node: usize,
        inc: u64,
        purpose: Purpose,
        epoch: u64,
        rep: Rep,
        sent: Micros,
    },
    /// A blocking read's wait ran out.
    BlockTimeout { watcher: u64 },
    /// The server's timers (session TTLs, check TTLs).
    ServerTimers,
    /// A Redis call reaches the server (or the machine's read of the job store, Consul).
    RedisCall {
        node: usize,
        inc: u64,
        action: Action,
        fate: Fate,
    },
    /// A Redis answer reaches its node.
    RedisAnswer {
        node: usize,
        inc: u64,
        outcome: Outcome,
    },
    /// An API node's command reaches the leader's loop.
    Command {
        node: usize,
        inc: u64,
        api: u64,
        cmd: Command,
    },
    /// The leader's reply reaches the API node.
    CommandAnswer { api: u64, reply: Reply },
    /// An API node gives up waiting for the leader.
    ApiTimeout { api: u64 },
    /// A node's job watch delivers what changed.
    Watch { node: usize, inc: u64 },
    /// An operator's request reaches a node's API.
    Request {
        node: usize,
        slot: usize,
        req: Request,
    },
    /// A fault strikes.
    Fault(Fault),
    /// A fault is lifted.
    Heal(Heal),
}

/// What lifting a fault does.
#[derive(Debug, Clone, Copy)]
pub enum Heal {
    /// A crashed or stopped node starts again.
    Restart(usize),
    /// A paused node resumes (if it is still the same incarnation).
    Resume(usize, u64),
    /// Redis is back.
    Redis,
    /// Consul answers again.
    Consul,
    /// The node reaches Consul again.
    Partition(usize),
    /// Every fault is lifted: the run's settle time starts.
    All,
}

/// A queued event's place: its instant, its order of making, and its slot in `World::slab`
/// (the heap moves these three numbers, not the events).
struct Queued {
    at: Micros,
    seq: u64,
    slot: usize,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    // A max-heap: the earliest instant, then the earliest made, comes out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A blocking read of the lock key waiting for its index to move.
pub struct Watcher {
    pub node: usize,
    pub inc: u64,
    pub purpose: Purpose,
    pub epoch: u64,
    pub index: u64,
    pub sent: Micros,
    pub fate: Fate,
}

/// Counters for the run's summary.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Events handled.
    pub events: u64,
    /// Faults injected, by name.
    pub faults: BTreeMap<&'static str, u64>,
    /// Calls whose request or answer was lost, or whose answer was late.
    pub lost: u64,
    /// Late answers.
    pub late: u64,
    /// API requests answered, and not (node down, Consul unreachable, no leader).
    pub answered: u64,
    /// See `answered`.
    pub unanswered: u64,
    /// Manual runs answered as enqueued.
    pub manual: u64,
    /// Terms started (tokens seen by machines).
    pub terms: u64,
    /// Script calls refused by the fence.
    pub fenced: u64,
    /// Times a machine asked to be woken at once but had nothing to do (should stay 0).
    pub spins: u64,
}

/// The whole simulated cluster.
pub struct World {
    pub cfg: Config,
    pub now: Micros,
    seq: u64,
    queue: BinaryHeap<Queued>,
    /// The queued events, and the free slots among them.
    slab: Vec<Option<Ev>>,
    free: Vec<usize>,
    pub rng: Rng,
    pub rates: Rates,
    pub nodes: Vec<Node>,
    pub consul: Consul,
    pub consul_down: bool,
    pub watchers: BTreeMap<u64, Watcher>,
    timers_at: Micros,
    pub redis: RedisModel,
    pub redis_down: bool,
    /// The job store's truth: id → (spec, version).
    pub jobs: BTreeMap<String, (Arc<Job>, u64)>,
    /// The job store's index: that of its last write (the shard stamps' index a watch and a
    /// consistent read of them answer).
    pub job_index: u64,
    pub stats: Stats,
    /// Set when faults stop, so that nothing new breaks during the settle time.
    pub healed: bool,
    pub api: crate::api::Api,
    /// Fence samples (taken whenever the fence moved).
    pub fences: Vec<checker::FenceSample>,
    /// The farthest any node's clock was from the true one.
    pub max_skew: TimeDelta,
    /// Print what happens to this job (`*`: to every job) as it happens.
    pub trace: Option<String>,
}

/// The instant simulated time 0 stands for (2026-11-26 12:00:00 UTC), in Unix microseconds.
const EPOCH_MICROS: i64 = 1_795_694_400_000_000;

/// The instant simulated time 0 stands for.
pub fn epoch() -> DateTime<Utc> {
    instant(0)
}

/// Simulated time as a UTC instant (the true clock, not a node's).
pub fn instant(t: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(EPOCH_MICROS + t as i64).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl World {
    /// A world of `cfg.nodes` nodes, none started yet.
    pub fn new(cfg: Config, seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let nodes = (0..cfg.nodes).map(|i| Node::new(i, &cfg)).collect();
        World {
            rates: cfg.rates,
            cfg,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            rng: rng.fork(),
            nodes,
            consul: Consul::new(),
            consul_down: false,
            watchers: BTreeMap::new(),
            timers_at: Micros::MAX,
            redis: RedisModel::default(),
            redis_down: false,
            jobs: BTreeMap::new(),
            job_index: 0,
            stats: Stats::default(),
            healed: false,
            api: crate::api::Api::default(),
            fences: Vec::new(),
            max_skew: TimeDelta::zero(),
            trace: None,
        }
    }

    /// Whether `job` is traced.
    pub fn traced(&self, job: &str) -> bool {
        self.trace.as_deref().is_some_and(|t| t == "*" || t == job)
    }

    /// Prints a trace line at the true time.
    pub fn say(&self, line: std::fmt::Arguments<'_>) {
        println!("{} {line}", instant(self.now).format("%H:%M:%S%.6f"));
    }

    /// Queues `ev` at `at`.
    pub fn at(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some(ev);
                i
            }
            None => {
                self.slab.push(Some(ev));
                self.slab.len() - 1
            }
        };
        self.queue.push(Queued {
            at,
            seq: self.seq,
            slot,
        });
    }

    /// A fresh number (calls, API requests, watchers).
    pub fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Runs every event up to `until`.
    pub fn run_until(&mut self, until: Micros) {
        while let Some(q) = self.queue.peek() {
            if q.at > until {
                break;
            }
            let Some(q) = self.queue.pop() else { break };
            let Some(ev) = self.slab[q.slot].take() else {
                continue;
            };
            self.free.push(q.slot);
            self.now = q.at.max(self.now + 1);
            self.stats.events += 1;
            self.handle(ev);
        }
        self.now = self.now.max(until);
    }

    fn handle(&mut self, ev: Ev) {
        // A paused node handles nothing until it resumes.
        let target = match &ev {
            Ev::Wake { node, inc, .. }
            | Ev::ConsulAnswer { node, inc, .. }
            | Ev::RedisAnswer { node, inc, .. }
            | Ev::Command { node, inc, .. }
            | Ev::Watch { node, inc } => Some((*node, *inc)),
            _ => None,
        };
        if let Some((n, inc)) = target {
            let node = &mut self.nodes[n];
            if !node.up || node.inc != inc {
                return;
            }
            if node.paused {
                node.deferred.push(ev);
                return;
            }
        }
        match ev {
            Ev::Wake { node, at, .. } => {
                if self.nodes[node].wake_at == at {
                    crate::node::wake(self, node);
                }
            }
            Ev::ConsulCall {
                node,
                inc,
                purpose,
                epoch,
                req,
                sent,
                fate,
            } => self.consul_call(node, inc, purpose, epoch, req, sent, fate),
            Ev::ConsulAnswer {
                node,
                purpose,
                epoch,
                rep,
                sent,
                ..
            } => crate::node::consul_answer(self, node, purpose, epoch, rep, sent),
            Ev::BlockTimeout { watcher } => {
                if let Some(w) = self.watchers.remove(&watcher) {
                    self.answer_watcher(w);
                }
            }
            Ev::ServerTimers => {
                self.timers_at = Micros::MAX;
                self.consul.tick(self.now);
                self.consul_moved();
            }
            Ev::RedisCall {
                node,
                inc,
                action,
                fate,
            } => self.redis_call(node, inc, action, fate),
            Ev::RedisAnswer { node, outcome, .. } => crate::node::redis_answer(self, node, outcome),
            Ev::Command { node, api, cmd, .. } => crate::node::command(self, node, api, cmd),
            Ev::CommandAnswer { api, reply } => crate::api::answered(self, api, Some(reply)),
            Ev::ApiTimeout { api } => crate::api::answered(self, api, None),
            Ev::Watch { node, .. } => crate::node::watch(self, node),
            Ev::Request { node, slot, req } => crate::api::request(self, node, slot, req),
            Ev::Fault(f) => crate::faults::strike(self, f),
            Ev::Heal(h) => crate::faults::heal(self, h),
        }
    }

    /// A node's paused events, handled now in a seeded shuffled order (a process woken by
    /// SIGCONT finds all its timers due and its sockets readable at once).
    pub fn resume(&mut self, n: usize) {
        let mut evs = std::mem::take(&mut self.nodes[n].deferred);
        for i in (1..evs.len()).rev() {
            let j = self.rng.index(i + 1);
            evs.swap(i, j);
        }
        for ev in evs {
            self.now += 1;
            self.handle(ev);
        }
    }

    /// Draws a call's fate.
    pub fn fate(&mut self) -> Fate {
        let r = &self.rates;
        let (lr, la, late) = (r.lost_request, r.lost_answer, r.late_answer);
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if self.healed {
            return Fate::Answered(self.rng.range(100, 2_000));
        }
        if x < lr {
            self.stats.lost += 1;
            Fate::LostRequest
        } else if x < lr + la {
            self.stats.lost += 1;
            Fate::LostAnswer
        } else if x < lr + la + late {
            self.stats.late += 1;
            Fate::Answered(self.rng.range(200 * MS, 8 * SEC))
        } else {
            Fate::Answered(self.rng.range(100, 2_000))
        }
    }

    /// A one-way network latency.
    pub fn latency(&mut self) -> Micros {
        self.rng.range(100, 2_000)
    }

    // --- Consul ---

    /// Whether node `n` reaches Consul now.
    pub fn reaches_consul(&self, n: usize) -> bool {
        !self.consul_down && !self.nodes[n].consul_cut
    }

    /// Node `n` sends a Consul call.
    pub fn send_consul(&mut self, n: usize, purpose: Purpose, epoch: u64, req: Req) {
        let inc = self.nodes[n].inc;
        let sent = self.now;
        // Refused at once in an outage; a partitioned node, or a lost request, times out.
        let failed = if self.consul_down {
            Some(MS)
        } else if self.nodes[n].consul_cut {
            Some(CONSUL_TIMEOUT)
        } else {
            None
        };
        let fate = match failed {
            Some(_) => Fate::LostRequest,
            None => self.fate(),
        };
        if fate == Fate::LostRequest {
            let ev = Ev::ConsulAnswer {
                node: n,
                inc,
                purpose,
                epoch,
                rep: Rep::Failed,
                sent,
            };
            self.at(sent + failed.unwrap_or(CONSUL_TIMEOUT), ev);
            return;
        }
        let arrive = sent + self.latency();
        let ev = Ev::ConsulCall {
            node: n,
            inc,
            purpose,
            epoch,
            req,
            sent,
            fate,
        };
        self.at(arrive, ev);
    }

    #[allow(clippy::too_many_arguments)]
    fn consul_call(
        &mut self,
        n: usize,
        inc: u64,
        purpose: Purpose,
        epoch: u64,
        req: Req,
        sent: Micros,
        fate: Fate,
    ) {
        if self.consul_down {
            // Gone while the request was on its way.
            let ev = Ev::ConsulAnswer {
                node: n,
                inc,
                purpose,
                epoch,
                rep: Rep::Failed,
                sent,
            };
            self.at(self.now + MS, ev);
            return;
        }
        let now = self.now;
        let cfg = &self.cfg;
        let rep = match req {
            Req::Register => {
                self.consul.register(n, cfg.ttl_duration(), now);
                Some(Rep::Registered)
            }
            Req::Pass => Some(Rep::Passed(self.consul.pass(n, now))),
            Req::Create => Some(Rep::Created(self.consul.create_session(
                n,
                cfg.ttl_duration(),
                cfg.lock_delay_duration(),
                now,
            ))),
            Req::Renew(id) => Some(Rep::Renewed(self.consul.renew(&id, now))),
            Req::Read { index, wait } => {
                let (holder, idx) = self.consul.lock_key();
                if wait == 0 || idx != index {
                    Some(Rep::Read { holder, index: idx })
                } else {
                    // Consul adds up to wait/16 of jitter to a blocking wait.
                    let jitter = self.rng.range(0, wait / 16 + 1);
                    let id = self.next_id();
                    self.watchers.insert(
                        id,
                        Watcher {
                            node: n,
                            inc,
                            purpose,
                            epoch,
                            index,
                            sent,
                            fate,
                        },
                    );
                    self.at(now + wait + jitter, Ev::BlockTimeout { watcher: id });
                    None
                }
            }
            Req::Lock(id) => Some(Rep::Locked(self.consul.lock(&id, n, now))),
            Req::Release(id) => {
                self.consul.release(&id, now);
                Some(Rep::Done)
            }
            Req::Destroy(id) => {
                self.consul.destroy(&id, now);
                Some(Rep::Done)
            }
        };
        if let Some(rep) = rep {
            self.consul_reply(n, inc, purpose, epoch, rep, sent, fate);
        }
        self.consul_moved();
    }

    #[allow(clippy::too_many_arguments)]
    fn consul_reply(
        &mut self,
        n: usize,
        inc: u64,
        purpose: Purpose,
        epoch: u64,
        rep: Rep,
        sent: Micros,
        fate: Fate,
    ) {
        let (at, rep) = match fate {
            Fate::Answered(back) => (self.now + back, rep),
            _ => (sent.max(self.now) + CONSUL_TIMEOUT, Rep::Failed),
        };
        let ev = Ev::ConsulAnswer {
            node: n,
            inc,
            purpose,
            epoch,
            rep,
            sent,
        };
        self.at(at, ev);
    }

    fn answer_watcher(&mut self, w: Watcher) {
        let (holder, index) = self.consul.lock_key();
        let rep = if self.reaches_consul(w.node) {
            Rep::Read { holder, index }
        } else {
            Rep::Failed
        };
        self.consul_reply(w.node, w.inc, w.purpose, w.epoch, rep, w.sent, w.fate);
    }

    /// After anything that may have moved Consul's state: wake the blocking reads whose index
    /// moved, and set the server's next timer.
    pub fn consul_moved(&mut self) {
        let (_, index) = self.consul.lock_key();
        let moved: Vec<u64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.index != index)
            .map(|(id, _)| *id)
            .collect();
        for id in moved {
            if let Some(w) = self.watchers.remove(&id) {
                self.answer_watcher(w);
            }
        }
        if let Some(d) = self.consul.next_deadline() {
            let d = d.max(self.now);
            if d < self.timers_at {
                self.timers_at = d;
                self.at(d, Ev::ServerTimers);
            }
        }
    }

    // --- Redis ---

    /// Node `n` sends a Redis call.
    pub fn send_redis(&mut self, n: usize, action: Action) {
        let inc = self.nodes[n].inc;
        let fate = self.fate();
        if fate == Fate::LostRequest {
            let outcome = crate::node::failed(&action, "request lost");
            self.at(
                self.now + REDIS_TIMEOUT,
                Ev::RedisAnswer {
                    node: n,
                    inc,
                    outcome,
                },
            );
            return;
        }
        let arrive = self.now + self.latency();
        self.at(
            arrive,
            Ev::RedisCall {
                node: n,
                inc,
                action,
                fate,
            },
        );
    }

    fn redis_call(&mut self, n: usize, inc: u64, action: Action, fate: Fate) {
        // The one machine action that is a Consul read: it fails with Consul, not Redis.
        let down = match action {
            Action::ReadJobIndex => !self.reaches_consul(n),
            _ => self.redis_down,
        };
        let (at, outcome) = if down {
            // The client's reconnection attempts run out, then the call fails.
            let after = self.rng.range(MS, 2 * SEC);
            (self.now + after, crate::node::failed(&action, "redis down"))
        } else {
            let fence = self.redis.fence;
            self.redis.clock = instant(self.now);
            let outcome = crate::node::apply(self, n, &action);
            if self.redis.fence != fence {
                crate::evidence::fence_moved(self);
            }
            match fate {
                Fate::Answered(back) => (self.now + back, outcome),
                _ => (
                    self.now + REDIS_TIMEOUT,
                    crate::node::failed(&action, "answer lost"),
                ),
            }
        };
        let ev = Ev::RedisAnswer {
            node: n,
            inc,
            outcome,
        };
        self.at(at, ev);
    }
}
