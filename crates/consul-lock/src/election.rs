//! The leader election: Consul's own algorithm (consul-api.md §7, `api/lock.go`) plus the
//! fencing token.
//!
//! One loop per node ([`Election::run`]): create a session bound to the node's service check and
//! to `serfHealth`; renew it every TTL/2 (retry every second on error) in its own task; contend
//! for `<prefix>/leader` (blocking reads; a txn `lock` with the official flag and a JSON value
//! when the key is free, whose answer carries the ModifyIndex: the token); while leading, watch
//! the key with blocking `?consistent` reads. Leadership ends at once, and the owner of the
//! [`Leadership`] channel is told before anything else is done, on:
//! - a renew answered 404 (the session is gone);
//! - the watch seeing the key missing, unheld, or held by another session;
//! - no successful renew or consistent read within one TTL by the local clock, counted from the
//!   moment the proving request was *sent* (Consul keeps a session at least TTL after it
//!   received the renew, so this node steps down before Consul could give the lock away; it
//!   even steps down [`STEP_DOWN_EARLY_DIVISOR`]th of a TTL early).
//!
//! After a loss the session is released and destroyed in the background, the node waits
//! lock-delay + [`REJOIN_PAUSE`] (so a follower already blocked on the key goes first) and
//! contends again with a new session. Graceful resign: release the key, then destroy the
//! session (this order starts no lock-delay, so a successor takes over at once).
//!
//! Must not: make any side effect of a leader itself (the owner of the channel does, carrying
//! the token); announce leadership after shutdown was asked.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::agent::check_id;
use crate::error::ConsulError;
use crate::http::Consul;
use crate::kv::{next_index, Query, TxnOutcome, LOCK_FLAG};
use crate::leader::{Leadership, LockValue};
use crate::retry::{shutdown_asked, sleep_or_shutdown, AbortOnDrop, Backoff};
use crate::session::{go_duration, Renewal, ServiceCheckRef, SessionSpec};
use crate::settings::LockSettings;

/// Pause between acquire attempts while a lock-delay is active.
pub const LOCK_DELAY_RETRY: Duration = Duration::from_millis(250);
/// Wait of a follower's blocking read of the lock key.
pub const FOLLOW_WAIT: Duration = Duration::from_secs(60);
/// Longest wait of the leader's `?consistent` watch (shorter with a short TTL).
pub const MONITOR_MAX_WAIT: Duration = Duration::from_secs(60);
/// Retry interval of a failed renew (and of a failed watch read), as `api/lock.go` does.
pub const RENEW_RETRY: Duration = Duration::from_secs(1);
/// A leader steps down 1/20 of a TTL early (0.5 s at 10 s): absorbs a difference of clock
/// rates between this host and Consul's servers, and the delay of the step-down itself.
pub const STEP_DOWN_EARLY_DIVISOR: u32 = 20;
/// Added to the lock-delay before a node that lost the lock contends again.
pub const REJOIN_PAUSE: Duration = Duration::from_secs(2);

/// The session's liveness as the renewer sees it.
#[derive(Debug, Clone, Copy)]
struct SessionHealth {
    /// When the last successful renew (or the create) was sent.
    last_proof: Instant,
    /// A renew was answered 404.
    gone: bool,
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

enum MonitorEvent {
    /// A consistent read sent at this instant saw our session on the key.
    Held(Instant),
    /// The key is no longer ours.
    Lost(String),
}

/// The election loop of one node.
pub(crate) struct Election {
    pub(crate) consul: Consul,
    pub(crate) settings: LockSettings,
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
            let (health_tx, health) = watch::channel(SessionHealth {
                last_proof: created_at,
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
        SessionSpec {
            name: format!("cronnode leader ({})", self.settings.node),
            behavior: "release".to_string(),
            ttl: go_duration(self.ttl()),
            lock_delay: go_duration(self.settings.lock_delay),
            node_checks: vec!["serfHealth".to_string()],
            service_checks: vec![ServiceCheckRef {
                id: check_id(&self.settings.node),
            }],
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
    async fn contend(&mut self, id: &str, mut health: watch::Receiver<SessionHealth>) -> Contended {
        let key = self.key();
        let mut index = 0;
        let mut backoff = Backoff::new();
        loop {
            let sent = Instant::now();
            let read = tokio::select! {
                biased;
                _ = shutdown_asked(&mut self.shutdown) => return Contended::Shutdown,
                _ = health.wait_for(|h| h.gone) => return Contended::SessionGone,
                r = self.consul.kv_get(&key, Query::blocking(index, FOLLOW_WAIT)) => r,
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
                    if !sleep_or_shutdown(backoff.next_delay(), &mut self.shutdown).await {
                        return Contended::Shutdown;
                    }
                    continue;
                }
            };
            match entry.as_ref().and_then(|e| e.session.as_deref()) {
                // Ours already: an acquire whose answer was lost.
                Some(holder) if holder == id => {
                    if let Some(e) = entry {
                        let value =
                            serde_json::from_slice(&e.value).unwrap_or_else(|_| self.lock_value());
                        return Contended::Leader {
                            token: e.modify_index,
                            value,
                            proof: sent,
                        };
                    }
                }
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
            let body = serde_json::to_vec(&value).unwrap_or_default();
            let sent = Instant::now();
            let locked = tokio::select! {
                biased;
                _ = shutdown_asked(&mut self.shutdown) => return Contended::Shutdown,
                r = self.consul.kv_lock(&key, &body, LOCK_FLAG, id) => r,
            };
            match locked {
                Ok(TxnOutcome::Written(e)) => {
                    return Contended::Leader {
                        token: e.modify_index,
                        value,
                        proof: sent,
                    }
                }
                Ok(TxnOutcome::Refused(what)) if what.contains("invalid session") => {
                    return Contended::SessionGone
                }
                Ok(TxnOutcome::Refused(what)) => {
                    // Lock-delay active, or someone was faster: read again (at once).
                    debug!(%what, "lock not acquired");
                    if what.contains("lock delay") || !what.contains("already held") {
                        index = 0;
                        if !sleep_or_shutdown(LOCK_DELAY_RETRY, &mut self.shutdown).await {
                            return Contended::Shutdown;
                        }
                    }
                }
                Err(e) => {
                    log_error("acquiring the lock", &e);
                    index = 0;
                    if !sleep_or_shutdown(backoff.next_delay(), &mut self.shutdown).await {
                        return Contended::Shutdown;
                    }
                }
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
        let proof_lasts = ttl - ttl / STEP_DOWN_EARLY_DIVISOR;
        let (tx, mut events) = mpsc::channel(8);
        let _monitor = AbortOnDrop::spawn(monitor_loop(
            self.consul.clone(),
            self.key(),
            id.to_string(),
            (ttl / 2).min(MONITOR_MAX_WAIT),
            tx,
        ));
        let mut last_proof = acquired.max(health.borrow_and_update().last_proof);
        let end = loop {
            if health.borrow().gone {
                break TermEnd::Lost("the session is gone (renew answered 404)".to_string());
            }
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(last_proof + proof_lasts) => {
                    break TermEnd::Lost(format!(
                        "no successful renew or consistent read within one TTL ({ttl:?})"
                    ));
                }
                _ = shutdown_asked(&mut self.shutdown) => break TermEnd::Shutdown,
                changed = health.changed() => {
                    if changed.is_err() {
                        break TermEnd::Lost("the session renewer stopped".to_string());
                    }
                    last_proof = last_proof.max(health.borrow_and_update().last_proof);
                }
                ev = events.recv() => match ev {
                    Some(MonitorEvent::Held(sent)) => last_proof = last_proof.max(sent),
                    Some(MonitorEvent::Lost(reason)) => break TermEnd::Lost(reason),
                    None => break TermEnd::Lost("the lock watch stopped".to_string()),
                },
            }
        };
        self.leadership.send_replace(Leadership::Follower);
        end
    }
}

/// Renews the session every TTL/2, every [`RENEW_RETRY`] after an error, until it is gone.
async fn renew_loop(
    consul: Consul,
    id: String,
    ttl: Duration,
    health: watch::Sender<SessionHealth>,
) {
    let interval = ttl / 2;
    let mut next = Instant::now() + interval;
    loop {
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        match consul.session_renew(&id).await {
            Ok(Renewal::Renewed(_)) => {
                health.send_modify(|h| h.last_proof = h.last_proof.max(sent));
                next = sent + interval;
            }
            Ok(Renewal::Gone) => {
                health.send_modify(|h| h.gone = true);
                return;
            }
            Err(e) => {
                log_error("renewing the lock session", &e);
                next = Instant::now() + RENEW_RETRY;
            }
        }
    }
}

/// Watches the lock key with blocking `?consistent` reads while leading.
async fn monitor_loop(
    consul: Consul,
    key: String,
    id: String,
    wait: Duration,
    events: mpsc::Sender<MonitorEvent>,
) {
    let mut index = 0;
    loop {
        let sent = Instant::now();
        let q = Query {
            index,
            wait,
            consistent: true,
        };
        match consul.kv_get(&key, q).await {
            Ok((entry, idx)) => {
                index = next_index(index, idx);
                let event = match entry {
                    None => MonitorEvent::Lost("the lock key was deleted".to_string()),
                    Some(e) => match e.session {
                        Some(s) if s == id => MonitorEvent::Held(sent),
                        Some(other) => MonitorEvent::Lost(format!(
                            "the lock key is held by another session ({other})"
                        )),
                        None => MonitorEvent::Lost("the lock key was released".to_string()),
                    },
                };
                let lost = matches!(event, MonitorEvent::Lost(_));
                if events.send(event).await.is_err() || lost {
                    return;
                }
            }
            Err(e) => {
                log_error("watching the lock key", &e);
                tokio::time::sleep(RENEW_RETRY).await;
            }
        }
    }
}

/// Graceful resign: release the key (writing the value back), then destroy the session.
async fn resign(consul: &Consul, key: &str, value: &[u8], id: &str) {
    match consul.kv_release(key, value, LOCK_FLAG, id).await {
        Ok(true) => {}
        Ok(false) => debug!("the lock was no longer held by this session"),
        Err(e) => log_error("releasing the lock", &e),
    }
    if let Err(e) = consul.session_destroy(id).await {
        log_error("destroying the lock session", &e);
    }
}

/// After a loss: release and destroy the old session, retrying while Consul is unreachable,
/// until the session would have expired anyway (2×TTL plus a margin).
async fn cleanup_lost_session(
    consul: Consul,
    key: String,
    value: Vec<u8>,
    id: String,
    ttl: Duration,
) {
    let give_up = Instant::now() + ttl * 2 + RENEW_RETRY * 5;
    let mut backoff = Backoff::new();
    let mut released = false;
    while Instant::now() < give_up {
        if !released {
            released = consul
                .kv_release(&key, &value, LOCK_FLAG, &id)
                .await
                .is_ok();
        }
        if released && consul.session_destroy(&id).await.is_ok() {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// ACL errors need the operator: log them as errors; the rest are expected during outages.
fn log_error(what: &str, e: &ConsulError) {
    if e.is_transient() {
        warn!(error = %e, "{what}");
    } else {
        error!(error = %e, "{what}");
    }
}
