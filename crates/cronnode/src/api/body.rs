//! A request's body: read within the size and time limits, and parsed as JSON that names no
//! key twice.
//!
//! A leaf of the API, like `errors.rs`: the server reads bodies with [`read`], handlers parse
//! them with [`json_object`]. Must not know what a body means.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::errors::ApiError;
pub use crate::limits::MAX_BODY_BYTES;

/// How long a client has to send a whole body, from the end of its headers. Only a route that
/// takes a body reads one, and only once the token is checked.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a body of at most [`MAX_BODY_BYTES`] within [`BODY_READ_TIMEOUT`].
pub async fn read(headers: &hyper::HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    // Refuse early when the client announces a body over the limit.
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > MAX_BODY_BYTES as u64 {
            return Err(ApiError::too_large(MAX_BODY_BYTES));
        }
    }
    let collect = Limited::new(body, MAX_BODY_BYTES).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, collect).await {
        Err(_) => Err(ApiError::request_timeout(format!(
            "the request body did not arrive within {BODY_READ_TIMEOUT:?}"
        ))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(MAX_BODY_BYTES))
        }
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Parses a body that must be one JSON object; a key given twice in any object is refused
/// (serde_json would keep the last one silently).
pub fn json_object(body: &[u8], what: &str) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed_json(format!(
            "the request body is empty: send {what} as a JSON object"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = StrictValue
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            ApiError::malformed_json(format!("the request body is not valid JSON: {e}"))
        })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(format!(
            "{what} must be a JSON object"
        ))),
    }
}

/// Builds a [`Value`] like serde_json does, refusing duplicate keys.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} is given twice in one object"
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let e = json_object(br#"{"id": "a", "id": "b"}"#, "a job").unwrap_err();
        assert_eq!(e.code, "malformed_json");
        assert!(e.message.contains("\"id\" is given twice"), "{}", e.message);
        let e = json_object(br#"{"f": [{"x": 1, "x": 2}]}"#, "a job").unwrap_err();
        assert!(e.message.contains("\"x\""), "{}", e.message);
    }

    #[test]
    fn what_serde_json_reads_is_read_the_same() {
        let text = br#"{"a": [1, -2, 3.5, "s", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        let strict = Value::Object(json_object(text, "x").unwrap());
        let plain: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(
            json_object(b"[1]", "a job").unwrap_err().code,
            "bad_request"
        );
        assert_eq!(
            json_object(b"{} x", "a job").unwrap_err().code,
            "malformed_json"
        );
        assert!(json_object(b" ", "a job")
            .unwrap_err()
            .message
            .contains("empty"));
    }
}
