//! `/v1/catalog/*`, `/v1/health/*`, `/v1/status/*`: the reads built from the one-node state,
//! all blocking on the catalog index (status excepted).
//!
//! Must not change state; registrations go through `agent.rs`.

use std::collections::BTreeMap;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::blocking;
use super::reply::{Ctx, Reply};
use super::Shared;
use crate::state::{Check, CheckStatus, Service, Store};

/// The address the one server "listens" on for RPC, as status endpoints report it.
const SERVER_RPC_ADDR: &str = "127.0.0.1:8300";

/// JSON form of a check (agent, health and catalog share it).
pub fn check_json(s: &Store, c: &Check) -> Value {
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

/// Service weights, always the defaults.
pub fn weights() -> Value {
    json!({"Passing": 1, "Warning": 1})
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

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Dispatches `/v1/catalog/*`, `/v1/health/*`, `/v1/status/*` (all GET).
pub async fn route(shared: &Shared, ctx: &Ctx, area: &str, sub: &str) -> Reply {
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
    blocking::run(
        shared,
        opts,
        blocking::Interest::Catalog,
        |s| s.catalog_index,
        |s| {
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
            Reply::json(&body)
        },
    )
    .await
}
