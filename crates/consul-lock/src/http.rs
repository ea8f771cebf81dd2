//! The Consul client handle and its one raw HTTP call.
//!
//! [`Consul`] holds one hyper connection pool (rustls for https, with the CA of
//! `CONSUL_CACERT`), shared by an `rs_consul::Consul` and by [`Consul::call`], the thin hyper
//! call this crate uses where rs-consul cannot say what we need:
//! - it reads no `X-Consul-Index` from a 404 (a missing key or an empty prefix cannot be
//!   watched), and reads no `X-Consul-KnownLeader`;
//! - it decodes every KV value as UTF-8, so one hand-written binary entry would fail a whole
//!   recursive read instead of being reported alone;
//! - it sets no HTTP timeout on blocking reads (we need one above wait × 17/16);
//! - it has no sessions, agent checks, transactions (the txn `lock` verb returns the fencing
//!   token in the same answer), and its errors do not name the endpoint;
//! - its delete always sends `?recurse=<bool>`, which Consul reads as a tree delete (deleting
//!   job `a` would delete job `ab`), so deletes go through [`Consul::call`] too.
//!
//! rs-consul is used for the one KV write it does well, `?release` with flags, always under a
//! deadline and with its errors mapped to [`ConsulError`] naming the endpoint.
//!
//! Must not: log or return the ACL token; retry (callers own their retry policy).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::ConsulConfig;
use crate::error::ConsulError;

/// Deadline of a request that does not block.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of opening a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest answer body read into memory (Consul's KV values are at most 512 KiB; a recursive
/// read of the jobs prefix can hold many).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

type HttpsClient = rs_consul::HttpsClient;

/// A Consul client: cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct Consul {
    inner: Arc<Inner>,
}

struct Inner {
    /// `http(s)://host:port`, no trailing slash.
    base: String,
    /// Sent as `X-Consul-Token` when set.
    token: Option<String>,
    /// The pool both clients share.
    http: HttpsClient,
    /// rs-consul over the same pool, for the KV writes it expresses.
    rs: rs_consul::Consul,
}

impl std::fmt::Debug for Consul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Consul")
            .field("base", &self.inner.base)
            .field("token", &self.inner.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// One answer from Consul, any status.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `X-Consul-Index`, 0 when absent.
    pub index: u64,
    /// `X-Consul-Results-Filtered-By-ACLs: true`: the token could not read part of a list.
    pub filtered_by_acls: bool,
    /// The body.
    pub body: Bytes,
}

impl Consul {
    /// Builds a client (checks the address, loads the CA file); no request is made.
    pub fn new(cfg: ConsulConfig) -> Result<Consul, ConsulError> {
        let base = cfg.base_url()?;
        let tls = match &cfg.ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| ConsulError::Config(format!("CA file {}: {e}", path.display())))?;
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config(&pem)?)
            }
            None => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.set_nodelay(true);
        let connector = tls.https_or_http().enable_http1().wrap_connector(tcp);
        let http: HttpsClient = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        let rs = rs_consul::Consul::new_with_client(
            rs_consul::Config {
                address: base.clone(),
                token: cfg.token.clone(),
                ..Default::default()
            },
            http.clone(),
        );
        Ok(Consul {
            inner: Arc::new(Inner {
                base,
                token: cfg.token,
                http,
                rs,
            }),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    pub(crate) fn rs(&self) -> &rs_consul::Consul {
        &self.inner.rs
    }

    /// Sends one request and reads the whole answer, whatever its status, within `timeout`.
    /// `path_and_query` starts with `/v1/`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, ConsulError> {
        let endpoint = endpoint(&method, path_and_query);
        let body: BoxBody<Bytes, Infallible> = match body {
            Some(b) => BoxBody::new(Full::new(Bytes::from(b))),
            None => BoxBody::new(Empty::new()),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.inner.base, path_and_query));
        if let Some(token) = &self.inner.token {
            req = req.header("X-Consul-Token", token);
        }
        let req = req
            .body(body)
            .map_err(|e| ConsulError::Config(format!("{endpoint}: {e}")))?;
        let exchange = async {
            let resp =
                self.inner
                    .http
                    .request(req)
                    .await
                    .map_err(|e| ConsulError::Unreachable {
                        endpoint: endpoint.clone(),
                        message: error_chain(&e),
                    })?;
            let status = resp.status().as_u16();
            let index = resp
                .headers()
                .get("x-consul-index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let filtered_by_acls = resp
                .headers()
                .get("x-consul-results-filtered-by-acls")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| ConsulError::Unreachable {
                    endpoint: endpoint.clone(),
                    message: format!("reading the answer: {e}"),
                })?
                .to_bytes();
            Ok(Answer {
                status,
                index,
                filtered_by_acls,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(ConsulError::Timeout {
                endpoint,
                after: timeout,
            }),
        }
    }

    /// Like [`Consul::call`], but any status other than 200 is an error.
    pub(crate) async fn call_ok(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, ConsulError> {
        let what = endpoint(&method, path_and_query);
        let answer = self.call(method, path_and_query, body, timeout).await?;
        if answer.status != 200 {
            return Err(ConsulError::from_status(&what, answer.status, &answer.body));
        }
        Ok(answer)
    }
}

/// `METHOD /path` without the query (which may carry session ids, never the token, but is
/// noise in a message).
pub(crate) fn endpoint(method: &Method, path_and_query: &str) -> String {
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    format!("{method} {path}")
}

/// Maps an rs-consul error to ours, naming the endpoint.
pub(crate) fn from_rs(endpoint: &str, e: rs_consul::ConsulError) -> ConsulError {
    match e {
        rs_consul::ConsulError::UnexpectedResponseCode(status, body) => ConsulError::from_status(
            endpoint,
            status.as_u16(),
            body.unwrap_or_default().as_bytes(),
        ),
        rs_consul::ConsulError::ResponseError(e) => ConsulError::Unreachable {
            endpoint: endpoint.to_string(),
            message: error_chain(&e),
        },
        rs_consul::ConsulError::TimeoutExceeded(after) => ConsulError::Timeout {
            endpoint: endpoint.to_string(),
            after,
        },
        other => ConsulError::Decode {
            endpoint: endpoint.to_string(),
            message: other.to_string(),
        },
    }
}

/// Runs an rs-consul call under [`REQUEST_TIMEOUT`], mapping its errors.
pub(crate) async fn rs_call<T>(
    endpoint: &str,
    fut: impl std::future::Future<Output = Result<T, rs_consul::ConsulError>>,
) -> Result<T, ConsulError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| from_rs(endpoint, e)),
        Err(_) => Err(ConsulError::Timeout {
            endpoint: endpoint.to_string(),
            after: REQUEST_TIMEOUT,
        }),
    }
}

/// The error and its sources on one line ("connection refused" hides in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn tls_config(pem: &[u8]) -> Result<rustls::ClientConfig, ConsulError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| ConsulError::Config(format!("CA file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ConsulError::Config(format!("CA file: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ConsulError::Config(
            "CA file: no PEM certificate in it".to_string(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConsulError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Percent-encodes a query parameter value (session ids and indexes need none, but names and
/// notes might).
pub(crate) fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_drops_query() {
        assert_eq!(
            endpoint(&Method::PUT, "/v1/kv/a/b?acquire=x&flags=1"),
            "PUT /v1/kv/a/b"
        );
    }

    #[test]
    fn bad_ca_file_is_a_config_error() {
        assert!(matches!(
            tls_config(b"nothing"),
            Err(ConsulError::Config(_))
        ));
        let cfg = ConsulConfig::new("https://h:1").with_ca_cert("/nonexistent/ca.pem");
        let e = Consul::new(cfg).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[tokio::test]
    async fn https_client_builds_with_web_pki_roots() {
        let consul =
            Consul::new(ConsulConfig::new("consul.internal:8501").with_token("t")).unwrap();
        assert_eq!(consul.base_url(), "http://consul.internal:8501");
        let mut cfg = ConsulConfig::new("consul.internal:8501");
        cfg.ssl = true;
        let consul = Consul::new(cfg).unwrap();
        assert_eq!(consul.base_url(), "https://consul.internal:8501");
        // The token never shows in debug output.
        let consul = Consul::new(ConsulConfig::new("h:1").with_token("s3cret")).unwrap();
        assert!(!format!("{consul:?}").contains("s3cret"));
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query("a b/c"), "a%20b%2Fc");
    }
}
