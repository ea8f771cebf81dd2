//! The errors of talking to Consul ([`ConsulError`]) and of the job store ([`StoreError`]).
//!
//! Every variant names the endpoint (method and path, never the token), and when Consul answered,
//! the status and Consul's own message, so an operator can act on a log line alone. A 403 gets its
//! own variant whose message says the ACL token is missing or lacks a permission.
//!
//! Expected outcomes (a lock held by someone else, a check-and-set that lost) are not errors:
//! the calls that can meet them return them as values.

use std::time::Duration;

use cron_core::JobError;

/// An error talking to Consul.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsulError {
    /// Consul refused the request under its ACLs.
    #[error(
        "{endpoint}: 403 permission denied: the Consul ACL token is missing or lacks a permission \
         (set CONSUL_HTTP_TOKEN); Consul said: {message}"
    )]
    Denied {
        /// Method and path of the request.
        endpoint: String,
        /// Consul's message.
        message: String,
    },
    /// Consul answered with a status the call does not expect.
    #[error("{endpoint}: {status} {message}")]
    Status {
        /// Method and path of the request.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// Consul's message (the body, trimmed).
        message: String,
    },
    /// No answer: connection refused, reset, or a TLS failure.
    #[error("{endpoint}: Consul unreachable: {message}")]
    Unreachable {
        /// Method and path of the request.
        endpoint: String,
        /// What the transport said.
        message: String,
    },
    /// No answer within the request's deadline.
    #[error("{endpoint}: no answer from Consul within {after:?}")]
    Timeout {
        /// Method and path of the request.
        endpoint: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// Consul answered 200 with a body this client cannot read.
    #[error("{endpoint}: unreadable answer from Consul: {message}")]
    Decode {
        /// Method and path of the request.
        endpoint: String,
        /// What did not parse.
        message: String,
    },
    /// The client configuration is unusable (address, CA file).
    #[error("Consul client configuration: {0}")]
    Config(String),
}

impl ConsulError {
    /// Builds the error for a non-success answer, choosing [`ConsulError::Denied`] for 403.
    pub(crate) fn from_status(endpoint: &str, status: u16, body: &[u8]) -> ConsulError {
        let message = message_of(body);
        if status == 403 {
            ConsulError::Denied {
                endpoint: endpoint.to_string(),
                message,
            }
        } else {
            ConsulError::Status {
                endpoint: endpoint.to_string(),
                status,
                message,
            }
        }
    }

    /// The HTTP status Consul answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConsulError::Denied { .. } => Some(403),
            ConsulError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Consul's message, if it answered.
    pub fn message(&self) -> Option<&str> {
        match self {
            ConsulError::Denied { message, .. } | ConsulError::Status { message, .. } => {
                Some(message)
            }
            _ => None,
        }
    }

    /// True when Consul answered at all (any status, or a body this client cannot read): the
    /// agent process is there, whatever it said.
    pub fn answered(&self) -> bool {
        matches!(
            self,
            ConsulError::Denied { .. } | ConsulError::Status { .. } | ConsulError::Decode { .. }
        )
    }

    /// True when retrying later may succeed (no answer, or a 5xx / 429).
    pub fn is_transient(&self) -> bool {
        match self {
            ConsulError::Unreachable { .. } | ConsulError::Timeout { .. } => true,
            ConsulError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Longest message kept from an error body: Consul's messages are one line; a proxy's HTML
/// error page is not worth more in a log.
const MAX_MESSAGE: usize = 512;

fn message_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    let mut end = text.len().min(MAX_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Why a job store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The spec (or the id) was refused; nothing was written.
    #[error("invalid job: {0}")]
    Invalid(#[from] JobError),
    /// The id cannot name a key.
    #[error("invalid job id {id:?}: {reason}")]
    BadId {
        /// The id given.
        id: String,
        /// What is allowed.
        reason: String,
    },
    /// The job exists (create), or changed since the version given (update).
    #[error("conflict on job {id:?}: {message}")]
    Conflict {
        /// The job id.
        id: String,
        /// What happened.
        message: String,
    },
    /// No such job.
    #[error("job {0:?} not found")]
    NotFound(String),
    /// The job's stored form is over what Consul takes in one write; nothing was written.
    #[error(
        "job {id:?} is {bytes} bytes as stored (JSON, escapes included), over the {limit} bytes Consul takes in one write: shorten function.body, the headers, the description or the tags"
    )]
    TooLarge {
        /// The job id.
        id: String,
        /// Its stored size.
        bytes: usize,
        /// [`crate::MAX_JOB_BYTES`].
        limit: usize,
    },
    /// The stored entry does not validate (written by hand?).
    #[error("stored job at {key} is invalid: {error}")]
    Stored {
        /// The full key.
        key: String,
        /// Why.
        error: String,
    },
    /// Consul failed.
    #[error(transparent)]
    Consul(#[from] ConsulError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_says_token() {
        let e = ConsulError::from_status(
            "PUT /v1/kv/cronnode/leader",
            403,
            b"Permission denied: token lacks permission 'key:write'\n",
        );
        let text = e.to_string();
        assert!(text.contains("PUT /v1/kv/cronnode/leader"), "{text}");
        assert!(text.contains("ACL token is missing"), "{text}");
        assert!(text.contains("key:write"), "{text}");
        assert_eq!(e.status(), Some(403));
        assert!(!e.is_transient());
    }

    #[test]
    fn other_status_names_endpoint_status_and_message() {
        let e = ConsulError::from_status("PUT /v1/session/renew/x", 500, b"No cluster leader");
        assert_eq!(
            e.to_string(),
            "PUT /v1/session/renew/x: 500 No cluster leader"
        );
        assert!(e.is_transient());
        let e = ConsulError::from_status("GET /v1/kv/a", 400, b"");
        assert_eq!(e.to_string(), "GET /v1/kv/a: 400 (empty body)");
    }
}
