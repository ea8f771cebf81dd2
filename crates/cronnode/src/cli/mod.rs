//! The command line: clap definitions and one module per subcommand.
//!
//! - `run`: the daemon (settings in [`SettingsArgs`], see `crate::config`);
//! - `dev`: the embedded dev mode (`crate::dev`);
//! - `next`: a schedule preview, offline ([`next`]);
//! - `jobs`, `status`, `fence`: clients of a node's HTTP API ([`jobs`], [`status`], [`fence`]).
//!
//! Exit codes: 0 success, 1 a failure at run time (API unreachable, error answer), 2 bad input
//! on the command line, 64 (EX_USAGE) a bad daemon configuration.
//! This module parses and dispatches; it must not hold daemon logic.

pub mod fence;
pub mod jobs;
pub mod next;
pub mod status;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, RawConfig};

/// Exit status of a failure at run time.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status of bad command-line input.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit status of a bad daemon configuration (sysexits EX_USAGE).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Environment variable of the API base URL the client commands talk to.
pub const ENV_API_URL: &str = "CRONNODE_API";
/// Default API base URL of the client commands (the daemon's default listen address).
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8765";

/// cronnode: a distributed cron for serverless functions.
#[derive(Debug, Parser)]
#[command(name = "cronnode", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: join the election, serve the API, schedule while leader.
    Run(RunArgs),
    /// One process, no Consul needed: an in-process Consul-compatible agent, Redis, a node.
    Dev(DevArgs),
    /// Print the next slots of a schedule expression.
    Next(next::NextArgs),
    /// Manage cron jobs through a node's API.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Show the leader, the nodes, the job count, the fence and the queue depths.
    Status(status::StatusArgs),
    /// The fencing token kept in Redis (see the README, "Consul rebuilt").
    #[command(subcommand)]
    Fence(fence::FenceCommand),
}

/// `cronnode run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node's settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// `cronnode dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Do not register the example job (every 5 seconds).
    #[arg(long)]
    pub no_example: bool,
    /// The node's settings (Consul and Redis default to embedded ones).
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The daemon's settings as flags with environment fallbacks (names in `crate::config`).
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// A TOML file of settings (keys are the flag names); flags and environment win over it.
    #[arg(long, value_name = "FILE", env = "CRONNODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Consul HTTP address.
    #[arg(long, value_name = "ADDR", env = config::ENV_CONSUL_ADDR)]
    pub consul: Option<String>,
    /// Consul ACL token.
    #[arg(long, value_name = "TOKEN", env = config::ENV_CONSUL_TOKEN, hide_env_values = true)]
    pub consul_token: Option<String>,
    /// Use https to Consul even for a plain HOST:PORT (true or false).
    #[arg(long, value_name = "BOOL", env = config::ENV_CONSUL_SSL)]
    pub consul_ssl: Option<String>,
    /// A PEM CA file to trust for https to Consul.
    #[arg(long, value_name = "FILE", env = config::ENV_CONSUL_CACERT)]
    pub consul_cacert: Option<String>,
    /// Redis URL of the platform's queue.
    #[arg(long, value_name = "URL", env = config::ENV_REDIS_URL, hide_env_values = true)]
    pub redis: Option<String>,
    /// Where the HTTP API listens [default: 127.0.0.1:8765].
    #[arg(long, value_name = "IP:PORT", env = config::ENV_LISTEN)]
    pub listen: Option<String>,
    /// The API address other nodes and Consul see [default: the listen address].
    #[arg(long, value_name = "HOST:PORT", env = config::ENV_ADVERTISE)]
    pub advertise: Option<String>,
    /// This node's name [default: the host name].
    #[arg(long, value_name = "NAME", env = config::ENV_NODE)]
    pub node: Option<String>,
    /// Consul KV prefix [default: cronnode].
    #[arg(long, value_name = "PREFIX", env = config::ENV_PREFIX)]
    pub prefix: Option<String>,
    /// Prefix of the platform's queue keys (IronFunctions' MQ_URL path) [default: empty].
    #[arg(long, value_name = "PREFIX", env = config::ENV_QUEUE_PREFIX)]
    pub queue_prefix: Option<String>,
    /// Prefix of cronnode's own Redis keys [default: {cronnode}:].
    #[arg(long, value_name = "PREFIX", env = config::ENV_REDIS_PREFIX)]
    pub redis_prefix: Option<String>,
    /// The functions server URL, for the tasks' REQUEST_URL [default: http://127.0.0.1:8080].
    #[arg(long, value_name = "URL", env = config::ENV_FUNCTIONS_URL)]
    pub functions_url: Option<String>,
    /// Image for jobs that name none.
    #[arg(long, value_name = "IMAGE", env = config::ENV_DEFAULT_IMAGE)]
    pub default_image: Option<String>,
    /// Lock session TTL, 10s-24h [default: 10s].
    #[arg(long, value_name = "DURATION", env = config::ENV_SESSION_TTL)]
    pub session_ttl: Option<String>,
    /// Lock delay, 0s-60s [default: 1s].
    #[arg(long, value_name = "DURATION", env = config::ENV_LOCK_DELAY)]
    pub lock_delay: Option<String>,
    /// Bearer token required by every API endpoint but /health.
    #[arg(long, value_name = "TOKEN", env = config::ENV_API_TOKEN, hide_env_values = true)]
    pub api_token: Option<String>,
    /// Log format: pretty or json (RUST_LOG sets the levels) [default: pretty].
    #[arg(long, value_name = "FORMAT", env = config::ENV_LOG_FORMAT)]
    pub log_format: Option<String>,
}

impl SettingsArgs {
    /// Flags and environment, then the config file under them: one [`RawConfig`].
    pub fn to_raw(&self) -> Result<RawConfig, config::ConfigError> {
        let given = RawConfig {
            consul: self.consul.clone(),
            consul_token: self.consul_token.clone(),
            consul_ssl: self.consul_ssl.clone(),
            consul_cacert: self.consul_cacert.clone(),
            redis: self.redis.clone(),
            listen: self.listen.clone(),
            advertise: self.advertise.clone(),
            node: self.node.clone(),
            prefix: self.prefix.clone(),
            queue_prefix: self.queue_prefix.clone(),
            redis_prefix: self.redis_prefix.clone(),
            functions_url: self.functions_url.clone(),
            default_image: self.default_image.clone(),
            session_ttl: self.session_ttl.clone(),
            lock_delay: self.lock_delay.clone(),
            api_token: self.api_token.clone(),
            log_format: self.log_format.clone(),
        };
        match &self.config {
            Some(path) => Ok(given.or(RawConfig::from_toml_file(path)?)),
            None => Ok(given),
        }
    }
}

/// Where client commands find a node's API, and the token they send.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of a node's API (any node: writes are stored in Consul, runs go to the leader).
    #[arg(long, global = true, value_name = "URL", env = ENV_API_URL, default_value = DEFAULT_API_URL)]
    pub api: String,
    /// Bearer token for the API.
    #[arg(long, global = true, value_name = "TOKEN", env = config::ENV_API_TOKEN, hide_env_values = true)]
    pub api_token: Option<String>,
    /// Print the API's JSON answer instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ApiArgs {
    /// A client for these arguments.
    pub fn client(&self) -> Result<crate::client::ApiClient, String> {
        crate::client::ApiClient::new(&self.api, self.api_token.clone())
    }
}

/// Prints a client command's failure and gives its exit code.
pub fn report_failure(err: &crate::client::ClientError) -> i32 {
    eprintln!("error: {err}");
    match err {
        crate::client::ClientError::BadInput(_) => EXIT_BAD_INPUT,
        _ => EXIT_FAILURE,
    }
}
