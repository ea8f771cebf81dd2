//! A reader of the IronFunctions API: `GET /v1/apps/{app}` and
//! `GET /v1/apps/{app}/routes/{path}`, the two endpoints a task needs (IronFunctions'
//! `docs/swagger.yml`; its answers are `{"message", "app": {...}}`, `{"message", "route": {...}}`,
//! and 404 `{"error": {"message"}}` for an app or a route it does not have).
//!
//! The peer is not trusted: every request has a deadline (connection and whole answer
//! included) and an answer is read up to [`MAX_ANSWER_BYTES`]; anything else than those shapes
//! is [`FunctionsError::Unreachable`], never a panic. It owns no cache and no retry: the
//! resolver (`resolver.rs`) and the API's validation decide what an answer means to them.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::{Method, StatusCode};
use redis_queue::RouteTask;
use serde::Deserialize;

use crate::client::ApiClient;

/// How long one request may take, connection and answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read: an app's or a route's config is small; a peer that sends more is cut
/// off instead of filling the memory.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why a route could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionsError {
    /// IronFunctions answered that it has no such app or route (its 404's message).
    #[error("IronFunctions at {url} has no app {app:?}{}: {message}", route_text(.path))]
    Missing {
        /// The base URL asked.
        url: String,
        /// The app.
        app: String,
        /// The route path, when the app exists and the route does not.
        path: Option<String>,
        /// IronFunctions' message ("App not found", "Route not found").
        message: String,
    },
    /// No usable answer: refused, timed out, a server error, or not the shape IronFunctions
    /// answers with.
    #[error("IronFunctions at {url} is unreachable: {cause}")]
    Unreachable {
        /// The base URL asked.
        url: String,
        /// What went wrong.
        cause: String,
    },
}

fn route_text(path: &Option<String>) -> String {
    path.as_ref()
        .map(|p| format!(" with a route {p:?}"))
        .unwrap_or_default()
}

/// A client of one IronFunctions API server.
#[derive(Clone, Debug)]
pub struct FunctionsClient {
    /// The base URL, as configured (`--functions-url`), for messages.
    url: String,
    http: ApiClient,
}

/// `GET /v1/apps/{app}`'s answer, as far as a task needs it.
#[derive(Deserialize)]
struct AppAnswer {
    app: AppBody,
}

#[derive(Deserialize)]
struct AppBody {
    /// `null` for an app created without config.
    #[serde(default)]
    config: Option<BTreeMap<String, String>>,
}

/// `GET /v1/apps/{app}/routes/{path}`'s answer, as far as a task needs it.
#[derive(Deserialize)]
struct RouteAnswer {
    route: RouteBody,
}

#[derive(Deserialize)]
struct RouteBody {
    image: String,
    #[serde(default)]
    config: Option<BTreeMap<String, String>>,
    /// Go's int32; a negative one (refused by IronFunctions' validation) counts as none.
    #[serde(default)]
    timeout: i64,
    #[serde(default)]
    idle_timeout: i64,
}

/// The 404 body: `{"error": {"message"}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

impl FunctionsClient {
    /// A client of the IronFunctions API at `url` (`http://host:port`).
    pub fn new(url: &str) -> Result<FunctionsClient, String> {
        let http = ApiClient::new(url, None)?.with_limits(REQUEST_TIMEOUT, MAX_ANSWER_BYTES);
        Ok(FunctionsClient {
            url: url.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The app's config (empty when it has none).
    pub async fn app_config(&self, app: &str) -> Result<BTreeMap<String, String>, FunctionsError> {
        let path = format!("/v1/apps/{}", crate::percent::encode(app));
        let answer: AppAnswer = self.get(&path, app, None).await?;
        Ok(answer.app.config.unwrap_or_default())
    }

    /// What a task takes from `app`'s route `path` and from the app's `app_config`.
    pub async fn route(
        &self,
        app: &str,
        path: &str,
        app_config: &BTreeMap<String, String>,
    ) -> Result<RouteTask, FunctionsError> {
        let encoded: Vec<String> = path.split('/').map(crate::percent::encode).collect();
        let url_path = format!(
            "/v1/apps/{}/routes{}",
            crate::percent::encode(app),
            encoded.join("/")
        );
        let answer: RouteAnswer = self.get(&url_path, app, Some(path)).await?;
        let r = answer.route;
        let secs = |t: i64| u32::try_from(t).unwrap_or(if t < 0 { 0 } else { u32::MAX });
        Ok(RouteTask::new(
            r.image,
            app_config.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            r.config
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            secs(r.timeout),
            secs(r.idle_timeout),
        ))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        app: &str,
        route: Option<&str>,
    ) -> Result<T, FunctionsError> {
        let unreachable = |cause: String| FunctionsError::Unreachable {
            url: self.url.clone(),
            cause,
        };
        let raw = self
            .http
            .send(Method::GET, path, None, &[])
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        match raw.status {
            StatusCode::OK => serde_json::from_slice(&raw.body)
                .map_err(|e| unreachable(format!("GET {path}: not IronFunctions' answer: {e}"))),
            StatusCode::NOT_FOUND => {
                let answer: ErrorAnswer = serde_json::from_slice(&raw.body).map_err(|_| {
                    unreachable(format!(
                        "GET {path}: 404 without IronFunctions' error body (is {} IronFunctions?)",
                        self.url
                    ))
                })?;
                // "App not found" comes for a route of a missing app too.
                let path = (answer.error.message != "App not found")
                    .then(|| route.map(str::to_string))
                    .flatten();
                Err(FunctionsError::Missing {
                    url: self.url.clone(),
                    app: app.to_string(),
                    path,
                    message: answer.error.message,
                })
            }
            other => Err(unreachable(format!("GET {path}: status {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;
    use dev_harness::{FunctionsApi, Route};

    #[tokio::test]
    async fn reads_apps_and_routes_and_names_what_is_missing() {
        let f = FunctionsApi::start().unwrap();
        f.put_app("myapp", Some(&[("db-url", "x")]));
        let mut r = Route::new("acme/hello:7");
        r.timeout = 45;
        r.config = [("shared".to_string(), "route".to_string())].into();
        f.put_route("myapp", "/a b/c", r);
        let c = FunctionsClient::new(&f.url()).unwrap();
        let config = c.app_config("myapp").await.unwrap();
        let route = c.route("myapp", "/a b/c", &config).await.unwrap();
        assert_eq!(route.image, "acme/hello:7");
        assert_eq!(route.timeout, 45);
        assert_eq!(
            route.config_env,
            vec![
                ("DB_URL".into(), "x".into()),
                ("SHARED".into(), "route".into())
            ]
        );
        let e = c.app_config("nope").await.unwrap_err();
        assert!(
            matches!(&e, FunctionsError::Missing { path: None, .. }),
            "{e}"
        );
        let e = c.route("myapp", "/nope", &config).await.unwrap_err();
        assert!(
            matches!(&e, FunctionsError::Missing { path: Some(p), .. } if p == "/nope"),
            "{e}"
        );
        assert!(e.to_string().contains("Route not found"), "{e}");
    }

    /// A peer that answers with `answer` (after reading the request), or never when `None`.
    fn peer(answer: Option<Vec<u8>>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut conn in l.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                match &answer {
                    Some(a) => {
                        let _ = conn.write_all(a);
                    }
                    // Hold the connection open, silent.
                    None => std::thread::sleep(std::time::Duration::from_secs(60)),
                }
            }
        });
        url
    }

    #[tokio::test]
    async fn a_hostile_peer_is_unreachable_not_a_hang_or_a_panic() {
        let huge = vec![b'x'; MAX_ANSWER_BYTES + 1];
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", huge.len()).into_bytes();
        answer.extend(huge);
        let not_json = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
        let not_ours = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}".to_vec();
        for a in [answer, not_json, not_ours] {
            let c = FunctionsClient::new(&peer(Some(a))).unwrap();
            let e = c.app_config("myapp").await.unwrap_err();
            assert!(matches!(e, FunctionsError::Unreachable { .. }), "{e}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out() {
        let c = FunctionsClient::new(&peer(None)).unwrap();
        let e = c.app_config("myapp").await.unwrap_err();
        assert!(e.to_string().contains("no answer within"), "{e}");
    }
}
