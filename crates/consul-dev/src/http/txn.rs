//! `PUT /v1/txn`: decode KV operations, enforce the size and count limits, apply atomically,
//! and answer 200 with results or 409 with Consul's error list.
//!
//! Only KV operations are supported; node, service, check and session operations answer 400.

use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::json::write_entry;
use super::kv::MAX_VALUE_SIZE;
use super::reply::{Ctx, Reply};
use super::session::field;
use super::Shared;
use crate::state::txn::{read_only, TxnOp, TxnOutcome, MAX_TXN_OPS};

/// Bytes reserved per result of an answer (a write's entry without its value).
const RESULT_BYTES: usize = 160;

/// Largest transaction body (Consul's `txn_max_req_len` default).
pub const MAX_TXN_BODY: usize = 512 * 1024;

/// Decodes the operations. Without `exact_numbers` (Consul < 1.7) numbers pass through a
/// 64-bit float, as Go's `interface{}` decoding did (hashicorp/consul#6655): a 64-bit flag
/// loses its low bits.
fn parse_ops(body: &[u8], exact_numbers: bool) -> Result<Vec<TxnOp>, Reply> {
    let bad = |e: String| Reply::bad(format!("Failed to parse body: {e}"));
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let Value::Array(items) = v else {
        return Err(bad(
            "json: cannot unmarshal into Go value of type api.TxnOps".into(),
        ));
    };
    if items.len() > MAX_TXN_OPS {
        return Err(Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                items.len()
            ),
        ));
    }
    let mut ops = Vec::with_capacity(items.len());
    for item in &items {
        let o = item
            .as_object()
            .ok_or_else(|| bad("operation must be an object".into()))?;
        let Some(kv) = field(o, "KV").and_then(Value::as_object) else {
            return Err(Reply::bad(
                "consul-dev supports only KV operations in transactions",
            ));
        };
        let s = |n: &str| {
            field(kv, n)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let n = |n: &str| -> Result<u64, Reply> {
            match field(kv, n) {
                None | Some(Value::Null) => Ok(0),
                Some(v) if !exact_numbers && v.is_number() => {
                    Ok(v.as_f64().map_or(0, |f| f as u64))
                }
                Some(v) => v.as_u64().ok_or_else(|| {
                    bad(format!(
                        "json: cannot unmarshal {v} into Go struct field {n} of type uint64"
                    ))
                }),
            }
        };
        let value = match field(kv, "Value") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| bad(format!("illegal base64 data: {e}")))?,
            Some(v) => return Err(bad(format!("json: cannot unmarshal {v} into Value"))),
        };
        let key = s("Key");
        if value.len() > MAX_VALUE_SIZE {
            return Err(Reply::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Value for key {key:?} is too large ({} > {MAX_VALUE_SIZE} bytes)",
                    value.len()
                ),
            ));
        }
        ops.push(TxnOp {
            verb: s("Verb"),
            key,
            value,
            flags: n("Flags")?,
            index: n("Index")?,
            session: s("Session"),
        });
    }
    Ok(ops)
}

/// Serves `/v1/txn`.
pub async fn route(shared: &Shared, ctx: &Ctx) -> Reply {
    if ctx.method != Method::PUT {
        return Reply::method_not_allowed(&ctx.method);
    }
    if ctx.body.len() > MAX_TXN_BODY {
        return Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body({} bytes) too large, max size: {MAX_TXN_BODY} bytes. See \
                 https://developer.hashicorp.com/docs/agent/config/config-files#txn_max_req_len.",
                ctx.body.len()
            ),
        );
    }
    let ops = match parse_ops(&ctx.body, shared.api.exact_txn_numbers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let reads = read_only(&ops);
    let outcome = shared.write(|s, now| s.apply_txn(&ops, now));
    let mut extra = Vec::new();
    if reads {
        // A read-only transaction goes through Consul's Txn.Read, whose answer carries the
        // query metadata in the body, and only KnownLeader and LastContact as headers (no
        // X-Consul-Index: it does not block).
        extra.push(("x-consul-knownleader", "true".to_string()));
        extra.push(("x-consul-lastcontact", "0".to_string()));
    }
    let mut r = match outcome {
        TxnOutcome::Done(results) => {
            // Written straight out, fields in serde_json's (sorted) order: a bulk load's
            // answers are most of what this agent writes.
            let mut buf = Vec::with_capacity(RESULT_BYTES * (results.len() + 1));
            if reads {
                buf.extend_from_slice(b"{\"ConsistencyLevel\":\"\",\"Errors\":null,\"Index\":0,\"KnownLeader\":true,\"LastContact\":0,\"Results\":[");
            } else {
                buf.extend_from_slice(b"{\"Errors\":null,\"Results\":[");
            }
            for (i, res) in results.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(b"{\"KV\":");
                write_entry(&mut buf, &res.entry, res.with_value);
                buf.push(b'}');
            }
            buf.extend_from_slice(b"]}");
            Reply::json_bytes(buf)
        }
        TxnOutcome::Failed(errors) => {
            let errors: Vec<Value> = errors
                .iter()
                .map(|(i, what)| json!({"OpIndex": i, "What": what}))
                .collect();
            let mut body = json!({"Results": Value::Null, "Errors": errors});
            if reads {
                if let Some(m) = body.as_object_mut() {
                    m.insert("Index".into(), json!(0));
                    m.insert("LastContact".into(), json!(0));
                    m.insert("KnownLeader".into(), json!(true));
                    m.insert("ConsistencyLevel".into(), json!(""));
                }
            }
            let mut r = Reply::json(&body);
            r.status = StatusCode::CONFLICT;
            r
        }
    };
    r.extra = extra;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::txn::TxnResult;

    /// The body the previous, serde_json-built answer had, for comparison.
    fn via_values(results: &[TxnResult], reads: bool) -> String {
        let results: Vec<Value> = results
            .iter()
            .map(|r| json!({"KV": super::super::kv::entry_json(&r.entry, r.with_value)}))
            .collect();
        let mut body = json!({"Results": results, "Errors": Value::Null});
        if reads {
            if let Some(m) = body.as_object_mut() {
                m.insert("Index".into(), json!(0));
                m.insert("LastContact".into(), json!(0));
                m.insert("KnownLeader".into(), json!(true));
                m.insert("ConsistencyLevel".into(), json!(""));
            }
        }
        body.to_string()
    }

    #[tokio::test]
    async fn answers_match_serde_json() {
        let shared = Shared::new(
            crate::state::Store::new("n", "dc1"),
            None,
            None,
            Default::default(),
        );
        for (body, reads) in [
            (
                r#"[{"KV":{"Verb":"set","Key":"a/1","Value":"eA=="}},{"KV":{"Verb":"set","Key":"a/2"}}]"#,
                false,
            ),
            (
                r#"[{"KV":{"Verb":"get","Key":"a/1"}},{"KV":{"Verb":"get-tree","Key":"a/"}}]"#,
                true,
            ),
        ] {
            let ops = parse_ops(body.as_bytes(), true).ok().unwrap_or_default();
            let before = shared.read(|s| s.clone());
            let mut scratch = before.clone();
            let expected = match scratch.apply_txn(&ops, std::time::Instant::now()) {
                TxnOutcome::Done(results) => via_values(&results, reads),
                TxnOutcome::Failed(e) => panic!("txn failed: {e:?}"),
            };
            let ctx = Ctx {
                method: Method::PUT,
                path: "/v1/txn".into(),
                raw_path: "/v1/txn".into(),
                query: Vec::new(),
                headers: Default::default(),
                body: bytes::Bytes::from(body),
                filtered: false,
            };
            let reply = route(&shared, &ctx).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(String::from_utf8_lossy(&reply.body), expected);
        }
    }
}
