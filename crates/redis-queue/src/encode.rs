//! The task JSON written straight into a byte buffer: the hot path of an enqueue.
//!
//! Owns [`write_task`], which writes exactly the bytes `serde_json::to_string(&build_task(..))`
//! would (same fields, same order, same escaping; `task.rs` tests the two against each other on
//! awkward jobs), without building the `Task` value, its `BTreeMap` of variables or its
//! strings. Serde is several times slower here, and a leader encodes every fire of a busy
//! minute while Redis waits for the next call.
//!
//! Must not decide anything about the task: the field values come from `model.rs`, as
//! `build_task`'s do. Change the task's shape in `task.rs` first, then here, and let the test
//! tell you they agree.

use std::io::Write;

use cron_core::{Fire, Job};

use crate::model::{
    check_priority, headers_env, idle_timeout_for, kind_name, request_url, timeout_for, user_agent,
    TaskError, TaskSettings,
};

/// A JSON string literal, escaped exactly as serde_json escapes it.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes only `"`, `\` and control characters; most strings have none.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// Appends the task JSON of `fire` to `out`. `created_at` and `slot` are the RFC3339 forms of
/// `now` and of `fire.slot` (`model::rfc3339`), passed in so a call formats each instant once.
pub(crate) fn write_task(
    out: &mut Vec<u8>,
    job: &Job,
    fire: &Fire,
    token: u64,
    settings: &TaskSettings,
    created_at: &str,
    slot: &str,
) -> Result<(), TaskError> {
    let f = &job.spec.function;
    let route = settings.route_for(job)?;
    let image = settings.image_for(job, route)?;
    let priority = check_priority(job)?;
    let headers = headers_env(job)?;
    let url = request_url(settings, job);
    let agent = user_agent(job);
    // The variables in IronFunctions' order (model.rs), borrowed: the route's config is
    // prepared once per refresh, not copied per fire. A stable sort by name keeps that order
    // among equal names, and the last of each run is the one that wins (as build_task's
    // BTreeMap inserts make it).
    let config = route.map_or(&[][..], |r| &r.config_env[..]);
    let mut env: Vec<(&str, &str)> = Vec::with_capacity(4 + config.len() + headers.len());
    env.extend([("METHOD", "POST"), ("ROUTE", f.path.as_str())]);
    env.push(("REQUEST_URL", &url));
    env.extend(config.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.push(("HEADER_USER_AGENT", &agent));
    env.sort_by(|a, b| a.0.cmp(b.0));
    let winners = env
        .iter()
        .enumerate()
        .filter(|(i, (k, _))| env.get(i + 1).is_none_or(|next| next.0 != *k))
        .map(|(_, kv)| kv);

    out.extend_from_slice(b"{\"id\":\"");
    // A hyphenated UUID needs no escaping.
    let mut id = uuid::Uuid::encode_buffer();
    out.extend_from_slice(fire.fire_id.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\",\"app_name\":");
    json_str(out, &f.app);
    out.extend_from_slice(b",\"path\":");
    json_str(out, &f.path);
    out.extend_from_slice(b",\"image\":");
    json_str(out, image);
    out.extend_from_slice(b",\"priority\":");
    num(out, priority);
    out.extend_from_slice(b",\"payload\":");
    json_str(out, &f.body);
    out.extend_from_slice(b",\"timeout\":");
    num(out, timeout_for(job, route));
    out.extend_from_slice(b",\"idle_timeout\":");
    num(out, idle_timeout_for(route));
    if let Some(delay) = f.delay.filter(|d| *d > 0) {
        out.extend_from_slice(b",\"delay\":");
        num(out, delay);
    }
    out.extend_from_slice(b",\"created_at\":");
    json_str(out, created_at);
    out.extend_from_slice(b",\"env_vars\":{");
    for (i, (k, v)) in winners.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, k);
        out.push(b':');
        json_str(out, v);
    }
    out.extend_from_slice(b"},\"cron\":{\"job_id\":");
    json_str(out, &job.spec.id);
    out.extend_from_slice(b",\"slot\":");
    json_str(out, slot);
    out.extend_from_slice(b",\"token\":");
    num(out, token);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind_name(fire.kind).as_bytes());
    out.extend_from_slice(b"\",\"node\":");
    json_str(out, &settings.node);
    out.extend_from_slice(b"}}");
    Ok(())
}
