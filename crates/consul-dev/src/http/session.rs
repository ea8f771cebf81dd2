//! `/v1/session/*`: create (body fields, defaults, LockDelay as text or number), renew,
//! destroy, info, node, list.
//!
//! Field names in bodies match case-insensitively, as Go's JSON decoding does.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::blocking;
use super::reply::{Ctx, Reply};
use super::Shared;
use crate::duration::parse_go;
use crate::state::session::{NewSession, ServiceCheck, SESSION_TTL_MAX, SESSION_TTL_MIN};
use crate::state::{Behavior, Session, SERF_CHECK_ID};

/// Default lock-delay.
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
/// LockDelay values below this (as a number, or as a duration) are read as seconds.
const LOCK_DELAY_SECONDS_THRESHOLD: u64 = 1000;

/// JSON form of a session as a Consul before 1.7 shows it: one `Checks` list.
pub fn legacy_session_json(s: &Session) -> Value {
    let checks: Vec<&str> = s.check_ids().collect();
    json!({
        "ID": s.id,
        "Name": s.name,
        "Node": s.node,
        "Checks": checks,
        "LockDelay": s.lock_delay.as_nanos() as u64,
        "Behavior": s.behavior.as_str(),
        "TTL": s.ttl,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

/// JSON form of a session.
pub fn session_json(s: &Session) -> Value {
    let service_checks = s.service_checks.as_ref().map(|v| {
        v.iter()
            .map(|c| json!({"ID": c.id, "Namespace": c.namespace}))
            .collect::<Vec<_>>()
    });
    json!({
        "ID": s.id,
        "Name": s.name,
        "Node": s.node,
        "LockDelay": s.lock_delay.as_nanos() as u64,
        "Behavior": s.behavior.as_str(),
        "TTL": s.ttl,
        "NodeChecks": s.node_checks,
        "ServiceChecks": service_checks,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

/// A field of a JSON object, matched ignoring case and underscores (Go's decoding, plus the
/// snake_case forms Consul's definitions accept).
pub fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let norm = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let want = norm(name);
    m.iter().find(|(k, _)| norm(k) == want).map(|(_, v)| v)
}

/// Dispatches `/v1/session/<sub>`.
pub async fn route(shared: &Shared, ctx: &Ctx, sub: &str) -> Reply {
    let (op, arg) = sub.split_once('/').unwrap_or((sub, ""));
    let want = match op {
        "create" | "destroy" | "renew" => Method::PUT,
        "info" | "node" | "list" => Method::GET,
        _ => return Reply::not_found(),
    };
    if ctx.method != want {
        return Reply::method_not_allowed(&ctx.method);
    }
    if matches!(op, "destroy" | "renew" | "info") && !arg.is_empty() {
        if let Some(e) = crate::state::session::lookup_error(arg) {
            return Reply::internal(e);
        }
    }
    match op {
        "create" => create(shared, ctx),
        "destroy" | "renew" if arg.is_empty() => Reply::bad("Missing session"),
        "destroy" => {
            shared.write(|s, now| s.destroy_session(arg, now));
            Reply::json(&json!(true))
        }
        "renew" => match shared.write(|s, now| s.renew_session(arg, now)) {
            Some(sess) => Reply::json(&json!([render(shared, &sess)])),
            None => Reply::text(
                StatusCode::NOT_FOUND,
                format!("Session id '{arg}' not found"),
            ),
        },
        "info" if arg.is_empty() => Reply::bad("Missing session"),
        "node" if arg.is_empty() => Reply::bad("Missing node name"),
        _ => list(shared, ctx, op, arg).await,
    }
}

async fn list(shared: &Shared, ctx: &Ctx, op: &str, arg: &str) -> Reply {
    let opts = match blocking::parse_opts(ctx) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let filtered = ctx.filtered;
    blocking::run(
        shared,
        opts,
        blocking::Interest::Sessions,
        |s| s.sessions_index,
        |s| {
            let items: Vec<Value> = s
                .sessions
                .values()
                .filter(|_| !filtered)
                .filter(|x| match op {
                    "info" => x.id == arg,
                    "node" => x.node == arg,
                    _ => true,
                })
                .map(|x| render(shared, x))
                .collect();
            Reply::json(&Value::Array(items))
        },
    )
    .await
}

/// A session as the emulated version shows it.
fn render(shared: &Shared, s: &Session) -> Value {
    if shared.api.split_checks {
        session_json(s)
    } else {
        legacy_session_json(s)
    }
}

/// Reads LockDelay: a Go duration string or a number of nanoseconds; below 1000 (of either)
/// it means seconds.
fn lock_delay(v: &Value) -> Result<Duration, String> {
    let d = match v {
        Value::String(s) => parse_go(s)?,
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if f <= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_nanos(f as u64)
            }
        }
        Value::Null => return Ok(DEFAULT_LOCK_DELAY),
        other => return Err(format!("cannot decode LockDelay from {other}")),
    };
    if (d.as_nanos() as u64) < LOCK_DELAY_SECONDS_THRESHOLD {
        return Ok(Duration::from_secs(d.as_nanos() as u64));
    }
    Ok(d)
}

fn strings(v: &Value, what: &str) -> Result<Option<Vec<String>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("json: cannot unmarshal {x} into {what}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(format!("json: cannot unmarshal {other} into {what}")),
    }
}

/// Why a create body was refused: Consul answers decoding errors with 400 and the checks its
/// RPC makes after decoding (Behavior, TTL) with 500.
enum CreateError {
    Decode(String),
    Rejected(String),
}

impl From<String> for CreateError {
    fn from(e: String) -> Self {
        CreateError::Decode(e)
    }
}

/// Reads a create body. Without `split_checks` (Consul < 1.7) `NodeChecks` and `ServiceChecks`
/// are unknown fields, ignored without a word: only `Checks` binds.
fn parse_create(body: &[u8], node: &str, split_checks: bool) -> Result<NewSession, CreateError> {
    let mut req = NewSession {
        name: String::new(),
        node: node.to_string(),
        lock_delay: DEFAULT_LOCK_DELAY,
        behavior: Behavior::Release,
        ttl: String::new(),
        ttl_dur: None,
        node_checks: Some(vec![SERF_CHECK_ID.to_string()]),
        service_checks: None,
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(req);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(m) = v else {
        return Err(CreateError::Decode(
            "json: cannot unmarshal into Go value of type structs.Session".to_string(),
        ));
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match field(&m, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(o) => Err(format!(
                "json: cannot unmarshal {o} into Go struct field {name} of type string"
            )),
        }
    };
    if let Some(n) = text("Name")? {
        req.name = n;
    }
    if let Some(n) = text("Node")?.filter(|n| !n.is_empty()) {
        req.node = n;
    }
    if let Some(b) = text("Behavior")? {
        req.behavior = match b.as_str() {
            "" | "release" => Behavior::Release,
            "delete" => Behavior::Delete,
            other => {
                return Err(CreateError::Rejected(format!(
                    "Invalid Behavior setting '{other}'"
                )))
            }
        };
    }
    if let Some(v) = field(&m, "LockDelay") {
        req.lock_delay = lock_delay(v)?;
    }
    if let Some(t) = text("TTL")? {
        if !t.is_empty() {
            let d = parse_go(&t)
                .map_err(|e| CreateError::Rejected(format!("Session TTL '{t}' invalid: {e}")))?;
            if !d.is_zero() && (d < SESSION_TTL_MIN || d > SESSION_TTL_MAX) {
                return Err(CreateError::Rejected(format!(
                    "Invalid Session TTL '{}', must be between [{}={}]",
                    d.as_nanos(),
                    crate::duration::format_go(SESSION_TTL_MIN),
                    crate::duration::format_go(SESSION_TTL_MAX)
                )));
            }
            req.ttl_dur = (!d.is_zero()).then_some(d);
        }
        req.ttl = t;
    }
    // `Checks` (deprecated since 1.7) replaces the default node checks, as NodeChecks does.
    if let Some(v) = field(&m, "Checks") {
        req.node_checks = strings(v, "Checks")?;
    }
    if !split_checks {
        return Ok(req);
    }
    if let Some(v) = field(&m, "NodeChecks") {
        req.node_checks = strings(v, "NodeChecks")?;
    }
    if let Some(v) = field(&m, "ServiceChecks") {
        req.service_checks = match v {
            Value::Null => None,
            Value::Array(a) => Some(
                a.iter()
                    .map(|c| {
                        let o = c
                            .as_object()
                            .ok_or("json: cannot unmarshal ServiceChecks")?;
                        let id = field(o, "ID").and_then(Value::as_str).unwrap_or("");
                        let ns = field(o, "Namespace").and_then(Value::as_str).unwrap_or("");
                        Ok(ServiceCheck {
                            id: id.to_string(),
                            namespace: ns.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, &str>>()
                    .map_err(str::to_string)?,
            ),
            _ => {
                return Err(CreateError::Decode(
                    "json: cannot unmarshal ServiceChecks".to_string(),
                ))
            }
        };
    }
    Ok(req)
}

fn create(shared: &Shared, ctx: &Ctx) -> Reply {
    let node = shared.read(|s| s.node.name.clone());
    let req = match parse_create(&ctx.body, &node, shared.api.split_checks) {
        Ok(r) => r,
        Err(CreateError::Rejected(e)) => return Reply::internal(e),
        Err(CreateError::Decode(e)) => return Reply::bad(format!("Request decode failed: {e}")),
    };
    match shared.write(|s, now| s.create_session(req, now)) {
        Ok(sess) => Reply::json(&json!({"ID": sess.id})),
        Err(e) => Reply::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_delay_numbers_and_strings() {
        assert_eq!(lock_delay(&json!(5)), Ok(Duration::from_secs(5)));
        assert_eq!(lock_delay(&json!(0)), Ok(Duration::ZERO));
        assert_eq!(lock_delay(&json!("15s")), Ok(Duration::from_secs(15)));
        assert_eq!(
            lock_delay(&json!(2_000_000_000u64)),
            Ok(Duration::from_secs(2))
        );
        assert!(lock_delay(&json!("soon")).is_err());
    }
}
