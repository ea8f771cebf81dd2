//! End to end: what issue 18 found, each row refused or fixed, against real nodes (the
//! connection row is `e2e_connections.rs`).
//!
//! - a job that validates but whose stored form is over Consul's limit: 413 before Consul;
//! - control characters and over-long texts in what reaches a URL, a header or an image: 422;
//! - duplicate JSON keys: 400; the auth scheme in any case; `HEAD` where `GET` is;
//! - a job edited by hand into an invalid state: shown as invalid, deletable through the API
//!   and the CLI; two deletes of one job: one 200, one 404;
//! - the CLI: `jobs add /dev/zero` refused at the API's limit; one exit code for one bad file
//!   in `add` and `put`;
//! - a bad `--redis` URL: exit 64; a token on the command line: a warning;
//! - forwarding: a forged lock value receives no token (the follower goes to the instance the
//!   cluster vouches for); a lock held by another client: 503 `no_leader`, holder foreign;
//! - nodes that disagree on whether a token is required: flagged in `/v1/nodes` and
//!   `cronnode status`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{http, job, wait_for, Consul, Node};
use dev_harness::RedisServer;
use serde_json::{json, Value};

const TOKEN: &str = "e2e-hard-secret";

fn send(node: &Node, method: &str, path: &str, body: &[u8]) -> http::Response {
    let auth = format!("Bearer {TOKEN}");
    http::request(
        node.port,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .unwrap()
}

fn expect(r: &http::Response, status: u16, code: &str, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let (c, m) = r.error();
    assert_eq!(c, code, "{}", r.text());
    assert!(m.contains(needle), "message {m:?} should name {needle:?}");
}

fn consul_put(consul: &Consul, path: &str, body: &[u8]) -> http::Response {
    http::request(consul.port, "PUT", path, &[], body).unwrap()
}

#[test]
fn a_node_refuses_every_bad_input_with_a_4xx() {
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let node = Node::start("hard", &consul, &redis.url(), &["--api-token", TOKEN]);

    // A token on the command line is named in a warning (prefer the environment).
    let log = node.log();
    assert!(
        log.contains("--api-token was given on the command line")
            && log.contains("CRONNODE_API_TOKEN"),
        "{log}"
    );

    // Over Consul's limit once stored (200,000 '"' escape to 400 KB): 413, before Consul.
    let mut quotes = job("quotes", "@daily");
    quotes["function"]["body"] = "\"".repeat(200_000).into();
    expect(
        &send(&node, "POST", "/v1/cronjobs", quotes.to_string().as_bytes()),
        413,
        "payload_too_large",
        "Consul",
    );
    let mut tags = job("tags", "@daily");
    tags["tags"] = json!(vec!["t"; 100_000]);
    expect(
        &send(&node, "POST", "/v1/cronjobs", tags.to_string().as_bytes()),
        422,
        "invalid_job",
        "tags",
    );
    let mut described = job("described", "@daily");
    described["description"] = "d".repeat(500_000).into();
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            described.to_string().as_bytes(),
        ),
        422,
        "invalid_job",
        "description",
    );

    // Control characters where they would reach a URL, a header or an image name.
    for (field, value) in [
        ("path", "/fn\r\nX: y"),
        ("app", "app\r\nX: y"),
        ("image", "iron/hello\n"),
    ] {
        let mut j = job("ctl", "@daily");
        j["function"][field] = value.into();
        expect(
            &send(&node, "POST", "/v1/cronjobs", j.to_string().as_bytes()),
            422,
            "invalid_job",
            &format!("function.{field}"),
        );
    }
    let mut long = job("long", "@daily");
    long["function"]["path"] = format!("/{}", "p".repeat(100_000)).into();
    expect(
        &send(&node, "POST", "/v1/cronjobs", long.to_string().as_bytes()),
        422,
        "invalid_job",
        "over the limit",
    );

    // Duplicate keys.
    expect(
        &send(
            &node,
            "POST",
            "/v1/cronjobs",
            br#"{"id": "a", "id": "b", "frequency": "@daily", "function": {"app": "x", "path": "/f", "image": "i"}}"#,
        ),
        400,
        "malformed_json",
        "\"id\" is given twice",
    );
    assert_eq!(
        consul.get_json("/v1/kv/cronnode/jobs/?recurse"),
        Value::Null,
        "nothing refused reached Consul"
    );

    // The auth scheme in any case; HEAD where GET is.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {TOKEN}");
        let r = http::request(
            node.port,
            "GET",
            "/v1/cronjobs",
            &[("Authorization", &auth)],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
    let head = http::request(node.port, "HEAD", "/health", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(send(&node, "HEAD", "/v1/cronjobs", b"").status, 200);

    // Two deletes of one job: one answers 200, the other 404 (a few rounds of races).
    for round in 0..5 {
        let id = format!("race{round}");
        let r = send(
            &node,
            "POST",
            "/v1/cronjobs",
            job(&id, "@daily").to_string().as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let port = node.port;
        let statuses: Vec<u16> = (0..6)
            .map(|_| {
                let path = format!("/v1/cronjobs/{id}");
                std::thread::spawn(move || {
                    let auth = format!("Bearer {TOKEN}");
                    http::request(port, "DELETE", &path, &[("Authorization", &auth)], b"")
                        .unwrap()
                        .status
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        // One delete wins: 200 when the leader confirmed it, 202 when none did in time.
        let won = |s: &u16| *s == 200 || *s == 202;
        assert_eq!(
            statuses.iter().filter(|s| won(s)).count(),
            1,
            "{statuses:?}"
        );
        assert!(statuses.iter().all(|s| won(s) || *s == 404), "{statuses:?}");
    }

    // A job edited by hand into an invalid state: shown as invalid, paused no, deleted yes.
    let key = format!(
        "cronnode/jobs/{:02x}/handmade",
        consul_lock::shard_of("handmade")
    );
    let r = consul_put(
        &consul,
        &format!("/v1/kv/{key}"),
        br#"{"id": "handmade", "frequency": "nope"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    expect(
        &send(&node, "GET", "/v1/cronjobs/handmade", b""),
        409,
        "stored_invalid",
        &key,
    );
    expect(
        &send(&node, "POST", "/v1/cronjobs/handmade/pause", b""),
        409,
        "stored_invalid",
        "delete it",
    );
    let (code, out, err) = node.cli(Some(TOKEN), &["jobs", "rm", "handmade"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(consul.get_json(&format!("/v1/kv/{key}")), Value::Null);
    expect(
        &send(&node, "DELETE", "/v1/cronjobs/handmade", b""),
        404,
        "not_found",
        "handmade",
    );

    // The CLI: an endless file is refused at the API's limit; one bad file, one exit code.
    let (code, _, err) = node.cli(Some(TOKEN), &["jobs", "add", "/dev/zero"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("error:") && err.contains("larger than"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("not-json", "nope".to_string()),
        (
            "no-frequency",
            r#"{"id": "x", "function": {"app": "a", "path": "/f"}}"#.to_string(),
        ),
        ("bad-path", {
            let mut j = job("badpath", "@daily");
            j["function"]["path"] = "/a b".into();
            j.to_string()
        }),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let file = file.to_str().unwrap();
        let (add, _, add_err) = node.cli(Some(TOKEN), &["jobs", "add", file]);
        let (put, _, put_err) = node.cli(Some(TOKEN), &["jobs", "put", file]);
        assert_eq!(add, Some(2), "{name}: add: {add_err}");
        assert_eq!(put, Some(2), "{name}: put: {put_err}");
        assert_eq!(add_err.lines().count(), 1, "{add_err}");
        assert_eq!(put_err.lines().count(), 1, "{put_err}");
    }
}

#[test]
fn a_redis_url_the_client_cannot_read_stops_start_up_with_64() {
    for bad in ["redis://h:notaport", "unix:///run/redis.sock"] {
        let out = Command::new(env!("CARGO_BIN_EXE_cronnode"))
            .args(["run", "--redis", bad])
            .env_remove("CRONNODE_CONFIG")
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--redis"), "{err}");
    }
}

/// A server that counts the connections it gets and answers none: where a forged lock value
/// points.
struct Decoy {
    port: u16,
    hits: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<String>>,
}

impl Decoy {
    fn start() -> Decoy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(String::new()));
        let (h, s) = (hits.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                h.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 4096];
                if let Ok(n) = stream.read(&mut buf) {
                    s.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Decoy { port, hits, seen }
    }
}

fn leader_of(node: &Node) -> String {
    wait_for("a leader", Duration::from_secs(30), || {
        let r = send(node, "GET", "/v1/leader", b"");
        (r.status == 200)
            .then(|| r.json()["leader"]["node"].as_str().map(str::to_string))
            .flatten()
    })
}

#[test]
fn a_forged_lock_value_receives_no_token() {
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let env_token = [("CRONNODE_API_TOKEN", TOKEN)];
    let a = Node::start_env("a", &consul, &redis.url(), &[], &env_token);
    let b = Node::start_env("b", &consul, &redis.url(), &[], &env_token);
    let leader = leader_of(&a);
    let follower = if leader == "a" { &b } else { &a };
    // The leader's instance carries the `leader` tag once its check loop moved it.
    wait_for("the leader tag", Duration::from_secs(30), || {
        let nodes = send(follower, "GET", "/v1/nodes", b"").json();
        nodes["nodes"]
            .as_array()?
            .iter()
            .any(|n| n["leader"] == true && n["node"] == leader.as_str())
            .then_some(())
    });
    let r = send(
        follower,
        "POST",
        "/v1/cronjobs",
        job("fwd", "@daily").to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // No token on the command line: no warning.
    assert!(
        !a.log().contains("given on the command line"),
        "{}",
        a.log()
    );

    // Anyone with KV write rewrites the lock value to name their own server (a `?` too).
    let decoy = Decoy::start();
    let current = consul.get_json("/v1/kv/cronnode/leader");
    assert!(current.is_array(), "{current}");
    for forged in [
        json!({"node": "evil", "api_addr": format!("127.0.0.1:{}", decoy.port), "pid": 1, "version": "x"}),
        json!({"node": leader, "api_addr": format!("127.0.0.1:{}/steal?", decoy.port), "pid": 1, "version": "x"}),
    ] {
        let r = consul_put(
            &consul,
            "/v1/kv/cronnode/leader",
            forged.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        // The run still reaches the real leader, through the address its registered instance
        // advertises.
        let r = send(follower, "POST", "/v1/cronjobs/fwd/run", b"");
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.json()["leader_node"], leader.as_str());
        let r = send(follower, "POST", "/v1/leader/fence/reset", b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        decoy.hits.load(Ordering::SeqCst),
        0,
        "the decoy received: {}",
        decoy.seen.lock().unwrap()
    );
    assert!(!decoy.seen.lock().unwrap().contains(TOKEN));
}

#[test]
fn a_lock_held_by_another_client_is_a_foreign_holder() {
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    // Another lock client of the same key (as `consul lock` would be) holds it first.
    let session = consul_put(
        &consul,
        "/v1/session/create",
        br#"{"Name": "other tool", "TTL": "86400s"}"#,
    );
    assert_eq!(session.status, 200, "{}", session.text());
    let sid = session.json()["ID"].as_str().unwrap().to_string();
    let r = consul_put(
        &consul,
        &format!("/v1/kv/cronnode/leader?acquire={sid}"),
        b"not json",
    );
    assert_eq!(r.text().trim(), "true");

    let node = Node::start("solo", &consul, &redis.url(), &["--api-token", TOKEN]);
    let r = send(
        &node,
        "POST",
        "/v1/cronjobs",
        job("blocked", "@daily").to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let leader = send(&node, "GET", "/v1/leader", b"");
    assert_eq!(leader.status, 200, "{}", leader.text());
    let v = leader.json();
    assert_eq!(v["leader"]["foreign"], true, "{v}");
    assert_eq!(v["leader"]["session"], sid.as_str(), "{v}");
    expect(
        &send(&node, "POST", "/v1/cronjobs/blocked/run", b""),
        503,
        "no_leader",
        "foreign",
    );
}

#[test]
fn nodes_that_disagree_on_the_token_are_flagged() {
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let with = Node::start_env(
        "with",
        &consul,
        &redis.url(),
        &[],
        &[("CRONNODE_API_TOKEN", TOKEN)],
    );
    let without = Node::start("without", &consul, &redis.url(), &[]);
    let nodes = wait_for("both nodes registered", Duration::from_secs(30), || {
        let v = send(&with, "GET", "/v1/nodes", b"").json();
        (v["nodes"].as_array()?.len() == 2).then_some(v)
    });
    let by_name = |n: &str| {
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["node"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("with")["api_token_required"], true, "{nodes}");
    assert_eq!(by_name("without")["api_token_required"], false, "{nodes}");
    let warning = nodes["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("without"), "{nodes}");
    let (code, out, err) = with.cli(Some(TOKEN), &["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("WARNING") && out.contains("without"), "{out}");
    drop(without);
}
