//! End to end: a replace, a pause and a delete sent to a follower are honoured for every slot
//! not yet in the queue when the API answers, though the leader had already staged the next
//! two seconds of an every-second job (`LOOKAHEAD`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{http, job, slot_of, tasks_of, wait_for, Consul, Node};
use dev_harness::RedisServer;
use serde_json::Value;

/// How long the test watches the queue after an answer: longer than the lookahead, so a slot
/// staged with the old spec before the answer would have been released by then.
const WATCH: Duration = Duration::from_secs(4);

fn put_json(node: &Node, path: &str, body: &Value) -> http::Response {
    http::request(
        node.port,
        "PUT",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap()
}

fn delete(node: &Node, path: &str) -> http::Response {
    http::request(node.port, "DELETE", path, &[], b"").unwrap()
}

#[test]
fn no_task_reaching_the_queue_after_the_api_answered_carries_the_old_spec() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let a = Node::start("a", &consul, &url, &[]);
    let b = Node::start("b", &consul, &url, &[]);
    let leader = a.wait_leader();
    let follower = if leader == "a" { &b } else { &a };

    let r = follower.post_json("/v1/cronjobs", &job("ch", "@every 1s"));
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for("first fires", Duration::from_secs(30), || {
        (tasks_of(&url, "ch").len() >= 2).then_some(())
    });

    // Replace the body: every task that reaches the queue after the answer has the new one.
    let mut spec = follower.get("/v1/cronjobs/ch").json();
    spec["function"]["body"] = Value::from("{\"n\":2}");
    let r = put_json(follower, "/v1/cronjobs/ch", &spec);
    assert_eq!(r.status, 200, "{}", r.text());
    let at_answer = tasks_of(&url, "ch").len();
    std::thread::sleep(WATCH);
    let after: Vec<Value> = tasks_of(&url, "ch").split_off(at_answer);
    assert!(after.len() >= 2, "fires go on after the replace: {after:?}");
    for t in &after {
        assert_eq!(
            t["payload"],
            "{\"n\":2}",
            "slot {} with the old body",
            slot_of(t)
        );
    }

    // Pause: nothing more reaches the queue after the answer, not even a slot staged before.
    let r = follower.post_json("/v1/cronjobs/ch/pause", &Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
    let at_answer = tasks_of(&url, "ch").len();
    std::thread::sleep(WATCH);
    assert_eq!(
        tasks_of(&url, "ch").len(),
        at_answer,
        "a fire after the pause"
    );

    // Resume, then delete: likewise.
    let r = follower.post_json("/v1/cronjobs/ch/resume", &Value::Null);
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for("fires after the resume", Duration::from_secs(30), || {
        (tasks_of(&url, "ch").len() >= at_answer + 2).then_some(())
    });
    let r = delete(follower, "/v1/cronjobs/ch");
    assert_eq!(r.status, 200, "{}", r.text());
    let at_answer = tasks_of(&url, "ch").len();
    std::thread::sleep(WATCH);
    assert_eq!(
        tasks_of(&url, "ch").len(),
        at_answer,
        "a fire after the delete"
    );

    // The leader counted what it withdrew and restaged.
    let leader_node = if leader == "a" { &a } else { &b };
    let metrics = leader_node.get("/metrics").text();
    for result in ["withdrawn", "restaged"] {
        let line = format!("cronnode_staged_amended_total{{result=\"{result}\"}}");
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(n >= 1.0, "{result}: {n}\n{metrics}");
    }
}
