//! Which Consul this node talks to, and what follows from its version.
//!
//! The agent's version is read from `GET /v1/agent/self` (`Config.Version`) before the node
//! registers. Below [`MIN_CONSUL_VERSION`] the node refuses to start ([`UnsupportedVersion`]
//! names both versions). Above it, the [`Dialect`] says how to say what differs between
//! versions (consul-dev's README lists each difference and the conformance test that pins it):
//!
//! - binding a session to the service check: `NodeChecks` + `ServiceChecks` since Consul 1.7;
//!   before, agents ignore those fields without a word (the session would be bound to
//!   `serfHealth` only and outlive a crashed node by up to 2×TTL), and `Checks` does it;
//! - writing the lock flag: before 1.7 the agent decodes `/v1/txn` numbers as floats
//!   (hashicorp/consul#6655), so the 64-bit lock flag is rounded; a KV `?acquire&flags=` keeps
//!   it exact, at the cost of a consistent read for the fencing token.
//!
//! Must not: guess. What the version does not settle (an agent between the two in a cluster
//! being upgraded) the election checks after the fact: it reads the session back and the
//! flag from the lock write's answer.

use std::fmt;
use std::time::Duration;

use hyper::Method;
use serde::Deserialize;

use crate::error::ConsulError;
use crate::http::Consul;

/// The oldest Consul cronnode runs against: the oldest it has been tested on (a real
/// three-server cluster, the chaos suite's faults; consul-dev emulates it in CI).
pub const MIN_CONSUL_VERSION: ConsulVersion = ConsulVersion::new(1, 0, 8);

/// The first version that honours `NodeChecks` / `ServiceChecks` and decodes txn numbers as
/// integers.
pub const SPLIT_CHECKS_SINCE: ConsulVersion = ConsulVersion::new(1, 7, 0);

/// A Consul release number (`major.minor.patch`; a pre-release or build suffix is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsulVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl ConsulVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> ConsulVersion {
        ConsulVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `1.0.8`, `v1.21.5`, `1.7.0-beta1`, `1.15.2+ent`; `None` for anything else.
    pub fn parse(text: &str) -> Option<ConsulVersion> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+', ' ']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().unwrap_or(Some(0))?;
        if parts.next().is_some() {
            return None;
        }
        Some(ConsulVersion::new(major, minor, patch))
    }
}

impl fmt::Display for ConsulVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The agent is older than cronnode supports, or says no version it can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Consul agent at {agent} is version {found}; cronnode needs Consul {MIN_CONSUL_VERSION} \
     or later (upgrade the agent, or point --consul at a newer one)"
)]
pub struct UnsupportedVersion {
    /// The agent's base URL.
    pub agent: String,
    /// What the agent reported (`Config.Version`), as it reported it.
    pub found: String,
}

/// How a session is bound to the service check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksField {
    /// `NodeChecks` + `ServiceChecks` (Consul ≥ 1.7).
    Split,
    /// `Checks`, every check id in one list (Consul < 1.7).
    Legacy,
}

/// How the lock is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWrite {
    /// A txn `lock`, whose answer carries the token (Consul ≥ 1.7).
    Txn,
    /// `PUT /v1/kv/<key>?acquire=&flags=`, then a `?consistent` read for the token
    /// (Consul < 1.7, whose txn rounds the flag).
    KvAcquire,
}

/// What differs, for cronnode, between the versions it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// The agent's version.
    pub version: ConsulVersion,
    /// How sessions name their checks.
    pub checks: ChecksField,
    /// How the lock is taken.
    pub lock: LockWrite,
}

impl Dialect {
    /// The dialect of an agent of `version`.
    pub fn of(version: ConsulVersion) -> Dialect {
        let split = version >= SPLIT_CHECKS_SINCE;
        Dialect {
            version,
            checks: if split {
                ChecksField::Split
            } else {
                ChecksField::Legacy
            },
            lock: if split {
                LockWrite::Txn
            } else {
                LockWrite::KvAcquire
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentSelf {
    #[serde(default)]
    config: AgentConfig,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct AgentConfig {
    #[serde(default)]
    version: String,
}

impl Consul {
    /// Asks the agent itself (`GET /v1/agent/self`, answered locally, no RPC) within `timeout`:
    /// any answer proves the agent process is alive. Needs `agent:read` under ACLs.
    pub(crate) async fn agent_self(&self, timeout: Duration) -> Result<String, ConsulError> {
        const PATH: &str = "/v1/agent/self";
        let answer = self.call_ok(Method::GET, PATH, None, timeout).await?;
        let parsed: AgentSelf =
            serde_json::from_slice(&answer.body).map_err(|e| ConsulError::Decode {
                endpoint: format!("GET {PATH}"),
                message: e.to_string(),
            })?;
        Ok(parsed.config.version)
    }

    /// The agent's dialect, or why cronnode cannot run against it.
    pub(crate) async fn dialect(
        &self,
        timeout: Duration,
    ) -> Result<Result<Dialect, UnsupportedVersion>, ConsulError> {
        let found = self.agent_self(timeout).await?;
        Ok(match ConsulVersion::parse(&found) {
            Some(v) if v >= MIN_CONSUL_VERSION => Ok(Dialect::of(v)),
            _ => Err(UnsupportedVersion {
                agent: self.base_url().to_string(),
                found: if found.is_empty() {
                    "(none reported)".to_string()
                } else {
                    found
                },
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        let v = |s| ConsulVersion::parse(s);
        assert_eq!(v("1.0.8"), Some(ConsulVersion::new(1, 0, 8)));
        assert_eq!(v("v1.21.5"), Some(ConsulVersion::new(1, 21, 5)));
        assert_eq!(v("1.7.0-beta1"), Some(ConsulVersion::new(1, 7, 0)));
        assert_eq!(v("1.15.2+ent"), Some(ConsulVersion::new(1, 15, 2)));
        assert_eq!(v("1.9"), Some(ConsulVersion::new(1, 9, 0)));
        assert_eq!(v(""), None);
        assert_eq!(v("consul"), None);
        assert_eq!(v("1.2.3.4"), None);
        assert!(ConsulVersion::new(1, 10, 0) > ConsulVersion::new(1, 9, 9));
        assert_eq!(MIN_CONSUL_VERSION.to_string(), "1.0.8");
    }

    #[test]
    fn dialect_follows_the_version() {
        let old = Dialect::of(ConsulVersion::new(1, 6, 9));
        assert_eq!(
            (old.checks, old.lock),
            (ChecksField::Legacy, LockWrite::KvAcquire)
        );
        let new = Dialect::of(ConsulVersion::new(1, 7, 0));
        assert_eq!((new.checks, new.lock), (ChecksField::Split, LockWrite::Txn));
    }

    #[test]
    fn refusal_names_both_versions() {
        let e = UnsupportedVersion {
            agent: "http://127.0.0.1:8500".into(),
            found: "0.9.3".into(),
        };
        let text = e.to_string();
        assert!(text.contains("0.9.3") && text.contains("1.0.8"), "{text}");
    }
}
