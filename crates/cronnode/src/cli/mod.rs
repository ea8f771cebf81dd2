//! The command line: clap definitions and one module per subcommand.
//!
//! - `run`: the daemon (its settings: [`settings`], one flag per setting of `crate::config`);
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
pub mod settings;
pub mod status;

use clap::{Args, Parser, Subcommand};

pub use settings::SettingsArgs;

/// Exit status of a failure at run time.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status of bad command-line input.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit status of a bad daemon configuration (sysexits EX_USAGE).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Environment variable of the API base URL the client commands talk to.
pub const ENV_API_URL: &str = "CRONNODE_API";
/// Default API base URL of the client commands: the daemon's default listen address.
pub fn default_api_url() -> String {
    format!("http://{}", crate::config::DEFAULT_LISTEN)
}

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

/// Where client commands find a node's API, and the token they send.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of a node's API (any node: writes are stored in Consul, runs go to the leader).
    #[arg(long, global = true, value_name = "URL", env = ENV_API_URL, default_value_t = default_api_url())]
    pub api: String,
    /// Bearer token for the API.
    #[arg(long, global = true, value_name = "TOKEN", env = crate::config::ENV_API_TOKEN, hide_env_values = true)]
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
