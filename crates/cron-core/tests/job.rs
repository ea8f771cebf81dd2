//! Job spec parsing and validation: the IronFunctions form as is, the extensions, and one test
//! per rule with its exact message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cron_core::{CatchUpPolicy, JobError, JobSpec};
use serde_json::{json, Value};

fn base() -> Value {
    json!({"id": "report", "function": {"app": "app", "path": "/fn",
        "headers": ["Content-Type: application/json"], "body": "...."},
        "frequency": "*/10 * * * *"})
}

fn check(v: &Value) -> Result<cron_core::Job, JobError> {
    JobSpec::from_json(v.to_string().as_bytes())?.validate()
}

fn err_with(path: &[&str], value: Value) -> String {
    let mut v = base();
    let mut slot = &mut v;
    for p in &path[..path.len() - 1] {
        slot = slot.get_mut(*p).unwrap();
    }
    slot[path[path.len() - 1]] = value;
    check(&v).unwrap_err().to_string()
}

#[test]
fn the_ironfunctions_form_is_accepted_as_is() {
    let job = check(&base()).unwrap();
    assert_eq!(job.spec.id, "report");
    assert_eq!(
        job.spec.function.headers,
        ["Content-Type: application/json"]
    );
    assert_eq!(job.schedule.timezone(), "UTC");
    assert_eq!(job.spec.catchup.policy, CatchUpPolicy::All);
    assert_eq!(job.catchup_window, Duration::from_secs(3600));
}

#[test]
fn extensions_are_read() {
    let v = json!({"id": "r-1.x_y", "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-02T00:00:00Z",
        "function": {"app": "a", "path": "/f", "image": "img:1", "headers": [], "body": "b",
        "priority": 2, "timeout": 3600, "delay": 60},
        "frequency": "0 9 * * 1-5", "timezone": "Europe/Berlin", "paused": true,
        "catchup": {"policy": "latest", "window": "7h"},
        "description": "d", "tags": ["t"]});
    let job = check(&v).unwrap();
    assert!(job.spec.paused);
    assert_eq!(job.spec.catchup.policy, CatchUpPolicy::Latest);
    assert_eq!(job.catchup_window, Duration::from_secs(7 * 3600));
    assert_eq!(job.schedule.timezone(), "Europe/Berlin");
    // The stored form round-trips.
    let back = serde_json::to_vec(&job.spec).unwrap();
    assert_eq!(JobSpec::from_json(&back).unwrap(), job.spec);
}

#[test]
fn every_rule_has_its_message() {
    let id = |s: &str| err_with(&["id"], json!(s));
    assert_eq!(id(""), "id: must be 1-128 characters, got 0");
    assert_eq!(
        id(&"a".repeat(129)),
        "id: must be 1-128 characters, got 129"
    );
    assert_eq!(id("a/b"), "id: \"a/b\" has '/'; allowed: A-Z a-z 0-9 _ . -");
    assert_eq!(id(".a"), "id: \".a\" must not start with '.'");
    assert_eq!(id("a..b"), "id: \"a..b\" must not contain '..'");
    assert!(check(&{
        let mut v = base();
        v["id"] = json!("a".repeat(128));
        v
    })
    .is_ok());
    assert_eq!(
        err_with(&["function", "app"], json!(" ")),
        "function.app: must not be empty"
    );
    assert_eq!(
        err_with(&["function", "path"], json!("fn")),
        "function.path: \"fn\" must start with '/'"
    );
    assert_eq!(
        err_with(&["function", "headers"], json!(["NoColon"])),
        "function.headers: \"NoColon\" is not `Name: value`"
    );
    assert_eq!(
        err_with(&["function", "headers"], json!(["Bad Name: x"])),
        "function.headers: \"Bad Name\" is not a valid HTTP header name"
    );
    assert_eq!(
        err_with(&["function", "headers"], json!(["X-A: a\r\nX-B: b"])),
        "function.headers: the value of \"X-A\" has a control character"
    );
    assert_eq!(
        err_with(&["function", "body"], json!("x".repeat(256 * 1024 + 1))),
        "function.body: 262145 bytes is over the limit of 262144 (256 KiB)"
    );
    assert!(check(&{
        let mut v = base();
        v["function"]["body"] = json!("x".repeat(256 * 1024));
        v
    })
    .is_ok());
    assert_eq!(
        err_with(&["function", "priority"], json!(3)),
        "function.priority: 3 is out of range 0-2"
    );
    assert_eq!(
        err_with(&["function", "timeout"], json!(0)),
        "function.timeout: 0 is out of range 1-3600 seconds"
    );
    assert_eq!(
        err_with(&["function", "timeout"], json!(3601)),
        "function.timeout: 3601 is out of range 1-3600 seconds"
    );
    assert_eq!(
        err_with(&["function", "delay"], json!(86401)),
        "function.delay: 86401 is out of range 0-86400 seconds"
    );
    assert_eq!(
        err_with(&["function", "image"], json!("")),
        "function.image: must not be empty when given"
    );
    assert_eq!(
        err_with(&["frequency"], json!("0 24 * * *")),
        "frequency: hour: 24 is out of range 0-23"
    );
    assert_eq!(
        err_with(&["timezone"], json!("Mars/Olympus")),
        "timezone: unknown time zone \"Mars/Olympus\" (expected an IANA name such as Europe/Berlin)"
    );
    assert_eq!(
        err_with(&["catchup"], json!({"policy": "all", "window": "169h"})),
        "catchup.window: 169h is longer than the limit of 7 days (168h)"
    );
    assert_eq!(
        err_with(&["catchup"], json!({"window": "1 week"})),
        "catchup.window: duration \"1 week\": unknown unit \" week\"; allowed: ns, us, ms, s, m, h"
    );
}

#[test]
fn unknown_and_missing_fields_are_named() {
    assert_eq!(
        err_with(&["colour"], json!("red")),
        "job: unknown field \"colour\" (allowed: id, function, frequency, timezone, paused, \
         catchup, jitter, start_at, end_at, description, tags, created_at, updated_at)"
    );
    assert_eq!(
        err_with(&["function", "retries"], json!(3)),
        "function: unknown field \"retries\" (allowed: app, path, headers, body, image, \
         priority, timeout, delay)"
    );
    assert_eq!(
        err_with(&["catchup"], json!({"policy": "all", "max": 3})),
        "catchup: unknown field \"max\" (allowed: policy, window)"
    );
    let e = err_with(&["catchup"], json!({"policy": "sometimes"}));
    assert!(e.contains("unknown variant `sometimes`"), "{e}");
    let e = JobSpec::from_json(br#"{"id":"a","frequency":"* * * * *"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field `function`"), "{e}");
    assert!(JobSpec::from_json(b"not json").is_err());
}

/// A repeated key is taken as its last value, as it always was: the direct parse refuses it
/// and the checked parse (through a JSON tree) keeps the last one.
#[test]
fn a_repeated_key_keeps_its_last_value() {
    let spec = JobSpec::from_json(
        br#"{"id":"a","id":"b","function":{"app":"x","path":"/f"},"frequency":"* * * * *"}"#,
    )
    .unwrap();
    assert_eq!(spec.id, "b");
}

/// Whatever reaches a URL, a header or an image name has no control character, and every
/// text has a bound (a 100 KB path, 100,000 tags or a 1 MiB description are refused).
#[test]
fn control_characters_and_lengths_are_refused_by_field() {
    let cases: Vec<(&[&str], Value, &str)> = vec![
        (
            &["function", "path"],
            json!("/fn\r\nX: y"),
            "function.path: '\\r' is not allowed",
        ),
        (
            &["function", "path"],
            json!("/fn x"),
            "function.path: ' ' is not allowed",
        ),
        (
            &["function", "path"],
            json!("/fn?a=1"),
            "function.path: '?' is not allowed",
        ),
        (
            &["function", "path"],
            json!(format!("/{}", "p".repeat(100_000))),
            "function.path: 100001 bytes is over the limit of 2048",
        ),
        (
            &["function", "app"],
            json!("app\n"),
            "function.app: '\\n' is not allowed",
        ),
        (
            &["function", "app"],
            json!("a/b"),
            "function.app: '/' is not allowed: an app name is one URL path segment",
        ),
        (
            &["function", "app"],
            json!("a?b"),
            "function.app: '?' is not allowed",
        ),
        (
            &["function", "app"],
            json!("a".repeat(256)),
            "function.app: 256 bytes is over the limit of 255",
        ),
        (
            &["function", "image"],
            json!("iron/hello\u{0}"),
            "function.image: '\\0' is not allowed",
        ),
        (
            &["function", "image"],
            json!("iron/hello latest"),
            "function.image: ' ' is not allowed",
        ),
        (
            &["function", "headers"],
            json!(vec!["A: b"; 65]),
            "function.headers: 65 headers is over the limit of 64",
        ),
        (
            &["function", "headers"],
            json!([format!("A: {}", "b".repeat(9000))]),
            "function.headers: a header of 9003 bytes",
        ),
        (
            &["description"],
            json!("x".repeat(1024 * 1024)),
            "description: 1048576 bytes is over the limit of 4096",
        ),
        (
            &["description"],
            json!("a\u{1b}[31m"),
            "description: '\\u{1b}' is not allowed",
        ),
        (
            &["tags"],
            json!(vec!["t"; 100_000]),
            "tags: 100000 tags is over the limit of 64",
        ),
        (&["tags"], json!([""]), "tags: a tag must not be empty"),
        (&["tags"], json!(["a\rb"]), "tags: '\\r' is not allowed"),
        (
            &["frequency"],
            json!("* * * * *\n"),
            "frequency: '\\n' is not allowed",
        ),
    ];
    for (path, value, message) in cases {
        let e = err_with(path, value);
        assert!(e.starts_with(message), "{path:?}: {e}");
    }
    // What stays allowed.
    let mut v = base();
    v["function"]["app"] = json!("my-app_1.v2~x\"ü");
    v["function"]["path"] = json!("/a/b:c/ünï");
    v["function"]["image"] = json!("registry.local:5000/acme/report@sha256:abc");
    v["description"] = json!("two\nlines\tand a tab");
    v["tags"] = json!(["team:ops", "ünï"]);
    check(&v).unwrap();
}
