//! End to end: bad API input gets the right status and a message naming the problem, and
//! nothing reaches Consul. Also the configuration and CLI refusals (exit 64 and 2).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{http, job, Consul, Node};
use dev_harness::RedisServer;
use serde_json::Value;

const TOKEN: &str = "e2e-secret";

fn send(node: &Node, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http::request(node.port, method, path, &headers, body).unwrap()
}

/// Asserts status, code, and that the message contains `needle`.
fn expect(r: &http::Response, status: u16, code: &str, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let (c, m) = r.error();
    assert_eq!(c, code, "{}", r.text());
    assert!(m.contains(needle), "message {m:?} should name {needle:?}");
}

#[test]
fn bad_api_input_is_refused_by_name_and_writes_nothing() {
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let node = Node::start("solo", &consul, &redis.url(), &["--api-token", TOKEN]);
    let ok_job = job("okjob", "@every 1h").to_string();
    let t = Some(TOKEN);

    // Token: /health is open, everything else needs it.
    assert_eq!(http::get(node.port, "/health", None).unwrap().status, 200);
    expect(
        &send(&node, "POST", "/v1/cronjobs", None, ok_job.as_bytes()),
        401,
        "unauthorized",
        "Authorization",
    );
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            Some("nope"),
            ok_job.as_bytes(),
        ),
        401,
        "unauthorized",
        "wrong bearer token",
    );
    expect(
        &send(&node, "GET", "/metrics", None, b""),
        401,
        "unauthorized",
        "Authorization",
    );

    // Bodies.
    expect(
        &send(&node, "POST", "/v1/cronjobs", t, b"{\"id\": \"x\", "),
        400,
        "malformed_json",
        "not valid JSON",
    );
    expect(
        &send(&node, "POST", "/v1/cronjobs", t, b""),
        400,
        "malformed_json",
        "empty",
    );
    expect(
        &send(&node, "POST", "/v1/cronjobs", t, b"[1,2]"),
        400,
        "bad_request",
        "JSON object",
    );
    let mut bad_cron = job("badcron", "0 24 * * *");
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            bad_cron.to_string().as_bytes(),
        ),
        422,
        "invalid_job",
        "hour",
    );
    bad_cron["frequency"] = "*/5 * * *".into();
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            bad_cron.to_string().as_bytes(),
        ),
        422,
        "invalid_job",
        "frequency",
    );
    let mut bad_tz = job("badtz", "@daily");
    bad_tz["timezone"] = "Mars/Olympus".into();
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            bad_tz.to_string().as_bytes(),
        ),
        422,
        "invalid_job",
        "Mars/Olympus",
    );
    let mut unknown = job("unknown", "@daily");
    unknown["frequncy"] = "@daily".into();
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            unknown.to_string().as_bytes(),
        ),
        400,
        "bad_request",
        "frequncy",
    );
    let mut unknown_nested = job("unknown2", "@daily");
    unknown_nested["function"]["imgae"] = "x".into();
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            unknown_nested.to_string().as_bytes(),
        ),
        400,
        "bad_request",
        "imgae",
    );
    let slash = job("a/b", "@daily");
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            slash.to_string().as_bytes(),
        ),
        422,
        "invalid_job",
        "id",
    );
    let dots = job("a..b", "@daily");
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            dots.to_string().as_bytes(),
        ),
        422,
        "invalid_job",
        "..",
    );
    let mut prio = job("prio", "@daily");
    prio["function"]["priority"] = 3.into();
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            t,
            prio.to_string().as_bytes(),
        ),
        422,
        "invalid_job",
        "priority",
    );
    // 2 MiB.
    let mut big = job("big", "@daily");
    big["function"]["body"] = "x".repeat(2 * 1024 * 1024).into();
    expect(
        &send(&node, "POST", "/v1/cronjobs", t, big.to_string().as_bytes()),
        413,
        "payload_too_large",
        "limit",
    );

    // Ids in the path.
    expect(
        &send(&node, "GET", "/v1/cronjobs/a/b", t, b""),
        400,
        "bad_request",
        "a/b",
    );
    expect(
        &send(&node, "PUT", "/v1/cronjobs/a%2Fb", t, ok_job.as_bytes()),
        400,
        "bad_request",
        "'/'",
    );
    expect(
        &send(&node, "DELETE", "/v1/cronjobs/..", t, b""),
        400,
        "bad_request",
        "..",
    );
    expect(
        &send(&node, "PUT", "/v1/cronjobs/x..y", t, ok_job.as_bytes()),
        400,
        "bad_request",
        "'..'",
    );
    // A PUT whose body names another id: an id cannot change.
    expect(
        &send(&node, "PUT", "/v1/cronjobs/other", t, ok_job.as_bytes()),
        422,
        "invalid_job",
        "other",
    );
    expect(
        &send(&node, "GET", "/v1/cronjobs/missing", t, b""),
        404,
        "not_found",
        "missing",
    );
    expect(
        &send(&node, "GET", "/v1/schedule?frequency=0+24+*+*+*", t, b""),
        422,
        "invalid_job",
        "hour",
    );
    expect(
        &send(&node, "GET", "/v1/schedule", t, b""),
        400,
        "bad_request",
        "frequency",
    );
    expect(
        &send(&node, "PATCH", "/v1/cronjobs", t, b""),
        405,
        "method_not_allowed",
        "PATCH",
    );
    expect(
        &send(&node, "GET", "/v2/nothing", t, b""),
        404,
        "not_found",
        "/v2/nothing",
    );

    // Nothing reached Consul.
    assert_eq!(
        consul.get_json("/v1/kv/cronnode/jobs/?recurse"),
        Value::Null,
        "no job was written"
    );

    // And a good one does get through.
    let r = send(&node, "POST", "/v1/cronjobs", t, ok_job.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let keys = consul.get_json("/v1/kv/cronnode/jobs/?keys");
    let shard = consul_lock::shard_of("okjob");
    assert_eq!(
        keys,
        serde_json::json!([format!("cronnode/jobs/{shard:02x}/okjob")])
    );
    // A bad page size names what is allowed.
    for bad in ["0", "10001", "ten", "-1"] {
        expect(
            &send(&node, "GET", &format!("/v1/cronjobs?limit={bad}"), t, b""),
            400,
            "bad_request",
            "from 1 to 10000",
        );
    }
    expect(
        &send(&node, "GET", "/v1/cronjobs?after=a%2Fb", t, b""),
        400,
        "bad_request",
        "after",
    );
    // Replacing a job that does not exist.
    let other = job("other", "@daily").to_string();
    expect(
        &send(&node, "PUT", "/v1/cronjobs/other", t, other.as_bytes()),
        404,
        "not_found",
        "other",
    );
}

#[test]
fn bad_configuration_exits_64_naming_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_cronnode"))
        .args([
            "run",
            "--session-ttl",
            "5s",
            "--log-format",
            "xml",
            "--listen",
            "nowhere",
            // Refused by consul-lock's rule, at validation (64), not at start-up.
            "--prefix",
            "a,b",
        ])
        .env_remove("CRONNODE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "--session-ttl",
        "10s-24h",
        "--log-format",
        "pretty or json",
        "--listen",
        "--prefix",
    ] {
        assert!(err.contains(needle), "{needle} missing in {err}");
    }
}

#[test]
fn next_prints_slots_and_refuses_bad_input_with_status_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_cronnode"))
        .args([
            "next",
            "0 9 * * 1-5",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-27T00:00:00Z",
            "-n",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2026-03-27T08:00:00Z\n2026-03-30T07:00:00Z\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cronnode"))
        .args(["next", "0 24 * * *"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error:") && err.contains("hour") && err.lines().count() == 1,
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cronnode"))
        .args(["fence", "reset"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "fence reset refuses without --yes"
    );
}
