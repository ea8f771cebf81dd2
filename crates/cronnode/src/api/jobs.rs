//! Handlers of `/v1/cronjobs…`: the job store through the API.
//!
//! Input: a job spec as JSON. Read-only status fields (`next_start`, `last_start`,
//! `created_at`, `updated_at`, `version`) are accepted and ignored, so a GET answer can be PUT
//! back as is (`version`, when present, makes the PUT a check-and-set). Nothing is written to
//! Consul unless the spec passed cron-core's validation and the task encoder's check: with
//! route resolution (the default), IronFunctions is asked for the job's app and route at that
//! moment (422 naming them when it lacks one, 503 when it cannot be reached) and the task is
//! built from them; without it, an image is needed, from the job or `--default-image`.
//!
//! Output: the stored spec plus `next_start` (the next slot inside `start_at`/`end_at`),
//! `next_run_at` (with a jitter: the instant that slot runs at), `state` (`waiting`, `active`,
//! `ended`, `done`, `due`, `missed`: cron-core's `JobState`), `last_start` (the job's cursor in
//! Redis) and `version` (Consul's ModifyIndex).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use consul_lock::{
    EntryState, JobStore, PageFilter, StoreError, StoredJob, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
};
use cron_core::{Job, JobSpec};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::body::json_object;
use super::errors::{ApiError, ApiResult};
use super::forward::{command_error, on_leader, tell_leader};
use super::reply::json_response;
use super::state::AppState;
use crate::functions::FunctionsError;
use redis_queue::{RouteState, Routes, TaskSettings};

/// Fields the API adds to a job; ignored on input.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "next_start",
    "next_run_at",
    "state",
    "last_start",
    "created_at",
    "updated_at",
    "version",
    "route",
    "not_fired",
];
/// Attempts of a pause/resume check-and-set loop before giving up with 409.
const CAS_ATTEMPTS: usize = 5;

/// Parses and validates a job from a request body. `path_id` is the id of a PUT's path.
pub fn parse_job(
    state: &AppState,
    body: &[u8],
    path_id: Option<&str>,
) -> Result<(JobSpec, Arc<Job>, Option<u64>), ApiError> {
    let mut obj = json_object(body, "a job spec")?;
    let version = match obj.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::bad_request(format!("version: {v} is not a non-negative integer"))
        })?),
    };
    for f in READ_ONLY_FIELDS {
        obj.remove(*f);
    }
    if let Some(path_id) = path_id {
        match obj.get("id") {
            None => {
                obj.insert("id".into(), Value::String(path_id.to_string()));
            }
            Some(Value::String(id)) if id == path_id => {}
            Some(other) => {
                return Err(ApiError::invalid_job(format!(
                    "id: the body says {other}, the path says {path_id:?}; a job's id cannot change"
                )))
            }
        }
    }
    let spec: JobSpec = serde_json::from_value(Value::Object(obj)).map_err(|e| {
        let msg = format!("invalid job spec: {e}");
        if msg.contains("unknown field") || msg.contains("unknown variant") {
            ApiError::bad_request(msg)
        } else {
            ApiError::invalid_job(msg)
        }
    })?;
    let job = spec
        .clone()
        .validate()
        .map_err(|e| ApiError::invalid_job(e.to_string()))?;
    // With route resolution, the image may come from the route: `check_route` asks for it.
    let checked = match state.functions {
        Some(_) => redis_queue::TaskSettings::check_spec(&job),
        None => state.task_settings.check_job(&job),
    };
    checked.map_err(|e| ApiError::invalid_job(e.to_string()))?;
    // A spec that validates may still be over what Consul takes in one write (escapes count).
    JobStore::check_size(&spec).map_err(|e| ApiError::job_too_large(e.to_string()))?;
    Ok((spec, Arc::new(job), version))
}

/// With route resolution: asks IronFunctions for the job's app and route now, and checks that a
/// task can be built from them (the route gives the image unless the job names one). 422 when
/// IronFunctions lacks the app or the route, 503 when it cannot be reached; nothing is written
/// then.
pub async fn check_route(state: &AppState, job: &Job) -> Result<(), ApiError> {
    let Some(client) = &state.functions else {
        return Ok(());
    };
    let f = &job.spec.function;
    let found = async {
        let config = client.app_config(&f.app).await?;
        client.route(&f.app, &f.path, &config).await
    };
    let route = found.await.map_err(|e| match e {
        FunctionsError::Missing { .. } => ApiError::invalid_job(format!(
            "function: app {:?} route {:?}: {e}; create it in IronFunctions first, or run \
             cronnode with --resolve-routes false",
            f.app, f.path
        )),
        FunctionsError::Unreachable { .. } => ApiError::unavailable(format!(
            "{e}: the job's app and route cannot be checked, so nothing was written; retry"
        )),
    })?;
    let mut routes = Routes::default();
    routes.insert(&f.app, &f.path, RouteState::Found(Arc::new(route)));
    TaskSettings {
        routes: Some(Arc::new(routes)),
        ..(*state.task_settings).clone()
    }
    .check_job(job)
    .map_err(|e| ApiError::invalid_job(e.to_string()))
}

/// The API form of a stored job.
pub fn job_json(stored: &StoredJob, last_start: Option<chrono::DateTime<Utc>>) -> Value {
    let job = &stored.job;
    let mut v = serde_json::to_value(&job.spec).unwrap_or_else(|_| json!({}));
    let now = Utc::now();
    let next_start = if job.spec.paused {
        None
    } else {
        job.next_after(now)
    };
    if let Value::Object(map) = &mut v {
        let ts = |t: Option<chrono::DateTime<Utc>>| {
            t.map_or(Value::Null, |t| {
                Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
            })
        };
        map.insert("next_start".into(), ts(next_start));
        if job.jitter().is_some() {
            let at = next_start.map(|s| job.fire_at(s));
            let ms = at.map_or(Value::Null, |t| {
                Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
            });
            map.insert("next_run_at".into(), ms);
        }
        map.insert("state".into(), json!(job.state(now, last_start).as_str()));
        map.insert("last_start".into(), ts(last_start));
        map.insert("version".into(), json!(stored.version));
    }
    v
}

fn store_error(op: &'static str, state: &AppState, e: StoreError) -> ApiError {
    match e {
        e @ StoreError::Conflict { .. } => ApiError::conflict(e.to_string()),
        StoreError::NotFound(id) => ApiError::not_found(format!("no job {id:?}")),
        e @ (StoreError::Invalid(_) | StoreError::BadId { .. }) => {
            ApiError::invalid_job(e.to_string())
        }
        e @ StoreError::TooLarge { .. } => ApiError::job_too_large(e.to_string()),
        StoreError::Stored { key, error } => ApiError::stored_invalid(format!(
            "the job stored at {key} is invalid (edited by hand?): {error}; replace it (PUT, \
             `cronnode jobs put`) or delete it (DELETE, `cronnode jobs rm`)"
        )),
        other => {
            state.metrics.consul_error(op);
            ApiError::unavailable(format!("consul: {other}"))
        }
    }
}

async fn last_starts(
    state: &AppState,
    ids: &[&str],
) -> std::collections::HashMap<String, chrono::DateTime<Utc>> {
    // The cursors only decorate the answer: a Redis outage must not hide the jobs.
    let Ok(queue) = state.queue() else {
        return Default::default();
    };
    match queue.cursors(ids).await {
        Ok(c) => c,
        Err(e) => {
            state.metrics.redis_error("cursors");
            tracing::debug!(error = %e, "cannot read cursors for the API");
            Default::default()
        }
    }
}

pub(super) async fn stored_or_404(state: &AppState, id: &str) -> Result<StoredJob, ApiError> {
    match state.store.get(id).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(ApiError::not_found(format!("no job {id:?}"))),
        Err(e) => Err(store_error("get", state, e)),
    }
}

/// Reads `limit` of `GET /v1/cronjobs`: absent → the default, else a whole number in range.
pub fn page_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PAGE_LIMIT);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PAGE_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "limit: {raw:?} is not allowed: give a whole number from 1 to {MAX_PAGE_LIMIT} \
                 (default {DEFAULT_PAGE_LIMIT})"
            ))
        })
}

/// Reads `state` of `GET /v1/cronjobs`: absent → every state, else one of [`EntryState::ALL`].
pub fn page_state(raw: Option<&str>) -> Result<Option<EntryState>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    EntryState::ALL
        .iter()
        .find(|(name, _)| *name == raw)
        .map(|(_, state)| Some(*state))
        .ok_or_else(|| {
            let names: Vec<&str> = EntryState::ALL.iter().map(|(n, _)| *n).collect();
            ApiError::bad_request(format!(
                "state: {raw:?} is not allowed: give one of {}",
                names.join(", ")
            ))
        })
}

/// `GET /v1/cronjobs[?app=&id_contains=&state=&limit=&after=]`: one page; follow `next` (as
/// `after`) until it is null. A filtered page may hold fewer than `limit` jobs, even none,
/// before the end.
pub async fn list(state: &AppState, query: &HashMap<String, String>) -> ApiResult {
    let limit = page_limit(query.get("limit").map(String::as_str))?;
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let filter = PageFilter {
        app: param("app"),
        id_contains: param("id_contains"),
        state: page_state(param("state"))?,
    };
    let page = state
        .store
        .list_page(param("after"), limit, &filter)
        .await
        .map_err(|e| match e {
            e @ StoreError::BadId { .. } => ApiError::bad_request(format!("after: {e}")),
            e => store_error("list", state, e),
        })?;
    let ids: Vec<&str> = page.jobs.iter().map(StoredJob::id).collect();
    let cursors = last_starts(state, &ids).await;
    let jobs: Vec<Value> = page
        .jobs
        .iter()
        .map(|s| job_json(s, cursors.get(s.id()).copied()))
        .collect();
    let invalid: Vec<Value> = page
        .invalid
        .iter()
        .map(|i| json!({"key": i.key, "error": i.error}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"jobs": jobs, "invalid": invalid, "next": page.next}),
    ))
}

/// `POST /v1/cronjobs`.
pub async fn create(state: &AppState, body: &Bytes) -> ApiResult {
    let (spec, job, _version) = parse_job(state, body, None)?;
    check_route(state, &job).await?;
    let stored = state
        .store
        .create(spec)
        .await
        .map_err(|e| store_error("create", state, e))?;
    tracing::info!(job = %stored.job.spec.id, version = stored.version, "job created");
    Ok(json_response(StatusCode::CREATED, &job_json(&stored, None)))
}

/// `GET /v1/cronjobs/{id}`; with route resolution also `route` (what the node's route cache
/// says of the job's route) and, while its newest slot was not fired (its route is missing),
/// `not_fired` (that slot and why).
pub async fn get(state: &AppState, id: &str) -> ApiResult {
    let stored = stored_or_404(state, id).await?;
    let cursor = last_starts(state, &[id]).await.get(id).copied();
    let mut v = job_json(&stored, cursor);
    if let (Some(routes), Value::Object(m)) = (&state.routes, &mut v) {
        m.insert(
            "route".into(),
            crate::functions::route_json(&routes.borrow(), &stored.job),
        );
        // The history only decorates the answer: a Redis outage must not hide the job.
        let newest = match state.queue() {
            Ok(q) => q.history(id).await.ok().and_then(|h| h.into_iter().next()),
            Err(_) => None,
        };
        let not_fired = newest.and_then(|h| {
            h.not_fired.map(|why| {
                json!({"slot": h.slot.to_rfc3339_opts(SecondsFormat::Secs, true), "reason": why})
            })
        });
        m.insert("not_fired".into(), not_fired.unwrap_or(Value::Null));
    }
    Ok(json_response(StatusCode::OK, &v))
}

/// `PUT /v1/cronjobs/{id}`: 200 once the leader has restaged (or withdrawn) what it staged of
/// the job, 202 when it did not confirm (`forward::tell_leader`).
pub async fn replace(
    state: &AppState,
    id: &str,
    body: &Bytes,
    headers: &hyper::HeaderMap,
) -> ApiResult {
    let (spec, job, version) = parse_job(state, body, Some(id))?;
    check_route(state, &job).await?;
    let stored = state
        .store
        .update(spec, version)
        .await
        .map_err(|e| store_error("update", state, e))?;
    tracing::info!(job = %id, version = stored.version, "job replaced");
    let status = tell_leader(state, headers, id).await;
    let cursor = last_starts(state, &[id]).await.get(id).copied();
    Ok(json_response(status, &job_json(&stored, cursor)))
}

/// `DELETE /v1/cronjobs/{id}`: deletes what is stored under the id, valid or not (a job
/// edited by hand into an invalid state can be removed). 404 when there was nothing, also when
/// a concurrent request deleted it first: the store's delete is a check-and-set on the version
/// it read, so of two deletes exactly one answers 200. 200 once the leader has withdrawn what
/// it staged of the job, 202 when it did not confirm.
pub async fn delete(state: &AppState, id: &str, headers: &hyper::HeaderMap) -> ApiResult {
    let deleted = state
        .store
        .delete(id)
        .await
        .map_err(|e| store_error("delete", state, e))?;
    if !deleted {
        return Err(ApiError::not_found(format!("no job {id:?}")));
    }
    tracing::info!(job = %id, "job deleted");
    let status = tell_leader(state, headers, id).await;
    Ok(json_response(status, &json!({"deleted": id})))
}

/// `POST /v1/cronjobs/{id}/pause` and `/resume`: sets `paused` with check-and-set; 200 once
/// the leader has applied it to what it staged of the job, 202 when it did not confirm.
pub async fn set_paused(
    state: &AppState,
    id: &str,
    paused: bool,
    headers: &hyper::HeaderMap,
) -> ApiResult {
    for _ in 0..CAS_ATTEMPTS {
        let stored = stored_or_404(state, id).await?;
        if stored.job.spec.paused == paused {
            let cursor = last_starts(state, &[id]).await.get(id).copied();
            return Ok(json_response(StatusCode::OK, &job_json(&stored, cursor)));
        }
        let mut spec = stored.job.spec.clone();
        spec.paused = paused;
        match state.store.update(spec, Some(stored.version)).await {
            Ok(stored) => {
                tracing::info!(job = %id, paused, "job {}", if paused { "paused" } else { "resumed" });
                let status = tell_leader(state, headers, id).await;
                let cursor = last_starts(state, &[id]).await.get(id).copied();
                return Ok(json_response(status, &job_json(&stored, cursor)));
            }
            // Someone else wrote in between: read again and retry.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(store_error("update", state, e)),
        }
    }
    Err(ApiError::conflict(format!(
        "job {id:?} kept changing during {CAS_ATTEMPTS} attempts; retry"
    )))
}

/// `POST /v1/cronjobs/{id}/run`: a manual fire, enqueued by the leader.
pub async fn run(state: &AppState, id: &str, headers: &hyper::HeaderMap) -> ApiResult {
    let stored = stored_or_404(state, id).await?;
    let path = format!("/v1/cronjobs/{}/run", crate::percent::encode(id));
    on_leader(state, headers, Method::POST, &path, || async {
        let run = state
            .leader
            .manual_run(stored.job.clone())
            .await
            .map_err(command_error)?;
        Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({
                "job_id": id,
                "fire_id": run.fire.fire_id.to_string(),
                "slot": run.fire.slot.to_rfc3339_opts(SecondsFormat::Millis, true),
                "outcome": if run.enqueued { "enqueued" } else { "duplicate" },
                "leader_node": state.config.node,
                "token": run.token,
            }),
        ))
    })
    .await
}

/// `GET /v1/cronjobs/{id}/fires`: the capped history kept in Redis, newest first.
pub async fn fires(state: &AppState, id: &str) -> ApiResult {
    let history = state.queue()?.history(id).await.map_err(|e| {
        state.metrics.redis_error("history");
        ApiError::unavailable(format!("redis: {e}"))
    })?;
    if history.is_empty() {
        // Distinguish "never fired" from "no such job".
        stored_or_404(state, id).await?;
    }
    // A slot refused while its route was missing (at staging, 2 s ahead) may have been
    // planned again and enqueued once the route came back: its enqueued entry tells its fate.
    let enqueued: std::collections::HashSet<_> = history
        .iter()
        .filter(|h| h.not_fired.is_none())
        .map(|h| h.slot)
        .collect();
    let fires: Vec<Value> = history
        .iter()
        .filter(|h| h.not_fired.is_none() || !enqueued.contains(&h.slot))
        .map(|h| {
            let lateness_ms = (h.enqueued_at - h.slot).num_milliseconds();
            let mut m = Map::new();
            m.insert(
                "slot".into(),
                json!(h.slot.to_rfc3339_opts(SecondsFormat::Secs, true)),
            );
            m.insert(
                "enqueued_at".into(),
                json!(h.enqueued_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            );
            m.insert("lateness_ms".into(), json!(lateness_ms));
            m.insert("fire_id".into(), json!(h.fire_id.to_string()));
            m.insert("kind".into(), json!(redis_queue::task::kind_name(h.kind)));
            m.insert("leader_node".into(), json!(h.node));
            m.insert("token".into(), json!(h.token));
            match &h.not_fired {
                None => m.insert("outcome".into(), json!("enqueued")),
                Some(why) => {
                    m.insert("reason".into(), json!(why));
                    m.insert("outcome".into(), json!("not_fired"))
                }
            };
            Value::Object(m)
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"job_id": id, "fires": fires}),
    ))
}

/// `POST /v1/validate`: the checks of `POST /v1/cronjobs`, without the write (the console's
/// editor calls it as one types). 200 with the job as it would be stored, or the very 400 or
/// 422 a create would answer, except the IronFunctions route check (`check_route`), which
/// is not made on every keystroke.
pub fn validate(state: &AppState, body: &Bytes) -> ApiResult {
    let (spec, _job, _version) = parse_job(state, body, None)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"valid": true, "job": spec}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_state_is_one_of_three() {
        assert_eq!(page_state(None).unwrap(), None);
        assert_eq!(page_state(Some("")).unwrap(), None);
        assert_eq!(
            page_state(Some("paused")).unwrap(),
            Some(EntryState::Paused)
        );
        assert_eq!(
            page_state(Some("invalid")).unwrap(),
            Some(EntryState::Invalid)
        );
        let e = page_state(Some("Active")).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("active, paused, invalid"),
            "{}",
            e.message
        );
    }

    #[test]
    fn page_limit_is_a_whole_number_in_range() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_PAGE_LIMIT);
        assert_eq!(page_limit(Some("1")).unwrap(), 1);
        assert_eq!(page_limit(Some("10000")).unwrap(), MAX_PAGE_LIMIT);
        for bad in ["0", "10001", "", "1.5", "-3", "many"] {
            let e = page_limit(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains("from 1 to 10000"), "{}", e.message);
        }
    }
}
