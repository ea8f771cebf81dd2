//! A small HTTP/1.1 client (hyper-util's pooled client) for the Consul and cronnode APIs.
//!
//! Owns nothing but the connection pool; callers build URLs and bodies. Must not retry on its
//! own: a benchmark wants to see failures.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// A cheap-to-clone pooled client.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// A new pool.
    pub fn new() -> Http {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        Http {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(512)
                .build(conn),
        }
    }

    /// One request; the status and the whole body.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut req = Request::builder().method(method.clone()).uri(url);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// GET, expecting 200.
    pub async fn get(&self, url: &str) -> Result<Bytes> {
        let (st, body) = self.call(Method::GET, url, None).await?;
        if !st.is_success() {
            anyhow::bail!("GET {url}: {st}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }
}
