//! Every setting of a node, each declared once: to add one, add an entry here (and its row in
//! the README's configuration table, which a test holds to this list).
//!
//! An entry gives the `Config` field and its type, the name (the flag without `--` and the
//! key in the `--config` file), the environment variable, the value's name and one line of
//! help for `--help`, the parser (`parse.rs`), and what the setting is when nobody gives it: a
//! `default` text (parsed like a given one), a value `derived` when unset, or `none`. A
//! default or a bound that a library owns is the library's constant, never a copy.
//!
//! The rules between settings (a wildcard `--listen` needs `--advertise`; `--consul-ssl`) are
//! in `mod.rs`, after every setting is parsed on its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use consul_lock::{duration_text, MAX_LOCK_DELAY, MAX_SESSION_TTL, MIN_SESSION_TTL};
use redis_queue::queue::{DEFAULT_KEY_PREFIX, DEFAULT_QUEUE_PREFIX, DEFAULT_URL};

use super::declare::declare_settings;
use super::mq_url::MqUrl;
use super::parse;
use super::values::{LogFormat, RedisUrl, Secret};

/// Environment variable of the API bearer token (also read by the client commands).
pub const ENV_API_TOKEN: &str = "CRONNODE_API_TOKEN";
/// Default API listen address: loopback, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

declare_settings! {
    /// Consul HTTP address, with scheme (`http://127.0.0.1:8500`; https with `--consul-ssl`).
    consul_addr: String {
        name: "consul",
        env: consul_lock::ENV_ADDR,
        value_name: "ADDR",
        help: "Consul HTTP address (HOST:PORT or URL)",
        parse: parse::consul_addr,
        default: consul_lock::DEFAULT_ADDR,
    }
    /// Consul ACL token.
    consul_token: Option<Secret> {
        name: "consul-token",
        env: consul_lock::ENV_TOKEN,
        value_name: "TOKEN",
        help: "Consul ACL token",
        secret: true,
        parse: parse::optional_token,
        none
    }
    /// https to Consul even for a plain `HOST:PORT` (applied to `consul_addr`).
    consul_ssl: bool {
        name: "consul-ssl",
        env: consul_lock::ENV_SSL,
        value_name: "BOOL",
        help: "Use https to Consul even for a plain HOST:PORT (true or false)",
        parse: parse::consul_ssl,
        default: "false",
    }
    /// A PEM CA file to trust for https to Consul.
    consul_cacert: Option<PathBuf> {
        name: "consul-cacert",
        env: consul_lock::ENV_CACERT,
        value_name: "FILE",
        help: "A PEM CA file to trust for https to Consul",
        parse: parse::ca_file,
        none
    }
    /// The Consul UI as the operators' browsers reach it; see [`Config::consul_ui_url`].
    consul_ui: Option<String> {
        name: "consul-ui",
        env: "CRONNODE_CONSUL_UI",
        value_name: "URL",
        help: "The Consul UI as browsers reach it, for the console's links",
        parse: parse::consul_ui,
        none: "the Consul address + /ui"
    }
        /// Redis URL (`redis://` or `rediss://`) of the platform's queue.
    redis_url: RedisUrl {
        name: "redis",
        env: "REDIS_URL",
        value_name: "URL",
        help: "Redis URL of the platform's queue",
        secret: true,
        parse: parse::redis_url,
        default: DEFAULT_URL,
    }
    /// IronFunctions' own queue setting: the Redis and the queue prefix in one URL, read as
    /// IronFunctions reads it (`mq_url.rs`); when given, it sets `redis_url` and
    /// `queue_prefix` (which must then not be given).
    mq_url: Option<MqUrl> {
        name: "mq-url",
        env: "MQ_URL",
        value_name: "URL",
        help: "IronFunctions' MQ_URL (redis://[:PASSWORD@]HOST:PORT/[PATH]): its Redis and queue prefix, instead of --redis and --queue-prefix",
        secret: true,
        parse: super::mq_url::mq_url,
        none
    }
    /// Where the API listens.
    listen: SocketAddr {
        name: "listen",
        env: "CRONNODE_LISTEN",
        value_name: "IP:PORT",
        help: "Where the HTTP API listens",
        parse: parse::listen,
        default: DEFAULT_LISTEN,
    }
    /// The API address other nodes and the Consul catalog see (`host:port`); see
    /// [`Config::advertise`].
    advertise: Option<String> {
        name: "advertise",
        env: "CRONNODE_ADVERTISE",
        value_name: "HOST:PORT",
        help: "The API address other nodes and Consul see",
        parse: parse::host_port,
        none: "the listen address"
    }
    /// This node's name (service ID `cronnode-<node>`).
    node: String {
        name: "node",
        env: "CRONNODE_NODE",
        value_name: "NAME",
        help: "This node's name",
        parse: parse::node,
        derived: "the host name" => consul_lock::host_name()
    }
    /// Consul KV prefix.
    prefix: String {
        name: "prefix",
        env: "CRONNODE_PREFIX",
        value_name: "PREFIX",
        help: "Consul KV prefix",
        parse: parse::kv_prefix,
        default: consul_lock::DEFAULT_PREFIX,
    }
    /// Platform queue key prefix.
    queue_prefix: String {
        name: "queue-prefix",
        env: "CRONNODE_QUEUE_PREFIX",
        value_name: "PREFIX",
        help: "Prefix of the platform's queue keys (IronFunctions' MQ_URL path)",
        parse: parse::queue_prefix,
        default: DEFAULT_QUEUE_PREFIX,
    }
    /// Prefix of cronnode's own Redis keys.
    redis_prefix: String {
        name: "redis-prefix",
        env: "CRONNODE_REDIS_PREFIX",
        value_name: "PREFIX",
        help: "Prefix of cronnode's own Redis keys",
        parse: parse::redis_prefix,
        default: DEFAULT_KEY_PREFIX,
    }
    /// Functions server URL, for the tasks' `REQUEST_URL`.
    functions_url: String {
        name: "functions-url",
        env: "CRONNODE_FUNCTIONS_URL",
        value_name: "URL",
        help: "The IronFunctions API server: apps and routes are read there, and it is the tasks' REQUEST_URL base",
        parse: parse::functions_url,
        default: redis_queue::task::DEFAULT_FUNCTIONS_URL,
    }
    /// Whether tasks are built from the job's IronFunctions route (read from
    /// `functions_url`); off for a platform that only shares the queue.
    resolve_routes: bool {
        name: "resolve-routes",
        env: "CRONNODE_RESOLVE_ROUTES",
        value_name: "BOOL",
        help: "Build tasks from the job's IronFunctions app and route, read from --functions-url (true or false)",
        parse: parse::boolean,
        default: "true",
    }
    /// Time between two readings of every route.
    functions_refresh: Duration {
        name: "functions-refresh",
        env: "CRONNODE_FUNCTIONS_REFRESH",
        value_name: "DURATION",
        help: "How often every job's route is read again from IronFunctions, 1s-1h",
        parse: parse::functions_refresh,
        default: "30s",
    }
    /// Image for jobs that name none.
    default_image: Option<String> {
        name: "default-image",
        env: "CRONNODE_DEFAULT_IMAGE",
        value_name: "IMAGE",
        help: "Image for jobs that name none",
        parse: parse::image,
        none
    }
    /// Lock session TTL.
    session_ttl: Duration {
        name: "session-ttl",
        env: "CRONNODE_SESSION_TTL",
        value_name: "DURATION",
        help: format!(
            "Lock session TTL, {}-{}",
            duration_text(MIN_SESSION_TTL),
            duration_text(MAX_SESSION_TTL)
        ),
        parse: parse::session_ttl,
        default: duration_text(consul_lock::DEFAULT_SESSION_TTL),
    }
    /// Lock delay.
    lock_delay: Duration {
        name: "lock-delay",
        env: "CRONNODE_LOCK_DELAY",
        value_name: "DURATION",
        help: format!("Lock delay, 0s-{}", duration_text(MAX_LOCK_DELAY)),
        parse: parse::lock_delay,
        default: duration_text(consul_lock::DEFAULT_LOCK_DELAY),
    }
    /// Bearer token every API endpoint but `/health` requires, when set.
    api_token: Option<Secret> {
        name: "api-token",
        env: ENV_API_TOKEN,
        value_name: "TOKEN",
        help: "Bearer token required by every API endpoint but /health",
        secret: true,
        parse: parse::api_token,
        none
    }
    /// Log output format.
    log_format: LogFormat {
        name: "log-format",
        env: "CRONNODE_LOG_FORMAT",
        value_name: "FORMAT",
        help: "Log format: pretty or json (RUST_LOG sets the levels)",
        parse: parse::log_format,
        default: LogFormat::Pretty.name(),
    }
}
