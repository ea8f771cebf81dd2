//! The OpenAPI 3.0 document served at `/v1/openapi.json`, made from the route table.
//!
//! [`document`] lists every route of the table it is given, under its path and method, with the
//! operation the route's row points to (one function below per operation: summary, parameters,
//! responses) and what follows from the row itself: the `{id}` path parameter, the 401, 413
//! and 503 every route with the token can answer, and no security on an open route. So the
//! document cannot list a route that does not dispatch, or miss one that does. Routes without
//! an operation (the web console's pages) are left out.
//!
//! Must not: decide anything about routing (`router.rs`) or hold the table (`routes.rs`).

use serde_json::{json, Map, Value};

use super::router::{Access, Route, ID};

/// The document, for the routes of `routes`.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes.iter().filter(|r| r.doc.is_some()) {
        let item = paths.entry(route.path).or_insert_with(|| json!({}));
        if route.path.contains(ID) {
            item["parameters"] = json!([id_param()]);
        }
        item[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "cronnode",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A distributed cron for serverless functions. Every node serves this API; writes go to Consul, manual runs and fence resets are carried out by the leader. Errors are {\"error\":{\"code\",\"message\"}}."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": components(),
    })
}

/// The route's operation, completed by what its row says.
fn operation(route: &Route) -> Value {
    let mut op = route.doc.map_or(Value::Null, |doc| doc());
    match route.access {
        Access::Open => op["security"] = json!([]),
        Access::Token => {
            let common = [
                ("401", err("Missing or wrong bearer token")),
                ("413", err("Body over the limit")),
                ("503", err("Consul or Redis unavailable, or no leader")),
            ];
            if let Some(responses) = op["responses"].as_object_mut() {
                for (status, answer) in common {
                    responses.entry(status).or_insert(answer);
                }
            }
        }
    }
    op
}

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn job_ref() -> Value {
    json!({"$ref": "#/components/schemas/Job"})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true,
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"},
           "description": "Job id: 1-128 of A-Z a-z 0-9 _ . -, not starting with '.', no '..'"})
}

fn job_body() -> Value {
    json!({"required": true, "content": {"application/json": {"schema": job_ref()}}})
}

fn any_object() -> Value {
    json!({"type": "object"})
}

/// `GET /health`.
pub fn health() -> Value {
    json!({"summary": "Alive (no token needed; never touches Consul or Redis)",
        "responses": {"200": ok("Alive", any_object())}})
}

/// `GET /ready`.
pub fn ready() -> Value {
    json!({"summary": "Consul and Redis answer",
        "responses": {"200": ok("Ready", any_object())}})
}

/// `GET /metrics`.
pub fn metrics() -> Value {
    json!({"summary": "Prometheus text",
        "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}})
}

/// `GET /v1/openapi.json`.
pub fn openapi() -> Value {
    json!({"summary": "This document",
        "responses": {"200": ok("OpenAPI document", any_object())}})
}

/// `GET /v1/cronjobs`.
pub fn list_jobs() -> Value {
    json!({"summary": "List jobs, one page at a time: follow `next` (as `after`) until it is null",
        "description": "Jobs come in a stable order (by shard, then id). A page holds at most `limit` jobs; a filtered page (`app`, `id_contains`, `state`) may hold fewer, even none, before the end.",
        "parameters": [
            {"name": "app", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Only the jobs of this app"},
            {"name": "id_contains", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Only the entries whose id contains this (ASCII case ignored; for an invalid entry, the last segment of its key)"},
            {"name": "state", "in": "query", "required": false, "schema": {"type": "string", "enum": ["active", "paused", "invalid"]},
             "description": "Only the jobs that are active (not paused) or paused, or only the invalid entries"},
            {"name": "limit", "in": "query", "required": false,
             "schema": {"type": "integer", "minimum": 1, "maximum": consul_lock::MAX_PAGE_LIMIT, "default": consul_lock::DEFAULT_PAGE_LIMIT},
             "description": "Most jobs in this page"},
            {"name": "after", "in": "query", "required": false, "schema": {"type": "string"},
             "description": "The `next` of the previous page; absent for the first page"}
        ],
        "responses": {"200": ok("A page of jobs, and entries that fail validation", json!({"type": "object", "required": ["jobs", "invalid", "next"], "properties": {
            "jobs": {"type": "array", "items": job_ref()},
            "invalid": {"type": "array", "description": "Stored entries that fail validation among those this page walked (the first page also lists keys outside the shard folders)",
                "items": {"type": "object", "properties": {"key": {"type": "string"}, "error": {"type": "string"}}}},
            "next": {"type": "string", "nullable": true, "description": "Pass as `after` for the next page; null at the end"}}})),
            "400": err("Bad `limit` or `state` (the message says what is allowed) or `after`")}})
}

/// `POST /v1/cronjobs`.
pub fn create_job() -> Value {
    json!({"summary": "Create a job", "requestBody": job_body(),
        "responses": {"201": ok("Created", job_ref()),
            "400": err("Malformed JSON, not an object, or an unknown field"),
            "409": err("A job with this id exists"),
            "415": err("Content-Type is not JSON"),
            "422": err("Invalid job: the message names the field and what is allowed")}})
}

/// `POST /v1/validate`.
pub fn validate_job() -> Value {
    json!({"summary": "Validate a job spec as a create would, without writing it",
        "description": "What the console's editor calls as one types. A valid spec answers 200 with the job as it would be stored; an invalid one answers exactly what `POST /v1/cronjobs` would (400, 422 naming the field).",
        "requestBody": job_body(),
        "responses": {"200": ok("Valid", json!({"type": "object", "properties": {"valid": {"type": "boolean"}, "job": job_ref()}})),
            "400": err("Malformed JSON, not an object, or an unknown field"),
            "415": err("Content-Type is not JSON"),
            "422": err("Invalid job: the message starts with the field (`frequency: ...`) and says what is allowed")}})
}

/// `GET /v1/cronjobs/{id}`.
pub fn get_job() -> Value {
    json!({"summary": "Read a job",
        "responses": {"200": ok("The job", job_ref()), "400": err("Bad id"), "404": err("No such job")}})
}

/// `PUT /v1/cronjobs/{id}`.
pub fn replace_job() -> Value {
    json!({"summary": "Replace a job (a `version` in the body makes it a check-and-set)", "requestBody": job_body(),
        "responses": {"200": ok("Replaced, and applied by the leader to what it staged", job_ref()),
            "202": ok("Replaced; the leader did not confirm (its watch brings it)", job_ref()), "400": err("Malformed JSON, bad id or unknown field"),
            "404": err("No such job"), "409": err("Stale version"), "415": err("Content-Type is not JSON"), "422": err("Invalid job")}})
}

/// `DELETE /v1/cronjobs/{id}`.
pub fn delete_job() -> Value {
    json!({"summary": "Delete a job",
        "responses": {"200": ok("Deleted, and its staged tasks withdrawn by the leader", any_object()),
            "202": ok("Deleted; the leader did not confirm (its watch brings it)", any_object()), "400": err("Bad id"), "404": err("No such job")}})
}

/// `POST /v1/cronjobs/{id}/pause`.
pub fn pause_job() -> Value {
    json!({"summary": "Pause a job",
        "responses": {"200": ok("The job, its staged tasks withdrawn by the leader", job_ref()),
            "202": ok("The job; the leader did not confirm (its watch brings it)", job_ref()), "400": err("Bad id"), "404": err("No such job"), "409": err("Kept changing")}})
}

/// `POST /v1/cronjobs/{id}/resume`.
pub fn resume_job() -> Value {
    json!({"summary": "Resume a job (missed slots follow its catch-up policy)",
        "responses": {"200": ok("The job, applied by the leader", job_ref()),
            "202": ok("The job; the leader did not confirm (its watch brings it)", job_ref()), "400": err("Bad id"), "404": err("No such job"), "409": err("Kept changing")}})
}

/// `POST /v1/cronjobs/{id}/run`.
pub fn run_job() -> Value {
    json!({"summary": "Enqueue one manual call now (carried out by the leader)",
        "responses": {"202": ok("Enqueued", json!({"type": "object", "properties": {
            "job_id": {"type": "string"}, "fire_id": {"type": "string", "format": "uuid"}, "slot": {"type": "string", "format": "date-time"},
            "outcome": {"type": "string"}, "leader_node": {"type": "string"}, "token": {"type": "integer"}}})),
            "400": err("Bad id"), "404": err("No such job"), "409": err("Fence blocked")}})
}

/// `POST /v1/cronjobs/{id}/backfill`.
pub fn backfill_job() -> Value {
    let slots = json!({"type": "array", "items": {"type": "string", "format": "date-time"}});
    json!({"summary": "Fire the job's slots in [from, to] that were never enqueued (carried out by the leader; repeating it fires nothing twice; slots that did fire are not run again)",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["from", "to"], "additionalProperties": false, "properties": {
            "from": {"type": "string", "format": "date-time", "description": "RFC 3339 with an offset; not older than the job's catch-up window + 23h (older slots have no dedupe mark left)"},
            "to": {"type": "string", "format": "date-time", "description": "RFC 3339 with an offset; not in the future"}}}}}},
        "responses": {"200": ok("What each slot became", json!({"type": "object", "properties": {
            "job_id": {"type": "string"}, "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
            "slots": {"type": "integer", "description": "Slots of the job in the range"},
            "enqueued": slots, "already_enqueued": slots, "left_to_scheduler": slots, "dropped": slots,
            "leader_node": {"type": "string"}, "token": {"type": "integer"}}})),
            "400": err(&format!("Bad id, body or range (more than {} slots, in the future, too old)", cron_core::MAX_BACKFILL_SLOTS)),
            "404": err("No such job"), "409": err("Job paused, or fence blocked"), "503": err("No leader, or it did not answer")}})
}

/// `POST /v1/cronjobs/{id}/sync`.
pub fn sync_job() -> Value {
    json!({"summary": "Have the leader apply the job as stored now to the tasks it staged (withdraw or restage them); the API's own writes do it, forwarded to the leader",
        "responses": {"200": ok("Applied", json!({"type": "object", "properties": {
            "job_id": {"type": "string"}, "withdrawn": {"type": "integer"}, "restaged": {"type": "integer"},
            "leader_node": {"type": "string"}}})),
            "400": err("Bad id"), "409": err("Fence blocked"), "503": err("No leader, or it did not answer")}})
}

/// `GET /v1/cronjobs/{id}/fires`.
pub fn job_fires() -> Value {
    json!({"summary": "Recent fires (capped history), newest first",
        "responses": {"200": ok("History", json!({"type": "object", "properties": {"job_id": {"type": "string"}, "fires": {"type": "array", "items": {"$ref": "#/components/schemas/FireRecord"}}}})),
            "400": err("Bad id"), "404": err("No such job")}})
}

/// `GET /v1/leader`.
pub fn leader() -> Value {
    json!({"summary": "The leader (node, API address, since, token) and the fence",
        "responses": {"200": ok("Leader", any_object())}})
}

/// `POST /v1/leader/fence/reset`.
pub fn fence_reset() -> Value {
    json!({"summary": "Set the Redis fence to the leader's token (after Consul was rebuilt; forwarded to the leader)",
        "responses": {"200": ok("Fence now", json!({"type": "object", "properties": {"fence": {"type": "integer"}, "node": {"type": "string"}}}))}})
}

/// `GET /v1/leader/activity`.
pub fn leader_activity() -> Value {
    json!({"summary": "The leader's fires per second and lateness over the last minutes (a follower forwards the request to the leader)",
        "description": "One point per step, oldest first, from the leader's own metrics (`cronnode_fires_total`, `cronnode_fire_lateness_seconds`), kept in its memory: a new leader's history starts when it started.",
        "responses": {"200": ok("Activity", json!({"type": "object", "properties": {
            "node": {"type": "string", "description": "The leader that answered"},
            "step_secs": {"type": "integer"}, "window_secs": {"type": "integer"},
            "points": {"type": "array", "items": {"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time", "description": "End of the step"},
                "enqueued": {"type": "integer"}, "duplicate": {"type": "integer"}, "fenced": {"type": "integer"}, "error": {"type": "integer"},
                "fires_per_sec": {"type": "number"},
                "late_count": {"type": "integer", "description": "Scheduled fires whose lateness was measured in the step"},
                "lateness_mean_ms": {"type": "number", "nullable": true},
                "lateness_p99_ms": {"type": "number", "nullable": true, "description": "Upper bound of the histogram bucket holding the 99th percentile"}}}}}})),
            "503": err("No leader right now")}})
}

/// `GET /v1/nodes`.
pub fn nodes() -> Value {
    json!({"summary": "The nodes (from Consul's health endpoint): check status, datacenter, which one leads",
        "responses": {"200": ok("Nodes", any_object())}})
}

/// `GET /v1/status`.
pub fn status() -> Value {
    json!({"summary": "Leader, nodes, job count, fence, queue depths, and the Consul UI's links (`consul_ui`: lock_key, jobs, service; null while no node is registered)",
        "responses": {"200": ok("Status", any_object())}})
}

/// `GET /v1/schedule`.
pub fn schedule() -> Value {
    json!({"summary": "Preview a schedule's next slots",
        "parameters": [
            {"name": "frequency", "in": "query", "required": true, "schema": {"type": "string"}},
            {"name": "tz", "in": "query", "required": false, "schema": {"type": "string"}, "description": "IANA zone, default UTC"},
            {"name": "n", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": crate::preview::MAX_PREVIEW}},
            {"name": "from", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}},
            {"name": "start_at", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}, "description": "As a job's `start_at`: no slot before"},
            {"name": "end_at", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}, "description": "As a job's `end_at`: no slot after"},
            {"name": "jitter", "in": "query", "required": false, "schema": {"type": "string"}, "description": "As a job's `jitter` (`5m`): adds `runs_at`"},
            {"name": "id", "in": "query", "required": false, "schema": {"type": "string"}, "description": "The job id the jitter's offsets are drawn for (default `preview`)"}
        ],
        "responses": {"200": ok("Slots", json!({"type": "object", "properties": {
            "slots": {"type": "array", "items": {"type": "string", "format": "date-time"}, "description": "In UTC"},
            "local": {"type": "array", "items": {"type": "string", "format": "date-time"}, "description": "The same slots in the zone, with its offset"},
            "offset_changed": {"type": "array", "items": {"type": "boolean"}, "description": "The zone's offset differs from the slot before's (the first: from `from`'s): a daylight-saving change"},
            "runs_at": {"type": "array", "items": {"type": "string", "format": "date-time"}, "description": "With `jitter` only: the instant each slot runs at"}}})),
            "400": err("Missing or bad parameter"), "422": err("Bad expression, time zone, start_at, end_at or jitter")}})
}

fn components() -> Value {
    json!({
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Required when the node runs with --api-token"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "enum": super::errors::ERROR_CODES}, "message": {"type": "string"}}}}},
            "Job": {"type": "object", "required": ["id", "function", "frequency"], "additionalProperties": false, "properties": {
                "id": {"type": "string"},
                "function": {"type": "object", "required": ["app", "path"], "additionalProperties": false, "properties": {
                    "app": {"type": "string"}, "path": {"type": "string"},
                    "headers": {"type": "array", "items": {"type": "string"}, "description": "`Name: value` lines"},
                    "body": {"type": "string", "maxLength": cron_core::job::MAX_BODY_BYTES},
                    "image": {"type": "string"}, "priority": {"type": "integer", "minimum": 0, "maximum": 2},
                    "timeout": {"type": "integer", "minimum": 1, "maximum": 3600},
                    "delay": {"type": "integer", "minimum": 0, "maximum": cron_core::job::MAX_DELAY_SECS}}},
                "frequency": {"type": "string", "description": "crontab (5 or 6 fields), @daily…, @every 90s, or a one-shot `@at 2026-12-24T18:00:00+01:00`"},
                "jitter": {"type": "string", "description": "Each slot runs later by an offset in [0, jitter) drawn from (job id, slot), e.g. `5m`; at most 24h and at most the schedule's shortest interval between slots"},
                "start_at": {"type": "string", "format": "date-time", "description": "RFC 3339 with an offset: no slot before"},
                "end_at": {"type": "string", "format": "date-time", "description": "RFC 3339 with an offset: no slot after (not before start_at)"},
                "timezone": {"type": "string", "description": "IANA zone, default UTC"},
                "paused": {"type": "boolean"},
                "catchup": {"type": "object", "properties": {"policy": {"type": "string", "enum": ["skip", "latest", "all"]}, "window": {"type": "string"}}},
                "description": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "next_start": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true},
                "next_run_at": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true, "description": "With a jitter: the instant next_start runs at"},
                "state": {"type": "string", "enum": ["waiting", "active", "ended", "done", "due", "missed"], "readOnly": true, "description": "waiting: before start_at; ended: no slot left; done: a one-shot that fired; due/missed: a one-shot past its instant, unfired, inside/beyond its catch-up window"},
                "last_start": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true},
                "created_at": {"type": "string", "format": "date-time", "readOnly": true},
                "updated_at": {"type": "string", "format": "date-time", "readOnly": true},
                "version": {"type": "integer", "description": "Read-only; send it back on PUT for check-and-set"}}},
            "FireRecord": {"type": "object", "properties": {
                "slot": {"type": "string", "format": "date-time"}, "enqueued_at": {"type": "string", "format": "date-time"},
                "lateness_ms": {"type": "integer"}, "fire_id": {"type": "string", "format": "uuid"},
                "kind": {"type": "string", "enum": ["scheduled", "catchup", "manual", "backfill"]},
                "leader_node": {"type": "string"}, "token": {"type": "integer"}, "outcome": {"type": "string"}}}
        }
    })
}
