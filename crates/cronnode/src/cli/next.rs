//! `cronnode next FREQUENCY [--tz ZONE] [--from RFC3339] [-n N]`: the next slots of a schedule.
//!
//! Offline: it parses the expression with cron-core and prints one RFC3339 UTC instant per line
//! (`2026-03-29T01:00:00Z`). Bad input exits 2 with one `error:` line. The API's
//! `GET /v1/schedule` answers with the same `crate::preview`.

use chrono::Utc;
use clap::Args;

use crate::preview::{parse_instant, preview, DEFAULT_PREVIEW};

/// Arguments of `cronnode next`.
#[derive(Debug, Args)]
pub struct NextArgs {
    /// The schedule expression (`"*/10 * * * *"`, `@daily`, `@every 90s`).
    pub frequency: String,
    /// IANA time zone of the expression [default: UTC].
    #[arg(long)]
    pub tz: Option<String>,
    /// Print slots strictly after this instant (RFC3339) [default: now].
    #[arg(long)]
    pub from: Option<String>,
    /// How many slots to print.
    #[arg(short = 'n', default_value_t = DEFAULT_PREVIEW)]
    pub n: usize,
}

/// Runs `cronnode next`; returns the exit status.
pub fn run(args: &NextArgs) -> i32 {
    let from = match &args.from {
        Some(text) => match parse_instant("--from", text) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return super::EXIT_BAD_INPUT;
            }
        },
        None => Utc::now(),
    };
    match preview(&args.frequency, args.tz.as_deref(), from, args.n) {
        Ok(slots) => {
            for s in slots {
                println!("{s}");
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_BAD_INPUT
        }
    }
}
