//! End to end, with real processes: the parts of the API the web console relies on, asked of
//! a follower as of the leader: the list's filters, the validate-only call, the schedule in
//! its zone, the leader's activity (forwarded by a follower) and the Consul UI's links.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{job, wait_for, Consul, Node};
use dev_harness::RedisServer;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn ids(page: &Value) -> Vec<String> {
    let mut v: Vec<String> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn what_the_console_asks_of_any_node() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let a = Node::start("a", &consul, &redis.url(), &[]);
    let b = Node::start("b", &consul, &redis.url(), &[]);
    let leader = a.wait_leader();
    let (leader, follower) = if leader == "a" { (&a, &b) } else { (&b, &a) };

    // The list's filters, on the follower.
    for (id, app, paused) in [
        ("report-daily", "billing", false),
        ("Report-weekly", "billing", true),
        ("cleanup", "ops", true),
    ] {
        let mut j = job(id, "0 3 * * *");
        j["function"]["app"] = json!(app);
        j["paused"] = json!(paused);
        let r = follower.post_json("/v1/cronjobs", &j);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let page = |q: &str| {
        let r = follower.get(&format!("/v1/cronjobs?{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        r.json()
    };
    assert_eq!(ids(&page("state=paused")), ["Report-weekly", "cleanup"]);
    assert_eq!(ids(&page("state=active")), ["report-daily"]);
    assert_eq!(
        ids(&page("id_contains=REPORT")),
        ["Report-weekly", "report-daily"]
    );
    assert_eq!(
        ids(&page("id_contains=report&state=paused&app=billing")),
        ["Report-weekly"]
    );
    let invalid = page("state=invalid");
    assert!(ids(&invalid).is_empty() && invalid["invalid"].as_array().unwrap().is_empty());
    let r = follower.get("/v1/cronjobs?state=stopped");
    assert_eq!(r.status, 400);
    assert!(
        r.error().1.contains("active, paused, invalid"),
        "{}",
        r.text()
    );

    // Validate-only: the create's checks, nothing written.
    let r = follower.post_json("/v1/validate", &job("checked", "*/5 * * * *"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["valid"], true);
    assert_eq!(r.json()["job"]["id"], "checked");
    let r = follower.post_json("/v1/validate", &job("checked", "*/70 * * * *"));
    assert_eq!(r.status, 422, "{}", r.text());
    let (code, message) = r.error();
    assert_eq!(code, "invalid_job");
    assert!(message.starts_with("frequency: "), "{message}");
    let r = follower.post_json("/v1/validate", &json!({"id": "x", "nonsense": 1}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        follower.get("/v1/cronjobs/checked").status,
        404,
        "nothing written"
    );

    // The schedule in its zone, with the daylight-saving change marked.
    let r = follower
        .get("/v1/schedule?frequency=0+9+*+*+*&tz=Europe%2FBerlin&n=3&from=2026-03-27T12:00:00Z");
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(
        s["local"],
        json!([
            "2026-03-28T09:00:00+01:00",
            "2026-03-29T09:00:00+02:00",
            "2026-03-30T09:00:00+02:00"
        ])
    );
    assert_eq!(s["slots"][1], "2026-03-29T07:00:00Z");
    assert_eq!(s["offset_changed"], json!([false, true, false]));

    // The leader's activity, asked of the follower: the leader answers, with its fires.
    let r = follower.post_json("/v1/cronjobs", &job("ticking", "@every 1s"));
    assert_eq!(r.status, 201, "{}", r.text());
    let activity = wait_for("the leader's activity to count fires", WAIT, || {
        let r = follower.get("/v1/leader/activity");
        let v = (r.status == 200).then(|| r.json())?;
        let fired: u64 = v["points"]
            .as_array()?
            .iter()
            .filter_map(|p| p["enqueued"].as_u64())
            .sum();
        (fired > 0).then_some(v)
    });
    assert_eq!(activity["node"], leader.name.as_str());
    assert_eq!(activity["step_secs"], 5);
    let p = activity["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    for field in [
        "at",
        "fires_per_sec",
        "late_count",
        "lateness_mean_ms",
        "lateness_p99_ms",
    ] {
        assert!(p.get(field).is_some(), "{field} in {p}");
    }

    // The Consul UI's links name the datacenter.
    let status = follower.get("/v1/status").json();
    let lock = status["consul_ui"]["lock_key"].as_str().unwrap();
    assert_eq!(
        lock,
        format!("{}/ui/dc1/kv/cronnode/leader/edit", consul.url())
    );
    assert!(status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["datacenter"] == "dc1"));

    // The console itself, from any node, open: the page and its policy.
    let r = follower.get("/ui/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/ui/app.js"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.contains("script-src 'self'")));
    assert_eq!(follower.get("/ui/nothing.js").status, 404);
    let doc = follower.get("/v1/openapi.json").json();
    assert!(doc["paths"]["/v1/validate"]["post"].is_object());
    assert!(doc["paths"]["/v1/leader/activity"]["get"].is_object());
    assert!(doc["paths"].get("/ui/{*rest}").is_none());
}
