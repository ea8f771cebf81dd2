//! `cronnode fence reset --yes`: after Consul was rebuilt from scratch, set the Redis fence to
//! the current leader's token so that it may enqueue again (design.md, "Consul rebuilt").
//!
//! The call goes to any node, which forwards it to the leader; only the leader knows its token.
//! Without `--yes` it refuses and explains, since a wrong reset lets a deposed leader enqueue.

use clap::Subcommand;
use hyper::Method;

use super::ApiArgs;

/// The `fence` subcommands.
#[derive(Debug, Subcommand)]
pub enum FenceCommand {
    /// Set the fence to the current leader's token (after Consul was rebuilt).
    Reset {
        /// Confirm: no older leader of the previous Consul cluster is still running.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs a `fence` subcommand; returns the exit status.
pub async fn run(cmd: &FenceCommand) -> i32 {
    let FenceCommand::Reset { yes, api } = cmd;
    if !yes {
        eprintln!(
            "error: refusing to reset the fence without --yes. A reset lowers the fence to the \
             current leader's token; do it only after Consul was rebuilt from scratch and no node \
             of the old cluster can still enqueue (stop them first)."
        );
        return super::EXIT_BAD_INPUT;
    }
    let answer = match api.client() {
        Ok(c) => c.json(Method::POST, "/v1/leader/fence/reset", None).await,
        Err(e) => Err(crate::client::ClientError::BadInput(e)),
    };
    match answer {
        Ok(v) if api.json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Ok(v) => {
            println!(
                "fence reset to {} by leader {}",
                v.get("fence").map(|f| f.to_string()).unwrap_or_default(),
                v.get("node").and_then(|n| n.as_str()).unwrap_or("-")
            );
            0
        }
        Err(e) => super::report_failure(&e),
    }
}
