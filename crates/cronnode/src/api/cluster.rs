//! Handlers about the cluster and the process: health, readiness, metrics, the leader, the
//! nodes, the status summary (with the Consul UI's links), the fence reset, the leader's
//! recent activity, and the schedule preview. A fence reset and the activity reach the leader
//! through `forward.rs`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::errors::{ApiError, ApiResult};
use super::forward::{command_error, on_leader};
use super::reply::{body_response, json_response};
use super::state::AppState;
use crate::activity::{Point, STEP, WINDOW};
use crate::config::{API_TOKEN_META, API_TOKEN_REQUIRED};
use crate::leader::LeaderStatus;
use crate::preview::{parse_instant, preview_slots, Life, DEFAULT_PREVIEW, MAX_PREVIEW};

/// How long `/ready` waits for Consul and for Redis.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health`: the process answers. Depends on nothing else, by design.
pub fn health() -> ApiResult {
    Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /ready`: Consul and Redis answer (503 naming the one that does not).
pub async fn ready(state: &AppState) -> ApiResult {
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
pub fn metrics(state: &AppState) -> ApiResult {
    Ok(body_response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        state.metrics.encode(),
    ))
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
    // A holder whose lock value is not cronnode's (another client of the key) is shown as
    // foreign: its session and token, nothing of a value that names no cronnode node.
    let leader = info.as_ref().map(|i| {
        if i.foreign {
            json!({"node": null, "token": i.token, "session": i.session, "foreign": true})
        } else {
            json!({
                "node": i.node,
                "api_addr": i.api_addr,
                "since": i.since.map(ts),
                "token": i.token,
                "pid": i.pid,
                "version": i.version,
                "session": i.session,
                "foreign": false,
            })
        }
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
pub async fn leader(state: &AppState) -> ApiResult {
    Ok(json_response(StatusCode::OK, &leader_json(state).await?))
}

/// Every node as `/v1/nodes` shows it, and the warnings about the set (nodes that disagree on
/// whether the API needs a token).
async fn nodes_json(state: &AppState) -> Result<(Vec<Value>, Vec<String>), ApiError> {
    let nodes = consul_lock::nodes(&state.consul).await.map_err(|e| {
        state.metrics.consul_error("nodes");
        ApiError::unavailable(format!("consul: {e}"))
    })?;
    // What each node registered in its service Meta (absent: a build from before the flag).
    let token_required =
        |n: &consul_lock::NodeStatus| n.meta.get(API_TOKEN_META).map(|v| v == API_TOKEN_REQUIRED);
    let json = nodes
        .iter()
        .map(|n| {
            json!({
                "node": n.node,
                "service_id": n.service_id,
                "api_addr": format!("{}:{}", n.address, n.port),
                "version": n.version,
                "status": n.status,
                "leader": n.leader,
                "api_token_required": token_required(n),
                "datacenter": n.datacenter,
            })
        })
        .collect();
    let open: Vec<&str> = nodes
        .iter()
        .filter(|n| token_required(n) == Some(false))
        .map(|n| n.node.as_str())
        .collect();
    let guarded = nodes.iter().any(|n| token_required(n) == Some(true));
    let warnings = if guarded && !open.is_empty() {
        vec![format!(
            "the nodes disagree on the API token: {} require(s) none, so the shared job store is open to anyone who reaches them; give every node the same --api-token",
            open.join(", ")
        )]
    } else {
        Vec::new()
    };
    Ok((json, warnings))
}

/// `GET /v1/nodes`.
pub async fn nodes(state: &AppState) -> ApiResult {
    let (nodes, warnings) = nodes_json(state).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"nodes": nodes, "warnings": warnings}),
    ))
}

/// `GET /v1/status`: everything `cronnode status` prints.
pub async fn status(state: &AppState) -> ApiResult {
    let mut v = leader_json(state).await?;
    let (nodes, warnings) = nodes_json(state).await?;
    let datacenter = nodes
        .iter()
        .find_map(|n| n["datacenter"].as_str().filter(|dc| !dc.is_empty()))
        .map(str::to_string);
    // The node's own watched set: no read of every job from Consul per request.
    let set = state.jobs.borrow().clone();
    let depths = state.queue()?.queue_depths().await.map_err(|e| {
        state.metrics.redis_error("queue_depths");
        ApiError::unavailable(format!("redis: {e}"))
    })?;
    if let Value::Object(m) = &mut v {
        m.insert("nodes".into(), Value::Array(nodes));
        m.insert("warnings".into(), json!(warnings));
        m.insert(
            "consul_ui".into(),
            consul_ui_links(
                &state.config.consul_ui_url(),
                datacenter.as_deref(),
                &state.config.prefix,
            ),
        );
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
        if let Some(routes) = &state.routes {
            let missing = crate::functions::missing_json(&set, &routes.borrow());
            m.insert("route_missing".into(), missing);
        }
    }
    Ok(json_response(StatusCode::OK, &v))
}

/// Where the Consul UI shows the lock key, the job store and the service; null while no node
/// is registered (the links need the datacenter).
pub fn consul_ui_links(base: &str, datacenter: Option<&str>, prefix: &str) -> Value {
    let Some(dc) = datacenter else {
        return Value::Null;
    };
    let dc = crate::percent::encode(dc);
    json!({
        "lock_key": format!("{base}/{dc}/kv/{prefix}/leader/edit"),
        "jobs": format!("{base}/{dc}/kv/{prefix}/jobs/"),
        "service": format!("{base}/{dc}/services/{}/instances", consul_lock::SERVICE_NAME),
    })
}

/// `GET /v1/leader/activity`: the leader's fires per second and lateness over the last
/// minutes (forwarded to the leader by a follower).
pub async fn activity(state: &AppState, headers: &hyper::HeaderMap) -> ApiResult {
    on_leader(
        state,
        headers,
        Method::GET,
        "/v1/leader/activity",
        || async {
            let points: Vec<Value> = state.activity.points().iter().map(point_json).collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "node": state.config.node,
                    "step_secs": STEP.as_secs(),
                    "window_secs": WINDOW.as_secs(),
                    "points": points,
                }),
            ))
        },
    )
    .await
}

fn point_json(p: &Point) -> Value {
    let step = STEP.as_secs_f64();
    let [enqueued, duplicate, fenced, error] = p.outcomes;
    json!({
        "at": ts(p.at),
        "enqueued": enqueued,
        "duplicate": duplicate,
        "fenced": fenced,
        "error": error,
        "fires_per_sec": enqueued as f64 / step,
        "late_count": p.late_count,
        "lateness_mean_ms": p.lateness_mean_ms,
        "lateness_p99_ms": p.lateness_p99_ms,
    })
}

/// `POST /v1/leader/fence/reset`.
pub async fn fence_reset(state: &AppState, headers: &hyper::HeaderMap) -> ApiResult {
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

/// `GET /v1/schedule?frequency=&tz=&n=&from=[&start_at=&end_at=&jitter=&id=]`.
pub fn schedule(query: &HashMap<String, String>) -> ApiResult {
    let frequency = query
        .get("frequency")
        .ok_or_else(|| ApiError::bad_request("query parameter `frequency` is required"))?;
    let n = match query.get("n") {
        None => DEFAULT_PREVIEW,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!("n: {t:?} is not a number 1-{}", MAX_PREVIEW))
        })?,
    };
    let from = match query.get("from") {
        None => Utc::now(),
        Some(t) => parse_instant("from", t).map_err(ApiError::bad_request)?,
    };
    let tz = query
        .get("tz")
        .map(String::as_str)
        .filter(|t| !t.is_empty());
    let text = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    };
    let life = Life {
        id: text("id"),
        jitter: text("jitter"),
        start_at: text("start_at"),
        end_at: text("end_at"),
    };
    let slots = preview_slots(frequency, tz, &life, from, n).map_err(|e| {
        if e.starts_with("n:") {
            ApiError::bad_request(e)
        } else {
            ApiError::invalid_job(e)
        }
    })?;
    let utc: Vec<String> = slots.iter().map(|s| ts(s.utc)).collect();
    let local: Vec<&str> = slots.iter().map(|s| s.local.as_str()).collect();
    let changed: Vec<bool> = slots.iter().map(|s| s.offset_changed).collect();
    let mut answer = json!({
        "frequency": frequency,
        "timezone": tz.unwrap_or("UTC"),
        "slots": utc,
        "local": local,
        "offset_changed": changed,
    });
    if life.jitter.is_some() {
        let runs_at: Vec<Value> = slots
            .iter()
            .map(|s| {
                s.runs_at.map_or(Value::Null, |t| {
                    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                })
            })
            .collect();
        answer["runs_at"] = Value::Array(runs_at);
    }
    Ok(json_response(StatusCode::OK, &answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_ui_links_name_the_datacenter() {
        let v = consul_ui_links("http://consul:8500/ui", Some("dc1"), "cronnode");
        assert_eq!(
            v["lock_key"],
            "http://consul:8500/ui/dc1/kv/cronnode/leader/edit"
        );
        assert_eq!(v["jobs"], "http://consul:8500/ui/dc1/kv/cronnode/jobs/");
        assert_eq!(
            v["service"],
            "http://consul:8500/ui/dc1/services/cronnode/instances"
        );
        assert!(consul_ui_links("http://consul:8500/ui", None, "cronnode").is_null());
    }
}
