//! End to end with IronFunctions' API (the dev-harness stand-in, which answers byte for byte
//! as the real server does): a fire is the task IronFunctions itself pushes for the same call,
//! a job for an app or a route it lacks is refused, and nothing is written when it cannot be
//! reached.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{check_task, tasks_of, wait_for, Consul, Node};
use dev_harness::{FunctionsApi, RedisServer, Route};
use serde_json::{json, Value};

/// What the real IronFunctions server (built from its public source, README "IronFunctions")
/// pushed onto `/queue0` for `POST /r/myapp/hello` with the headers and body of [`job`], the
/// app and the route of [`functions`]: captured with `LRANGE /queue0 0 -1`.
const REAL_TASK: &str = r#"{"image":"acme/hello:7","payload":"{\"name\":\"Johnny\"}","priority":0,"id":"6e05a2f7-d803-5bfe-903f-4dfd16ecbf41","completed_at":"0001-01-01T00:00:00.000Z","created_at":"0001-01-01T00:00:00.000Z","env_vars":{"APP_SETTING":"a1","DB_URL":"postgres://x","HEADER_CONTENT_TYPE":"application/json","HEADER_X_CUSTOM":"yes","HEADER_X_MULTI":"1 2","METHOD":"POST","REQUEST_URL":"http//127.0.0.1:18091/r/myapp/hello","ROUTE":"/hello","ROUTE_SETTING":"r1","SHARED":"route"},"app_name":"myapp","path":"/hello","started_at":"0001-01-01T00:00:00.000Z"}"#;

/// The app and the route the real server had: app config, an async route with its own image,
/// config (one name shared with the app's) and timeouts.
fn functions() -> FunctionsApi {
    let f = FunctionsApi::start().unwrap();
    f.put_app(
        "myapp",
        Some(&[
            ("APP_SETTING", "a1"),
            ("db-url", "postgres://x"),
            ("shared", "app"),
        ]),
    );
    let mut route = Route::new("acme/hello:7");
    route.timeout = 45;
    route.idle_timeout = 20;
    route.config = [("ROUTE_SETTING", "r1"), ("shared", "route")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    f.put_route("myapp", "/hello", route);
    f
}

/// The same call as a job: same app, path, headers and body, no image.
fn job(id: &str, app: &str, path: &str) -> Value {
    json!({
        "id": id,
        "function": {"app": app, "path": path,
                     "headers": ["Content-Type: application/json", "X-Custom: yes",
                                 "X-Multi: 1", "X-Multi: 2"],
                     "body": "{\"name\":\"Johnny\"}"},
        "frequency": "@every 1s",
    })
}

fn start_node(consul: &Consul, redis: &RedisServer, functions_url: &str) -> Node {
    Node::start_env(
        "a",
        consul,
        &redis.url(),
        &[
            "--functions-url",
            functions_url,
            "--functions-refresh",
            "1s",
        ],
        &[("CRONNODE_RESOLVE_ROUTES", "true")],
    )
}

/// A leading node resolving routes from [`functions`], with the job `report` created for
/// `myapp/hello`; answers its first task too.
fn firing() -> (Consul, RedisServer, FunctionsApi, Node, Value) {
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let f = functions();
    let node = start_node(&consul, &redis, &f.url());
    node.wait_leader();
    let r = node.post_json("/v1/cronjobs", &job("report", "myapp", "/hello"));
    assert_eq!(r.status, 201, "{}", r.text());
    let first = wait_for("a task of the job", Duration::from_secs(30), || {
        tasks_of(&redis.url(), "report").into_iter().next()
    });
    (consul, redis, f, node, first)
}

#[test]
fn a_fire_is_the_task_ironfunctions_pushes_for_the_same_call() {
    let _serial = common::serial();
    let (_consul, redis, f, _node, ours) = firing();
    check_task(&ours);
    let real: Value = serde_json::from_str(REAL_TASK).unwrap();

    // Field by field. Equal: what the function sees of the call.
    for field in ["image", "payload", "priority", "app_name", "path"] {
        assert_eq!(ours[field], real[field], "{field}: {ours}");
    }
    let (mut ours_env, mut real_env) = (ours["env_vars"].clone(), real["env_vars"].clone());
    // Different on purpose: REQUEST_URL is well-formed (IronFunctions writes `http//`, and
    // the host is the one the caller used), and the User-Agent says cron made the call.
    let url = ours_env
        .as_object_mut()
        .unwrap()
        .remove("REQUEST_URL")
        .unwrap();
    assert_eq!(url, json!(format!("{}/r/myapp/hello", f.url())));
    real_env.as_object_mut().unwrap().remove("REQUEST_URL");
    let agent = ours_env
        .as_object_mut()
        .unwrap()
        .remove("HEADER_USER_AGENT")
        .unwrap();
    assert!(agent.as_str().unwrap().starts_with("cronnode/"), "{agent}");
    assert_eq!(ours_env, real_env, "the call's variables");
    // The route's timeouts, which IronFunctions' async path drops.
    assert_eq!(
        (ours["timeout"].as_u64(), ours["idle_timeout"].as_u64()),
        (Some(45), Some(20))
    );
    assert!(real.get("timeout").is_none() && real.get("idle_timeout").is_none());
    // The call id: a UUID in both (the fire id for cronnode); created_at: RFC 3339 in both
    // (the zero time for IronFunctions, the slot for cronnode); started_at and completed_at
    // left out (IronFunctions sends the zero time; a consumer takes either).
    for t in [&ours, &real] {
        assert_eq!(t["id"].as_str().unwrap().len(), 36);
        chrono::DateTime::parse_from_rfc3339(t["created_at"].as_str().unwrap()).unwrap();
    }
    assert!(ours.get("started_at").is_none() && ours.get("completed_at").is_none());

    // A change made in IronFunctions reaches the tasks within the refresh interval.
    let mut route = Route::new("acme/hello:8");
    route.timeout = 45;
    f.put_route("myapp", "/hello", route);
    wait_for("a task with the new image", Duration::from_secs(30), || {
        tasks_of(&redis.url(), "report")
            .into_iter()
            .find(|t| t["image"] == "acme/hello:8")
            .filter(|t| t["env_vars"].get("ROUTE_SETTING").is_none())
    });
}

#[test]
fn a_job_for_a_route_ironfunctions_lacks_is_refused_and_nothing_is_written_when_it_is_down() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let f = functions();
    let node = start_node(&consul, &redis, &f.url());

    for (app, path, named) in [
        ("nope", "/hello", "\"nope\""),
        ("myapp", "/nope", "\"/nope\""),
    ] {
        let r = node.post_json("/v1/cronjobs", &job("x", app, path));
        assert_eq!(r.status, 422, "{}", r.text());
        let (code, message) = r.error();
        assert_eq!(code, "invalid_job");
        assert!(
            message.contains(named) && message.contains(app),
            "{message}"
        );
    }
    // A replace is checked the same way.
    assert_eq!(
        node.post_json("/v1/cronjobs", &job("x", "myapp", "/hello"))
            .status,
        201
    );
    let r = common::http::request(
        node.port,
        "PUT",
        "/v1/cronjobs/x",
        &[("Content-Type", "application/json")],
        job("x", "myapp", "/gone").to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        node.get("/v1/cronjobs/x").json()["function"]["path"],
        "/hello"
    );

    // IronFunctions unreachable: 503 saying so, nothing written.
    drop(f);
    let r = node.post_json("/v1/cronjobs", &job("y", "myapp", "/hello"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.error().1.contains("IronFunctions"), "{}", r.text());
    assert_eq!(node.get("/v1/cronjobs/y").status, 404);
}

#[test]
fn a_route_deleted_later_holds_the_job_and_its_return_catches_it_up_by_policy() {
    let _serial = common::serial();
    let (_consul, redis, f, node, _first) = firing();

    // The leader planned the new job only once its route was read: no slot waited for it.
    let fires = |node: &Node| node.get("/v1/cronjobs/report/fires").json()["fires"].clone();
    let before = fires(&node);
    assert!(
        before
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] == "enqueued"),
        "{before}"
    );

    f.delete_route("myapp", "/hello");
    // Its slots are recorded as not fired, with the reason; nothing of them is enqueued.
    let not_fired = wait_for(
        "slots recorded as not fired",
        Duration::from_secs(30),
        || {
            let all: Vec<Value> = fires(&node).as_array().unwrap().clone();
            let nf: Vec<Value> = all
                .into_iter()
                .filter(|e| e["outcome"] == "not_fired")
                .collect();
            (nf.len() >= 3).then_some(nf)
        },
    );
    assert!(
        not_fired[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Route not found"),
        "{not_fired:?}"
    );
    let queued: Vec<i64> = tasks_of(&redis.url(), "report")
        .iter()
        .map(common::slot_of)
        .collect();
    for e in &not_fired {
        let slot = chrono::DateTime::parse_from_rfc3339(e["slot"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert!(
            !queued.contains(&slot),
            "slot {slot} not fired yet enqueued"
        );
    }
    let job = node.get("/v1/cronjobs/report").json();
    assert_eq!(job["route"]["state"], "missing", "{job}");
    assert!(job["not_fired"]["reason"].is_string(), "{job}");
    let status = node.get("/v1/status").json();
    assert_eq!(status["route_missing"]["count"], 1, "{status}");
    assert_eq!(
        status["route_missing"]["jobs"][0]["id"], "report",
        "{status}"
    );
    let metrics = node.get("/metrics").text();
    assert!(metrics.contains("outcome=\"route_missing\""), "{metrics}");

    // The route comes back: the job fires again, and the slots it missed are caught up by its
    // policy (`all` within the window by default).
    f.put_route("myapp", "/hello", Route::new("acme/hello:7"));
    let missed: Vec<i64> = not_fired
        .iter()
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e["slot"].as_str().unwrap())
                .unwrap()
                .timestamp()
        })
        .collect();
    wait_for(
        "the missed slots caught up",
        Duration::from_secs(30),
        || {
            let queued: Vec<i64> = tasks_of(&redis.url(), "report")
                .iter()
                .map(common::slot_of)
                .collect();
            missed.iter().all(|s| queued.contains(s)).then_some(())
        },
    );
    assert_eq!(
        node.get("/v1/cronjobs/report").json()["route"]["state"],
        "found"
    );
}
