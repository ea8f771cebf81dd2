//! `cronnode dev`: the whole system in one process, for trying cronnode out.
//!
//! - Consul: the consul-dev agent in-process on a free loopback port, unless `CONSUL_HTTP_ADDR`
//!   (or `--consul`) names a real one. It keeps no data: restarting dev mode is a fresh Consul,
//!   which is exactly the "Consul rebuilt" case for a Redis that kept its fence — so when dev
//!   mode starts its own Consul it also uses a fresh Redis key prefix per run unless
//!   `--redis-prefix` is given (see [`dev_redis_prefix`]).
//! - Redis: `REDIS_URL` (or `--redis`, default redis-queue's `redis://127.0.0.1:6379/`) when
//!   something answers there; otherwise a `redis-server` child on a free loopback port
//!   (dev-harness's, as in the tests; when none is installed, exit saying how to install one).
//! - A node (`crate::daemon::run_on`) with the API on `--listen` (default 127.0.0.1:8765).
//! - An example job every 5 seconds unless `--no-example`.
//!
//! The settings are those of `run` (node name `dev` unless given), validated once before
//! anything starts; the agent's and the child's addresses then replace the defaults. It prints
//! where everything is. Ctrl-C stops it all. Not for production: one node, no ACLs.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde_json::json;
use tokio::net::TcpListener;

use crate::cli::{DevArgs, EXIT_BAD_CONFIG, EXIT_FAILURE};
use crate::client::ApiClient;
use crate::config::{RawConfig, RedisUrl};

/// The example job's id.
pub const EXAMPLE_JOB_ID: &str = "example";
/// How long dev mode waits for the node's API to answer.
const API_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The example job: every 5 seconds, an IronFunctions hello-world call.
pub fn example_job() -> serde_json::Value {
    json!({
        "id": EXAMPLE_JOB_ID,
        "function": {
            "app": "myapp",
            "path": "/hello",
            "image": "iron/hello",
            "headers": ["Content-Type: application/json"],
            "body": "{\"name\":\"cronnode\"}"
        },
        "frequency": "@every 5s",
        "description": "cronnode dev mode example: remove it with `cronnode jobs rm example`"
    })
}

/// Dev mode's own defaults, under every source of settings.
fn dev_defaults() -> RawConfig {
    RawConfig {
        node: Some("dev".into()),
        // No IronFunctions API in dev mode unless one is named: the example job names its image.
        resolve_routes: Some("false".into()),
        ..RawConfig::default()
    }
}

/// Runs dev mode; returns the exit status.
pub async fn run(args: DevArgs) -> i32 {
    let raw = match args.settings.raw() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    let consul_given = raw.consul_addr.is_some();
    let redis_prefix_given = raw.redis_prefix.is_some();
    // One validation, before anything starts: a bad setting exits 64 at once.
    let mut config = match raw.or(dev_defaults()).validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    crate::daemon::init_logs(config.log_format);

    // Consul: a real one when named, else the embedded agent.
    let mut agent = None;
    if !consul_given {
        match consul_dev::DevAgent::start(consul_dev::DevConfig {
            node: "cronnode-dev".into(),
            ..Default::default()
        })
        .await
        {
            Ok(a) => {
                config.consul_addr = a.url();
                agent = Some(a);
            }
            Err(e) => {
                eprintln!("error: cannot start the embedded Consul-compatible agent: {e}");
                return EXIT_FAILURE;
            }
        }
    }

    // Redis: what answers at REDIS_URL, else our own child.
    let mut redis_child = None;
    if !redis_answers(config.redis_url.expose()).await {
        match start_redis().await {
            Ok(child) => {
                config.redis_url = RedisUrl::new(child.url());
                redis_child = Some(child);
            }
            Err(msg) => {
                eprintln!("error: no Redis answers at {} and {msg}", config.redis_url);
                return EXIT_FAILURE;
            }
        }
    }
    // With a fresh embedded Consul every run, a shared Redis would hold the fence of the
    // previous run (above the new agent's indexes): start clean instead.
    if !redis_prefix_given && agent.is_some() && redis_child.is_none() {
        config.redis_prefix = dev_redis_prefix();
    }

    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {e} (another cronnode running? use --listen 127.0.0.1:0)",
                config.listen
            );
            return EXIT_FAILURE;
        }
    };
    let api_addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.advertise());
    config.advertise = Some(api_addr.clone());
    let consul_url = config.consul_addr.clone();
    let redis_url = config.redis_url.clone();
    let api_token = config.api_token.as_ref().map(|t| t.expose().to_string());
    let queue_prefix = config.queue_prefix.clone();
    let node = tokio::spawn(crate::daemon::run_on(
        config,
        listener,
        crate::daemon::shutdown_signal(),
    ));

    let client = match ApiClient::new(&api_addr, api_token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILURE;
        }
    };
    if !wait_for_api(&client).await {
        eprintln!("error: the node's API did not answer within {API_START_TIMEOUT:?}");
    } else if !args.no_example {
        let body = Bytes::from(example_job().to_string());
        match client.json(Method::POST, "/v1/cronjobs", Some(body)).await {
            Ok(_) => {}
            Err(crate::client::ClientError::Api { status, .. }) if status == 409 => {}
            Err(e) => eprintln!("warning: cannot create the example job: {e}"),
        }
    }

    let redis_port = redis_child
        .as_ref()
        .map(|c| c.port().to_string())
        .unwrap_or_else(|| port_of(redis_url.expose()));
    println!();
    println!("cronnode dev mode is running (Ctrl-C stops it)");
    println!("  API:          http://{api_addr}   (try: curl -s http://{api_addr}/v1/cronjobs)");
    println!("  Console:      http://{api_addr}/ui/");
    println!("  CLI:          CRONNODE_API=http://{api_addr} cronnode status");
    println!(
        "  Consul API:   {consul_url}   ({}; try: curl -s {consul_url}/v1/health/service/cronnode)",
        if agent.is_some() {
            "embedded, Consul-compatible, in memory"
        } else {
            "external"
        }
    );
    println!(
        "  Redis:        {}   ({})",
        redis_url,
        if redis_child.is_some() {
            "a redis-server child of this process"
        } else {
            "external"
        }
    );
    println!("  Watch queue:  redis-cli -p {redis_port} LRANGE {queue_prefix}queue0 0 -1");
    if !args.no_example {
        println!("  Example job:  {EXAMPLE_JOB_ID} (every 5 s): cronnode jobs fires {EXAMPLE_JOB_ID} --api http://{api_addr}");
    }
    println!();

    let result = node.await;
    drop(redis_child);
    if let Some(a) = agent {
        a.shutdown().await;
    }
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// A Redis key prefix of its own for a dev run with a fresh embedded Consul.
pub fn dev_redis_prefix() -> String {
    format!("{{cronnode-dev-{}}}:", std::process::id())
}

fn port_of(url: &str) -> String {
    url.rsplit(':')
        .next()
        // The digits after the last ':' (a URL may go on with `/<db>`).
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "6379".into())
}

async fn redis_answers(url: &str) -> bool {
    let cfg = redis_queue::QueueConfig {
        url: url.to_string(),
        ..Default::default()
    };
    let attempt = async {
        let q = redis_queue::Queue::connect(cfg).await.ok()?;
        q.ping().await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(_))
    )
}

/// A redis-server child of this process (dev-harness's), killed when dropped.
async fn start_redis() -> Result<dev_harness::RedisServer, String> {
    let started = tokio::task::spawn_blocking(dev_harness::RedisServer::start).await;
    match started {
        Ok(Ok(server)) => Ok(server),
        Ok(Err(dev_harness::RedisServerError::Spawn(e)))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            Err("redis-server is not installed. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; \
                 Fedora: `sudo dnf install redis`; macOS: `brew install redis`), or run `scripts/dev`, \
                 which installs it, or set REDIS_URL to a Redis you run"
                .to_string())
        }
        Ok(Err(e)) => Err(format!("redis-server could not be started: {e}")),
        Err(e) => Err(format!("redis-server could not be started: {e}")),
    }
}

async fn wait_for_api(client: &ApiClient) -> bool {
    dev_harness::poll_async("the node's API", API_START_TIMEOUT, || async {
        let answer = client.send(Method::GET, "/ready", None, &[]).await;
        answer.ok().filter(|r| r.status.is_success())
    })
    .await
    .is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_port_of_a_redis_url_with_a_database() {
        assert_eq!(super::port_of("redis://127.0.0.1:6431/0"), "6431");
        assert_eq!(super::port_of("redis://:pw@h:7000"), "7000");
        assert_eq!(super::port_of("redis://h"), "6379");
    }
}
