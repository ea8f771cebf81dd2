//! Handlers about the cluster and the process: health, readiness, metrics, the leader, the
//! nodes, the status summary, the fence reset, and the schedule preview.
//!
//! Also [`on_leader`]: how a request that only the leader may carry out (a manual run, a fence
//! reset) reaches it — handled here when this node leads, else forwarded once to the leader's
//! API address read from the lock key.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::routes::Answer;
use super::{json_response, ApiError, AppState, FORWARDED_HEADER};
use crate::client::ApiClient;
use crate::leader::{CommandError, LeaderStatus};

/// How long `/ready` waits for Consul and for Redis.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health`: the process answers. Depends on nothing else, by design.
pub fn health() -> Answer {
    Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /ready`: Consul and Redis answer (503 naming the one that does not).
pub async fn ready(state: &AppState) -> Answer {
    let consul = tokio::time::timeout(
        READY_TIMEOUT,
        consul_lock::leader_info(&state.consul, &state.config.prefix),
    )
    .await;
    let consul_err = match consul {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {READY_TIMEOUT:?}")),
    };
    let redis_err = match state.queue() {
        Err(e) => Some(e.message),
        Ok(q) => match tokio::time::timeout(READY_TIMEOUT, q.ping()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {READY_TIMEOUT:?}")),
        },
    };
    let body = json!({
        "consul": consul_err.as_deref().unwrap_or("ok"),
        "redis": redis_err.as_deref().unwrap_or("ok"),
    });
    match (consul_err, redis_err) {
        (None, None) => Ok(json_response(StatusCode::OK, &body)),
        (c, r) => Err(ApiError::unavailable(format!(
            "not ready: {}",
            [
                c.map(|e| format!("consul: {e}")),
                r.map(|e| format!("redis: {e}"))
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ")
        ))),
    }
}

/// `GET /metrics`.
pub fn metrics(state: &AppState) -> Answer {
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
        state.metrics.encode(),
    )));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The leader and the fence, as `/v1/leader` and `/v1/status` show them.
async fn leader_json(state: &AppState) -> Result<Value, ApiError> {
    let info = consul_lock::leader_info(&state.consul, &state.config.prefix)
        .await
        .map_err(|e| {
            state.metrics.consul_error("leader_info");
            ApiError::unavailable(format!("consul: {e}"))
        })?;
    let fence = match state.queue()?.fence().await {
        Ok(f) => f,
        Err(e) => {
            state.metrics.redis_error("fence");
            return Err(ApiError::unavailable(format!("redis: {e}")));
        }
    };
    let leader = info.as_ref().map(|i| {
        json!({
            "node": i.node,
            "api_addr": i.api_addr,
            "since": i.since.map(ts),
            "token": i.token,
            "pid": i.pid,
            "version": i.version,
            "session": i.session,
        })
    });
    let token = info.as_ref().map(|i| i.token);
    let blocked = matches!((fence, token), (Some(f), Some(t)) if f > t);
    let this_node = match state.leader.status() {
        LeaderStatus::Follower => json!({"node": state.config.node, "role": "follower"}),
        LeaderStatus::Leading { token, .. } => {
            json!({"node": state.config.node, "role": "leader", "token": token})
        }
        LeaderStatus::FenceBlocked { token, fence, .. } => json!({
            "node": state.config.node, "role": "leader", "token": token,
            "fence_blocked": true, "fence": fence,
        }),
    };
    Ok(json!({
        "leader": leader,
        "fence": {
            "value": fence,
            "leader_token": token,
            "blocked": blocked,
            "message": if blocked {
                Value::String(format!(
                    "the Redis fence ({}) is above the leader's token ({}): Consul was probably rebuilt; nothing is enqueued until `cronnode fence reset --yes`",
                    fence.unwrap_or_default(), token.unwrap_or_default()
                ))
            } else { Value::Null },
        },
        "this_node": this_node,
    }))
}

/// `GET /v1/leader`.
pub async fn leader(state: &AppState) -> Answer {
    Ok(json_response(StatusCode::OK, &leader_json(state).await?))
}

async fn nodes_json(state: &AppState) -> Result<Vec<Value>, ApiError> {
    let nodes = consul_lock::nodes(&state.consul).await.map_err(|e| {
        state.metrics.consul_error("nodes");
        ApiError::unavailable(format!("consul: {e}"))
    })?;
    Ok(nodes
        .iter()
        .map(|n| {
            json!({
                "node": n.node,
                "service_id": n.service_id,
                "api_addr": format!("{}:{}", n.address, n.port),
                "version": n.version,
                "status": n.status,
                "leader": n.leader,
            })
        })
        .collect())
}

/// `GET /v1/nodes`.
pub async fn nodes(state: &AppState) -> Answer {
    Ok(json_response(
        StatusCode::OK,
        &json!({"nodes": nodes_json(state).await?}),
    ))
}

/// `GET /v1/status`: everything `cronnode status` prints.
pub async fn status(state: &AppState) -> Answer {
    let mut v = leader_json(state).await?;
    let nodes = nodes_json(state).await?;
    // The node's own watched set: no read of every job from Consul per request.
    let set = state.jobs.borrow().clone();
    let depths = state.queue()?.queue_depths().await.map_err(|e| {
        state.metrics.redis_error("queue_depths");
        ApiError::unavailable(format!("redis: {e}"))
    })?;
    if let Value::Object(m) = &mut v {
        m.insert("nodes".into(), Value::Array(nodes));
        m.insert(
            "jobs".into(),
            json!({
                "count": set.len(),
                "paused": set.paused_count(),
                "invalid": set.invalid_count(),
                // 0 until the node's first read of the store (the counts are then empty).
                "index": set.index(),
            }),
        );
        m.insert(
            "queues".into(),
            json!({
                "queue0": depths.queues[0],
                "queue1": depths.queues[1],
                "queue2": depths.queues[2],
                "delayed": depths.delayed,
            }),
        );
    }
    Ok(json_response(StatusCode::OK, &v))
}

/// `POST /v1/leader/fence/reset`.
pub async fn fence_reset(state: &AppState, headers: &hyper::HeaderMap) -> Answer {
    on_leader(
        state,
        headers,
        Method::POST,
        "/v1/leader/fence/reset",
        || async {
            let fence = state.leader.reset_fence().await.map_err(command_error)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"fence": fence, "node": state.config.node}),
            ))
        },
    )
    .await
}

/// `GET /v1/schedule?frequency=&tz=&n=&from=`.
pub fn schedule(query: &HashMap<String, String>) -> Answer {
    let frequency = query
        .get("frequency")
        .ok_or_else(|| ApiError::bad_request("query parameter `frequency` is required"))?;
    let n = match query.get("n") {
        None => crate::cli::next::DEFAULT_PREVIEW,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "n: {t:?} is not a number 1-{}",
                crate::cli::next::MAX_PREVIEW
            ))
        })?,
    };
    let from = match query.get("from") {
        None => Utc::now(),
        Some(t) => crate::cli::next::parse_instant("from", t).map_err(ApiError::bad_request)?,
    };
    let tz = query
        .get("tz")
        .map(String::as_str)
        .filter(|t| !t.is_empty());
    let slots = crate::cli::next::preview(frequency, tz, from, n).map_err(|e| {
        if e.starts_with("n:") {
            ApiError::bad_request(e)
        } else {
            ApiError::invalid_job(e)
        }
    })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"frequency": frequency, "timezone": tz.unwrap_or("UTC"), "slots": slots}),
    ))
}

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
) -> Answer
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Answer>,
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
    let client = ApiClient::new(
        &info.api_addr,
        state
            .config
            .api_token
            .as_ref()
            .map(|t| t.expose().to_string()),
    )
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
    let mut resp = hyper::Response::new(http_body_util::Full::new(raw.body));
    *resp.status_mut() = raw.status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
