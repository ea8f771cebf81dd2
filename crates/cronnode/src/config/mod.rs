//! The daemon's configuration: raw settings in, a validated [`Config`] out.
//!
//! Every setting is declared once, in `settings.rs`: its name (the flag without `--`, and the
//! key of the `--config` file), its environment variable, its help, its parser and its
//! default. From that declaration follow the command line and the environment (`cli::settings`
//! makes one clap argument of each [`Setting`]), the file (`file.rs`), the typed [`Config`] and
//! the parsing (`declare.rs` is the macro that does it). A default or a bound owned by a
//! library (Consul's address and the lock's bounds in consul-lock, the queue's in redis-queue)
//! is taken from it.
//!
//! Sources, in priority order: flags, environment variables, the file; they become one
//! [`RawConfig`] (`or` stacks them), and [`RawConfig::validate`] is the only parser: each
//! setting on its own, then the rules between settings (below); every problem is reported at
//! once, naming the setting and what is allowed. [`Config`] then gives each library its part
//! ([`Config::consul_config`], [`Config::lock_settings`], ...), so nothing is checked again at
//! start-up.
//!
//! This module must not touch the network: it checks forms, not reachability (an unreachable
//! Consul or Redis at start-up is retried, not refused).

mod declare;
mod file;
mod mq_url;
mod parse;
mod settings;
mod values;

use std::fmt;

use consul_lock::{ConsulConfig, LockSettings};
use redis_queue::{QueueConfig, TaskSettings};

pub use declare::{Setting, Unset};
pub use parse::normalize_http_addr;
pub use settings::{settings, Config, RawConfig, DEFAULT_LISTEN, ENV_API_TOKEN};
pub use values::{LogFormat, RedisUrl};

use settings::PartialConfig;

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
    /// Checks every setting, applies defaults, and reports all problems at once.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut parsed = self.parse_each(&mut problems);
        // The one rule about what was given rather than what it says.
        if self.mq_url.as_deref().is_some_and(|u| !u.is_empty()) {
            let given: Vec<&str> = [
                ("--redis (REDIS_URL)", &self.redis_url),
                ("--queue-prefix (CRONNODE_QUEUE_PREFIX)", &self.queue_prefix),
            ]
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| n)
            .collect();
            if !given.is_empty() {
                problems.push(Problem {
                    setting: "--mq-url",
                    message: format!(
                        "--mq-url (MQ_URL) names the Redis and the queue prefix, and {} was given too: give one form or the other",
                        given.join(" and ")
                    ),
                });
            }
        }
        between_settings(&mut parsed, &mut problems);
        match parsed.complete() {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError { problems }),
        }
    }
}

/// The rules that involve more than one setting, on what parsed.
fn between_settings(p: &mut PartialConfig, problems: &mut Vec<Problem>) {
    // MQ_URL stands for --redis and --queue-prefix: everything downstream reads those.
    if let Some(Some(mq)) = &p.mq_url {
        p.redis_url = Some(mq.redis.clone());
        p.queue_prefix = Some(mq.queue_prefix.clone());
    }
    if let (Some(None), Some(listen)) = (&p.advertise, &p.listen) {
        if listen.ip().is_unspecified() {
            problems.push(Problem {
                setting: "--advertise",
                message: format!("required when --listen is a wildcard address ({listen}): the HOST:PORT other nodes reach this one at"),
            });
        }
    }
    if let (Some(true), Some(url)) = (p.resolve_routes, &p.functions_url) {
        if url.trim_start().starts_with("https://") {
            problems.push(Problem {
                setting: "--functions-url",
                message: format!("{url:?}: cronnode reads IronFunctions' API over http only; give an http:// address, or --resolve-routes false"),
            });
        }
    }
    // Consul's convention, applied by consul-lock: CONSUL_HTTP_SSL=true makes a plain address
    // https.
    if let (Some(addr), Some(true)) = (&mut p.consul_addr, p.consul_ssl) {
        let https = ConsulConfig {
            ssl: true,
            ..ConsulConfig::new(addr.as_str())
        };
        match https.base_url() {
            Ok(url) => *addr = url,
            Err(e) => problems.push(Problem {
                setting: "--consul-ssl",
                message: e.to_string(),
            }),
        }
    }
}

/// The key of the node's Consul service Meta that says whether its API requires a token, so
/// that nodes can see when they disagree (`/v1/nodes`, `cronnode status`).
pub const API_TOKEN_META: &str = "api_token";
/// Its value when the node has `--api-token` (else [`API_TOKEN_NOT_REQUIRED`]).
pub const API_TOKEN_REQUIRED: &str = "required";
/// Its value when the node has no `--api-token`.
pub const API_TOKEN_NOT_REQUIRED: &str = "none";

impl Config {
    /// The API address other nodes and the Consul catalog see: `--advertise`, else the listen
    /// address.
    pub fn advertise(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// The Consul UI's base URL for links in the console: `--consul-ui`, else the UI of the
    /// Consul agent the node talks to (`<--consul>/ui`).
    pub fn consul_ui_url(&self) -> String {
        self.consul_ui
            .clone()
            .unwrap_or_else(|| format!("{}/ui", self.consul_addr.trim_end_matches('/')))
    }

    /// How consul-lock reaches Consul.
    pub fn consul_config(&self) -> ConsulConfig {
        ConsulConfig {
            token: self.consul_token.as_ref().map(|t| t.expose().to_string()),
            ca_cert: self.consul_cacert.clone(),
            ..ConsulConfig::new(self.consul_addr.as_str())
        }
    }

    /// The lock, the registration and the store's settings: checked by consul-lock's own
    /// checks when this configuration was validated.
    pub fn lock_settings(&self) -> LockSettings {
        LockSettings {
            prefix: self.prefix.clone(),
            session_ttl: self.session_ttl,
            lock_delay: self.lock_delay,
            node: self.node.clone(),
            api_addr: self.advertise(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            meta: [(
                API_TOKEN_META.to_string(),
                if self.api_token.is_some() {
                    API_TOKEN_REQUIRED
                } else {
                    API_TOKEN_NOT_REQUIRED
                }
                .to_string(),
            )]
            .into(),
        }
    }

    /// Where the tasks go.
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            url: self.redis_url.expose().to_string(),
            queue_prefix: self.queue_prefix.clone(),
            key_prefix: self.redis_prefix.clone(),
            ..QueueConfig::default()
        }
    }

    /// How fires become tasks.
    pub fn task_settings(&self) -> TaskSettings {
        TaskSettings {
            functions_url: self.functions_url.clone(),
            default_image: self.default_image.clone(),
            node: self.node.clone(),
            // Filled by the route cache (functions/) when resolution is on.
            routes: None,
        }
    }
}

#[cfg(test)]
mod tests;
