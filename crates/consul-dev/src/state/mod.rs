//! The agent's whole state: one node, its KV store, sessions, services and checks, under one
//! raft-like index that only grows.
//!
//! Owns the rules of every write (what changes, at which index, which sessions a write
//! invalidates). It must not know HTTP: handlers in `crate::http` translate requests into the
//! calls below and outcomes into Consul's answers. Time is an argument (`now`), so the timer task
//! and the handlers share one clock. Start with [`Store`], then `kv.rs`, `session.rs`,
//! `catalog.rs`, `txn.rs`.

pub mod catalog;
pub mod kv;
mod ordered;
pub mod session;
pub mod txn;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use catalog::{Check, CheckStatus, Service};
pub use kv::{Kv, KvEntry};
pub use session::{Behavior, Session};

/// The check every node has, always passing in a single-node dev agent.
pub const SERF_CHECK_ID: &str = "serfHealth";

/// The one node this agent is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name (`--node`).
    pub name: String,
    /// Node ID, a UUID kept across restarts with the data dir.
    pub id: String,
    /// Datacenter name.
    pub datacenter: String,
    /// Address the node advertises.
    pub address: String,
    /// Index at which the node was registered.
    pub create_index: u64,
}

/// Everything the agent knows. Persisted whole (see `crate::persist`); fields marked
/// `serde(skip)` are server memory only, as in Consul (lock-delays, timers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Store {
    /// The raft-like index: the index of the last write. Never goes backwards.
    pub index: u64,
    /// The node.
    pub node: NodeInfo,
    /// The KV table and its tombstones.
    pub kv: Kv,
    /// Sessions by ID.
    pub sessions: BTreeMap<String, Session>,
    /// Index of the last session write (the `sessions` table index).
    pub sessions_index: u64,
    /// Services registered through this agent, by service ID.
    pub services: BTreeMap<String, Service>,
    /// Checks by check ID, including `serfHealth`.
    pub checks: BTreeMap<String, Check>,
    /// Index of the last write to services or checks (the catalog/health tables).
    pub catalog_index: u64,
    /// Lock-delay expiry per key (memory only, like Consul's).
    #[serde(skip)]
    pub lock_delays: HashMap<String, Instant>,
    /// When the TTL clocks were frozen by the fault endpoint, if they are.
    #[serde(skip)]
    pub frozen_at: Option<Instant>,
}

impl Store {
    /// A fresh store: the node and its `serfHealth` check registered at index 1..=2, so that
    /// `X-Consul-Index` is never 0 and the first KV write gets an index above them.
    pub fn new(node: &str, datacenter: &str) -> Store {
        let mut s = Store {
            index: 1,
            node: NodeInfo {
                name: node.to_string(),
                id: uuid::Uuid::new_v4().to_string(),
                datacenter: datacenter.to_string(),
                address: "127.0.0.1".to_string(),
                create_index: 1,
            },
            kv: Kv::default(),
            sessions: BTreeMap::new(),
            sessions_index: 1,
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            catalog_index: 1,
            lock_delays: HashMap::new(),
            frozen_at: None,
        };
        s.index = 2;
        s.checks.insert(SERF_CHECK_ID.to_string(), Check::serf(2));
        s.catalog_index = 2;
        s
    }

    /// The index the next write will get.
    pub fn next_index(&self) -> u64 {
        self.index + 1
    }

    /// Is the key under a lock-delay at `now`? Expired entries are left for `gc_lock_delays`.
    pub fn lock_delayed(&self, key: &str, now: Instant) -> bool {
        self.lock_delays.get(key).is_some_and(|until| *until > now)
    }

    /// Forgets lock-delays that have run out, so the map stays as small as the live set.
    pub fn gc_lock_delays(&mut self, now: Instant) {
        self.lock_delays.retain(|_, until| *until > now);
    }
}
