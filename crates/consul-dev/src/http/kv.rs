//! `/v1/kv/<key>`: key validation, GET (single, `recurse`, `keys`, `raw`, blocking), PUT
//! (`flags`, `cas`, `acquire`, `release`), DELETE (`recurse`, `cas`).
//!
//! Answers follow agent/kvs_endpoint.go of today's Consul, including its key validation
//! (1.21.5) and its error texts.

use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::blocking;
use super::json::{write_entry, write_str};
use super::reply::{Ctx, Reply};
use super::Shared;
use crate::state::{KvEntry, Store};

/// The largest value Consul accepts (its `kv_max_value_size` default).
pub const MAX_VALUE_SIZE: usize = 512 * 1024;

/// File extensions today's Consul refuses at the end of a key (cache-deception guard).
const SUSPICIOUS_EXTENSIONS: &[&str] = &[
    "js", "css", "htm", "html", "xml", "json", "txt", "log", "php", "asp", "jsp", "cgi", "pl",
    "py", "rb", "sh", "exe", "dll", "bat", "cmd", "com", "scr", "vbs", "pdf", "doc", "docx", "xls",
    "xlsx", "ppt", "pptx", "zip", "rar", "tar", "gz", "7z", "bz2", "jpg", "jpeg", "png", "gif",
    "svg", "ico", "bmp", "mp3", "mp4", "avi", "mov", "wmv", "flv", "swf", "woff", "woff2", "ttf",
    "eot", "otf",
];

/// JSON form of an entry; `Value` is null when empty or blanked, `Session` omitted when unheld.
pub fn entry_json(e: &KvEntry, with_value: bool) -> Value {
    let value = if with_value && !e.value.is_empty() {
        json!(base64::engine::general_purpose::STANDARD.encode(&e.value))
    } else {
        Value::Null
    };
    let mut v = json!({
        "LockIndex": e.lock_index,
        "Key": e.key,
        "Flags": e.flags,
        "Value": value,
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
    });
    if let (Some(s), Some(m)) = (&e.session, v.as_object_mut()) {
        m.insert("Session".to_string(), json!(s));
    }
    v
}

/// Bytes reserved up front for a listing; the buffer grows from there.
const LISTING_START_CAPACITY: usize = 4096;

/// A recursive listing of `prefix`, or 404 when nothing lies under it.
fn render_list(s: &Store, prefix: &str) -> Reply {
    let mut buf = Vec::with_capacity(LISTING_START_CAPACITY);
    buf.push(b'[');
    for e in s.kv.list(prefix) {
        if buf.len() > 1 {
            buf.push(b',');
        }
        write_entry(&mut buf, e, true);
    }
    if buf.len() == 1 {
        return Reply::empty(StatusCode::NOT_FOUND);
    }
    buf.push(b']');
    Reply::json_bytes(buf)
}

/// Raw-path traversal (before decoding), as Consul checks it.
fn raw_path_traversal(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    raw.contains("../")
        || raw.contains("..\\")
        || lower.contains("%2e%2e%2f")
        || lower.contains("%2e%2e%5c")
        || lower.contains("%2e%2e/")
        || lower.contains("..%2f")
        || lower.contains("..%5c")
        || lower.contains("%252e%252e%252f")
}

/// Today's Consul key rules; `Err` is its message (answered 400).
pub fn validate_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("key cannot be empty");
    }
    if key.starts_with('/') {
        return Err("key must not begin with a '/'");
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || ",-_./".contains(c);
    if !key.chars().all(ok) {
        return Err(
            "key contains invalid characters. Only alphanumeric characters and ,-_./ are allowed",
        );
    }
    if key.contains("../") || key.starts_with("..") || key.ends_with("..") {
        return Err("key contains path traversal sequence");
    }
    if let Some((_, ext)) = key.rsplit_once('.') {
        if SUSPICIOUS_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            return Err(
                "key contains suspicious file extension that may be cached by proxies or exploited",
            );
        }
    }
    Ok(())
}

/// Dispatches `/v1/kv/<key>`.
pub async fn route(shared: &Shared, ctx: &Ctx, key: &str) -> Reply {
    if raw_path_traversal(&ctx.raw_path) {
        return Reply::bad("URL path contains invalid or encoded traversal sequence");
    }
    if !key.is_empty() {
        if let Err(e) = validate_key(key) {
            return Reply::bad(e);
        }
    }
    match ctx.method {
        Method::GET if ctx.has("keys") => get_keys(shared, ctx, key).await,
        Method::GET => get(shared, ctx, key).await,
        Method::PUT => put(shared, ctx, key),
        Method::DELETE => delete(shared, ctx, key),
        ref m => Reply::method_not_allowed(m),
    }
}

async fn get(shared: &Shared, ctx: &Ctx, key: &str) -> Reply {
    let recurse = ctx.has("recurse");
    if !recurse && key.is_empty() {
        return Reply::bad("Missing key name");
    }
    let opts = match blocking::parse_opts(ctx) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let raw = ctx.has("raw") && !recurse;
    let filtered = ctx.filtered;
    let index = |s: &Store| {
        if recurse {
            s.kv.prefix_index(key)
        } else {
            s.kv.key_index(key)
        }
    };
    let interest = if recurse {
        blocking::Interest::Prefix(key.to_string())
    } else {
        blocking::Interest::Key(key.to_string())
    };
    blocking::run(shared, opts, interest, index, |s| {
        if recurse {
            if filtered {
                return Reply::empty(StatusCode::NOT_FOUND);
            }
            return render_list(s, key);
        }
        match s.kv.get(key) {
            None => Reply::empty(StatusCode::NOT_FOUND),
            Some(e) if raw => {
                let mut r = Reply::empty(StatusCode::OK);
                r.body = bytes::Bytes::from(e.value.clone());
                r.content_type = Some("text/plain");
                r.extra
                    .push(("x-content-type-options", "nosniff".to_string()));
                r.extra
                    .push(("content-security-policy", "sandbox".to_string()));
                r
            }
            Some(e) => Reply::json(&json!([entry_json(e, true)])),
        }
    })
    .await
}

async fn get_keys(shared: &Shared, ctx: &Ctx, prefix: &str) -> Reply {
    let opts = match blocking::parse_opts(ctx) {
        Ok(o) => o,
        Err(r) => return r,
    };
    // Consul still honours the historic misspelling.
    let sep = ctx
        .get("separator")
        .or_else(|| ctx.get("seperator"))
        .unwrap_or("")
        .to_string();
    let filtered = ctx.filtered;
    blocking::run(
        shared,
        opts,
        blocking::Interest::Prefix(prefix.to_string()),
        |s| s.kv.prefix_index(prefix),
        |s| {
            let mut buf = Vec::with_capacity(LISTING_START_CAPACITY);
            buf.push(b'[');
            let mut last: Option<&str> = None;
            if !filtered {
                for e in s.kv.list(prefix) {
                    let after = &e.key[prefix.len()..];
                    // Up to and including the first separator after the prefix: a slice of
                    // the key itself, so rolling up a folder allocates nothing.
                    let k = match after.find(sep.as_str()).filter(|_| !sep.is_empty()) {
                        Some(i) => &e.key[..prefix.len() + i + sep.len()],
                        None => e.key.as_str(),
                    };
                    if last != Some(k) {
                        if last.is_some() {
                            buf.push(b',');
                        }
                        write_str(&mut buf, k);
                        last = Some(k);
                    }
                }
            }
            if last.is_none() && !prefix.is_empty() {
                return Reply::empty(StatusCode::NOT_FOUND);
            }
            buf.push(b']');
            Reply::json_bytes(buf)
        },
    )
    .await
}

/// Consul's `conflictingFlags`: more than one of `flags` present → 400.
fn conflicting(ctx: &Ctx, flags: &[&str]) -> Option<Reply> {
    if flags.iter().filter(|f| ctx.has(f)).count() > 1 {
        return Some(Reply::bad(format!(
            "Conflicting flags: {}\n",
            ctx.encoded_query()
        )));
    }
    None
}

/// Parses a `u64` query value the way Go's strconv does, with its message (Consul answers 500).
fn parse_u64(ctx: &Ctx, name: &str) -> Result<u64, Reply> {
    let v = ctx.get(name).unwrap_or("");
    v.parse::<u64>()
        .map_err(|_| Reply::internal(format!("strconv.ParseUint: parsing {v:?}: invalid syntax")))
}

fn put(shared: &Shared, ctx: &Ctx, key: &str) -> Reply {
    if key.is_empty() {
        return Reply::bad("Missing key name");
    }
    if let Some(r) = conflicting(ctx, &["cas", "acquire", "release"]) {
        return r;
    }
    let flags = if ctx.has("flags") {
        match parse_u64(ctx, "flags") {
            Ok(f) => f,
            Err(r) => return r,
        }
    } else {
        0
    };
    let cas = if ctx.has("cas") {
        match parse_u64(ctx, "cas") {
            Ok(c) => Some(c),
            Err(r) => return r,
        }
    } else {
        None
    };
    if ctx.body.len() > MAX_VALUE_SIZE {
        return Reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body({} bytes) too large, max size: {MAX_VALUE_SIZE} bytes. See \
                 https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
                ctx.body.len()
            ),
        );
    }
    let value = ctx.body.to_vec();
    let acquire = ctx.has("acquire").then(|| ctx.get("acquire").unwrap_or(""));
    let release = ctx.has("release").then(|| ctx.get("release").unwrap_or(""));
    let outcome: Result<bool, String> = shared.write(|s, now| {
        let idx = s.next_index();
        let ok = if let Some(sess) = acquire {
            if sess.is_empty() {
                return Err("missing session".to_string());
            }
            if let Some(e) = crate::state::session::lookup_error(sess) {
                return Err(e);
            }
            if !s.sessions.contains_key(sess) {
                return Err(format!("invalid session {sess:?}"));
            }
            if s.lock_delayed(key, now) {
                return Ok(false);
            }
            s.kv.lock(key, value, flags, sess, idx)
        } else if let Some(sess) = release {
            if sess.is_empty() {
                return Err("missing session".to_string());
            }
            s.kv.unlock(key, value, flags, sess, idx)
        } else if let Some(c) = cas {
            s.kv.cas(key, value, flags, c, idx)
        } else {
            s.kv.set(key, value, flags, idx);
            true
        };
        if s.kv.table_index == idx {
            s.index = idx;
        }
        Ok(ok)
    });
    match outcome {
        Ok(b) => Reply::json(&json!(b)),
        Err(e) => Reply::internal(e),
    }
}

fn delete(shared: &Shared, ctx: &Ctx, key: &str) -> Reply {
    if let Some(r) = conflicting(ctx, &["recurse", "cas"]) {
        return r;
    }
    let recurse = ctx.has("recurse");
    if !recurse && key.is_empty() {
        return Reply::bad("Missing key name");
    }
    let cas = if ctx.has("cas") {
        match parse_u64(ctx, "cas") {
            Ok(c) => Some(c),
            Err(r) => return r,
        }
    } else {
        None
    };
    let ok = shared.write(|s, _| {
        let idx = s.next_index();
        let ok = if recurse {
            s.kv.delete_tree(key, idx);
            true
        } else if let Some(c) = cas {
            s.kv.delete_cas(key, c, idx)
        } else {
            s.kv.delete(key, idx);
            true
        };
        if s.kv.table_index == idx {
            s.index = idx;
        }
        ok
    });
    Reply::json(&json!(ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules_follow_consul() {
        assert!(validate_key("cronnode/jobs/a-b_c,d.e").is_ok());
        assert!(validate_key("/lead").is_err());
        assert!(validate_key("a/../b").is_err());
        assert!(validate_key("..").is_err());
        assert!(validate_key(" a").is_err());
        assert!(validate_key("a b").is_err());
        assert!(validate_key("x.json").is_err());
        assert!(raw_path_traversal("/v1/kv/a/%2E%2E%2Fb"));
    }
}
