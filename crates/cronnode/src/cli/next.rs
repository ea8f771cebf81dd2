//! `cronnode next FREQUENCY [--tz ZONE] [--from RFC3339] [-n N]`: the next slots of a schedule.
//!
//! Offline: it parses the expression with cron-core and prints one RFC3339 UTC instant per line
//! (`2026-03-29T01:00:00Z`). Bad input exits 2 with one `error:` line. The API's
//! `GET /v1/schedule` answers with the same [`preview`].

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use cron_core::Schedule;

/// Largest `-n` accepted (by the CLI and by `GET /v1/schedule`).
pub const MAX_PREVIEW: usize = 1000;
/// Default number of slots printed.
pub const DEFAULT_PREVIEW: usize = 5;

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

/// The next `n` slots of `frequency` in `tz` strictly after `from`, as RFC3339 UTC strings.
pub fn preview(
    frequency: &str,
    tz: Option<&str>,
    from: DateTime<Utc>,
    n: usize,
) -> Result<Vec<String>, String> {
    if n == 0 || n > MAX_PREVIEW {
        return Err(format!("n: {n} is out of range 1-{MAX_PREVIEW}"));
    }
    let schedule = Schedule::parse(frequency, tz).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(n);
    let mut at = from;
    while out.len() < n {
        match schedule.next_after(at) {
            Some(slot) => {
                out.push(slot.to_rfc3339_opts(SecondsFormat::Secs, true));
                at = slot;
            }
            None => break,
        }
    }
    Ok(out)
}

/// Parses an RFC3339 instant, naming the argument when it is not one.
pub fn parse_instant(name: &str, text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{name}: {text:?} is not an RFC3339 instant such as 2026-03-29T01:00:00Z ({e})")
        })
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
