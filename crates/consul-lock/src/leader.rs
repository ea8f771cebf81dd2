//! What leadership looks like from outside the election: the [`Leadership`] a node publishes,
//! the lock value written into `<prefix>/leader`, and [`leader_info`] to read who holds it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ConsulError;
use crate::http::Consul;
use crate::kv::Query;
use crate::settings::lock_key;

/// This node's standing, as published by [`crate::NodeHandle::leadership`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Leadership {
    /// Not leading: make no side effect that needs the lock.
    #[default]
    Follower,
    /// Leading since `since`, with `token` to carry on every fenced side effect.
    Leader {
        /// The fencing token: the lock key's ModifyIndex right after the acquiring write.
        /// Larger than every earlier term's token.
        token: u64,
        /// When this node acquired the lock (its own clock).
        since: DateTime<Utc>,
    },
}

impl Leadership {
    /// True while leading.
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader { .. })
    }

    /// The fencing token while leading.
    pub fn token(&self) -> Option<u64> {
        match self {
            Leadership::Leader { token, .. } => Some(*token),
            Leadership::Follower => None,
        }
    }
}

/// The JSON value of the lock key, naming the holder for operators (Consul UI, `consul kv get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LockValue {
    /// The holder's node name.
    #[serde(default)]
    pub node: String,
    /// The holder's HTTP API address.
    #[serde(default)]
    pub api_addr: String,
    /// The holder's process id.
    #[serde(default)]
    pub pid: u32,
    /// The holder's cronnode version.
    #[serde(default)]
    pub version: String,
    /// When the holder acquired the lock (its clock).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

/// Who holds the lock, read from `<prefix>/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderInfo {
    /// The holder's node name (empty when the value is not ours, e.g. written by `consul lock`).
    pub node: String,
    /// The holder's HTTP API address.
    pub api_addr: String,
    /// The holder's process id.
    pub pid: u32,
    /// The holder's cronnode version.
    pub version: String,
    /// When the holder acquired the lock.
    pub since: Option<DateTime<Utc>>,
    /// The key's ModifyIndex: the holder's fencing token, unless someone wrote the key by hand
    /// (a plain PUT) since it was acquired.
    pub token: u64,
    /// The session holding the key.
    pub session: String,
}

/// Reads who holds the lock under `prefix`; `None` when nobody does.
pub async fn leader_info(consul: &Consul, prefix: &str) -> Result<Option<LeaderInfo>, ConsulError> {
    let (entry, _) = consul.kv_get(&lock_key(prefix), Query::now()).await?;
    let Some(entry) = entry else {
        return Ok(None);
    };
    let Some(session) = entry.session else {
        return Ok(None);
    };
    // A value that is not ours (another client of the same key) still shows the session.
    let value: LockValue = serde_json::from_slice(&entry.value).unwrap_or_default();
    Ok(Some(LeaderInfo {
        node: value.node,
        api_addr: value.api_addr,
        pid: value.pid,
        version: value.version,
        since: value.since,
        token: entry.modify_index,
        session,
    }))
}
