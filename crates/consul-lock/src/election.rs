//! The leader election: Consul's own algorithm (consul-api.md §7, `api/lock.go`) plus the
//! fencing token, written for every supported Consul version and for a cluster under faults.
//!
//! One loop per node ([`Election::run`]): create a session bound to the node's service check and
//! to `serfHealth` (in the field the agent's version honours, read back to make sure); renew it
//! every TTL/2 in its own task; contend for `<prefix>/leader` (blocking reads; when the key is
//! free, a txn `lock` whose answer carries the ModifyIndex, the token, or before Consul 1.7 a
//! KV `?acquire` and a `?consistent` read of the token); while leading, watch the key with
//! blocking `?consistent` reads and ask the local agent every second whether it is there.
//! Leadership ends at once, and the owner of the [`Leadership`] channel is told before
//! anything else is done, on:
//! - a renew answered 404 (the session is gone);
//! - the watch seeing the key missing, unheld, or held by another session;
//! - the [`Lease`] running out: no proof within one TTL, or no answer from the local agent for
//!   [`AGENT_LOST_AFTER`] (see `lease.rs`).
//!
//! **Nothing waits on a frozen server.** Every read and write here has a deadline shorter than
//! the time Consul needs to hand the lock over: blocking reads of the lock key wait TTL/2 (a
//! read forwarded to a Raft leader that froze is given up soon after and sent again, through
//! the new leader), renews TTL/5, acquires and confirmations TTL/4. A write given up may still
//! have been applied: a read that finds the key held by this node's session is confirmed with a
//! `?consistent` read and taken as won.
//!
//! After a loss the session is released and destroyed in the background, the node waits
//! lock-delay + [`REJOIN_PAUSE`] (so a follower already blocked on the key goes first) and
//! contends again with a new session. Graceful resign: release the key, then destroy the
//! session (this order starts no lock-delay, so a successor takes over at once).
//!
//! Must not: make any side effect of a leader itself (the owner of the channel does, carrying
//! the token); announce leadership after shutdown was asked; act on Consul's message text
//! (`kv.rs` turns it into a [`Refusal`]).

use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::agent::check_id;
use crate::error::ConsulError;
use crate::http::Consul;
use crate::keepalive::{
    cleanup_lost_session, log_error, monitor_loop, probe_loop, renew_loop, resign, MonitorEvent,
    SessionHealth, RENEW_RETRY,
};
use crate::kv::{next_index, KvEntry, Query, Refusal, TxnOutcome, LOCK_FLAG};
use crate::leader::{Leadership, LockValue};
use crate::lease::{Expiry, Lease, AGENT_LOST_AFTER};
use crate::retry::{shutdown_asked, sleep_or_shutdown, AbortOnDrop, Backoff};
use crate::session::{go_duration, SessionSpec};
use crate::settings::LockSettings;
use crate::version::{Dialect, LockWrite};

/// Pause between acquire attempts while a lock-delay is active.
pub const LOCK_DELAY_RETRY: Duration = Duration::from_millis(250);
/// Longest wait of a blocking read of the lock key (a follower's, or the leader's watch); the
/// wait is TTL/2 below this.
pub const MAX_LOCK_READ_WAIT: Duration = Duration::from_secs(60);
/// Added to the lock-delay before a node that lost the lock contends again.
pub const REJOIN_PAUSE: Duration = Duration::from_secs(2);
/// The wait of a blocking read of the lock key.
fn lock_read_wait(ttl: Duration) -> Duration {
    (ttl / 2).min(MAX_LOCK_READ_WAIT)
}

/// The deadline of an acquire (a Raft write) and of the `?consistent` read that confirms one.
fn write_timeout(ttl: Duration) -> Duration {
    ttl / 4
}

enum Contended {
    Leader {
        token: u64,
        value: LockValue,
        proof: Instant,
    },
    SessionGone,
    Shutdown,
}

enum TermEnd {
    Lost(String),
    Shutdown,
}

/// The election loop of one node.
pub(crate) struct Election {
    pub(crate) consul: Consul,
    pub(crate) settings: LockSettings,
    pub(crate) dialect: Dialect,
    pub(crate) leadership: watch::Sender<Leadership>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Election {
    fn key(&self) -> String {
        self.settings.lock_key()
    }

    fn ttl(&self) -> Duration {
        self.settings.session_ttl
    }

    /// Runs until shutdown is asked; resigns on the way out.
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::new();
        let mut binding_checked = false;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let created_at = Instant::now();
            let spec = self.session_spec();
            let consul = self.consul.clone();
            let created = tokio::select! {
                _ = shutdown_asked(&mut self.shutdown) => return,
                r = consul.session_create(&spec) => r,
            };
            let id = match created {
                Ok(id) => id,
                Err(e) => {
                    log_error("creating the lock session", &e);
                    if !sleep_or_shutdown(backoff.next_delay(), &mut self.shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            backoff.reset();
            debug!(session = %id, "lock session created");
            if !binding_checked {
                binding_checked = self.check_binding(&id).await;
            }
            let (health_tx, health) = watch::channel(SessionHealth {
                last_proof: created_at,
                agent_seen: created_at,
                gone: false,
            });
            let renewer = AbortOnDrop::spawn(renew_loop(
                self.consul.clone(),
                id.clone(),
                self.ttl(),
                health_tx,
            ));
            match self.contend(&id, health.clone()).await {
                Contended::Shutdown => {
                    drop(renewer);
                    // An acquire cut short by the shutdown may still have been applied:
                    // release (a no-op when not held) before destroying.
                    let body = serde_json::to_vec(&self.lock_value()).unwrap_or_default();
                    resign(&self.consul, &self.key(), &body, &id).await;
                    return;
                }
                Contended::SessionGone => {
                    info!(session = %id, "lock session gone while following; creating a new one");
                    // Not at once: a session invalidated as soon as made (its check critical)
                    // must not turn this into a busy loop.
                    if !sleep_or_shutdown(RENEW_RETRY, &mut self.shutdown).await {
                        return;
                    }
                    continue;
                }
                Contended::Leader {
                    token,
                    value,
                    proof,
                } => {
                    let since = value.since.unwrap_or_else(Utc::now);
                    self.leadership
                        .send_replace(Leadership::Leader { token, since });
                    info!(token, session = %id, "leading");
                    let end = self.lead(&id, health, proof).await;
                    drop(renewer);
                    let body = serde_json::to_vec(&value).unwrap_or_default();
                    match end {
                        TermEnd::Shutdown => {
                            info!(token, "resigning: releasing the lock");
                            resign(&self.consul, &self.key(), &body, &id).await;
                            return;
                        }
                        TermEnd::Lost(reason) => {
                            warn!(token, %reason, "lost leadership");
                            let (consul, key, ttl) = (self.consul.clone(), self.key(), self.ttl());
                            tokio::spawn(async move {
                                cleanup_lost_session(consul, key, body, id, ttl).await
                            });
                            let pause = self.settings.lock_delay + REJOIN_PAUSE;
                            if !sleep_or_shutdown(pause, &mut self.shutdown).await {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    fn session_spec(&self) -> SessionSpec {
        let mut spec = SessionSpec {
            name: format!("cronnode leader ({})", self.settings.node),
            behavior: "release".to_string(),
            ttl: go_duration(self.ttl()),
            lock_delay: go_duration(self.settings.lock_delay),
            node_checks: None,
            service_checks: None,
            checks: None,
        };
        spec.bind(self.dialect.checks, &check_id(&self.settings.node));
        spec
    }

    /// Reads the new session back: is it bound to the service check? An agent can ignore the
    /// field that binds it without a word (one between versions in a cluster being upgraded).
    /// True once the question is settled (either way).
    async fn check_binding(&self, id: &str) -> bool {
        let check = check_id(&self.settings.node);
        match self.consul.session_info(id).await {
            Ok(Some(info)) if info.bound_to(&check) => true,
            Ok(Some(_)) => {
                error!(
                    session = %id,
                    consul = %self.dialect.version,
                    "the lock session is not bound to the check {check}: the Consul agent ignored \
                     the binding; a crashed leader is replaced only when its session TTL runs \
                     out (up to 2 x TTL + lock-delay)"
                );
                true
            }
            // Gone already, or no answer: ask again with the next session.
            Ok(None) => false,
            Err(e) => {
                log_error("reading the lock session back", &e);
                false
            }
        }
    }

    fn lock_value(&self) -> LockValue {
        LockValue {
            node: self.settings.node.clone(),
            api_addr: self.settings.api_addr.clone(),
            pid: std::process::id(),
            version: self.settings.version.clone(),
            since: Some(Utc::now()),
        }
    }

    /// Follows until the key is ours, the session is gone, or shutdown is asked.
    async fn contend(&self, id: &str, mut health: watch::Receiver<SessionHealth>) -> Contended {
        let key = self.key();
        let wait = lock_read_wait(self.ttl());
        let mut index = 0;
        let mut backoff = Backoff::new();
        // A copy, so the select below can borrow `self` for the acquire.
        let mut shutdown = self.shutdown.clone();
        loop {
            let read = tokio::select! {
                biased;
                _ = shutdown_asked(&mut shutdown) => return Contended::Shutdown,
                _ = health.wait_for(|h| h.gone) => return Contended::SessionGone,
                r = self.consul.kv_get(&key, Query::blocking(index, wait)) => r,
            };
            let entry = match read {
                Ok((entry, idx)) => {
                    index = next_index(index, idx);
                    backoff.reset();
                    entry
                }
                Err(e) => {
                    log_error("reading the lock key", &e);
                    index = 0;
                    if !sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                        return Contended::Shutdown;
                    }
                    continue;
                }
            };
            match entry.as_ref().and_then(|e| e.session.as_deref()) {
                // Ours already: an acquire whose answer was lost or given up.
                Some(holder) if holder == id => match self.confirm(id).await {
                    Some(won) => return won,
                    None => continue,
                },
                // Held by another: block on the index.
                Some(_) => continue,
                None => {}
            }
            if let Some(e) = &entry {
                if e.flags != LOCK_FLAG && e.flags != 0 {
                    warn!(
                        key,
                        flags = e.flags,
                        "lock key has foreign flags; taking it over"
                    );
                }
            }
            let value = self.lock_value();
            let sent = Instant::now();
            let attempt = tokio::select! {
                biased;
                _ = shutdown_asked(&mut shutdown) => return Contended::Shutdown,
                r = self.acquire(id, &value) => r,
            };
            let refusal = match attempt {
                Ok(Acquired::Won(token)) => {
                    return Contended::Leader {
                        token,
                        value,
                        proof: sent,
                    }
                }
                Ok(Acquired::Confirm) => match self.confirm(id).await {
                    Some(won) => return won,
                    None => continue,
                },
                Ok(Acquired::Refused(r)) => r,
                Err(e) => {
                    log_error("acquiring the lock", &e);
                    index = 0;
                    if !sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                        return Contended::Shutdown;
                    }
                    continue;
                }
            };
            debug!(%refusal, "lock not acquired");
            match refusal {
                Refusal::InvalidSession => return Contended::SessionGone,
                // Someone was faster: the read with our index answers at once and then blocks
                // on the new holder.
                Refusal::Held => {}
                // Lock-delay, or (KV) not said which: read again after a pause.
                Refusal::LockDelay
                | Refusal::HeldOrDelayed
                | Refusal::Stale
                | Refusal::Other(_) => {
                    index = 0;
                    if !sleep_or_shutdown(LOCK_DELAY_RETRY, &mut shutdown).await {
                        return Contended::Shutdown;
                    }
                }
            }
        }
    }

    /// One acquire in the dialect of the agent.
    async fn acquire(&self, id: &str, value: &LockValue) -> Result<Acquired, ConsulError> {
        let key = self.key();
        let body = serde_json::to_vec(value).unwrap_or_default();
        let timeout = write_timeout(self.ttl());
        match self.dialect.lock {
            LockWrite::Txn => Ok(
                match self
                    .consul
                    .kv_lock(&key, &body, LOCK_FLAG, id, timeout)
                    .await?
                {
                    TxnOutcome::Written(e) => {
                        warn_foreign_flags(&e, &self.dialect);
                        Acquired::Won(e.modify_index)
                    }
                    TxnOutcome::Refused(r) => Acquired::Refused(r),
                },
            ),
            LockWrite::KvAcquire => Ok(
                match self
                    .consul
                    .kv_acquire(&key, &body, LOCK_FLAG, id, timeout)
                    .await?
                {
                    Ok(()) => Acquired::Confirm,
                    Err(r) => Acquired::Refused(r),
                },
            ),
        }
    }

    /// Confirms with a `?consistent` read that the key is held by session `id`; the token is
    /// its ModifyIndex (the acquire's, or a later write's: larger than every earlier term's
    /// either way). `None`: not confirmed (not ours, or no answer), contend on.
    async fn confirm(&self, id: &str) -> Option<Contended> {
        let sent = Instant::now();
        let read = self
            .consul
            .kv_get_within(
                &self.key(),
                Query::consistent(),
                Some(write_timeout(self.ttl())),
            )
            .await;
        match read {
            Ok((Some(e), _)) if e.session.as_deref() == Some(id) => {
                warn_foreign_flags(&e, &self.dialect);
                let value = serde_json::from_slice(&e.value).unwrap_or_else(|_| self.lock_value());
                Some(Contended::Leader {
                    token: e.modify_index,
                    value,
                    proof: sent,
                })
            }
            Ok(_) => None,
            Err(e) => {
                log_error("confirming the lock", &e);
                None
            }
        }
    }

    /// Leads until the lock is lost or shutdown is asked. Sets [`Leadership::Follower`] before
    /// returning, before anything else.
    async fn lead(
        &mut self,
        id: &str,
        mut health: watch::Receiver<SessionHealth>,
        acquired: Instant,
    ) -> TermEnd {
        let ttl = self.ttl();
        let (tx, mut events) = mpsc::channel(8);
        let _monitor = AbortOnDrop::spawn(monitor_loop(
            self.consul.clone(),
            self.key(),
            id.to_string(),
            lock_read_wait(ttl),
            tx.clone(),
        ));
        let _probe = AbortOnDrop::spawn(probe_loop(self.consul.clone(), tx));
        let mut lease = Lease::new(ttl, acquired);
        let h = *health.borrow_and_update();
        lease.proved(h.last_proof);
        lease.agent_answered(h.agent_seen);
        let end = loop {
            if health.borrow().gone {
                break TermEnd::Lost("the session is gone (renew answered 404)".to_string());
            }
            let (expiry, why) = lease.expiry();
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(expiry) => {
                    break TermEnd::Lost(match why {
                        Expiry::NoProof => format!(
                            "no successful renew or consistent read within one TTL ({ttl:?})"
                        ),
                        Expiry::AgentLost => format!(
                            "the local Consul agent answered nothing for {AGENT_LOST_AFTER:?}: \
                             its node is about to be declared failed"
                        ),
                    });
                }
                _ = shutdown_asked(&mut self.shutdown) => break TermEnd::Shutdown,
                changed = health.changed() => {
                    if changed.is_err() {
                        break TermEnd::Lost("the session renewer stopped".to_string());
                    }
                    let h = *health.borrow_and_update();
                    lease.proved(h.last_proof);
                    lease.agent_answered(h.agent_seen);
                }
                ev = events.recv() => match ev {
                    Some(MonitorEvent::Held(sent)) => lease.proved(sent),
                    Some(MonitorEvent::AgentAnswered(sent)) => lease.agent_answered(sent),
                    Some(MonitorEvent::Lost(reason)) => break TermEnd::Lost(reason),
                    None => break TermEnd::Lost("the lock watch stopped".to_string()),
                },
            }
        };
        self.leadership.send_replace(Leadership::Follower);
        end
    }
}

/// What one acquire came to.
enum Acquired {
    /// Won, with the token from the write's own answer.
    Won(u64),
    /// Acquired (KV), the token still to read.
    Confirm,
    /// Refused.
    Refused(Refusal),
}

/// The lock flag must survive the write, or `consul lock` and the official clients see a
/// foreign key (the case of a txn through an agent older than 1.7).
fn warn_foreign_flags(e: &KvEntry, dialect: &Dialect) {
    if e.flags != LOCK_FLAG {
        warn!(
            flags = e.flags,
            consul = %dialect.version,
            "the lock key was written with flags {:#x} instead of the lock flag {LOCK_FLAG:#x}",
            e.flags
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalive::renew_timeout;

    #[test]
    fn every_wait_is_shorter_than_a_failover() {
        let ttl = Duration::from_secs(10);
        assert_eq!(lock_read_wait(ttl), Duration::from_secs(5));
        assert_eq!(renew_timeout(ttl), Duration::from_secs(2));
        assert_eq!(write_timeout(ttl), Duration::from_millis(2500));
        assert_eq!(
            lock_read_wait(Duration::from_secs(3600)),
            MAX_LOCK_READ_WAIT
        );
    }
}
