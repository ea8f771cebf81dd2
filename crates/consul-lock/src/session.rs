//! Consul sessions: create, renew, destroy, info (consul-api.md §1).
//!
//! A renew answered 404 is an expected outcome ([`Renewal::Gone`]): the session expired or was
//! invalidated, and whoever held a lock with it no longer does.

use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::error::ConsulError;
use crate::http::{Consul, REQUEST_TIMEOUT};

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
    /// Node check ids (`serfHealth`).
    pub node_checks: Vec<String>,
    /// Service checks (`{"ID": "service:cronnode-<node>"}`).
    pub service_checks: Vec<ServiceCheckRef>,
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

    /// Renews a session; 404 is [`Renewal::Gone`].
    pub(crate) async fn session_renew(&self, id: &str) -> Result<Renewal, ConsulError> {
        let path = format!("/v1/session/renew/{id}");
        let answer = self.call(Method::PUT, &path, None, REQUEST_TIMEOUT).await?;
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

    #[test]
    fn session_body_uses_consul_names() {
        let spec = SessionSpec {
            name: "cronnode leader (n1)".into(),
            behavior: "release".into(),
            ttl: "10000ms".into(),
            lock_delay: "1000ms".into(),
            node_checks: vec!["serfHealth".into()],
            service_checks: vec![ServiceCheckRef {
                id: "service:cronnode-n1".into(),
            }],
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["TTL"], "10000ms");
        assert_eq!(v["LockDelay"], "1000ms");
        assert_eq!(v["NodeChecks"][0], "serfHealth");
        assert_eq!(v["ServiceChecks"][0]["ID"], "service:cronnode-n1");
        assert_eq!(v["Behavior"], "release");
    }
}
