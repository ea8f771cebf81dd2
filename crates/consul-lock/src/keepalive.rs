//! What runs beside the election while a session lives, and after: the renewer (every TTL/2,
//! every [`RENEW_RETRY`] after an error, each renew bounded), the leader's `?consistent` watch
//! of the lock key, the probe of the local agent, the graceful resign and the clean-up after a
//! loss. Each reports to the election through a channel; none decides leadership (`lease.rs`
//! and `election.rs` do).

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::error::ConsulError;
use crate::http::Consul;
use crate::kv::{next_index, Query, LOCK_FLAG};
use crate::retry::Backoff;
use crate::session::Renewal;

/// Retry interval of a failed renew (and of a failed watch read), as `api/lock.go` does.
pub const RENEW_RETRY: Duration = Duration::from_secs(1);
/// How often a leader asks its agent whether it is there (`GET /v1/agent/self`, answered by the
/// agent alone: no RPC, no Raft).
pub const AGENT_PROBE_EVERY: Duration = Duration::from_secs(1);

/// The deadline of a renew: it is answered by the Raft leader from memory, at once when there
/// is one; a renew hung behind a frozen one is given up and sent again.
pub(crate) fn renew_timeout(ttl: Duration) -> Duration {
    ttl / 5
}

/// The session's liveness as the renewer sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionHealth {
    /// When the last successful renew (or the create) was sent.
    pub(crate) last_proof: Instant,
    /// When the last request the agent answered at all was sent.
    pub(crate) agent_seen: Instant,
    /// A renew was answered 404.
    pub(crate) gone: bool,
}

pub(crate) enum MonitorEvent {
    /// A consistent read sent at this instant saw our session on the key.
    Held(Instant),
    /// The agent answered a request sent at this instant (any status).
    AgentAnswered(Instant),
    /// The key is no longer ours.
    Lost(String),
}

/// Renews the session every TTL/2, every [`RENEW_RETRY`] after an error, until it is gone.
pub(crate) async fn renew_loop(
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
        match consul.session_renew(&id, renew_timeout(ttl)).await {
            Ok(Renewal::Renewed(_)) => {
                health.send_modify(|h| {
                    h.last_proof = h.last_proof.max(sent);
                    h.agent_seen = h.agent_seen.max(sent);
                });
                next = sent + interval;
            }
            Ok(Renewal::Gone) => {
                health.send_modify(|h| h.gone = true);
                return;
            }
            Err(e) => {
                log_error("renewing the lock session", &e);
                if e.answered() {
                    health.send_modify(|h| h.agent_seen = h.agent_seen.max(sent));
                }
                next = Instant::now() + RENEW_RETRY;
            }
        }
    }
}

/// Watches the lock key with blocking `?consistent` reads while leading.
pub(crate) async fn monitor_loop(
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
        let event = match consul.kv_get(&key, q).await {
            Ok((entry, idx)) => {
                index = next_index(index, idx);
                match entry {
                    None => MonitorEvent::Lost("the lock key was deleted".to_string()),
                    Some(e) => match e.session {
                        Some(s) if s == id => MonitorEvent::Held(sent),
                        Some(other) => MonitorEvent::Lost(format!(
                            "the lock key is held by another session ({other})"
                        )),
                        None => MonitorEvent::Lost("the lock key was released".to_string()),
                    },
                }
            }
            Err(e) => {
                log_error("watching the lock key", &e);
                if e.answered()
                    && events
                        .send(MonitorEvent::AgentAnswered(sent))
                        .await
                        .is_err()
                {
                    return;
                }
                tokio::time::sleep(RENEW_RETRY).await;
                continue;
            }
        };
        let lost = matches!(event, MonitorEvent::Lost(_));
        if events.send(event).await.is_err() || lost {
            return;
        }
    }
}

/// Asks the local agent every [`AGENT_PROBE_EVERY`] whether it is there (each request bounded
/// by the same interval); reports every answer, whatever its status.
pub(crate) async fn probe_loop(consul: Consul, events: mpsc::Sender<MonitorEvent>) {
    let mut next = Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        next = sent + AGENT_PROBE_EVERY;
        let answered = match consul.agent_self(AGENT_PROBE_EVERY).await {
            Ok(_) => true,
            Err(e) => e.answered(),
        };
        if answered
            && events
                .send(MonitorEvent::AgentAnswered(sent))
                .await
                .is_err()
        {
            return;
        }
    }
}

/// Graceful resign: release the key (writing the value back), then destroy the session.
pub(crate) async fn resign(consul: &Consul, key: &str, value: &[u8], id: &str) {
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
pub(crate) async fn cleanup_lost_session(
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
pub(crate) fn log_error(what: &str, e: &ConsulError) {
    if e.is_transient() {
        warn!(error = %e, "{what}");
    } else {
        error!(error = %e, "{what}");
    }
}
