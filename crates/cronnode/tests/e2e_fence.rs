//! End to end: Consul "rebuilt" (the Redis fence is above every token the new Consul hands
//! out). The leader enqueues nothing, says so in its log, its metrics, the API and
//! `cronnode status`, until `cronnode fence reset --yes`; then it schedules. Also drives the
//! CLI (`jobs add|list|get`, `status`) against a real node.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{job, tasks_of, wait_for, Consul, Node};
use dev_harness::RedisServer;
use serde_json::Value;

/// A fence left by an older Consul cluster whose Raft indexes had gone far higher.
const OLD_FENCE: u64 = 1_000_000;

#[test]
fn a_fence_above_the_token_blocks_until_the_operator_resets_it() {
    let _serial = common::serial();
    let redis = RedisServer::start().unwrap();
    // Leave the fence an older cluster would have left, through redis-queue's own API.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let q = redis_queue::Queue::connect(redis_queue::QueueConfig::new(redis.url()))
            .await
            .unwrap();
        assert_eq!(q.raise_fence(OLD_FENCE).await.unwrap(), OLD_FENCE);
    });

    let consul = Consul::start();
    let node = Node::start("solo", &consul, &redis.url(), &[]);

    // The CLI adds a job from a file.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("job.json");
    std::fs::write(&spec, job("blocked", "@every 1s").to_string()).unwrap();
    let (code, out, err) = node.cli(None, &["jobs", "add", spec.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, _) = node.cli(None, &["jobs", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("blocked") && out.contains("@every 1s"),
        "{out}"
    );
    let (code, out, _) = node.cli(None, &["jobs", "get", "blocked", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["id"],
        "blocked"
    );

    // Blocked: the API, the metric, the log and `cronnode status` say so.
    let leader = wait_for("the fence-blocked leader", Duration::from_secs(30), || {
        let v = node.get("/v1/leader").json();
        (v.pointer("/fence/blocked") == Some(&Value::Bool(true))).then_some(v)
    });
    assert_eq!(
        leader.pointer("/fence/value").and_then(Value::as_u64),
        Some(OLD_FENCE)
    );
    assert!(leader
        .pointer("/fence/message")
        .and_then(Value::as_str)
        .unwrap()
        .contains("fence reset"));
    assert!(node
        .get("/metrics")
        .text()
        .contains("cronnode_fence_blocked 1"));
    assert!(node.log().contains("FENCE BLOCKED"), "{}", node.log());
    let (code, out, _) = node.cli(None, &["status"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("BLOCKED"), "{out}");

    std::thread::sleep(Duration::from_secs(3));
    assert!(
        tasks_of(&redis.url(), "blocked").is_empty(),
        "nothing is enqueued behind the operator's back"
    );
    let r = node.post_json("/v1/cronjobs/blocked/run", &Value::Null);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error().0, "fence_blocked");

    // The operator resets: refused without --yes, done with it.
    let (code, _, err) = node.cli(None, &["fence", "reset"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, out, err) = node.cli(None, &["fence", "reset", "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let token = leader
        .pointer("/leader/token")
        .and_then(Value::as_u64)
        .unwrap();
    assert!(out.contains(&token.to_string()), "{out}");

    wait_for("fires after the reset", Duration::from_secs(30), || {
        (tasks_of(&redis.url(), "blocked").len() >= 2).then_some(())
    });
    let v = node.get("/v1/leader").json();
    assert_eq!(
        v.pointer("/fence/blocked"),
        Some(&Value::Bool(false)),
        "{v}"
    );
    assert_eq!(
        v.pointer("/fence/value").and_then(Value::as_u64),
        Some(token)
    );
    assert!(node
        .get("/metrics")
        .text()
        .contains("cronnode_fence_blocked 0"));
    // The slots missed while blocked come first, as catch-up; then it fires on schedule.
    wait_for(
        "a scheduled fire after the reset",
        Duration::from_secs(30),
        || {
            let (code, out, _) = node.cli(None, &["jobs", "fires", "blocked"]);
            (code == Some(0) && out.contains("catchup") && out.contains("scheduled")).then_some(())
        },
    );
}
