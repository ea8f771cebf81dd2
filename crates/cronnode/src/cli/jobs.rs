//! `cronnode jobs list|get|add|put|rm|pause|resume|run|backfill|fires`: the job API from the
//! shell.
//!
//! Every subcommand is one call to a node's API (`--api`, token from `CRONNODE_API_TOKEN`);
//! text by default, the API's JSON with `--json`. No validation of a spec happens here: the API
//! is the one judge, so the CLI and curl users get the same answers. A file is read up to the
//! API's body limit, no further (`/dev/zero` is refused, not read until memory runs out).
//!
//! Exit status of `add`, `put` and `backfill`: a file or a range refused, here (unreadable, too
//! large, not a JSON object, `put` without an id) or by the API (400, 413, 415, 422), is bad
//! input, 2, the same in both; anything else that fails (the API unreachable, 401, 404, 409,
//! 5xx) is 1.

use std::io::Read;

use bytes::Bytes;
use clap::Subcommand;
use hyper::Method;
use serde_json::Value;

use super::ApiArgs;
use crate::client::ClientError;
use crate::limits::MAX_BODY_BYTES;

/// The `jobs` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List the jobs (every page of the API's paged listing).
    List {
        /// Only the jobs of this app.
        #[arg(long)]
        app: Option<String>,
        /// Jobs per request (1-10000; the API's default, 1000, when absent).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one job.
    Get {
        /// The job id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Create a job from a JSON file (`-` for standard input).
    Add {
        /// The job spec file.
        file: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Replace a job from a JSON file (`-` for standard input); a `version` in it is checked.
    Put {
        /// The job spec file.
        file: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a job.
    Rm {
        /// The job id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pause a job: it keeps its spec and makes no calls.
    Pause {
        /// The job id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resume a paused job (missed slots follow its catch-up policy).
    Resume {
        /// The job id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Enqueue one call of a job now, outside its schedule.
    Run {
        /// The job id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Fire a job's past slots in [FROM, TO] that were never enqueued (each at most once).
    Backfill {
        /// The job id.
        id: String,
        /// The first instant of the range (RFC 3339 with an offset).
        #[arg(long)]
        from: String,
        /// The last instant of the range (RFC 3339 with an offset, not in the future).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a job's recent fires.
    Fires {
        /// The job id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs a `jobs` subcommand; returns the exit status.
pub async fn run(cmd: &JobsCommand) -> i32 {
    match exec(cmd).await {
        Ok(()) => 0,
        Err(e) => {
            let code = super::report_failure(&e);
            let bad_input = matches!(
                cmd,
                JobsCommand::Add { .. } | JobsCommand::Put { .. } | JobsCommand::Backfill { .. }
            );
            if bad_input && refuses_the_spec(&e) {
                super::EXIT_BAD_INPUT
            } else {
                code
            }
        }
    }
}

/// Whether the API refused the spec itself (what a bad file gets), as opposed to the state of
/// the cluster or the job.
fn refuses_the_spec(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status, .. } => matches!(status.as_u16(), 400 | 413 | 415 | 422),
        _ => false,
    }
}

fn job_path(id: &str) -> String {
    format!("/v1/cronjobs/{}", crate::percent::encode(id))
}

/// Reads a spec file (`-`: standard input), at most the API's body limit.
fn read_spec(file: &str) -> Result<Bytes, ClientError> {
    let name = if file == "-" { "standard input" } else { file };
    let source: Box<dyn Read> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file)
                .map_err(|e| ClientError::BadInput(format!("cannot read {file}: {e}")))?,
        )
    };
    read_capped(source, name, MAX_BODY_BYTES)
}

/// Reads `source` whole if it holds at most `limit` bytes; one byte more is an error.
fn read_capped(source: impl Read, name: &str, limit: usize) -> Result<Bytes, ClientError> {
    let mut buf = Vec::new();
    source
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ClientError::BadInput(format!("cannot read {name}: {e}")))?;
    if buf.len() > limit {
        return Err(ClientError::BadInput(format!(
            "{name} is larger than {limit} bytes, the most the API takes for a job spec"
        )));
    }
    Ok(Bytes::from(buf))
}

/// `GET /v1/cronjobs` page after page, following `next`. Text is printed page by page (a
/// million jobs need not fit in memory); `--json` prints one document with every page's jobs.
async fn list(app: Option<&str>, limit: Option<usize>, api: &ApiArgs) -> Result<(), ClientError> {
    let client = client(api)?;
    let mut all_jobs = Vec::new();
    let mut all_invalid = Vec::new();
    let mut after: Option<String> = None;
    let mut first = true;
    loop {
        let mut query = Vec::new();
        if let Some(a) = app {
            query.push(format!("app={}", crate::percent::encode(a)));
        }
        if let Some(l) = limit {
            query.push(format!("limit={l}"));
        }
        if let Some(a) = &after {
            query.push(format!("after={}", crate::percent::encode(a)));
        }
        let path = if query.is_empty() {
            "/v1/cronjobs".to_string()
        } else {
            format!("/v1/cronjobs?{}", query.join("&"))
        };
        let mut page = client.json(Method::GET, &path, None).await?;
        let next = page.get("next").and_then(Value::as_str).map(str::to_string);
        if api.json {
            let mut take = |field: &str| match page.get_mut(field).map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            all_jobs.extend(take("jobs"));
            all_invalid.extend(take("invalid"));
        } else {
            print_list(&page, first);
        }
        first = false;
        // A cursor that does not move would loop for ever: stop rather than trust it.
        if next.is_none() || next == after {
            break;
        }
        after = next;
    }
    if api.json {
        let doc = serde_json::json!({"jobs": all_jobs, "invalid": all_invalid, "next": null});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    Ok(())
}

async fn exec(cmd: &JobsCommand) -> Result<(), ClientError> {
    let (api, answer) = match cmd {
        JobsCommand::List { app, limit, api } => return list(app.as_deref(), *limit, api).await,
        JobsCommand::Get { id, api } => (
            api,
            client(api)?.json(Method::GET, &job_path(id), None).await?,
        ),
        JobsCommand::Add { file, api } => {
            let body = read_spec(file)?;
            (
                api,
                client(api)?
                    .json(Method::POST, "/v1/cronjobs", Some(body))
                    .await?,
            )
        }
        JobsCommand::Put { file, api } => {
            let body = read_spec(file)?;
            let id = spec_id(file, &body)?;
            (
                api,
                client(api)?
                    .json(Method::PUT, &job_path(&id), Some(body))
                    .await?,
            )
        }
        JobsCommand::Rm { id, api } => (
            api,
            client(api)?
                .json(Method::DELETE, &job_path(id), None)
                .await?,
        ),
        JobsCommand::Pause { id, api } => (
            api,
            client(api)?
                .json(Method::POST, &format!("{}/pause", job_path(id)), None)
                .await?,
        ),
        JobsCommand::Resume { id, api } => (
            api,
            client(api)?
                .json(Method::POST, &format!("{}/resume", job_path(id)), None)
                .await?,
        ),
        JobsCommand::Run { id, api } => (
            api,
            client(api)?
                .json(Method::POST, &format!("{}/run", job_path(id)), None)
                .await?,
        ),
        JobsCommand::Backfill { id, from, to, api } => {
            let body = serde_json::json!({"from": from, "to": to}).to_string();
            (
                api,
                client(api)?
                    .json(
                        Method::POST,
                        &format!("{}/backfill", job_path(id)),
                        Some(Bytes::from(body)),
                    )
                    .await?,
            )
        }
        JobsCommand::Fires { id, api } => (
            api,
            client(api)?
                .json(Method::GET, &format!("{}/fires", job_path(id)), None)
                .await?,
        ),
    };
    if api.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    match cmd {
        JobsCommand::List { .. } => print_list(&answer, true),
        JobsCommand::Fires { .. } => print_fires(&answer),
        JobsCommand::Rm { id, .. } => println!("deleted {id}"),
        JobsCommand::Run { id, .. } => println!(
            "enqueued a manual run of {id}: fire id {}",
            s(&answer, "/fire_id")
        ),
        JobsCommand::Backfill { id, .. } => {
            let n = |p: &str| {
                answer
                    .pointer(p)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            };
            println!(
                "backfill of {id}: {} slots in range, {} enqueued now, {} already enqueued, {} left \
                 to the scheduler, {} dropped",
                s(&answer, "/slots"),
                n("/enqueued"),
                n("/already_enqueued"),
                n("/left_to_scheduler"),
                n("/dropped")
            );
            if let Some(slots) = answer.pointer("/enqueued").and_then(Value::as_array) {
                for slot in slots.iter().filter_map(Value::as_str) {
                    println!("enqueued {slot}");
                }
            }
        }
        _ => print_job(&answer),
    }
    Ok(())
}

/// The `id` of a spec, which names the job `put` replaces.
fn spec_id(file: &str, body: &[u8]) -> Result<String, ClientError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ClientError::BadInput(format!("{file}: not valid JSON: {e}")))?;
    value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ClientError::BadInput(format!(
                "{file}: a job spec must be a JSON object with an \"id\" string"
            ))
        })
}

fn client(api: &ApiArgs) -> Result<crate::client::ApiClient, ClientError> {
    api.client().map_err(ClientError::BadInput)
}

fn s(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn print_list(v: &Value, header: bool) {
    let empty = Vec::new();
    let jobs = v.get("jobs").and_then(Value::as_array).unwrap_or(&empty);
    if header {
        println!(
            "{:<24} {:<18} {:<14} {:<7} {:<8} {:<21} {:<21}",
            "ID", "FREQUENCY", "TIMEZONE", "PAUSED", "STATE", "NEXT START", "LAST START"
        );
    }
    for j in jobs {
        println!(
            "{:<24} {:<18} {:<14} {:<7} {:<8} {:<21} {:<21}",
            s(j, "/id"),
            s(j, "/frequency"),
            j.get("timezone").and_then(Value::as_str).unwrap_or("UTC"),
            j.get("paused").and_then(Value::as_bool).unwrap_or(false),
            s(j, "/state"),
            s(j, "/next_start"),
            s(j, "/last_start"),
        );
    }
    if let Some(invalid) = v.get("invalid").and_then(Value::as_array) {
        for i in invalid {
            println!("invalid entry {}: {}", s(i, "/key"), s(i, "/error"));
        }
    }
}

fn print_job(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn print_fires(v: &Value) {
    let empty = Vec::new();
    let fires = v.get("fires").and_then(Value::as_array).unwrap_or(&empty);
    println!(
        "{:<21} {:<25} {:>10} {:<9} {:<36} {:<16} {:>8}",
        "SLOT", "ENQUEUED AT", "LATENESS", "KIND", "FIRE ID", "LEADER", "TOKEN"
    );
    for f in fires {
        println!(
            "{:<21} {:<25} {:>10} {:<9} {:<36} {:<16} {:>8}",
            s(f, "/slot"),
            s(f, "/enqueued_at"),
            format!("{}ms", s(f, "/lateness_ms")),
            s(f, "/kind"),
            s(f, "/fire_id"),
            s(f, "/leader_node"),
            s(f, "/token"),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn files_are_read_up_to_the_api_limit_and_no_further() {
        let exactly = [b' '; 10];
        assert_eq!(read_capped(&exactly[..], "f", 10).unwrap().len(), 10);
        // An endless source: only limit + 1 bytes are read.
        let e = read_capped(std::io::repeat(0), "/dev/zero", 10).unwrap_err();
        assert!(
            e.to_string().contains("/dev/zero is larger than 10 bytes"),
            "{e}"
        );
    }

    #[test]
    fn put_needs_an_id_and_says_so() {
        assert_eq!(spec_id("f", br#"{"id": "a"}"#).unwrap(), "a");
        for bad in [&b"nope"[..], b"[1]", b"{}", br#"{"id": 3}"#] {
            let e = spec_id("f", bad).unwrap_err();
            assert!(matches!(e, ClientError::BadInput(_)), "{e}");
        }
    }
}
