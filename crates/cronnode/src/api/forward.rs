//! How a request that only the leader may carry out (a manual run, a fence reset) reaches it:
//! [`on_leader`] runs it here when this node leads, else forwards it once to the leader's API
//! address read from the lock key, marked with [`FORWARDED_HEADER`] so that it is never
//! forwarded again. Also [`command_error`]: a refusal of the leader loop as an error answer.
//!
//! Must not carry out anything itself: the caller passes what to do when this node leads.

use std::future::Future;

use hyper::Method;

use super::errors::{ApiError, ApiResult};
use super::reply::body_response;
use super::state::AppState;
use crate::client::ApiClient;
use crate::leader::CommandError;

/// Header set on requests forwarded to the leader, so that a node which is not the leader any
/// more answers 503 instead of forwarding again (no forwarding loops).
pub const FORWARDED_HEADER: &str = "x-cronnode-forwarded";

/// A leader loop refusal as an API error.
pub fn command_error(e: CommandError) -> ApiError {
    match e {
        CommandError::NotLeader => {
            ApiError::no_leader("this node is not the leader (any more); retry")
        }
        e @ CommandError::FenceBlocked { .. } => ApiError::fence_blocked(e.to_string()),
        e @ CommandError::Fenced(_) => ApiError::no_leader(format!("{e}; retry")),
        e @ CommandError::Redis(_) => ApiError::unavailable(e.to_string()),
        e @ CommandError::Unavailable(_) => ApiError::unavailable(e.to_string()),
    }
}

/// Runs `local` when this node leads; otherwise forwards the request once to the leader.
pub async fn on_leader<F, Fut>(
    state: &AppState,
    headers: &hyper::HeaderMap,
    method: Method,
    path: &str,
    local: F,
) -> ApiResult
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult>,
{
    if state.leader.is_leader() {
        return local().await;
    }
    if headers.contains_key(FORWARDED_HEADER) {
        // We were named leader by the node that forwarded this, but are not (any more).
        return Err(ApiError::no_leader(
            "this node is not the leader (any more); retry",
        ));
    }
    let info = consul_lock::leader_info(&state.consul, &state.config.prefix)
        .await
        .map_err(|e| {
            state.metrics.consul_error("leader_info");
            ApiError::unavailable(format!("consul: {e}"))
        })?
        .ok_or_else(|| {
            ApiError::no_leader("no node holds the leader lock right now; retry in a few seconds")
        })?;
    if info.node == state.config.node {
        return Err(ApiError::no_leader(
            "the lock names this node but its term has ended; retry",
        ));
    }
    let client = ApiClient::new(&info.api_addr, state.api_token())
        .map_err(|e| ApiError::internal(format!("leader API address {:?}: {e}", info.api_addr)))?;
    let raw = client
        .send(
            method,
            path,
            None,
            &[(FORWARDED_HEADER, &state.config.node)],
        )
        .await
        .map_err(|e| {
            ApiError::unavailable(format!("forwarding to the leader {}: {e}", info.node))
        })?;
    Ok(body_response(raw.status, "application/json", raw.body))
}
