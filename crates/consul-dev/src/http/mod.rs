//! The HTTP server: accept loop, connection-level faults, ACLs, and the route table.
//!
//! Routes (everything else answers 404 like an unknown endpoint, wrong methods 405):
//! - `/v1/kv/<key>` GET PUT DELETE (`kv.rs`)
//! - `/v1/session/{create,renew/:id,destroy/:id,info/:id,node/:node,list}` (`session.rs`)
//! - `/v1/agent/{self,services,checks}`, `/v1/agent/service/{register,deregister/:id}`,
//!   `/v1/agent/check/{pass,warn,fail,update}/:id` (`agent.rs`)
//! - `/v1/catalog/{services,service/:name,nodes}`, `/v1/health/{service/:name,checks/:name}`,
//!   `/v1/status/{leader,peers}` (`catalog.rs`)
//! - `/v1/txn` PUT (`txn.rs`)
//! - `/_dev/...` fault injection (`dev.rs`, documented in the crate README)
//!
//! Must not hold the store lock across an await: handlers read or write through
//! [`Shared::read`] and [`Shared::write`], which also persist and wake blocking queries.

mod agent;
mod blocking;
mod catalog;
mod dev;
mod json;
mod kv;
mod reply;
mod session;
mod txn;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::Store;
use crate::version::ApiVersion;
pub use reply::{Ctx, Reply};

/// Bodies larger than this are refused before any endpoint looks at them.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Pause after a failed accept (e.g. out of descriptors), doubled up to the ceiling.
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How often a request held behind a frozen Raft leader looks whether the freeze is over.
const FREEZE_POLL: Duration = Duration::from_millis(50);

/// Faults injected through `/_dev/`.
#[derive(Debug, Default)]
pub struct Faults {
    /// Until then, every API call answers 500 `No cluster leader`.
    pub no_leader_until: Option<Instant>,
    /// Until then, API requests get their connection dropped without an answer.
    pub refuse_until: Option<Instant>,
    /// The Raft leader, which this agent forwards to, is frozen (SIGSTOP).
    pub frozen_leader: Option<FrozenLeader>,
}

/// A Raft leader frozen from `since` to `until`, replaced by a new one at `elected_at`, as
/// this agent (a healthy server or client) sees it: a request that needs the leader and
/// started before the election (a read in flight, a blocking query already waiting, a write
/// sent meanwhile) hangs until the old leader wakes; one sent after the election is served by
/// the new leader. The new leader restarts every session TTL timer (2×TTL), as Consul's does.
#[derive(Debug, Clone, Copy)]
pub struct FrozenLeader {
    /// When the leader froze.
    pub since: Instant,
    /// When the other servers elected a new one.
    pub elected_at: Instant,
    /// When the old leader wakes up (SIGCONT).
    pub until: Instant,
    /// Whether the new leader has restarted the session timers.
    pub timers_reset: bool,
}

impl Faults {
    /// Until when a request that needs the leader, started at `started`, hangs at `now`.
    pub fn hung_until(&self, started: Instant, now: Instant) -> Option<Instant> {
        let f = self.frozen_leader?;
        (f.since <= now && now < f.until && started < f.elected_at).then_some(f.until)
    }

    /// Whether no leader can expire sessions at `now` (frozen, not yet replaced).
    pub fn leaderless(&self, now: Instant) -> bool {
        self.frozen_leader
            .is_some_and(|f| f.since <= now && now < f.elected_at)
    }
}

/// State shared by every connection and the timer task.
pub struct Shared {
    store: Mutex<Store>,
    /// Blocking queries waiting for a write (locked after `store` when both are held).
    waiters: Mutex<blocking::Waiters>,
    /// The token that ACLs require, when ACLs are on.
    pub acl_token: Option<String>,
    /// Where the snapshot goes.
    pub data_dir: Option<PathBuf>,
    /// Injected faults.
    pub faults: Mutex<Faults>,
    /// The Consul release whose behaviour differences are emulated.
    pub api: ApiVersion,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the store half-written in a way we could
    // repair; carrying on keeps a dev agent answering.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Wraps a store.
    pub fn new(
        store: Store,
        acl_token: Option<String>,
        data_dir: Option<PathBuf>,
        api: ApiVersion,
    ) -> Shared {
        Shared {
            store: Mutex::new(store),
            waiters: Mutex::new(blocking::Waiters::default()),
            acl_token,
            data_dir,
            faults: Mutex::new(Faults::default()),
            api,
        }
    }

    /// Waits while a request started at `started` is held behind a frozen Raft leader;
    /// true if it was held at all.
    pub async fn wait_out_frozen_leader(&self, started: Instant) -> bool {
        let mut held = false;
        loop {
            let now = Instant::now();
            let Some(until) = self.faults().hung_until(started, now) else {
                return held;
            };
            held = true;
            tokio::time::sleep(FREEZE_POLL.min(until - now)).await;
        }
    }

    /// Reads the store.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&relock(&self.store))
    }

    /// Writes the store; when the index moved, persists and wakes the blocking queries the
    /// write concerns.
    pub fn write<R>(&self, f: impl FnOnce(&mut Store, Instant) -> R) -> R {
        let mut s = relock(&self.store);
        let before = s.index;
        let floor = s.kv.reaped_floor;
        let r = f(&mut s, Instant::now());
        let keys = s.kv.take_changes();
        if s.index != before {
            if let Some(dir) = &self.data_dir {
                if let Err(e) = crate::persist::save(dir, &s) {
                    tracing::error!(error = %e, "could not persist state");
                }
            }
            let changes = blocking::Changes {
                keys: &keys,
                kv_moved: !keys.is_empty() || s.kv.reaped_floor != floor,
            };
            relock(&self.waiters).wake(&s, &changes);
        }
        r
    }

    fn waiters(&self) -> MutexGuard<'_, blocking::Waiters> {
        relock(&self.waiters)
    }

    /// Current faults.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        relock(&self.faults)
    }
}

/// Accepts connections until `shutdown` flips, serving each on its own task.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = ACCEPT_BACKOFF_START;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(a) => {
                backoff = ACCEPT_BACKOFF_START;
                a
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(shared, req).await }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// Why a connection is dropped instead of answered (the `refuse` fault).
#[derive(Debug, thiserror::Error)]
#[error("connection refused by fault injection")]
struct Refused;

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Refused> {
    let dev = req.uri().path().starts_with("/_dev/");
    if !dev {
        let until = shared.faults().refuse_until;
        if until.is_some_and(|u| u > Instant::now()) {
            return Err(Refused);
        }
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(
                Reply::text(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
                    .into_response(),
            )
        }
    };
    let raw_path = parts.uri.path().to_string();
    let ctx = Ctx {
        method: parts.method,
        path: reply::percent_decode(&raw_path, false),
        raw_path,
        query: reply::parse_query(parts.uri.query().unwrap_or("")),
        headers: parts.headers,
        body,
        filtered: false,
    };
    let reply = route(&shared, ctx).await;
    Ok(reply.into_response())
}

/// Whether a request is forwarded to the Raft leader: every write and every read but `?stale`
/// ones; the agent's own endpoints and the status endpoints are answered where they arrive.
fn needs_leader(ctx: &Ctx) -> bool {
    let local = ctx.path.starts_with("/v1/agent/") || ctx.path.starts_with("/v1/status/");
    let stale = ctx.method == hyper::Method::GET && ctx.has("stale");
    !(local || stale)
}

async fn route(shared: &Shared, mut ctx: Ctx) -> Reply {
    if ctx.path.starts_with("/_dev/") {
        return dev::route(shared, &ctx);
    }
    if !ctx.path.starts_with("/v1/") {
        return Reply::not_found();
    }
    if needs_leader(&ctx)
        && shared.wait_out_frozen_leader(Instant::now()).await
        && ctx.method != hyper::Method::GET
    {
        // The old leader wakes up deposed: what it had not committed is lost.
        return Reply::internal("leadership lost while committing log");
    }
    let no_leader = shared.faults().no_leader_until;
    if no_leader.is_some_and(|u| u > Instant::now()) {
        if ctx.path == "/v1/status/leader" {
            return Reply::json(&serde_json::json!(""));
        }
        return Reply::internal("No cluster leader");
    }
    if let Some(dc) = ctx.get("dc").filter(|d| !d.is_empty()) {
        let ours = shared.read(|s| s.node.datacenter.clone());
        if dc != ours {
            return Reply::internal("No path to datacenter");
        }
    }
    if let Some(denied) = check_acl(shared, &mut ctx) {
        return denied;
    }
    let path = ctx.path.clone();
    let rest = &path["/v1/".len()..];
    let (area, sub) = rest.split_once('/').unwrap_or((rest, ""));
    match area {
        "kv" => kv::route(shared, &ctx, sub).await,
        "session" => session::route(shared, &ctx, sub).await,
        "agent" => agent::route_agent(shared, &ctx, sub),
        "catalog" | "health" | "status" => catalog::route(shared, &ctx, area, sub).await,
        "txn" if sub.is_empty() => txn::route(shared, &ctx).await,
        _ => Reply::not_found(),
    }
}

/// The token a request presents: `?token=`, then `X-Consul-Token`, then a bearer token.
fn presented_token(ctx: &Ctx) -> Option<String> {
    if let Some(t) = ctx.get("token").filter(|t| !t.is_empty()) {
        return Some(t.to_string());
    }
    if let Some(t) = ctx
        .headers
        .get("x-consul-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    {
        return Some(t.to_string());
    }
    ctx.headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// With ACLs on: the right token passes; another token is `ACL not found`; no token is the
/// anonymous token, which may read status, sees list endpoints filtered to nothing, and is
/// denied everything else with Consul's permission message.
fn check_acl(shared: &Shared, ctx: &mut Ctx) -> Option<Reply> {
    let want = shared.acl_token.as_deref()?;
    match presented_token(ctx) {
        Some(t) if t == want => None,
        Some(_) => Some(Reply::text(StatusCode::FORBIDDEN, "ACL not found")),
        None => {
            let (perm, resource, list) = permission(ctx);
            if perm.is_empty() {
                return None;
            }
            if list {
                ctx.filtered = true;
                return None;
            }
            Some(Reply::text(
                StatusCode::FORBIDDEN,
                format!(
                    "Permission denied: anonymous token lacks permission '{perm}' on {resource:?}. \
                     The anonymous token is used implicitly when a request does not specify a token."
                ),
            ))
        }
    }
}

/// The permission an endpoint needs, the resource it names, and whether Consul filters the
/// answer (list reads) rather than denying. An empty permission needs none.
fn permission(ctx: &Ctx) -> (&'static str, String, bool) {
    let p = &ctx.path["/v1/".len()..];
    let read = ctx.method == hyper::Method::GET;
    let tail = |prefix: &str| p.strip_prefix(prefix).unwrap_or("").to_string();
    if p.starts_with("status/") {
        return ("", String::new(), false);
    }
    if let Some(key) = p.strip_prefix("kv/") {
        if read {
            let list = ctx.has("recurse") || ctx.has("keys");
            return ("key:read", key.to_string(), list);
        }
        return ("key:write", key.to_string(), false);
    }
    if p == "txn" {
        return ("key:write", String::new(), false);
    }
    if p.starts_with("session/") {
        if read {
            return ("session:read", String::new(), true);
        }
        return ("session:write", String::new(), false);
    }
    if p == "agent/self" {
        return ("agent:read", String::new(), false);
    }
    if p == "agent/services" || p == "agent/checks" {
        return ("service:read", String::new(), true);
    }
    if p.starts_with("agent/service/deregister/") {
        return ("service:write", tail("agent/service/deregister/"), false);
    }
    if p.starts_with("agent/") {
        return ("service:write", String::new(), false);
    }
    ("service:read", String::new(), true)
}
