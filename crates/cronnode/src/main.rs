//! # cronnode: a distributed cron for serverless functions
//!
//! The binary. `main` parses the command line, sets up logs, runs the subcommand and maps the
//! result to an exit status; nothing else lives here. Start reading at `daemon::run` (a node),
//! then `leader` (the scheduling loop) and `api` (the HTTP API).
//!
//! Modules: `config` (settings raw → validated), `cli` (subcommands), `daemon` (wiring of a
//! node and its shutdown path), `leader` (the leader loop), `api` (HTTP), `client` (the API
//! client of the CLI and of forwarding), `metrics`, `activity` (recent fires per second and
//! lateness, sampled from the metrics), `ui` (the web console's embedded assets, served by
//! `api`), `dev` (the embedded dev mode); leaves that the API and the CLI share, so neither
//! imports the other: `preview` (a schedule's next slots), `percent` (URL encoding) and
//! `limits` (the API's body limit).

mod activity;
mod api;
mod cli;
mod client;
mod config;
mod daemon;
mod dev;
mod functions;
mod leader;
mod limits;
mod metrics;
mod percent;
mod preview;
mod ui;

use clap::Parser;

use cli::{Cli, Command, EXIT_BAD_CONFIG, EXIT_FAILURE};

fn main() {
    let cli = Cli::parse();
    std::process::exit(match cli.command {
        Command::Next(args) => cli::next::run(&args),
        other => match runtime() {
            Ok(rt) => rt.block_on(dispatch(other)),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                EXIT_FAILURE
            }
        },
    });
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

async fn dispatch(command: Command) -> i32 {
    match command {
        Command::Run(args) => {
            let config = match args.settings.raw().and_then(config::RawConfig::validate) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_BAD_CONFIG;
                }
            };
            daemon::init_logs(config.log_format);
            for warning in args.settings.exposure_warnings() {
                tracing::warn!("{warning}");
            }
            match daemon::run(config, daemon::shutdown_signal()).await {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("cronnode stopped: {e:#}");
                    EXIT_FAILURE
                }
            }
        }
        Command::Dev(args) => dev::run(args).await,
        Command::Jobs(cmd) => cli::jobs::run(&cmd).await,
        Command::Status(args) => cli::status::run(&args).await,
        Command::Fence(cmd) => cli::fence::run(&cmd).await,
        Command::Next(args) => cli::next::run(&args),
    }
}
