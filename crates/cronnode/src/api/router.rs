//! How a request finds its [`Route`] in the table (`routes.rs`), and what a handler is given
//! ([`Call`]).
//!
//! A route is a method, a path template whose segments are literals or `{id}` (a job id, one
//! segment, percent-decoded and checked before any handler runs), and may end with [`REST`]
//! (the rest of the path, any number of segments: the web console's assets), whether it needs
//! the token ([`Access`]), whether its body must be JSON ([`Body`]), its handler and its
//! OpenAPI operation (none for the console's pages, which are not API). [`find`] reads the
//! table only: no I/O, so `mod.rs` knows before reading anything whether the token is needed.
//!
//! Matching: the path is split at `/` (leading slashes ignored, one trailing slash ignored);
//! `HEAD` matches the `GET` route; a path that matches a template but not its method is a 405; a path under an `{id}` route's
//! prefix that matches no template has an id with a `/` in it (400 naming it); anything else
//! is a 404.
//!
//! Must not: know any particular route (the table does), or do what a handler does.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Method};
use serde_json::Value;

use super::errors::{ApiError, ApiResult};
use super::state::AppState;

/// The path segment that stands for a job id in a template.
pub const ID: &str = "{id}";
/// A template's last segment that stands for the rest of the path, none or more segments.
pub const REST: &str = "{*rest}";

/// Whether a route needs the bearer token (when the node has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every request must carry it.
    Token,
    /// Open (`/health`: load balancers and probes need no secret).
    Open,
}

/// What a route takes as its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Nothing is read from it.
    Ignored,
    /// A JSON document: another declared Content-Type is a 415 before the handler runs.
    Json,
}

/// What a handler is given.
pub struct Call {
    /// The node's state.
    pub state: Arc<AppState>,
    /// The decoded and checked `{id}` of the path; empty when the template has none.
    pub id: String,
    /// The request's path, as sent.
    pub path: String,
    /// The decoded query parameters.
    pub query: HashMap<String, String>,
    /// The body (within the limit).
    pub body: Bytes,
    /// The request's headers.
    pub headers: HeaderMap,
}

/// A handler's answer, to come.
pub type Reply = Pin<Box<dyn Future<Output = ApiResult> + Send>>;
/// A handler.
pub type Handler = fn(Call) -> Reply;

/// One route: the table's row.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path template (`/v1/cronjobs/{id}/run`), as the OpenAPI document writes it.
    pub path: &'static str,
    /// Token or open.
    pub access: Access,
    /// What its body must be.
    pub body: Body,
    /// What answers it.
    pub handler: Handler,
    /// Its OpenAPI operation (summary, parameters, responses); `openapi.rs` adds what follows
    /// from the row itself (the `{id}` parameter, the token's 401, open security). `None`
    /// leaves the route out of the document (the console's pages).
    pub doc: Option<fn() -> Value>,
}

impl Route {
    /// A `GET` route that needs the token.
    pub fn get(path: &'static str, handler: Handler, doc: fn() -> Value) -> Route {
        Route::new(Method::GET, path, handler, doc)
    }

    /// A `POST` route that needs the token.
    pub fn post(path: &'static str, handler: Handler, doc: fn() -> Value) -> Route {
        Route::new(Method::POST, path, handler, doc)
    }

    /// A `PUT` route that needs the token.
    pub fn put(path: &'static str, handler: Handler, doc: fn() -> Value) -> Route {
        Route::new(Method::PUT, path, handler, doc)
    }

    /// A `DELETE` route that needs the token.
    pub fn delete(path: &'static str, handler: Handler, doc: fn() -> Value) -> Route {
        Route::new(Method::DELETE, path, handler, doc)
    }

    /// A `GET` route of the web console: open (its assets hold no data: the pages fetch that
    /// from the API, with the token) and not in the OpenAPI document.
    pub fn console(path: &'static str, handler: Handler) -> Route {
        Route {
            method: Method::GET,
            path,
            access: Access::Open,
            body: Body::Ignored,
            handler,
            doc: None,
        }
    }

    fn new(method: Method, path: &'static str, handler: Handler, doc: fn() -> Value) -> Route {
        Route {
            method,
            path,
            access: Access::Token,
            body: Body::Ignored,
            handler,
            doc: Some(doc),
        }
    }

    /// The same route, open to requests without the token.
    pub fn open(self) -> Route {
        Route {
            access: Access::Open,
            ..self
        }
    }

    /// The same route, taking a JSON body.
    pub fn json_body(self) -> Route {
        Route {
            body: Body::Json,
            ..self
        }
    }
}

/// What [`find`] made of a request, before anything of it is read.
pub struct Found<'r> {
    /// No token is needed (the path is an open route's).
    pub open: bool,
    /// The route and the decoded id, or the 400, 404 or 405 to answer.
    pub route: Result<(&'r Route, String), ApiError>,
}

/// Finds the route of `method` and `path` in `routes`.
pub fn find<'r>(routes: &'r [Route], method: &Method, path: &str) -> Found<'r> {
    let segments = split(path);
    let matching: Vec<(&Route, Option<&str>)> = routes
        .iter()
        .filter_map(|r| matches(r.path, &segments).map(|id| (r, id)))
        .collect();
    let Some((_, raw_id)) = matching.first() else {
        return Found {
            open: false,
            route: Err(unmatched(routes, &segments, path)),
        };
    };
    let open = matching.iter().any(|(r, _)| r.access == Access::Open);
    let id = match raw_id.map(path_id).transpose() {
        Ok(id) => id.unwrap_or_default(),
        Err(e) => {
            return Found {
                open,
                route: Err(e),
            }
        }
    };
    // A HEAD is the GET without its body (hyper drops the body).
    let wanted = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let route = matching
        .iter()
        .find(|(r, _)| r.method == wanted)
        .map(|(r, _)| (*r, id))
        .ok_or_else(|| ApiError::method_not_allowed(method, path));
    Found { open, route }
}

/// A path's segments: leading slashes and one trailing slash ignored.
fn split(path: &str) -> Vec<&str> {
    let mut segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() > 1 && segments.last() == Some(&"") {
        segments.pop();
    }
    segments
}

/// Whether `segments` match `template`; the raw `{id}` segment if it has one.
fn matches<'p>(template: &str, segments: &[&'p str]) -> Option<Option<&'p str>> {
    let mut parts = split(template);
    if parts.last() == Some(&REST) {
        parts.pop();
        if segments.len() < parts.len() {
            return None;
        }
    } else if parts.len() != segments.len() {
        return None;
    }
    let mut id = None;
    for (part, seg) in parts.iter().zip(segments) {
        if *part == ID {
            id = Some(*seg);
        } else if part != seg {
            return None;
        }
    }
    Some(id)
}

/// The error for a path no template matches: under an `{id}` route's prefix with more
/// segments than any template, the id has a `/` in it (or names no action); else 404.
fn unmatched(routes: &[Route], segments: &[&str], path: &str) -> ApiError {
    for r in routes {
        let parts = split(r.path);
        let Some(at) = parts.iter().position(|p| *p == ID) else {
            continue;
        };
        if segments.len() > at + 1 && segments[..at] == parts[..at] {
            let rest = &segments[at..];
            return ApiError::bad_request(format!(
                "job id {:?} is not allowed: ids are 1-128 characters of A-Z a-z 0-9 _ . - (no '/'), or the action {:?} does not exist",
                rest.join("/"),
                rest.last().copied().unwrap_or("")
            ));
        }
    }
    ApiError::not_found(format!("no route {path}; see /v1/openapi.json"))
}

/// Decodes and checks a job id taken from the path.
pub fn path_id(raw: &str) -> Result<String, ApiError> {
    let id = crate::percent::decode_path(raw).ok_or_else(|| {
        ApiError::bad_request(format!("job id {raw:?} is not valid percent-encoded UTF-8"))
    })?;
    cron_core::job::check_id(&id).map_err(|e| ApiError::bad_request(format!("job {e}")))?;
    Ok(id)
}

/// Parses a query string; a parameter that is not valid UTF-8 after decoding is a 400.
pub fn parse_query(q: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut map = HashMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = crate::percent::decode_query(k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter {k:?} is not valid percent-encoded UTF-8"
            ))
        })?;
        let v = crate::percent::decode_query(v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter {k:?} has a value that is not valid percent-encoded UTF-8"
            ))
        })?;
        map.insert(k, v);
    }
    Ok(map)
}

/// Refuses a body declared as something else than JSON (absent is accepted: `curl -d` sends
/// form encoding by default, so that and plain text are let through too).
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if base == "application/json"
        || base.ends_with("+json")
        || base == "application/x-www-form-urlencoded"
        || base == "text/plain"
    {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(ct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_decoded_and_checked() {
        assert_eq!(path_id("report-1.a_b").unwrap(), "report-1.a_b");
        assert!(path_id("a%2Fb").unwrap_err().message.contains("'/'"));
        assert!(path_id("..").unwrap_err().message.contains("'.'"));
        assert!(path_id("a..b").unwrap_err().message.contains("'..'"));
        assert!(path_id("%2E%2E").is_err());
        assert!(path_id("%zz").unwrap_err().message.contains("percent"));
    }

    #[test]
    fn queries_are_decoded() {
        let q = parse_query("frequency=%2A%2F5+*+*+*+*&tz=Europe%2FBerlin&n=3").unwrap();
        assert_eq!(q["frequency"], "*/5 * * * *");
        assert_eq!(q["tz"], "Europe/Berlin");
        assert!(parse_query("a=%FF").is_err());
    }

    #[test]
    fn a_rest_segment_matches_none_or_more() {
        let t = "/ui/{*rest}";
        for path in ["/ui", "/ui/", "/ui/app.js", "/ui/a/b"] {
            assert_eq!(matches(t, &split(path)), Some(None), "{path}");
        }
        assert_eq!(matches(t, &split("/uix/app.js")), None);
        assert_eq!(matches(t, &split("/")), None);
    }

    #[test]
    fn segments_ignore_leading_and_one_trailing_slash() {
        assert_eq!(split("/v1/cronjobs/"), ["v1", "cronjobs"]);
        assert_eq!(split("//health"), ["health"]);
        assert_eq!(split("/"), [""]);
        assert_eq!(split("/a//"), ["a", ""]);
    }
}
