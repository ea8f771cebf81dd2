//! The one background task behind every clock: session TTLs, check TTLs,
//! DeregisterCriticalServiceAfter, HTTP check runs, and the forgetting of spent lock-delays.
//!
//! It ticks at a fixed short period rather than sleeping to the next deadline: the state is
//! small, a scan is cheap, and nothing has to tell the task that a deadline moved. It must not
//! decide anything itself; the rules live in `crate::state`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::http::Shared;
use crate::state::CheckStatus;

/// How often deadlines are checked: the expiry of a TTL is late by at most this.
pub const TICK: Duration = Duration::from_millis(100);
/// An HTTP check that has not answered within this is critical (Consul's default timeout).
pub const HTTP_CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Check output is cut to this many bytes (Consul's default check_output_max_size).
pub const MAX_CHECK_OUTPUT: usize = 4096;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// One HTTP check run, as Consul's CheckHTTP judges it: 2xx passing, 429 warning, anything
/// else (or no answer) critical.
async fn run_http_check(client: HttpClient, url: String) -> (CheckStatus, String) {
    let uri = match url.parse::<hyper::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") => u,
        Ok(_) => {
            return (
                CheckStatus::Critical,
                format!("{url}: only http:// checks are run by consul-dev"),
            )
        }
        Err(e) => return (CheckStatus::Critical, format!("{url}: {e}")),
    };
    let answer = tokio::time::timeout(HTTP_CHECK_TIMEOUT, async {
        let resp = client.get(uri).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    })
    .await;
    match answer {
        Ok(Ok((status, body))) => {
            let mut text = String::from_utf8_lossy(&body).into_owned();
            if text.len() > MAX_CHECK_OUTPUT {
                let mut cut = MAX_CHECK_OUTPUT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            let out = format!("HTTP GET {url}: {status} Output: {text}");
            let st = if status.is_success() {
                CheckStatus::Passing
            } else if status == hyper::StatusCode::TOO_MANY_REQUESTS {
                CheckStatus::Warning
            } else {
                CheckStatus::Critical
            };
            (st, out)
        }
        Ok(Err(e)) => (CheckStatus::Critical, format!("Get \"{url}\": {e}")),
        Err(_) => (
            CheckStatus::Critical,
            format!("Get \"{url}\": timed out after {HTTP_CHECK_TIMEOUT:?}"),
        ),
    }
}

/// Runs until `shutdown` flips.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Behind a frozen Raft leader nothing expires until a new one is elected, which then
        // restarts every session timer (Consul's leader does so when it takes over).
        let (leaderless, new_leader) = {
            let mut faults = shared.faults();
            let now = std::time::Instant::now();
            let leaderless = faults.leaderless(now);
            let new_leader = match faults.frozen_leader.as_mut() {
                Some(f) if !f.timers_reset && now >= f.elected_at => {
                    f.timers_reset = true;
                    true
                }
                _ => false,
            };
            (leaderless, new_leader)
        };
        let due = shared.write(|s, now| {
            if new_leader {
                s.reset_session_timers(now);
            }
            if !leaderless {
                s.expire_sessions(now);
                s.expire_checks(now);
            }
            s.gc_lock_delays(now);
            s.due_http_checks(now)
        });
        // Runs are detached so a slow endpoint never delays a TTL; each records its result
        // only if the check still exists.
        for (id, url) in due {
            let (shared, client) = (shared.clone(), client.clone());
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    (status, output) = run_http_check(client, url) => {
                        shared.write(|s, now| s.record_http_check(&id, status, output, now));
                    }
                    _ = stop.changed() => {}
                }
            });
        }
    }
}
