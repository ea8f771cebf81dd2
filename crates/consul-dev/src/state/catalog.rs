//! Services and checks registered through the agent, and how check states drive sessions.
//!
//! A check turning critical or disappearing invalidates the sessions bound to it in the same
//! write, as Consul's catalog does. Must not parse registration bodies (`crate::http::agent`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Store, SERF_CHECK_ID};

/// The shortest `DeregisterCriticalServiceAfter` Consul honours; shorter values are raised.
pub const MIN_DEREGISTER_AFTER: Duration = Duration::from_secs(60);

/// A check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckStatus {
    /// passing
    Passing,
    /// warning
    Warning,
    /// critical
    Critical,
}

impl CheckStatus {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// Parses Consul's spelling.
    pub fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }
}

/// A service instance on this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    /// Service ID.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Meta.
    pub meta: BTreeMap<String, String>,
    /// Address (empty: the node's).
    pub address: String,
    /// Port.
    pub port: u16,
    /// EnableTagOverride, echoed.
    pub enable_tag_override: bool,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
}

/// A health check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// Check ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status.
    pub status: CheckStatus,
    /// Notes.
    pub notes: String,
    /// Output of the last update.
    pub output: String,
    /// Owning service ID (empty for node checks).
    pub service_id: String,
    /// Owning service name.
    pub service_name: String,
    /// Check type: `ttl`, `http`, or `` for serfHealth.
    pub kind: String,
    /// TTL for TTL checks.
    pub ttl: Option<Duration>,
    /// HTTP URL and interval for HTTP checks (recorded, see the README).
    pub http: Option<String>,
    /// Interval text as given.
    pub interval: String,
    /// Parsed interval, for HTTP checks.
    pub interval_dur: Option<Duration>,
    /// DeregisterCriticalServiceAfter, raised to the minimum.
    pub deregister_after: Option<Duration>,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
    /// When a TTL check turns critical without an update (memory only).
    #[serde(skip)]
    pub deadline: Option<Instant>,
    /// Since when the check is critical (for DeregisterCriticalServiceAfter).
    #[serde(skip)]
    pub critical_since: Option<Instant>,
    /// When an HTTP check runs next (memory only: runs start again after a restart).
    #[serde(skip)]
    pub next_run: Option<Instant>,
}

impl Check {
    /// The node's serfHealth check.
    pub fn serf(idx: u64) -> Check {
        Check {
            id: SERF_CHECK_ID.to_string(),
            name: "Serf Health Status".to_string(),
            status: CheckStatus::Passing,
            notes: String::new(),
            output: "Agent alive and reachable".to_string(),
            service_id: String::new(),
            service_name: String::new(),
            kind: String::new(),
            ttl: None,
            http: None,
            interval: String::new(),
            interval_dur: None,
            deregister_after: None,
            create_index: idx,
            modify_index: idx,
            deadline: None,
            critical_since: None,
            next_run: None,
        }
    }
}

/// Why a check update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckUpdateError {
    /// Unknown check or not a TTL check.
    NoTtl(String),
}

impl Store {
    /// Registers (or replaces) a service and its checks at one index. Checks the service had
    /// before and no longer has are removed, invalidating their sessions. A re-registered
    /// check without an explicit status keeps its current status.
    pub fn register_service(&mut self, mut svc: Service, checks: Vec<(Check, bool)>, now: Instant) {
        let idx = self.next_index();
        svc.create_index = self.services.get(&svc.id).map_or(idx, |s| s.create_index);
        svc.modify_index = idx;
        let new_ids: Vec<String> = checks.iter().map(|(c, _)| c.id.clone()).collect();
        let stale: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.service_id == svc.id && !new_ids.contains(&c.id))
            .map(|c| c.id.clone())
            .collect();
        for id in stale {
            self.checks.remove(&id);
            self.invalidate_sessions_for_check(&id, idx, now);
        }
        for (mut c, status_given) in checks {
            if let Some(old) = self.checks.get(&c.id) {
                c.create_index = old.create_index;
                if !status_given {
                    c.status = old.status;
                    c.output = old.output.clone();
                }
            } else {
                c.create_index = idx;
            }
            c.modify_index = idx;
            c.service_id = svc.id.clone();
            c.service_name = svc.name.clone();
            c.deadline = c.ttl.map(|t| now + t);
            c.critical_since = (c.status == CheckStatus::Critical).then_some(now);
            if c.status == CheckStatus::Critical {
                self.invalidate_sessions_for_check(&c.id, idx, now);
            }
            self.checks.insert(c.id.clone(), c);
        }
        self.services.insert(svc.id.clone(), svc);
        self.catalog_index = idx;
        self.index = idx;
    }

    /// Removes a service and its checks; false when unknown.
    pub fn deregister_service(&mut self, id: &str, now: Instant) -> bool {
        if !self.services.contains_key(id) {
            return false;
        }
        let idx = self.next_index();
        self.services.remove(id);
        let ids: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.service_id == id)
            .map(|c| c.id.clone())
            .collect();
        for cid in ids {
            self.checks.remove(&cid);
            self.invalidate_sessions_for_check(&cid, idx, now);
        }
        self.catalog_index = idx;
        self.index = idx;
        true
    }

    /// Sets a TTL check's status and output and resets its TTL clock. Writes (a new index) only
    /// when status or output changed, as the agent's anti-entropy sync does.
    pub fn update_ttl_check(
        &mut self,
        id: &str,
        status: CheckStatus,
        output: String,
        now: Instant,
    ) -> Result<(), CheckUpdateError> {
        let frozen = self.frozen_at;
        let Some(c) = self.checks.get_mut(id).filter(|c| c.ttl.is_some()) else {
            return Err(CheckUpdateError::NoTtl(id.to_string()));
        };
        c.deadline = c.ttl.map(|t| frozen.unwrap_or(now) + t);
        if c.status == status && c.output == output {
            return Ok(());
        }
        self.set_check_status(id, status, output, now);
        Ok(())
    }

    /// HTTP checks due at `now`, as `(check ID, URL)`; each is scheduled for its next run.
    pub fn due_http_checks(&mut self, now: Instant) -> Vec<(String, String)> {
        let mut due = Vec::new();
        for c in self.checks.values_mut() {
            let (Some(url), Some(every)) = (&c.http, c.interval_dur) else {
                continue;
            };
            if c.next_run.is_none_or(|t| t <= now) {
                c.next_run = Some(now + every);
                due.push((c.id.clone(), url.clone()));
            }
        }
        due
    }

    /// Records the result of an HTTP check run; a write only when status or output changed.
    pub fn record_http_check(
        &mut self,
        id: &str,
        status: CheckStatus,
        output: String,
        now: Instant,
    ) {
        let changed = self
            .checks
            .get(id)
            .is_some_and(|c| c.http.is_some() && (c.status != status || c.output != output));
        if changed {
            self.set_check_status(id, status, output, now);
        }
    }

    /// Writes a status change at a new index; critical invalidates bound sessions.
    fn set_check_status(&mut self, id: &str, status: CheckStatus, output: String, now: Instant) {
        let idx = self.next_index();
        if let Some(c) = self.checks.get_mut(id) {
            if status == CheckStatus::Critical && c.status != CheckStatus::Critical {
                c.critical_since = Some(now);
            } else if status != CheckStatus::Critical {
                c.critical_since = None;
            }
            c.status = status;
            c.output = output;
            c.modify_index = idx;
        }
        if status == CheckStatus::Critical {
            self.invalidate_sessions_for_check(id, idx, now);
        }
        self.catalog_index = idx;
        self.index = idx;
    }

    /// Turns TTL checks whose clock ran out critical, and deregisters services whose check has
    /// been critical longer than its DeregisterCriticalServiceAfter. Nothing while frozen.
    pub fn expire_checks(&mut self, now: Instant) {
        if self.frozen_at.is_some() {
            return;
        }
        let expired: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.status != CheckStatus::Critical && c.deadline.is_some_and(|d| d <= now))
            .map(|c| c.id.clone())
            .collect();
        for id in expired {
            self.set_check_status(&id, CheckStatus::Critical, "TTL expired".to_string(), now);
        }
        let reap: Vec<String> = self
            .checks
            .values()
            .filter(|c| match (c.deregister_after, c.critical_since) {
                (Some(after), Some(since)) => now.duration_since(since) >= after,
                _ => false,
            })
            .map(|c| c.service_id.clone())
            .collect();
        for sid in reap {
            self.deregister_service(&sid, now);
        }
    }

    /// Resumes frozen TTL clocks: every deadline moves by the frozen span.
    pub fn resume_clocks(&mut self, now: Instant) {
        let Some(at) = self.frozen_at.take() else {
            return;
        };
        let span = now.duration_since(at);
        for s in self.sessions.values_mut() {
            s.deadline = s.deadline.map(|d| d + span);
        }
        for c in self.checks.values_mut() {
            c.deadline = c.deadline.map(|d| d + span);
            c.critical_since = c.critical_since.map(|d| d + span);
        }
    }

    /// After loading a snapshot: restart every timer from `now`, as a new Consul leader does.
    pub fn restart_timers(&mut self, now: Instant) {
        for s in self.sessions.values_mut() {
            s.reset_timer(now);
        }
        for c in self.checks.values_mut() {
            c.deadline = c.ttl.map(|t| now + t);
            c.critical_since = (c.status == CheckStatus::Critical).then_some(now);
        }
    }
}
