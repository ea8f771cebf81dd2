//! `cronnode next FREQUENCY [--tz ZONE] [--from RFC3339] [-n N] [--start-at T] [--end-at T]
//! [--jitter D --id JOB]`: the next slots of a schedule.
//!
//! Offline: it parses the expression with cron-core and prints one RFC3339 UTC instant per line
//! (`2026-03-29T01:00:00Z`); with a jitter, each slot is followed by the instant it runs at
//! (`2026-03-29T01:00:00Z runs at 2026-03-29T01:03:12.345Z`); a one-shot (`@at`) prints its one
//! instant, or nothing once it is past; no slot outside `--start-at`/`--end-at`. Bad input exits 2 with one `error:` line. The API's
//! `GET /v1/schedule` answers with the same `crate::preview`.

use chrono::Utc;
use clap::Args;

use crate::preview::{parse_instant, preview, Life, DEFAULT_PREVIEW};

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
    /// No slot before this instant (RFC3339 with an offset), as a job's `start_at`.
    #[arg(long)]
    pub start_at: Option<String>,
    /// No slot after this instant (RFC3339 with an offset), as a job's `end_at`.
    #[arg(long)]
    pub end_at: Option<String>,
    /// Delay each slot by its offset in [0, JITTER) (`5m`), as a job's `jitter`.
    #[arg(long)]
    pub jitter: Option<String>,
    /// The job id the jitter's offsets are drawn for (they differ from job to job).
    #[arg(long, default_value = "preview")]
    pub id: String,
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
    let life = Life {
        id: Some(&args.id),
        jitter: args.jitter.as_deref(),
        start_at: args.start_at.as_deref(),
        end_at: args.end_at.as_deref(),
    };
    match preview(&args.frequency, args.tz.as_deref(), &life, from, args.n) {
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
