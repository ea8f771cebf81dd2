//! Helpers shared by the integration tests: jobs, fires, a started server and a raw client.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use cron_core::{Fire, FireKind, Job, JobSpec};
use redis_queue::test_server::RedisServer;
use redis_queue::{Queue, QueueConfig, TaskSettings};

/// A validated job with this id and extra `function` fields merged in.
pub fn job(id: &str, function_extra: serde_json::Value) -> Arc<Job> {
    let mut function = serde_json::json!({
        "app": "myapp", "path": "/hello",
        "headers": ["Content-Type: application/json", "X-Trace-Id: abc"],
        "body": "{\"name\":\"Johnny\"}",
        "image": "iron/hello"
    });
    for (k, v) in function_extra.as_object().unwrap() {
        function[k] = v.clone();
    }
    let spec = serde_json::json!({"id": id, "function": function, "frequency": "* * * * *"});
    let spec = JobSpec::from_json(spec.to_string().as_bytes()).unwrap();
    Arc::new(spec.validate().unwrap())
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// The `n`-th minute slot of `job` after t0.
pub fn fire(job: &Arc<Job>, n: i64) -> (Arc<Job>, Fire) {
    let slot = t0() + chrono::Duration::minutes(n);
    let f = Fire::scheduled(job.spec.id.as_str().into(), slot, FireKind::Scheduled);
    (job.clone(), f)
}

pub fn settings() -> TaskSettings {
    TaskSettings {
        functions_url: "http://functions.test:8080/".into(),
        default_image: None,
        node: "node-a".into(),
        routes: None,
    }
}

pub async fn queue(server: &RedisServer) -> Queue {
    Queue::connect(QueueConfig::new(server.url()))
        .await
        .unwrap()
}

/// A plain connection for checking what is in Redis (not through the crate's API). Its
/// answers may take long on a loaded machine (a 20,000-task LRANGE): no short timeout.
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(120)));
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .unwrap()
}

/// The ids of the tasks in `queue`, in the order a runner's RPOP takes them (not consumed).
pub async fn queued_ids(conn: &mut redis::aio::MultiplexedConnection, queue: &str) -> Vec<String> {
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(queue)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    raw.iter()
        .rev()
        .map(|t| {
            let t: serde_json::Value = serde_json::from_str(t).unwrap();
            t["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Plays IronFunctions' Reserve: RPOP queue2, then queue1, then queue0; every task parsed.
pub async fn reserve_all(conn: &mut redis::aio::MultiplexedConnection) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let mut got = None;
        for q in ["queue2", "queue1", "queue0"] {
            let v: Option<String> = redis::cmd("RPOP").arg(q).query_async(conn).await.unwrap();
            if let Some(v) = v {
                got = Some(v);
                break;
            }
        }
        match got {
            Some(v) => out.push(serde_json::from_str(&v).unwrap()),
            None => return out,
        }
    }
}
