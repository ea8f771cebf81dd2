//! `cronnode status`: the leader, the nodes and their health, the job count, the fence and the
//! queue depths, from one `GET /v1/status` of any node.

use clap::Args;
use hyper::Method;
use serde_json::Value;

use super::ApiArgs;

/// Arguments of `cronnode status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `cronnode status`; returns the exit status.
pub async fn run(args: &StatusArgs) -> i32 {
    let answer = match args.api.client() {
        Ok(c) => c.json(Method::GET, "/v1/status", None).await,
        Err(e) => Err(crate::client::ClientError::BadInput(e)),
    };
    let v = match answer {
        Ok(v) => v,
        Err(e) => return super::report_failure(&e),
    };
    if args.api.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    print!("{}", render(&v));
    0
}

fn s(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The text form of a `/v1/status` answer.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    match v.get("leader") {
        Some(l) if l.get("foreign").and_then(Value::as_bool) == Some(true) => {
            out.push_str(&format!(
                "leader:   none: the lock is held by a client that is not cronnode (session {}, token {})\n",
                s(l, "/session"),
                s(l, "/token")
            ))
        }
        Some(l) if !l.is_null() => out.push_str(&format!(
            "leader:   {} at {} since {} (token {})\n",
            s(l, "/node"),
            s(l, "/api_addr"),
            s(l, "/since"),
            s(l, "/token")
        )),
        _ => out.push_str("leader:   none (no node holds the lock)\n"),
    }
    out.push_str(&format!(
        "fence:    {}{}\n",
        s(v, "/fence/value"),
        if v.pointer("/fence/blocked").and_then(Value::as_bool) == Some(true) {
            format!(
                "  BLOCKED: the fence is above the leader's token {}; nothing is enqueued until `cronnode fence reset --yes` (see README, \"Consul rebuilt\")",
                s(v, "/fence/leader_token")
            )
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "jobs:     {} ({} paused, {} invalid)\n",
        s(v, "/jobs/count"),
        s(v, "/jobs/paused"),
        s(v, "/jobs/invalid")
    ));
    if let Some(n) = v
        .pointer("/route_missing/count")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    {
        out.push_str(&format!(
            "NOT FIRED: {n} job(s) whose IronFunctions app or route is missing (their slots are recorded as not fired; they catch up by policy when it is back):\n"
        ));
        for j in v
            .pointer("/route_missing/jobs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(
                "  {:<20} {}{}: {}\n",
                s(j, "/id"),
                s(j, "/app"),
                s(j, "/path"),
                s(j, "/message")
            ));
        }
    }
    if let Some(q) = v.get("queues").and_then(Value::as_object) {
        let depths: Vec<String> = q.iter().map(|(k, d)| format!("{k}={d}")).collect();
        out.push_str(&format!("queues:   {}\n", depths.join(" ")));
    }
    out.push_str("nodes:\n");
    if let Some(nodes) = v.get("nodes").and_then(Value::as_array) {
        for n in nodes {
            out.push_str(&format!(
                "  {:<20} {:<22} {:<9}{}\n",
                s(n, "/node"),
                s(n, "/api_addr"),
                s(n, "/status"),
                if n.get("leader").and_then(Value::as_bool) == Some(true) {
                    " leader"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(warnings) = v.get("warnings").and_then(Value::as_array) {
        for w in warnings.iter().filter_map(Value::as_str) {
            out.push_str(&format!("WARNING: {w}\n"));
        }
    }
    out
}
