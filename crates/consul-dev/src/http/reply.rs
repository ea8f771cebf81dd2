//! The request as handlers see it ([`Ctx`]: decoded path, query, headers, whole body) and the
//! answer they build ([`Reply`]), with Consul's headers and error shapes.
//!
//! Must not know any endpoint.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};

/// A request, read in full.
pub struct Ctx {
    /// Method.
    pub method: Method,
    /// Percent-decoded path.
    pub path: String,
    /// The path as sent, for traversal checks made before decoding (as Consul does).
    pub raw_path: String,
    /// Decoded query pairs in order; a bare `?flag` has an empty value.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// True when ACLs are on and the request is anonymous: list endpoints answer empty.
    pub filtered: bool,
}

impl Ctx {
    /// Whether the query names `key` (with or without a value).
    pub fn has(&self, key: &str) -> bool {
        self.query.iter().any(|(k, _)| k == key)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The query re-encoded the way Go's `url.Values.Encode` does (sorted by key), for
    /// Consul's `Conflicting flags` message.
    pub fn encoded_query(&self) -> String {
        let mut pairs: Vec<&(String, String)> = self.query.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set). Invalid escapes stay as they
/// are, as Go's lenient paths do; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

/// An answer.
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: Bytes,
    /// Content type, if any.
    pub content_type: Option<&'static str>,
    /// `X-Consul-Index` and friends, for reads.
    pub index: Option<u64>,
    /// `X-Consul-Effective-Consistency`.
    pub consistency: Option<&'static str>,
    /// Other headers.
    pub extra: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(v: &serde_json::Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Bytes::from(v.to_string()),
            content_type: Some("application/json"),
            index: None,
            consistency: None,
            extra: Vec::new(),
        }
    }

    /// 200 with a JSON body already written.
    pub fn json_bytes(body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Bytes::from(body),
            content_type: Some("application/json"),
            index: None,
            consistency: None,
            extra: Vec::new(),
        }
    }

    /// A text answer (Consul's errors are plain text).
    pub fn text(status: StatusCode, msg: impl Into<String>) -> Reply {
        Reply {
            status,
            body: Bytes::from(msg.into()),
            content_type: Some("text/plain; charset=utf-8"),
            index: None,
            consistency: None,
            extra: Vec::new(),
        }
    }

    /// An empty answer with `status` (e.g. a KV 404).
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: Bytes::new(),
            content_type: None,
            index: None,
            consistency: None,
            extra: Vec::new(),
        }
    }

    /// 400 with `msg`.
    pub fn bad(msg: impl Into<String>) -> Reply {
        Reply::text(StatusCode::BAD_REQUEST, msg)
    }

    /// 500 with `msg` (how Consul reports RPC errors).
    pub fn internal(msg: impl Into<String>) -> Reply {
        Reply::text(StatusCode::INTERNAL_SERVER_ERROR, msg)
    }

    /// 404 for an unknown endpoint, as Go's mux says it.
    pub fn not_found() -> Reply {
        Reply::text(StatusCode::NOT_FOUND, "404 page not found\n")
    }

    /// 405 as Consul's MethodNotAllowedError says it.
    pub fn method_not_allowed(method: &Method) -> Reply {
        Reply::text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed"),
        )
    }

    /// Adds read metadata: the index (never 0) and the consistency mode.
    pub fn with_index(mut self, index: u64, consistency: &'static str) -> Reply {
        self.index = Some(index.max(1));
        self.consistency = Some(consistency);
        self
    }

    /// Into a hyper response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        if let Some(ct) = self.content_type {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if let Some(idx) = self.index {
            h.insert("x-consul-index", HeaderValue::from(idx));
            h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
            h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
        }
        if let Some(c) = self.consistency {
            h.insert(
                "x-consul-effective-consistency",
                HeaderValue::from_static(c),
            );
        }
        for (k, v) in self.extra {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_bad_ones() {
        assert_eq!(percent_decode("a%2Fb", false), "a/b");
        assert_eq!(percent_decode("a%zz", false), "a%zz");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("%", false), "%");
        let q = parse_query("recurse&index=5&wait=1s");
        assert_eq!(q[0], ("recurse".to_string(), String::new()));
        assert_eq!(q[1], ("index".to_string(), "5".to_string()));
    }
}
