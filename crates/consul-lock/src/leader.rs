//! What leadership looks like from outside the election: the [`Leadership`] a node publishes,
//! the lock value written into `<prefix>/leader`, [`leader_info`] to read who holds it, and
//! [`vouched_leader`]: the leader's own registered service instance, the one address a node
//! may send a secret to (the lock value is only what its last writer said, and anyone with KV
//! write can rewrite it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::{check_id, NodeStatus};
use crate::error::ConsulError;
use crate::http::Consul;
use crate::kv::Query;
use crate::session::SessionInfo;
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
    /// The value is not a cronnode lock value (another client of the same key holds it, or it
    /// was overwritten by hand): the fields it would give are empty.
    pub foreign: bool,
}

/// The leader as the cluster vouches for it: see [`vouched_leader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VouchedLeader {
    /// The lock holder's own registered service instance.
    Instance(LeaderInstance),
    /// Nobody holds the lock.
    Nobody,
    /// Someone holds it, but no registered cronnode instance can be vouched for; why.
    Unvouched(String),
}

/// The registered instance of the node that holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInstance {
    /// The cronnode node name.
    pub node: String,
    /// The host its instance registered (an address or a name, as Consul holds it).
    pub host: String,
    /// The port its instance registered.
    pub port: u16,
    /// The session that holds the lock.
    pub session: String,
}

/// The leader the cluster vouches for: the cronnode service instance whose check the lock's
/// session is bound to (as cronnode's election binds it), registered on the session's own
/// Consul node, and tagged `leader`. Its registered host and port are where its API is;
/// nothing is taken from the lock value.
pub async fn vouched_leader(consul: &Consul, prefix: &str) -> Result<VouchedLeader, ConsulError> {
    let (entry, _) = consul.kv_get(&lock_key(prefix), Query::now()).await?;
    let Some(session) = entry.and_then(|e| e.session) else {
        return Ok(VouchedLeader::Nobody);
    };
    let Some(binding) = consul.session_info(&session).await? else {
        return Ok(VouchedLeader::Unvouched(format!(
            "the lock's session {session} has just ended"
        )));
    };
    let instances = crate::agent::nodes(consul).await?;
    Ok(vouch(&session, &binding, &instances))
}

/// The rule of [`vouched_leader`], on what was read.
fn vouch(session: &str, binding: &SessionInfo, instances: &[NodeStatus]) -> VouchedLeader {
    let Some(bound) = instances
        .iter()
        .find(|i| binding.bound_to(&check_id(&i.node)))
    else {
        return VouchedLeader::Unvouched(format!(
            "the lock is held by session {session} ({:?}), which is bound to no cronnode instance's check: a holder that is not cronnode (foreign)",
            binding.name
        ));
    };
    if bound.consul_node != binding.node {
        return VouchedLeader::Unvouched(format!(
            "the lock's session belongs to Consul node {:?}, but the instance {} is registered on {:?}",
            binding.node, bound.service_id, bound.consul_node
        ));
    }
    if !bound.leader {
        return VouchedLeader::Unvouched(format!(
            "the instance {} holds the lock but does not carry the `leader` tag yet",
            bound.service_id
        ));
    }
    if let Some(other) = instances.iter().find(|i| i.leader && i.node != bound.node) {
        return VouchedLeader::Unvouched(format!(
            "the `leader` tag is also on {}, which does not hold the lock",
            other.service_id
        ));
    }
    VouchedLeader::Instance(LeaderInstance {
        node: bound.node.clone(),
        host: bound.address.clone(),
        port: bound.port,
        session: session.to_string(),
    })
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
    let parsed = serde_json::from_slice::<LockValue>(&entry.value)
        .ok()
        .filter(|v| !v.node.is_empty());
    let foreign = parsed.is_none();
    let value = parsed.unwrap_or_default();
    Ok(Some(LeaderInfo {
        node: value.node,
        api_addr: value.api_addr,
        pid: value.pid,
        version: value.version,
        since: value.since,
        token: entry.modify_index,
        session,
        foreign,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn instance(node: &str, consul_node: &str, leader: bool) -> NodeStatus {
        NodeStatus {
            node: node.into(),
            service_id: format!("cronnode-{node}"),
            address: "10.0.0.1".into(),
            port: 8765,
            version: "1".into(),
            leader,
            status: "passing".into(),
            consul_node: consul_node.into(),
            datacenter: "dc1".into(),
            meta: Default::default(),
        }
    }

    fn binding(json: &str) -> SessionInfo {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_the_instance_bound_to_the_lock_session_and_tagged_leader_is_vouched_for() {
        let new = binding(
            r#"{"ID":"s","Node":"c1","Name":"cronnode leader (a)","NodeChecks":["serfHealth"],"ServiceChecks":[{"ID":"service:cronnode-a","Namespace":""}]}"#,
        );
        let old = binding(r#"{"ID":"s","Node":"c1","Checks":["serfHealth","service:cronnode-a"]}"#);
        let both = [instance("a", "c1", true), instance("b", "c2", false)];
        for b in [&new, &old] {
            assert_eq!(
                vouch("s", b, &both),
                VouchedLeader::Instance(LeaderInstance {
                    node: "a".into(),
                    host: "10.0.0.1".into(),
                    port: 8765,
                    session: "s".into(),
                })
            );
        }
        let why = |instances: &[NodeStatus], b: &SessionInfo| match vouch("s", b, instances) {
            VouchedLeader::Unvouched(why) => why,
            other => panic!("{other:?}"),
        };
        // A foreign holder (`consul lock`): bound to serfHealth only.
        let foreign =
            binding(r#"{"ID":"s","Node":"c1","Name":"other","NodeChecks":["serfHealth"]}"#);
        assert!(why(&both, &foreign).contains("foreign"));
        // The tag has not moved yet, or is left on another instance.
        assert!(why(&[instance("a", "c1", false)], &new).contains("`leader` tag yet"));
        let two = [instance("a", "c1", true), instance("b", "c2", true)];
        assert!(why(&two, &new).contains("cronnode-b"));
        // An instance of that name registered on another Consul node.
        assert!(why(&[instance("a", "c9", true)], &new).contains("\"c9\""));
    }
}
