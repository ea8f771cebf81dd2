//! Reading the queues: every task cronnode pushed, decoded into the checker's [`Task`].
//!
//! A task is IronFunctions' task JSON (`id`, `image`, `created_at`, ...) plus a `cron` object
//! that cronnode adds (unknown fields are ignored by the platform's runners): the job id, the
//! scheduled slot, the fencing token and the node (`redis_queue::task::CronMeta`; decoded here
//! from the JSON as a consumer would, and pinned to the encoder by a test). This module reads the lists without
//! consuming them (LRANGE), so a failed run can be inspected afterwards in Redis itself.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::checker::Task;

/// The platform's priorities: `queue0..=queue2`.
pub const PRIORITIES: [u8; 3] = [0, 1, 2];

/// The name of the list of `priority` under `queue_prefix`.
pub fn list_name(queue_prefix: &str, priority: u8) -> String {
    format!("{queue_prefix}queue{priority}")
}

/// Decodes one raw queue entry found at push position `seq` of `list`.
pub fn decode(list: &str, seq: usize, raw: &str) -> Result<Task, String> {
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON ({e}): {raw}"))?;
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no id: {raw}"))?;
    let cron = v
        .get("cron")
        .filter(|c| c.is_object())
        .ok_or_else(|| format!("no cron object: {raw}"))?;
    let job = str_field(cron, "job_id").ok_or_else(|| format!("no cron.job_id: {raw}"))?;
    let slot = str_field(cron, "slot")
        .and_then(parse_time)
        .ok_or_else(|| format!("no cron.slot: {raw}"))?;
    let token = cron
        .get("token")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no cron.token: {raw}"))?;
    let enqueued = str_field(&v, "created_at").and_then(parse_time);
    let node = str_field(cron, "node").map(str::to_string);
    Ok(Task {
        list: list.to_string(),
        seq,
        id: id.to_string(),
        job: job.to_string(),
        slot,
        token,
        enqueued,
        node,
    })
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decodes_what_the_daemon_encodes() {
        let job = cron_core::JobSpec::from_json(
            br#"{"id":"j","function":{"app":"a","path":"/p"},"frequency":"* * * * * *"}"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        let slot = DateTime::parse_from_rfc3339("2026-11-26T20:00:01Z")
            .unwrap()
            .with_timezone(&Utc);
        let fire = cron_core::Fire::scheduled("j".into(), slot, cron_core::FireKind::Scheduled);
        let settings = redis_queue::task::TaskSettings {
            default_image: Some("chaos/noop".into()),
            node: "n2".into(),
            ..Default::default()
        };
        let now = slot + chrono::TimeDelta::milliseconds(250);
        let raw = redis_queue::task::encode_task(&job, &fire, 42, &settings, now).unwrap();
        let t = decode("queue0", 7, &raw).unwrap();
        assert_eq!(t.seq, 7);
        assert_eq!(t.id, fire.fire_id.to_string());
        assert_eq!(t.job, "j");
        assert_eq!(t.slot, slot);
        assert_eq!(t.token, 42);
        assert_eq!(t.node.as_deref(), Some("n2"));
        assert_eq!(t.enqueued, Some(now), "created_at is the push time");
    }

    #[test]
    fn refuses_what_is_not_a_cronnode_task() {
        assert!(decode("queue0", 0, "{}").is_err());
        assert!(decode("queue0", 0, r#"{"id":"x","image":"i"}"#).is_err());
        assert!(decode("queue0", 0, "nope").is_err());
    }
}
