//! A small HTTP client of cronnode's own API: used by the CLI (`jobs`, `status`, `fence`) and by
//! a node that forwards a manual run or a fence reset to the leader.
//!
//! It speaks plain HTTP/1.1 with JSON bodies, sends the bearer token when one is set, and turns
//! the API's error body `{"error":{"code","message"}}` into [`ClientError::Api`]. It knows no
//! routes: callers name them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (a page of 10,000 jobs is a few MB): a server that sends more is cut
/// off instead of filling the memory.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// Why a request to the API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The command line named something unusable (a bad URL, an unreadable file).
    #[error("{0}")]
    BadInput(String),
    /// No answer (refused, timed out, reset).
    #[error("cannot reach the cronnode API at {url}: {cause}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// The API answered with an error.
    #[error("{status}: {message} ({code})")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The error body's `code`.
        code: String,
        /// The error body's `message`.
        message: String,
    },
    /// The answer was not the JSON expected.
    #[error("unexpected answer from {url}: {cause}")]
    Decode {
        /// The URL asked.
        url: String,
        /// What was wrong with it.
        cause: String,
    },
}

/// A client of one node's API.
#[derive(Clone)]
pub struct ApiClient {
    /// `http://host:port`, no trailing `/`.
    base: String,
    /// Sent as `Authorization: Bearer …` when set.
    token: Option<String>,
    /// How long one request may take.
    timeout: Duration,
    /// Largest answer read.
    answer_limit: usize,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish()
    }
}

/// A raw answer: status and body bytes.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

impl ApiClient {
    /// A client of the API at `base` (`http://host:port` or `host:port`).
    pub fn new(base: &str, token: Option<String>) -> Result<ApiClient, String> {
        let base = crate::config::normalize_http_addr(base)?;
        if base.starts_with("https://") {
            return Err(format!("{base}: https is not supported by the cronnode CLI; put a local proxy in front or use http"));
        }
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(ApiClient {
            base,
            token,
            timeout: REQUEST_TIMEOUT,
            answer_limit: MAX_ANSWER_BYTES,
            http,
        })
    }

    /// The same client with another request timeout and answer limit.
    pub fn with_limits(self, timeout: Duration, answer_limit: usize) -> ApiClient {
        ApiClient {
            timeout,
            answer_limit,
            ..self
        }
    }

    /// Sends one request and returns the raw answer, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        extra_headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        for (k, v) in extra_headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ClientError::BadInput(format!("{url}: {e}")))?;
        let unreachable = |cause: String| ClientError::Unreachable {
            url: url.clone(),
            cause,
        };
        let (timeout, limit) = (self.timeout, self.answer_limit);
        let answer = tokio::time::timeout(timeout, async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(RawResponse { status, body })
        })
        .await;
        match answer {
            Ok(r) => r,
            Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
        }
    }

    /// Sends a request and decodes a JSON answer; an error status becomes [`ClientError::Api`].
    pub async fn json(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{}", self.base, path_and_query);
        let raw = self.send(method, path_and_query, body, &[]).await?;
        let value: Option<Value> = if raw.body.is_empty() {
            None
        } else {
            serde_json::from_slice(&raw.body).ok()
        };
        if raw.status.is_success() {
            return value.ok_or_else(|| ClientError::Decode {
                url,
                cause: format!("status {} with a body that is not JSON", raw.status),
            });
        }
        let field = |k: &str| {
            value
                .as_ref()
                .and_then(|v| v.pointer(&format!("/error/{k}")))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Err(ClientError::Api {
            status: raw.status,
            code: field("code").unwrap_or_else(|| "unknown".into()),
            message: field("message")
                .unwrap_or_else(|| String::from_utf8_lossy(&raw.body).into_owned()),
        })
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
