//! `/_dev/*`: fault injection for tests (a prefix real Consul does not have). All PUT:
//! `fault/no-leader?duration=`, `fault/refuse?duration=`,
//! `fault/frozen-leader?duration=&election=`, `fault/clear`, `session/expire/:id`,
//! `ttl/freeze`, `ttl/resume`. See the crate README.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::json;

use super::reply::{Ctx, Reply};
use super::{FrozenLeader, Shared};
use crate::duration::parse_go;

/// Duration of a fault when the request names none.
pub const DEFAULT_FAULT_DURATION: Duration = Duration::from_secs(30);
/// How long the other servers take to elect a new Raft leader when the request names none
/// (about what a three-server Consul 1.0.8 with default timings took on loopback).
pub const DEFAULT_ELECTION: Duration = Duration::from_secs(5);

/// Dispatches `/_dev/<...>`.
pub fn route(shared: &Shared, ctx: &Ctx) -> Reply {
    let sub = &ctx.path["/_dev/".len()..];
    if ctx.method != Method::PUT {
        return Reply::method_not_allowed(&ctx.method);
    }
    let duration_of = |name: &str, default: Duration| match ctx.get(name).filter(|d| !d.is_empty())
    {
        None => Ok(default),
        Some(d) => parse_go(d).map_err(Reply::bad),
    };
    let duration = match duration_of("duration", DEFAULT_FAULT_DURATION) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let now = Instant::now();
    match sub {
        "fault/no-leader" => shared.faults().no_leader_until = Some(now + duration),
        "fault/refuse" => shared.faults().refuse_until = Some(now + duration),
        "fault/frozen-leader" => {
            let election = match duration_of("election", DEFAULT_ELECTION) {
                Ok(d) => d.min(duration),
                Err(r) => return r,
            };
            shared.faults().frozen_leader = Some(FrozenLeader {
                since: now,
                elected_at: now + election,
                until: now + duration,
                timers_reset: false,
            });
        }
        "fault/clear" => {
            *shared.faults() = Default::default();
            shared.write(|s, now| s.resume_clocks(now));
        }
        "ttl/freeze" => shared.write(|s, now| {
            s.frozen_at.get_or_insert(now);
        }),
        "ttl/resume" => shared.write(|s, now| s.resume_clocks(now)),
        _ => match sub.strip_prefix("session/expire/") {
            Some(id) if !id.is_empty() => {
                let found = shared.write(|s, now| {
                    let found = s.sessions.contains_key(id);
                    s.destroy_session(id, now);
                    found
                });
                if !found {
                    return Reply::text(
                        StatusCode::NOT_FOUND,
                        format!("Session id '{id}' not found"),
                    );
                }
            }
            _ => return Reply::not_found(),
        },
    }
    Reply::json(&json!(true))
}
