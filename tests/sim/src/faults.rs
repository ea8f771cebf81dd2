//! Faults striking the simulated cluster, and their lifting.
//!
//! Each fault is what a failing machine or an operator could do (as in the chaos suite): kill
//! a process, stop it gracefully, SIGSTOP it, take Redis or Consul away, cut one node from
//! Consul, invalidate the leader's session, step a node's clock. A fault aimed at "the leader"
//! strikes the node the lock key names when it strikes (any node when none does). Faults may
//! overlap. Must not repair anything behind the cluster's back: lifting a fault gives back
//! what it took, nothing more.

use crate::node::{kill, start, stop, wake_at};
use crate::workload::Fault;
use crate::world::{Ev, Heal, World};

fn target(w: &mut World, node: Option<usize>) -> usize {
    node.or_else(|| w.consul.holder())
        .unwrap_or_else(|| w.rng.index(w.nodes.len()))
}

/// A fault strikes now.
pub fn strike(w: &mut World, f: Fault) {
    if w.healed || (matches!(f, Fault::ClockStep { .. }) && !w.cfg.clock_steps) {
        return;
    }
    *w.stats.faults.entry(f.name()).or_default() += 1;
    if w.trace.is_some() {
        w.say(format_args!(
            "FAULT {f:?} (lock held by {:?})",
            w.consul.holder()
        ));
    }
    let now = w.now;
    match f {
        Fault::Crash { node, down } | Fault::Stop { node, down } => {
            let n = target(w, node);
            if !w.nodes[n].up {
                return;
            }
            if matches!(f, Fault::Stop { .. }) && !w.nodes[n].paused {
                stop(w, n);
            } else {
                kill(w, n);
            }
            w.at(now + down, Ev::Heal(Heal::Restart(n)));
        }
        Fault::Pause { node, paused } => {
            let n = target(w, node);
            if !w.nodes[n].up || w.nodes[n].paused {
                return;
            }
            w.nodes[n].paused = true;
            let inc = w.nodes[n].inc;
            w.at(now + paused, Ev::Heal(Heal::Resume(n, inc)));
        }
        Fault::RedisDown { down } => {
            w.redis_down = true;
            w.at(now + down, Ev::Heal(Heal::Redis));
        }
        Fault::ConsulOutage { down } => {
            w.consul_down = true;
            w.at(now + down, Ev::Heal(Heal::Consul));
        }
        Fault::ConsulPartition { node, down } => {
            let n = target(w, node);
            w.nodes[n].consul_cut = true;
            w.at(now + down, Ev::Heal(Heal::Partition(n)));
        }
        Fault::Invalidate => {
            if let (Some(session), _) = w.consul.lock_key() {
                w.consul.destroy(&session, now);
                w.consul_moved();
            }
        }
        Fault::ClockStep { node, by } => {
            let n = target(w, node);
            // Steps add up; NTP keeps a real clock within a minute of the truth.
            let limit = chrono::TimeDelta::seconds(60);
            w.nodes[n].offset = (w.nodes[n].offset + by).clamp(-limit, limit);
            w.max_skew = w.max_skew.max(w.nodes[n].offset.abs());
            wake_at(w, n, now);
        }
    }
}

/// A fault is lifted now.
pub fn heal(w: &mut World, h: Heal) {
    match h {
        Heal::Restart(n) => {
            if !w.nodes[n].up {
                start(w, n);
            }
        }
        Heal::Resume(n, inc) => {
            if w.nodes[n].up && w.nodes[n].inc == inc && w.nodes[n].paused {
                w.nodes[n].paused = false;
                w.resume(n);
                wake_at(w, n, w.now);
            }
        }
        Heal::Redis => w.redis_down = false,
        Heal::Consul => w.consul_down = false,
        Heal::Partition(n) => w.nodes[n].consul_cut = false,
        Heal::All => {
            w.healed = true;
            w.redis_down = false;
            w.consul_down = false;
            for n in 0..w.nodes.len() {
                w.nodes[n].consul_cut = false;
                if !w.nodes[n].up {
                    start(w, n);
                } else if w.nodes[n].paused {
                    w.nodes[n].paused = false;
                    w.resume(n);
                    wake_at(w, n, w.now);
                }
            }
        }
    }
}
