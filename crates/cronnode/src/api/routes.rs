//! Routing: method and path → handler, with path ids decoded and checked.
//!
//! [`ROUTES`] is the list the OpenAPI document is checked against (a unit test keeps the two
//! equal). A path id is percent-decoded and must be a valid job id; a `/` inside it (`a/b`,
//! `%2F`) or a `..` is refused with 400 before anything reaches Consul.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response};

use super::{cluster, jobs, ApiError, AppState};

/// Every route: method and path template (as in the OpenAPI document).
// Read by the OpenAPI test; the match in [`route`] is the dispatcher.
#[cfg_attr(not(test), allow(dead_code))]
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/cronjobs"),
    ("POST", "/v1/cronjobs"),
    ("GET", "/v1/cronjobs/{id}"),
    ("PUT", "/v1/cronjobs/{id}"),
    ("DELETE", "/v1/cronjobs/{id}"),
    ("POST", "/v1/cronjobs/{id}/pause"),
    ("POST", "/v1/cronjobs/{id}/resume"),
    ("POST", "/v1/cronjobs/{id}/run"),
    ("GET", "/v1/cronjobs/{id}/fires"),
    ("GET", "/v1/leader"),
    ("POST", "/v1/leader/fence/reset"),
    ("GET", "/v1/nodes"),
    ("GET", "/v1/status"),
    ("GET", "/v1/schedule"),
];

/// The handler's answer.
pub type Answer = Result<Response<Full<Bytes>>, ApiError>;

/// Dispatches one request (token and body limit already checked).
pub async fn route(state: &AppState, req: Request<Bytes>) -> Answer {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""))?;
    let body = req.body().clone();
    let headers = req.headers().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let not_allowed = || Err(ApiError::method_not_allowed(&method, &path));

    match segments.as_slice() {
        ["health"] => match method {
            Method::GET => cluster::health(),
            _ => not_allowed(),
        },
        ["ready"] => match method {
            Method::GET => cluster::ready(state).await,
            _ => not_allowed(),
        },
        ["metrics"] => match method {
            Method::GET => cluster::metrics(state),
            _ => not_allowed(),
        },
        ["v1", "openapi.json"] => match method {
            Method::GET => Ok(super::json_response(
                hyper::StatusCode::OK,
                &super::openapi::document(),
            )),
            _ => not_allowed(),
        },
        ["v1", "cronjobs"] | ["v1", "cronjobs", ""] => match method {
            Method::GET => jobs::list(state, &query).await,
            Method::POST => {
                check_json_content_type(&headers)?;
                jobs::create(state, &body).await
            }
            _ => not_allowed(),
        },
        ["v1", "cronjobs", id] => {
            let id = path_id(id)?;
            match method {
                Method::GET => jobs::get(state, &id).await,
                Method::PUT => {
                    check_json_content_type(&headers)?;
                    jobs::replace(state, &id, &body).await
                }
                Method::DELETE => jobs::delete(state, &id).await,
                _ => not_allowed(),
            }
        }
        ["v1", "cronjobs", id, action @ ("pause" | "resume" | "run" | "fires")] => {
            let id = path_id(id)?;
            match (method.clone(), *action) {
                (Method::POST, "pause") => jobs::set_paused(state, &id, true).await,
                (Method::POST, "resume") => jobs::set_paused(state, &id, false).await,
                (Method::POST, "run") => jobs::run(state, &id, &headers).await,
                (Method::GET, "fires") => jobs::fires(state, &id).await,
                _ => not_allowed(),
            }
        }
        // Anything else under /v1/cronjobs/ has an id with a '/' in it (or a bad action).
        ["v1", "cronjobs", first, rest @ ..] => Err(ApiError::bad_request(format!(
            "job id {:?} is not allowed: ids are 1-128 characters of A-Z a-z 0-9 _ . - (no '/'), or the action {:?} does not exist",
            format!("{first}/{}", rest.join("/")),
            rest.last().copied().unwrap_or("")
        ))),
        ["v1", "leader"] => match method {
            Method::GET => cluster::leader(state).await,
            _ => not_allowed(),
        },
        ["v1", "leader", "fence", "reset"] => match method {
            Method::POST => cluster::fence_reset(state, &headers).await,
            _ => not_allowed(),
        },
        ["v1", "nodes"] => match method {
            Method::GET => cluster::nodes(state).await,
            _ => not_allowed(),
        },
        ["v1", "status"] => match method {
            Method::GET => cluster::status(state).await,
            _ => not_allowed(),
        },
        ["v1", "schedule"] => match method {
            Method::GET => cluster::schedule(&query),
            _ => not_allowed(),
        },
        _ => Err(ApiError::not_found(format!(
            "no route {path}; see /v1/openapi.json"
        ))),
    }
}

fn check_json_content_type(headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    // Absent is accepted (curl -d sends form encoding by default; be lenient with that too).
    match headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => Ok(()),
        Some(ct) => {
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
    }
}

/// Decodes and checks a job id taken from the path.
pub fn path_id(raw: &str) -> Result<String, ApiError> {
    let id = percent_decode(raw).ok_or_else(|| {
        ApiError::bad_request(format!("job id {raw:?} is not valid percent-encoded UTF-8"))
    })?;
    check_id(&id).map_err(ApiError::bad_request)?;
    Ok(id)
}

/// The job id rule, cron-core's own (`[A-Za-z0-9_.-]{1,128}`, not starting with `.`, no `..`).
pub fn check_id(id: &str) -> Result<(), String> {
    cron_core::job::check_id(id).map_err(|e| format!("job {e}"))
}

/// `%XX` decoding (and `+` as a space in query strings when `plus` is set).
fn decode(raw: &str, plus: bool) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes a path segment.
pub fn percent_decode(raw: &str) -> Option<String> {
    decode(raw, false)
}

/// Encodes everything outside the unreserved set (for building URLs in the CLI).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a query string; a parameter that is not valid UTF-8 after decoding is a 400.
pub fn parse_query(q: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut map = HashMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k, true).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter {k:?} is not valid percent-encoded UTF-8"
            ))
        })?;
        let v = decode(v, true).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter {k:?} has a value that is not valid percent-encoded UTF-8"
            ))
        })?;
        map.insert(k, v);
    }
    Ok(map)
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
    fn query_and_encoding_round_trip() {
        let q = parse_query("frequency=%2A%2F5+*+*+*+*&tz=Europe%2FBerlin&n=3").unwrap();
        assert_eq!(q["frequency"], "*/5 * * * *");
        assert_eq!(q["tz"], "Europe/Berlin");
        assert_eq!(percent_decode(&percent_encode("a b/c")).unwrap(), "a b/c");
    }
}
