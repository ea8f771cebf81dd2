//! End to end: `cronnode dev` — one process with the embedded Consul-compatible agent, a node,
//! and the example job firing every 5 seconds onto the Redis it was given.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{check_task, tasks_of, wait_for};
use dev_harness::RedisServer;

#[test]
fn dev_mode_runs_the_example_job_and_stops_on_sigterm() {
    let redis = RedisServer::start().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cronnode"))
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("REDIS_URL", redis.url())
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CRONNODE_API_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let api = wait_for("the printed API address", Duration::from_secs(60), || {
        while let Ok(line) = rx.try_recv() {
            printed.push(line);
        }
        printed.iter().find_map(|l| {
            l.trim()
                .strip_prefix("API:")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string)
        })
    });
    let all = printed.join("\n");
    assert!(all.contains("LRANGE queue0 0 -1"), "{all}");
    assert!(all.contains("Consul API:"), "{all}");

    let tasks = wait_for("two example fires", Duration::from_secs(30), || {
        let t = tasks_of(&redis.url(), "example");
        (t.len() >= 2).then_some(t)
    });
    for t in &tasks {
        check_task(t);
        assert_eq!(t["image"], "iron/hello");
    }
    let port: u16 = api.rsplit(':').next().unwrap().parse().unwrap();
    let r = common::http::get(port, "/v1/cronjobs/example", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_for("dev mode to exit", Duration::from_secs(20), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
}
