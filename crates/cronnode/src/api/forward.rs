//! How a request that only the leader may carry out (a manual run, a fence reset, applying a
//! job change to what it staged) reaches it: [`on_leader`] runs it here when this node leads,
//! else [`forward`]s it once to the leader, marked with [`FORWARDED_HEADER`] so that it is
//! never forwarded again. [`tell_leader`] is how a handler that has just written a job makes
//! the leader apply it before the handler answers. Also [`command_error`]: a refusal of the
//! leader loop as an error answer.
//!
//! The request carries the API token, so it goes only where the cluster itself vouches for
//! the leader: the address that the lock holder's own registered Consul service instance
//! advertises (consul-lock's `vouched_leader`: the instance tagged `leader` whose check the
//! lock's session is bound to), never the address written in the lock value, which anyone
//! with KV write can change. The URL is built from that host and port alone; the answer is
//! relayed only when it is one of the API's own (JSON of its form, within
//! [`MAX_FORWARDED_ANSWER`]), re-encoded, never as the bytes received. Anything else is a 503
//! that names what did not match.
//!
//! Must not carry out anything itself but a job change: the caller passes what to do when this
//! node leads.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use consul_lock::{Query, StoreError, VouchedLeader};
use hyper::{Method, StatusCode};
use leader_term::JobEvent;
use serde_json::{json, Value};

use super::errors::{ApiError, ApiResult, ERROR_CODES};
use super::reply::json_response;
use super::state::AppState;
use crate::client::ApiClient;
use crate::leader::{CommandError, JOB_CHANGE_TIMEOUT};

/// The longest a write waits for the leader to apply it, forwarding included: past it the
/// write is answered anyway (the leader's watch of the store brings the change).
pub const TELL_LEADER_TIMEOUT: Duration = Duration::from_secs(JOB_CHANGE_TIMEOUT.as_secs() + 2);

/// Header set on requests forwarded to the leader, so that a node which is not the leader any
/// more answers 503 instead of forwarding again (no forwarding loops).
pub const FORWARDED_HEADER: &str = "x-cronnode-forwarded";
/// How long a forwarded request may take, connection included: a leader that does not answer
/// costs the client this, not the CLI's 30 s.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer relayed from the leader (its answers to runs and resets are a few hundred
/// bytes).
pub const MAX_FORWARDED_ANSWER: usize = 64 * 1024;

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
    forward(state, method, path, None).await
}

/// Sends one request (`path` with its query, an optional JSON body) to the leader the cluster
/// vouches for, with this node's token, and relays its answer if it is one of the API's.
pub async fn forward(
    state: &AppState,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> ApiResult {
    let vouched = consul_lock::vouched_leader(&state.consul, &state.config.prefix)
        .await
        .map_err(|e| {
            state.metrics.consul_error("vouched_leader");
            ApiError::unavailable(format!("consul: {e}"))
        })?;
    let leader = match vouched {
        VouchedLeader::Instance(leader) => leader,
        VouchedLeader::Nobody => {
            return Err(ApiError::no_leader(
                "no node holds the leader lock right now; retry in a few seconds",
            ))
        }
        VouchedLeader::Unvouched(why) => {
            return Err(ApiError::no_leader(format!(
                "not forwarded to the leader: {why}; retry in a few seconds"
            )))
        }
    };
    if leader.node == state.config.node {
        return Err(ApiError::no_leader(
            "the lock is this node's but its term has ended; retry",
        ));
    }
    let base = leader_url(&leader.host, leader.port).map_err(|why| {
        ApiError::no_leader(format!(
            "not forwarded to the leader {}: its registered address {why}",
            leader.node
        ))
    })?;
    let client = ApiClient::new(&base, state.api_token())
        .map_err(|e| ApiError::internal(format!("leader API address {base}: {e}")))?
        .with_limits(FORWARD_TIMEOUT, MAX_FORWARDED_ANSWER);
    let raw = client
        .send(
            method,
            path,
            body,
            &[(FORWARDED_HEADER, &state.config.node)],
        )
        .await
        .map_err(|e| {
            ApiError::unavailable(format!("forwarding to the leader {}: {e}", leader.node))
        })?;
    relay(&leader.node, raw.status, &raw.body)
}

/// `http://host:port` for a host that is an IP address or a DNS name, nothing else: no
/// user, path, query or fragment can come in with it.
pub fn leader_url(host: &str, port: u16) -> Result<String, String> {
    if port == 0 {
        return Err(format!("{host:?} has no port"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(v4) => format!("http://{v4}:{port}"),
            IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
        });
    }
    let dns_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if dns_name {
        Ok(format!("http://{host}:{port}"))
    } else {
        Err(format!("{host:?} is neither an IP address nor a DNS name"))
    }
}

/// The leader's answer, if it is one of the API's: a JSON object, and for an error status
/// `{"error": {"code": <a known code>, "message": <text>}}`. Re-encoded from what was parsed.
fn relay(node: &str, status: StatusCode, body: &[u8]) -> ApiResult {
    let refuse = |why: &str| {
        ApiError::unavailable(format!(
            "the answer of the leader {node} ({status}) is not a cronnode API answer: {why}"
        ))
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| refuse("not JSON"))?;
    if !value.is_object() {
        return Err(refuse("not a JSON object"));
    }
    if status.is_success() {
        return Ok(json_response(status, &value));
    }
    if !(status.is_client_error() || status.is_server_error()) {
        return Err(refuse("an unexpected status"));
    }
    let code = value.pointer("/error/code").and_then(Value::as_str);
    let message = value.pointer("/error/message").and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(_)) if ERROR_CODES.contains(&code) => Ok(json_response(status, &value)),
        _ => Err(refuse("not an error of the API's form")),
    }
}

/// Has the leader apply the job `id` just written or deleted (withdraw or restage what it
/// staged of it) before the caller answers, waiting at most [`TELL_LEADER_TIMEOUT`]. The status
/// the write is answered with: 200 once the leader confirmed, so no task with the old spec
/// reaches the queue after the answer; else (no leader, a leader deposed or not answering in
/// time) 202 Accepted: the write is in the store and the leader's watch brings it about a
/// second later, but a slot staged meanwhile may still run with the old spec. Logged too.
pub async fn tell_leader(state: &AppState, headers: &hyper::HeaderMap, id: &str) -> StatusCode {
    let told =
        tokio::time::timeout(TELL_LEADER_TIMEOUT, apply_job_change(state, headers, id)).await;
    match told {
        Ok(Ok(r)) if r.status() == StatusCode::OK => {
            tracing::debug!(job = %id, "the leader applied the change");
            return StatusCode::OK;
        }
        Ok(Ok(r)) => {
            tracing::warn!(job = %id, status = %r.status(), "the leader did not confirm the change; its watch of the store will bring it")
        }
        Ok(Err(e)) => {
            tracing::warn!(job = %id, error = %e.message, "the leader did not confirm the change; its watch of the store will bring it")
        }
        Err(_) => {
            tracing::warn!(job = %id, "the leader did not confirm the change within {TELL_LEADER_TIMEOUT:?}; its watch of the store will bring it")
        }
    }
    StatusCode::ACCEPTED
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_url_is_made_of_host_and_port_only() {
        assert_eq!(
            leader_url("10.0.0.5", 8765).unwrap(),
            "http://10.0.0.5:8765"
        );
        assert_eq!(leader_url("::1", 80).unwrap(), "http://[::1]:80");
        assert_eq!(
            leader_url("node-1.dc1.internal", 8765).unwrap(),
            "http://node-1.dc1.internal:8765"
        );
        for bad in [
            "127.0.0.1:9/steal?",
            "evil.com/x",
            "user@host",
            "host#frag",
            "",
            "-bad.example",
            "a..b",
            "[::1]",
        ] {
            assert!(leader_url(bad, 8765).is_err(), "{bad}");
        }
        assert!(leader_url("10.0.0.5", 0).is_err());
    }

    #[test]
    fn only_the_apis_own_answers_are_relayed() {
        let ok = relay("n", StatusCode::ACCEPTED, br#"{"job_id": "a"}"#).unwrap();
        assert_eq!(ok.status(), StatusCode::ACCEPTED);
        let err = relay(
            "n",
            StatusCode::CONFLICT,
            br#"{"error": {"code": "fence_blocked", "message": "m"}}"#,
        )
        .unwrap();
        assert_eq!(err.status(), StatusCode::CONFLICT);
        for (status, body) in [
            (StatusCode::OK, &b"<html>hello</html>"[..]),
            (StatusCode::OK, b"[1]"),
            (StatusCode::FOUND, b"{}"),
            (
                StatusCode::BAD_GATEWAY,
                br#"{"error": {"code": "evil", "message": "m"}}"#,
            ),
            (StatusCode::NOT_FOUND, b"{}"),
        ] {
            let e = relay("n", status, body).unwrap_err();
            assert_eq!(e.code, "unavailable", "{status} {body:?}");
            assert!(!e.message.contains("hello"), "{}", e.message);
        }
    }
}
