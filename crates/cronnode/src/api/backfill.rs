//! `POST /v1/cronjobs/{id}/backfill` with `{"from": RFC 3339, "to": RFC 3339}`: fire the job's
//! slots in `[from, to]` that were never enqueued (after an outage longer than the catch-up
//! window).
//!
//! Any node checks the request (the job exists and is not paused; the range is ordered, past,
//! not older than the job's catch-up window + 23 h, and holds at most 10,000 slots: cron-core's
//! `Job::backfill_slots`) and hands the slots to the leader (forwarded with the body, like a
//! manual run), whose term enqueues them with its fencing token, each with its slot's own fire
//! id: a slot that was ever enqueued is refused by its dedupe mark, so repeating a request
//! fires nothing twice. The answer says what each slot became. Slots that did fire are not run
//! again (a manual run, `POST /run`, is the way to run a job once more). Must not: enqueue
//! anything itself.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::body::json_object;
use super::errors::{ApiError, ApiResult};
use super::forward::{command_error, forward, FORWARDED_HEADER};
use super::jobs::stored_or_404;
use super::reply::json_response;
use super::state::AppState;

/// The fields of a backfill request.
const FIELDS: &[&str] = &["from", "to"];

fn instant(obj: &Map<String, Value>, name: &'static str) -> Result<DateTime<Utc>, ApiError> {
    let text = match obj.get(name) {
        Some(Value::String(t)) => t,
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(format!(
            "{name}: missing; give an RFC 3339 instant with an offset, e.g. 2026-12-24T00:00:00Z"
        )))
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "{name}: {other} is not a string; give an RFC 3339 instant with an offset"
            )))
        }
    };
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "{name}: {text:?} is not an RFC 3339 instant with an offset ({e}); e.g. \
                 2026-12-24T00:00:00Z"
            ))
        })
}

fn ts(t: &DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The handler.
pub async fn backfill(
    state: &AppState,
    id: &str,
    body: &Bytes,
    headers: &hyper::HeaderMap,
) -> ApiResult {
    let obj = json_object(body, "a backfill range ({\"from\": ..., \"to\": ...})")?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown field {k:?} (allowed: {})",
            FIELDS.join(", ")
        )));
    }
    let (from, to) = (instant(&obj, "from")?, instant(&obj, "to")?);
    let stored = stored_or_404(state, id).await?;
    if stored.job.spec.paused {
        return Err(ApiError::conflict(format!(
            "job {id:?} is paused: resume it to backfill (a paused job makes no calls)"
        )));
    }
    let slots = stored
        .job
        .backfill_slots(from, to, Utc::now())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !state.leader.is_leader() {
        if headers.contains_key(FORWARDED_HEADER) {
            return Err(ApiError::no_leader(
                "this node is not the leader (any more); retry",
            ));
        }
        let path = format!("/v1/cronjobs/{}/backfill", crate::percent::encode(id));
        return forward(state, Method::POST, &path, Some(body.clone())).await;
    }
    let asked = slots.len();
    let done = state
        .leader
        .backfill(stored.job.spec.id.as_str().into(), slots)
        .await
        .map_err(command_error)?;
    let list = |v: &[DateTime<Utc>]| Value::Array(v.iter().map(ts).collect());
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "job_id": id,
            "from": ts(&from),
            "to": ts(&to),
            "slots": asked,
            "enqueued": list(&done.enqueued),
            "already_enqueued": list(&done.already),
            "left_to_scheduler": list(&done.held),
            "dropped": list(&done.dropped),
            "leader_node": state.config.node,
            "token": done.token,
        }),
    ))
}
