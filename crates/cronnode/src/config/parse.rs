//! The parser of each setting: text in, a typed value or a message out. A message names what
//! is wrong and what is allowed; the setting's name is added by the caller.
//!
//! Where a library owns the rule (consul-lock: Consul's address and the lock's bounds,
//! `CONSUL_HTTP_SSL`), the parser calls it instead of restating it.
//!
//! Must not touch the network (a CA file is looked at, nothing is connected to).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use consul_lock::{ConsulConfig, ConsulError};

use super::values::{LogFormat, RedisUrl, Secret};

/// `--consul`: an address as consul-lock reads it, as the URL requests go to.
pub fn consul_addr(text: &str) -> Result<String, String> {
    ConsulConfig::new(text).base_url().map_err(|e| match e {
        ConsulError::Config(message) => message,
        other => other.to_string(),
    })
}

/// `--consul-ui`: an http(s) URL (a path allowed), kept without its trailing `/`; empty is
/// none.
pub fn consul_ui(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let url = text.trim_end_matches('/');
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?} is not allowed: an http:// or https:// URL"))?;
    if host.is_empty()
        || host.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{text:?} is not a URL such as https://consul.example.com/ui"
        ));
    }
    Ok(Some(url.to_string()))
}

/// `--consul-ssl`: as Consul's Go client reads `CONSUL_HTTP_SSL`.
pub fn consul_ssl(text: &str) -> Result<bool, String> {
    consul_lock::parse_ssl(text)
}

/// `--consul-cacert`: a readable file; empty is none.
pub fn ca_file(text: &str) -> Result<Option<PathBuf>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(text);
    if std::fs::metadata(&path)
        .map(|m| !m.is_file())
        .unwrap_or(true)
    {
        return Err(format!(
            "{} is not a readable file (a PEM CA certificate)",
            path.display()
        ));
    }
    Ok(Some(path))
}

/// A token that may be empty (empty is none): `--consul-token`.
pub fn optional_token(text: &str) -> Result<Option<Secret>, String> {
    Ok((!text.is_empty()).then(|| Secret::new(text)))
}

/// `--api-token`: when set, not blank and without spaces or control characters.
pub fn api_token(text: &str) -> Result<Option<Secret>, String> {
    if text.trim().is_empty() {
        return Err("must not be empty or blank when set".to_string());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".to_string());
    }
    Ok(Some(Secret::new(text)))
}

/// The URL schemes redis-queue connects to (`Queue::connect` refuses others, `unix://`
/// included, and would be retried for ever at start-up).
const REDIS_SCHEMES: [&str; 2] = ["redis://", "rediss://"];

/// `--redis`: a `redis://` or `rediss://` URL that the Redis client can read (host, port,
/// database, credentials), checked here so that a bad one stops start-up (exit 64) instead of
/// being retried as if Redis were down.
pub fn redis_url(text: &str) -> Result<RedisUrl, String> {
    let url = RedisUrl::new(text);
    let shown = url.to_string();
    if !REDIS_SCHEMES.iter().any(|s| text.starts_with(s)) {
        return Err(format!(
            "{shown:?} is not a Redis URL: expected redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB]"
        ));
    }
    match redis::IntoConnectionInfo::into_connection_info(text) {
        Ok(_) => Ok(url),
        // The client's message may quote the URL: never show the password.
        Err(e) => Err(format!(
            "{shown:?} is not a Redis URL the client can read ({}): expected redis://[USER:PASSWORD@]HOST:PORT[/DB]",
            redis_queue::queue::mask_password(&e.to_string())
        )),
    }
}

/// `--listen`: `IP:PORT`.
pub fn listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "{text:?} is not an address: expected IP:PORT such as 127.0.0.1:8765 or 0.0.0.0:8765"
        )
    })
}

/// `--advertise`: `HOST:PORT`.
pub fn host_port(text: &str) -> Result<Option<String>, String> {
    let ok = match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
        }
        None => false,
    };
    if ok {
        Ok(Some(text.to_string()))
    } else {
        Err(format!("{text:?} is not HOST:PORT"))
    }
}

/// `--node`: consul-lock's rule.
pub fn node(text: &str) -> Result<String, String> {
    consul_lock::check_node(text).map(|()| text.to_string())
}

/// `--prefix`: consul-lock's rule.
pub fn kv_prefix(text: &str) -> Result<String, String> {
    consul_lock::check_prefix(text).map(|()| text.to_string())
}

/// `--queue-prefix`: may be empty; no spaces or control characters.
pub fn queue_prefix(text: &str) -> Result<String, String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{text:?} must not contain spaces or control characters"
        ));
    }
    Ok(text.to_string())
}

/// `--redis-prefix`: not empty; no spaces or control characters.
pub fn redis_prefix(text: &str) -> Result<String, String> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{text:?} must be non-empty, without spaces or control characters"
        ));
    }
    Ok(text.to_string())
}

/// `--functions-url`: an HTTP address (kept as written).
pub fn functions_url(text: &str) -> Result<String, String> {
    normalize_http_addr(text).map(|_| text.to_string())
}

/// A boolean setting: `true` or `false` (also `1`/`0`, any case).
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{text:?} is not allowed: true or false")),
    }
}

/// `--functions-refresh`: a duration from 1 s to 1 h.
pub fn functions_refresh(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) {
        return Err(format!("{text:?} is not allowed: from 1s to 1h"));
    }
    Ok(d)
}

/// `--default-image`: no spaces; empty is none.
pub fn image(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!("{text:?} must not contain spaces"));
    }
    Ok(Some(text.to_string()))
}

/// `--session-ttl`: a duration within consul-lock's bounds.
pub fn session_ttl(text: &str) -> Result<Duration, String> {
    let ttl = duration(text)?;
    consul_lock::check_session_ttl(ttl).map(|()| ttl)
}

/// `--lock-delay`: a duration within consul-lock's cap.
pub fn lock_delay(text: &str) -> Result<Duration, String> {
    let delay = duration(text)?;
    consul_lock::check_lock_delay(delay).map(|()| delay)
}

/// `--log-format`: one of [`LogFormat::NAMES`].
pub fn log_format(text: &str) -> Result<LogFormat, String> {
    LogFormat::NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            let names: Vec<&str> = LogFormat::NAMES.iter().map(|(n, _)| *n).collect();
            format!("{text:?} is not allowed: {}", names.join(" or "))
        })
}

/// A Go-style duration (`10s`, `1m30s`, `500ms`) as the schedule language reads it.
pub fn duration(text: &str) -> Result<Duration, String> {
    cron_core::schedule::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 10s, 1m30s or 500ms: {e}"))
}

/// `host:port` or `http(s)://host[:port]` → a URL with a scheme and no trailing `/` (the
/// functions server, a node's API).
pub fn normalize_http_addr(text: &str) -> Result<String, String> {
    let t = text.trim().trim_end_matches('/');
    let (scheme, rest) = match t.split_once("://") {
        Some((s @ ("http" | "https"), rest)) => (s, rest),
        Some((s, _)) => {
            return Err(format!(
                "{text:?}: scheme {s:?} is not allowed: http or https"
            ))
        }
        None => ("http", t),
    };
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(format!(
            "{text:?} is not an HTTP address: expected HOST:PORT or http(s)://HOST[:PORT]"
        ));
    }
    Ok(format!("{scheme}://{rest}"))
}
