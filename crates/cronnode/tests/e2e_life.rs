//! End to end, with real processes (consul-dev, redis-server, cronnode): jitter, `start_at` /
//! `end_at` and the one-shot `@at`, seen on the platform's queue and through the API.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{check_task, job, slot_of, tasks_of, wait_for, Consul, Node};
use dev_harness::RedisServer;
use serde_json::{json, Value};

/// Lateness the test accepts (a loaded CI machine may be slow; the goal is in BENCHMARKS.md).
const LATENESS_LIMIT_MS: i64 = 1_000;

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn with(mut spec: Value, extra: Value) -> Value {
    if let (Value::Object(m), Value::Object(e)) = (&mut spec, extra) {
        m.extend(e);
    }
    spec
}

fn state(node: &Node, id: &str) -> String {
    let got = node.get(&format!("/v1/cronjobs/{id}")).json();
    got["state"].as_str().unwrap_or("").to_string()
}

#[test]
fn jitter_start_end_and_one_shot_on_a_real_cluster() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let a = Node::start("a", &consul, &redis.url(), &[]);
    a.wait_leader();
    let now = Utc::now();

    // Jitter: each task reaches the queue at its slot's jittered instant (computed here by
    // cron-core as every node does), with the nominal slot's fire id.
    let spread = with(job("spread", "@every 3s"), json!({"jitter": "3s"}));
    let r = a.post_json("/v1/cronjobs", &spread);
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert!(created["next_run_at"].is_string(), "{created}");
    assert_eq!(created["state"], "active");
    let spec = cron_core::JobSpec::from_json(spread.to_string().as_bytes())
        .unwrap()
        .validate()
        .unwrap();

    // Start and end: no slot outside, then `ended`.
    let start = now + chrono::Duration::seconds(4);
    let end = now + chrono::Duration::seconds(7);
    let bounded = with(
        job("bounded", "@every 1s"),
        json!({"start_at": rfc(start), "end_at": rfc(end)}),
    );
    let r = a.post_json("/v1/cronjobs", &bounded);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "waiting");

    // One-shot: fires once, then `done`.
    let shot = now + chrono::Duration::seconds(5);
    let once = job("once", &format!("@at {}", rfc(shot)));
    let r = a.post_json("/v1/cronjobs", &once);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "active");

    let tasks = wait_for("3 jittered tasks", Duration::from_secs(40), || {
        let t = tasks_of(&redis.url(), "spread");
        (t.len() >= 3).then_some(t)
    });
    for t in &tasks {
        let slot = DateTime::from_timestamp(slot_of(t), 0).unwrap();
        assert_eq!(
            t["id"].as_str().unwrap(),
            cron_core::fire::fire_id("spread", slot).to_string()
        );
        let due = spec.fire_at(slot);
        // `created_at` is the enqueue call's instant, with milliseconds.
        let created = check_task(t) + slot.timestamp_millis();
        let late = created - due.timestamp_millis();
        assert!(
            (0..LATENESS_LIMIT_MS).contains(&late),
            "slot {slot} due {due}: enqueued {late} ms after its jittered instant"
        );
    }

    wait_for("the bounded job ended", Duration::from_secs(30), || {
        (Utc::now() > end + chrono::Duration::seconds(2) && state(&a, "bounded") == "ended")
            .then_some(())
    });
    let slots: Vec<i64> = tasks_of(&redis.url(), "bounded")
        .iter()
        .map(slot_of)
        .collect();
    let expected: Vec<i64> = (start.timestamp()..=end.timestamp()).collect();
    assert_eq!(slots, expected, "exactly the slots from start_at to end_at");

    wait_for("the one-shot done", Duration::from_secs(30), || {
        (state(&a, "once") == "done").then_some(())
    });
    let fired = tasks_of(&redis.url(), "once");
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(slot_of(&fired[0]), shot.timestamp());
    let listed = a.get("/v1/cronjobs").json();
    let states: Vec<(String, String)> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&("once".into(), "done".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("bounded".into(), "ended".into())),
        "{states:?}"
    );
    // A GET answer is PUT back as is (state and next_run_at are read-only).
    let got = a.get("/v1/cronjobs/spread").json();
    let body = got.to_string();
    let r = common::http::request(
        a.port,
        "PUT",
        "/v1/cronjobs/spread",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn bad_life_fields_are_refused_by_name() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let a = Node::start("a", &consul, &redis.url(), &[]);
    let cases = [
        (
            json!({"jitter": "5m"}),
            "jitter: 5m is longer than the shortest interval",
        ),
        (
            json!({"start_at": "tomorrow"}),
            "start_at: \"tomorrow\" is not an RFC 3339",
        ),
        (
            json!({"start_at": "2026-02-01T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}),
            "end_at: ",
        ),
    ];
    for (extra, message) in cases {
        let r = a.post_json("/v1/cronjobs", &with(job("bad", "* * * * *"), extra));
        assert_eq!(r.status, 422, "{}", r.text());
        let (_, got) = r.error();
        assert!(got.starts_with(message), "{got}");
    }
    let r = a.post_json("/v1/cronjobs", &job("bad", "@at 2026-12-24T18:00:00"));
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.error().1.contains("RFC 3339 instant with an offset"));
    assert_eq!(a.get("/v1/cronjobs/bad").status, 404, "nothing was written");
    // The preview takes the same fields.
    let r =
        a.get("/v1/schedule?frequency=0+0+*+*+*&jitter=5m&id=report&n=2&from=2026-12-01T00:00:00Z");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["runs_at"].as_array().unwrap().len(), 2, "{v}");
    let r = a.get("/v1/schedule?frequency=*+*+*+*+*&jitter=5m");
    assert_eq!(r.status, 422, "{}", r.text());
}

#[test]
fn backfill_fires_past_slots_once_through_any_node() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let a = Node::start("a", &consul, &redis.url(), &[]);
    let b = Node::start("b", &consul, &redis.url(), &[]);
    let leader = a.wait_leader();
    let follower = if leader == "a" { &b } else { &a };

    // Every 10 s; its missed slots are never caught up (policy skip).
    let spec = with(
        job("bf", "*/10 * * * * *"),
        json!({"catchup": {"policy": "skip", "window": "1m"}}),
    );
    let r = a.post_json("/v1/cronjobs", &spec);
    assert_eq!(r.status, 201, "{}", r.text());
    let now = Utc::now();
    let from = now - chrono::Duration::minutes(5);
    let to = now - chrono::Duration::minutes(2);
    let range = json!({"from": rfc(from), "to": rfc(to)});
    let expected: Vec<i64> = (from.timestamp()..=to.timestamp())
        .filter(|s| s % 10 == 0)
        .collect();

    // Through the follower: forwarded to the leader with its body.
    let r = follower.post_json("/v1/cronjobs/bf/backfill", &range);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["slots"], expected.len(), "{v}");
    assert_eq!(
        v["enqueued"].as_array().unwrap().len(),
        expected.len(),
        "{v}"
    );
    assert_eq!(v["already_enqueued"].as_array().unwrap().len(), 0);
    assert_eq!(v["leader_node"], leader.as_str());
    let backfilled: Vec<Value> = tasks_of(&redis.url(), "bf")
        .into_iter()
        .filter(|t| t.pointer("/cron/kind").and_then(Value::as_str) == Some("backfill"))
        .collect();
    let slots: Vec<i64> = backfilled.iter().map(slot_of).collect();
    assert_eq!(slots, expected);
    for t in &backfilled {
        let slot = DateTime::from_timestamp(slot_of(t), 0).unwrap();
        assert_eq!(
            t["id"].as_str().unwrap(),
            cron_core::fire::fire_id("bf", slot).to_string()
        );
    }

    // Again, through the CLI on the leader: nothing fires twice.
    let (code, stdout, stderr) = (if leader == "a" { &a } else { &b }).cli(
        None,
        &[
            "jobs",
            "backfill",
            "bf",
            "--from",
            &rfc(from),
            "--to",
            &rfc(to),
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(again["enqueued"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(
        again["already_enqueued"].as_array().unwrap().len(),
        expected.len()
    );
    let count = tasks_of(&redis.url(), "bf")
        .iter()
        .filter(|t| t.pointer("/cron/kind").and_then(Value::as_str) == Some("backfill"))
        .count();
    assert_eq!(count, expected.len());
    // The history records them as backfill.
    let h = a.get("/v1/cronjobs/bf/fires").json();
    let kinds: Vec<&str> = h["fires"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"backfill"), "{kinds:?}");

    // Refused ranges name the field; nothing is enqueued.
    let now = Utc::now();
    let cases = [
        (
            json!({"from": rfc(now - chrono::Duration::minutes(1)), "to": rfc(now + chrono::Duration::minutes(1))}),
            400,
            "to: ",
        ),
        (
            json!({"from": rfc(now - chrono::Duration::hours(30)), "to": rfc(now)}),
            400,
            "from: ",
        ),
        (
            json!({"from": rfc(now), "to": rfc(now - chrono::Duration::minutes(1))}),
            400,
            "to: ",
        ),
        (json!({"from": "yesterday", "to": rfc(now)}), 400, "from: "),
        (json!({"to": rfc(now)}), 400, "from: missing"),
        (
            json!({"from": rfc(now), "to": rfc(now), "rerun": true}),
            400,
            "unknown field \"rerun\"",
        ),
    ];
    for (body, status, message) in cases {
        let r = follower.post_json("/v1/cronjobs/bf/backfill", &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.error().1.starts_with(message), "{body}: {}", r.error().1);
    }
    let dense = with(job("dense", "* * * * * *"), json!({}));
    assert_eq!(a.post_json("/v1/cronjobs", &dense).status, 201);
    let r = a.post_json(
        "/v1/cronjobs/dense/backfill",
        &json!({"from": rfc(now - chrono::Duration::hours(3)), "to": rfc(now)}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.error().1.contains("more than 10000 slots"),
        "{}",
        r.text()
    );
    assert_eq!(
        a.post_json("/v1/cronjobs/dense/pause", &json!({})).status,
        200
    );
    let r = a.post_json("/v1/cronjobs/dense/backfill", &range);
    assert_eq!(r.status, 409, "{}", r.text());
    let r = a.post_json("/v1/cronjobs/nope/backfill", &range);
    assert_eq!(r.status, 404, "{}", r.text());
    // The CLI: bad input is exit 2 with one `error:` line.
    let (code, stdout, stderr) = a.cli(
        None,
        &[
            "jobs",
            "backfill",
            "bf",
            "--from",
            "yesterday",
            "--to",
            &rfc(now),
        ],
    );
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    let err = stderr;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
}
