//! A cronnode node in Consul: its service registration, its TTL check, and its election.
//!
//! [`Node::start`] spawns one supervisor task that reads the agent's version (refusing, through
//! [`NodeHandle::refused`], an agent older than cronnode supports), then registers the service
//! (check passing) before anything else, because the lock session binds to that check; then
//! runs the check loop
//! (pass every TTL/2, register again when the agent forgot the check, move the `leader` tag
//! when leadership changes) beside the election (`election.rs`). [`NodeHandle::shutdown`]
//! resigns (release, then destroy the session) and deregisters the service.
//!
//! Must not: decide leadership (the election does) or touch the job store.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::agent::{CheckPass, ServiceSpec};
use crate::election::Election;
use crate::error::ConsulError;
use crate::http::{Consul, REQUEST_TIMEOUT};
use crate::leader::Leadership;
use crate::retry::{shutdown_asked, sleep_or_shutdown, AbortOnDrop, Backoff};
use crate::settings::{LockSettings, MAX_LOCK_DELAY, MAX_SESSION_TTL, MIN_SESSION_TTL};
use crate::version::UnsupportedVersion;

/// Retry interval of a failed check pass or registration.
pub const CHECK_RETRY: Duration = Duration::from_secs(1);
/// How long a shutdown waits for the check loop's request in flight before deregistering.
pub const CHECK_STOP_GRACE: Duration = Duration::from_secs(5);

/// Starts nodes; see [`Node::start`].
#[derive(Debug)]
pub struct Node;

/// The running node: its leadership channel and its shutdown. Dropping it without
/// [`NodeHandle::shutdown`] is [`NodeHandle::abandon`]: nothing is released (a caller's bounded
/// grace period may drop a shutdown that takes too long while Consul is unreachable).
#[derive(Debug)]
pub struct NodeHandle {
    leadership: watch::Receiver<Leadership>,
    refusal: watch::Receiver<Option<UnsupportedVersion>>,
    shutdown: watch::Sender<bool>,
    supervisor: AbortOnDrop,
}

impl Node {
    /// Registers the node's service and runs the election in the background (needs a tokio
    /// runtime). `settings` should have passed [`LockSettings::validate`]; out-of-range
    /// durations are clamped into range (with a warning) rather than sent to Consul.
    pub fn start(consul: Consul, settings: LockSettings) -> NodeHandle {
        let settings = clamp(settings);
        let (leadership_tx, leadership) = watch::channel(Leadership::Follower);
        let (refusal_tx, refusal) = watch::channel(None);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let supervisor = AbortOnDrop::spawn(supervise(
            consul,
            settings,
            leadership_tx,
            refusal_tx,
            shutdown_rx,
        ));
        NodeHandle {
            leadership,
            refusal,
            shutdown,
            supervisor,
        }
    }
}

impl NodeHandle {
    /// This node's leadership: `Follower`, or `Leader { token, since }` while it holds the lock.
    /// It turns `Follower` before anything else happens when the lock is lost.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Resolves if the node refuses to run against its agent (older than
    /// [`crate::MIN_CONSUL_VERSION`]); the node then has stopped without registering anything.
    /// Never resolves otherwise.
    pub async fn refused(&self) -> UnsupportedVersion {
        let mut rx = self.refusal.clone();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Resigns (releases the lock, then destroys the session) and deregisters the service.
    /// Bounded by the HTTP deadlines of those few calls.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.supervisor.0).await;
    }

    /// Stops every task at once without resigning or deregistering: what a killed process
    /// leaves behind (the session lives until its TTL or its check expires). For failure
    /// drills and tests.
    pub fn abandon(self) {
        drop(self.supervisor);
    }
}

fn clamp(mut s: LockSettings) -> LockSettings {
    if let Err(e) = s.validate() {
        warn!(error = %e, "starting with invalid settings; durations are clamped");
    }
    s.session_ttl = s.session_ttl.clamp(MIN_SESSION_TTL, MAX_SESSION_TTL);
    s.lock_delay = s.lock_delay.min(MAX_LOCK_DELAY);
    s
}

async fn supervise(
    consul: Consul,
    settings: LockSettings,
    leadership: watch::Sender<Leadership>,
    refusal: watch::Sender<Option<UnsupportedVersion>>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The version first: it decides how the session and the lock are written, and whether
    // this node may run at all.
    let mut backoff = Backoff::new();
    let dialect = loop {
        match consul.dialect(REQUEST_TIMEOUT).await {
            Ok(Ok(d)) => break d,
            Ok(Err(unsupported)) => {
                error!(error = %unsupported, "refusing to start");
                refusal.send_replace(Some(unsupported));
                return;
            }
            Err(e) => {
                // A 403 needs the operator (the token lacks agent:read); the rest is an outage.
                if e.is_transient() {
                    warn!(error = %e, "reading the Consul agent's version");
                } else {
                    error!(error = %e, "reading the Consul agent's version");
                }
                if !sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                    return;
                }
            }
        }
    };
    info!(consul = %dialect.version, "Consul agent version read");
    let spec = ServiceSpec {
        node: settings.node.clone(),
        api_addr: settings.api_addr.clone(),
        version: settings.version.clone(),
        check_ttl: settings.session_ttl,
        leader: false,
        meta: settings.meta.clone(),
    };
    // The session binds to the check: register first.
    backoff.reset();
    loop {
        match consul.service_register(&spec).await {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, "registering the cronnode service");
                if !sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                    return;
                }
            }
        }
    }
    info!(node = %settings.node, "cronnode service registered");
    let check = AbortOnDrop::spawn(check_loop(
        consul.clone(),
        spec.clone(),
        leadership.subscribe(),
        shutdown.clone(),
    ));
    let election = Election {
        consul: consul.clone(),
        settings: settings.clone(),
        dialect,
        leadership,
        shutdown: shutdown.clone(),
    };
    election.run().await;
    // Shutdown is asked, so the check loop ends at its next turn. Let it finish a request that
    // is already on the wire rather than aborting it: an aborted register (the tag moving as
    // we resigned) could still reach the agent after our deregister and bring the service back.
    let mut check = check;
    let _ = tokio::time::timeout(CHECK_STOP_GRACE, &mut check.0).await;
    drop(check);
    if let Err(e) = consul.service_deregister(&settings.node).await {
        warn!(error = %e, "deregistering the cronnode service");
    }
    info!(node = %settings.node, "cronnode service deregistered");
}

/// Passes the check every TTL/2; registers again when the agent forgot it or the tag must move.
async fn check_loop(
    consul: Consul,
    mut spec: ServiceSpec,
    mut leadership: watch::Receiver<Leadership>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = spec.check_ttl / 2;
    let mut next = tokio::time::Instant::now() + interval;
    let mut register = false;
    loop {
        tokio::select! {
            _ = shutdown_asked(&mut shutdown) => return,
            _ = tokio::time::sleep_until(next) => {}
            changed = leadership.changed() => {
                if changed.is_err() {
                    return;
                }
                let leader = leadership.borrow_and_update().is_leader();
                if leader == spec.leader {
                    continue;
                }
                spec.leader = leader;
                register = true;
            }
        }
        let result = if register {
            consul
                .service_register(&spec)
                .await
                .map(|()| CheckPass::Passed)
        } else {
            consul.check_pass(&spec.node, "cronnode is running").await
        };
        next = match result {
            Ok(CheckPass::Passed) => {
                register = false;
                tokio::time::Instant::now() + interval
            }
            Ok(CheckPass::Unknown) => {
                warn!("the agent forgot the cronnode check; registering again");
                register = true;
                tokio::time::Instant::now()
            }
            Err(e) => {
                log_check_error(&e);
                tokio::time::Instant::now() + CHECK_RETRY
            }
        };
    }
}

fn log_check_error(e: &ConsulError) {
    warn!(error = %e, "passing the cronnode check");
}
