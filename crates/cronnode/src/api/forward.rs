//! How a request that only the leader may carry out (a manual run, a fence reset, applying a
//! job change to what it staged) reaches it: [`on_leader`] runs it here when this node leads,
//! else forwards it once to the leader's API address read from the lock key, marked with
//! [`FORWARDED_HEADER`] so that it is never forwarded again. [`tell_leader`] is how a handler
//! that has just written a job makes the leader apply it before the handler answers. Also
//! [`command_error`]: a refusal of the leader loop as an error answer.
//!
//! Must not carry out anything itself but a job change: the caller passes what to do when this
//! node leads.

use std::future::Future;
use std::time::Duration;

use consul_lock::{Query, StoreError};
use hyper::{Method, StatusCode};
use leader_term::JobEvent;
use serde_json::json;

use super::errors::{ApiError, ApiResult};
use super::reply::{body_response, json_response};
use super::state::AppState;
use crate::client::ApiClient;
use crate::leader::{CommandError, JOB_CHANGE_TIMEOUT};

/// The longest a write waits for the leader to apply it, forwarding included: past it the
/// write is answered anyway (the leader's watch of the store brings the change).
pub const TELL_LEADER_TIMEOUT: Duration = Duration::from_secs(JOB_CHANGE_TIMEOUT.as_secs() + 2);

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

/// Has the leader apply the job `id` just written or deleted (withdraw or restage what it
/// staged of it) before the caller answers, waiting at most [`TELL_LEADER_TIMEOUT`]. A failure
/// (no leader, a leader that does not answer in time) is logged and not the caller's error: the
/// write is in the store, and the leader's watch brings it about a second later.
pub async fn tell_leader(state: &AppState, headers: &hyper::HeaderMap, id: &str) {
    let told =
        tokio::time::timeout(TELL_LEADER_TIMEOUT, apply_job_change(state, headers, id)).await;
    match told {
        Ok(Ok(_)) => tracing::debug!(job = %id, "the leader applied the change"),
        Ok(Err(e)) => {
            tracing::warn!(job = %id, error = %e.message, "the leader did not confirm the change; its watch of the store will bring it")
        }
        Err(_) => {
            tracing::warn!(job = %id, "the leader did not confirm the change within {TELL_LEADER_TIMEOUT:?}; its watch of the store will bring it")
        }
    }
}

/// `POST /v1/cronjobs/{id}/sync`: the leader reads the job `id` from the store (or learns it
/// is gone) and applies it now to what it staged; forwarded to the leader from other nodes.
pub async fn apply_job_change(state: &AppState, headers: &hyper::HeaderMap, id: &str) -> ApiResult {
    let path = format!("/v1/cronjobs/{}/sync", crate::percent::encode(id));
    on_leader(state, headers, Method::POST, &path, || async {
        let event = match state.store.get(id).await {
            Ok(Some(stored)) => JobEvent::Upsert {
                job: stored.job,
                version: stored.version,
            },
            // Gone, or no longer valid: the leader's view drops it alike. The index of a read
            // of its key is at or after its removal.
            Ok(None) | Err(StoreError::Stored { .. }) => {
                let key = state
                    .store
                    .key(id)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                let (_, index) = state
                    .consul
                    .kv_get(&key, Query::consistent())
                    .await
                    .map_err(|e| {
                        state.metrics.consul_error("get");
                        ApiError::unavailable(format!("consul: {e}"))
                    })?;
                JobEvent::Remove {
                    id: id.into(),
                    version: index,
                }
            }
            Err(e) => {
                state.metrics.consul_error("get");
                return Err(ApiError::unavailable(format!("consul: {e}")));
            }
        };
        let applied = state
            .leader
            .job_changed(event)
            .await
            .map_err(command_error)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "job_id": id,
                "withdrawn": applied.withdrawn,
                "restaged": applied.restaged,
                "leader_node": state.config.node,
            }),
        ))
    })
    .await
}
