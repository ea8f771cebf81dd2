//! Sessions: creation rules, TTL deadlines, and invalidation (release or delete the held keys,
//! start their lock-delays, all at one index).
//!
//! Must not parse request bodies (`crate::http::session` does) nor run timers (the timer task
//! calls [`Store::expire_sessions`]).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CheckStatus, Store};

/// Session TTL bounds (Consul's SessionTTLMin default and SessionTTLMax).
pub const SESSION_TTL_MIN: Duration = Duration::from_secs(10);
/// See [`SESSION_TTL_MIN`].
pub const SESSION_TTL_MAX: Duration = Duration::from_secs(24 * 3600);
/// The server's timer runs TTL × this after create or renew (Consul's SessionTTLMultiplier).
pub const SESSION_TTL_MULTIPLIER: u32 = 2;
/// Lock-delays longer than this are cut to it when applied (Consul's MaxLockDelay).
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

/// What happens to held keys when the session is invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Behavior {
    /// Keys are released (Session cleared), values kept.
    Release,
    /// Keys are deleted.
    Delete,
}

impl Behavior {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }
}

/// A check a session is bound to through `ServiceChecks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCheck {
    /// Check ID.
    pub id: String,
    /// Namespace (always empty outside Enterprise; echoed back).
    pub namespace: String,
}

/// A session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// UUID.
    pub id: String,
    /// Free text.
    pub name: String,
    /// Node name.
    pub node: String,
    /// Lock-delay as requested (capped only when applied).
    pub lock_delay: Duration,
    /// Invalidation behaviour.
    pub behavior: Behavior,
    /// TTL as the client sent it (`""` for none).
    pub ttl: String,
    /// Parsed TTL, when non-zero.
    pub ttl_dur: Option<Duration>,
    /// Node checks bound (None prints as null).
    pub node_checks: Option<Vec<String>>,
    /// Service checks bound.
    pub service_checks: Option<Vec<ServiceCheck>>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change (equal to create: sessions are immutable).
    pub modify_index: u64,
    /// When the server-side TTL timer fires (memory only; reset on load as on failover).
    #[serde(skip)]
    pub deadline: Option<Instant>,
}

impl Session {
    /// Every check ID the session is bound to.
    pub fn check_ids(&self) -> impl Iterator<Item = &str> {
        let n = self.node_checks.iter().flatten().map(String::as_str);
        let s = self.service_checks.iter().flatten().map(|c| c.id.as_str());
        n.chain(s)
    }

    /// Resets the TTL timer to TTL × 2 from `now`.
    pub fn reset_timer(&mut self, now: Instant) {
        self.deadline = self.ttl_dur.map(|t| now + t * SESSION_TTL_MULTIPLIER);
    }
}

/// A validated create request (the HTTP layer applies defaults and parses durations).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Name.
    pub name: String,
    /// Node (defaults to the agent's).
    pub node: String,
    /// Lock-delay.
    pub lock_delay: Duration,
    /// Behaviour.
    pub behavior: Behavior,
    /// TTL text and its parsed value (`None` when absent or zero).
    pub ttl: String,
    /// Parsed TTL.
    pub ttl_dur: Option<Duration>,
    /// Node checks.
    pub node_checks: Option<Vec<String>>,
    /// Service checks.
    pub service_checks: Option<Vec<ServiceCheck>>,
}

/// Consul indexes sessions by UUID: looking up an ID that is not shaped like one fails
/// (go-memdb's UUIDFieldIndex), and Consul reports that as `failed session lookup: …` (500)
/// rather than as an unknown session. `None` when `id` is UUID-shaped.
pub fn lookup_error(id: &str) -> Option<String> {
    let why = if id.len() != 36 {
        "UUID must be 36 characters".to_string()
    } else if id.bytes().filter(|b| *b == b'-').count() > 4 {
        "UUID should have maximum of 4 \"-\"".to_string()
    } else if !id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()) {
        "Invalid UUID: encoding/hex: invalid byte".to_string()
    } else {
        return None;
    };
    Some(format!("failed session lookup: index error: {why}"))
}

impl Store {
    /// Creates a session. `Err` carries Consul's message (answered with 500).
    pub fn create_session(&mut self, req: NewSession, now: Instant) -> Result<Session, String> {
        if req.node != self.node.name {
            return Err("Missing node registration".to_string());
        }
        let mut s = Session {
            id: String::new(),
            name: req.name,
            node: req.node,
            lock_delay: req.lock_delay,
            behavior: req.behavior,
            ttl: req.ttl,
            ttl_dur: req.ttl_dur,
            node_checks: req.node_checks,
            service_checks: req.service_checks,
            create_index: 0,
            modify_index: 0,
            deadline: None,
        };
        for id in s.check_ids() {
            match self.checks.get(id) {
                None => return Err(format!("Missing check '{id}' registration")),
                Some(c) if c.status == CheckStatus::Critical => {
                    return Err(format!("Check '{id}' is in critical state"))
                }
                Some(_) => {}
            }
        }
        let mut id = uuid::Uuid::new_v4().to_string();
        while self.sessions.contains_key(&id) {
            id = uuid::Uuid::new_v4().to_string();
        }
        let idx = self.next_index();
        s.id = id.clone();
        s.create_index = idx;
        s.modify_index = idx;
        s.reset_timer(now);
        self.sessions.insert(id, s.clone());
        self.index = idx;
        self.sessions_index = idx;
        Ok(s)
    }

    /// Resets a session's TTL timer; `None` when unknown. No index change, as in Consul.
    pub fn renew_session(&mut self, id: &str, now: Instant) -> Option<Session> {
        let frozen = self.frozen_at;
        let s = self.sessions.get_mut(id)?;
        // While the TTL clocks are frozen their time stands at the freeze; resuming shifts every
        // deadline by the frozen span, this one included.
        s.reset_timer(frozen.unwrap_or(now));
        Some(s.clone())
    }

    /// Restarts every session's TTL timer at `now` (2×TTL), as a newly elected Consul leader
    /// does. No index change.
    pub fn reset_session_timers(&mut self, now: Instant) {
        for s in self.sessions.values_mut() {
            s.reset_timer(now);
        }
    }

    /// Destroys a session (idempotent); lock-delay applies to its keys.
    pub fn destroy_session(&mut self, id: &str, now: Instant) {
        if self.sessions.contains_key(id) {
            let idx = self.next_index();
            self.invalidate_session_at(id, idx, now);
            self.index = idx;
        }
    }

    /// Invalidates session `id` as part of the write at `idx`: removes it, releases or deletes
    /// its keys, starts their lock-delays. The caller commits `idx` to `self.index`.
    pub fn invalidate_session_at(&mut self, id: &str, idx: u64, now: Instant) {
        let Some(s) = self.sessions.remove(id) else {
            return;
        };
        self.sessions_index = idx;
        let delay = s.lock_delay.min(MAX_LOCK_DELAY);
        for key in self.kv.held_by(id) {
            match s.behavior {
                Behavior::Release => self.kv.clear_session(&key, idx),
                Behavior::Delete => {
                    self.kv.delete(&key, idx);
                }
            }
            if !delay.is_zero() {
                self.lock_delays.insert(key, now + delay);
            }
        }
    }

    /// Invalidates every session bound to check `check_id`, at `idx`.
    pub fn invalidate_sessions_for_check(
        &mut self,
        check_id: &str,
        idx: u64,
        now: Instant,
    ) -> bool {
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.check_ids().any(|c| c == check_id))
            .map(|s| s.id.clone())
            .collect();
        for id in &ids {
            self.invalidate_session_at(id, idx, now);
        }
        !ids.is_empty()
    }

    /// Invalidates sessions whose TTL timer ran out (nothing while the clocks are frozen).
    pub fn expire_sessions(&mut self, now: Instant) -> Vec<String> {
        if self.frozen_at.is_some() {
            return Vec::new();
        }
        let due: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.deadline.is_some_and(|d| d <= now))
            .map(|s| s.id.clone())
            .collect();
        for id in &due {
            // Each expiry is its own write in Consul (one raft apply per timer).
            let idx = self.next_index();
            self.invalidate_session_at(id, idx, now);
            self.index = idx;
        }
        due
    }
}
