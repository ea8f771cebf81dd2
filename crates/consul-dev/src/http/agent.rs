//! `/v1/agent/*`: self, services, checks, service register/deregister, check updates.
//!
//! Must not run checks itself: TTL expiry is the timer task's (`crate::timers`).

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::catalog::{check_json, weights};
use super::reply::{Ctx, Reply};
use super::session::field;
use super::Shared;
use crate::duration::parse_go;
use crate::state::catalog::{CheckUpdateError, MIN_DEREGISTER_AFTER};
use crate::state::{Check, CheckStatus, Service, Store};

fn agent_service_json(s: &Store, x: &Service) -> Value {
    json!({
        "ID": x.id, "Service": x.name, "Tags": x.tags, "Meta": x.meta, "Port": x.port,
        "Address": x.address, "Weights": weights(), "EnableTagOverride": x.enable_tag_override,
        "Datacenter": s.node.datacenter,
    })
}

/// Dispatches `/v1/agent/<sub>`.
pub fn route_agent(shared: &Shared, ctx: &Ctx, sub: &str) -> Reply {
    let (get, put) = (ctx.method == Method::GET, ctx.method == Method::PUT);
    let not_allowed = || Reply::method_not_allowed(&ctx.method);
    if let Some(id) = sub.strip_prefix("service/deregister/") {
        return if put {
            deregister(shared, id)
        } else {
            not_allowed()
        };
    }
    for (verb, status) in [
        ("pass", CheckStatus::Passing),
        ("warn", CheckStatus::Warning),
        ("fail", CheckStatus::Critical),
    ] {
        if let Some(id) = sub.strip_prefix(&format!("check/{verb}/")) {
            if !put {
                return not_allowed();
            }
            let note = ctx.get("note").unwrap_or("").to_string();
            return update_check(shared, id, status, note);
        }
    }
    if let Some(id) = sub.strip_prefix("check/update/") {
        return if put {
            check_update_body(shared, ctx, id)
        } else {
            not_allowed()
        };
    }
    match sub {
        "self" if get => agent_self(shared),
        "services" if get => shared.read(|s| {
            let m: Map<String, Value> = s
                .services
                .values()
                .filter(|_| !ctx.filtered)
                .map(|x| (x.id.clone(), agent_service_json(s, x)))
                .collect();
            Reply::json(&Value::Object(m))
        }),
        "checks" if get => shared.read(|s| {
            let m: Map<String, Value> = s
                .checks
                .values()
                .filter(|c| !c.service_id.is_empty() && !ctx.filtered)
                .map(|c| (c.id.clone(), check_json(s, c)))
                .collect();
            Reply::json(&Value::Object(m))
        }),
        "service/register" if put => register(shared, ctx),
        "self" | "services" | "checks" | "service/register" => not_allowed(),
        _ => Reply::not_found(),
    }
}

fn agent_self(shared: &Shared) -> Reply {
    shared.read(|s| {
        Reply::json(&json!({
            "Config": {
                "Datacenter": s.node.datacenter, "NodeName": s.node.name, "NodeID": s.node.id,
                "Server": true, "Version": shared.api.version, "Revision": "consul-dev",
                "PrimaryDatacenter": s.node.datacenter,
            },
            "Member": {
                "Name": s.node.name, "Addr": s.node.address, "Port": 8301,
                "Tags": {"dc": s.node.datacenter, "role": "consul", "build": shared.api.version},
                "Status": 1,
            },
            "Meta": {"consul-network-segment": ""},
        }))
    })
}

fn update_check(shared: &Shared, id: &str, status: CheckStatus, output: String) -> Reply {
    match shared.write(|s, now| s.update_ttl_check(id, status, output, now)) {
        Ok(()) => Reply::empty(hyper::StatusCode::OK),
        Err(CheckUpdateError::NoTtl(id)) => {
            Reply::internal(format!("CheckID {id:?} does not have associated TTL"))
        }
    }
}

fn check_update_body(shared: &Shared, ctx: &Ctx, id: &str) -> Reply {
    let v: Value = match serde_json::from_slice(&ctx.body) {
        Ok(v) => v,
        Err(e) => return Reply::bad(format!("Request decode failed: {e}")),
    };
    let Some(m) = v.as_object() else {
        return Reply::bad("Request decode failed: expected a JSON object");
    };
    let status_text = field(m, "Status").and_then(Value::as_str).unwrap_or("");
    let Some(status) = CheckStatus::parse(status_text) else {
        return Reply::bad(format!("Invalid check status: '{status_text}'"));
    };
    let output = field(m, "Output")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    update_check(shared, id, status, output)
}

fn deregister(shared: &Shared, id: &str) -> Reply {
    if shared.write(|s, now| s.deregister_service(id, now)) {
        Reply::empty(hyper::StatusCode::OK)
    } else {
        Reply::text(
            hyper::StatusCode::NOT_FOUND,
            format!("Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."),
        )
    }
}

fn dur_field(m: &Map<String, Value>, name: &str) -> Result<Option<Duration>, String> {
    match field(m, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse_go(s).map(Some),
        Some(Value::Number(n)) => Ok(Some(Duration::from_nanos(n.as_u64().unwrap_or(0)))),
        Some(o) => Err(format!("cannot decode {name} from {o}")),
    }
}

/// Parses one check definition; `Ok((check, status_given))`.
fn parse_check(v: &Value, default_id: String) -> Result<(Check, bool), Reply> {
    let bad = |m: String| Reply::bad(format!("Request decode failed: {m}"));
    let m = v
        .as_object()
        .ok_or_else(|| bad("check must be an object".into()))?;
    let s = |n: &str| {
        field(m, n)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let ttl = dur_field(m, "TTL").map_err(bad)?;
    let http = Some(s("HTTP")).filter(|h| !h.is_empty());
    let interval = s("Interval");
    if ttl.is_none() && http.is_none() {
        return Err(Reply::bad(
            "Invalid check: TTL must be > 0 for TTL checks, or HTTP and Interval must be given",
        ));
    }
    if http.is_some() && parse_go(&interval).map_or(true, |d| d.is_zero()) {
        return Err(Reply::bad(
            "Invalid check: Interval must be > 0 for HTTP checks",
        ));
    }
    let status_text = s("Status");
    let (status, given) = if status_text.is_empty() {
        (CheckStatus::Critical, false)
    } else {
        let st = CheckStatus::parse(&status_text)
            .ok_or_else(|| Reply::bad("Status for checks must 'passing', 'warning', 'critical'"))?;
        (st, true)
    };
    let id = Some(s("CheckID"))
        .filter(|x| !x.is_empty())
        .or(Some(s("ID")).filter(|x| !x.is_empty()));
    let dereg = dur_field(m, "DeregisterCriticalServiceAfter").map_err(bad)?;
    let id = id.unwrap_or(default_id);
    let name = Some(s("Name")).filter(|x| !x.is_empty());
    Ok((
        Check {
            name: name.unwrap_or_else(|| format!("Service '{}' check", id)),
            id,
            status,
            notes: s("Notes"),
            output: String::new(),
            service_id: String::new(),
            service_name: String::new(),
            kind: if ttl.is_some() { "ttl" } else { "http" }.to_string(),
            ttl,
            http,
            interval_dur: parse_go(&interval).ok().filter(|d| !d.is_zero()),
            interval,
            deregister_after: dereg.map(|d| d.max(MIN_DEREGISTER_AFTER)),
            create_index: 0,
            modify_index: 0,
            deadline: None,
            critical_since: None,
            next_run: None,
        },
        given,
    ))
}

fn register(shared: &Shared, ctx: &Ctx) -> Reply {
    let v: Value = match serde_json::from_slice(&ctx.body) {
        Ok(v) => v,
        Err(e) => return Reply::bad(format!("Request decode failed: {e}")),
    };
    let Some(m) = v.as_object() else {
        return Reply::bad("Request decode failed: expected a JSON object");
    };
    let s = |n: &str| {
        field(m, n)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = s("Name");
    if name.is_empty() {
        return Reply::bad("Missing service name");
    }
    let id = Some(s("ID"))
        .filter(|x| !x.is_empty())
        .unwrap_or_else(|| name.clone());
    let tags: Vec<String> = match field(m, "Tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        Some(_) => return Reply::bad("Request decode failed: Tags must be an array of strings"),
    };
    let meta: BTreeMap<String, String> = match field(m, "Meta") {
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
        _ => BTreeMap::new(),
    };
    let port = match field(m, "Port") {
        None | Some(Value::Null) => 0,
        Some(p) => match p.as_u64().and_then(|p| u16::try_from(p).ok()) {
            Some(p) => p,
            None => return Reply::bad("Request decode failed: Port must be a number 0..=65535"),
        },
    };
    let mut defs: Vec<Value> = Vec::new();
    if let Some(c) = field(m, "Check").filter(|c| !c.is_null()) {
        defs.push(c.clone());
    }
    if let Some(Value::Array(a)) = field(m, "Checks") {
        defs.extend(a.iter().cloned());
    }
    let many = defs.len() > 1;
    let mut checks = Vec::new();
    for (i, d) in defs.iter().enumerate() {
        let default_id = if many {
            format!("service:{id}:{}", i + 1)
        } else {
            format!("service:{id}")
        };
        match parse_check(d, default_id) {
            Ok(c) => checks.push(c),
            Err(r) => return r,
        }
    }
    let svc = Service {
        id,
        name,
        tags,
        meta,
        address: s("Address"),
        port,
        enable_tag_override: field(m, "EnableTagOverride")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        create_index: 0,
        modify_index: 0,
    };
    shared.write(|st, now| st.register_service(svc, checks, now));
    Reply::empty(hyper::StatusCode::OK)
}
