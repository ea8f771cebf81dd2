//! The HTTP API, served by every node (hyper 1, HTTP/1.1, JSON).
//!
//! The routes are the table in [`routes`] (`routes::ROUTES`): one row per route, which both
//! dispatches and makes the OpenAPI document served at `/v1/openapi.json` ([`openapi`]). The
//! README's "The HTTP API" section documents them for users.
//!
//! This module owns the listener, the bearer token (every route but the open ones, `/health`)
//! and graceful shutdown; [`connections`] the connection limit and the header and idle
//! timeouts; [`body`] the body's size and time limits. The layers below it only look
//! down: [`routes`] (the table) → [`router`] (matching, ids, queries) and the handlers,
//! [`jobs`] and [`cluster`] → [`forward`] (reaching the leader) → [`state`], [`errors`],
//! [`reply`], [`body`]. A `HEAD` is answered as the `GET` of the same path (hyper sends no
//! body). Handlers never enqueue: manual runs and fence resets go to the leader loop
//! (`crate::leader`), on this node or forwarded to the leader's API.

pub mod backfill;
pub mod body;
pub mod cluster;
pub mod connections;
pub mod errors;
pub mod forward;
pub mod jobs;
pub mod openapi;
pub mod reply;
pub mod router;
pub mod routes;
pub mod state;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

pub use errors::ApiError;
pub use state::AppState;

use connections::{Connections, CountedIo, RequestGuard, Verdict, HEADER_READ_TIMEOUT};
use router::{Body, Call};

/// How long in-flight requests get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Accept errors back off from this delay…
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(10);
/// …doubling up to this ceiling.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves the API on `listener` until `shutdown` fires, then gives in-flight requests
/// [`SHUTDOWN_GRACE`] to finish. Every connection is accepted at once; `connections.rs` decides
/// which ones to close, and when.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let connections = Connections::new(connections::connection_limit());
    let mut backoff = ACCEPT_BACKOFF_START;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => { backoff = ACCEPT_BACKOFF_START; s }
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed; backing off {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        // Every connection busy and the headroom used: close this one at once rather than
        // leave it in the backlog.
        let Some(admitted) = connections.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let slot = admitted.slot.clone();
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let guard = slot.begin_request();
            let state = state.clone();
            async move {
                let resp = handle(state, req).await;
                Ok::<_, Infallible>(resp.map(|body| Answer {
                    body,
                    _guard: guard,
                }))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(
                TokioIo::new(CountedIo::new(stream, admitted.slot.clone())),
                service,
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let slot = admitted.slot.clone();
            tokio::pin!(conn);
            loop {
                let wake_at = match slot.verdict(tokio::time::Instant::now()) {
                    Verdict::Close => break,
                    Verdict::Serve(at) => at,
                };
                tokio::select! {
                    _ = &mut conn => break,
                    _ = slot.woken() => {}
                    _ = sleep_until(wake_at) => {}
                }
            }
            // Dropping the connection closes it; its slot leaves the table with `admitted`.
            drop(admitted);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("API connections still open after {SHUTDOWN_GRACE:?}; closing them");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An answer's body, holding the connection busy until hyper has taken it.
pub struct Answer {
    body: Full<Bytes>,
    _guard: RequestGuard,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One request: route, token, then (for a route that takes one) the body within its limits,
/// query, then the route's handler; every failure becomes an error body. Nothing of the body
/// is read before the token is checked.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, incoming) = req.into_parts();
    let path = parts.uri.path().to_string();
    let found = router::find(&routes::ROUTES, &parts.method, &path);
    let answer = async {
        if !found.open {
            let token = state.config.api_token.as_ref().map(|t| t.expose());
            check_token(token, &parts.headers)?;
        }
        let (route, id) = found.route?;
        let body = if route.body == Body::Json {
            router::check_json_content_type(&parts.headers)?;
            body::read(&parts.headers, incoming).await?
        } else {
            Bytes::new()
        };
        let query = router::parse_query(parts.uri.query().unwrap_or(""))?;
        let call = Call {
            state: state.clone(),
            id,
            path: path.clone(),
            query,
            body,
            headers: parts.headers.clone(),
        };
        (route.handler)(call).await
    };
    match answer.await {
        Ok(resp) => resp,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(code = e.code, message = %e.message, %path, "API error");
            }
            e.into_response()
        }
    }
}

/// Checks `Authorization: Bearer <token>` (the scheme's case does not matter, RFC 9110
/// §11.1) against the node's token, in constant time.
fn check_token(expected: Option<&str>, headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing Authorization header: send `Authorization: Bearer <token>`",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not readable text"))?;
    let token = given
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be `Bearer <token>`"))?;
    if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("wrong bearer token"))
    }
}

/// Compares without an early exit, so the answer time says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_checks() {
        let mut h = hyper::HeaderMap::new();
        assert!(check_token(None, &h).is_ok());
        assert!(check_token(Some("s3cret"), &h)
            .unwrap_err()
            .message
            .contains("missing"));
        h.insert(AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(check_token(Some("s3cret"), &h)
            .unwrap_err()
            .message
            .contains("wrong"));
        h.insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(check_token(Some("s3cret"), &h).is_ok());
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            h.insert(AUTHORIZATION, format!("{scheme} s3cret").parse().unwrap());
            assert!(check_token(Some("s3cret"), &h).is_ok(), "{scheme}");
        }
        h.insert(AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(check_token(Some("s3cret"), &h)
            .unwrap_err()
            .message
            .contains("Bearer"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
    }
}
