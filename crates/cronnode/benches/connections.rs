//! The API under a slow client: how long `/health` and an authorized `GET /v1/cronjobs` take
//! while 5,000 connections are held open a byte a second (goal: within 100 ms), against the
//! same requests with no such client. Measured from the outside on the release binary, with a
//! real redis-server and a consul-dev agent; the figures go to BENCHMARKS.md ("API
//! connections").
//!
//!     cargo bench -p cronnode --bench connections
//!
//! Run it on a quiet machine: every figure is a latency. The load average is printed.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/slow.rs"]
mod slow;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slow::{raise_open_files, SlowClients};

const TOKEN: &str = "bench-conn-secret";
const SLOW_CONNECTIONS: usize = 5_000;
/// Requests of each kind per phase, one every `PACE`.
const REQUESTS: usize = 300;
const PACE: Duration = Duration::from_millis(20);
const GOAL: Duration = Duration::from_millis(100);
const JOBS: usize = 100;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request on a new connection (`Connection: close`); status and latency.
fn request(port: u16, method: &str, path: &str, auth: bool, body: &str) -> (u16, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = if auth {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let took = start.elapsed();
    let status = String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, took)
}

struct Summary {
    p50: Duration,
    p99: Duration,
    max: Duration,
    within_goal: usize,
    failed: usize,
}

fn summarize(mut samples: Vec<(u16, Duration)>) -> Summary {
    let failed = samples.iter().filter(|(s, _)| *s != 200).count();
    samples.sort_by_key(|(_, d)| *d);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].1;
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
        within_goal: samples.iter().filter(|(_, d)| *d <= GOAL).count(),
        failed,
    }
}

fn measure(port: u16) -> (Summary, Summary) {
    let mut health = Vec::new();
    let mut list = Vec::new();
    for _ in 0..REQUESTS {
        health.push(request(port, "GET", "/health", false, ""));
        list.push(request(port, "GET", "/v1/cronjobs", true, ""));
        std::thread::sleep(PACE);
    }
    (summarize(health), summarize(list))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn row(what: &str, s: &Summary) {
    println!(
        "| {what} | {} | {} | {} | {}/{REQUESTS} | {} |",
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        s.within_goal,
        s.failed
    );
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test` of benches runs nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    raise_open_files(SLOW_CONNECTIONS as u64 + 1_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let consul = rt
        .block_on(consul_dev::DevAgent::start(consul_dev::DevConfig::default()))
        .unwrap();
    let redis = dev_harness::RedisServer::start().unwrap();
    let port = dev_harness::free_port().unwrap();
    let _node = Node(
        Command::new(env!("CARGO_BIN_EXE_cronnode"))
            .args([
                "run",
                "--node",
                "bench",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--consul", &consul.url(), "--redis", &redis.url()])
            .env("CRONNODE_API_TOKEN", TOKEN)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    dev_harness::wait_for("the node's API", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
            .filter(|_| request(port, "GET", "/health", false, "").0 == 200)
    });
    for i in 0..JOBS {
        let job = format!(
            r#"{{"id":"job-{i}","frequency":"@every 1h","function":{{"app":"bench","path":"/f","image":"iron/hello"}}}}"#
        );
        assert_eq!(request(port, "POST", "/v1/cronjobs", true, &job).0, 201);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (health_quiet, list_quiet) = measure(port);
    let slow = SlowClients::start(port, SLOW_CONNECTIONS);
    std::thread::sleep(Duration::from_secs(2));
    let (health_slow, list_slow) = measure(port);
    let stats = format!("{:?}", slow.stats);
    drop(slow);
    println!("load average before: {}", load.trim());
    println!("slow client: {stats}");
    println!("| request ({JOBS} jobs) | p50 | p99 | max | within 100 ms | failed |");
    println!("|---|---|---|---|---|---|");
    row("`/health`, no slow client", &health_quiet);
    row("`GET /v1/cronjobs`, no slow client", &list_quiet);
    row("`/health`, 5,000 slow connections", &health_slow);
    row("`GET /v1/cronjobs`, 5,000 slow connections", &list_slow);
    rt.block_on(consul.shutdown());
}
