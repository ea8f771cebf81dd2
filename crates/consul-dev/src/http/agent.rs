//! `/v1/agent/*` (self, services, checks, service register/deregister, check updates) and the
//! catalog, health and status reads built from the same one-node state.
//!
//! Must not run checks itself: TTL expiry is the timer task's (`crate::timers`).

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::blocking;
use super::reply::{Ctx, Reply};
use super::session::field;
use super::Shared;
use crate::duration::parse_go;
use crate::state::catalog::{CheckUpdateError, MIN_DEREGISTER_AFTER};
use crate::state::{Check, CheckStatus, Service, Store};

/// The Consul version the agent reports (the behaviour it follows).
pub const CONSUL_VERSION: &str = "1.21.5";
/// The address the one server "listens" on for RPC, as status endpoints report it.
const SERVER_RPC_ADDR: &str = "127.0.0.1:8300";

fn check_json(s: &Store, c: &Check) -> Value {
    let tags = s
        .services
        .get(&c.service_id)
        .map(|x| x.tags.clone())
        .unwrap_or_default();
    json!({
        "Node": s.node.name,
        "CheckID": c.id,
        "Name": c.name,
        "Status": c.status.as_str(),
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": c.service_name,
        "ServiceTags": tags,
        "Type": c.kind,
        "Interval": c.interval,
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}

fn weights() -> Value {
    json!({"Passing": 1, "Warning": 1})
}

fn agent_service_json(s: &Store, x: &Service) -> Value {
    json!({
        "ID": x.id, "Service": x.name, "Tags": x.tags, "Meta": x.meta, "Port": x.port,
        "Address": x.address, "Weights": weights(), "EnableTagOverride": x.enable_tag_override,
        "Datacenter": s.node.datacenter,
    })
}

fn node_json(s: &Store) -> Value {
    json!({
        "ID": s.node.id, "Node": s.node.name, "Address": s.node.address,
        "Datacenter": s.node.datacenter,
        "TaggedAddresses": {"lan": s.node.address, "wan": s.node.address},
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": s.node.create_index, "ModifyIndex": s.node.create_index,
    })
}

/// Service instances named `name`: the `consul` service of the server itself, then ours.
fn instances(s: &Store, name: &str) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    if name == "consul" {
        out.push(Service {
            id: "consul".into(),
            name: "consul".into(),
            tags: Vec::new(),
            meta: BTreeMap::new(),
            address: String::new(),
            port: 8300,
            enable_tag_override: false,
            create_index: s.node.create_index,
            modify_index: s.node.create_index,
        });
    }
    out.extend(s.services.values().filter(|x| x.name == name).cloned());
    out
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
                "Server": true, "Version": CONSUL_VERSION, "Revision": "consul-dev",
                "PrimaryDatacenter": s.node.datacenter,
            },
            "Member": {
                "Name": s.node.name, "Addr": s.node.address, "Port": 8301,
                "Tags": {"dc": s.node.datacenter, "role": "consul", "build": CONSUL_VERSION},
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
            interval,
            deregister_after: dereg.map(|d| d.max(MIN_DEREGISTER_AFTER)),
            create_index: 0,
            modify_index: 0,
            deadline: None,
            critical_since: None,
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

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Dispatches `/v1/catalog/*`, `/v1/health/*`, `/v1/status/*` (all GET).
pub async fn route_catalog(shared: &Shared, ctx: &Ctx, area: &str, sub: &str) -> Reply {
    let (op, arg) = sub.split_once('/').unwrap_or((sub, ""));
    let known = matches!(
        (area, op),
        ("catalog", "services" | "service" | "nodes")
            | ("health", "service" | "checks")
            | ("status", "leader" | "peers")
    );
    if !known {
        return Reply::not_found();
    }
    if ctx.method != Method::GET {
        return Reply::method_not_allowed(&ctx.method);
    }
    match (area, op) {
        ("status", "leader") => return Reply::json(&json!(SERVER_RPC_ADDR)),
        ("status", "peers") => return Reply::json(&json!([SERVER_RPC_ADDR])),
        (_, "service" | "checks") if arg.is_empty() => return Reply::bad("Missing service name"),
        _ => {}
    }
    let opts = match blocking::parse_opts(ctx) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let filtered = ctx.filtered;
    // Consul reads `passing` as a bool (bare means true), so `?passing=false` filters nothing.
    let passing = match ctx.get("passing") {
        None => false,
        Some("") => true,
        Some(v) => match parse_go_bool(v) {
            Some(b) => b,
            None => return Reply::bad("Invalid value for ?passing"),
        },
    };
    let tag = ctx.get("tag").map(str::to_string);
    blocking::run(shared, opts, |s| {
        let idx = s.catalog_index;
        let has_tag = |x: &Service| tag.as_ref().is_none_or(|t| x.tags.contains(t));
        let body = match (area, op) {
            ("catalog", "services") => {
                let mut m = Map::new();
                if !filtered {
                    m.insert("consul".into(), json!([]));
                    for x in s.services.values() {
                        let e = m.entry(x.name.clone()).or_insert_with(|| json!([]));
                        if let Some(a) = e.as_array_mut() {
                            for t in &x.tags {
                                if !a.contains(&json!(t)) {
                                    a.push(json!(t));
                                }
                            }
                        }
                    }
                }
                Value::Object(m)
            }
            ("catalog", "nodes") => {
                if filtered {
                    json!([])
                } else {
                    json!([node_json(s)])
                }
            }
            ("catalog", "service") => Value::Array(
                instances(s, arg)
                    .iter()
                    .filter(|x| !filtered && has_tag(x))
                    .map(|x| {
                        json!({
                            "ID": s.node.id, "Node": s.node.name, "Address": s.node.address,
                            "Datacenter": s.node.datacenter,
                            "TaggedAddresses": {"lan": s.node.address, "wan": s.node.address},
                            "NodeMeta": {"consul-network-segment": ""},
                            "ServiceKind": "", "ServiceID": x.id, "ServiceName": x.name,
                            "ServiceTags": x.tags, "ServiceAddress": x.address,
                            "ServiceMeta": x.meta, "ServicePort": x.port,
                            "ServiceWeights": weights(),
                            "ServiceEnableTagOverride": x.enable_tag_override,
                            "CreateIndex": x.create_index, "ModifyIndex": x.modify_index,
                        })
                    })
                    .collect(),
            ),
            ("health", "service") => Value::Array(
                instances(s, arg)
                    .iter()
                    .filter(|x| !filtered && has_tag(x))
                    .filter_map(|x| {
                        let checks: Vec<&Check> = s
                            .checks
                            .values()
                            .filter(|c| c.service_id.is_empty() || c.service_id == x.id)
                            .collect();
                        if passing && checks.iter().any(|c| c.status != CheckStatus::Passing) {
                            return None;
                        }
                        Some(json!({
                            "Node": node_json(s),
                            "Service": {
                                "ID": x.id, "Service": x.name, "Tags": x.tags,
                                "Address": x.address, "Meta": x.meta, "Port": x.port,
                                "Weights": weights(), "EnableTagOverride": x.enable_tag_override,
                                "CreateIndex": x.create_index, "ModifyIndex": x.modify_index,
                            },
                            "Checks": checks.iter().map(|c| check_json(s, c)).collect::<Vec<_>>(),
                        }))
                    })
                    .collect(),
            ),
            _ => Value::Array(
                s.checks
                    .values()
                    .filter(|c| !filtered && c.service_name == arg)
                    .map(|c| check_json(s, c))
                    .collect(),
            ),
        };
        (idx, Reply::json(&body))
    })
    .await
}
