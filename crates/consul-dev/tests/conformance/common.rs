//! The harness: a target (an in-process dev agent, or the agent at `CONSUL_CONFORMANCE_ADDR`)
//! and a plain HTTP client (hyper's, not the project's Consul client, so that the suite checks
//! the wire and nothing else).
//!
//! Against an external agent, tests must not assume node names, absolute indexes or an empty
//! store: each test works under its own random key prefix and reads the node name from
//! `/v1/agent/self`. `CONSUL_CONFORMANCE_TOKEN`, when set, is sent with every request.

use std::time::Duration;

use bytes::Bytes;
use consul_dev::{DevAgent, DevConfig};
use http_body_util::{BodyExt as _, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The longest any single request may take (blocking queries pass their own wait).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An answer.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn index(&self) -> u64 {
        self.headers
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Consul-Index in {:?}", self.headers))
    }
    #[track_caller]
    pub fn ok(self) -> Resp {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text());
        self
    }
}

/// What the tests talk to.
pub struct Target {
    pub base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<String>,
    /// Present when the agent is in-process (kept alive for the test's duration).
    pub agent: Option<DevAgent>,
}

/// Whether the suite runs against an external agent.
pub fn external() -> Option<String> {
    std::env::var("CONSUL_CONFORMANCE_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a.starts_with("http") {
                a.trim_end_matches('/').to_string()
            } else {
                format!("http://{a}")
            }
        })
}

/// Prints why a test does not apply to an external agent; returns true when it should skip.
pub fn skip_external(reason: &str) -> bool {
    if external().is_some() {
        eprintln!("skipped against an external agent: {reason}");
        return true;
    }
    false
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build(conn)
}

impl Target {
    /// The default target: an in-process agent on a free port, or the external one.
    pub async fn start() -> Target {
        Target::start_with(DevConfig::default()).await
    }

    /// An in-process agent with `config` (or the external one, ignoring `config`).
    pub async fn start_with(config: DevConfig) -> Target {
        if let Some(base) = external() {
            return Target {
                base,
                client: client(),
                token: std::env::var("CONSUL_CONFORMANCE_TOKEN").ok(),
                agent: None,
            };
        }
        let agent = DevAgent::start(config).await.expect("agent starts");
        Target {
            base: agent.url(),
            client: client(),
            token: None,
            agent: Some(agent),
        }
    }

    /// Same agent, other token (None: anonymous).
    pub fn with_token(&self, token: Option<&str>) -> Target {
        Target {
            base: self.base.clone(),
            client: self.client.clone(),
            token: token.map(str::to_string),
            agent: None,
        }
    }

    pub async fn req(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Resp {
        self.req_headers(method, path, body, &[]).await
    }

    pub async fn req_headers(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            b = b.header("X-Consul-Token", t);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).expect("request");
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
            .await
            .expect("body timed out")
            .expect("body failed")
            .to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, Bytes::new()).await
    }
    pub async fn put(&self, path: &str, body: impl Into<Bytes>) -> Resp {
        self.req(Method::PUT, path, body).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.req(Method::DELETE, path, Bytes::new()).await
    }

    /// The agent's node name.
    pub async fn node(&self) -> String {
        let v = self.get("/v1/agent/self").await.ok().json();
        v["Config"]["NodeName"]
            .as_str()
            .expect("NodeName")
            .to_string()
    }

    /// Creates a session from a JSON body; returns its ID.
    pub async fn session(&self, body: &str) -> String {
        let r = self.put("/v1/session/create", body.to_string()).await.ok();
        r.json()["ID"].as_str().expect("ID").to_string()
    }

    /// The single entry at `key` (panics unless 200).
    pub async fn entry(&self, key: &str) -> Value {
        let v = self.get(&format!("/v1/kv/{key}")).await.ok().json();
        v[0].clone()
    }

    /// Fault injection (in-process only).
    pub async fn dev(&self, path: &str) {
        self.put(&format!("/_dev/{path}"), Bytes::new()).await.ok();
    }
}

/// A fresh key prefix, so tests never collide on a shared external agent.
pub fn prefix() -> String {
    format!("conformance/{}", uuid::Uuid::new_v4().simple())
}

/// Decodes a KV `Value`.
pub fn b64(v: &Value) -> Vec<u8> {
    use base64::Engine as _;
    match v.as_str() {
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("base64"),
        None => Vec::new(),
    }
}

pub fn enc(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Polls `f` until it returns Some, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
