//! The API's error answers: `{"error": {"code": "...", "message": "..."}}` with a fitting status.
//!
//! Every handler returns an [`ApiResult`]; the codes are a closed set (documented in the OpenAPI
//! document) so scripts can branch on them. A message names the thing that is wrong
//! (the field, the header, the id) and, where it helps, what is allowed.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::reply::json_response;

/// What a handler returns: an answer, or an error answer.
pub type ApiResult = Result<Response<Full<Bytes>>, ApiError>;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message naming the problem.
    pub message: String,
}

/// Every error code the API uses (listed in the OpenAPI document).
pub const ERROR_CODES: &[&str] = &[
    "malformed_json",
    "bad_request",
    "invalid_job",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "conflict",
    "stored_invalid",
    "request_timeout",
    "payload_too_large",
    "unsupported_media_type",
    "no_leader",
    "fence_blocked",
    "unavailable",
    "internal",
];

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 400: a malformed request (bad id in the path, unknown field, bad query parameter).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422: a well-formed job that fails validation.
    pub fn invalid_job(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_job", message)
    }

    /// 401: missing or wrong bearer token.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405.
    pub fn method_not_allowed(method: &hyper::Method, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 409: the job as stored does not validate (edited by hand); it can be replaced or
    /// deleted.
    pub fn stored_invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "stored_invalid", message)
    }

    /// 408: the body did not arrive in time.
    pub fn request_timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
    }

    /// 413: a job whose stored form is over what Consul takes in one write.
    pub fn job_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 413.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type(got: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type {got:?} is not accepted: send application/json"),
        )
    }

    /// 503: no node holds the lock right now.
    pub fn no_leader(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", message)
    }

    /// 409: the leader may not enqueue until the fence is reset.
    pub fn fence_blocked(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "fence_blocked", message)
    }

    /// 503: Consul or Redis failed.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The HTTP answer.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer realm=\"cronnode\""),
            );
        }
        debug_assert!(resp.headers().contains_key(CONTENT_TYPE));
        resp
    }
}
