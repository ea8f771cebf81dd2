//! A small HTTP/1.1 JSON client for the harness: Consul's API, the dev agent's `/_dev/` faults
//! and cronnode's HTTP API.
//!
//! It owns nothing but the request/response plumbing and a per-request timeout, so that a
//! paused or refusing peer can never hang the harness. It must not retry: the caller decides,
//! because a fault in progress is exactly when a request is expected to fail.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one request may take before the harness treats the peer as unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A cheap-to-clone client.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A response: the status and the raw body.
#[derive(Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body as received.
    pub body: Bytes,
}

impl Response {
    /// The body parsed as JSON (`Null` when empty).
    pub fn json(&self) -> Result<Value> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "response is not JSON: {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Fails unless the status is 2xx, naming the status and the body.
    pub fn ok(self) -> Result<Response> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(anyhow!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body).trim()
            ))
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// A client with no pooling surprises: idle connections are dropped quickly, because the
    /// harness kills the servers they point to.
    pub fn new() -> Http {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(0)
            .build_http();
        Http { client }
    }

    /// Sends one request with an optional body, with [`REQUEST_TIMEOUT`].
    pub async fn send(&self, method: Method, url: &str, body: Option<Vec<u8>>) -> Result<Response> {
        let request = Request::builder()
            .method(method.clone())
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .with_context(|| format!("bad request {method} {url}"))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Response { status, body })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("{method} {url}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{method} {url}"))
    }

    /// GET.
    pub async fn get(&self, url: &str) -> Result<Response> {
        self.send(Method::GET, url, None).await
    }

    /// PUT with an empty body.
    pub async fn put(&self, url: &str) -> Result<Response> {
        self.send(Method::PUT, url, None).await
    }

    /// POST a JSON value.
    pub async fn post_json(&self, url: &str, value: &Value) -> Result<Response> {
        self.send(Method::POST, url, Some(serde_json::to_vec(value)?))
            .await
    }
}
