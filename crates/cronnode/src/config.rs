//! The daemon's configuration: raw settings in, a validated [`Config`] out.
//!
//! Settings come from three sources, in priority order: command-line flags, environment
//! variables (clap reads both, see `cli::SettingsArgs`), and an optional TOML file
//! (`--config FILE`) whose keys are the flag names with `_` for `-`. All three become one
//! [`RawConfig`]; [`RawConfig::validate`] is the only parser, and it reports every problem at
//! once, each naming the setting and what is allowed.
//!
//! This module must not touch the network: it checks forms, not reachability (an unreachable
//! Consul or Redis at start-up is retried, not refused).
//!
//! Names and defaults are the constants below; the README's configuration table lists them.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Environment variable of the Consul address (Consul's own convention).
pub const ENV_CONSUL_ADDR: &str = "CONSUL_HTTP_ADDR";
/// Environment variable of the Consul ACL token (Consul's own convention).
pub const ENV_CONSUL_TOKEN: &str = "CONSUL_HTTP_TOKEN";
/// Environment variable that turns on https to Consul (Consul's own convention).
pub const ENV_CONSUL_SSL: &str = "CONSUL_HTTP_SSL";
/// Environment variable of the CA file for https to Consul (Consul's own convention).
pub const ENV_CONSUL_CACERT: &str = "CONSUL_CACERT";
/// Environment variable of the Redis URL.
pub const ENV_REDIS_URL: &str = "REDIS_URL";
/// Environment variable of the API listen address.
pub const ENV_LISTEN: &str = "CRONNODE_LISTEN";
/// Environment variable of the address advertised to Consul for the API.
pub const ENV_ADVERTISE: &str = "CRONNODE_ADVERTISE";
/// Environment variable of the node name.
pub const ENV_NODE: &str = "CRONNODE_NODE";
/// Environment variable of the Consul KV prefix.
pub const ENV_PREFIX: &str = "CRONNODE_PREFIX";
/// Environment variable of the platform's queue key prefix.
pub const ENV_QUEUE_PREFIX: &str = "CRONNODE_QUEUE_PREFIX";
/// Environment variable of the prefix of cronnode's own Redis keys.
pub const ENV_REDIS_PREFIX: &str = "CRONNODE_REDIS_PREFIX";
/// Environment variable of the functions server URL (for `REQUEST_URL` in tasks).
pub const ENV_FUNCTIONS_URL: &str = "CRONNODE_FUNCTIONS_URL";
/// Environment variable of the image used by jobs that name none.
pub const ENV_DEFAULT_IMAGE: &str = "CRONNODE_DEFAULT_IMAGE";
/// Environment variable of the lock session TTL.
pub const ENV_SESSION_TTL: &str = "CRONNODE_SESSION_TTL";
/// Environment variable of the lock delay.
pub const ENV_LOCK_DELAY: &str = "CRONNODE_LOCK_DELAY";
/// Environment variable of the API bearer token (also read by the CLI).
pub const ENV_API_TOKEN: &str = "CRONNODE_API_TOKEN";
/// Environment variable of the log format.
pub const ENV_LOG_FORMAT: &str = "CRONNODE_LOG_FORMAT";

/// Default Consul address (a local agent, as every Consul client assumes).
pub const DEFAULT_CONSUL_ADDR: &str = "http://127.0.0.1:8500";
/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default API listen address: loopback, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";
/// Default Consul KV prefix.
pub const DEFAULT_PREFIX: &str = "cronnode";
/// Default platform queue key prefix (IronFunctions' `MQ_URL` without a path).
pub const DEFAULT_QUEUE_PREFIX: &str = "";
/// Default prefix of cronnode's own Redis keys (a hash tag, so Redis Cluster keeps them together).
pub const DEFAULT_REDIS_PREFIX: &str = "{cronnode}:";
/// Default functions server URL.
pub const DEFAULT_FUNCTIONS_URL: &str = "http://127.0.0.1:8080";
/// Default lock session TTL.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(10);
/// Default lock delay (Consul's own default is 15 s; cronnode's fence makes a short one safe).
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(1);
/// Session TTL bounds, as Consul enforces them.
pub const SESSION_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(24 * 3600));
/// Lock delay ceiling, as Consul enforces it.
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Longest node name (it becomes part of a Consul service ID).
pub const MAX_NODE_LEN: usize = 64;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for terminals.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings as given, every one optional. Field names are the TOML keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// `--consul` / `CONSUL_HTTP_ADDR`.
    pub consul: Option<String>,
    /// `--consul-token` / `CONSUL_HTTP_TOKEN`.
    pub consul_token: Option<String>,
    /// `--consul-ssl` / `CONSUL_HTTP_SSL`.
    pub consul_ssl: Option<String>,
    /// `--consul-cacert` / `CONSUL_CACERT`.
    pub consul_cacert: Option<String>,
    /// `--redis` / `REDIS_URL`.
    pub redis: Option<String>,
    /// `--listen` / `CRONNODE_LISTEN`.
    pub listen: Option<String>,
    /// `--advertise` / `CRONNODE_ADVERTISE`.
    pub advertise: Option<String>,
    /// `--node` / `CRONNODE_NODE`.
    pub node: Option<String>,
    /// `--prefix` / `CRONNODE_PREFIX`.
    pub prefix: Option<String>,
    /// `--queue-prefix` / `CRONNODE_QUEUE_PREFIX`.
    pub queue_prefix: Option<String>,
    /// `--redis-prefix` / `CRONNODE_REDIS_PREFIX`.
    pub redis_prefix: Option<String>,
    /// `--functions-url` / `CRONNODE_FUNCTIONS_URL`.
    pub functions_url: Option<String>,
    /// `--default-image` / `CRONNODE_DEFAULT_IMAGE`.
    pub default_image: Option<String>,
    /// `--session-ttl` / `CRONNODE_SESSION_TTL`.
    pub session_ttl: Option<String>,
    /// `--lock-delay` / `CRONNODE_LOCK_DELAY`.
    pub lock_delay: Option<String>,
    /// `--api-token` / `CRONNODE_API_TOKEN`.
    pub api_token: Option<String>,
    /// `--log-format` / `CRONNODE_LOG_FORMAT`.
    pub log_format: Option<String>,
}

/// The validated configuration of a node.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Consul HTTP address, with scheme (`http://127.0.0.1:8500`).
    pub consul_addr: String,
    /// Consul ACL token.
    pub consul_token: Option<String>,
    /// A PEM CA file to trust for https to Consul.
    pub consul_cacert: Option<std::path::PathBuf>,
    /// Redis URL (`redis://`, `rediss://` or `unix://`).
    pub redis_url: String,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The API address other nodes and the Consul catalog see (`host:port`).
    pub advertise: String,
    /// This node's name (service ID `cronnode-<node>`).
    pub node: String,
    /// Consul KV prefix.
    pub prefix: String,
    /// Platform queue key prefix.
    pub queue_prefix: String,
    /// Prefix of cronnode's own Redis keys.
    pub redis_prefix: String,
    /// Functions server URL, for the tasks' `REQUEST_URL`.
    pub functions_url: String,
    /// Image for jobs that name none.
    pub default_image: Option<String>,
    /// Lock session TTL.
    pub session_ttl: Duration,
    /// Lock delay.
    pub lock_delay: Duration,
    /// Bearer token every API endpoint but `/health` requires, when set.
    pub api_token: Option<String>,
    /// Log output format.
    pub log_format: LogFormat,
}

impl fmt::Debug for Config {
    // Tokens never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("consul_addr", &self.consul_addr)
            .field("consul_token", &self.consul_token.as_ref().map(|_| "<set>"))
            .field("consul_cacert", &self.consul_cacert)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .field("queue_prefix", &self.queue_prefix)
            .field("redis_prefix", &self.redis_prefix)
            .field("functions_url", &self.functions_url)
            .field("default_image", &self.default_image)
            .field("session_ttl", &self.session_ttl)
            .field("lock_delay", &self.lock_delay)
            .field("api_token", &self.api_token.as_ref().map(|_| "<set>"))
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// A Redis URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// One bad setting: its name and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The flag name (`--session-ttl`).
    pub setting: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// At least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.setting, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl RawConfig {
    /// Reads a TOML file of settings (keys as flag names: `session-ttl = "15s"`).
    pub fn from_toml_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let problem = |message: String| ConfigError {
            problems: vec![Problem {
                setting: "--config",
                message,
            }],
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| problem(format!("{}: {e}", path.display())))
    }

    /// Fills every setting that is unset here from `lower` (a lower-priority source).
    pub fn or(self, lower: RawConfig) -> RawConfig {
        RawConfig {
            consul: self.consul.or(lower.consul),
            consul_token: self.consul_token.or(lower.consul_token),
            consul_ssl: self.consul_ssl.or(lower.consul_ssl),
            consul_cacert: self.consul_cacert.or(lower.consul_cacert),
            redis: self.redis.or(lower.redis),
            listen: self.listen.or(lower.listen),
            advertise: self.advertise.or(lower.advertise),
            node: self.node.or(lower.node),
            prefix: self.prefix.or(lower.prefix),
            queue_prefix: self.queue_prefix.or(lower.queue_prefix),
            redis_prefix: self.redis_prefix.or(lower.redis_prefix),
            functions_url: self.functions_url.or(lower.functions_url),
            default_image: self.default_image.or(lower.default_image),
            session_ttl: self.session_ttl.or(lower.session_ttl),
            lock_delay: self.lock_delay.or(lower.lock_delay),
            api_token: self.api_token.or(lower.api_token),
            log_format: self.log_format.or(lower.log_format),
        }
    }

    /// Checks every setting, applies defaults, and reports all problems at once.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut bad =
            |setting: &'static str, message: String| problems.push(Problem { setting, message });

        let consul_ssl = match self.consul_ssl.as_deref().map(str::trim) {
            None | Some("") => false,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                bad(
                    "--consul-ssl",
                    format!("{other:?} is not allowed: true or false (or 1/0)"),
                );
                false
            }
        };
        let consul_text = self.consul.as_deref().unwrap_or(DEFAULT_CONSUL_ADDR);
        let consul_addr = match normalize_http_addr(consul_text) {
            // Consul's convention: CONSUL_HTTP_SSL=true makes a plain address https.
            Ok(a) if consul_ssl => a.replacen("http://", "https://", 1),
            Ok(a) => a,
            Err(m) => {
                bad("--consul", m);
                String::new()
            }
        };
        let consul_cacert = self
            .consul_cacert
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from);
        if let Some(p) = &consul_cacert {
            if std::fs::metadata(p).map(|m| !m.is_file()).unwrap_or(true) {
                bad(
                    "--consul-cacert",
                    format!(
                        "{} is not a readable file (a PEM CA certificate)",
                        p.display()
                    ),
                );
            }
        }
        let redis_url = self.redis.unwrap_or_else(|| DEFAULT_REDIS_URL.to_string());
        if !["redis://", "rediss://", "unix://", "redis+unix://"]
            .iter()
            .any(|s| redis_url.starts_with(s) && redis_url.len() > s.len())
        {
            bad(
                "--redis",
                format!(
                    "{:?} is not a Redis URL: expected redis://HOST:PORT[/DB], rediss://… or unix://PATH",
                    redact_url(&redis_url)
                ),
            );
        }
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                bad(
                    "--listen",
                    format!("{listen_text:?} is not an address: expected IP:PORT such as 127.0.0.1:8765 or 0.0.0.0:8765"),
                );
                None
            }
        };
        let advertise = match (&self.advertise, listen) {
            (Some(a), _) => {
                if !valid_host_port(a) {
                    bad("--advertise", format!("{a:?} is not HOST:PORT"));
                }
                a.clone()
            }
            (None, Some(l)) if l.ip().is_unspecified() => {
                bad(
                    "--advertise",
                    format!("required when --listen is a wildcard address ({l}): the HOST:PORT other nodes reach this one at"),
                );
                String::new()
            }
            (None, Some(l)) => l.to_string(),
            (None, None) => String::new(),
        };
        let node = self.node.unwrap_or_else(default_node_name);
        if !valid_name(&node, MAX_NODE_LEN) {
            bad(
                "--node",
                format!(
                    "{node:?} is not allowed: 1-{MAX_NODE_LEN} characters of A-Z a-z 0-9 _ . -"
                ),
            );
        }
        let prefix = self.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.,/".contains(c))
        {
            bad(
                "--prefix",
                format!("{prefix:?} is not a Consul KV prefix: segments of A-Z a-z 0-9 _ - . , joined by '/', no leading or trailing '/', no '..'"),
            );
        }
        let queue_prefix = self
            .queue_prefix
            .unwrap_or_else(|| DEFAULT_QUEUE_PREFIX.to_string());
        if queue_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            bad(
                "--queue-prefix",
                format!("{queue_prefix:?} must not contain spaces or control characters"),
            );
        }
        let redis_prefix = self
            .redis_prefix
            .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_string());
        if redis_prefix.is_empty()
            || redis_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            bad(
                "--redis-prefix",
                format!("{redis_prefix:?} must be non-empty, without spaces or control characters"),
            );
        }
        let functions_url = self
            .functions_url
            .unwrap_or_else(|| DEFAULT_FUNCTIONS_URL.to_string());
        if let Err(m) = normalize_http_addr(&functions_url) {
            bad("--functions-url", m);
        }
        let default_image = self.default_image.filter(|s| !s.is_empty());
        if let Some(img) = &default_image {
            if img.chars().any(|c| c.is_whitespace()) {
                bad(
                    "--default-image",
                    format!("{img:?} must not contain spaces"),
                );
            }
        }
        let session_ttl = match self.session_ttl.as_deref().map(parse_duration) {
            None => DEFAULT_SESSION_TTL,
            Some(Ok(d)) if d >= SESSION_TTL_RANGE.0 && d <= SESSION_TTL_RANGE.1 => d,
            Some(Ok(d)) => {
                bad(
                    "--session-ttl",
                    format!("{d:?} is out of range 10s-24h (Consul's bounds)"),
                );
                DEFAULT_SESSION_TTL
            }
            Some(Err(m)) => {
                bad("--session-ttl", m);
                DEFAULT_SESSION_TTL
            }
        };
        let lock_delay = match self.lock_delay.as_deref().map(parse_duration) {
            None => DEFAULT_LOCK_DELAY,
            Some(Ok(d)) if d <= MAX_LOCK_DELAY => d,
            Some(Ok(d)) => {
                bad(
                    "--lock-delay",
                    format!("{d:?} is out of range 0s-60s (Consul's cap)"),
                );
                DEFAULT_LOCK_DELAY
            }
            Some(Err(m)) => {
                bad("--lock-delay", m);
                DEFAULT_LOCK_DELAY
            }
        };
        let api_token = match self.api_token {
            Some(t) if t.trim().is_empty() => {
                bad(
                    "--api-token",
                    "must not be empty or blank when set".to_string(),
                );
                None
            }
            Some(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                bad(
                    "--api-token",
                    "must not contain spaces or control characters".to_string(),
                );
                None
            }
            other => other,
        };
        let consul_token = self.consul_token.filter(|t| !t.is_empty());
        let log_format = match self.log_format.as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                bad(
                    "--log-format",
                    format!("{other:?} is not allowed: pretty or json"),
                );
                LogFormat::Pretty
            }
        };

        match listen {
            Some(listen) if problems.is_empty() => Ok(Config {
                consul_addr,
                consul_token,
                consul_cacert,
                redis_url,
                listen,
                advertise,
                node,
                prefix,
                queue_prefix,
                redis_prefix,
                functions_url,
                default_image,
                session_ttl,
                lock_delay,
                api_token,
                log_format,
            }),
            _ => Err(ConfigError { problems }),
        }
    }
}

/// `host:port` or `http(s)://host[:port]` → a URL with a scheme and no trailing `/`.
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

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A Go-style duration (`10s`, `1m30s`, `500ms`) as the schedule language reads it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    cron_core::schedule::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 10s, 1m30s or 500ms: {e}"))
}

/// The host name, cleaned to the node-name alphabet (`cronnode` when unknown).
pub fn default_node_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(MAX_NODE_LEN)
        .collect();
    if cleaned.is_empty() {
        "cronnode".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = RawConfig {
            node: Some("n1".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(c.consul_addr, DEFAULT_CONSUL_ADDR);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.advertise, DEFAULT_LISTEN);
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = RawConfig {
            consul: Some("ftp://x".into()),
            redis: Some("localhost:6379".into()),
            listen: Some("nope".into()),
            node: Some("a b".into()),
            prefix: Some("/x/../y".into()),
            session_ttl: Some("5s".into()),
            lock_delay: Some("90s".into()),
            api_token: Some(" ".into()),
            log_format: Some("xml".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.setting).collect();
        assert_eq!(
            names,
            [
                "--consul",
                "--redis",
                "--listen",
                "--node",
                "--prefix",
                "--session-ttl",
                "--lock-delay",
                "--api-token",
                "--log-format"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("pretty or json"), "{text}");
        assert!(text.contains("10s-24h"), "{text}");
    }

    #[test]
    fn wildcard_listen_needs_advertise() {
        let raw = RawConfig {
            node: Some("n".into()),
            listen: Some("0.0.0.0:8765".into()),
            ..Default::default()
        };
        assert_eq!(
            raw.clone().validate().unwrap_err().problems[0].setting,
            "--advertise"
        );
        let c = RawConfig {
            advertise: Some("node1.internal:8765".into()),
            ..raw
        }
        .validate()
        .unwrap();
        assert_eq!(c.advertise, "node1.internal:8765");
    }

    #[test]
    fn file_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "node = \"from-file\"\nsession-ttl = \"15s\"\nconsul = \"10.0.0.1:8500\"\n",
        )
        .unwrap();
        let file = RawConfig::from_toml_file(&path).unwrap();
        let c = RawConfig {
            node: Some("from-flag".into()),
            ..Default::default()
        }
        .or(file)
        .validate()
        .unwrap();
        assert_eq!(c.node, "from-flag");
        assert_eq!(c.session_ttl, Duration::from_secs(15));
        assert_eq!(c.consul_addr, "http://10.0.0.1:8500");
    }

    #[test]
    fn unknown_file_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "sesion-ttl = \"15s\"\n").unwrap();
        let err = RawConfig::from_toml_file(&path).unwrap_err();
        assert!(err.to_string().contains("sesion-ttl"), "{err}");
    }

    #[test]
    fn consul_ssl_makes_a_plain_address_https() {
        let c = RawConfig {
            node: Some("n".into()),
            consul: Some("consul.internal:8501".into()),
            consul_ssl: Some("true".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(c.consul_addr, "https://consul.internal:8501");
        let err = RawConfig {
            consul_ssl: Some("yes".into()),
            consul_cacert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        let names: Vec<_> = err.problems.iter().map(|p| p.setting).collect();
        assert_eq!(names, ["--consul-ssl", "--consul-cacert"]);
    }

    #[test]
    fn redis_password_is_redacted() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }
}
