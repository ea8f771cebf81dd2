//! The node's service registration and TTL check, and the list of cronnode instances
//! (consul-api.md §5).
//!
//! Service `cronnode`, ID `cronnode-<node>`, the API's address and port, `Meta.version` and
//! `Meta.node`, one TTL check registered passing (its id `service:cronnode-<node>` is what the
//! lock session binds to), and the tag `leader` on the instance that holds the lock. The loop
//! that passes the check and moves the tag is in `node.rs`; this module only speaks HTTP.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::error::ConsulError;
use crate::http::{encode_query, Consul, REQUEST_TIMEOUT};
use crate::session::go_duration;

/// The service name every cronnode registers under.
pub const SERVICE_NAME: &str = "cronnode";
/// The tag of the instance that holds the lock.
pub const LEADER_TAG: &str = "leader";

/// What to register for this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The node name (the service ID is `cronnode-<node>`).
    pub node: String,
    /// The HTTP API's address (`host:port`); host and port are registered separately.
    pub api_addr: String,
    /// cronnode's version, in `Meta.version`.
    pub version: String,
    /// The check's TTL (the session TTL).
    pub check_ttl: Duration,
    /// Whether the instance carries the `leader` tag.
    pub leader: bool,
    /// More service Meta, beside `version` and `node` (what the program wants other nodes to
    /// see of it).
    pub meta: BTreeMap<String, String>,
}

impl ServiceSpec {
    /// `cronnode-<node>`.
    pub fn service_id(&self) -> String {
        service_id(&self.node)
    }
}

/// `cronnode-<node>`.
pub fn service_id(node: &str) -> String {
    format!("{SERVICE_NAME}-{node}")
}

/// `service:cronnode-<node>`, the id of the node's TTL check.
pub fn check_id(node: &str) -> String {
    format!("service:{}", service_id(node))
}

/// The outcome of passing the TTL check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckPass {
    /// The check is passing again.
    Passed,
    /// The agent does not know the check (restarted, or it was deregistered): register again.
    Unknown,
}

/// One cronnode instance as `/v1/health/service/cronnode` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node name.
    pub node: String,
    /// The service instance id.
    pub service_id: String,
    /// The API address registered.
    pub address: String,
    /// The API port registered.
    pub port: u16,
    /// `Meta.version`.
    pub version: String,
    /// Whether the instance carries the `leader` tag.
    pub leader: bool,
    /// The worst status of its checks: `passing`, `warning` or `critical`.
    pub status: String,
    /// The Consul node it is registered on.
    pub consul_node: String,
    /// Its whole service Meta.
    pub meta: BTreeMap<String, String>,
    /// The Consul datacenter of its node.
    pub datacenter: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    #[serde(default)]
    node: HealthNode,
    service: HealthService,
    #[serde(default)]
    checks: Vec<HealthCheck>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct HealthNode {
    #[serde(default)]
    node: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    datacenter: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthService {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthCheck {
    #[serde(default)]
    status: String,
}

/// Splits `host:port` (IPv6 in brackets); a missing or bad port is 0.
fn split_addr(addr: &str) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => match port.parse() {
            Ok(p) => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                p,
            ),
            Err(_) => (addr.to_string(), 0),
        },
        _ => (addr.to_string(), 0),
    }
}

fn registration_body(spec: &ServiceSpec) -> serde_json::Value {
    let (address, port) = split_addr(&spec.api_addr);
    let tags: Vec<&str> = if spec.leader {
        vec![LEADER_TAG]
    } else {
        vec![]
    };
    let mut meta = spec.meta.clone();
    meta.insert("version".into(), spec.version.clone());
    meta.insert("node".into(), spec.node.clone());
    serde_json::json!({
        "Name": SERVICE_NAME,
        "ID": spec.service_id(),
        "Tags": tags,
        "Address": address,
        "Port": port,
        "Meta": meta,
        "Check": {
            "CheckID": check_id(&spec.node),
            "Name": format!("cronnode {} alive", spec.node),
            "TTL": go_duration(spec.check_ttl),
            "Status": "passing",
        },
    })
}

fn worst(statuses: impl Iterator<Item = String>) -> String {
    let rank = |s: &str| match s {
        "passing" => 0,
        "warning" => 1,
        _ => 2,
    };
    statuses
        .max_by_key(|s| rank(s))
        .unwrap_or_else(|| "passing".to_string())
}

impl Consul {
    /// Registers (or re-registers) the node's service with its check passing.
    pub(crate) async fn service_register(&self, spec: &ServiceSpec) -> Result<(), ConsulError> {
        const PATH: &str = "/v1/agent/service/register";
        let body =
            serde_json::to_vec(&registration_body(spec)).map_err(|e| ConsulError::Decode {
                endpoint: format!("PUT {PATH}"),
                message: e.to_string(),
            })?;
        self.call_ok(Method::PUT, PATH, Some(body), REQUEST_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Removes the node's service and its check (invalidating sessions bound to it).
    pub(crate) async fn service_deregister(&self, node: &str) -> Result<(), ConsulError> {
        let path = format!("/v1/agent/service/deregister/{}", service_id(node));
        self.call_ok(Method::PUT, &path, None, REQUEST_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Passes the node's TTL check.
    pub(crate) async fn check_pass(
        &self,
        node: &str,
        note: &str,
    ) -> Result<CheckPass, ConsulError> {
        let path = format!(
            "/v1/agent/check/pass/{}?note={}",
            check_id(node),
            encode_query(note)
        );
        let answer = self.call(Method::PUT, &path, None, REQUEST_TIMEOUT).await?;
        let endpoint = crate::http::endpoint(&Method::PUT, &path);
        let forgotten = answer.status == 404
            || (answer.status == 500
                && String::from_utf8_lossy(&answer.body).contains("does not have associated TTL"));
        match answer.status {
            200 => Ok(CheckPass::Passed),
            // The agent forgot the check (restarted, or it was deregistered by hand).
            _ if forgotten => Ok(CheckPass::Unknown),
            status => Err(ConsulError::from_status(&endpoint, status, &answer.body)),
        }
    }
}

/// Every cronnode instance with its health and whether it leads.
pub async fn nodes(consul: &Consul) -> Result<Vec<NodeStatus>, ConsulError> {
    let path = format!("/v1/health/service/{SERVICE_NAME}");
    let answer = consul
        .call_ok(Method::GET, &path, None, REQUEST_TIMEOUT)
        .await?;
    parse_health(&answer.body).map_err(|message| ConsulError::Decode {
        endpoint: format!("GET {path}"),
        message,
    })
}

fn parse_health(body: &[u8]) -> Result<Vec<NodeStatus>, String> {
    let entries: Vec<HealthEntry> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out: Vec<NodeStatus> = entries
        .into_iter()
        .map(|e| {
            let meta = e.service.meta.unwrap_or_default();
            let node = meta.get("node").cloned().unwrap_or_else(|| {
                e.service
                    .id
                    .strip_prefix(&format!("{SERVICE_NAME}-"))
                    .unwrap_or(&e.node.node)
                    .to_string()
            });
            let tags = e.service.tags.unwrap_or_default();
            NodeStatus {
                node,
                service_id: e.service.id,
                address: if e.service.address.is_empty() {
                    e.node.address
                } else {
                    e.service.address
                },
                port: e.service.port,
                version: meta.get("version").cloned().unwrap_or_default(),
                leader: tags.iter().any(|t| t == LEADER_TAG),
                status: worst(e.checks.into_iter().map(|c| c.status)),
                consul_node: e.node.node,
                meta,
                datacenter: e.node.datacenter,
            }
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_names_check_and_tags_leader() {
        let spec = ServiceSpec {
            node: "n1".into(),
            api_addr: "10.0.0.5:8080".into(),
            version: "0.1.0".into(),
            check_ttl: Duration::from_secs(10),
            leader: true,
            meta: [("api_token".to_string(), "required".to_string())].into(),
        };
        let b = registration_body(&spec);
        assert_eq!(b["ID"], "cronnode-n1");
        assert_eq!(b["Address"], "10.0.0.5");
        assert_eq!(b["Port"], 8080);
        assert_eq!(b["Tags"][0], "leader");
        assert_eq!(b["Meta"]["version"], "0.1.0");
        assert_eq!(b["Meta"]["api_token"], "required");
        assert_eq!(b["Check"]["CheckID"], "service:cronnode-n1");
        assert_eq!(b["Check"]["Status"], "passing");
        assert_eq!(split_addr("[::1]:80"), ("::1".to_string(), 80));
    }

    #[test]
    fn health_answer_becomes_node_statuses() {
        let body = br#"[{"Node":{"Node":"consul-dev","Address":"127.0.0.1","Datacenter":"dc7"},
            "Service":{"ID":"cronnode-b","Service":"cronnode","Tags":["leader"],"Address":"","Port":81,"Meta":{"version":"1","node":"b"}},
            "Checks":[{"CheckID":"serfHealth","Status":"passing"},{"CheckID":"service:cronnode-b","Status":"critical"}]},
            {"Node":{"Node":"consul-dev","Address":"127.0.0.1"},
            "Service":{"ID":"cronnode-a","Service":"cronnode","Tags":null,"Address":"10.0.0.1","Port":80,"Meta":null},
            "Checks":[{"CheckID":"serfHealth","Status":"passing"}]}]"#;
        let nodes = parse_health(body).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].node, "a");
        assert!(!nodes[0].leader);
        assert_eq!(nodes[0].status, "passing");
        assert_eq!(nodes[1].node, "b");
        assert!(nodes[1].leader);
        assert_eq!(nodes[1].address, "127.0.0.1");
        assert_eq!(nodes[1].status, "critical");
        assert_eq!(nodes[1].datacenter, "dc7");
        assert_eq!(nodes[0].datacenter, "", "absent is empty");
    }
}
