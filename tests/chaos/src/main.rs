//! `chaos`: the soak form of the fault-tolerance suite (`scripts/chaos --minutes N`).
//!
//! Injects rounds of the seven faults (twelve against the harness's own Consul servers,
//! `CHAOS_CONSUL_BIN`) until N minutes have passed, then stops the nodes and runs the checker. Exit code 0 when every slot was delivered exactly once, 1 when not, 2 when
//! the harness itself could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos::{run, RunConfig, Timings};
use clap::Parser;

/// Breaks a three-node cronnode cluster on purpose and checks exactly-once delivery.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Keep injecting rounds of the seven faults for this many minutes (at least one round).
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Run one round with the short test's timings instead of the soak's.
    #[arg(long)]
    short: bool,
    /// Where the logs and data of the run go (default target/chaos/run-<time>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let run_dir = args.run_dir.unwrap_or_else(|| {
        PathBuf::from("target/chaos").join(format!(
            "run-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    let (timings, duration) = if args.short {
        (Timings::short(), None)
    } else {
        (
            Timings::soak(),
            Some(Duration::from_secs(args.minutes * 60)),
        )
    };
    let cfg = RunConfig::from_env(timings, duration, run_dir.clone());
    match run(&cfg).await {
        Ok(outcome) => {
            for e in &outcome.errors {
                eprintln!("harness error: {e}");
            }
            println!("{}", outcome.report);
            eprintln!("logs and data: {}", run_dir.display());
            if outcome.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!("logs and data: {}", run_dir.display());
            ExitCode::from(2)
        }
    }
}
