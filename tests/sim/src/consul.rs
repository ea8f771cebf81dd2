//! The Consul server of the simulated cluster: consul-dev's state module (the same rules the dev
//! agent and its conformance suite hold to Consul's), driven with the simulated clock.
//!
//! Owns the server side of the election: sessions bound to the node's service check and to
//! `serfHealth`, the TTL timer at 2×TTL after the last renew, service checks that turn critical
//! one TTL after their last pass and invalidate the sessions bound to them, lock-delay, the
//! lock taken by a txn `lock` whose ModifyIndex is the fencing token; and the job store's
//! writes, so that job versions are indexes from the same sequence as the tokens. Must not
//! model the network (the world does) nor the client's rules (`election.rs`).
//!
//! consul-dev names sessions with random UUIDs and expires due sessions in the order of their
//! ids; here due sessions expire in the order of their deadlines, then creation, so a seed
//! replays bit for bit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use consul_dev::state::catalog::{Check, CheckStatus, Service};
use consul_dev::state::session::{NewSession, ServiceCheck};
use consul_dev::state::txn::{TxnOp, TxnOutcome};
use consul_dev::state::{Behavior, Store, SERF_CHECK_ID};

use crate::world::Micros;

/// The lock key.
pub const LOCK_KEY: &str = "cronnode/leader";
/// Consul's lock flag (`api/lock.go`), as cronnode writes it.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;
/// The agent's node name (every cronnode talks to one agent, as in the chaos suite).
const AGENT: &str = "consul-sim";

/// Why an acquire did not take the lock (consul-lock's reading of Consul's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The key is under a lock-delay.
    LockDelay,
    /// Another session holds it.
    Held,
    /// The session is gone.
    InvalidSession,
}

/// The server.
pub struct Consul {
    store: Store,
    /// The instant simulated time 0 stands for (consul-dev's clock is an `Instant`).
    base: Instant,
    /// Session id → the node that created it (for the checker's notes and the API's lookup).
    pub owners: BTreeMap<String, usize>,
}

impl Consul {
    /// A fresh agent.
    pub fn new() -> Consul {
        Consul {
            store: Store::new(AGENT, "dc1"),
            base: Instant::now(),
            owners: BTreeMap::new(),
        }
    }

    fn at(&self, t: Micros) -> Instant {
        self.base + Duration::from_micros(t)
    }

    fn check_id(node: usize) -> String {
        format!("service:cronnode-n{node}")
    }

    /// Registers node `node`'s service with its TTL check, passing.
    pub fn register(&mut self, node: usize, ttl: Duration, t: Micros) {
        let id = format!("cronnode-n{node}");
        let svc = Service {
            id: id.clone(),
            name: "cronnode".into(),
            tags: Vec::new(),
            meta: BTreeMap::new(),
            address: String::new(),
            port: 8765,
            enable_tag_override: false,
            create_index: 0,
            modify_index: 0,
        };
        let check = Check {
            id: Consul::check_id(node),
            name: format!("cronnode n{node} alive"),
            status: CheckStatus::Passing,
            notes: String::new(),
            output: String::new(),
            service_id: id,
            service_name: "cronnode".into(),
            kind: "ttl".into(),
            ttl: Some(ttl),
            http: None,
            interval: String::new(),
            interval_dur: None,
            deregister_after: None,
            create_index: 0,
            modify_index: 0,
            deadline: None,
            critical_since: None,
            next_run: None,
        };
        let now = self.at(t);
        self.store.register_service(svc, vec![(check, true)], now);
    }

    /// Passes node `node`'s check; `false` when the agent does not know it (re-register).
    pub fn pass(&mut self, node: usize, t: Micros) -> bool {
        let now = self.at(t);
        self.store
            .update_ttl_check(
                &Consul::check_id(node),
                CheckStatus::Passing,
                String::new(),
                now,
            )
            .is_ok()
    }

    /// Creates node `node`'s lock session (behaviour release, bound to its check and serfHealth).
    pub fn create_session(
        &mut self,
        node: usize,
        ttl: Duration,
        lock_delay: Duration,
        t: Micros,
    ) -> Option<String> {
        let req = NewSession {
            name: format!("cronnode leader (n{node})"),
            node: AGENT.into(),
            lock_delay,
            behavior: Behavior::Release,
            ttl: format!("{}s", ttl.as_secs()),
            ttl_dur: Some(ttl),
            node_checks: Some(vec![SERF_CHECK_ID.to_string()]),
            service_checks: Some(vec![ServiceCheck {
                id: Consul::check_id(node),
                namespace: String::new(),
            }]),
        };
        let now = self.at(t);
        let s = self.store.create_session(req, now).ok()?;
        self.owners.insert(s.id.clone(), node);
        Some(s.id)
    }

    /// Renews a session; `false` when it is gone (a 404).
    pub fn renew(&mut self, session: &str, t: Micros) -> bool {
        let now = self.at(t);
        self.store.renew_session(session, now).is_some()
    }

    /// Destroys a session (its lock released, lock-delay started).
    pub fn destroy(&mut self, session: &str, t: Micros) {
        let now = self.at(t);
        self.store.destroy_session(session, now);
    }

    /// The txn `lock` of the lock key for `session`: the token (ModifyIndex) or why not.
    pub fn lock(&mut self, session: &str, node: usize, t: Micros) -> Result<u64, Refusal> {
        let op = TxnOp {
            verb: "lock".into(),
            key: LOCK_KEY.into(),
            value: format!("{{\"node\":\"n{node}\"}}").into_bytes(),
            flags: LOCK_FLAG,
            session: session.into(),
            ..TxnOp::default()
        };
        let now = self.at(t);
        match self.store.apply_txn(&[op], now) {
            TxnOutcome::Done(r) => r.first().map(|r| r.entry.modify_index).ok_or(Refusal::Held),
            // consul-lock turns Consul's text into this enum at its boundary; so do we.
            TxnOutcome::Failed(e) => Err(match e.first().map(|(_, m)| m.as_str()) {
                Some(m) if m.contains("lock delay") => Refusal::LockDelay,
                Some(m) if m.contains("invalid session") => Refusal::InvalidSession,
                _ => Refusal::Held,
            }),
        }
    }

    /// The txn `unlock` of the lock key by `session` (a graceful resign).
    pub fn release(&mut self, session: &str, t: Micros) {
        let op = TxnOp {
            verb: "unlock".into(),
            key: LOCK_KEY.into(),
            flags: LOCK_FLAG,
            session: session.into(),
            ..TxnOp::default()
        };
        let now = self.at(t);
        let _ = self.store.apply_txn(&[op], now);
    }

    /// The lock key: its holder's session and the index a blocking read would answer.
    pub fn lock_key(&self) -> (Option<String>, u64) {
        let e = self.store.kv.get(LOCK_KEY);
        (
            e.and_then(|e| e.session.clone()),
            self.store.kv.key_index(LOCK_KEY),
        )
    }

    /// The node holding the lock, if any.
    pub fn holder(&self) -> Option<usize> {
        let (session, _) = self.lock_key();
        session.and_then(|s| self.owners.get(&s).copied())
    }

    /// Writes a job's key (a `set` in a txn): its new version, the key's ModifyIndex. (A set of
    /// an unchanged value writes nothing, as in Consul: the spec's text must differ.)
    pub fn write_job(&mut self, id: &str, spec: &[u8], t: Micros) -> u64 {
        let op = TxnOp {
            verb: "set".into(),
            key: format!("cronnode/jobs/{id}"),
            value: spec.to_vec(),
            ..TxnOp::default()
        };
        let now = self.at(t);
        let _ = self.store.apply_txn(&[op], now);
        self.store
            .kv
            .get(&format!("cronnode/jobs/{id}"))
            .map_or(self.store.index, |e| e.modify_index)
    }

    /// Deletes a job's key: the index of the delete.
    pub fn delete_job(&mut self, id: &str, t: Micros) -> u64 {
        let op = TxnOp {
            verb: "delete".into(),
            key: format!("cronnode/jobs/{id}"),
            ..TxnOp::default()
        };
        let now = self.at(t);
        let _ = self.store.apply_txn(&[op], now);
        self.store.index
    }

    /// The index of the last write.
    pub fn index(&self) -> u64 {
        self.store.index
    }

    /// Runs the server's timers up to `t`: checks past their TTL turn critical (invalidating
    /// their sessions), sessions past 2×TTL expire.
    pub fn tick(&mut self, t: Micros) {
        let now = self.at(t);
        self.store.expire_checks(now);
        let mut due: Vec<(Instant, u64, String)> = self
            .store
            .sessions
            .values()
            .filter_map(|s| {
                let d = s.deadline?;
                (d <= now).then(|| (d, s.create_index, s.id.clone()))
            })
            .collect();
        due.sort();
        for (_, _, id) in due {
            self.store.destroy_session(&id, now);
        }
        self.store.gc_lock_delays(now);
    }

    /// The next instant a timer of the server runs out, if any.
    pub fn next_deadline(&self) -> Option<Micros> {
        let sessions = self.store.sessions.values().filter_map(|s| s.deadline);
        let checks = self
            .store
            .checks
            .values()
            .filter(|c| c.status != CheckStatus::Critical)
            .filter_map(|c| c.deadline);
        sessions
            .chain(checks)
            .min()
            .map(|d| d.saturating_duration_since(self.base).as_micros() as Micros)
    }
}

impl Default for Consul {
    fn default() -> Self {
        Consul::new()
    }
}
