//! The HTTP API, served by every node (hyper 1, HTTP/1.1, JSON).
//!
//! The routes are the table in [`routes`] (`routes::ROUTES`): one row per route, which both
//! dispatches and makes the OpenAPI document served at `/v1/openapi.json` ([`openapi`]). The
//! README's "The HTTP API" section documents them for users.
//!
//! This module owns the listener, the connection limit, the bearer token (every route but the
//! open ones, `/health`), the body limit and graceful shutdown. The layers below it only look
//! down: [`routes`] (the table) → [`router`] (matching, ids, queries) and the handlers,
//! [`jobs`] and [`cluster`] → [`forward`] (reaching the leader) → [`state`], [`errors`],
//! [`reply`]. Handlers never enqueue: manual runs and fence resets go to the leader loop
//! (`crate::leader`), on this node or forwarded to the leader's API.

pub mod cluster;
pub mod errors;
pub mod forward;
pub mod jobs;
pub mod openapi;
pub mod reply;
pub mod router;
pub mod routes;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};

pub use errors::ApiError;
pub use state::AppState;

use router::{Body, Call};

/// Largest request body accepted (a job spec's body is at most 256 KiB, JSON escaping included).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most connections served at once; more wait in the accept backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long in-flight requests get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Accept errors back off from this delay…
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(10);
/// …doubling up to this ceiling.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Serves the API on `listener` until `shutdown` fires, then gives in-flight requests
/// [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = ACCEPT_BACKOFF_START;
    loop {
        // Take a permit before accepting: at the limit, clients wait in the backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.recv() => break,
        };
        let (stream, _peer) = tokio::select! {
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
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
        });
        let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .http1_only()
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
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

/// One request: route, token, body limit, query, then the route's handler; every failure
/// becomes an error body.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let found = router::find(&routes::ROUTES, &parts.method, &path);
    let answer = async {
        if !found.open {
            let token = state.config.api_token.as_ref().map(|t| t.expose());
            check_token(token, &parts.headers)?;
        }
        let body = read_body(&parts.headers, body).await?;
        let query = router::parse_query(parts.uri.query().unwrap_or(""))?;
        let (route, id) = found.route?;
        if route.body == Body::Json {
            router::check_json_content_type(&parts.headers)?;
        }
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
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be `Bearer <token>`"))?;
    if constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) {
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

async fn read_body(headers: &hyper::HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    // Refuse early when the client announces a body over the limit.
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > MAX_BODY_BYTES as u64 {
            return Err(ApiError::too_large(MAX_BODY_BYTES));
        }
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
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
        h.insert(AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(check_token(Some("s3cret"), &h)
            .unwrap_err()
            .message
            .contains("Bearer"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
    }
}
