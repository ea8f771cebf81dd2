//! `/_dev/*`: fault injection for tests (a prefix real Consul does not have). All PUT:
//! `fault/no-leader?duration=`, `fault/refuse?duration=`, `fault/clear`,
//! `session/expire/:id`, `ttl/freeze`, `ttl/resume`. See the crate README.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::json;

use super::reply::{Ctx, Reply};
use super::Shared;
use crate::duration::parse_go;

/// Duration of a fault when the request names none.
pub const DEFAULT_FAULT_DURATION: Duration = Duration::from_secs(30);

/// Dispatches `/_dev/<...>`.
pub fn route(shared: &Shared, ctx: &Ctx) -> Reply {
    let sub = &ctx.path["/_dev/".len()..];
    if ctx.method != Method::PUT {
        return Reply::method_not_allowed(&ctx.method);
    }
    let duration = match ctx.get("duration").filter(|d| !d.is_empty()) {
        None => DEFAULT_FAULT_DURATION,
        Some(d) => match parse_go(d) {
            Ok(d) => d,
            Err(e) => return Reply::bad(e),
        },
    };
    let now = Instant::now();
    match sub {
        "fault/no-leader" => shared.faults().no_leader_until = Some(now + duration),
        "fault/refuse" => shared.faults().refuse_until = Some(now + duration),
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
