//! Consul sessions: create, renew, destroy, info (consul-api.md §1).
//!
//! A renew answered 404 is an expected outcome ([`Renewal::Gone`]): the session expired or was
//! invalidated, and whoever held a lock with it no longer does. How a session names its checks
//! depends on the agent's version ([`crate::version::ChecksField`]); [`SessionInfo::bound_to`]
//! reads the binding back whichever way it was written.

use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::error::ConsulError;
use crate::http::{Consul, REQUEST_TIMEOUT};
use crate::version::ChecksField;

/// What a new session is bound to and how it behaves.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionSpec {
    /// Shown in the Consul UI.
    pub name: String,
    /// `release` or `delete`.
    pub behavior: String,
    /// A Go duration (`"10s"`).
    #[serde(rename = "TTL")]
    pub ttl: String,
    /// A Go duration (`"1s"`, `"0s"`).
    pub lock_delay: String,
    /// Node check ids (`serfHealth`), Consul ≥ 1.7.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_checks: Option<Vec<String>>,
    /// Service checks (`{"ID": "service:cronnode-<node>"}`), Consul ≥ 1.7.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_checks: Option<Vec<ServiceCheckRef>>,
    /// Every check id in one list: how agents before 1.7 bind (deprecated since).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<String>>,
}

impl SessionSpec {
    /// Binds the session to the node's `serfHealth` and to `service_check`, in the field
    /// `field` that the agent honours.
    pub fn bind(&mut self, field: ChecksField, service_check: &str) {
        let serf = "serfHealth".to_string();
        match field {
            ChecksField::Split => {
                self.node_checks = Some(vec![serf]);
                self.service_checks = Some(vec![ServiceCheckRef {
                    id: service_check.to_string(),
                }]);
                self.checks = None;
            }
            ChecksField::Legacy => {
                self.checks = Some(vec![serf, service_check.to_string()]);
                self.node_checks = None;
                self.service_checks = None;
            }
        }
    }
}

/// A service check a session is bound to.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCheckRef {
    /// The check id.
    #[serde(rename = "ID")]
    pub id: String,
}

/// The answer to a renew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed; the TTL Consul now applies (may be larger than asked).
    Renewed(Option<Duration>),
    /// Consul does not know the session any more (404).
    Gone,
}

/// A session as `GET /v1/session/info/:id` shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionInfo {
    /// The session id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// The node it belongs to.
    #[serde(default)]
    pub node: String,
    /// Its TTL as a Go duration.
    #[serde(default, rename = "TTL")]
    pub ttl: String,
    /// Node checks it is bound to (Consul ≥ 1.7).
    #[serde(default)]
    pub node_checks: Option<Vec<String>>,
    /// Service checks it is bound to (Consul ≥ 1.7).
    #[serde(default)]
    pub service_checks: Option<Vec<ServiceCheckInfo>>,
    /// Checks it is bound to (Consul < 1.7; later versions show it only when it was sent).
    #[serde(default)]
    pub checks: Option<Vec<String>>,
}

/// A service check as a session entry names it.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceCheckInfo {
    /// The check id.
    #[serde(rename = "ID", default)]
    pub id: String,
}

impl SessionInfo {
    /// Whether the session is bound to check `id`, whichever field bound it.
    pub fn bound_to(&self, id: &str) -> bool {
        let plain = self.checks.iter().chain(self.node_checks.iter()).flatten();
        let service = self.service_checks.iter().flatten().map(|c| &c.id);
        plain.chain(service).any(|c| c == id)
    }
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

/// Formats a duration the way Consul parses it (whole milliseconds).
pub fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Parses the simple Go durations Consul returns (`"10s"`, `"1m0s"`, `"1500ms"`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() || rest == "0" {
        return (rest == "0").then_some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(split);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1e3,
            "us" | "µs" => value / 1e6,
            "ns" => value / 1e9,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(secs).ok()?;
        rest = tail;
    }
    Some(total)
}

impl Consul {
    /// Creates a session through the agent (so it belongs to the agent's node).
    pub(crate) async fn session_create(&self, spec: &SessionSpec) -> Result<String, ConsulError> {
        const PATH: &str = "/v1/session/create";
        let body = serde_json::to_vec(spec).map_err(|e| ConsulError::Decode {
            endpoint: format!("PUT {PATH}"),
            message: e.to_string(),
        })?;
        let answer = self
            .call_ok(Method::PUT, PATH, Some(body), REQUEST_TIMEOUT)
            .await?;
        let created: Created =
            serde_json::from_slice(&answer.body).map_err(|e| ConsulError::Decode {
                endpoint: format!("PUT {PATH}"),
                message: e.to_string(),
            })?;
        Ok(created.id)
    }

    /// Renews a session within `timeout`; 404 is [`Renewal::Gone`]. The renew is forwarded to
    /// the Raft leader: behind a frozen one it hangs, so the caller bounds it and retries.
    pub(crate) async fn session_renew(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Renewal, ConsulError> {
        let path = format!("/v1/session/renew/{id}");
        let answer = self.call(Method::PUT, &path, None, timeout).await?;
        match answer.status {
            404 => Ok(Renewal::Gone),
            200 => {
                let ttl = serde_json::from_slice::<Vec<SessionInfo>>(&answer.body)
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .and_then(|s| parse_go_duration(&s.ttl));
                Ok(Renewal::Renewed(ttl))
            }
            status => Err(ConsulError::from_status(
                &format!("PUT /v1/session/renew/{id}"),
                status,
                &answer.body,
            )),
        }
    }

    /// Destroys a session (idempotent; starts the lock-delay of the keys it held).
    pub async fn session_destroy(&self, id: &str) -> Result<(), ConsulError> {
        let path = format!("/v1/session/destroy/{id}");
        self.call_ok(Method::PUT, &path, None, REQUEST_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Reads a session; `None` when Consul does not know it.
    pub async fn session_info(&self, id: &str) -> Result<Option<SessionInfo>, ConsulError> {
        let path = format!("/v1/session/info/{id}");
        let answer = self
            .call_ok(Method::GET, &path, None, REQUEST_TIMEOUT)
            .await?;
        let list: Vec<SessionInfo> =
            serde_json::from_slice(&answer.body).map_err(|e| ConsulError::Decode {
                endpoint: format!("GET {path}"),
                message: e.to_string(),
            })?;
        Ok(list.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_go_duration("1500ms"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10x"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(go_duration(Duration::from_secs(10)), "10000ms");
    }

    fn spec() -> SessionSpec {
        SessionSpec {
            name: "cronnode leader (n1)".into(),
            behavior: "release".into(),
            ttl: "10000ms".into(),
            lock_delay: "1000ms".into(),
            node_checks: None,
            service_checks: None,
            checks: None,
        }
    }

    #[test]
    fn session_body_uses_consul_names() {
        let mut spec = spec();
        spec.bind(ChecksField::Split, "service:cronnode-n1");
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["TTL"], "10000ms");
        assert_eq!(v["LockDelay"], "1000ms");
        assert_eq!(v["NodeChecks"][0], "serfHealth");
        assert_eq!(v["ServiceChecks"][0]["ID"], "service:cronnode-n1");
        assert_eq!(v["Behavior"], "release");
        assert!(v.get("Checks").is_none(), "{v}");
    }

    #[test]
    fn before_1_7_the_checks_go_in_checks() {
        let mut spec = spec();
        spec.bind(ChecksField::Legacy, "service:cronnode-n1");
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v["Checks"],
            serde_json::json!(["serfHealth", "service:cronnode-n1"])
        );
        assert!(v.get("NodeChecks").is_none() && v.get("ServiceChecks").is_none());
    }

    #[test]
    fn binding_is_read_back_from_either_field() {
        let old: SessionInfo = serde_json::from_str(
            r#"{"ID":"s","Checks":["serfHealth","service:cronnode-n1"],"TTL":"10s"}"#,
        )
        .unwrap();
        assert!(old.bound_to("service:cronnode-n1"));
        let new: SessionInfo = serde_json::from_str(
            r#"{"ID":"s","NodeChecks":["serfHealth"],"ServiceChecks":[{"ID":"service:cronnode-n1","Namespace":""}]}"#,
        )
        .unwrap();
        assert!(new.bound_to("service:cronnode-n1") && new.bound_to("serfHealth"));
        // What a 1.0.8 agent makes of a 1.7 body: the new fields ignored, serfHealth only.
        let ignored: SessionInfo =
            serde_json::from_str(r#"{"ID":"s","Checks":["serfHealth"]}"#).unwrap();
        assert!(!ignored.bound_to("service:cronnode-n1"));
    }
}
